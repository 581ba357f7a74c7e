"""The retraining policy: its keys, their defaults and validation, and durations.

Keys may be flat (:data:`DEFAULT_POLICY`) or grouped by policy in sections
(:data:`POLICY_SECTIONS`); ``"enabled": False`` in a section turns that policy off.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Any

from mlops_provider.core.errors import InputError, ParameterError
from mlops_provider.core.params import as_bool, as_float, as_list, as_mapping

__all__ = [
    "DEFAULT_POLICY",
    "POLICY_SECTIONS",
    "RetrainPolicy",
    "RetrainPolicyError",
    "days_text",
    "format_duration",
    "parse_duration",
]

#: The defaults of every policy key (documented in docs/retraining.md).
DEFAULT_POLICY: dict[str, Any] = {
    "dataset_drift": True,
    "critical_features": [],
    "metric": None,
    "min_metric": None,
    "max_metric": None,
    "max_degradation": 0.05,
    "max_relative_degradation": None,
    "min_new_labels": None,
    "max_model_age": None,
    "cooldown": "1d",
    "deduplicate": True,
    "request_expiry": "14d",
}

#: Policy keys may also be grouped by policy: ``{"drift": {...}, "performance": {...},
#: "data_volume": {...}, "age": {...}}``; ``"enabled": False`` in a section turns it off.
POLICY_SECTIONS: dict[str, tuple[str, ...]] = {
    "drift": ("dataset_drift", "critical_features"),
    "performance": (
        "metric",
        "min_metric",
        "max_metric",
        "max_degradation",
        "max_relative_degradation",
    ),
    "data_volume": ("min_new_labels",),
    "age": ("max_model_age",),
}
_SECTION_OFF: dict[str, dict[str, Any]] = {
    "drift": {"dataset_drift": False, "critical_features": []},
    "performance": {
        "min_metric": None,
        "max_metric": None,
        "max_degradation": None,
        "max_relative_degradation": None,
    },
    "data_volume": {"min_new_labels": None},
    "age": {"max_model_age": None},
}


class RetrainPolicyError(InputError):
    """The policy or an input of the decision is invalid; the message names the key."""


# --------------------------------------------------------------------------- durations

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(w|d|h|m|s)", re.IGNORECASE)
_COMPOUND = re.compile(r"(?:\d+(?:\.\d+)?[wdhms])+", re.IGNORECASE)
_ISO_DURATION = re.compile(
    r"^P(?:(?P<w>\d+(?:\.\d+)?)W)?(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$",
    re.IGNORECASE,
)
_UNIT = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}


def _duration_text(text: str, key: str, value: Any) -> timedelta:
    iso = _ISO_DURATION.match(text)
    if iso and any(iso.groupdict().values()):
        return timedelta(seconds=sum(float(v) * _UNIT[k] for k, v in iso.groupdict().items() if v))
    compact = text.replace(" ", "")
    if _COMPOUND.fullmatch(compact):
        return timedelta(
            seconds=sum(float(n) * _UNIT[u.lower()] for n, u in _DURATION.findall(compact))
        )
    try:
        return timedelta(days=float(text))
    except ValueError:
        raise RetrainPolicyError(
            f"{key}: cannot read {value!r} as a duration (use e.g. '7d', '12h', "
            "'1d12h', 'P7D' or a number of days)"
        ) from None


def parse_duration(value: Any, *, key: str = "duration") -> timedelta | None:
    """``timedelta`` from a timedelta, a number of days, ``"30d"``/``"12h"``/``"1d12h"``/``"90m"``/
    ``"2w"``/``"45s"`` or ISO 8601 (``"P30D"``, ``"PT12H"``); ``None``/``""`` -> ``None``.

    :raises RetrainPolicyError: anything else, or a negative duration.
    """
    if value is None or value == "":
        return None
    if isinstance(value, timedelta):
        out = value
    elif isinstance(value, bool):
        raise RetrainPolicyError(f"{key}: expected a duration, got {value!r}")
    elif isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise RetrainPolicyError(f"{key}: expected a finite number of days, got {value!r}")
        out = timedelta(days=float(value))
    elif isinstance(value, str):
        out = _duration_text(value.strip(), key, value)
    else:
        raise RetrainPolicyError(f"{key}: expected a duration, got {type(value).__name__}")
    if out < timedelta(0):
        raise RetrainPolicyError(f"{key}: duration must not be negative, got {value!r}")
    return out


def format_duration(value: timedelta | None) -> str | None:
    """``"1d"``, ``"12h"``, ``"1d12h"`` ... (inverse of :func:`parse_duration`)."""
    if value is None:
        return None
    seconds = round(value.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, seconds = divmod(seconds, size)
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)


def days_text(value: timedelta) -> str:
    """``"2.5 days"``."""
    return f"{value.total_seconds() / 86400:.1f} days"


# --------------------------------------------------------------------------- policy


def _coerce(coerce: Callable[..., Any], value: Any, key: str, **kwargs: Any) -> Any:
    """A ``core.params`` coercion whose error is a policy error naming the key."""
    try:
        return coerce(value, key, **kwargs)
    except ParameterError as err:
        raise RetrainPolicyError(f"{key}: {err.problem}") from err


def _section_values(section: str, body: Any) -> dict[str, Any]:
    keys = POLICY_SECTIONS[section]
    if isinstance(body, bool):
        body = {"enabled": body}
    if not isinstance(body, Mapping):
        raise RetrainPolicyError(f"policy section {section!r} must be a dict, got {body!r}")
    unknown = sorted(set(body) - {*keys, "enabled"})
    if unknown:
        raise RetrainPolicyError(
            f"unknown key(s) {unknown} in policy section {section!r}; known: {[*keys, 'enabled']}"
        )
    enabled = _coerce(as_bool, body.get("enabled", True), f"{section}.enabled", default=False)
    if not enabled:
        return dict(_SECTION_OFF[section])
    return {k: v for k, v in body.items() if k != "enabled"}


def _flatten_sections(policy: Mapping[str, Any]) -> dict[str, Any]:
    flat = {k: v for k, v in policy.items() if k not in POLICY_SECTIONS}
    for section in POLICY_SECTIONS:
        if policy.get(section) is None:
            continue
        values = _section_values(section, policy[section])
        both = sorted(set(values) & set(flat))
        if both:
            raise RetrainPolicyError(
                f"policy key(s) {both} given both at the top level and in section {section!r}"
            )
        flat.update(values)
    return flat


def _merged(policy: Mapping[str, Any] | str | None) -> dict[str, Any]:
    """The policy's keys over :data:`DEFAULT_POLICY` (sections flattened, unknown keys refused)."""
    given = _coerce(as_mapping, policy, "policy", default={})
    flat = _flatten_sections(given)
    unknown = sorted(set(flat) - set(DEFAULT_POLICY))
    if unknown:
        raise RetrainPolicyError(
            f"unknown policy key(s) {unknown}; known keys: {sorted(DEFAULT_POLICY)} "
            f"or the sections {sorted(POLICY_SECTIONS)}"
        )
    return {**DEFAULT_POLICY, **flat}


