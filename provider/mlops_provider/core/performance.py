"""Model performance on labels that arrive late, compared with the model's training baseline.

Batch scoring writes one predictions partition per day (``<predictions>/dt=YYYY-MM-DD``: one row
per entity with ``prediction``, ``probability``, ``model_name``, ``model_version``,
``model_run_id``, ``scored_at``). Ground truth arrives ``label_delay`` days later in label
partitions keyed by arrival day (rows with the entity, the ``event_timestamp`` of the scored
activity, the label and ``label_available_at``).

On run day ``D`` the monitor evaluates the *matured* prediction days ``D - label_delay`` (or a
window of ``evaluation_window`` days ending there): it joins each prediction with the label of
the same entity and event day, using only labels available by the end of the run's data
interval (no peeking into the future on a backfill), computes the metrics per day and per
model version, and compares each version with its own baseline (the holdout metrics its
training run logged). Fewer than ``min_labels`` labelled rows is reported as
``insufficient_data``, never as a degradation.

Degradation is signed so that positive means worse: ``baseline - current`` for metrics where
higher is better (``roc_auc``, ``accuracy`` ...) and ``current - baseline`` for losses
(``log_loss``, ``rmse``, ``mae``); the relative degradation divides by ``|baseline|``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from datetime import time as dtime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from mlops_provider.core import io, reports
from mlops_provider.core.monitoring import (
    DEFAULT_MONITORING_EXPERIMENT,
    MonitoringError,
    RunIdentity,
    ensure_monitoring_experiment,
    get_or_create_monitoring_run,
    list_partitions,
    log_monitoring_results,
    report_paths,
    resolve_model_version,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

__all__ = [
    "CLASSIFICATION_METRICS",
    "LOWER_IS_BETTER",
    "REGRESSION_METRICS",
    "PerformanceResult",
    "VersionPerformance",
    "compute_metrics",
    "degradation",
    "evaluate_performance",
    "evaluation_days",
    "join_predictions_with_labels",
    "read_labels",
    "read_predictions",
    "run_performance_check",
]

Task = Literal["classification", "regression"]
Status = Literal["ok", "degraded", "insufficient_data"]

CLASSIFICATION_METRICS: tuple[str, ...] = (
    "roc_auc",
    "accuracy",
    "f1",
    "log_loss",
    "precision",
    "recall",
)
REGRESSION_METRICS: tuple[str, ...] = ("rmse", "mae", "r2")
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae", "mse", "brier"})
DEFAULT_PRIMARY = {"classification": "roc_auc", "regression": "rmse"}
DEFAULT_MAX_DEGRADATION = 0.05
DEFAULT_MIN_LABELS = 200
# Prefixes a training run may put before holdout metric names; plain names win.
BASELINE_PREFIXES = ("", "holdout_", "holdout.", "test_", "test.", "val_", "validation_")

DAY_COLUMN = "_day"


# --------------------------------------------------------------------------- metrics


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def compute_metrics(
    y_true: Any,
    *,
    y_score: Any = None,
    y_pred: Any = None,
    task: Task = "classification",
    metrics: Sequence[str] | None = None,
    threshold: float = 0.5,
) -> dict[str, float | None]:
    """Metrics of one set of labelled predictions (binary classification or regression).

    Classification: ``y_score`` is the probability of the positive class (1), ``y_pred`` the
    predicted class (default ``y_score >= threshold``). ``roc_auc`` is ``None`` when only one
    class is present; ``log_loss`` and ``roc_auc`` are ``None`` without scores.

    Raises:
        ValueError: an unknown metric or task, or no predictions at all.
    """
    from sklearn import metrics as skm

    wanted = list(
        metrics or (CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS)
    )
    y = np.asarray(y_true)
    out: dict[str, float | None] = {}
    if y.size == 0:
        return dict.fromkeys(wanted)
    if task == "classification":
        unknown = [m for m in wanted if m not in CLASSIFICATION_METRICS]
        if unknown:
            raise ValueError(
                f"unknown classification metric(s) {unknown}; known: {CLASSIFICATION_METRICS}"
            )
        y = y.astype(np.int64)
        score = None if y_score is None else np.asarray(y_score, dtype=np.float64)
        if y_pred is None:
            if score is None:
                raise ValueError("classification metrics need y_score or y_pred")
            pred = (score >= threshold).astype(np.int64)
        else:
            pred = np.asarray(y_pred).astype(np.int64)
        both = np.unique(y).size == 2
        for name in wanted:
            if name == "roc_auc":
                out[name] = (
                    _finite(skm.roc_auc_score(y, score)) if both and score is not None else None
                )
            elif name == "log_loss":
                out[name] = (
                    _finite(skm.log_loss(y, np.clip(score, 1e-15, 1 - 1e-15), labels=[0, 1]))
                    if score is not None
                    else None
                )
            elif name == "accuracy":
                out[name] = _finite(skm.accuracy_score(y, pred))
            elif name == "f1":
                out[name] = _finite(skm.f1_score(y, pred, zero_division=0))
            elif name == "precision":
                out[name] = _finite(skm.precision_score(y, pred, zero_division=0))
            elif name == "recall":
                out[name] = _finite(skm.recall_score(y, pred, zero_division=0))
        return out
    if task != "regression":
        raise ValueError(f"task must be 'classification' or 'regression', got {task!r}")
    unknown = [m for m in wanted if m not in REGRESSION_METRICS]
    if unknown:
        raise ValueError(f"unknown regression metric(s) {unknown}; known: {REGRESSION_METRICS}")
    if y_pred is None:
        raise ValueError("regression metrics need y_pred")
    yt = y.astype(np.float64)
    yp = np.asarray(y_pred, dtype=np.float64)
    for name in wanted:
        if name == "rmse":
            out[name] = _finite(np.sqrt(skm.mean_squared_error(yt, yp)))
        elif name == "mae":
            out[name] = _finite(skm.mean_absolute_error(yt, yp))
        elif name == "r2":
            out[name] = _finite(skm.r2_score(yt, yp)) if yt.size > 1 else None
    return out


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
        cur = _finite(current.get(name))
        base = _finite(baseline.get(name))
        if cur is None or base is None:
            out[name] = {"current": cur, "baseline": base, "abs": None, "rel": None}
            continue
        diff = cur - base if name in LOWER_IS_BETTER else base - cur
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
    """Pick the baseline of each metric from a training run's metrics (plain names first)."""
    out: dict[str, float] = {}
    for name in metrics:
        for prefix in BASELINE_PREFIXES:
            value = _finite(run_metrics.get(f"{prefix}{name}"))
            if value is not None:
                out[name] = value
                break
    return out


