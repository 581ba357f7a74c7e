"""Model performance on labels that arrive late, compared with the model's training baseline.

Batch scoring writes one predictions partition per day (``<predictions>/dt=YYYY-MM-DD``: one row
per entity with ``prediction``, ``probability``, ``model_name``, ``model_version``,
``model_run_id``, ``scored_at``). Ground truth arrives ``label_delay`` days later in label
partitions keyed by arrival day (rows with the entity columns, the event time of the scored
activity, the label and ``label_available_at``).

On run day ``D`` the monitor evaluates the *matured* prediction days ``D - label_delay`` (or a
window of ``evaluation_window`` days ending there): it joins each prediction with the label of
the same entity and event day, using only labels available by the end of the run's data
interval (no peeking into the future on a backfill), computes the metrics per day and per
model version (:func:`mlops_provider.core.metrics.compute_metrics`: string, boolean and integer
labels alike), and compares each version with its own baseline (the holdout metrics its
training run logged). Fewer than ``min_labels`` labelled rows is reported as
``insufficient_data``, never as a degradation. Degradation is signed so that positive means
worse (:func:`mlops_provider.core.metrics.degradation`).

The label and entity columns default to what the training run of the newest predictions'
model recorded (:func:`.reference.training_record`); nothing here knows a domain.

Layout: days and joins -> pure statistics (:func:`evaluate_performance`) -> the check
(:func:`run_performance_check`: read, resolve baselines, evaluate, publish).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from datetime import time as dtime
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from mlops_provider.core import io, models
from mlops_provider.core.errors import CoreError, ParameterError, did_you_mean
from mlops_provider.core.metrics import (
    baseline_from_run_metrics,
    check_task,
    compute_metrics,
    degradation,
    metric_names,
)
from mlops_provider.core.metrics import primary_metric as default_primary_metric
from mlops_provider.core.monitoring.errors import MonitoringError
from mlops_provider.core.monitoring.publish import (
    DEFAULT_MONITORING_EXPERIMENT,
    MonitoringRun,
    check_report_location,
    publish_monitoring_result,
)
from mlops_provider.core.monitoring.reference import (
    ENTITY_COLUMNS_TAG,
    TARGET_TAG,
    TrainingRecord,
    training_record,
)
from mlops_provider.core.params import as_float, parse_text
from mlops_provider.core.results import make_result
from mlops_provider.core.runs import RunIdentity
from mlops_provider.core.times import to_utc

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlops_provider.core.mlflow_target import MlflowTarget

log = logging.getLogger(__name__)

__all__ = [
    "DAY_COLUMN",
    "DEFAULT_MAX_DEGRADATION",
    "DEFAULT_MIN_LABELS",
    "LabelColumns",
    "CounterfactualRequest",
    "MetricPlan",
    "PerformanceResult",
    "VersionPerformance",
    "evaluate_performance",
    "evaluation_days",
    "join_predictions_with_labels",
    "limits",
    "metric_plan",
    "performance_result",
    "read_labels",
    "read_predictions",
    "run_performance_check",
]

Status = Literal["ok", "degraded", "insufficient_data"]

DEFAULT_MAX_DEGRADATION = 0.05
DEFAULT_MIN_LABELS = 200
DAY_COLUMN = "_day"
#: Bookkeeping columns batch scoring writes on every prediction row.
MODEL_NAME, MODEL_VERSION, MODEL_RUN_ID, SCORED_AT = (
    "model_name",
    "model_version",
    "model_run_id",
    "scored_at",
)


# --------------------------------------------------------------------------- days and joins


def evaluation_days(run_day: date, label_delay: int, evaluation_window: int = 1) -> list[date]:
    """The matured prediction days evaluated on ``run_day`` (oldest first).

    :raises ParameterError: a negative delay or an empty window.
    """
    if label_delay < 0:
        raise ParameterError("label_delay", f"must be >= 0 days, got {label_delay}")
    if evaluation_window < 1:
        raise ParameterError("evaluation_window", f"must be >= 1 day, got {evaluation_window}")
    last = run_day - timedelta(days=label_delay)
    return [last - timedelta(days=i) for i in reversed(range(evaluation_window))]


def _utc_days(values: pd.Series, what: str) -> pd.Series:
    try:
        ts = pd.to_datetime(values, utc=True)
    except (TypeError, ValueError) as err:
        raise MonitoringError(f"{what} {values.name!r} does not hold times: {err}") from err
    return ts.dt.tz_convert("UTC").dt.date


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise MonitoringError(
            f"{what} have no column {missing[0]!r} (columns: {list(frame.columns)})"
        )


def _prediction_days(preds: pd.DataFrame, prediction_time_column: str | None) -> pd.DataFrame:
    if DAY_COLUMN in preds.columns:
        return preds
    if not prediction_time_column or prediction_time_column not in preds.columns:
        raise MonitoringError(
            "predictions need a day: read them with read_predictions (partition day) or "
            f"give prediction_time_column (columns: {list(preds.columns)})"
        )
    days = _utc_days(preds[prediction_time_column], "prediction_time_column")
    return preds.assign(**{DAY_COLUMN: days})


def join_predictions_with_labels(
    predictions: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    entity_columns: str | Sequence[str],
    target: str,
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
    label are dropped.

    :returns: the prediction rows that have a label, with ``target`` added.
    :raises MonitoringError: a required column is missing, or the keys cannot be joined.
    """
    keys = [entity_columns] if isinstance(entity_columns, str) else list(entity_columns)
    _require(labels, [*keys, target, label_time_column], "labels")
    _require(predictions, keys, "predictions")
    preds = _prediction_days(predictions, prediction_time_column)
    lab = labels[labels[target].notna()]
    if as_of is not None and label_available_column and label_available_column in lab.columns:
        available = pd.to_datetime(lab[label_available_column], utc=True)
        lab = lab[available <= pd.Timestamp(to_utc(as_of, what="as_of"))]
    lab = lab.assign(**{DAY_COLUMN: _utc_days(lab[label_time_column], "label_time_column")})
    if label_available_column and label_available_column in lab.columns:
        lab = lab.sort_values(label_available_column, kind="stable")
    lab = lab.drop_duplicates([*keys, DAY_COLUMN], keep="last")[[*keys, target, DAY_COLUMN]]
    preds = preds.drop(columns=[target], errors="ignore")
    try:
        return preds.merge(lab, on=[*keys, DAY_COLUMN], how="inner", validate="many_to_one")
    except (ValueError, TypeError) as err:
        raise MonitoringError(
            f"cannot join predictions with labels on ({', '.join(keys)}, event day): {err}"
        ) from err


