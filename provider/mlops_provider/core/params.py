"""Coercion of templated parameter values, with errors that name the parameter.

A Jinja template renders to a string unless the DAG sets ``render_template_as_native_obj``;
these helpers accept both the native value and its text (JSON or a Python literal), so an
operator parameter means the same thing however it was written. Imports nothing heavy.
"""

from __future__ import annotations

import ast
import json
import math
import numbers
import os
from collections.abc import Collection, Mapping, Sequence
from datetime import date, datetime, timezone
from typing import Any

from mlops_provider.core.errors import ParameterError, did_you_mean

__all__ = [
    "as_bool",
    "as_choice",
    "as_choice_or_number",
    "as_number",
    "as_datetime",
    "as_names",
    "as_uri",
    "required",
    "as_float",
    "as_int",
    "as_list",
    "as_mapping",
    "as_str",
    "parse_text",
]


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def parse_text(value: str) -> Any:
    """A JSON or Python-literal text as its value (the text itself when it is neither)."""
    text = value.strip()
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(text)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return value


def as_str(value: Any, name: str, *, default: str | None = None) -> str | None:
    """A non-blank string, or ``default``."""
    if _blank(value):
        return default
    if not isinstance(value, str):
        raise ParameterError(name, f"expected a string, got {type(value).__name__} {value!r}")
    return value.strip()


def as_float(
    value: Any,
    name: str,
    *,
    default: float | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
) -> float | None:
    """A number (``default`` when blank), optionally within ``[minimum, maximum]``."""
    if _blank(value):
        return default
    if isinstance(value, bool):
        raise ParameterError(name, f"expected a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ParameterError(name, f"expected a number, got {value!r}") from None
    if number != number:  # NaN
        raise ParameterError(name, "expected a number, got NaN")
    if minimum is not None and number < minimum:
        raise ParameterError(name, f"must be >= {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise ParameterError(name, f"must be <= {maximum}, got {number}")
    return number


def as_int(
    value: Any, name: str, *, default: int | None = None, minimum: int | None = None
) -> int | None:
    """An integer (``default`` when blank); ``"7"`` and ``7.0`` are accepted, ``7.5`` is not."""
    number = as_float(value, name)
    if number is None:
        return default
    if not number.is_integer():
        raise ParameterError(name, f"expected a whole number, got {value!r}")
    if minimum is not None and number < minimum:
        raise ParameterError(name, f"must be >= {minimum}, got {int(number)}")
    return int(number)


def as_number(
    value: Any,
    name: str,
    *,
    default: int | float | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    expected: str = "a number",
) -> int | float | None:
    """A finite number that keeps its kind (``default`` when blank): an integer or a
    whole-number text (``"100"``) is an ``int``, a float or a decimal text (``"0.2"``,
    ``"1e3"``) a ``float``. For parameters whose meaning depends on the kind (a fraction or a
    row count).

    :param expected: what the error says was expected (e.g. ``"a fraction or a row count"``).
    :raises ParameterError: not a number (text, a list, a boolean), NaN or infinite, or out of
        ``[minimum, maximum]``.
    """
    if _blank(value):
        return default
    parsed = parse_text(value) if isinstance(value, str) else value
    if (
        isinstance(parsed, bool)
        or not isinstance(parsed, numbers.Real)
        or not math.isfinite(parsed)
    ):
        raise ParameterError(name, f"expected {expected}, got {value!r}")
    as_float(parsed, name, minimum=minimum, maximum=maximum)  # the range
    return int(parsed) if isinstance(parsed, numbers.Integral) else float(parsed)


def as_choice(
    value: Any, name: str, choices: Collection[str], *, default: str | None = None
) -> str | None:
    """One of ``choices`` (surrounding blanks ignored; ``default`` when blank).

    :raises ParameterError: anything else (naming the choices, and the closest one).
    """
    text = as_str(value, name)
    if text is None:
        return default
    if text not in choices:
        raise ParameterError(
            name, f"expected one of {list(choices)}, got {value!r}{did_you_mean(text, choices)}"
        )
    return text


def as_choice_or_number(
    value: Any, name: str, choices: Collection[str], *, default: Any = None
) -> str | int | float | None:
    """One of ``choices`` or a finite number (``"0"`` -> 0); ``default`` when blank or a
    ``None`` / ``null`` text (what ``{{ None }}`` renders to).

    :raises ParameterError: neither a choice nor a number.
    """
    if isinstance(value, str):
        text = value.strip()
        if text in choices:
            return text
        value = parse_text(text) if text else None
    if _blank(value):
        return default
    expected = f"one of {list(choices)} or a number"
    if isinstance(value, str):
        raise ParameterError(
            name, f"expected {expected}, got {value!r}{did_you_mean(value, choices)}"
        )
    return as_number(value, name, expected=expected)


def as_bool(value: Any, name: str, *, default: bool | None = None) -> bool | None:
    """A boolean from a bool or ``true/false/1/0/yes/no/on/off`` (``"false"`` is False)."""
    if _blank(value):
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ParameterError(name, f"expected true or false, got {value!r}")


def as_list(value: Any, name: str, *, default: list[Any] | None = None) -> list[Any] | None:
    """A list from a list/tuple/set, a JSON or literal list text, a comma-separated text or
    one scalar."""
    if _blank(value):
        return default
    if isinstance(value, str):
        parsed = parse_text(value)
        if isinstance(parsed, (list, tuple)):
            return list(parsed)
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, Mapping):
        raise ParameterError(name, f"expected a list, got a mapping {dict(value)!r}")
    if isinstance(value, (Sequence, set, frozenset)) and not isinstance(value, bytes):
        return list(value)
    return [value]


def as_mapping(
    value: Any, name: str, *, default: dict[str, Any] | None = None
) -> dict[str, Any] | None:
    """A dict from a mapping or its JSON / literal text."""
    if _blank(value):
        return default
    if isinstance(value, str):
        value = parse_text(value)
    if not isinstance(value, Mapping):
        raise ParameterError(name, f"expected a mapping (dict or JSON object), got {value!r}")
    return dict(value)


def as_datetime(value: Any, name: str, *, default: datetime | None = None) -> datetime | None:
    """A time-zone aware datetime from a datetime, a date or an ISO 8601 text (naive: UTC)."""
    if _blank(value):
        return default
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ParameterError(
                name,
                f"expected an ISO 8601 date or time (e.g. 2026-01-10T00:00:00+00:00), got {value!r}",
            ) from None
    else:
        raise ParameterError(name, f"expected a date or time, got {type(value).__name__} {value!r}")
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def as_names(value: Any, name: str) -> list[str] | None:
    """A list of names (columns, feature refs): a list, a JSON/literal list, ``"a,b"`` or one
    name; ``None`` when blank."""
    names = as_list(value, name)
    return None if names is None else [str(v) for v in names]


def as_uri(value: Any, name: str) -> str | None:
    """A dataset URI: a string or a path; ``None`` when blank."""
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return as_str(value, name)


def required(value: Any, name: str, what: str = "a value") -> Any:
    """``value`` when it is not ``None``.

    :raises ParameterError: ``value`` is ``None`` (``"parameter <name>: <what> is required"``).
    """
    if value is None:
        raise ParameterError(name, f"{what} is required")
    return value
