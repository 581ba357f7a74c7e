"""Drift monitoring: resolve the reference, run drift detection, write reports, log to MLflow.

This module orchestrates :func:`mlops_provider.core.drift.detect_drift` for a monitoring task:

* the reference is either the training profile of a registered model version (alias ->
  version -> source run -> artifact ``monitoring/reference_profile.json``) or one or more
  dataset URIs;
* columns are auto-detected (the profile's columns, or the columns both datasets share, minus
  identifiers, timestamps and labels) or listed;
* the JSON result and the HTML report are written atomically to a report location (a rerun
  replaces them);
* metrics go to one MLflow *monitoring run* per (dag_id, task_id, data interval), found again by
  its tags on a retry or rerun, so reruns never create a second run.

It also holds the pieces the performance monitor shares: model version resolution, the
monitoring run, report locations and partition listing. Everything is Airflow-free.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import math
import os
import posixpath
import re
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from mlops_provider.core import config, io
from mlops_provider.core.errors import InputError
from mlops_provider.core.profile import DriftInputError, ReferenceProfile

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from mlops_provider.core.drift import DriftResult

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_EXCLUDED_COLUMNS",
    "DEFAULT_EXCLUDED_PATTERNS",
    "DEFAULT_MONITORING_EXPERIMENT",
    "REFERENCE_PROFILE_ARTIFACT",
    "DriftInputError",
    "ModelVersionRef",
    "MonitoringError",
    "RunIdentity",
    "dataset_name",
    "excluded",
    "get_or_create_monitoring_run",
    "list_partitions",
    "load_reference_profile",
    "log_monitoring_results",
    "parse_model_uri",
    "report_paths",
    "resolve_model_version",
    "run_drift_check",
]

#: Where the training run of a model version stores the monitoring reference profile.
REFERENCE_PROFILE_ARTIFACT = "monitoring/reference_profile.json"
DEFAULT_MONITORING_EXPERIMENT = "mlops-monitoring"

#: Columns never compared when columns are auto-detected: identifiers, event and scoring
#: times, labels and the scoring output's bookkeeping columns.
DEFAULT_EXCLUDED_COLUMNS: tuple[str, ...] = (
    "customer_id",
    "event_timestamp",
    "churned",
    "label",
    "target",
    "label_available_at",
    "created",
    "dt",
    "ds",
    "prediction",
    "probability",
    "model_name",
    "model_version",
    "model_run_id",
    "scored_at",
)
#: Name patterns (``fnmatch``) of identifiers and timestamps, excluded the same way.
DEFAULT_EXCLUDED_PATTERNS: tuple[str, ...] = ("id", "*_id", "*_at", "*_timestamp", "*_ts")

_TAG_PREFIX = "mlops."
_METRIC_NAME = re.compile(r"[^A-Za-z0-9_\-. /]")


class MonitoringError(InputError):
    """Monitoring cannot run on the given inputs; the message names the input and the problem."""


# --------------------------------------------------------------------------- model versions


@dataclass(frozen=True)
class ModelVersionRef:
    """A concrete registered model version and the run that produced it."""

    name: str
    version: str
    run_id: str | None
    alias: str | None = None
    source: str | None = None
    creation_timestamp: int | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        """``models:/<name>/<version>``."""
        return f"models:/{self.name}/{self.version}"

    @property
    def created_at(self) -> datetime | None:
        """Registration time (UTC)."""
        if not self.creation_timestamp:
            return None
        return datetime.fromtimestamp(self.creation_timestamp / 1000.0, tz=timezone.utc)

    def describe(self) -> str:
        """``churn v3 (@champion)``."""
        alias = f" (@{self.alias})" if self.alias else ""
        return f"{self.name} v{self.version}{alias}"

    @classmethod
    def from_model_version(cls, mv: ModelVersion, alias: str | None = None) -> ModelVersionRef:
        """Build from an MLflow ``ModelVersion`` entity."""
        return cls(
            name=str(mv.name),
            version=str(mv.version),
            run_id=mv.run_id or None,
            alias=alias,
            source=mv.source,
            creation_timestamp=int(mv.creation_timestamp) if mv.creation_timestamp else None,
            tags=dict(mv.tags or {}),
        )


def parse_model_uri(model_uri: str) -> tuple[str, str | None, str | None]:
    """Split ``models:/<name>/<version>`` or ``models:/<name>@<alias>``.

    Returns ``(name, version, alias)`` (one of version/alias is set).

    Raises:
        MonitoringError: not a registry URI of either form.
    """
    if not model_uri.startswith("models:/"):
        raise MonitoringError(
            f"model_uri {model_uri!r} is not a registry URI (models:/<name>/<version> or "
            "models:/<name>@<alias>)"
        )
    rest = model_uri[len("models:/") :].strip("/")
    if "@" in rest:
        name, _, alias = rest.partition("@")
        if name and alias:
            return name, None, alias
    elif "/" in rest:
        name, _, version = rest.rpartition("/")
        if name and version.isdigit():
            return name, version, None
    raise MonitoringError(
        f"model_uri {model_uri!r} must look like models:/<name>/<version> or models:/<name>@<alias>"
    )


def resolve_model_version(
    client: MlflowClient,
    *,
    registered_model_name: str | None = None,
    alias: str | None = "champion",
    model_uri: str | None = None,
) -> ModelVersionRef:
    """Resolve a registered model (and alias) or a ``models:/`` URI to one concrete version.

    Raises:
        MonitoringError: nothing to resolve, or the model/alias/version does not exist.
    """
    from mlflow.exceptions import MlflowException

    version: str | None = None
    if model_uri:
        name, version, alias = parse_model_uri(model_uri)
    elif registered_model_name:
        name = registered_model_name
        if not alias:
            raise MonitoringError("alias is empty: give an alias (e.g. 'champion') or a model_uri")
    else:
        raise MonitoringError(
            "no model to resolve: give registered_model_name (+ alias) or model_uri"
        )
    try:
        if version is not None:
            mv = client.get_model_version(name, version)
        else:
            assert alias is not None
            mv = client.get_model_version_by_alias(name, alias)
    except MlflowException as err:
        what = f"version {version}" if version is not None else f"alias @{alias}"
        raise MonitoringError(
            f"registered model {name!r} has no {what} in the registry: {err.message}"
        ) from err
    return ModelVersionRef.from_model_version(mv, alias=alias)


def load_reference_profile(
    client: MlflowClient,
    model_version: ModelVersionRef,
    artifact_path: str = REFERENCE_PROFILE_ARTIFACT,
) -> ReferenceProfile:
    """Download and parse the reference profile logged by the version's training run.

    Raises:
        MonitoringError: the version has no source run, or the run has no such artifact.
    """
    from mlflow.exceptions import MlflowException

    if not model_version.run_id:
        raise MonitoringError(
            f"{model_version.describe()} has no source run: its reference profile "
            f"({artifact_path}) cannot be found; pass reference_data instead"
        )
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory(prefix="mlops-profile-") as tmp:
        try:
            local = client.download_artifacts(model_version.run_id, artifact_path, tmp)
        except (MlflowException, OSError) as err:
            raise MonitoringError(
                f"{model_version.describe()}: run {model_version.run_id} has no artifact "
                f"{artifact_path!r} (the training run must log the reference profile there): "
                f"{err}"
            ) from err
        if not os.path.isfile(local):
            raise MonitoringError(
                f"{model_version.describe()}: artifact {artifact_path!r} of run "
                f"{model_version.run_id} is not a file"
            )
        try:
            return ReferenceProfile.from_json(local)
        except (DriftInputError, KeyError, TypeError, ValueError) as err:
            raise MonitoringError(
                f"{model_version.describe()}: artifact {artifact_path!r} of run "
                f"{model_version.run_id} is not a valid reference profile: {err}"
            ) from err


# --------------------------------------------------------------------------- monitoring runs


@dataclass(frozen=True)
class RunIdentity:
    """What identifies a monitoring task's work: (dag_id, task_id, data interval, map_index)."""

    dag_id: str
    task_id: str
    data_interval_start: datetime | None = None
    data_interval_end: datetime | None = None
    map_index: int = -1
    run_id: str | None = None

    def key_tags(self) -> dict[str, str]:
        """The tags a monitoring run is found by (the Airflow run id is informative only)."""
        tags = {
            f"{_TAG_PREFIX}dag_id": self.dag_id,
            f"{_TAG_PREFIX}task_id": self.task_id,
            f"{_TAG_PREFIX}map_index": str(self.map_index),
        }
        if self.data_interval_start is not None:
            tags[f"{_TAG_PREFIX}data_interval_start"] = _iso(self.data_interval_start)
        if self.data_interval_end is not None:
            tags[f"{_TAG_PREFIX}data_interval_end"] = _iso(self.data_interval_end)
        if self.data_interval_start is None and self.run_id:
            tags[f"{_TAG_PREFIX}airflow_run_id"] = self.run_id
        return tags