def read_predictions(
    predictions_data: str,
    days: Sequence[date],
    *,
    columns: Sequence[str] | None = None,
    conn_id: str | None = None,
) -> tuple[pd.DataFrame, list[date]]:
    """Read the predictions partitions of ``days`` (``<base>/dt=YYYY-MM-DD``).

    :returns: ``(frame with a _day column, days without a partition)``.
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

    :raises MonitoringError: ``labels_data`` does not exist.
    """
    partitions = io.list_partitions(labels_data, conn_id=conn_id)
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


# --------------------------------------------------------------------------- statistics


def _r(value: float | None) -> float | None:
    return None if value is None else round(float(value), 6)


def _round(values: Mapping[str, float | None]) -> dict[str, float | None]:
    return {k: _r(v) for k, v in values.items()}


def _rounded_degradation(
    values: Mapping[str, Mapping[str, float | None]],
) -> dict[str, dict[str, float | None]]:
    return {k: {"abs": _r(v["abs"]), "rel": _r(v["rel"])} for k, v in values.items()}


def _day_str(value: Any) -> str:
    if isinstance(value, (date, datetime)):
        return value.isoformat()[:10]
    return str(value)[:10]


def limits(value: Any, name: str, primary: str) -> dict[str, float]:
    """A degradation limit per metric from a number (the primary metric's), a mapping metric ->
    number, or the text of either; ``None`` or ``""`` means no limit.

    :raises ParameterError: not a number or a mapping of numbers (names ``name``).
    """
    if isinstance(value, str):
        value = parse_text(value) if value.strip() else None
    if isinstance(value, Mapping):
        out = {str(k): as_float(v, f"{name}[{k!r}]") for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None}
    number = as_float(value, name)
    return {} if number is None else {primary: number}


@dataclass(frozen=True)
class MetricPlan:
    """What is computed and what counts as degraded (see :func:`metric_plan`)."""

    task: Literal["classification", "regression"]
    metrics: list[str]
    primary: str
    min_labels: int
    max_abs: dict[str, float]
    max_rel: dict[str, float]


def metric_plan(
    problem_type: str = "classification",
    metrics: Sequence[str] | None = None,
    primary_metric: str | None = None,
    min_labels: int = DEFAULT_MIN_LABELS,
    max_degradation: Any = DEFAULT_MAX_DEGRADATION,
    max_relative_degradation: Any = None,
) -> MetricPlan:
    """Check the metric parameters: the metrics (default: all of the task's, the primary
    first), the minimum labelled rows and the degradation limits (:func:`limits`).

    :raises CoreError: unknown task or metric, ``min_labels < 1``, limits of metrics that are not
        computed (each error names its parameter).
    """
    task = check_task(problem_type)
    known = metric_names(task)
    metric_list = list(metrics or known)
    chosen = primary_metric or default_primary_metric(task)
    if chosen not in metric_list:
        metric_list.insert(0, chosen)
    unknown = [m for m in metric_list if m not in known]
    if unknown:
        name = "primary_metric" if unknown == [chosen] and primary_metric else "metrics"
        raise ParameterError(
            name,
            f"unknown {task} metric(s) {unknown}; known: {list(known)}"
            f"{did_you_mean(unknown[0], known)}",
        )
    if min_labels < 1:
        raise ParameterError("min_labels", f"must be >= 1, got {min_labels}")
    max_abs = limits(max_degradation, "max_degradation", chosen)
    max_rel = limits(max_relative_degradation, "max_relative_degradation", chosen)
    for name, given in (("max_degradation", max_abs), ("max_relative_degradation", max_rel)):
        extra = sorted(set(given) - set(metric_list))
        if extra:
            raise ParameterError(
                name,
                f"limits for metrics that are not computed: {extra}; computed: "
                f"{metric_list}{did_you_mean(extra[0], metric_list)}",
            )
    return MetricPlan(task, metric_list, chosen, int(min_labels), max_abs, max_rel)


