"""Retraining policy: should the champion be retrained, and why (or why not now)?

Four policies can be combined in one decision; each one that triggers adds a reason:

* **drift**: the dataset drifted (``dataset_drift``), or any of the ``critical_features``
  drifted, in one or more drift results (the DriftDetectionOperator's XCom);
* **performance**: the monitored metric fell below ``min_metric`` (above ``max_metric`` for
  losses), or degraded from its baseline by more than ``max_degradation`` (absolute) or
  ``max_relative_degradation`` (relative) (the ModelPerformanceOperator's XCom); an
  ``insufficient_data`` result never triggers;
* **data volume**: at least ``min_new_labels`` labelled rows arrived since the champion's
  training data ended;
* **age**: the champion is older than ``max_model_age``.

A triggered decision is then *suppressed* when a request was made less than ``cooldown`` ago
(``"cooldown"``) or while the previous request is still open (``"open_request"``).

The request state lives on the registered model as tags (``mlops.retrain.*``), so it needs no
extra storage and survives worker restarts. "Open" is derived, never stored: a request is
closed by a promotion after it (another champion version, or the same version promoted again),
by the training pipeline marking it handled (:func:`mark_request_handled`), or by its age
(``request_expiry``). None of these compares a registry time with a decision time.

Times: the decision's ``now`` is injectable (the operator passes the end of the data
interval, so backfills and simulated days behave like live runs). The pure functions here take
everything as arguments; :func:`run_retrain_decision` reads and writes MLflow.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from mlops_provider.core.errors import InputError

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_POLICY",
    "POLICY_SECTIONS",
    "PROMOTED_AT_TAG",
    "ChampionInfo",
    "PolicyEvaluation",
    "RequestState",
    "RetrainDecision",
    "RetrainPolicy",
    "RetrainPolicyError",
    "count_new_labels",
    "decide",
    "evaluate_age",
    "evaluate_data_volume",
    "evaluate_drift",
    "evaluate_performance",
    "format_duration",
    "is_request_open",
    "mark_request_handled",
    "parse_duration",
    "read_champion",
    "read_request_state",
    "record_request",
    "record_retrain_request",
    "run_retrain_decision",
]

PROMOTED_AT_TAG = "mlops.promoted_at"
#: Version or run tags that may hold the end of the champion's training data (first found wins).
TRAINING_END_TAGS = (
    "mlops.training_data_end",
    "mlops.data_interval_end",
    "mlops.training_data_interval_end",
    "data_interval_end",
)
TAG_LAST_REQUEST_AT = "mlops.retrain.last_request_at"
TAG_LAST_REQUEST_REASONS = "mlops.retrain.last_request_reasons"
TAG_LAST_REQUEST_CHAMPION = "mlops.retrain.last_request_champion_version"
TAG_LAST_REQUEST_ID = "mlops.retrain.last_request_id"
TAG_LAST_REQUEST_CHAMPION_PROMOTED_AT = "mlops.retrain.last_request_champion_promoted_at"
TAG_HANDLED_REQUEST_ID = "mlops.retrain.handled_request_id"
TAG_HANDLED_AT = "mlops.retrain.handled_at"

LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae", "mse", "brier"})

#: The defaults of every policy key (documented in docs/monitoring.md).
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


def parse_duration(value: Any, *, key: str = "duration") -> timedelta | None:
    """``timedelta`` from a timedelta, a number of days, ``"30d"``/``"12h"``/``"1d12h"``/``"90m"``/
    ``"2w"``/``"45s"`` or ISO 8601 (``"P30D"``, ``"PT12H"``); ``None``/``""`` -> ``None``.

    Raises:
        RetrainPolicyError: anything else, or a negative duration.
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
        text = value.strip()
        iso = _ISO_DURATION.match(text)
        if iso and any(iso.groupdict().values()):
            seconds = sum(float(v) * _UNIT[k] for k, v in iso.groupdict().items() if v)
            out = timedelta(seconds=seconds)
        elif _COMPOUND.fullmatch(text.replace(" ", "")):
            seconds = sum(
                float(num) * _UNIT[unit.lower()]
                for num, unit in _DURATION.findall(text.replace(" ", ""))
            )
            out = timedelta(seconds=seconds)
        else:
            try:
                out = timedelta(days=float(text))
            except ValueError:
                raise RetrainPolicyError(
                    f"{key}: cannot read {value!r} as a duration (use e.g. '7d', '12h', "
                    "'1d12h', 'P7D' or a number of days)"
                ) from None
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


