"""Data, prediction and target drift of a monitoring task: resolve -> compare -> publish.

* **resolve**: the reference is the training profile of a model (any model URI, or
  ``registered_model_name`` + ``alias``; :mod:`.reference`) or one or more dataset URIs
  (missing days of a window are skipped); the columns come from :mod:`.columns`;
* **compare**: :func:`mlops_provider.core.drift.detect_drift` (pure statistics) on the columns;
* **publish**: the result (docs/results.md, status ``drift`` / ``no_drift``), the JSON + HTML
  report and the monitoring run (:func:`.publish.publish_monitoring_result`).

Every error is raised before anything is written. Everything is Airflow-free.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from mlops_provider.core import io, models
from mlops_provider.core.drift import DriftResult, detect_drift, render_drift_report
from mlops_provider.core.errors import NotFoundError, ParameterError
from mlops_provider.core.monitoring.columns import ColumnPlan, plan_columns
from mlops_provider.core.monitoring.errors import MonitoringError
from mlops_provider.core.monitoring.publish import (
    DEFAULT_MONITORING_EXPERIMENT,
    MonitoringRun,
    check_report_location,
    publish_monitoring_result,
)
from mlops_provider.core.monitoring.reference import (
    REFERENCE_PROFILE_ARTIFACT,
    load_reference_profile,
    resolve_reference,
    training_record,
)
from mlops_provider.core.params import as_float, as_list
from mlops_provider.core.profile import ReferenceProfile
from mlops_provider.core.results import make_result
from mlops_provider.core.runs import RunIdentity
from mlops_provider.core.times import iso, utcnow

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "DRIFT_METHODS_TAG",
    "DriftReference",
    "compare_with_reference",
    "detect_options",
    "drift_result",
    "resolve_drift_reference",
    "run_drift_check",
]

log = logging.getLogger(__name__)

#: Run tag of a drift run: ``{column: method}``, what each ``drift_score.<column>`` metric is.
DRIFT_METHODS_TAG = "mlops.drift_methods"

#: ``detect_drift`` arguments the check sets itself (not accepted in ``drift_options``).
_OWN_OPTIONS = frozenset(
    {"columns", "method", "threshold", "per_column_method", "per_column_threshold", "drift_share"}
)


# --------------------------------------------------------------------------- resolve


@dataclass
class DriftReference:
    """What the current data is compared with.

    :param label: the reference in words (report, messages).
    :param reference: the model URI, or the dataset URI(s) comma-separated.
    :param columns: reference column -> Arrow type (``None`` for profile columns).
    :param model: the model named (its profile is the reference when ``profile`` is set).
    :param uris: the reference datasets (empty for a profile).
    :param also_excluded: the label and entity columns the model's training run recorded.
    """

    label: str
    reference: str
    columns: dict[str, pa.DataType | None]
    model: models.ModelVersion | None = None
    profile: ReferenceProfile | None = None
    uris: list[str] = field(default_factory=list)
    also_excluded: tuple[str, ...] = ()


def _schema(uris: Sequence[str], conn_id: str | None, side: str) -> pa.Schema:
    schemas = []
    for uri in uris:
        try:
            schemas.append(io.open_dataset(uri, conn_id=conn_id).schema)
        except io.DatasetError as err:
            raise MonitoringError(f"{side} data {err}") from err
    try:
        return pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise MonitoringError(
            f"{side} data: the datasets {list(uris)} have incompatible schemas: {err}"
        ) from err


def _read(uris: Sequence[str], columns: Sequence[str], conn_id: str | None, side: str) -> pa.Table:
    tables = []
    for uri in uris:
        try:
            tables.append(io.read_table(uri, columns=list(columns), conn_id=conn_id))
        except io.DatasetError as err:
            raise MonitoringError(f"{side} data {err}") from err
    table = (
        tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="permissive")
    )
    if table.num_rows == 0:
        raise MonitoringError(
            f"{side} data {', '.join(uris)} has no rows: nothing to compare"
            + (" (an empty partition?)" if side == "current" else "")
        )
    return table


def _existing(uris: list[str], conn_id: str | None) -> list[str]:
    """A window of earlier partitions: days that do not exist (yet) are skipped."""
    if len(uris) == 1:
        return uris
    present = [u for u in uris if io.exists(u, conn_id=conn_id)]
    if not present:
        raise MonitoringError(f"none of the reference datasets exists: {', '.join(uris)}")
    if len(present) < len(uris):
        log.warning(
            "Reference datasets missing (skipped): %s", [u for u in uris if u not in present]
        )
    return present


def _named_model(client: MlflowClient | None, **model: str | None) -> models.ModelVersion | None:
    """The model named beside reference datasets (only to name it), if it exists."""
    if client is None or not (
        model["model_uri"] or (model["registered_model_name"] and model["alias"])
    ):
        return None
    try:
        return resolve_reference(client, **model)
    except NotFoundError as err:
        log.info("No model version to name in the report: %s", err)
        return None


def resolve_drift_reference(
    client: MlflowClient | None,
    reference_uris: list[str],
    *,
    registered_model_name: str | None = None,
    alias: str | None = models.DEFAULT_ALIAS,
    model_uri: str | None = None,
    artifact_path: str = REFERENCE_PROFILE_ARTIFACT,
    conn_id: str | None = None,
) -> DriftReference:
    """The reference: the model's training profile (no ``reference_uris``) or the datasets.

    :raises MonitoringError: no client for a model reference, no profile, no dataset.
    :raises ModelNotFoundError: the model or alias does not exist (model reference only).
    """
    model_args = {
        "registered_model_name": registered_model_name,
        "alias": alias,
        "model_uri": model_uri,
    }
    if not reference_uris:
        if client is None:
            raise MonitoringError("a model reference needs an MLflow client")
        model = resolve_reference(client, **model_args)
        profile = load_reference_profile(client, model, artifact_path)
        label = f"training profile of {model.describe()}"
        return DriftReference(label, model.uri, dict.fromkeys(profile.columns), model, profile)
    named = _named_model(client, **model_args)
    uris = _existing(reference_uris, conn_id)
    schema = _schema(uris, conn_id, "reference")
    record = training_record(client, named.run_id) if client is not None and named else None
    also = (record.target, *(record.entity_columns or ())) if record else ()
    return DriftReference(
        label="reference " + ", ".join(io.dataset_name(u) for u in uris),
        reference=uris[0] if len(uris) == 1 else ",".join(uris),
        columns={f.name: f.type for f in schema},
        model=named,
        uris=uris,
        also_excluded=tuple(c for c in also if c),
    )


def _plan(
    reference: DriftReference,
    current_uris: list[str],
    columns: Sequence[str] | None,
    exclude_columns: Sequence[str] | None,
    conn_id: str | None,
) -> ColumnPlan:
    current_schema = _schema(current_uris, conn_id, "current")
    plan = plan_columns(
        columns,
        exclude_columns,
        reference.columns,
        list(current_schema.names),
        reference_label=reference.label,
        current_label=", ".join(current_uris),
        also_excluded=reference.also_excluded,
    )
    if plan.only_in_reference:
        log.warning(
            "Reference columns missing from the current data (not compared): %s",
            plan.only_in_reference,
        )
    if reference.profile is not None and columns is None and plan.only_in_reference:
        raise MonitoringError(
            f"column(s) {plan.only_in_reference} of the reference profile "
            f"({reference.label}) are missing from the current data {', '.join(current_uris)} "
            f"(it has: {list(current_schema.names)}); renamed or dropped upstream?"
        )
    return plan


# --------------------------------------------------------------------------- compare


def detect_options(
    *,
    method: str | None = None,
    drift_threshold: float | None = None,
    per_column_method: Mapping[str, str] | None = None,
    per_column_threshold: Mapping[str, Any] | None = None,
    drift_share: float = 0.5,
    drift_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The keyword arguments of ``detect_drift`` (``drift_options`` holds the others).

    :raises ParameterError: a threshold is not a number, or ``drift_options`` names an unknown
        or an already set argument.
    """
    extra = dict(drift_options or {})
    thresholds = {
        str(k): as_float(v, f"per_column_threshold[{k!r}]")
        for k, v in (per_column_threshold or {}).items()
    }
    known = set(inspect.signature(detect_drift).parameters) - {"reference", "current"}
    wrong = sorted(set(extra) - (known - _OWN_OPTIONS))
    if wrong:
        raise ParameterError(
            "drift_options",
            f"{wrong} are not options of detect_drift or have their own parameter; "
            f"accepted: {sorted(known - _OWN_OPTIONS)}",
        )
    return {
        "method": method,
        "threshold": drift_threshold,
        "per_column_method": dict(per_column_method or {}) or None,
        "per_column_threshold": {k: v for k, v in thresholds.items() if v is not None} or None,
        "drift_share": drift_share,
        **extra,
    }