@dataclass(frozen=True)
class LabelColumns:
    """The columns of predictions and labels (``None``: the training run's record)."""

    target: str | None = None
    entity_columns: list[str] | None = None
    label_time_column: str = "event_timestamp"
    score_column: str | None = "probability"
    prediction_column: str | None = "prediction"
    decision_threshold: float = 0.5

    def scorer(self, plan: MetricPlan) -> Callable[[pd.DataFrame], dict[str, float | None]]:
        """The metrics of ``plan`` on a frame of labelled predictions."""

        def score(frame: pd.DataFrame) -> dict[str, float | None]:
            prob = self.score_column
            pred_col = self.prediction_column
            y_score = frame[prob].to_numpy() if prob and prob in frame else None
            y_pred = frame[pred_col].to_numpy() if pred_col and pred_col in frame else None
            if plan.task == "regression" and y_pred is None:
                y_pred = y_score
            try:
                return compute_metrics(
                    plan.task,
                    frame[str(self.target)].to_numpy(),
                    y_pred=y_pred,
                    y_score=y_score,
                    metrics=plan.metrics,
                    threshold=self.decision_threshold,
                )
            except (TypeError, ValueError) as err:
                if isinstance(err, CoreError):
                    raise
                raise MonitoringError(
                    f"cannot compute {plan.task} metrics from the label column {self.target!r} "
                    f"and the prediction columns {pred_col!r} / {prob!r}: {err}"
                ) from err

        return score


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
            "degradation": _rounded_degradation(self.degradation),
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
    task: str
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
        """JSON-serializable details (the result's keys beside the common ones)."""
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
            "degradation": _rounded_degradation(pv.degradation) if pv else {},
            "model_name": pv.model_name if pv else None,
            "model_version": pv.model_version if pv else None,
            "model_versions": list(self.versions),
            "by_version": {v: p.to_dict() for v, p in self.versions.items()},
            "by_day": self.by_day,
        }


def _breach(
    version: str,
    name: str,
    d: Mapping[str, float | None],
    lim_abs: float | None,
    lim_rel: float | None,
    labelled: int,
) -> str | None:
    """Why ``name`` of ``version`` counts as degraded, or ``None`` when it does not."""
    worse, rel = d["abs"], d["rel"]
    assert worse is not None
    if not (
        (lim_abs is not None and worse > lim_abs)
        or (lim_rel is not None and rel is not None and rel > lim_rel)
    ):
        return None
    given = (("max_degradation", lim_abs), ("max_relative_degradation", lim_rel))
    bounds = ", ".join(f"{label} {value:g}" for label, value in given if value is not None)
    share = f" ({rel:.1%})" if rel is not None else ""
    return (
        f"v{version}: {name} {d['current']:.4f} is worse than the baseline "
        f"{d['baseline']:.4f} by {worse:.4f}{share} (limit: {bounds}); {labelled} labelled rows"
    )


def _version_status(
    version: str,
    labelled: int,
    baseline: Mapping[str, float],
    degr: Mapping[str, Mapping[str, float | None]],
    plan: MetricPlan,
) -> tuple[Status, list[str]]:
    if labelled < plan.min_labels:
        return "insufficient_data", [
            f"v{version}: only {labelled} labelled rows (min_labels {plan.min_labels}); "
            "not compared with the baseline"
        ]
    if not baseline:
        return "ok", [f"v{version}: no baseline metrics; nothing to compare with"]
    status: Status = "ok"
    reasons: list[str] = []
    for name in plan.metrics:
        lim_abs, lim_rel = plan.max_abs.get(name), plan.max_rel.get(name)
        if lim_abs is None and lim_rel is None:
            continue
        d = degr[name]
        if d["abs"] is None:
            reasons.append(
                f"v{version}: {name} cannot be compared (current {d['current']}, "
                f"baseline {d['baseline']})"
            )
            continue
        why = _breach(version, name, d, lim_abs, lim_rel, labelled)
        if why:
            status = "degraded"
            reasons.append(why)
    return status, reasons


def _first(group: pd.DataFrame, column: str) -> str | None:
    if column in group.columns and group[column].notna().any():
        return str(group[column].dropna().iloc[0])
    return None


def _last_scored(group: pd.DataFrame) -> str:
    if SCORED_AT in group.columns and group[SCORED_AT].notna().any():
        return str(pd.to_datetime(group[SCORED_AT], utc=True).max().isoformat())
    return _day_str(group[DAY_COLUMN].max())