def _iso(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat()


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def get_or_create_monitoring_run(
    client: MlflowClient,
    experiment_id: str,
    identity: RunIdentity,
    *,
    kind: str,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> tuple[str, bool]:
    """The monitoring run of ``identity`` (found by its tags), created if missing.

    Returns ``(run_id, created)``.
    """
    key = {**identity.key_tags(), f"{_TAG_PREFIX}monitoring_kind": kind}
    query = " and ".join(f"tags.`{k}` = {_quote(v)}" for k, v in key.items())
    found = client.search_runs(
        [experiment_id], filter_string=query, max_results=2, order_by=["attributes.start_time ASC"]
    )
    if found:
        if len(found) > 1:
            log.warning("several monitoring runs match %s; reusing the oldest", key)
        run_id = found[0].info.run_id
        log.info("Reusing monitoring run %s", run_id)
        return run_id, False
    all_tags = {**key, **(tags or {})}
    if identity.run_id:
        all_tags[f"{_TAG_PREFIX}airflow_run_id"] = identity.run_id
    day = identity.data_interval_start.date().isoformat() if identity.data_interval_start else ""
    name = run_name or f"{kind}-{identity.dag_id}.{identity.task_id}-{day}".rstrip("-")
    run = client.create_run(experiment_id, tags=all_tags, run_name=name)
    log.info("Created monitoring run %s (%s)", run.info.run_id, name)
    return run.info.run_id, True


def metric_name(name: str) -> str:
    """An MLflow-safe metric name (unsupported characters become ``_``)."""
    return _METRIC_NAME.sub("_", name)[:250]


def log_monitoring_results(
    client: MlflowClient,
    run_id: str,
    *,
    metrics: Mapping[str, float | int | bool | None],
    tags: Mapping[str, str] | None = None,
    texts: Mapping[str, str] | None = None,
) -> None:
    """Log metrics (``None``/NaN skipped), tags and text artifacts, then mark the run finished.

    A rerun logs the same keys again: MLflow shows the latest values; artifacts are replaced.
    """
    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    entries = []
    for name, value in metrics.items():
        if value is None:
            continue
        number = float(value)
        if math.isfinite(number):
            entries.append(Metric(metric_name(name), number, now, 0))
    tag_entries = [RunTag(k, str(v)[:5000]) for k, v in (tags or {}).items()]
    for start in range(0, max(len(entries), len(tag_entries)), 900):
        client.log_batch(
            run_id, metrics=entries[start : start + 900], tags=tag_entries[start : start + 900]
        )
    for artifact_file, text in (texts or {}).items():
        client.log_text(run_id, text, artifact_file)
    client.set_terminated(run_id, "FINISHED")


def ensure_monitoring_experiment(
    client: MlflowClient, name: str, artifact_location: str | None = None
) -> str:
    """Id of the monitoring experiment, created if missing."""
    from mlops_provider.core.mlflow_target import ensure_experiment

    return ensure_experiment(client, name, artifact_location)


# --------------------------------------------------------------------------- locations


def dataset_name(uri: str) -> str:
    """A short name for a dataset URI: its last path segment that is not a partition.

    ``/lake/features/customer_activity/dt=2026-01-05`` -> ``customer_activity``;
    ``/tmp/reference.parquet`` -> ``reference``; ``/lake/raw/dt=2026-01-05/part.parquet`` ->
    ``raw``.
    """
    parts = [p for p in uri.split("://", 1)[-1].rstrip("/").split("/") if p]
    if parts and "." in parts[-1].lstrip(".") and (len(parts) < 2 or "=" not in parts[-2]):
        return parts[-1].lstrip(".").split(".", 1)[0] or "dataset"
    for part in reversed(parts):
        if "=" in part or "." in part.lstrip("."):
            continue
        return part
    return "dataset"


def report_paths(
    report_uri: str | None, *, kind: str, name: str, day: date, json_name: str
) -> tuple[str, str]:
    """``(json_uri, html_uri)`` of a report.

    ``report_uri`` is a directory (``<dir>/<json_name>`` and ``<dir>/report.html``) or an
    ``.html`` file (the JSON goes next to it with the same stem). The default directory is
    ``<data_root>/reports/<kind>/<name>/dt=<day>``.
    """
    if not report_uri:
        base = io.join_uri(str(config.data_root()), "reports", kind, _safe(name))
        report_uri = io.partition_uri(base, day)
    if report_uri.lower().endswith((".html", ".htm")):
        stem = report_uri.rsplit(".", 1)[0]
        return f"{stem}.json", report_uri
    return io.join_uri(report_uri, json_name), io.join_uri(report_uri, "report.html")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", name) or "unnamed"


def list_partitions(
    base_uri: str, *, key: str = "dt", conn_id: str | None = None
) -> dict[date, str]:
    """``{day: uri}`` of the ``<key>=YYYY-MM-DD`` partitions directly under ``base_uri``.

    A missing base gives an empty mapping.
    """
    loc = io.resolve(base_uri, conn_id=conn_id)
    try:
        entries = loc.fs.ls(loc.path, detail=True)
    except FileNotFoundError:
        return {}
    out: dict[date, str] = {}
    prefix = f"{key}="
    for entry in entries:
        if entry.get("type") != "directory":
            continue
        leaf = posixpath.basename(str(entry["name"]).rstrip("/"))
        if not leaf.startswith(prefix):
            continue
        try:
            day = date.fromisoformat(leaf[len(prefix) :][:10])
        except ValueError:
            continue
        out[day] = io.join_uri(base_uri, leaf)
    return dict(sorted(out.items()))


# --------------------------------------------------------------------------- columns


def excluded(
    name: str,
    exclude_columns: Sequence[str] | None,
) -> bool:
    """Whether auto-detection leaves ``name`` out.

    With ``exclude_columns=None`` the defaults apply (:data:`DEFAULT_EXCLUDED_COLUMNS` and the
    :data:`DEFAULT_EXCLUDED_PATTERNS`); a given list replaces them (``fnmatch`` patterns allowed).
    """
    if exclude_columns is None:
        if name in DEFAULT_EXCLUDED_COLUMNS:
            return True
        patterns: Sequence[str] = DEFAULT_EXCLUDED_PATTERNS
    else:
        patterns = exclude_columns
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _supported(dtype: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(dtype)
        or pa.types.is_floating(dtype)
        or pa.types.is_boolean(dtype)
        or pa.types.is_string(dtype)
        or pa.types.is_large_string(dtype)
        or pa.types.is_dictionary(dtype)
        or pa.types.is_decimal(dtype)
        or pa.types.is_null(dtype)
    )


def _as_list(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


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


@dataclass
class _ColumnPlan:
    columns: list[str]
    skipped: dict[str, str]
    only_in_reference: list[str]
    only_in_current: list[str]


def _plan_columns(
    columns: Sequence[str] | None,
    exclude_columns: Sequence[str] | None,
    reference_columns: Mapping[str, pa.DataType | None],
    current_schema: pa.Schema,
    reference_label: str,
    current_label: str,
) -> _ColumnPlan:
    current_names = list(current_schema.names)
    if columns is not None:
        wanted = list(columns)
        if not wanted:
            raise MonitoringError("columns is an empty list: nothing to compare")
        missing_ref = [c for c in wanted if c not in reference_columns]
        missing_cur = [c for c in wanted if c not in current_names]
        if missing_ref:
            raise MonitoringError(
                f"column(s) {missing_ref} are not in the reference ({reference_label}); "
                f"it has: {sorted(reference_columns)}"
            )
        if missing_cur:
            raise MonitoringError(
                f"column(s) {missing_cur} are not in the current data ({current_label}); "
                f"it has: {current_names}"
            )
        return _ColumnPlan(wanted, {}, [], [])
    skipped: dict[str, str] = {}
    candidates = []
    for name, dtype in reference_columns.items():
        if excluded(name, exclude_columns):
            continue
        if dtype is not None and not _supported(dtype):
            skipped[name] = f"unsupported type {dtype}"
            continue
        candidates.append(name)
    only_in_reference = [c for c in candidates if c not in current_names]
    only_in_current = [
        c for c in current_names if c not in reference_columns and not excluded(c, exclude_columns)
    ]
    chosen = [c for c in candidates if c in current_names]
    if not chosen:
        raise MonitoringError(
            f"no columns to compare: the reference ({reference_label}) and the current data "
            f"({current_label}) share no comparable column (reference: {list(reference_columns)}, "
            f"current: {current_names})"
        )
    return _ColumnPlan(chosen, skipped, only_in_reference, only_in_current)


# --------------------------------------------------------------------------- drift check


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


def run_drift_check(
    current_data: str | Sequence[str],
    *,
    reference_data: str | Sequence[str] | None = None,
    client: MlflowClient | None = None,
    registered_model_name: str | None = None,
    alias: str | None = "champion",
    model_uri: str | None = None,
    reference_artifact_path: str = REFERENCE_PROFILE_ARTIFACT,
    columns: Sequence[str] | None = None,
    exclude_columns: Sequence[str] | None = None,
    method: str | None = None,
    threshold: float | None = None,
    per_column_method: Mapping[str, str] | None = None,
    per_column_threshold: Mapping[str, float] | None = None,
    drift_share: float = 0.5,
    drift_options: Mapping[str, Any] | None = None,
    report_uri: str | None = None,
    report_name: str | None = None,
    data_interval_start: datetime | None = None,
    data_interval_end: datetime | None = None,
    identity: RunIdentity | None = None,
    monitoring_experiment: str | None = DEFAULT_MONITORING_EXPERIMENT,
    artifact_location: str | None = None,
    conn_id: str | None = None,
) -> dict[str, Any]:
    """Compare the current data with the reference, write the reports, log the monitoring run.

    Args:
        current_data: dataset URI (or several, concatenated) of the data to check.
        reference_data: dataset URI(s) of the reference; when ``None`` the reference is the
            training profile of the model version given by ``registered_model_name`` +
            ``alias`` or ``model_uri`` (``client`` required).
        client: MLflow client for the registry and the monitoring run.
        registered_model_name, alias, model_uri: the reference model version (also named in the
            report and the run when ``reference_data`` is given).
        reference_artifact_path: run artifact holding the profile.
        columns: columns to compare (default: auto-detected, see :func:`excluded`).
        exclude_columns: replaces the default exclusions of auto-detection (fnmatch patterns).
        method, threshold, per_column_method, per_column_threshold, drift_share: passed to
            :func:`~mlops_provider.core.drift.detect_drift`.
        drift_options: other keyword arguments of ``detect_drift`` (e.g. ``correction``).
        report_uri: report directory or ``.html`` file (default
            ``<data_root>/reports/drift/<report_name>/dt=<day>``).
        report_name: name in the default report location (default: the registered model name,
            else the current dataset's name).
        data_interval_start, data_interval_end: the run's data interval (its start's date keys
            the report partition).
        identity: the task's identity; with it (and ``client`` and ``monitoring_experiment``)
            metrics are logged to the monitoring run of that identity.
        monitoring_experiment: MLflow experiment of monitoring runs; ``None`` disables logging.
        artifact_location: artifact root for a newly created monitoring experiment.
        conn_id: connection for remote dataset/report URIs.

    Returns:
        A JSON-serializable summary (see ``docs/monitoring.md``).

    Raises:
        MonitoringError: missing or empty data, no columns to compare, no reference profile.
        DriftInputError: invalid drift parameters (unknown method, bad threshold ...).
    """
    from mlops_provider.core.drift import detect_drift, render_drift_report

    current_uris = _as_list(current_data)
    if not current_uris:
        raise MonitoringError("current_data is empty: give the dataset URI to check")
    reference_uris = _as_list(reference_data)
    started = time.perf_counter()
    day = (data_interval_start or datetime.now(timezone.utc)).date()

    # Reference: a model version's training profile, or datasets.
    model_version: ModelVersionRef | None = None
    profile: ReferenceProfile | None = None
    if not reference_uris:
        if client is None:
            raise MonitoringError("a model reference needs an MLflow client")
        model_version = resolve_model_version(
            client, registered_model_name=registered_model_name, alias=alias, model_uri=model_uri
        )
        profile = load_reference_profile(client, model_version, reference_artifact_path)
        reference_label = f"training profile of {model_version.describe()}"
        reference = model_version.uri
        reference_columns: dict[str, pa.DataType | None] = dict.fromkeys(profile.columns)
    else:
        if client is not None and (model_uri or registered_model_name) and alias:
            try:  # only to name it in the report and the run
                model_version = resolve_model_version(
                    client,
                    registered_model_name=registered_model_name,
                    alias=alias,
                    model_uri=model_uri,
                )
            except MonitoringError as err:
                log.info("No model version to name in the report: %s", err)
        if len(reference_uris) > 1:
            # A window of earlier partitions: tolerate days that do not exist (yet).
            present = [u for u in reference_uris if io.exists(u, conn_id=conn_id)]
            if not present:
                raise MonitoringError(
                    f"none of the reference datasets exists: {', '.join(reference_uris)}"
                )
            if len(present) < len(reference_uris):
                log.warning(
                    "Reference datasets missing (skipped): %s",
                    [u for u in reference_uris if u not in present],
                )
            reference_uris = present
        reference_label = "reference " + ", ".join(dataset_name(u) for u in reference_uris)
        reference = reference_uris[0] if len(reference_uris) == 1 else ",".join(reference_uris)
        ref_schema = _schema(reference_uris, conn_id, "reference")
        reference_columns = {f.name: f.type for f in ref_schema}
    current_label = f"{dataset_name(current_uris[0])} {day.isoformat()}"

    current_schema = _schema(current_uris, conn_id, "current")
    plan = _plan_columns(
        columns,
        exclude_columns,
        reference_columns,
        current_schema,
        reference_label,
        ", ".join(current_uris),
    )
    if plan.only_in_reference:
        log.warning(
            "Reference columns missing from the current data (not compared): %s",
            plan.only_in_reference,
        )
    if profile is not None and columns is None and plan.only_in_reference:
        raise MonitoringError(
            f"column(s) {plan.only_in_reference} of the reference profile "
            f"({reference_label}) are missing from the current data {', '.join(current_uris)} "
            f"(it has: {list(current_schema.names)}); renamed or dropped upstream?"
        )

    current = _read(current_uris, plan.columns, conn_id, "current")
    ref_input: Any = profile
    if profile is None:
        ref_input = _read(reference_uris, plan.columns, conn_id, "reference")
    log.info(
        "Comparing %d column(s) of %d current rows with %s",
        len(plan.columns),
        current.num_rows,
        reference_label,
    )
    result = detect_drift(
        ref_input,
        current,
        columns=plan.columns,
        method=method,
        threshold=threshold,
        per_column_method=per_column_method,
        per_column_threshold=per_column_threshold,
        drift_share=drift_share,
        **dict(drift_options or {}),
    )
    del current, ref_input
    for skipped_name, reason in plan.skipped.items():
        result.skipped_columns.setdefault(skipped_name, reason)

    name = (
        report_name
        or (model_version.name if model_version else None)
        or registered_model_name
        or dataset_name(current_uris[0])
    )
    json_uri, html_uri = report_paths(
        report_uri, kind="drift", name=name, day=day, json_name="drift.json"
    )
    columns_summary = _column_summary(result)
    summary: dict[str, Any] = {
        "dataset_drift": bool(result.dataset_drift),
        "drift_share": round(float(result.drift_share), 6),
        "n_drifted": int(result.n_drifted),
        "n_columns": int(result.n_columns),
        "drift_share_threshold": float(result.share_threshold),
        "drifted_columns": result.drifted_columns,
        "columns": columns_summary,
        "reference": reference,
        "reference_model_name": model_version.name if model_version else None,
        "reference_model_version": model_version.version if model_version else None,
        "reference_run_id": model_version.run_id if model_version else None,
        "current_data": current_uris[0] if len(current_uris) == 1 else current_uris,
        "current_rows": int(result.n_current_rows),
        "reference_rows": int(result.n_reference_rows),
        "columns_only_in_reference": plan.only_in_reference,
        "columns_only_in_current": plan.only_in_current,
        "data_interval_start": _iso(data_interval_start) if data_interval_start else None,
        "data_interval_end": _iso(data_interval_end) if data_interval_end else None,
        "report_uri": html_uri,
        "report_json_uri": json_uri,
        "mlflow_run_id": None,
        "mlflow_experiment_id": None,
    }
    run_id: str | None = None
    tags: dict[str, str] = {}
    if client is not None and identity is not None and monitoring_experiment:
        experiment_id = ensure_monitoring_experiment(
            client, monitoring_experiment, artifact_location
        )
        tags = {
            "mlops.reference": reference,
            "mlops.current_data": ",".join(current_uris)[:5000],
            "mlops.report_uri": html_uri,
            "mlops.dataset_drift": str(bool(result.dataset_drift)).lower(),
        }
        if model_version is not None:
            tags.update(
                {
                    "mlops.reference_model_name": model_version.name,
                    "mlops.reference_model_version": model_version.version,
                    "mlops.reference_run_id": model_version.run_id or "",
                }
            )
        run_id, _ = get_or_create_monitoring_run(
            client, experiment_id, identity, kind="drift", tags=tags
        )
        summary["mlflow_run_id"] = run_id
        summary["mlflow_experiment_id"] = experiment_id

    html = render_drift_report(
        result,
        title=f"Drift report: {name} {day.isoformat()}",
        reference_label=reference_label,
        current_label=current_label,
    )
    document = {
        **{k: v for k, v in summary.items() if k != "columns"},
        "generated_at": _iso(datetime.now(timezone.utc)),
        "result": result.to_dict(),
    }
    json_text = json.dumps(document, indent=1, allow_nan=False, default=str)
    io.write_text(json_text, json_uri, conn_id=conn_id)
    io.write_text(html, html_uri, conn_id=conn_id)
    log.info("Drift report written to %s", html_uri)

    if client is not None and run_id is not None:
        metrics: dict[str, float | int | bool | None] = {
            "dataset_drift": bool(result.dataset_drift),
            "drift_share": float(result.drift_share),
            "n_drifted": int(result.n_drifted),
            "n_columns": int(result.n_columns),
            "current_rows": int(result.n_current_rows),
        }
        for col_name, col in result.columns.items():
            metrics[f"drift_score.{col_name}"] = col.score
        log_monitoring_results(
            client,
            run_id,
            metrics=metrics,
            tags=tags,
            texts={"drift/drift.json": json_text, "drift/report.html": html},
        )
    log.info(
        "Drift check done in %.1fs: dataset_drift=%s, %d of %d columns drifted %s",
        time.perf_counter() - started,
        result.dataset_drift,
        result.n_drifted,
        result.n_columns,
        result.drifted_columns,
    )
    return summary