# --------------------------------------------------------------------------- days and joins


def evaluation_days(run_day: date, label_delay: int, evaluation_window: int = 1) -> list[date]:
    """The matured prediction days evaluated on ``run_day`` (oldest first)."""
    if label_delay < 0:
        raise ValueError(f"label_delay must be >= 0 days, got {label_delay}")
    if evaluation_window < 1:
        raise ValueError(f"evaluation_window must be >= 1 day, got {evaluation_window}")
    last = run_day - timedelta(days=label_delay)
    return [last - timedelta(days=i) for i in reversed(range(evaluation_window))]


def _utc_days(values: pd.Series) -> pd.Series:
    ts = pd.to_datetime(values, utc=True)
    return ts.dt.tz_convert("UTC").dt.date


def join_predictions_with_labels(
    predictions: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    entity_column: str = "customer_id",
    target: str = "churned",
    label_time_column: str = "event_timestamp",
    label_available_column: str | None = "label_available_at",
    prediction_time_column: str | None = None,
    as_of: datetime | None = None,
) -> pd.DataFrame:
    """Attach to each prediction the label of the same entity and event day.

    The prediction's day is the ``_day`` column (the partition day, set by
    :func:`read_predictions`) or the UTC date of ``prediction_time_column``; the label's day is
    the UTC date of ``label_time_column``. Labels not yet available at ``as_of`` are ignored; if
    an (entity, day) has several labels the latest available one wins. Predictions without a
    label are dropped (count them with ``len(predictions) - len(result)``).

    Returns:
        The prediction rows that have a label, with ``target`` added.

    Raises:
        MonitoringError: a required column is missing.
    """
    for col in (entity_column, target, label_time_column):
        if col not in labels.columns:
            raise MonitoringError(
                f"labels have no column {col!r} (columns: {list(labels.columns)})"
            )
    if entity_column not in predictions.columns:
        raise MonitoringError(
            f"predictions have no column {entity_column!r} (columns: {list(predictions.columns)})"
        )
    preds = predictions
    if DAY_COLUMN not in preds.columns:
        if not prediction_time_column or prediction_time_column not in preds.columns:
            raise MonitoringError(
                "predictions need a day: read them with read_predictions (partition day) or "
                f"give prediction_time_column (columns: {list(preds.columns)})"
            )
        preds = preds.assign(**{DAY_COLUMN: _utc_days(preds[prediction_time_column])})
    lab = labels[labels[target].notna()]
    if as_of is not None and label_available_column and label_available_column in lab.columns:
        available = pd.to_datetime(lab[label_available_column], utc=True)
        lab = lab[available <= pd.Timestamp(as_of).tz_convert("UTC")]
    keep = [entity_column, target]
    lab = lab.assign(**{DAY_COLUMN: _utc_days(lab[label_time_column])})
    if label_available_column and label_available_column in lab.columns:
        lab = lab.sort_values(label_available_column, kind="stable")
    lab = lab.drop_duplicates([entity_column, DAY_COLUMN], keep="last")[[*keep, DAY_COLUMN]]
    preds = preds.drop(columns=[target], errors="ignore")
    try:
        return preds.merge(lab, on=[entity_column, DAY_COLUMN], how="inner", validate="many_to_one")
    except (ValueError, TypeError) as err:
        raise MonitoringError(
            f"cannot join predictions with labels on ({entity_column}, event day): {err}"
        ) from err