def _version_performance(
    version: str,
    group: pd.DataFrame,
    baseline: Mapping[str, float],
    plan: MetricPlan,
    score: Callable[[pd.DataFrame], dict[str, float | None]],
) -> VersionPerformance:
    current = score(group)
    degr = degradation(current, baseline, plan.metrics)
    status, reasons = _version_status(version, len(group), baseline, degr, plan)
    by_day = [
        {"day": _day_str(day), "labelled_rows": len(rows), "metrics": _round(score(rows))}
        for day, rows in group.groupby(DAY_COLUMN, sort=True)
    ]
    return VersionPerformance(
        model_version=version,
        model_name=_first(group, MODEL_NAME),
        run_id=_first(group, MODEL_RUN_ID),
        labelled_rows=len(group),
        metrics=current,
        baseline=dict(baseline),
        degradation=degr,
        status=status,
        reasons=reasons,
        by_day=by_day,
        last_scored=_last_scored(group),
    )


def _days_summary(
    joined: pd.DataFrame,
    days: Sequence[date],
    version_column: str,
    score: Callable[[pd.DataFrame], dict[str, float | None]],
) -> list[dict[str, Any]]:
    out = []
    for day in days:
        rows = joined[joined[DAY_COLUMN] == day] if len(joined) else joined
        entry: dict[str, Any] = {"day": day.isoformat(), "labelled_rows": len(rows)}
        if len(rows):
            entry["model_versions"] = (
                sorted(rows[version_column].astype(str).unique().tolist())
                if version_column in rows.columns
                else []
            )
            entry["metrics"] = _round(score(rows))
        out.append(entry)
    return out


def _headline(
    versions: Mapping[str, VersionPerformance],
    days: Sequence[date],
    missing_days: Sequence[date],
    min_labels: int,
) -> tuple[str | None, Status, list[str]]:
    """The version of the most recent predictions, its status, and the reasons."""
    reasons = []
    if missing_days:
        reasons.append(
            "no predictions partition for " + ", ".join(d.isoformat() for d in missing_days)
        )
    if not versions:
        reasons.append(
            f"no labelled predictions for {', '.join(d.isoformat() for d in days)} "
            f"(min_labels {min_labels})"
        )
        return None, "insufficient_data", reasons
    primary = max(versions.values(), key=lambda v: (v.last_scored or "", v.labelled_rows))
    reasons += primary.reasons
    for version, perf in versions.items():
        if version != primary.model_version and perf.status == "degraded":
            reasons += [f"(earlier version) {r}" for r in perf.reasons]
    return primary.model_version, primary.status, reasons


def _version_keys(joined: pd.DataFrame, version_column: str) -> pd.Series:
    if version_column in joined.columns and len(joined):
        return joined[version_column].astype(str)
    return pd.Series(["unknown"] * len(joined), index=joined.index, dtype=object)


def evaluate_performance(
    joined: pd.DataFrame,
    *,
    days: Sequence[date],
    baselines: Mapping[str, Mapping[str, float]],
    plan: MetricPlan | None = None,
    columns: LabelColumns | None = None,
    version_column: str = MODEL_VERSION,
    predictions: int | None = None,
    missing_days: Sequence[date] = (),
    **plan_args: Any,
) -> PerformanceResult:
    """Metrics per model version and per day, compared with each version's baseline (pure).

    :param joined: labelled predictions (:func:`join_predictions_with_labels`), with ``_day``.
    :param days: the evaluated days.
    :param baselines: model version -> baseline metrics (missing: no comparison for it).
    :param plan: the metrics and limits; or ``plan_args``, the arguments of
        :func:`metric_plan` (``problem_type``, ``metrics``, ``primary_metric``, ``min_labels``,
        ``max_degradation``, ``max_relative_degradation``).
    :param columns: label, score and prediction columns and the decision threshold
        (``columns.target`` is required).
    :param predictions: number of prediction rows read; ``missing_days``: evaluated days
        without a predictions partition.
    :raises CoreError: invalid parameters or labels/predictions the metrics cannot use.
    """
    plan = plan or metric_plan(**plan_args)
    columns = columns or LabelColumns()
    if not columns.target:
        raise ParameterError("target", "the label column is required")
    score = columns.scorer(plan)
    versions = {
        str(version): _version_performance(
            str(version), group, baselines.get(str(version), {}), plan, score
        )
        for version, group in joined.groupby(_version_keys(joined, version_column), sort=True)
    }
    primary, status, reasons = _headline(versions, days, missing_days, plan.min_labels)
    return PerformanceResult(
        status=status,
        reasons=reasons,
        evaluated_days=list(days),
        primary_metric=plan.primary,
        min_labels=plan.min_labels,
        task=plan.task,
        versions=versions,
        primary=primary,
        by_day=_days_summary(joined, days, version_column, score),
        predictions=int(predictions if predictions is not None else len(joined)),
        labelled_rows_total=len(joined),
        missing_prediction_days=list(missing_days),
    )


# --------------------------------------------------------------------------- the check