def compare_with_reference(
    reference: DriftReference,
    current_uris: Sequence[str],
    plan: ColumnPlan,
    options: Mapping[str, Any],
    conn_id: str | None = None,
) -> DriftResult:
    """Read the planned columns and run :func:`~mlops_provider.core.drift.detect_drift`."""
    current = _read(current_uris, plan.columns, conn_id, "current")
    ref_input: Any = reference.profile
    if ref_input is None:
        ref_input = _read(reference.uris, plan.columns, conn_id, "reference")
    log.info(
        "Comparing %d column(s) of %d current rows with %s",
        len(plan.columns),
        current.num_rows,
        reference.label,
    )
    result = detect_drift(ref_input, current, columns=plan.columns, **options)
    for skipped_name, reason in plan.skipped.items():
        result.skipped_columns.setdefault(skipped_name, reason)
    return result


# --------------------------------------------------------------------------- publish


def _column_summary(result: DriftResult) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, col in result.columns.items():
        score = col.score
        out[name] = {
            "method": col.method,
            "score": None if score is None or not math.isfinite(score) else round(score, 6),
            "threshold": col.threshold,
            "drifted": bool(col.drifted),
            "reasons": list(col.reasons),
        }
        if col.new_categories:
            out[name]["new_categories"] = [str(c) for c in col.new_categories[:20]]
    return out


