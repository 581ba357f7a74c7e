"""The four policies, each a pure function of the policy and its input.

* **drift**: the dataset drifted (``dataset_drift``), or any of the ``critical_features``
  drifted, in one or more DriftDetectionOperator results;
* **performance**: the monitored metric is worse than ``min_metric`` / ``max_metric`` (by the
  metric's direction, :mod:`mlops_provider.core.metrics`), or degraded from its baseline by
  more than ``max_degradation`` (absolute) or ``max_relative_degradation`` (relative), in one
  or more ModelPerformanceOperator results; ``insufficient_data`` never triggers;
* **data volume**: at least ``min_new_labels`` labelled rows since the champion's training data;
* **age**: the champion is older than ``max_model_age``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from mlops_provider.core.metrics import degradation, higher_is_better, primary_metric
from mlops_provider.core.params import parse_text
from mlops_provider.core.retraining.policy import (
    RetrainPolicy,
    RetrainPolicyError,
    days_text,
    format_duration,
)
from mlops_provider.core.retraining.state import ChampionInfo
from mlops_provider.core.times import iso

__all__ = [
    "PolicyEvaluation",
    "describe_gain",
    "evaluate_age",
    "evaluate_data_volume",
    "evaluate_drift",
    "evaluate_performance",
]


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
    """One or more operator results (a dict, a list of dicts, or their JSON/literal text)."""
    if value is None:
        return []
    if isinstance(value, str):
        value = parse_text(value)
        if isinstance(value, str):
            raise RetrainPolicyError(f"{what}: expected a dict (an XCom), got text {value!r:.200}")
    if isinstance(value, Mapping):
        return [value]
    if isinstance(value, Sequence):
        items = [v for v in value if v is not None]
        if all(isinstance(v, Mapping) for v in items):
            return list(items)
    raise RetrainPolicyError(f"{what}: expected a dict or a list of dicts, got {value!r:.200}")


# --------------------------------------------------------------------------- drift


def _drift_of(policy: RetrainPolicy, res: Mapping[str, Any], i: int, ev: PolicyEvaluation) -> None:
    if "dataset_drift" not in res:
        raise RetrainPolicyError(
            f"drift[{i}] is not a DriftDetectionOperator result (no 'dataset_drift' key): "
            f"keys {sorted(res)}"
        )
    columns = res.get("columns") or {}
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
    ev.details.setdefault("results", []).append(
        {
            "reference": source,
            "dataset_drift": bool(res.get("dataset_drift")),
            "drift_share": round(share, 6),
            "drifted_columns": [c for c, v in columns.items() if (v or {}).get("drifted")],
        }
    )


def _critical_drift(
    names: Sequence[str], results: Sequence[Mapping[str, Any]]
) -> tuple[list[str], list[str]]:
    """``(drifted critical columns, their descriptions)``: the first result where each drifted."""
    drifted, described = [], []
    for name in names:
        for res in results:
            col = (res.get("columns") or {}).get(name)
            if col and col.get("drifted"):
                score = col.get("score")
                drifted.append(name)
                described.append(
                    f"{name} ({col.get('method')} {score:.4g})"
                    if isinstance(score, (int, float))
                    else name
                )
                break
    return drifted, described


def evaluate_drift(policy: RetrainPolicy, drift: Any) -> PolicyEvaluation:
    """Drift policy over one or more DriftDetectionOperator results."""
    results = _as_results(drift, "drift")
    if not results:
        return PolicyEvaluation("drift", False, note="no drift result given")
    ev = PolicyEvaluation("drift", True)
    for i, res in enumerate(results):
        _drift_of(policy, res, i, ev)
    drifted, described = _critical_drift(policy.critical_features, results)
    if drifted:
        ev.reasons.append(f"critical feature drift: {', '.join(described)}")
    seen = {c for res in results for c in (res.get("columns") or {})}
    unchecked = [c for c in policy.critical_features if c not in seen]
    if unchecked:
        ev.note = f"critical feature(s) not in any drift result: {unchecked}"
    ev.details["critical_features_drifted"] = drifted
    ev.triggered = bool(ev.reasons)
    return ev


# --------------------------------------------------------------------------- performance


def _metric_of(policy: RetrainPolicy, res: Mapping[str, Any]) -> str:
    if policy.metric:
        return policy.metric
    if res.get("primary_metric"):
        return str(res["primary_metric"])
    return primary_metric(res.get("problem_type") or res.get("task") or "classification")


def _degradation_of(res: Mapping[str, Any], metric: str, value: float) -> dict[str, Any]:
    """The result's degradation of ``metric``, else computed from its baseline."""
    given = (res.get("degradation") or {}).get(metric)
    if given:
        return dict(given)
    base = (res.get("baseline") or {}).get(metric)
    return degradation({metric: value}, {metric: base}, [metric])[metric]


def _threshold_reasons(policy: RetrainPolicy, who: str, metric: str, value: float) -> list[str]:
    if higher_is_better(metric):
        if policy.min_metric is not None and value < policy.min_metric:
            return [f"performance: {who}{metric} {value:.4f} < min_metric {policy.min_metric:g}"]
    elif policy.max_metric is not None and value > policy.max_metric:
        return [f"performance: {who}{metric} {value:.4f} > max_metric {policy.max_metric:g}"]
    return []