def _newest_run_id(predictions: pd.DataFrame) -> str | None:
    """The ``model_run_id`` of the most recently scored prediction rows."""
    if MODEL_RUN_ID not in predictions.columns or not predictions[MODEL_RUN_ID].notna().any():
        return None
    order = SCORED_AT if SCORED_AT in predictions.columns else DAY_COLUMN
    rows = predictions[predictions[MODEL_RUN_ID].notna()]
    newest = rows.sort_values(order, kind="stable").iloc[-1]
    return str(newest[MODEL_RUN_ID])


def _training_record(
    client: MlflowClient | None,
    predictions: pd.DataFrame,
    registered_model_name: str | None,
    alias: str,
) -> tuple[TrainingRecord, str]:
    """What the training run of the newest predictions' model (else of the alias holder)
    recorded, and that run in words."""
    if client is None:
        return TrainingRecord(), "no MLflow connection is used to read the training run"
    run_id = _newest_run_id(predictions)
    if run_id:
        return training_record(client, run_id), f"training run {run_id} of the newest predictions"
    if registered_model_name:
        holder = models.alias_holder(client, registered_model_name, alias)
        if holder is not None:
            return training_record(
                client, holder.run_id
            ), f"the training run of {holder.describe()}"
        return TrainingRecord(), models.cold_start_reason(client, registered_model_name, alias)
    return TrainingRecord(), "the predictions name no model_run_id and no registered_model_name"


def complete_columns(
    columns: LabelColumns,
    predictions: pd.DataFrame,
    client: MlflowClient | None,
    *,
    registered_model_name: str | None = None,
    alias: str = models.DEFAULT_ALIAS,
) -> LabelColumns:
    """``columns`` with the label and entity columns the model's training run recorded where
    they were not given (nothing is needed without predictions).

    :raises ParameterError: not given and not recorded (names the parameter and the tag).
    """
    if predictions.empty or (columns.target and columns.entity_columns):
        return columns
    record, source = _training_record(client, predictions, registered_model_name, alias)
    target = columns.target or record.target
    if not target:
        raise ParameterError(
            "target",
            f"not given, and {source} records no label column (tag {TARGET_TAG}); "
            "pass target=<label column>",
        )
    entities = columns.entity_columns or list(record.entity_columns or ())
    if not entities:
        raise ParameterError(
            "entity_columns",
            f"not given, and {source} records none (tag {ENTITY_COLUMNS_TAG}); pass "
            "entity_columns=[...] (the columns that join predictions with labels)",
        )
    return replace(columns, target=target, entity_columns=entities)


@dataclass
class LabelledWindow:
    """The evaluated days' predictions joined with their labels."""

    days: list[date]
    predictions: int
    missing_days: list[date]
    joined: pd.DataFrame
    columns: LabelColumns


@dataclass(frozen=True)
class _Columns:
    """The columns a dataset's files have (read from their schemas, no rows): ``where`` names
    the partitions (or the dataset) they were read from."""

    what: str
    where: str
    names: list[str]

    def require(self, parameter: str, wanted: Sequence[str | None]) -> None:
        """:raises ParameterError: a column of ``wanted`` (given as ``parameter``) is missing;
        names the files and their columns."""
        for column in (c for c in wanted if c):
            if column not in self.names:
                raise ParameterError(
                    parameter,
                    f"column {column!r} is not in the {self.what} {self.where} (columns: "
                    f"{self.names}){did_you_mean(column, self.names)}",
                )


def _file_columns(
    what: str, base: str, first: date, last: date, conn_id: str | None
) -> _Columns | None:
    """The columns of the ``dt=`` partitions of ``[first, last]`` under ``base`` (else of its
    newest partition: the layout to expect even before that window's data arrives; a dataset
    without partitions: its own), from the parquet schemas; ``None`` when there is nothing to
    read a schema from."""
    partitions = io.list_partitions(base, conn_id=conn_id)
    if partitions:
        uris = [u for d, u in partitions.items() if first <= d <= last]
        uris = uris or [partitions[max(partitions)]]
    elif io.exists(base, conn_id=conn_id):
        uris = [base]
    else:
        return None
    names: list[str] = []
    read: list[str] = []
    for uri in uris:
        try:
            schema = io.open_dataset(uri, conn_id=conn_id).schema
        except io.DatasetEmpty:
            continue
        names += [n for n in schema.names if n not in names]
        read.append(uri)
    return _Columns(what, ", ".join(read), names) if read else None


def _check_columns(
    predictions_data: str,
    labels_data: str,
    days: Sequence[date],
    run_day: date,
    columns: LabelColumns,
    conn_id: str | None,
) -> None:
    """Check the given (or recorded) columns against the files' schemas, before the data is
    found sufficient or not: the predictions of the evaluated ``days``, the labels of the
    first day to the run day (the partitions :func:`read_window` reads; else the newest).
    Columns not known yet (``None``) are not checked.

    :raises ParameterError: a column missing from the files (names them and their columns).
    """
    preds = _file_columns("predictions", predictions_data, days[0], days[-1], conn_id)
    if preds is not None:
        preds.require("entity_columns", columns.entity_columns or [])
        preds.require("score_column", [columns.score_column])
        if columns.score_column not in preds.names:
            preds.require("prediction_column", [columns.prediction_column])
    labels = _file_columns("labels", labels_data, days[0], max(run_day, days[-1]), conn_id)
    if labels is not None:
        labels.require("target", [columns.target])
        labels.require("entity_columns", columns.entity_columns or [])
        labels.require("label_time_column", [columns.label_time_column])