def _reasons(result: DriftResult, reference: DriftReference) -> list[str]:
    verdict = ">=" if result.dataset_drift else "<"
    reasons = [
        f"{'dataset drift' if result.dataset_drift else 'no dataset drift'}: "
        f"{result.n_drifted} of {result.n_columns} column(s) drifted (share "
        f"{result.drift_share:.2f} {verdict} drift_share {result.share_threshold:g}) against "
        f"{reference.label}"
    ]
    for name, col in result.columns.items():
        if col.drifted:
            score = "no score" if col.score is None else f"{col.method} {col.score:.4g}"
            reasons.append(
                f"{name}: {', '.join(col.reasons)} ({score}, threshold {col.threshold:g})"
            )
    return reasons


def drift_result(
    result: DriftResult,
    reference: DriftReference,
    plan: ColumnPlan,
    current_uris: Sequence[str],
    interval: tuple[datetime | None, datetime | None] = (None, None),
) -> dict[str, Any]:
    """The task's result (docs/results.md): status ``drift`` / ``no_drift``, ``passed`` = no
    dataset drift, ``model`` = the reference model, ``rows`` = current rows, then the details
    (docs/monitoring.md)."""
    model = reference.model
    return make_result(
        status="drift" if result.dataset_drift else "no_drift",
        passed=not result.dataset_drift,
        reasons=_reasons(result, reference),
        model=model,
        rows=int(result.n_current_rows),
        dataset_drift=bool(result.dataset_drift),
        drift_share=round(float(result.drift_share), 6),
        n_drifted=int(result.n_drifted),
        n_columns=int(result.n_columns),
        drift_share_threshold=float(result.share_threshold),
        drifted_columns=result.drifted_columns,
        columns=_column_summary(result),
        reference=reference.reference,
        reference_model_name=model.name if model else None,
        reference_model_version=model.version if model else None,
        reference_run_id=model.run_id if model else None,
        current_data=current_uris[0] if len(current_uris) == 1 else list(current_uris),
        current_rows=int(result.n_current_rows),
        reference_rows=int(result.n_reference_rows),
        columns_only_in_reference=plan.only_in_reference,
        columns_only_in_current=plan.only_in_current,
        data_interval_start=iso(interval[0]),
        data_interval_end=iso(interval[1]),
    )


def _run_tags(out: Mapping[str, Any], current_uris: Sequence[str]) -> dict[str, str]:
    methods = {name: col["method"] for name, col in out["columns"].items()}
    tags = {
        "mlops.reference": str(out["reference"]),
        "mlops.current_data": ",".join(current_uris)[:5000],
        "mlops.dataset_drift": str(bool(out["dataset_drift"])).lower(),
        # what each drift_score.<column> metric is (p-value or distance, docs/metrics.md)
        DRIFT_METHODS_TAG: json.dumps(methods, separators=(",", ":"))[:5000],
    }
    if out["reference_model_name"] is not None:
        tags["mlops.reference_model_name"] = str(out["reference_model_name"])
        tags["mlops.reference_model_version"] = str(out["reference_model_version"])
    if out["reference_run_id"] is not None:
        tags["mlops.reference_run_id"] = str(out["reference_run_id"])
    return tags