def read_predictions(
    predictions_data: str,
    days: Sequence[date],
    *,
    columns: Sequence[str] | None = None,
    conn_id: str | None = None,
) -> tuple[pd.DataFrame, list[date]]:
    """Read the predictions partitions of ``days`` (``<base>/dt=YYYY-MM-DD``).

    Returns ``(frame with a _day column, days without a partition)``.
    """
    frames = []
    missing: list[date] = []
    for day in days:
        uri = io.partition_uri(predictions_data, day)
        if not io.exists(uri, conn_id=conn_id):
            missing.append(day)
            continue
        try:
            schema = io.open_dataset(uri, conn_id=conn_id).schema
        except io.DatasetEmpty:
            missing.append(day)
            continue
        cols = [c for c in columns if c in schema.names] if columns is not None else None
        frame = io.read_table(uri, columns=cols, conn_id=conn_id).to_pandas()
        frame[DAY_COLUMN] = day
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=[*(columns or []), DAY_COLUMN]), missing
    return pd.concat(frames, ignore_index=True), missing


def read_labels(
    labels_data: str,
    first_day: date,
    last_day: date,
    *,
    columns: Sequence[str] | None = None,
    conn_id: str | None = None,
) -> pd.DataFrame:
    """Labels from the partitions ``dt`` in ``[first_day, last_day]`` under ``labels_data``.

    Label partitions are keyed by arrival day, which is never before the event day, so the
    labels of events on ``first_day`` or later that arrived by ``last_day`` are all there. A
    dataset without ``dt=`` partitions is read whole.
    """
    partitions = list_partitions(labels_data, conn_id=conn_id)
    if not partitions:
        if not io.exists(labels_data, conn_id=conn_id):
            raise MonitoringError(f"labels_data {labels_data} does not exist")
        return io.read_table(labels_data, columns=columns, conn_id=conn_id).to_pandas()
    frames = []
    for day, uri in partitions.items():
        if first_day <= day <= last_day:
            try:
                frames.append(io.read_table(uri, columns=columns, conn_id=conn_id).to_pandas())
            except io.DatasetEmpty:
                continue
    if not frames:
        return pd.DataFrame(columns=list(columns or []))
    frames = [f for f in frames if len(f)] or frames[:1]
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- evaluation


@dataclass
class VersionPerformance:
    """Performance of one model version over the evaluated days."""

    model_version: str
    model_name: str | None
    run_id: str | None
    labelled_rows: int
    metrics: dict[str, float | None]
    baseline: dict[str, float]
    degradation: dict[str, dict[str, float | None]]
    status: Status
    reasons: list[str]
    by_day: list[dict[str, Any]] = field(default_factory=list)
    last_scored: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "model_name": self.model_name,
            "run_id": self.run_id,
            "labelled_rows": self.labelled_rows,
            "status": self.status,
            "reasons": list(self.reasons),
            "metrics": _round(self.metrics),
            "baseline": _round(self.baseline),
            "degradation": {
                k: {"abs": _r(v["abs"]), "rel": _r(v["rel"])} for k, v in self.degradation.items()
            },
            "by_day": self.by_day,
        }


@dataclass
class PerformanceResult:
    """Result of :func:`evaluate_performance`; the top level describes ``primary``."""

    status: Status
    reasons: list[str]
    evaluated_days: list[date]
    primary_metric: str
    min_labels: int
    task: Task
    versions: dict[str, VersionPerformance]
    primary: str | None
    by_day: list[dict[str, Any]]
    predictions: int
    labelled_rows_total: int
    missing_prediction_days: list[date] = field(default_factory=list)

    @property
    def primary_version(self) -> VersionPerformance | None:
        return self.versions.get(self.primary) if self.primary is not None else None

    def summary(self) -> dict[str, Any]:
        """JSON-serializable summary (the operator's XCom, without report/run fields)."""
        pv = self.primary_version
        return {
            "status": self.status,
            "reasons": list(self.reasons),
            "evaluated_days": [d.isoformat() for d in self.evaluated_days],
            "missing_prediction_days": [d.isoformat() for d in self.missing_prediction_days],
            "task": self.task,
            "primary_metric": self.primary_metric,
            "min_labels": self.min_labels,
            "labelled_rows": pv.labelled_rows if pv else 0,
            "labelled_rows_total": self.labelled_rows_total,
            "predictions": self.predictions,
            "metrics": _round(pv.metrics) if pv else {},
            "baseline": _round(pv.baseline) if pv else {},
            "degradation": (
                {k: {"abs": _r(v["abs"]), "rel": _r(v["rel"])} for k, v in pv.degradation.items()}
                if pv
                else {}
            ),
            "model_name": pv.model_name if pv else None,
            "model_version": pv.model_version if pv else None,
            "model_versions": list(self.versions),
            "by_version": {v: p.to_dict() for v, p in self.versions.items()},
            "by_day": self.by_day,
        }