def read_window(
    predictions_data: str,
    labels_data: str,
    *,
    run_day: date,
    days: list[date],
    as_of: datetime | None,
    columns: LabelColumns,
    resolve: Callable[[LabelColumns, pd.DataFrame], LabelColumns],
    conn_id: str | None = None,
) -> LabelledWindow:
    """Read the predictions of ``days`` and join them with the labels available ``as_of``
    (default: the end of ``run_day``), from the label partitions of the first day to
    ``run_day``. ``resolve`` completes the label and entity columns from the predictions read
    (:func:`complete_columns`)."""
    as_of = as_of or datetime.combine(run_day + timedelta(days=1), dtime(0), timezone.utc)
    bookkeeping = (columns.prediction_column, columns.score_column)
    wanted = None
    if columns.entity_columns:
        wanted = [*columns.entity_columns, *(c for c in bookkeeping if c)]
        wanted += [MODEL_NAME, MODEL_VERSION, MODEL_RUN_ID, SCORED_AT]
    preds, missing = read_predictions(predictions_data, days, columns=wanted, conn_id=conn_id)
    columns = resolve(columns, preds)
    _check_columns(predictions_data, labels_data, days, run_day, columns, conn_id)
    log.info(
        "Evaluating predictions of %s: %d rows read (%d day(s) without a partition)",
        ", ".join(d.isoformat() for d in days),
        len(preds),
        len(missing),
    )
    target = columns.target or "label"
    if not len(preds):
        joined = preds.assign(**{target: pd.Series(dtype="float64")})
        return LabelledWindow(days, 0, missing, joined, replace(columns, target=target))
    keys, time_column = list(columns.entity_columns or ()), columns.label_time_column
    labels = read_labels(labels_data, days[0], max(run_day, days[-1]), conn_id=conn_id)
    if len(labels) == 0 and not {*keys, target, time_column} <= set(labels.columns):
        labels = pd.DataFrame(columns=[*keys, time_column, target])
    joined = join_predictions_with_labels(
        preds,
        labels,
        entity_columns=keys,
        target=target,
        label_time_column=time_column,
        as_of=as_of,
    )
    return LabelledWindow(days, len(preds), missing, joined, columns)


def evaluate_window(
    window: LabelledWindow, plan: MetricPlan, baselines: Mapping[str, Mapping[str, float]]
) -> PerformanceResult:
    """:func:`evaluate_performance` on a window read by :func:`read_window`."""
    return evaluate_performance(
        window.joined,
        days=window.days,
        baselines=baselines,
        plan=plan,
        columns=window.columns,
        predictions=window.predictions,
        missing_days=window.missing_days,
    )


def _run_metrics(client: MlflowClient, run_id: str) -> dict[str, float]:
    from mlflow.exceptions import MlflowException

    try:
        return dict(client.get_run(run_id).data.metrics)
    except MlflowException as err:
        log.warning("Cannot read the metrics of run %s: %s", run_id, err)
        return {}


def _version_run_id(
    client: MlflowClient, joined: pd.DataFrame, version: str, registered_model_name: str | None
) -> str | None:
    group = joined[joined[MODEL_VERSION].astype(str) == version] if version != "unknown" else joined
    if MODEL_RUN_ID in group.columns and group[MODEL_RUN_ID].notna().any():
        return str(group[MODEL_RUN_ID].dropna().astype(str).iloc[0])
    if not registered_model_name or version == "unknown":
        return None
    try:
        uri = models.version_uri(registered_model_name, version)
        return models.resolve(client, uri, ready=False).run_id
    except models.ModelNotFoundError:
        return None


def resolve_baselines(
    client: MlflowClient | None,
    joined: pd.DataFrame,
    *,
    baseline: str | Mapping[str, Any],
    metrics: Sequence[str],
    registered_model_name: str | None = None,
    alias: str = models.DEFAULT_ALIAS,
) -> dict[str, dict[str, float]]:
    """Model version -> baseline metrics: fixed values (a mapping), each version's training run
    (``"model_version"``) or the alias holder's (``"champion"``) for every version.

    :raises ParameterError: an unknown baseline, or ``"champion"`` without a model name.
    :raises ModelNotFoundError: the alias does not exist.
    """
    versions = sorted(set(_version_keys(joined, MODEL_VERSION).tolist()))
    if isinstance(baseline, Mapping):
        fixed = {str(k): as_float(v, f"baseline[{k!r}]") for k, v in baseline.items()}
        return {v: {k: x for k, x in fixed.items() if x is not None} for v in versions}
    if baseline not in ("model_version", "champion"):
        raise ParameterError(
            "baseline",
            f"must be 'model_version', 'champion' or a dict of metrics, got {baseline!r}",
        )
    if client is None:
        return {}
    if baseline == "model_version":
        run_ids = {v: _version_run_id(client, joined, v, registered_model_name) for v in versions}
        return {
            v: baseline_from_run_metrics(_run_metrics(client, r), metrics) if r else {}
            for v, r in run_ids.items()
        }
    name = registered_model_name or _first(joined, MODEL_NAME)
    if not name:
        raise ParameterError("registered_model_name", "baseline='champion' needs the model name")
    champion = models.resolve_alias(client, name, alias)
    run = champion.run_id
    base = baseline_from_run_metrics(_run_metrics(client, run), metrics) if run else {}
    return {v: base for v in versions}