def _days(value: timedelta) -> str:
    days = value.total_seconds() / 86400
    return f"{days:.1f} days"


def parse_time(value: Any) -> datetime | None:
    """An aware UTC datetime from a datetime, ISO string or epoch milliseconds; else ``None``."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        out = value
    elif isinstance(value, date):
        out = datetime(value.year, value.month, value.day)
    elif isinstance(value, (int, float)):
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
    if out.tzinfo is None:
        out = out.replace(tzinfo=timezone.utc)
    return out.astimezone(timezone.utc)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(timezone.utc).isoformat()


# --------------------------------------------------------------------------- policy


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


def _flatten_sections(policy: Mapping[str, Any]) -> dict[str, Any]:
    flat = {k: v for k, v in policy.items() if k not in POLICY_SECTIONS}
    for section, keys in POLICY_SECTIONS.items():
        if section not in policy or policy[section] is None:
            continue
        body = policy[section]
        if isinstance(body, bool):
            body = {"enabled": body}
        if not isinstance(body, Mapping):
            raise RetrainPolicyError(f"policy section {section!r} must be a dict, got {body!r}")
        unknown = sorted(set(body) - {*keys, "enabled"})
        if unknown:
            raise RetrainPolicyError(
                f"unknown key(s) {unknown} in policy section {section!r}; "
                f"known: {[*keys, 'enabled']}"
            )
        values = {k: v for k, v in body.items() if k != "enabled"}
        enabled = body.get("enabled", True)
        if isinstance(enabled, str):
            enabled = enabled.strip().lower() not in ("false", "0", "no", "off", "")
        if not enabled:
            values = dict(_SECTION_OFF[section])
        both = sorted(set(values) & set(flat))
        if both:
            raise RetrainPolicyError(
                f"policy key(s) {both} given both at the top level and in section {section!r}"
            )
        flat.update(values)
    return flat


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

        Raises:
            RetrainPolicyError: an unknown key or an invalid value.
        """
        if policy is None or policy == "":
            policy = {}
        if isinstance(policy, str):
            try:
                policy = json.loads(policy)
            except json.JSONDecodeError as err:
                raise RetrainPolicyError(f"policy is not a dict nor JSON text: {err}") from err
        if not isinstance(policy, Mapping):
            raise RetrainPolicyError(f"policy must be a dict, got {type(policy).__name__}")
        policy = _flatten_sections(policy)
        unknown = sorted(set(policy) - set(DEFAULT_POLICY))
        if unknown:
            raise RetrainPolicyError(
                f"unknown policy key(s) {unknown}; known keys: {sorted(DEFAULT_POLICY)} "
                f"or the sections {sorted(POLICY_SECTIONS)}"
            )
        merged = {**DEFAULT_POLICY, **policy}

        def number(key: str) -> float | None:
            value = merged[key]
            if value is None or value == "":
                return None
            try:
                out = float(value)
            except (TypeError, ValueError):
                raise RetrainPolicyError(f"{key}: expected a number, got {value!r}") from None
            if not math.isfinite(out):
                raise RetrainPolicyError(f"{key}: expected a finite number, got {value!r}")
            return out

        def flag(key: str) -> bool:
            value = merged[key]
            if isinstance(value, str):
                if value.strip().lower() in ("true", "1", "yes", "on"):
                    return True
                if value.strip().lower() in ("false", "0", "no", "off", ""):
                    return False
                raise RetrainPolicyError(f"{key}: expected true/false, got {value!r}")
            return bool(value)

        critical = merged["critical_features"] or []
        if isinstance(critical, str):
            critical = [c.strip() for c in critical.split(",") if c.strip()]
        if not isinstance(critical, (list, tuple)) or not all(isinstance(c, str) for c in critical):
            raise RetrainPolicyError(
                f"critical_features: expected a list of column names, got {critical!r}"
            )
        min_new = number("min_new_labels")
        if min_new is not None and min_new < 1:
            raise RetrainPolicyError(
                f"min_new_labels must be >= 1, got {merged['min_new_labels']!r}"
            )
        for key in ("max_degradation", "max_relative_degradation"):
            value = number(key)
            if value is not None and value < 0:
                raise RetrainPolicyError(f"{key} must be >= 0, got {value}")
        metric = merged["metric"]
        if metric is not None and not isinstance(metric, str):
            raise RetrainPolicyError(f"metric: expected a metric name, got {metric!r}")
        return cls(
            dataset_drift=flag("dataset_drift"),
            critical_features=tuple(critical),
            metric=metric or None,
            min_metric=number("min_metric"),
            max_metric=number("max_metric"),
            max_degradation=number("max_degradation"),
            max_relative_degradation=number("max_relative_degradation"),
            min_new_labels=None if min_new is None else int(min_new),
            max_model_age=parse_duration(merged["max_model_age"], key="max_model_age"),
            cooldown=parse_duration(merged["cooldown"], key="cooldown"),
            deduplicate=flag("deduplicate"),
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


# --------------------------------------------------------------------------- state


@dataclass(frozen=True)
class ChampionInfo:
    """The current alias holder, as far as the retraining policy is concerned."""

    name: str
    version: str
    promoted_at: datetime | None = None
    created_at: datetime | None = None
    training_data_end: datetime | None = None
    run_id: str | None = None

    @property
    def since(self) -> datetime | None:
        """When it became champion: ``mlops.promoted_at``, else the version's creation time."""
        return self.promoted_at or self.created_at

    @property
    def training_cutoff(self) -> datetime | None:
        """End of its training data (else its promotion/creation time, an upper bound)."""
        return self.training_data_end or self.promoted_at or self.created_at

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "promoted_at": _iso(self.promoted_at),
            "created_at": _iso(self.created_at),
            "training_data_end": _iso(self.training_data_end),
            "run_id": self.run_id,
        }


