"""The latest monitoring results of every registered model as Prometheus metrics (Airflow-free).

What is read, and where the provider records it:

- drift: the newest FINISHED ``mlops.monitoring_kind=drift`` run per check (``<dag_id>.<task_id>``)
  of each model (tag ``mlops.reference_model_name``) in the monitoring experiment(s): metrics
  ``drift_share``, ``dataset_drift``, ``n_drifted``, ``n_columns``, ``drift_score.<column>``,
  ``drifted.<column>`` and the tag ``mlops.drift_methods`` (:mod:`.drift_check`);
- performance: likewise for ``mlops.monitoring_kind=performance`` runs: the metric values
  (``<metric>``, ``v<version>.<metric>``), ``baseline.<metric>``, ``degradation_abs.<metric>``,
  ``degradation_rel.<metric>``, ``labelled_rows`` and the tags ``mlops.performance_status`` and
  ``mlops.reference_model_version`` (:mod:`.performance_check`);
- retraining: the registered model's ``mlops.retrain.*`` tags (:mod:`..retraining.state`);
- champion: the version holding the alias (default ``champion``);
- data quality: the newest ``dt=`` partition of each dataset's validation results below the
  reports root (``<reports root>/validation/<dataset>/dt=<day>[/<task>]/result.json``,
  :func:`mlops_provider.core.validation.validation_report_location`).

The cost of one collection is bounded: one ``search_registered_models`` call (``max_models``),
per model one alias lookup and two ``search_runs`` calls (``max_results`` = ``max_runs``, newest
first), and per dataset two listings and one small JSON read (``max_datasets``).
:class:`MetricsExporter` caches the rendered text for ``cache_seconds``; every render builds a
fresh ``CollectorRegistry`` (no state is kept between scrapes). Metric names are documented in
docs/metrics.md and listed in :data:`METRICS`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar

from mlops_provider.core.monitoring.publish import DEFAULT_MONITORING_EXPERIMENT

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

__all__ = [
    "CONTENT_TYPE",
    "METRICS",
    "DataQualityState",
    "DriftState",
    "ExportSettings",
    "MetricsExporter",
    "ModelState",
    "MonitoringCollector",
    "MonitoringSnapshot",
    "PerformanceState",
    "RetrainState",
    "collect_snapshot",
    "render_metrics",
]

log = logging.getLogger(__name__)

#: The Prometheus text exposition format that :func:`render_metrics` writes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Every metric family the exporter writes -> its labels (docs/metrics.md).
METRICS: dict[str, tuple[str, ...]] = {
    "mlops_champion_version_info": ("model", "alias", "version", "run_id"),
    "mlops_drift_share": ("model", "check"),
    "mlops_dataset_drift": ("model", "check"),
    "mlops_drift_columns": ("model", "check"),
    "mlops_drift_columns_drifted": ("model", "check"),
    "mlops_feature_drift_score": ("model", "check", "feature", "method"),
    "mlops_feature_drifted": ("model", "check", "feature"),
    "mlops_performance_metric": ("model", "check", "version", "metric"),
    "mlops_performance_baseline": ("model", "check", "version", "metric"),
    "mlops_performance_degradation_absolute": ("model", "check", "version", "metric"),
    "mlops_performance_degradation_relative": ("model", "check", "version", "metric"),
    "mlops_performance_degraded": ("model", "check", "version"),
    "mlops_performance_status": ("model", "check", "version", "status"),
    "mlops_performance_labelled_rows": ("model", "check", "version"),
    "mlops_result_timestamp_seconds": ("model", "kind", "check"),
    "mlops_retrain_requested": ("model",),
    "mlops_retrain_requests_total": ("model",),
    "mlops_retrain_last_request_timestamp_seconds": ("model",),
    "mlops_retrain_reason_info": ("model", "reason"),
    "mlops_data_quality_success": ("dataset", "suite", "task"),
    "mlops_data_quality_evaluated_expectations": ("dataset", "suite", "task"),
    "mlops_data_quality_failed_expectations": ("dataset", "suite", "task"),
    "mlops_data_quality_timestamp_seconds": ("dataset", "suite", "task"),
    "mlops_export_collect_duration_seconds": (),
    "mlops_export_collect_errors": (),
}

_PERFORMANCE_COUNTS = frozenset(
    {"labelled_rows", "labelled_rows_total", "predictions", "degraded", "insufficient_data"}
)
_REASON_CHARS = 120


@dataclass(frozen=True)
class ExportSettings:
    """What the exporter reads.

    :param experiments: the monitoring experiments searched (default ``mlops-monitoring``).
    :param alias: the alias whose holder is reported as the champion.
    :param models: registered model names to report (default: every registered model, up to
        ``max_models``).
    :param max_models: at most this many registered models.
    :param max_runs: newest runs read per model and kind (the latest per check is kept).
    :param reports_uri: the reports root holding validation results (default: the
        ``reports_uri`` setting); ``""`` turns data-quality export off.
    :param max_datasets: at most this many validated datasets.
    :param conn_id: connection of an ``s3://`` reports root.
    """

    experiments: tuple[str, ...] = (DEFAULT_MONITORING_EXPERIMENT,)
    alias: str = "champion"
    models: tuple[str, ...] | None = None
    max_models: int = 100
    max_runs: int = 20
    reports_uri: str | None = None
    max_datasets: int = 100
    conn_id: str | None = None


@dataclass(frozen=True)
class DriftState:
    """The newest drift run of one check of a model."""

    check: str
    run_id: str
    timestamp: float
    drift_share: float | None
    dataset_drift: float | None
    n_columns: float | None
    n_drifted: float | None
    scores: dict[str, float] = field(default_factory=dict)
    drifted: dict[str, float] = field(default_factory=dict)
    methods: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PerformanceState:
    """The newest performance run of one check of a model (``version``: the version that
    scored the newest predictions, the one baseline and degradation describe)."""

    check: str
    run_id: str
    timestamp: float
    version: str
    status: str
    labelled_rows: float | None
    metrics: dict[str, float] = field(default_factory=dict)
    baseline: dict[str, float] = field(default_factory=dict)
    degradation_abs: dict[str, float] = field(default_factory=dict)
    degradation_rel: dict[str, float] = field(default_factory=dict)
    by_version: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class RetrainState:
    """The retrain requests recorded on a registered model."""

    requested: bool
    count: int
    last_request_at: float | None
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelState:
    """What is exported of one registered model."""

    name: str
    champion_version: str | None = None
    champion_run_id: str | None = None
    retrain: RetrainState | None = None
    drift: list[DriftState] = field(default_factory=list)
    performance: list[PerformanceState] = field(default_factory=list)


@dataclass(frozen=True)
class DataQualityState:
    """The newest validation result of one dataset (and task)."""

    dataset: str
    suite: str
    task: str
    success: bool
    evaluated: int
    failed: int
    timestamp: float


@dataclass
class MonitoringSnapshot:
    """One collection: every model's state, the data quality, and what failed to be read."""

    models: list[ModelState] = field(default_factory=list)
    data_quality: list[DataQualityState] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    duration: float = 0.0