def performance_result(result: PerformanceResult, **details: Any) -> dict[str, Any]:
    """The task's result (docs/results.md): status ``ok`` / ``degraded`` /
    ``insufficient_data``, ``passed`` = not degraded, ``model`` = the version that scored the
    newest predictions, ``rows`` = its labelled rows, then the details (docs/monitoring.md)."""
    summary = result.summary()
    status, reasons = summary.pop("status"), summary.pop("reasons")
    pv = result.primary_version
    model = None
    if pv is not None and pv.model_version != "unknown":
        name = pv.model_name
        model = {
            "name": name,
            "version": pv.model_version if name is not None else None,
            "run_id": pv.run_id,
            "uri": models.version_uri(name, pv.model_version) if name is not None else None,
        }
    return make_result(
        status=status,
        passed=status != "degraded",
        reasons=reasons,
        model=model,
        rows=summary["labelled_rows"],
        **summary,
        **details,
    )


def _run_tags(out: Mapping[str, Any], sources: tuple[str, str]) -> dict[str, str]:
    tags = {
        "mlops.performance_status": str(out["status"]),
        "mlops.evaluated_days": ",".join(out["evaluated_days"]),
        "mlops.model_versions": ",".join(out["model_versions"]),
        "mlops.predictions_data": sources[0],
        "mlops.labels_data": sources[1],
    }
    if out["model_name"]:
        tags["mlops.reference_model_name"] = str(out["model_name"])
    if out["model_version"]:
        tags["mlops.reference_model_version"] = str(out["model_version"])
    return tags


@dataclass(frozen=True)
class CounterfactualRequest:
    """Score the current model's labelled rows with its earlier champions too
    (:mod:`.counterfactual`): the features come from ``input_data`` (``<input_data>/dt=...``,
    what batch scoring read); ``target`` is where the models are loaded from (default: MLflow's
    current tracking URI)."""

    input_data: str
    target: MlflowTarget | None = None


def counterfactual_keys(
    request: CounterfactualRequest | None,
    window: LabelledWindow,
    result: PerformanceResult,
    plan: MetricPlan,
    client: MlflowClient | None,
    registered_model_name: str | None,
    alias: str,
    conn_id: str | None,
) -> dict[str, Any]:
    """The result's ``comparison``, ``counterfactuals``, ``gain`` and ``counterfactual_notes``
    (docs/monitoring.md); empty with a note when not requested or not possible."""
    from mlops_provider.core.monitoring.counterfactual import (
        Scoring,
        safe_counterfactuals,
        score_counterfactuals,
    )

    def empty(note: str) -> dict[str, Any]:
        return {
            "comparison": None,
            "counterfactuals": [],
            "gain": {},
            "counterfactual_notes": [note],
        }

    if request is None:
        return empty("earlier champions not requested (counterfactuals=False)")
    pv = result.primary_version
    name = registered_model_name or (pv.model_name if pv else None)
    if pv is None or client is None or not name:
        return empty("no registered model with labelled predictions to compare")
    if pv.labelled_rows < plan.min_labels:
        return empty(f"only {pv.labelled_rows} labelled rows (min_labels {plan.min_labels})")
    joined = window.joined
    labelled = joined[_version_keys(joined, MODEL_VERSION) == pv.model_version]
    log.info(
        "Scoring the %d labelled rows of v%s with its earlier champions (features: %s)",
        len(labelled),
        pv.model_version,
        request.input_data,
    )
    columns = window.columns
    # earlier champions are scored by the batch scorer's code: its column names
    written = LabelColumns(target=columns.target, decision_threshold=columns.decision_threshold)
    scoring = Scoring(
        label=str(columns.target),
        keys=list(columns.entity_columns or ()),
        current=columns.scorer(plan),
        predicted=written.scorer(plan),
    )
    return safe_counterfactuals(
        lambda: score_counterfactuals(
            client,
            labelled,
            name=name,
            current=pv.model_version,
            input_data=request.input_data,
            scoring=scoring,
            alias=alias,
            target=request.target,
            conn_id=conn_id,
        )
    )