@dataclass(frozen=True)
class RequestState:
    """The last retrain request of a registered model (from its ``mlops.retrain.*`` tags).

    ``champion_version`` and ``champion_promoted_at`` describe the champion when the request was
    made; ``handled_request_id`` is the request the training pipeline marked handled (its
    candidate promoted or rejected, see :func:`mark_request_handled`).
    """

    last_request_at: datetime | None = None
    reasons: tuple[str, ...] = ()
    champion_version: str | None = None
    request_id: str | None = None
    champion_promoted_at: str | None = None
    handled_request_id: str | None = None
    handled_at: datetime | None = None

    @property
    def handled(self) -> bool:
        """The last request was marked handled by the training pipeline."""
        return bool(
            self.last_request_at is not None
            and self.handled_request_id is not None
            and self.handled_request_id == (self.request_id or "")
        )

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> RequestState:
        reasons: tuple[str, ...] = ()
        raw = tags.get(TAG_LAST_REQUEST_REASONS)
        if raw:
            try:
                parsed = json.loads(raw)
                reasons = tuple(str(r) for r in parsed) if isinstance(parsed, list) else (raw,)
            except json.JSONDecodeError:
                reasons = (raw,)
        handled = tags.get(TAG_HANDLED_REQUEST_ID)
        return cls(
            last_request_at=parse_time(tags.get(TAG_LAST_REQUEST_AT)),
            reasons=reasons,
            champion_version=tags.get(TAG_LAST_REQUEST_CHAMPION) or None,
            request_id=tags.get(TAG_LAST_REQUEST_ID) or None,
            champion_promoted_at=tags.get(TAG_LAST_REQUEST_CHAMPION_PROMOTED_AT) or None,
            handled_request_id=handled if handled is not None else None,
            handled_at=parse_time(tags.get(TAG_HANDLED_AT)),
        )

    def to_tags(self) -> dict[str, str]:
        """The tags of a new request (handling tags are written by mark_request_handled)."""
        reasons = list(self.reasons)
        text = json.dumps(reasons)
        while len(text) > 4900 and reasons:  # registry tag values are limited in size
            reasons = reasons[:-1]
            text = json.dumps([*reasons, "..."])
        return {
            TAG_LAST_REQUEST_AT: _iso(self.last_request_at) or "",
            TAG_LAST_REQUEST_REASONS: text,
            TAG_LAST_REQUEST_CHAMPION: self.champion_version or "",
            TAG_LAST_REQUEST_CHAMPION_PROMOTED_AT: self.champion_promoted_at or "",
            TAG_LAST_REQUEST_ID: self.request_id or "",
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "last_request_at": _iso(self.last_request_at),
            "reasons": list(self.reasons),
            "champion_version": self.champion_version,
            "request_id": self.request_id,
            "handled": self.handled,
            "handled_at": _iso(self.handled_at),
        }