def _r(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def _round(values: Mapping[str, float | None]) -> dict[str, float | None]:
    return {k: _r(v) for k, v in values.items()}


def _as_threshold_map(value: float | Mapping[str, float] | None, primary: str) -> dict[str, float]:
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {str(k): float(v) for k, v in value.items() if v is not None}
    return {primary: float(value)}


def _metrics_of(
    frame: pd.DataFrame,
    *,
    task: Task,
    metrics: Sequence[str],
    target: str,
    score_column: str | None,
    prediction_column: str | None,
    threshold: float,
) -> dict[str, float | None]:
    score = frame[score_column].to_numpy() if score_column and score_column in frame else None
    pred = (
        frame[prediction_column].to_numpy()
        if prediction_column and prediction_column in frame
        else None
    )
    if task == "regression" and pred is None:
        pred = score
    return compute_metrics(
        frame[target].to_numpy(),
        y_score=score,
        y_pred=pred,
        task=task,
        metrics=metrics,
        threshold=threshold,
    )


def evaluate_performance(
    joined: pd.DataFrame,
    *,
    days: Sequence[date],
    baselines: Mapping[str, Mapping[str, float]],
    task: Task = "classification",
    metrics: Sequence[str] | None = None,
    primary_metric: str | None = None,
    min_labels: int = DEFAULT_MIN_LABELS,
    max_degradation: float | Mapping[str, float] | None = DEFAULT_MAX_DEGRADATION,
    max_relative_degradation: float | Mapping[str, float] | None = None,
    target: str = "churned",
    score_column: str | None = "probability",
    prediction_column: str | None = "prediction",
    version_column: str = "model_version",
    threshold: float = 0.5,
    predictions: int | None = None,
    missing_days: Sequence[date] = (),
) -> PerformanceResult:
    """Metrics per model version and per day, compared with each version's baseline.

    Args:
        joined: labelled predictions (:func:`join_predictions_with_labels`), with ``_day``.
        days: the evaluated days.
        baselines: model version -> baseline metrics (missing: no comparison for it).
        task: ``"classification"`` or ``"regression"``.
        metrics: metrics to compute (default: all of the task's).
        primary_metric: the headline metric (default ``roc_auc`` / ``rmse``).
        min_labels: fewer labelled rows for a version -> ``insufficient_data``.
        max_degradation: absolute degradation allowed; a number applies to the primary metric,
            a mapping per metric.
        max_relative_degradation: relative degradation allowed, the same way.
        target, score_column, prediction_column, version_column: column names.
        threshold: class threshold when there is no prediction column.
        predictions: number of prediction rows read (for the summary).
        missing_days: evaluated days without a predictions partition.

    Raises:
        ValueError: invalid parameters.
    """
    metric_list = list(
        metrics or (CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS)
    )
    primary_metric = primary_metric or DEFAULT_PRIMARY[task]
    if primary_metric not in metric_list:
        metric_list.insert(0, primary_metric)
    if min_labels < 1:
        raise ValueError(f"min_labels must be >= 1, got {min_labels}")
    max_abs = _as_threshold_map(max_degradation, primary_metric)
    max_rel = _as_threshold_map(max_relative_degradation, primary_metric)
    unknown = sorted((set(max_abs) | set(max_rel)) - set(metric_list))
    if unknown:
        raise ValueError(f"degradation thresholds for metrics that are not computed: {unknown}")
    opts: dict[str, Any] = {
        "task": task,
        "metrics": metric_list,
        "target": target,
        "score_column": score_column,
        "prediction_column": prediction_column,
        "threshold": threshold,
    }

    if version_column in joined.columns and len(joined):
        version_keys = joined[version_column].astype(str)
    else:
        version_keys = pd.Series(["unknown"] * len(joined), index=joined.index, dtype=object)
    versions: dict[str, VersionPerformance] = {}
    for version, group in joined.groupby(version_keys, sort=True):
        version = str(version)
        labelled = len(group)
        current = _metrics_of(group, **opts)
        base = dict(baselines.get(version, {}))
        degr = degradation(current, base, metric_list)
        reasons: list[str] = []
        v_status: Status = "ok"
        if labelled < min_labels:
            v_status = "insufficient_data"
            reasons.append(
                f"v{version}: only {labelled} labelled rows (min_labels {min_labels}); "
                "not compared with the baseline"
            )
        elif not base:
            reasons.append(f"v{version}: no baseline metrics; nothing to compare with")
        else:
            for name in metric_list:
                d = degr[name]
                lim_abs, lim_rel = max_abs.get(name), max_rel.get(name)
                if lim_abs is None and lim_rel is None:
                    continue
                if d["abs"] is None:
                    reasons.append(
                        f"v{version}: {name} cannot be compared (current {d['current']}, "
                        f"baseline {d['baseline']})"
                    )
                    continue
                breached = (lim_abs is not None and d["abs"] > lim_abs) or (
                    lim_rel is not None and d["rel"] is not None and d["rel"] > lim_rel
                )
                if breached:
                    v_status = "degraded"
                    rel = f" ({d['rel']:.1%})" if d["rel"] is not None else ""
                    limits = ", ".join(
                        x
                        for x in (
                            f"max_degradation {lim_abs:g}" if lim_abs is not None else "",
                            f"max_relative_degradation {lim_rel:g}" if lim_rel is not None else "",
                        )
                        if x
                    )
                    reasons.append(
                        f"v{version}: {name} {d['current']:.4f} is worse than the baseline "
                        f"{d['baseline']:.4f} by {d['abs']:.4f}{rel} (limit: {limits}); "
                        f"{labelled} labelled rows"
                    )
        by_day = []
        for day, day_group in group.groupby(DAY_COLUMN, sort=True):
            by_day.append(
                {
                    "day": _day_str(day),
                    "labelled_rows": len(day_group),
                    "metrics": _round(_metrics_of(day_group, **opts)),
                }
            )
        model_name = None
        if "model_name" in group.columns and group["model_name"].notna().any():
            model_name = str(group["model_name"].dropna().iloc[0])
        run_id = None
        if "model_run_id" in group.columns and group["model_run_id"].notna().any():
            run_id = str(group["model_run_id"].dropna().iloc[0])
        last_scored = None
        if "scored_at" in group.columns and group["scored_at"].notna().any():
            last_scored = str(pd.to_datetime(group["scored_at"], utc=True).max().isoformat())
        else:
            last_scored = _day_str(group[DAY_COLUMN].max())
        versions[version] = VersionPerformance(
            model_version=version,
            model_name=model_name,
            run_id=run_id,
            labelled_rows=labelled,
            metrics=current,
            baseline=base,
            degradation=degr,
            status=v_status,
            reasons=reasons,
            by_day=by_day,
            last_scored=last_scored,
        )

    by_day_all = []
    for day in days:
        day_rows = joined[joined[DAY_COLUMN] == day] if len(joined) else joined
        entry: dict[str, Any] = {"day": day.isoformat(), "labelled_rows": len(day_rows)}
        if len(day_rows):
            entry["model_versions"] = (
                sorted(day_rows[version_column].astype(str).unique().tolist())
                if version_column in day_rows.columns
                else []
            )
            entry["metrics"] = _round(_metrics_of(day_rows, **opts))
        by_day_all.append(entry)

    primary = None
    if versions:
        primary = max(
            versions.values(), key=lambda v: (v.last_scored or "", v.labelled_rows)
        ).model_version
    reasons_all: list[str] = []
    if missing_days:
        reasons_all.append(
            "no predictions partition for " + ", ".join(d.isoformat() for d in missing_days)
        )
    status: Status = "insufficient_data"
    if primary is None:
        reasons_all.append(
            f"no labelled predictions for {', '.join(d.isoformat() for d in days)} "
            f"(min_labels {min_labels})"
        )
    else:
        status = versions[primary].status
        reasons_all += versions[primary].reasons
        for v, perf in versions.items():
            if v != primary and perf.status == "degraded":
                reasons_all += [f"(earlier version) {r}" for r in perf.reasons]
    return PerformanceResult(
        status=status,
        reasons=reasons_all,
        evaluated_days=list(days),
        primary_metric=primary_metric,
        min_labels=min_labels,
        task=task,
        versions=versions,
        primary=primary,
        by_day=by_day_all,
        predictions=int(predictions if predictions is not None else len(joined)),
        labelled_rows_total=len(joined),
        missing_prediction_days=list(missing_days),
    )


def _day_str(value: Any) -> str:
    if isinstance(value, (date, datetime)):
        return value.isoformat()[:10]
    return str(value)[:10]


# --------------------------------------------------------------------------- report


def _plot_metric(result: PerformanceResult, metric: str) -> str:
    from matplotlib.ticker import MaxNLocator

    fig = reports.new_figure(4.2, 2.5)
    ax = fig.add_subplot(1, 1, 1)
    colors = ["#1565c0", "#2e7d32", "#c62828", "#6a1b9a", "#ef6c00"]
    days = [d.isoformat() for d in result.evaluated_days]
    x_of = {d: i for i, d in enumerate(days)}
    for i, (version, perf) in enumerate(result.versions.items()):
        color = colors[i % len(colors)]
        xs = [x_of[e["day"]] for e in perf.by_day if e["day"] in x_of]
        ys = [
            e["metrics"].get(metric) if e["metrics"].get(metric) is not None else float("nan")
            for e in perf.by_day
            if e["day"] in x_of
        ]
        ax.plot(xs, ys, marker="o", color=color, label=f"v{version}")
        base = perf.baseline.get(metric)
        if base is not None:
            ax.axhline(base, color=color, linestyle="--", alpha=0.6, label=f"v{version} baseline")
    ax.set_xticks(range(len(days)), [d[5:] for d in days], fontsize=6)
    ax.yaxis.set_major_locator(MaxNLocator(4))
    ax.tick_params(labelsize=6)
    ax.legend(fontsize=6, loc="best")
    ax.set_title(metric, fontsize=8)
    return reports.figure_to_img(
        fig, alt=f"{metric} per day", caption=f"{metric} per day vs baseline"
    )


def render_performance_report(result: PerformanceResult, *, title: str) -> str:
    """A self-contained HTML page: status, per-version comparison, per-day metrics and plots."""
    ok = {"ok": True, "degraded": False}.get(result.status)
    summary = f"<p>{reports.badge(ok, result.status)}</p>"
    facts = [
        ("evaluated days", ", ".join(d.isoformat() for d in result.evaluated_days)),
        ("predictions read", f"{result.predictions:,}"),
        ("labelled rows", f"{result.labelled_rows_total:,}"),
        ("min labels", str(result.min_labels)),
        ("primary metric", result.primary_metric),
        ("model version (headline)", result.primary or "none"),
    ]
    summary += reports.table_html(facts, ["", ""])
    if result.reasons:
        summary += (
            "<ul>" + "".join(f"<li>{reports.escape(r)}</li>" for r in result.reasons) + "</ul>"
        )
    rows = []
    for version, perf in result.versions.items():
        for metric, d in perf.degradation.items():
            rows.append(
                {
                    "version": version,
                    "status": perf.status,
                    "labelled rows": perf.labelled_rows,
                    "metric": metric,
                    "current": d["current"],
                    "baseline": d["baseline"],
                    "degradation": d["abs"],
                    "relative": d["rel"],
                }
            )
    day_rows = []
    for version, perf in result.versions.items():
        for entry in perf.by_day:
            row: dict[str, Any] = {
                "day": entry["day"],
                "version": version,
                "labelled rows": entry["labelled_rows"],
            }
            row.update(entry["metrics"])
            day_rows.append(row)
    plot_metrics = [result.primary_metric] + [
        m
        for m in ("accuracy", "f1", "log_loss", "mae", "r2")
        if m != result.primary_metric and any(m in p.metrics for p in result.versions.values())
    ]
    plots = "".join(_plot_metric(result, m) for m in plot_metrics[:4]) if result.versions else ""
    sections = [
        ("Summary", summary),
        ("Versus baseline", reports.table_html(rows)),
        ("Per day", reports.table_html(day_rows)),
    ]
    if plots:
        sections.append(("Plots", f"<div class='grid'>{plots}</div>"))
    return reports.page(title, sections, subtitle="predictions joined with late labels;")


# --------------------------------------------------------------------------- orchestration


def _baselines(
    client: MlflowClient | None,
    joined: pd.DataFrame,
    *,
    baseline: str | Mapping[str, float],
    metrics: Sequence[str],
    registered_model_name: str | None,
    alias: str,
) -> dict[str, dict[str, float]]:
    versions = (
        sorted(joined["model_version"].astype(str).unique().tolist())
        if "model_version" in joined.columns and len(joined)
        else (["unknown"] if len(joined) else [])
    )
    if isinstance(baseline, Mapping):
        fixed = {str(k): float(v) for k, v in baseline.items() if v is not None}
        return {v: fixed for v in versions}
    if baseline not in ("model_version", "champion"):
        raise MonitoringError(
            f"baseline must be 'model_version', 'champion' or a dict of metrics, got {baseline!r}"
        )
    if client is None:
        return {}
    from mlflow.exceptions import MlflowException

    def run_metrics(run_id: str) -> dict[str, float]:
        try:
            return dict(client.get_run(run_id).data.metrics)
        except MlflowException as err:
            log.warning("Cannot read the metrics of run %s: %s", run_id, err)
            return {}

    if baseline == "champion":
        name = registered_model_name
        if not name and "model_name" in joined.columns and len(joined):
            name = str(joined["model_name"].dropna().iloc[0])
        if not name:
            raise MonitoringError("baseline='champion' needs registered_model_name")
        champion = resolve_model_version(client, registered_model_name=name, alias=alias)
        base = (
            baseline_from_run_metrics(run_metrics(champion.run_id), metrics)
            if champion.run_id
            else {}
        )
        return {v: base for v in versions}
    out: dict[str, dict[str, float]] = {}
    for version in versions:
        group = (
            joined[joined["model_version"].astype(str) == version]
            if version != "unknown"
            else joined
        )
        run_ids = (
            group["model_run_id"].dropna().astype(str).unique().tolist()
            if "model_run_id" in group.columns
            else []
        )
        run_id = run_ids[0] if run_ids else None
        if run_id is None and registered_model_name and version != "unknown":
            try:
                run_id = client.get_model_version(registered_model_name, version).run_id
            except MlflowException:
                run_id = None
        out[version] = baseline_from_run_metrics(run_metrics(run_id), metrics) if run_id else {}
    return out


def run_performance_check(
    predictions_data: str,
    labels_data: str,
    *,
    run_day: date,
    as_of: datetime | None = None,
    label_delay: int = 7,
    evaluation_window: int = 1,
    task: Task = "classification",
    metrics: Sequence[str] | None = None,
    primary_metric: str | None = None,
    min_labels: int = DEFAULT_MIN_LABELS,
    max_degradation: float | Mapping[str, float] | None = DEFAULT_MAX_DEGRADATION,
    max_relative_degradation: float | Mapping[str, float] | None = None,
    baseline: str | Mapping[str, float] = "model_version",
    client: MlflowClient | None = None,
    registered_model_name: str | None = None,
    alias: str = "champion",
    target: str = "churned",
    entity_column: str = "customer_id",
    label_time_column: str = "event_timestamp",
    score_column: str | None = "probability",
    prediction_column: str | None = "prediction",
    threshold: float = 0.5,
    report_uri: str | None = None,
    report_name: str | None = None,
    identity: RunIdentity | None = None,
    monitoring_experiment: str | None = DEFAULT_MONITORING_EXPERIMENT,
    artifact_location: str | None = None,
    conn_id: str | None = None,
) -> dict[str, Any]:
    """Evaluate matured predictions against late labels; write the report; log the run.

    Args:
        predictions_data: base URI of the predictions partitions (``<base>/dt=YYYY-MM-DD``).
        labels_data: base URI of the label partitions (keyed by arrival day), or one dataset.
        run_day: the run's day (the date of its data interval start).
        as_of: only labels available by then count (default: the end of ``run_day``).
        label_delay: days until labels mature; the newest evaluated day is
            ``run_day - label_delay``.
        evaluation_window: number of matured days evaluated (ending at that day).
        baseline: ``"model_version"`` (each version's training-run metrics), ``"champion"``
            (the alias holder's run metrics for every version) or a dict of metric values.
        Other arguments: see :func:`evaluate_performance` and
            :func:`~mlops_provider.core.monitoring.run_drift_check`.

    Returns:
        The JSON-serializable summary (see ``docs/monitoring.md``).

    Raises:
        MonitoringError: missing labels dataset or columns, bad parameters.
    """
    started = time.perf_counter()
    days = evaluation_days(run_day, label_delay, evaluation_window)
    as_of = as_of or datetime.combine(run_day + timedelta(days=1), dtime(0), tzinfo=timezone.utc)
    wanted_pred = [
        entity_column,
        *(c for c in (prediction_column, score_column) if c),
        "model_name",
        "model_version",
        "model_run_id",
        "scored_at",
    ]
    preds, missing = read_predictions(predictions_data, days, columns=wanted_pred, conn_id=conn_id)
    for col in (c for c in (prediction_column, score_column) if c):
        if (
            len(preds)
            and col not in preds.columns
            and not (col == prediction_column and score_column in preds.columns)
        ):
            raise MonitoringError(
                f"predictions under {predictions_data} have no column {col!r} "
                f"(columns: {[c for c in preds.columns if c != DAY_COLUMN]})"
            )
    log.info(
        "Evaluating predictions of %s: %d rows read (%d day(s) without a partition)",
        ", ".join(d.isoformat() for d in days),
        len(preds),
        len(missing),
    )
    if len(preds):
        labels = read_labels(
            labels_data,
            days[0],
            max(run_day, days[-1]),
            conn_id=conn_id,
        )
        if len(labels) == 0 and not set((entity_column, target, label_time_column)) <= set(
            labels.columns
        ):
            labels = pd.DataFrame(columns=[entity_column, label_time_column, target])
        joined = join_predictions_with_labels(
            preds,
            labels,
            entity_column=entity_column,
            target=target,
            label_time_column=label_time_column,
            as_of=as_of,
        )
    else:
        joined = preds.assign(**{target: pd.Series(dtype="float64")})
    metric_list = list(
        metrics or (CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS)
    )
    primary = primary_metric or DEFAULT_PRIMARY[task]
    if primary not in metric_list:
        metric_list.insert(0, primary)
    baselines = _baselines(
        client,
        joined,
        baseline=baseline,
        metrics=metric_list,
        registered_model_name=registered_model_name,
        alias=alias,
    )
    try:
        result = evaluate_performance(
            joined,
            days=days,
            baselines=baselines,
            task=task,
            metrics=metric_list,
            primary_metric=primary,
            min_labels=min_labels,
            max_degradation=max_degradation,
            max_relative_degradation=max_relative_degradation,
            target=target,
            score_column=score_column,
            prediction_column=prediction_column,
            threshold=threshold,
            predictions=len(preds),
            missing_days=missing,
        )
    except ValueError as err:
        raise MonitoringError(str(err)) from err
    summary = result.summary()

    name = report_name or registered_model_name or summary["model_name"]
    if not name:
        from mlops_provider.core.monitoring import dataset_name

        name = dataset_name(predictions_data)
    json_uri, html_uri = report_paths(
        report_uri, kind="performance", name=name, day=run_day, json_name="performance.json"
    )
    summary.update(
        {
            "run_day": run_day.isoformat(),
            "label_delay": label_delay,
            "evaluation_window": evaluation_window,
            "report_uri": html_uri,
            "report_json_uri": json_uri,
            "mlflow_run_id": None,
            "mlflow_experiment_id": None,
        }
    )
    run_id: str | None = None
    tags: dict[str, str] = {}
    if client is not None and identity is not None and monitoring_experiment:
        experiment_id = ensure_monitoring_experiment(
            client, monitoring_experiment, artifact_location
        )
        tags = {
            "mlops.performance_status": result.status,
            "mlops.evaluated_days": ",".join(d.isoformat() for d in days),
            "mlops.model_versions": ",".join(result.versions),
            "mlops.report_uri": html_uri,
            "mlops.predictions_data": predictions_data,
            "mlops.labels_data": labels_data,
        }
        if summary["model_name"]:
            tags["mlops.reference_model_name"] = str(summary["model_name"])
        if summary["model_version"]:
            tags["mlops.reference_model_version"] = str(summary["model_version"])
        run_id, _ = get_or_create_monitoring_run(
            client, experiment_id, identity, kind="performance", tags=tags
        )
        summary["mlflow_run_id"] = run_id
        summary["mlflow_experiment_id"] = experiment_id

    html = render_performance_report(
        result, title=f"Model performance: {name} (run day {run_day.isoformat()})"
    )
    json_text = json.dumps(summary, indent=1, allow_nan=False, default=str)
    io.write_text(json_text, json_uri, conn_id=conn_id)
    io.write_text(html, html_uri, conn_id=conn_id)
    log.info("Performance report written to %s", html_uri)

    if client is not None and run_id is not None:
        values: dict[str, float | int | bool | None] = {
            "labelled_rows": summary["labelled_rows"],
            "labelled_rows_total": result.labelled_rows_total,
            "predictions": result.predictions,
            "degraded": result.status == "degraded",
            "insufficient_data": result.status == "insufficient_data",
        }
        for metric, value in summary["metrics"].items():
            values[metric] = value
            values[f"baseline.{metric}"] = summary["baseline"].get(metric)
            values[f"degradation_abs.{metric}"] = summary["degradation"][metric]["abs"]
            values[f"degradation_rel.{metric}"] = summary["degradation"][metric]["rel"]
        for version, perf in result.versions.items():
            values[f"v{version}.labelled_rows"] = perf.labelled_rows
            for metric, value in perf.metrics.items():
                values[f"v{version}.{metric}"] = value
        log_monitoring_results(
            client,
            run_id,
            metrics=values,
            tags=tags,
            texts={"performance/performance.json": json_text, "performance/report.html": html},
        )
    log.info(
        "Performance check done in %.1fs: status=%s, %d labelled rows, %s",
        time.perf_counter() - started,
        result.status,
        summary["labelled_rows"],
        summary["metrics"],
    )
    return summary
