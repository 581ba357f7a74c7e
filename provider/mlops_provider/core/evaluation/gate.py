"""The champion/challenger gate: thresholds and the pure decision, with a reason for every check.

``thresholds`` maps metrics to checks::

    {"roc_auc": {"min": 0.8, "min_improvement": 0.0, "max_degradation": 0.01},
     "f1": {"min_relative_improvement": 0.02, "max_relative_degradation": 0.05},
     "log_loss": {"max": 0.5},
     "recall": 0.3}   # shorthand for {"min": 0.3} ({"max": x} for lower-is-better metrics)

Metric directions are those of :mod:`mlops_provider.core.metrics`; an *improvement* is always
measured in the metric's good direction (a drop of ``rmse`` is a positive improvement) and a
*degradation* is its opposite. (``EvaluateModelOperator`` still accepts ``max_regression``, the
old name of ``max_degradation``, with a deprecation warning.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from mlops_provider.core.errors import InputError
from mlops_provider.core.metrics import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    finite_or_none,
    higher_is_better,
    improvement,
    metric_names,
    primary_metric,
)

__all__ = [
    "COMPARISON_KEYS",
    "THRESHOLD_KEYS",
    "Check",
    "EvaluationError",
    "Threshold",
    "apply_gate",
    "parse_thresholds",
    "reasons_of",
    "summary_reason",
]

COMPARISON_KEYS: tuple[str, ...] = (
    "min_improvement",
    "min_relative_improvement",
    "max_degradation",
    "max_relative_degradation",
)
THRESHOLD_KEYS: tuple[str, ...] = ("min", "max", *COMPARISON_KEYS)
_EPS = 1e-12

Metrics = Mapping[str, float | None]


class EvaluationError(InputError):
    """The evaluation cannot run: bad thresholds, unknown metric, incompatible models."""


@dataclass
class Threshold:
    """Thresholds of one metric (see :func:`parse_thresholds`)."""

    metric: str
    min: float | None = None
    max: float | None = None
    min_improvement: float | None = None
    min_relative_improvement: float | None = None
    max_degradation: float | None = None
    max_relative_degradation: float | None = None

    def as_dict(self) -> dict[str, float]:
        return {k: v for k, v in asdict(self).items() if k != "metric" and v is not None}


@dataclass
class Check:
    """One check of the gate and its human-readable reason."""

    metric: str
    check: str
    passed: bool
    reason: str
    candidate: float | None = None
    champion: float | None = None
    threshold: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- thresholds


def _number(metric: str, key: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise EvaluationError(
            f"thresholds[{metric!r}][{key!r}] must be a number, got {value!r}"
        ) from None
    if not math.isfinite(number):
        raise EvaluationError(f"thresholds[{metric!r}][{key!r}] must be finite")
    return number


def _threshold(metric: str, spec: Any) -> Threshold:
    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        spec = {"min" if higher_is_better(metric) else "max": spec}
    if not isinstance(spec, Mapping):
        raise EvaluationError(f"thresholds[{metric!r}] must be a mapping, got {spec!r}")
    unknown = sorted(set(spec) - set(THRESHOLD_KEYS))
    if unknown:
        raise EvaluationError(
            f"thresholds[{metric!r}] has unknown key(s) {unknown}; allowed: {list(THRESHOLD_KEYS)}"
        )
    values = {k: _number(metric, k, v) for k, v in spec.items() if v is not None}
    return Threshold(metric=metric, **values)


def parse_thresholds(thresholds: Any, task: str | None = None) -> list[Threshold]:
    """Validate ``{"metric": {"min": .., "max": .., "min_improvement": .., ...}}``.

    A bare number is shorthand for ``{"min": x}`` (``{"max": x}`` for lower-is-better metrics).

    :raises EvaluationError: unknown metric (for ``task``), unknown key, non-numeric value.
    """
    if thresholds is None:
        return []
    if not isinstance(thresholds, Mapping):
        raise EvaluationError(
            f"thresholds must be a mapping metric -> {{key: value}}, got {type(thresholds).__name__}"
        )
    known = metric_names(task) if task else CLASSIFICATION_METRICS + REGRESSION_METRICS
    for metric in thresholds:
        if metric not in known:
            raise EvaluationError(
                f"threshold for unknown metric {metric!r}"
                + (f" (task {task})" if task else "")
                + f"; available: {list(known)}"
            )
    return [_threshold(metric, spec) for metric, spec in thresholds.items()]


# --------------------------------------------------------------------------- the gate


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _value(metrics: Metrics | None, metric: str) -> float | None:
    return None if metrics is None else finite_or_none(metrics.get(metric))


def _bound_checks(threshold: Threshold, cand: float | None, champ: float | None) -> list[Check]:
    """The absolute ``min`` / ``max`` checks of one metric."""
    metric = threshold.metric
    undefined = "" if cand is not None else " (undefined)"
    checks = []
    if threshold.min is not None:
        ok = cand is not None and cand >= threshold.min
        text = f"{metric}: candidate {_fmt(cand)} {'>=' if ok else '<'} minimum {threshold.min:.4g}"
        checks.append(Check(metric, "min", ok, text + undefined, cand, champ, threshold.min))
    if threshold.max is not None:
        ok = cand is not None and cand <= threshold.max
        text = f"{metric}: candidate {_fmt(cand)} {'<=' if ok else '>'} maximum {threshold.max:.4g}"
        checks.append(Check(metric, "max", ok, text + undefined, cand, champ, threshold.max))
    return checks


def _relative(gain: float, champ: float) -> float:
    """``gain`` as a fraction of the champion's value (a zero champion: inf for any gain)."""
    if champ != 0:
        return gain / abs(champ)
    return math.inf if gain > 0 else 0.0