# --------------------------------------------------------------------------- reading


def _ts(ms: int | None) -> float:
    return float(ms) / 1000.0 if ms else 0.0


def _check(run: Run) -> str:
    tags = run.data.tags
    return f"{tags.get('mlops.dag_id', '')}.{tags.get('mlops.task_id', '')}".strip(".")


def _prefixed(metrics: Mapping[str, float], prefix: str) -> dict[str, float]:
    return {k[len(prefix) :]: float(v) for k, v in metrics.items() if k.startswith(prefix)}


def drift_state(run: Run) -> DriftState:
    """What a drift run recorded (pure)."""
    m = run.data.metrics
    try:
        methods = json.loads(run.data.tags.get("mlops.drift_methods") or "{}")
    except json.JSONDecodeError:
        methods = {}
    return DriftState(
        check=_check(run),
        run_id=run.info.run_id,
        timestamp=_ts(run.info.end_time or run.info.start_time),
        drift_share=m.get("drift_share"),
        dataset_drift=m.get("dataset_drift"),
        n_columns=m.get("n_columns"),
        n_drifted=m.get("n_drifted"),
        scores=_prefixed(m, "drift_score."),
        drifted=_prefixed(m, "drifted."),
        methods={str(k): str(v) for k, v in methods.items()} if isinstance(methods, dict) else {},
    )