def is_request_open(
    state: RequestState | None,
    champion: ChampionInfo | None,
    *,
    now: datetime | None = None,
    expiry: timedelta | None = None,
) -> bool:
    """Whether the last request still waits for a new champion.

    Closed when there is no request; when the training pipeline marked it handled; when the
    request is older than ``expiry``; or when a promotion happened after it: the champion is
    not the version recorded with the request, or the same version was promoted again (its
    ``mlops.promoted_at`` tag changed). These comparisons need no common clock between the
    monitoring and the registry. A state without the recorded champion (written by another
    tool) falls back to comparing the promotion (or creation) time with the request time.
    """
    if state is None or state.last_request_at is None:
        return False
    if state.handled:
        return False
    if expiry is not None and now is not None and now - state.last_request_at >= expiry:
        return False
    if champion is None:
        return True
    if state.champion_version is not None:
        if champion.version != state.champion_version:
            return False
        if state.champion_promoted_at and champion.promoted_at is not None:
            return parse_time(state.champion_promoted_at) == champion.promoted_at
        return True
    since = champion.promoted_at or champion.created_at
    return not (since is not None and since > state.last_request_at)


# --------------------------------------------------------------------------- evaluations


@dataclass
class PolicyEvaluation:
    """Outcome of one policy: whether it could be evaluated, whether it triggered, and why."""

    policy: str
    evaluated: bool
    triggered: bool = False
    reasons: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "evaluated": self.evaluated,
            "triggered": self.triggered,
            "reasons": list(self.reasons),
            "note": self.note,
            "details": self.details,
        }


def _as_results(value: Any, what: str) -> list[Mapping[str, Any]]:
    if value is None:
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise RetrainPolicyError(f"{what}: expected a dict (an XCom), got text: {err}") from err
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, Sequence):
        items = [v for v in value if v is not None]
        if all(isinstance(v, Mapping) for v in items):
            return list(items)
    raise RetrainPolicyError(f"{what}: expected a dict or a list of dicts, got {value!r:.200}")


def evaluate_drift(policy: RetrainPolicy, drift: Any) -> PolicyEvaluation:
    """Drift policy over one or more DriftDetectionOperator results."""
    results = _as_results(drift, "drift")
    if not results:
        return PolicyEvaluation("drift", False, note="no drift result given")
    ev = PolicyEvaluation("drift", True)
    seen: set[str] = set()
    drifted_critical: list[str] = []
    for i, res in enumerate(results):
        if "dataset_drift" not in res:
            raise RetrainPolicyError(
                f"drift[{i}] is not a DriftDetectionOperator result (no 'dataset_drift' key): "
                f"keys {sorted(res)}"
            )
        columns = res.get("columns") or {}
        seen.update(columns)
        source = res.get("reference") or f"drift[{i}]"
        share = float(res.get("drift_share") or 0.0)
        n_drifted, n_cols = res.get("n_drifted"), len(columns) or res.get("n_columns")
        if policy.dataset_drift and res.get("dataset_drift"):
            limit = res.get("drift_share_threshold")
            limit_text = f" >= {float(limit):g}" if limit is not None else ""
            ev.reasons.append(
                f"dataset drift: {n_drifted} of {n_cols} columns drifted "
                f"(share {share:.2f}{limit_text}) against {source}"
            )
        for name in policy.critical_features:
            if (columns.get(name) or {}).get("drifted") and name not in drifted_critical:
                drifted_critical.append(name)
        ev.details.setdefault("results", []).append(
            {
                "reference": source,
                "dataset_drift": bool(res.get("dataset_drift")),
                "drift_share": round(share, 6),
                "drifted_columns": [c for c, v in columns.items() if (v or {}).get("drifted")],
            }
        )
    if drifted_critical:
        scores = []
        for name in drifted_critical:
            for res in results:
                col = (res.get("columns") or {}).get(name)
                if col and col.get("drifted"):
                    score = col.get("score")
                    method = col.get("method")
                    scores.append(
                        f"{name} ({method} {score:.4g})"
                        if isinstance(score, (int, float))
                        else name
                    )
                    break
        ev.reasons.append(f"critical feature drift: {', '.join(scores)}")
    unchecked = [c for c in policy.critical_features if c not in seen]
    if unchecked:
        ev.note = f"critical feature(s) not in any drift result: {unchecked}"
    ev.details["critical_features_drifted"] = drifted_critical
    ev.triggered = bool(ev.reasons)
    return ev


