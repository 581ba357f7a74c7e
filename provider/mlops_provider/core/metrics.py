"""One metric implementation for training, evaluation, performance monitoring and retraining.

- :func:`compute_metrics`: the standard metrics of a task from labels and predictions and/or
  scores. String, boolean and integer labels alike; binary and multi-class classification,
  regression. A metric undefined on the data (one class only, no scores) is ``None``.
- :func:`higher_is_better`, :data:`LOWER_IS_BETTER`: the direction of every metric.
- :func:`primary_metric`: the headline metric of a task.
- :func:`degradation` and :func:`improvement`: differences in the metric's good direction.
- :func:`baseline_from_run_metrics`: a version's baseline from the metrics of its training run.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from mlops_provider.core.errors import InputError

__all__ = [
    "BASELINE_PREFIXES",
    "CLASSIFICATION_METRICS",
    "LOWER_IS_BETTER",
    "PRIMARY_METRIC",
    "REGRESSION_METRICS",
    "Task",
    "baseline_from_run_metrics",
    "check_task",
    "compute_metrics",
    "degradation",
    "finite_or_none",
    "higher_is_better",
    "improvement",
    "metric_names",
    "primary_metric",
]

log = logging.getLogger(__name__)

Task = Literal["classification", "regression"]

CLASSIFICATION_METRICS: tuple[str, ...] = (
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "log_loss",
)
REGRESSION_METRICS: tuple[str, ...] = ("rmse", "mae", "r2")
#: Metrics where a smaller value is better; every other metric is better when larger.
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae", "mse", "brier"})
PRIMARY_METRIC: dict[str, str] = {"classification": "roc_auc", "regression": "rmse"}
#: Prefixes a training run may log its holdout metrics under, tried in this order.
BASELINE_PREFIXES = ("", "holdout_", "holdout.", "test_", "test.", "val_", "validation_")


def check_task(task: Any) -> Task:
    """``task`` if it is ``classification`` or ``regression``.

    :raises InputError: anything else.
    """
    if task not in ("classification", "regression"):
        raise InputError(f"problem_type must be 'classification' or 'regression', got {task!r}")
    return task  # type: ignore[no-any-return]


def metric_names(task: str) -> tuple[str, ...]:
    """The standard metrics of a task."""
    return CLASSIFICATION_METRICS if check_task(task) == "classification" else REGRESSION_METRICS


def primary_metric(task: str) -> str:
    """The headline metric of a task (``roc_auc`` / ``rmse``)."""
    return PRIMARY_METRIC[check_task(task)]


def higher_is_better(metric: str) -> bool:
    """Whether larger values of ``metric`` are better."""
    return metric not in LOWER_IS_BETTER


def finite_or_none(value: Any) -> float | None:
    """``float(value)`` when finite, else ``None``."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _safe(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> float | None:
    """A metric value, or None when it is undefined on this data (e.g. one class only)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return finite_or_none(fn(*args, **kwargs))
    except ValueError as err:
        log.info("metric %s undefined on this data: %s", getattr(fn, "__name__", fn), err)
        return None


def _class_labels(y_true: np.ndarray, y_pred: np.ndarray | None, classes: Any) -> list[Any]:
    if classes is not None:
        return list(classes)
    seen = set(y_true.tolist()) | (set(y_pred.tolist()) if y_pred is not None else set())
    labels = sorted(seen, key=lambda v: (str(type(v)), v))
    if len(labels) < 2 and all(isinstance(v, (bool, np.bool_)) for v in labels):
        return [False, True]
    if len(labels) < 2 and all(isinstance(v, (int, np.integer)) for v in labels):
        return [0, 1]  # 0/1 labels of which one class is absent in this window
    return labels


def _scores_2d(y_score: Any, proba: Any, n_classes: int) -> np.ndarray | None:
    if proba is not None:
        out = np.asarray(proba, dtype=np.float64)
        return out if out.ndim == 2 else np.column_stack([1.0 - out, out])
    if y_score is None:
        return None
    score = np.asarray(y_score, dtype=np.float64)
    if score.ndim == 2:
        return score
    if n_classes > 2:
        raise InputError("a 1-d y_score is the positive-class probability: binary tasks only")
    return np.column_stack([1.0 - score, score])


def _binary(
    y: np.ndarray, pred: np.ndarray, scores: np.ndarray | None, labels: list[Any]
) -> dict[str, float | None]:
    from sklearn import metrics as skm

    positive = labels[-1]
    t, p = y == positive, pred == positive
    out: dict[str, float | None] = {
        "accuracy": _safe(skm.accuracy_score, y, pred),
        "precision": _safe(skm.precision_score, t, p, zero_division=0),
        "recall": _safe(skm.recall_score, t, p, zero_division=0),
        "f1": _safe(skm.f1_score, t, p, zero_division=0),
        "roc_auc": None,
        "log_loss": None,
    }
    if scores is not None and len(labels) == 2:
        score = np.clip(scores[:, 1], 1e-15, 1 - 1e-15)
        out["roc_auc"] = _safe(skm.roc_auc_score, t, score) if t.any() and not t.all() else None
        out["log_loss"] = _safe(skm.log_loss, t, score, labels=[False, True])
    return out


def _multiclass(
    y: np.ndarray, pred: np.ndarray, scores: np.ndarray | None, labels: list[Any]
) -> dict[str, float | None]:
    from sklearn import metrics as skm

    avg = {"average": "macro", "labels": labels, "zero_division": 0}
    out: dict[str, float | None] = {
        "accuracy": _safe(skm.accuracy_score, y, pred),
        "precision": _safe(skm.precision_score, y, pred, **avg),
        "recall": _safe(skm.recall_score, y, pred, **avg),
        "f1": _safe(skm.f1_score, y, pred, **avg),
        "roc_auc": None,
        "log_loss": None,
    }
    if scores is not None:
        out["roc_auc"] = _safe(
            skm.roc_auc_score, y, scores, multi_class="ovr", average="macro", labels=labels
        )
        out["log_loss"] = _safe(skm.log_loss, y, scores, labels=labels)
    return out


def _regression(y_true: np.ndarray, y_pred: Any) -> dict[str, float | None]:
    from sklearn import metrics as skm

    if y_pred is None:
        raise InputError("regression metrics need predictions (y_pred)")
    try:
        yt = y_true.astype(np.float64)
        yp = np.asarray(y_pred, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InputError(f"regression labels and predictions must be numbers: {err}") from err
    return {
        "rmse": _safe(lambda a, b: math.sqrt(skm.mean_squared_error(a, b)), yt, yp),
        "mae": _safe(skm.mean_absolute_error, yt, yp),
        "r2": _safe(skm.r2_score, yt, yp) if yt.size > 1 else None,
    }


def _check_wanted(task: str, metrics: Sequence[str] | None) -> list[str]:
    known = metric_names(task)
    wanted = list(metrics or known)
    unknown = [m for m in wanted if m not in known]
    if unknown:
        raise InputError(f"unknown {task} metric(s) {unknown}; known: {list(known)}")
    return wanted


def compute_metrics(
    task: str,
    y_true: Any,
    *,
    y_pred: Any = None,
    y_score: Any = None,
    proba: Any = None,
    classes: Sequence[Any] | None = None,
    metrics: Sequence[str] | None = None,
    threshold: float = 0.5,
) -> dict[str, float | None]:
    """The standard metrics of ``task`` (or the ``metrics`` asked for).

    Classification labels may be strings, booleans or integers. The positive class of a binary
    task is the last of ``classes`` (default: the sorted labels seen).

    :param y_pred: predicted labels/values; for classification, derived from the scores with
        ``threshold`` (binary) or the most probable class when absent.
    :param y_score: binary: probability of the positive class (1-d); or a 2-d ``proba``.
    :param proba: class probabilities, columns in the order of ``classes``.
    :param classes: the model's ``classes_``.
    :raises InputError: unknown task or metric, or nothing to compute from.
    """
    wanted = _check_wanted(task, metrics)
    y = np.asarray(y_true)
    if y.size == 0:
        return dict.fromkeys(wanted)
    if task == "regression":
        out = _regression(y, y_pred)
        return {name: out[name] for name in wanted}
    pred = None if y_pred is None else np.asarray(y_pred)
    labels = _class_labels(y, pred, classes)
    scores = _scores_2d(y_score, proba, len(labels))
    if pred is None:
        if scores is None:
            raise InputError("classification metrics need predictions (y_pred) or scores")
        if len(labels) == 2 and scores.shape[1] == 2:
            pred = np.where(scores[:, 1] >= threshold, labels[1], labels[0])
        else:
            pred = np.asarray(labels, dtype=object)[np.argmax(scores, axis=1)]
    if len(labels) > 2:
        out = _multiclass(y, pred, scores, labels)
    else:
        out = _binary(y, pred, scores, labels)
    return {name: out[name] for name in wanted}


def improvement(metric: str, candidate: float, reference: float) -> float:
    """How much better ``candidate`` is than ``reference`` in the metric's good direction."""
    return candidate - reference if higher_is_better(metric) else reference - candidate