def _compare(metric: str, kind: str, limit: float, cand: float, champ: float) -> tuple[bool, str]:
    """The verdict and the reason of one comparison with the champion."""
    gain = improvement(metric, cand, champ)
    if kind == "min_improvement":
        ok = gain >= limit - _EPS
        direction = "higher" if higher_is_better(metric) else "lower"
        return ok, (
            f"{metric}: candidate {_fmt(cand)} vs champion {_fmt(champ)}, improvement "
            f"{gain:+.4g} ({direction} is better) {'>=' if ok else '<'} required {limit:.4g}"
        )
    if kind == "min_relative_improvement":
        rel = _relative(gain, champ)
        ok = rel >= limit - _EPS
        return ok, (
            f"{metric}: relative improvement {rel:+.2%} over champion {_fmt(champ)} "
            f"{'>=' if ok else '<'} required {limit:.2%}"
        )
    if kind == "max_relative_degradation":
        rel = _relative(-gain, champ)  # the degradation as a fraction of the champion
        ok = rel <= limit + _EPS
        return ok, (
            f"{metric}: relative degradation {max(rel, 0.0):.2%} from champion {_fmt(champ)} "
            f"{'<=' if ok else '>'} allowed {limit:.2%}"
        )
    ok = -gain <= limit + _EPS  # max_degradation
    return ok, (
        f"{metric}: candidate {_fmt(cand)} vs champion {_fmt(champ)}, degradation "
        f"{max(-gain, 0.0):.4g} {'<=' if ok else '>'} allowed {limit:.4g}"
    )


def _comparison(
    metric: str, kind: str, limit: float, cand: float | None, champ: float | None, cold: bool
) -> Check:
    """One comparison with the champion: skipped (passed) on a cold start, failed when a
    value is undefined."""
    if cold:
        reason = f"{metric}: no champion (cold start), {kind} check skipped"
        return Check(metric, kind, True, reason, cand, None, limit)
    if cand is None or champ is None:
        who = "candidate" if cand is None else "champion"
        reason = f"{metric}: undefined for the {who}, cannot compare"
        return Check(metric, kind, False, reason, cand, champ, limit)
    ok, reason = _compare(metric, kind, limit, cand, champ)
    return Check(metric, kind, ok, reason, cand, champ, limit)


def _default_rule(primary: str, cand: float | None, champ: float | None, cold: bool) -> Check:
    """Without thresholds: the candidate must not be worse on the primary metric."""
    if cold:
        reason = f"{primary}: no champion (cold start), accepted by the default rule"
        return Check(primary, "not_worse", True, reason, cand, None, None)
    if cand is None or champ is None:
        who = "candidate" if cand is None else "champion"
        reason = f"{primary}: undefined for the {who}, cannot compare"
        return Check(primary, "not_worse", False, reason, cand, champ, 0.0)
    ok = improvement(primary, cand, champ) >= -_EPS
    reason = (
        f"{primary}: candidate {_fmt(cand)} "
        f"{'is not worse than' if ok else 'is worse than'} champion {_fmt(champ)} "
        f"({'higher' if higher_is_better(primary) else 'lower'} is better)"
    )
    return Check(primary, "not_worse", ok, reason, cand, champ, 0.0)


def _rule(configured: bool, cold: bool, primary: str) -> str:
    if configured:
        return "configured thresholds" + (
            " (cold start: no champion, only absolute thresholds apply)" if cold else ""
        )
    if cold:
        return (
            "default rule, cold start: no thresholds configured and no champion to compare "
            "with, the candidate is accepted"
        )
    return (
        "default rule: no thresholds configured, the candidate must not be worse than the "
        f"champion on the primary metric {primary}"
    )


def apply_gate(
    task: str,
    candidate: Metrics,
    champion: Metrics | None,
    thresholds: Sequence[Threshold],
    primary: str | None = None,
) -> tuple[bool, list[Check], str]:
    """Decide whether the candidate passes. Returns ``(passed, checks, rule)``. Pure.

    - absolute checks (``min``/``max``) always apply;
    - comparisons with the champion (``min_improvement``, ``min_relative_improvement``,
      ``max_degradation``, ``max_relative_degradation``) apply when there is a champion; on a cold start (``champion`` None)
      they are recorded as skipped and passed;
    - with no thresholds at all, the default rule: the candidate must not be worse than the
      champion on the primary metric (``roc_auc`` / ``rmse``); on a cold start it is accepted.

    A metric that is undefined (None) for the candidate fails its checks; one undefined for
    the champion fails the comparison (there is nothing to compare with).
    """
    primary = primary or primary_metric(task)
    cold = champion is None
    checks: list[Check] = []
    for threshold in thresholds:
        metric = threshold.metric
        cand, champ = _value(candidate, metric), _value(champion, metric)
        checks += _bound_checks(threshold, cand, champ)
        for kind in COMPARISON_KEYS:
            limit = getattr(threshold, kind)
            if limit is not None:
                checks.append(_comparison(metric, kind, limit, cand, champ, cold))
    if not thresholds:
        checks.append(
            _default_rule(primary, _value(candidate, primary), _value(champion, primary), cold)
        )
    return all(c.passed for c in checks), checks, _rule(bool(thresholds), cold, primary)


def summary_reason(passed: bool, checks: Sequence[Check]) -> str:
    """One sentence: the verdict and the failed checks."""
    failed = [c.reason for c in checks if not c.passed]
    if passed:
        return f"passed: all {len(checks)} check(s) passed"
    return f"rejected: {len(failed)} of {len(checks)} check(s) failed: " + "; ".join(failed)


def reasons_of(passed: bool, checks: Sequence[Check]) -> list[str]:
    """The ``reasons`` of a result: the failed checks when rejected, every check when passed."""
    return [c.reason for c in checks if passed or not c.passed]