def _degradation_reasons(
    policy: RetrainPolicy, who: str, metric: str, value: float, base: Any, degr: Mapping
) -> list[str]:
    d_abs, d_rel = degr.get("abs"), degr.get("rel")
    base_text = f" from baseline {base:.4f}" if isinstance(base, (int, float)) else ""
    head = f"performance: {who}{metric} {value:.4f} degraded by"
    if policy.max_degradation is not None and d_abs is not None and d_abs > policy.max_degradation:
        rel = f" ({d_rel:.1%})" if d_rel is not None else ""
        return [f"{head} {d_abs:.4f}{rel}{base_text} > max_degradation {policy.max_degradation:g}"]
    limit = policy.max_relative_degradation
    if limit is not None and d_rel is not None and d_rel > limit:
        return [f"{head} {d_rel:.1%}{base_text} > max_relative_degradation {limit:.1%}"]
    return []


def describe_gain(res: Mapping[str, Any], metric: str) -> list[str]:
    """One sentence per earlier champion a performance result compared with (docs/retraining.md):
    ``"v3 over v1 (first_champion): roc_auc +0.1712 on 1,234 matured rows of 2026-01-15"``."""
    comparison = res.get("comparison") or {}
    days = comparison.get("days") or []
    span = f" of {days[0]}" + (f"..{days[-1]}" if len(days) > 1 else "") if days else ""
    roles: dict[str, list[str]] = {}  # one sentence per version (it may hold both roles)
    for cf in res.get("counterfactuals") or []:
        roles.setdefault(str(cf.get("version")), []).append(str(cf.get("role")))
    out = []
    for version, names in roles.items():
        cf = next(c for c in res["counterfactuals"] if str(c.get("version")) == version)
        value = (cf.get("gain") or {}).get(metric)
        if value is None:
            continue
        out.append(
            f"v{comparison.get('model_version')} over v{version} ({', '.join(names)}): "
            f"{metric} {value:+.4f} on {cf.get('rows') or 0:,} matured rows{span}"
        )
    return out


def _performance_of(
    policy: RetrainPolicy, res: Mapping[str, Any], i: int, ev: PolicyEvaluation
) -> str | None:
    """Add the reasons of one result to ``ev``; returns a note when it could not be checked."""
    if "status" not in res or "metrics" not in res:
        raise RetrainPolicyError(
            f"performance[{i}] is not a ModelPerformanceOperator result (needs 'status' and "
            f"'metrics'): keys {sorted(res)}"
        )
    metric = _metric_of(policy, res)
    version = res.get("model_version") or (res.get("model") or {}).get("version")
    who = f"v{version} " if version else ""
    rows = res.get("labelled_rows", res.get("rows"))
    detail: dict[str, Any] = {
        "status": res.get("status"),
        "metric": metric,
        "model_version": version,
        "labelled_rows": rows,
    }
    if res.get("counterfactuals"):
        detail["gain"] = {c["role"]: c.get("gain") for c in res["counterfactuals"]}
        detail["rows_digest"] = (res.get("comparison") or {}).get("rows_digest")
        ev.details.setdefault("gain", []).extend(describe_gain(res, metric))
    ev.details.setdefault("results", []).append(detail)
    if res.get("status") == "insufficient_data":
        return (
            f"{who}insufficient data ({rows or 0} labelled rows, "
            f"min {res.get('min_labels')}): not evaluated"
        )
    value = (res.get("metrics") or {}).get(metric)
    base = (res.get("baseline") or {}).get(metric)
    if value is None:
        given = (res.get("degradation") or {}).get(metric) or {}
        detail.update({"value": None, "baseline": base, "degradation": given})
        return f"{who}{metric} not available"
    degr = _degradation_of(res, metric, value)
    detail.update({"value": value, "baseline": base, "degradation": degr})
    ev.reasons.extend(_threshold_reasons(policy, who, metric, value))
    ev.reasons.extend(_degradation_reasons(policy, who, metric, value, base, degr))
    return None


def evaluate_performance(policy: RetrainPolicy, performance: Any) -> PolicyEvaluation:
    """Performance policy over one or more ModelPerformanceOperator results."""
    results = _as_results(performance, "performance")
    if not results:
        return PolicyEvaluation("performance", False, note="no performance result given")
    ev = PolicyEvaluation("performance", True)
    notes = [note for i, res in enumerate(results) if (note := _performance_of(policy, res, i, ev))]
    if notes:
        ev.note = "; ".join(notes)
    ev.triggered = bool(ev.reasons)
    return ev


# --------------------------------------------------------------------------- volume and age


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
        "data_volume", True, details={"new_labels": int(new_labels), "since": iso(cutoff)}
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
        details={"age_days": round(age.total_seconds() / 86400, 3), "since": iso(champion.since)},
    )
    if age < timedelta(0):
        ev.note = (
            f"the champion's promotion time {iso(champion.since)} is after the decision time "
            f"{iso(now)} (different clocks?); age taken as 0"
        )
        return ev
    if age > policy.max_model_age:
        ev.reasons.append(
            f"age: champion v{champion.version} is {days_text(age)} old "
            f"(> max_model_age {format_duration(policy.max_model_age)})"
        )
        ev.triggered = True
    return ev