def evaluate_performance(policy: RetrainPolicy, performance: Any) -> PolicyEvaluation:
    """Performance policy over one or more ModelPerformanceOperator results."""
    results = _as_results(performance, "performance")
    if not results:
        return PolicyEvaluation("performance", False, note="no performance result given")
    ev = PolicyEvaluation("performance", True)
    notes = []
    for i, res in enumerate(results):
        if "status" not in res or "metrics" not in res:
            raise RetrainPolicyError(
                f"performance[{i}] is not a ModelPerformanceOperator result (needs 'status' and "
                f"'metrics'): keys {sorted(res)}"
            )
        metric = policy.metric or res.get("primary_metric") or "roc_auc"
        version = res.get("model_version")
        who = f"v{version} " if version else ""
        detail: dict[str, Any] = {
            "status": res.get("status"),
            "metric": metric,
            "model_version": version,
            "labelled_rows": res.get("labelled_rows"),
        }
        ev.details.setdefault("results", []).append(detail)
        if res.get("status") == "insufficient_data":
            notes.append(
                f"{who}insufficient data ({res.get('labelled_rows', 0)} labelled rows, "
                f"min {res.get('min_labels')}): not evaluated"
            )
            continue
        value = (res.get("metrics") or {}).get(metric)
        degr = (res.get("degradation") or {}).get(metric) or {}
        base = (res.get("baseline") or {}).get(metric)
        detail.update({"value": value, "baseline": base, "degradation": degr})
        if value is None:
            notes.append(f"{who}{metric} not available")
            continue
        lower_better = metric in LOWER_IS_BETTER
        if not lower_better and policy.min_metric is not None and value < policy.min_metric:
            ev.reasons.append(
                f"performance: {who}{metric} {value:.4f} < min_metric {policy.min_metric:g}"
            )
        if lower_better and policy.max_metric is not None and value > policy.max_metric:
            ev.reasons.append(
                f"performance: {who}{metric} {value:.4f} > max_metric {policy.max_metric:g}"
            )
        d_abs, d_rel = degr.get("abs"), degr.get("rel")
        base_text = f" from baseline {base:.4f}" if isinstance(base, (int, float)) else ""
        if (
            policy.max_degradation is not None
            and d_abs is not None
            and d_abs > policy.max_degradation
        ):
            rel = f" ({d_rel:.1%})" if d_rel is not None else ""
            ev.reasons.append(
                f"performance: {who}{metric} {value:.4f} degraded by {d_abs:.4f}{rel}{base_text} "
                f"> max_degradation {policy.max_degradation:g}"
            )
        elif (
            policy.max_relative_degradation is not None
            and d_rel is not None
            and d_rel > policy.max_relative_degradation
        ):
            ev.reasons.append(
                f"performance: {who}{metric} {value:.4f} degraded by {d_rel:.1%}{base_text} "
                f"> max_relative_degradation {policy.max_relative_degradation:.1%}"
            )
    if notes:
        ev.note = "; ".join(notes)
    ev.triggered = bool(ev.reasons)
    return ev


def evaluate_data_volume(
    policy: RetrainPolicy, new_labels: int | None, champion: ChampionInfo | None
) -> PolicyEvaluation:
    """Data-volume policy: enough new labelled rows since the champion's training data."""
    if policy.min_new_labels is None:
        return PolicyEvaluation("data_volume", False, note="min_new_labels not set")
    if new_labels is None:
        why = "no champion" if champion is None else "labels_data not given or no training cutoff"
        return PolicyEvaluation("data_volume", False, note=f"new labels not counted ({why})")
    cutoff = champion.training_cutoff if champion else None
    ev = PolicyEvaluation(
        "data_volume",
        True,
        details={"new_labels": int(new_labels), "since": _iso(cutoff)},
    )
    if new_labels >= policy.min_new_labels:
        who = f"champion v{champion.version}'s" if champion else "the champion's"
        ev.reasons.append(
            f"data volume: {new_labels:,} new labelled rows since {who} training data "
            f"(>= min_new_labels {policy.min_new_labels:,})"
        )
        ev.triggered = True
    return ev


def evaluate_age(
    policy: RetrainPolicy, champion: ChampionInfo | None, now: datetime
) -> PolicyEvaluation:
    """Age policy: the champion has been champion for longer than ``max_model_age``."""
    if policy.max_model_age is None:
        return PolicyEvaluation("age", False, note="max_model_age not set")
    if champion is None or champion.since is None:
        return PolicyEvaluation("age", False, note="no champion (or no promotion time)")
    age = now - champion.since
    ev = PolicyEvaluation(
        "age",
        True,
        details={"age_days": round(age.total_seconds() / 86400, 3), "since": _iso(champion.since)},
    )
    if age < timedelta(0):
        ev.note = (
            f"the champion's promotion time {_iso(champion.since)} is after the decision time "
            f"{_iso(now)} (different clocks?); age taken as 0"
        )
        return ev
    if age > policy.max_model_age:
        ev.reasons.append(
            f"age: champion v{champion.version} is {_days(age)} old "
            f"(> max_model_age {format_duration(policy.max_model_age)})"
        )
        ev.triggered = True
    return ev