def _run_values(out: Mapping[str, Any], result: PerformanceResult) -> dict[str, Any]:
    values: dict[str, Any] = {
        "labelled_rows": out["labelled_rows"],
        "labelled_rows_total": result.labelled_rows_total,
        "predictions": result.predictions,
        "degraded": result.status == "degraded",
        "insufficient_data": result.status == "insufficient_data",
    }
    for metric, value in out["metrics"].items():
        values[metric] = value
        values[f"baseline.{metric}"] = out["baseline"].get(metric)
        values[f"degradation_abs.{metric}"] = out["degradation"][metric]["abs"]
        values[f"degradation_rel.{metric}"] = out["degradation"][metric]["rel"]
    for role, gains in (out.get("gain") or {}).items():
        for metric, value in gains.items():
            values[f"gain.{role}.{metric}"] = value
    for version, perf in result.versions.items():
        values[f"v{version}.labelled_rows"] = perf.labelled_rows
        for metric, value in perf.metrics.items():
            values[f"v{version}.{metric}"] = value
    return values


def _publish(
    out: dict[str, Any],
    result: PerformanceResult,
    *,
    name: str | None,
    run_day: date,
    report_uri: str | None,
    run: MonitoringRun,
    sources: tuple[str, str],
    conn_id: str | None,
) -> None:
    from mlops_provider.core.monitoring.performance_report import render_performance_report

    name = name or io.dataset_name(sources[0])
    html = render_performance_report(
        result, title=f"Model performance: {name} (run day {run_day.isoformat()})", out=out
    )
    publish_monitoring_result(
        out,
        kind="performance",
        name=name,
        day=run_day,
        html=html,
        json_name="performance.json",
        metrics=_run_values(out, result),
        tags=_run_tags(out, sources),
        report_uri=report_uri,
        run=run,
        conn_id=conn_id,
    )


def run_performance_check(
    predictions_data: str,
    labels_data: str,
    *,
    run_day: date,
    as_of: datetime | None = None,
    label_delay: int = 7,
    evaluation_window: int = 1,
    plan: MetricPlan | Mapping[str, Any] | None = None,
    columns: LabelColumns | Mapping[str, Any] | None = None,
    baseline: str | Mapping[str, Any] = "model_version",
    client: MlflowClient | None = None,
    registered_model_name: str | None = None,
    alias: str = models.DEFAULT_ALIAS,
    report_uri: str | None = None,
    report_name: str | None = None,
    identity: RunIdentity | None = None,
    experiment_name: str | None = DEFAULT_MONITORING_EXPERIMENT,
    artifact_location: str | None = None,
    conn_id: str | None = None,
    counterfactuals: CounterfactualRequest | None = None,
) -> dict[str, Any]:
    """Evaluate matured predictions against late labels; write the report; log the run.

    The parameters are ModelPerformanceOperator's (docs/monitoring.md): ``plan`` the metrics
    and limits (a :class:`MetricPlan` or :func:`metric_plan`'s arguments), ``columns`` the
    columns (a :class:`LabelColumns` or its fields; label and entity columns default to the
    training run's record), ``as_of`` when labels must be available (default: the end of
    ``run_day``); ``client``, ``identity``, ``conn_id`` as for the drift check;
    ``counterfactuals``: also score the labelled rows with earlier champions (docs/monitoring.md).

    :returns: the result (docs/results.md; status ``ok`` / ``degraded`` / ``insufficient_data``).
    :raises CoreError: missing labels dataset or a column missing from its files (checked on
        the schemas before data sufficiency), bad parameters, an unwritable report location.
    """
    started = time.perf_counter()
    plan = plan if isinstance(plan, MetricPlan) else metric_plan(**(plan or {}))
    check_report_location(report_uri, conn_id=conn_id)
    window = read_window(
        predictions_data,
        labels_data,
        run_day=run_day,
        days=evaluation_days(run_day, label_delay, evaluation_window),
        as_of=as_of,
        columns=columns if isinstance(columns, LabelColumns) else LabelColumns(**(columns or {})),
        resolve=lambda cols, preds: complete_columns(
            cols, preds, client, registered_model_name=registered_model_name, alias=alias
        ),
        conn_id=conn_id,
    )
    baselines = resolve_baselines(
        client,
        window.joined,
        baseline=baseline,
        metrics=plan.metrics,
        registered_model_name=registered_model_name,
        alias=alias,
    )
    result = evaluate_window(window, plan, baselines)
    out = performance_result(
        result,
        run_day=run_day.isoformat(),
        label_delay=label_delay,
        evaluation_window=evaluation_window,
        **counterfactual_keys(
            counterfactuals, window, result, plan, client, registered_model_name, alias, conn_id
        ),
    )
    _publish(
        out,
        result,
        name=report_name or registered_model_name or out["model_name"],
        run_day=run_day,
        report_uri=report_uri,
        run=MonitoringRun(client, identity, experiment_name, artifact_location),
        sources=(predictions_data, labels_data),
        conn_id=conn_id,
    )
    _log_done(out, started)
    return out


def _log_done(out: Mapping[str, Any], started: float) -> None:
    log.info(
        "Performance check done in %.1fs: status=%s, %d labelled rows, %s; gain over earlier "
        "champions on the same rows: %s",
        time.perf_counter() - started,
        out["status"],
        out["labelled_rows"],
        out["metrics"],
        out["gain"] or "-",
    )