def performance_state(run: Run) -> PerformanceState:
    """What a performance run recorded (pure)."""
    m, tags = run.data.metrics, run.data.tags
    version = tags.get("mlops.reference_model_version") or ""
    by_version: dict[str, dict[str, float]] = {}
    for key, value in m.items():
        head, dot, metric = key.partition(".")
        if dot and head.startswith("v") and head[1:].isdigit() and metric != "labelled_rows":
            by_version.setdefault(head[1:], {})[metric] = float(value)
    return PerformanceState(
        check=_check(run),
        run_id=run.info.run_id,
        timestamp=_ts(run.info.end_time or run.info.start_time),
        version=version,
        status=tags.get("mlops.performance_status") or "unknown",
        labelled_rows=m.get("labelled_rows"),
        metrics={
            k: float(v) for k, v in m.items() if "." not in k and k not in _PERFORMANCE_COUNTS
        },
        baseline=_prefixed(m, "baseline."),
        degradation_abs=_prefixed(m, "degradation_abs."),
        degradation_rel=_prefixed(m, "degradation_rel."),
        by_version=by_version,
    )


def _latest_per_check(runs: Sequence[Run]) -> list[Run]:
    seen: dict[str, Run] = {}
    for run in runs:  # newest first
        seen.setdefault(_check(run), run)
    return sorted(seen.values(), key=_check)


def _monitoring_runs(
    client: MlflowClient, experiment_ids: Sequence[str], model: str, kind: str, limit: int
) -> list[Run]:
    from mlops_provider.core.runs import quote

    if not experiment_ids:
        return []
    query = (
        f"tags.`mlops.monitoring_kind` = {quote(kind)} and "
        f"tags.`mlops.reference_model_name` = {quote(model)} and attributes.status = 'FINISHED'"
    )
    return list(
        client.search_runs(
            list(experiment_ids),
            filter_string=query,
            order_by=["attributes.start_time DESC"],
            max_results=limit,
        )
    )


def _retrain_state(tags: Mapping[str, str], champion: Any) -> RetrainState:
    from mlops_provider.core.retraining.state import (
        RequestState,
        champion_from,
        is_request_open,
        request_count,
    )

    state = RequestState.from_tags(tags)
    holder = champion_from(champion) if champion is not None else None
    at = state.last_request_at
    return RetrainState(
        requested=is_request_open(state, holder),
        count=request_count(tags),
        last_request_at=at.timestamp() if at is not None else None,
        reasons=state.reasons,
    )


def _model_state(
    client: MlflowClient,
    name: str,
    tags: Mapping[str, str],
    experiment_ids: Sequence[str],
    settings: ExportSettings,
) -> ModelState:
    from mlops_provider.core.models import alias_holder

    champion = alias_holder(client, name, settings.alias)
    return ModelState(
        name=name,
        champion_version=champion.version if champion is not None else None,
        champion_run_id=champion.run_id if champion is not None else None,
        retrain=_retrain_state(tags, champion),
        drift=[
            drift_state(r)
            for r in _latest_per_check(
                _monitoring_runs(client, experiment_ids, name, "drift", settings.max_runs)
            )
        ],
        performance=[
            performance_state(r)
            for r in _latest_per_check(
                _monitoring_runs(client, experiment_ids, name, "performance", settings.max_runs)
            )
        ],
    )