# --------------------------------------------------------------------------- decision


@dataclass
class RetrainDecision:
    """The decision and everything that led to it."""

    retrain: bool
    triggered: bool
    reasons: list[str]
    suppressed_by: str | None
    suppression: str | None
    evaluations: list[PolicyEvaluation]
    decided_at: datetime
    request_open: bool
    policy: RetrainPolicy
    champion: ChampionInfo | None = None
    state: RequestState | None = None
    request_id: str | None = None
    retry_of_request: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable form (the decision operator's XCom)."""
        return {
            "retrain": self.retrain,
            "triggered": self.triggered,
            "reasons": list(self.reasons),
            "suppressed_by": self.suppressed_by,
            "suppression": self.suppression,
            "evaluations": {e.policy: e.to_dict() for e in self.evaluations},
            "decided_at": _iso(self.decided_at),
            "request_open": self.request_open,
            "retry_of_request": self.retry_of_request,
            "request_id": self.request_id,
            "champion": self.champion.to_dict() if self.champion else None,
            "last_request": self.state.to_dict() if self.state else None,
            "policy": self.policy.to_dict(),
        }


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def decide(
    policy: RetrainPolicy | Mapping[str, Any] | None = None,
    *,
    drift: Any = None,
    performance: Any = None,
    new_labels: int | None = None,
    champion: ChampionInfo | None = None,
    state: RequestState | None = None,
    now: datetime | None = None,
    clock: Callable[[], datetime] = _utcnow,
    request_id: str | None = None,
) -> RetrainDecision:
    """Evaluate every policy, combine the reasons, then apply cooldown and de-duplication.

    Args:
        policy: a :class:`RetrainPolicy` or a policy dict.
        drift: DriftDetectionOperator result(s).
        performance: ModelPerformanceOperator result(s).
        new_labels: labelled rows since the champion's training data (``None``: not counted).
        champion: the current alias holder (``None``: no champion yet).
        state: the last request (from the registered model's tags).
        now: the decision time (default ``clock()``).
        clock: the time source when ``now`` is not given.
        request_id: identity of this decision's run; a recorded request with the same id is a
            retry of this very request and is not suppressed by itself.
    """
    if not isinstance(policy, RetrainPolicy):
        policy = RetrainPolicy.from_dict(policy)
    now = now or clock()
    if now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    evaluations = [
        evaluate_drift(policy, drift),
        evaluate_performance(policy, performance),
        evaluate_data_volume(policy, new_labels, champion),
        evaluate_age(policy, champion, now),
    ]
    reasons = [r for e in evaluations for r in e.reasons]
    triggered = bool(reasons)
    request_open = is_request_open(state, champion, now=now, expiry=policy.request_expiry)
    retry = bool(
        request_id and state is not None and state.request_id == request_id and request_open
    )
    suppressed_by: str | None = None
    suppression: str | None = None
    if triggered and not retry and state is not None and state.last_request_at is not None:
        since_last = now - state.last_request_at
        if policy.cooldown is not None and since_last < policy.cooldown:
            suppressed_by = "cooldown"
            suppression = (
                f"the last request was {_days(since_last)} ago "
                f"({_iso(state.last_request_at)}), within the cooldown of "
                f"{format_duration(policy.cooldown)}"
            )
        elif policy.deduplicate and request_open:
            suppressed_by = "open_request"
            suppression = (
                f"the request of {_iso(state.last_request_at)} is still open: no new champion "
                f"has been promoted since (champion v{champion.version if champion else '-'})"
            )
    return RetrainDecision(
        retrain=triggered and suppressed_by is None,
        triggered=triggered,
        reasons=reasons,
        suppressed_by=suppressed_by,
        suppression=suppression,
        evaluations=evaluations,
        decided_at=now,
        request_open=request_open,
        policy=policy,
        champion=champion,
        state=state,
        request_id=request_id,
        retry_of_request=retry,
    )


# --------------------------------------------------------------------------- MLflow state


def read_champion(client: MlflowClient, name: str, alias: str = "champion") -> ChampionInfo | None:
    """The alias holder (``None`` when the alias is not set).

    Raises:
        RetrainPolicyError: the registered model does not exist.
    """
    from mlflow.exceptions import MlflowException

    _require_model(client, name)
    try:
        mv = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None
    tags = dict(mv.tags or {})
    training_end = next((parse_time(tags[t]) for t in TRAINING_END_TAGS if tags.get(t)), None)
    if training_end is None and mv.run_id:
        try:
            run_tags = client.get_run(mv.run_id).data.tags
        except MlflowException:
            run_tags = {}
        training_end = next(
            (parse_time(run_tags[t]) for t in TRAINING_END_TAGS if run_tags.get(t)), None
        )
    created = (
        datetime.fromtimestamp(int(mv.creation_timestamp) / 1000.0, tz=timezone.utc)
        if mv.creation_timestamp
        else None
    )
    return ChampionInfo(
        name=name,
        version=str(mv.version),
        promoted_at=parse_time(tags.get(PROMOTED_AT_TAG)),
        created_at=created,
        training_data_end=training_end,
        run_id=mv.run_id or None,
    )


def _require_model(client: MlflowClient, name: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as err:
        raise RetrainPolicyError(
            f"registered model {name!r} does not exist in the registry: {err.message}"
        ) from err


def read_request_state(client: MlflowClient, name: str) -> RequestState:
    """The last request recorded on the registered model."""
    model = _require_model(client, name)
    return RequestState.from_tags(dict(model.tags or {}))


def record_request(
    client: MlflowClient,
    name: str,
    *,
    reasons: Sequence[str],
    at: datetime,
    champion: ChampionInfo | None,
    request_id: str | None,
) -> RequestState:
    """Store a retrain request as registered-model tags; returns the new state."""
    state = RequestState(
        last_request_at=at,
        reasons=tuple(reasons),
        champion_version=champion.version if champion else None,
        request_id=request_id,
        champion_promoted_at=_iso(champion.promoted_at) if champion else None,
    )
    for key, value in state.to_tags().items():
        client.set_registered_model_tag(name, key, value)
    log.info("Recorded retrain request for %s at %s: %s", name, _iso(at), list(reasons))
    return state


def mark_request_handled(
    client: MlflowClient,
    name: str,
    *,
    handled_at: datetime | str | None = None,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Close the last retrain request: its retraining finished (promoted or rejected).

    The training pipeline calls this at its end so that monitoring may request again without
    waiting for ``request_expiry`` when the candidate was rejected. With ``request_id`` (the
    ``request_id`` of the triggering asset event's ``extra``), a newer request recorded in the
    meantime is left open.

    Returns:
        ``{"handled": bool, "request_id", "last_request_at", "handled_at", "reason"}``.

    Raises:
        RetrainPolicyError: the registered model does not exist.
    """
    state = read_request_state(client, name)
    when = parse_time(handled_at) or _utcnow()
    out: dict[str, Any] = {
        "handled": False,
        "request_id": state.request_id,
        "last_request_at": _iso(state.last_request_at),
        "handled_at": None,
        "reason": None,
    }
    if state.last_request_at is None:
        out["reason"] = "no retrain request recorded"
        return out
    if request_id is not None and request_id != state.request_id:
        out["reason"] = f"the last request is {state.request_id!r}, not {request_id!r}: left open"
        return out
    client.set_registered_model_tag(name, TAG_HANDLED_REQUEST_ID, state.request_id or "")
    client.set_registered_model_tag(name, TAG_HANDLED_AT, _iso(when) or "")
    log.info("Marked retrain request %s of %s handled at %s", state.request_id, name, _iso(when))
    out.update({"handled": True, "handled_at": _iso(when)})
    return out


def record_retrain_request(
    client: MlflowClient,
    name: str,
    *,
    alias: str = "champion",
    reasons: Sequence[str],
    at: datetime,
    request_id: str | None,
    record: bool = True,
) -> tuple[RequestState | None, str | None]:
    """Record a request against the current champion; returns ``(state, champion version)``.

    Raises:
        RetrainPolicyError: the registered model does not exist.
    """
    champion = read_champion(client, name, alias)
    version = champion.version if champion else None
    state = None
    if record:
        state = record_request(
            client,
            name,
            reasons=reasons,
            at=at,
            champion=champion,
            request_id=request_id,
        )
    return state, version


def count_new_labels(
    labels_data: str,
    *,
    since: datetime,
    until: datetime,
    target: str = "churned",
    label_time_column: str = "event_timestamp",
    label_available_column: str = "label_available_at",
    conn_id: str | None = None,
) -> int:
    """Labelled rows for events at or after ``since`` that were available by ``until``.

    Reads only the label partitions ``dt`` in ``[since's day, until's day]`` (partitions are
    keyed by arrival day, which is never before the event) and only the needed columns.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    from mlops_provider.core import io
    from mlops_provider.core.monitoring import list_partitions

    partitions = list_partitions(labels_data, conn_id=conn_id)
    if partitions:
        uris = [u for d, u in partitions.items() if since.date() <= d <= until.date()]
    elif io.exists(labels_data, conn_id=conn_id):
        uris = [labels_data]
    else:
        raise RetrainPolicyError(f"labels_data {labels_data} does not exist")
    total = 0
    since_ts = pa.scalar(since.astimezone(timezone.utc), type=pa.timestamp("us", tz="UTC"))
    until_ts = pa.scalar(until.astimezone(timezone.utc), type=pa.timestamp("us", tz="UTC"))
    for uri in uris:
        try:
            schema = io.open_dataset(uri, conn_id=conn_id).schema
        except io.DatasetEmpty:
            continue
        cols = [c for c in (target, label_time_column, label_available_column) if c in schema.names]
        if target not in cols or label_time_column not in cols:
            raise RetrainPolicyError(
                f"labels {uri} need columns {target!r} and {label_time_column!r} "
                f"(columns: {schema.names})"
            )
        table = io.read_table(uri, columns=cols, conn_id=conn_id)
        if table.num_rows == 0:
            continue
        mask = pc.is_valid(table[target])
        event = pc.cast(table[label_time_column], pa.timestamp("us", tz="UTC"))
        mask = pc.and_(mask, pc.greater_equal(event, since_ts))
        if label_available_column in cols:
            available = pc.cast(table[label_available_column], pa.timestamp("us", tz="UTC"))
            mask = pc.and_(mask, pc.less_equal(available, until_ts))
        total += int(pc.sum(pc.cast(pc.fill_null(mask, False), pa.int64())).as_py() or 0)
    return total


def run_retrain_decision(
    client: MlflowClient,
    registered_model_name: str,
    *,
    alias: str = "champion",
    policy: RetrainPolicy | Mapping[str, Any] | str | None = None,
    drift: Any = None,
    performance: Any = None,
    labels_data: str | None = None,
    target: str = "churned",
    now: datetime | None = None,
    request_id: str | None = None,
    record: bool = True,
    conn_id: str | None = None,
) -> RetrainDecision:
    """Read the champion and the request state, decide, and record the request if retraining.

    Args:
        client: MLflow client of the registry holding the model.
        registered_model_name, alias: the model whose champion may be retrained.
        policy: policy dict (see :data:`DEFAULT_POLICY`).
        drift, performance: the monitoring results.
        labels_data: base URI of label partitions, for the data-volume policy.
        now: decision time (default: now, UTC).
        request_id: identity of the deciding run (see :func:`decide`).
        record: store the request in the registry when retraining is decided.
        conn_id: connection for a remote ``labels_data``.

    Raises:
        RetrainPolicyError: invalid policy or inputs, unknown registered model.
    """
    if not isinstance(policy, RetrainPolicy):
        policy = RetrainPolicy.from_dict(policy)
    now = now or _utcnow()
    champion = read_champion(client, registered_model_name, alias)
    state = read_request_state(client, registered_model_name)
    new_labels: int | None = None
    if policy.min_new_labels is not None and labels_data and champion is not None:
        cutoff = champion.training_cutoff
        if cutoff is not None:
            new_labels = count_new_labels(
                labels_data, since=cutoff, until=now, target=target, conn_id=conn_id
            )
    decision = decide(
        policy,
        drift=drift,
        performance=performance,
        new_labels=new_labels,
        champion=champion,
        state=state,
        now=now,
        request_id=request_id,
    )
    if decision.retrain and record:
        record_request(
            client,
            registered_model_name,
            reasons=decision.reasons,
            at=now,
            champion=champion,
            request_id=request_id,
        )
    log.info(
        "Retrain decision for %s: retrain=%s triggered=%s suppressed_by=%s reasons=%s",
        registered_model_name,
        decision.retrain,
        decision.triggered,
        decision.suppressed_by,
        decision.reasons,
    )
    return decision
