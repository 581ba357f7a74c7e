"""Time values in one place: every time ``core`` stores or compares is an aware UTC datetime.

Airflow hands over pendulum ``DateTime`` values, MLflow epoch milliseconds, users ISO strings:
:func:`to_utc` accepts all of them; :func:`iso` and :func:`to_ms` write them back.
Imports nothing heavy.
"""

from __future__ import annotations

import time
from datetime import date, datetime, timezone
from typing import Any

from mlops_provider.core.errors import InputError

__all__ = ["from_ms", "iso", "now_ms", "parse_time", "to_ms", "to_utc", "utcnow"]


def utcnow() -> datetime:
    """The current time, aware UTC."""
    return datetime.now(timezone.utc)


def now_ms() -> int:
    """The current time in epoch milliseconds (MLflow's clock)."""
    return int(time.time() * 1000)


def parse_time(value: Any) -> datetime | None:
    """An aware UTC datetime from a datetime, a date (midnight UTC), an ISO string (``Z``
    accepted) or epoch seconds/milliseconds; ``None`` for ``None``, ``""`` or an unparseable
    value. Naive datetimes are taken as UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        out = value
    elif isinstance(value, date):
        out = datetime(value.year, value.month, value.day)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = value / 1000.0 if value > 1e11 else float(value)
        out = datetime.fromtimestamp(seconds, tz=timezone.utc)
    else:
        text = str(value).strip()
        if text.isdigit():
            return parse_time(int(text))
        try:
            out = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
    aware = out if out.tzinfo is not None else out.replace(tzinfo=timezone.utc)
    aware = aware.astimezone(timezone.utc)
    # A plain datetime: pendulum's DateTime drops a stdlib tzinfo in arithmetic, which would
    # mix naive and aware times later.
    return datetime(*aware.timetuple()[:6], aware.microsecond, tzinfo=timezone.utc)


def to_utc(value: Any, *, what: str = "time") -> datetime:
    """Like :func:`parse_time`, but a value that is not a time is an error.

    :raises InputError: names ``what`` and the value.
    """
    out = parse_time(value)
    if out is None:
        raise InputError(f"{what} {value!r} is not a date or datetime (e.g. 2026-01-01T00:00:00Z)")
    return out


def iso(value: Any) -> str | None:
    """ISO-8601 in UTC (``None`` stays ``None``)."""
    out = parse_time(value)
    return None if out is None else out.isoformat()


def to_ms(value: Any) -> int:
    """Epoch milliseconds of a time value.

    :raises InputError: not a time.
    """
    return int(to_utc(value).timestamp() * 1000)


def from_ms(ms: int | float) -> datetime:
    """An aware UTC datetime from epoch milliseconds."""
    return datetime.fromtimestamp(ms / 1000.0, tz=timezone.utc)