def _registered_models(client: MlflowClient, settings: ExportSettings) -> list[tuple[str, dict]]:
    from mlops_provider.core.models import is_not_found

    if settings.models is not None:
        out = []
        for name in settings.models[: settings.max_models]:
            try:
                out.append((name, dict(client.get_registered_model(name).tags or {})))
            except Exception as err:
                if not is_not_found(err):
                    raise
        return out
    found = client.search_registered_models(max_results=settings.max_models, order_by=["name ASC"])
    return [(m.name, dict(m.tags or {})) for m in found]


def _data_quality(settings: ExportSettings) -> list[DataQualityState]:
    from mlops_provider.core import io
    from mlops_provider.core.config import reports_uri
    from mlops_provider.core.validation.report import RESULT_FILE

    root = reports_uri() if settings.reports_uri is None else settings.reports_uri
    if not root:
        return []
    base = io.join_uri(root, "validation")
    loc = io.resolve(base, conn_id=settings.conn_id)
    try:
        entries = loc.fs.ls(loc.path, detail=True)
    except FileNotFoundError:
        return []
    names = sorted(
        str(e["name"]).rstrip("/").rsplit("/", 1)[-1] for e in entries if e["type"] == "directory"
    )
    out = []
    for dataset in names[: settings.max_datasets]:
        partitions = io.list_partitions(io.join_uri(base, dataset), conn_id=settings.conn_id)
        if not partitions:
            continue
        day, uri = list(partitions.items())[-1]
        ploc = io.resolve(uri, conn_id=settings.conn_id)
        candidates = [("", io.join_uri(uri, RESULT_FILE))]
        for entry in ploc.fs.ls(ploc.path, detail=True):
            if entry["type"] == "directory":
                task = str(entry["name"]).rstrip("/").rsplit("/", 1)[-1]
                candidates.append((task, io.join_uri(uri, task, RESULT_FILE)))
        stamp = datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp()
        for task, result_uri in candidates:
            if not io.exists(result_uri, conn_id=settings.conn_id):
                continue
            doc = json.loads(io.read_text(result_uri, conn_id=settings.conn_id))
            summary = ((doc.get("meta") or {}).get("mlops") or {}).get("summary") or {}
            out.append(
                DataQualityState(
                    dataset=dataset,
                    suite=str(summary.get("suite") or ""),
                    task=task,
                    success=bool(summary.get("success", doc.get("success"))),
                    evaluated=int(summary.get("evaluated_expectations") or 0),
                    failed=int(summary.get("failed_expectations") or 0),
                    timestamp=stamp,
                )
            )
    return out


def _experiment_ids(client: MlflowClient, names: Sequence[str]) -> list[str]:
    ids = []
    for name in names:
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            ids.append(str(experiment.experiment_id))
    return ids


def collect_snapshot(
    client: MlflowClient, settings: ExportSettings | None = None
) -> MonitoringSnapshot:
    """Read the latest results (see the module docstring). A part that cannot be read (the
    MLflow server down, an unreadable reports root, one broken model) is logged and counted in
    :attr:`MonitoringSnapshot.errors`; the rest is still exported."""
    settings = settings or ExportSettings()
    started = time.perf_counter()
    snap = MonitoringSnapshot()
    try:
        experiment_ids = _experiment_ids(client, settings.experiments)
        registered = _registered_models(client, settings)
    except Exception as err:
        log.warning("metrics export: cannot read the MLflow registry: %s", err)
        snap.errors.append(f"registry: {err}")
        registered, experiment_ids = [], []
    for name, tags in registered:
        try:
            snap.models.append(_model_state(client, name, tags, experiment_ids, settings))
        except Exception as err:
            log.warning("metrics export: cannot read model %s: %s", name, err)
            snap.errors.append(f"model {name}: {err}")
    try:
        snap.data_quality = _data_quality(settings)
    except Exception as err:
        log.warning("metrics export: cannot read validation results: %s", err)
        snap.errors.append(f"data quality: {err}")
    snap.duration = time.perf_counter() - started
    return snap