def degradation(
    current: Mapping[str, float | None],
    baseline: Mapping[str, float | None],
    metrics: Sequence[str] | None = None,
) -> dict[str, dict[str, float | None]]:
    """Per metric: ``{"current", "baseline", "abs", "rel"}``; positive ``abs``/``rel`` = worse.

    Metrics missing on either side get ``None`` for ``abs`` and ``rel``.
    """
    out: dict[str, dict[str, float | None]] = {}
    for name in metrics or list(current):
        cur = finite_or_none(current.get(name))
        base = finite_or_none(baseline.get(name))
        if cur is None or base is None:
            out[name] = {"current": cur, "baseline": base, "abs": None, "rel": None}
            continue
        diff = -improvement(name, cur, base)
        rel = diff / abs(base) if base != 0 else None
        out[name] = {
            "current": cur,
            "baseline": base,
            "abs": round(diff, 10),
            "rel": None if rel is None else round(rel, 10),
        }
    return out


def baseline_from_run_metrics(
    run_metrics: Mapping[str, float], metrics: Sequence[str]
) -> dict[str, float]:
    """The baseline of each metric from a training run's metrics (plain names first)."""
    out: dict[str, float] = {}
    for name in metrics:
        for prefix in BASELINE_PREFIXES:
            value = finite_or_none(run_metrics.get(f"{prefix}{name}"))
            if value is not None:
                out[name] = value
                break
    return out