def _number(merged: Mapping[str, Any], key: str, minimum: float | None = None) -> float | None:
    value = _coerce(as_float, merged[key], key)
    if value is not None and not math.isfinite(value):
        raise RetrainPolicyError(f"{key}: expected a finite number, got {merged[key]!r}")
    if value is not None and minimum is not None and value < minimum:
        raise RetrainPolicyError(f"{key} must be >= {minimum:g}, got {merged[key]!r}")
    return value


def _critical_features(value: Any) -> tuple[str, ...]:
    names = _coerce(as_list, value, "critical_features", default=[])
    if not all(isinstance(c, str) for c in names):
        raise RetrainPolicyError(
            f"critical_features: expected a list of column names, got {value!r}"
        )
    return tuple(c.strip() for c in names if c.strip())


@dataclass(frozen=True)
class RetrainPolicy:
    """Validated policy. Build it with :meth:`from_dict` (keys of :data:`DEFAULT_POLICY`)."""

    dataset_drift: bool = True
    critical_features: tuple[str, ...] = ()
    metric: str | None = None
    min_metric: float | None = None
    max_metric: float | None = None
    max_degradation: float | None = 0.05
    max_relative_degradation: float | None = None
    min_new_labels: int | None = None
    max_model_age: timedelta | None = None
    cooldown: timedelta | None = timedelta(days=1)
    deduplicate: bool = True
    request_expiry: timedelta | None = timedelta(days=14)

    @classmethod
    def from_dict(cls, policy: Mapping[str, Any] | str | None = None) -> RetrainPolicy:
        """Policy from a dict (or its JSON text); missing keys take :data:`DEFAULT_POLICY`.

        :raises RetrainPolicyError: an unknown key or an invalid value (named).
        """
        merged = _merged(policy)
        min_new = _number(merged, "min_new_labels", minimum=1)
        metric = merged["metric"]
        if metric is not None and not isinstance(metric, str):
            raise RetrainPolicyError(f"metric: expected a metric name, got {metric!r}")
        return cls(
            dataset_drift=bool(
                _coerce(as_bool, merged["dataset_drift"], "dataset_drift", default=False)
            ),
            critical_features=_critical_features(merged["critical_features"]),
            metric=metric or None,
            min_metric=_number(merged, "min_metric"),
            max_metric=_number(merged, "max_metric"),
            max_degradation=_number(merged, "max_degradation", minimum=0),
            max_relative_degradation=_number(merged, "max_relative_degradation", minimum=0),
            min_new_labels=None if min_new is None else int(min_new),
            max_model_age=parse_duration(merged["max_model_age"], key="max_model_age"),
            cooldown=parse_duration(merged["cooldown"], key="cooldown"),
            deduplicate=bool(_coerce(as_bool, merged["deduplicate"], "deduplicate", default=False)),
            request_expiry=parse_duration(merged["request_expiry"], key="request_expiry"),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable form (durations as ``"1d"`` strings)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, timedelta):
                value = format_duration(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out