# --------------------------------------------------------------------------- rendering


class MonitoringCollector:
    """A ``prometheus_client`` custom collector over one :class:`MonitoringSnapshot`."""

    def __init__(self, snapshot: MonitoringSnapshot) -> None:
        self.snapshot = snapshot

    def describe(self) -> list[Any]:
        return []  # the families depend on the snapshot: no registration-time collect

    #: The gauges of the model results: name -> help text (labels from :data:`METRICS`).
    GAUGES: ClassVar[dict[str, str]] = {
        "mlops_champion_version_info": "1 for the version holding the alias of each model",
        "mlops_drift_share": "Share of drifted columns in the latest drift check",
        "mlops_dataset_drift": "1 if the latest drift check found dataset drift",
        "mlops_drift_columns": "Columns compared by the latest drift check",
        "mlops_drift_columns_drifted": "Drifted columns in the latest drift check",
        "mlops_feature_drift_score": "Drift score of a column (p-value for ks/chi2/z tests, "
        "distance for psi/wasserstein/jensen_shannon: see the method label)",
        "mlops_feature_drifted": "1 if the column drifted in the latest drift check",
        "mlops_performance_metric": "Metric on matured labels, per model version",
        "mlops_performance_baseline": "Baseline of the metric (the version's training)",
        "mlops_performance_degradation_absolute": "Degradation from the baseline",
        "mlops_performance_degradation_relative": "Relative degradation",
        "mlops_performance_degraded": "1 if the latest performance check degraded",
        "mlops_performance_status": "1 for the status of the latest performance check",
        "mlops_performance_labelled_rows": "Labelled rows of the evaluated version",
        "mlops_result_timestamp_seconds": "End time of the latest monitoring run",
        "mlops_retrain_requested": "1 while the last retrain request is open",
        "mlops_retrain_last_request_timestamp_seconds": "Time of the last request",
        "mlops_retrain_reason_info": "1 for each reason of the last request",
    }

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        def gauge(name: str, doc: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=list(METRICS[name]))

        f = {name: gauge(name, doc) for name, doc in self.GAUGES.items()}
        total = CounterMetricFamily(
            "mlops_retrain_requests", "Retrain requests recorded on the model", labels=["model"]
        )
        for model in self.snapshot.models:
            if model.champion_version is not None:
                f["mlops_champion_version_info"].add_metric(
                    [model.name, "champion", model.champion_version, model.champion_run_id or ""],
                    1,
                )
            self._add_drift(f, model)
            self._add_performance(f, model)
            if model.retrain is not None:
                self._add_retrain(f, total, model.name, model.retrain)
        yield from f.values()
        yield total
        yield from self._data_quality(gauge)
        yield GaugeMetricFamily(
            "mlops_export_collect_duration_seconds",
            "Seconds the last collection took",
            value=self.snapshot.duration,
        )
        yield GaugeMetricFamily(
            "mlops_export_collect_errors",
            "Parts the last collection could not read (see the log)",
            value=len(self.snapshot.errors),
        )

    @staticmethod
    def _add_drift(f: dict[str, Any], model: Any) -> None:
        for d in model.drift:
            key = [model.name, d.check]
            for name, value in (
                ("mlops_drift_share", d.drift_share),
                ("mlops_dataset_drift", d.dataset_drift),
                ("mlops_drift_columns", d.n_columns),
                ("mlops_drift_columns_drifted", d.n_drifted),
            ):
                if value is not None:
                    f[name].add_metric(key, value)
            for feature, value in sorted(d.scores.items()):
                f["mlops_feature_drift_score"].add_metric(
                    [*key, feature, d.methods.get(feature, "")], value
                )
            for feature, value in sorted(d.drifted.items()):
                f["mlops_feature_drifted"].add_metric([*key, feature], value)
            f["mlops_result_timestamp_seconds"].add_metric(
                [model.name, "drift", d.check], d.timestamp
            )

    @staticmethod
    def _add_performance(f: dict[str, Any], model: Any) -> None:
        name = model.name
        for p in model.performance:
            for version, values in sorted(p.by_version.items()):
                for metric, value in sorted(values.items()):
                    f["mlops_performance_metric"].add_metric(
                        [name, p.check, version, metric], value
                    )
            if not p.by_version:
                for metric, value in sorted(p.metrics.items()):
                    f["mlops_performance_metric"].add_metric(
                        [name, p.check, p.version, metric], value
                    )
            for family, values in (
                ("mlops_performance_baseline", p.baseline),
                ("mlops_performance_degradation_absolute", p.degradation_abs),
                ("mlops_performance_degradation_relative", p.degradation_rel),
            ):
                for metric, value in sorted(values.items()):
                    f[family].add_metric([name, p.check, p.version, metric], value)
            f["mlops_performance_degraded"].add_metric(
                [name, p.check, p.version], float(p.status == "degraded")
            )
            f["mlops_performance_status"].add_metric([name, p.check, p.version, p.status], 1)
            if p.labelled_rows is not None:
                f["mlops_performance_labelled_rows"].add_metric(
                    [name, p.check, p.version], p.labelled_rows
                )
            f["mlops_result_timestamp_seconds"].add_metric(
                [name, "performance", p.check], p.timestamp
            )

    @staticmethod
    def _add_retrain(f: dict[str, Any], total: Any, name: str, r: Any) -> None:
        f["mlops_retrain_requested"].add_metric([name], float(r.requested))
        total.add_metric([name], r.count)
        if r.last_request_at is not None:
            f["mlops_retrain_last_request_timestamp_seconds"].add_metric([name], r.last_request_at)
        for text in dict.fromkeys(x[:_REASON_CHARS] for x in r.reasons):
            f["mlops_retrain_reason_info"].add_metric([name, text], 1)

    def _data_quality(self, gauge: Callable[[str, str], Any]) -> Iterator[Any]:
        success = gauge("mlops_data_quality_success", "1 if the latest validation passed")
        evaluated = gauge("mlops_data_quality_evaluated_expectations", "Expectations evaluated")
        failed = gauge("mlops_data_quality_failed_expectations", "Expectations that failed")
        stamp = gauge("mlops_data_quality_timestamp_seconds", "Day (dt partition) validated")
        for q in self.snapshot.data_quality:
            key = [q.dataset, q.suite, q.task]
            success.add_metric(key, float(q.success))
            evaluated.add_metric(key, q.evaluated)
            failed.add_metric(key, q.failed)
            stamp.add_metric(key, q.timestamp)
        yield from (success, evaluated, failed, stamp)


def render_metrics(snapshot: MonitoringSnapshot) -> bytes:
    """The Prometheus text of ``snapshot`` (a fresh ``CollectorRegistry`` each call)."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitoringCollector(snapshot))  # type: ignore[arg-type]
    return generate_latest(registry)


class MetricsExporter:
    """Renders the metrics of ``client_factory()``'s store, cached for ``cache_seconds``
    (concurrent scrapes share one collection)."""

    def __init__(
        self,
        client_factory: Callable[[], MlflowClient],
        settings: ExportSettings | None = None,
        *,
        cache_seconds: float = 10.0,
    ) -> None:
        self.client_factory = client_factory
        self.settings = settings or ExportSettings()
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._cached: tuple[float, bytes] | None = None

    def render(self) -> bytes:
        """The metrics text (from the cache while it is fresh)."""
        with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < self.cache_seconds:
                return self._cached[1]
            text = render_metrics(collect_snapshot(self.client_factory(), self.settings))
            self._cached = (time.monotonic(), text)
            return text

    def clear(self) -> None:
        """Forget the cached text (the next render collects again)."""
        with self._lock:
            self._cached = None