def _run_metrics(result: DriftResult) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        "dataset_drift": bool(result.dataset_drift),
        "drift_share": float(result.drift_share),
        "n_drifted": int(result.n_drifted),
        "n_columns": int(result.n_columns),
        "current_rows": int(result.n_current_rows),
    }
    for name, col in result.columns.items():
        metrics[f"drift_score.{name}"] = col.score
        metrics[f"drifted.{name}"] = bool(col.drifted)
    return metrics


def _publish(
    out: dict[str, Any],
    result: DriftResult,
    reference: DriftReference,
    current_uris: Sequence[str],
    *,
    name: str | None,
    day: date,
    report_uri: str | None,
    run: MonitoringRun,
    conn_id: str | None,
) -> None:
    """Render the report and publish it with the result (the name defaults to the current
    dataset's)."""
    name = name or io.dataset_name(current_uris[0])
    html = render_drift_report(
        result,
        title=f"Drift report: {name} {day.isoformat()}",
        reference_label=reference.label,
        current_label=f"{io.dataset_name(current_uris[0])} {day.isoformat()}",
    )
    publish_monitoring_result(
        out,
        kind="drift",
        name=name,
        day=day,
        html=html,
        json_name="drift.json",
        metrics=_run_metrics(result),
        tags=_run_tags(out, current_uris),
        report_uri=report_uri,
        run=run,
        document_extra={"generated_at": iso(utcnow()), "result": result.to_dict()},
        document_omit=("columns",),
        conn_id=conn_id,
    )


def run_drift_check(
    current_data: str | Sequence[str],
    *,
    reference_data: str | Sequence[str] | None = None,
    client: MlflowClient | None = None,
    registered_model_name: str | None = None,
    alias: str | None = models.DEFAULT_ALIAS,
    model_uri: str | None = None,
    reference_artifact_path: str = REFERENCE_PROFILE_ARTIFACT,
    columns: Sequence[str] | None = None,
    exclude_columns: Sequence[str] | None = None,
    options: Mapping[str, Any] | None = None,
    report_uri: str | None = None,
    report_name: str | None = None,
    data_interval_start: datetime | None = None,
    data_interval_end: datetime | None = None,
    identity: RunIdentity | None = None,
    experiment_name: str | None = DEFAULT_MONITORING_EXPERIMENT,
    artifact_location: str | None = None,
    conn_id: str | None = None,
) -> dict[str, Any]:
    """Compare the current data with the reference, write the report, log the monitoring run.

    The parameters are those of
    :class:`~mlops_provider.operators.monitoring.DriftDetectionOperator` (docs/monitoring.md);
    ``options`` are the arguments of :func:`detect_options`, ``client`` the MLflow client
    (registry and monitoring run), ``identity`` the task whose monitoring run is logged to, and
    ``conn_id`` the connection of remote URIs.

    :returns: the result (docs/results.md; status ``drift`` / ``no_drift``).
    :raises CoreError: (MonitoringError, DriftInputError, ModelNotFoundError, DatasetError,
        ParameterError: also a report location that cannot be written) before anything is
        written; a failure while publishing marks the monitoring run FAILED.
    """
    started = time.perf_counter()
    current_uris = [str(u) for u in as_list(current_data, "current_data") or []]
    if not current_uris:
        raise ParameterError("current_data", "is empty: give the dataset URI to check")
    check_report_location(report_uri, conn_id=conn_id)
    reference = resolve_drift_reference(
        client,
        [str(u) for u in as_list(reference_data, "reference_data") or []],
        registered_model_name=registered_model_name,
        alias=alias,
        model_uri=model_uri,
        artifact_path=reference_artifact_path,
        conn_id=conn_id,
    )
    plan = _plan(reference, current_uris, columns, exclude_columns, conn_id)
    result = compare_with_reference(
        reference, current_uris, plan, detect_options(**(options or {})), conn_id
    )
    out = drift_result(
        result, reference, plan, current_uris, (data_interval_start, data_interval_end)
    )
    _publish(
        out,
        result,
        reference,
        current_uris,
        name=report_name or out["reference_model_name"] or registered_model_name,
        day=(data_interval_start or utcnow()).date(),
        report_uri=report_uri,
        run=MonitoringRun(client, identity, experiment_name, artifact_location),
        conn_id=conn_id,
    )
    log.info(
        "Drift check done in %.1fs: dataset_drift=%s, %d of %d columns drifted %s",
        time.perf_counter() - started,
        result.dataset_drift,
        result.n_drifted,
        result.n_columns,
        result.drifted_columns,
    )
    return out
