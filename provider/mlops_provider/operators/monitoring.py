"""Monitoring operators: data/prediction/target drift and model performance on late labels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from mlops_provider.exceptions import DriftDetectionError, MlopsError
from mlops_provider.links.mlflow import MlflowRunLink
from mlops_provider.links.reports import ReportLink

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_provider.core.monitoring import RunIdentity
    from mlops_provider.hooks.mlflow import MlflowHook

__all__ = ["DriftDetectionOperator", "ModelPerformanceError", "ModelPerformanceOperator"]


class ModelPerformanceError(MlopsError):
    """Performance monitoring could not run (missing labels dataset or columns, bad parameters)."""


def _utc(value: Any) -> datetime | None:
    """A plain aware UTC ``datetime`` from a context datetime (pendulum or stdlib)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return datetime.fromtimestamp(value.timestamp(), tz=timezone.utc)
    return None


def data_interval(context: Context) -> tuple[datetime, datetime | None]:
    """``(start, end)`` of the run's data interval (start falls back to the logical date/now)."""
    start = _utc(context.get("data_interval_start")) or _utc(context.get("logical_date"))
    end = _utc(context.get("data_interval_end"))
    return start or datetime.now(timezone.utc), end


def run_identity(context: Context) -> RunIdentity:
    """The task's identity for its monitoring run: (dag_id, task_id, data interval, map_index)."""
    from mlops_provider.core.monitoring import RunIdentity

    ti = context["ti"]
    start = _utc(context.get("data_interval_start"))
    end = _utc(context.get("data_interval_end"))
    return RunIdentity(
        dag_id=ti.dag_id,
        task_id=ti.task_id,
        data_interval_start=start,
        data_interval_end=end,
        map_index=int(
            getattr(ti, "map_index", -1) if getattr(ti, "map_index", None) is not None else -1
        ),
        run_id=getattr(ti, "run_id", None),
    )


def _float(value: Any, name: str) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None


def _persist_links(context: Context, hook: MlflowHook, summary: Mapping[str, Any]) -> None:
    from mlops_provider.links.mlflow import run_url
    from mlops_provider.links.reports import report_url

    if summary.get("report_uri"):
        ReportLink.persist(context, report_url(str(summary["report_uri"])))
    if summary.get("mlflow_run_id") and summary.get("mlflow_experiment_id"):
        MlflowRunLink.persist(
            context,
            run_url(
                hook.target.tracking_uri,
                str(summary["mlflow_experiment_id"]),
                str(summary["mlflow_run_id"]),
            ),
        )


class DriftDetectionOperator(BaseOperator):
    """Detect data, prediction or target drift between a reference and the current data.

    The reference is, by default, the training profile of a registered model version
    (``registered_model_name`` + ``alias``, or ``model_uri``): the alias is resolved to a
    version, the version to its source run, and the run's artifact
    ``monitoring/reference_profile.json`` is loaded. Alternatively ``reference_data`` gives one
    or more dataset URIs (e.g. earlier predictions partitions for prediction drift, earlier
    label partitions with ``columns=["churned"]`` for target drift).

    Columns are auto-detected (the profile's columns, or the columns both datasets share, minus
    identifiers, timestamps, labels and scoring bookkeeping columns) unless listed in
    ``columns``. Drift per column and the dataset verdict come from
    :func:`mlops_provider.core.drift.detect_drift` (nulls, new categories and constant columns
    are handled there). The JSON result and the HTML report are written to ``report_uri``
    (a rerun replaces them) and the metrics are logged to one MLflow monitoring run per
    (dag_id, task_id, data interval), reused on retries and reruns.

    :param current_data: dataset URI (or list of URIs) of the data to check, e.g. the day's
        feature partition. (templated)
    :param reference_data: dataset URI(s) of the reference; default: the model's training
        profile. (templated)
    :param registered_model_name: registered model whose version is the reference (and whose
        name keys the default report location). (templated)
    :param alias: alias to resolve, default ``champion``. (templated)
    :param model_uri: ``models:/<name>/<version>`` or ``models:/<name>@<alias>`` instead of
        name + alias. (templated)
    :param reference_artifact_path: run artifact holding the profile. (templated)
    :param columns: columns to compare (default: auto-detected). (templated)
    :param exclude_columns: replaces the default exclusions of auto-detection (names or
        ``fnmatch`` patterns). (templated)
    :param method: drift method for every column (default: automatic per column). (templated)
    :param threshold: threshold for every column (default: the method's). (templated)
    :param per_column_method: column -> method. (templated)
    :param per_column_threshold: column -> threshold. (templated)
    :param drift_share: the dataset drifts when this share of columns drifted (default 0.5).
        (templated)
    :param drift_options: other keyword arguments of ``detect_drift`` (e.g.
        ``{"correction": "benjamini_hochberg"}``). (templated)
    :param report_uri: report directory (``drift.json`` + ``report.html``) or ``.html`` file;
        default ``<data_root>/reports/drift/<report_name>/dt=<data interval start>``. (templated)
    :param report_name: name in the default report location; default the registered model
        name, else the current dataset's name. Set it when two drift tasks of a DAG share
        one (e.g. ``"churn-predictions"``). (templated)
    :param monitoring_experiment: MLflow experiment of monitoring runs (default
        ``mlops-monitoring``); ``None`` disables MLflow logging. (templated)
    :param mlflow_conn_id: MLflow connection (default ``mlflow_default``). (templated)
    :param aws_conn_id: connection for ``s3://`` URIs (default ``aws_default``). (templated)

    XCom (return value): ``dataset_drift``, ``drift_share``, ``n_drifted``, ``n_columns``,
    ``drifted_columns``, ``columns`` (per column: ``method``, ``score``, ``threshold``,
    ``drifted``, ``reasons``, ``new_categories`` when any), ``reference`` (``models:/name/v``
    or the reference URI), ``reference_model_name``, ``reference_model_version``,
    ``reference_run_id``, ``current_data``, ``current_rows``, ``reference_rows``,
    ``columns_only_in_reference``, ``columns_only_in_current``, ``report_uri`` (the HTML file),
    ``report_json_uri``, ``mlflow_run_id``, ``mlflow_experiment_id``, ``data_interval_start``,
    ``data_interval_end``.

    :raises DriftDetectionError: missing or empty current/reference data, no reference profile
        for the model version, columns missing on a side, no columns to compare, or invalid
        drift parameters. Raised before anything is written.
    """

    template_fields: Sequence[str] = (
        "current_data",
        "reference_data",
        "registered_model_name",
        "alias",
        "model_uri",
        "reference_artifact_path",
        "columns",
        "exclude_columns",
        "method",
        "threshold",
        "per_column_method",
        "per_column_threshold",
        "drift_share",
        "drift_options",
        "report_uri",
        "report_name",
        "monitoring_experiment",
        "mlflow_conn_id",
        "aws_conn_id",
    )
    template_fields_renderers = {"drift_options": "json", "per_column_method": "json"}
    operator_extra_links = (ReportLink(), MlflowRunLink())
    ui_color = "#fde7e7"

    def __init__(
        self,
        *,
        current_data: str | list[str],
        reference_data: str | list[str] | None = None,
        registered_model_name: str | None = None,
        alias: str = "champion",
        model_uri: str | None = None,
        reference_artifact_path: str = "monitoring/reference_profile.json",
        columns: list[str] | None = None,
        exclude_columns: list[str] | None = None,
        method: str | None = None,
        threshold: float | None = None,
        per_column_method: dict[str, str] | None = None,
        per_column_threshold: dict[str, float] | None = None,
        drift_share: float = 0.5,
        drift_options: dict[str, Any] | None = None,
        report_uri: str | None = None,
        report_name: str | None = None,
        monitoring_experiment: str | None = "mlops-monitoring",
        mlflow_conn_id: str = "mlflow_default",
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.current_data = current_data
        self.reference_data = reference_data
        self.registered_model_name = registered_model_name
        self.alias = alias
        self.model_uri = model_uri
        self.reference_artifact_path = reference_artifact_path
        self.columns = columns
        self.exclude_columns = exclude_columns
        self.method = method
        self.threshold = threshold
        self.per_column_method = per_column_method
        self.per_column_threshold = per_column_threshold
        self.drift_share = drift_share
        self.drift_options = drift_options
        self.report_uri = report_uri
        self.report_name = report_name
        self.monitoring_experiment = monitoring_experiment
        self.mlflow_conn_id = mlflow_conn_id
        self.aws_conn_id = aws_conn_id

    @cached_property
    def hook(self) -> MlflowHook:
        """The MLflow hook of ``mlflow_conn_id``."""
        from mlops_provider.hooks.mlflow import MlflowHook

        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)

    def _needs_mlflow(self) -> bool:
        return bool(
            self.monitoring_experiment
            or not self.reference_data
            or self.registered_model_name
            or self.model_uri
        )

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core.io import DatasetError
        from mlops_provider.core.monitoring import MonitoringError, run_drift_check
        from mlops_provider.core.profile import DriftInputError

        start, end = data_interval(context)
        client = self.hook.client if self._needs_mlflow() else None
        try:
            summary = run_drift_check(
                self.current_data,
                reference_data=self.reference_data or None,
                client=client,
                registered_model_name=self.registered_model_name or None,
                alias=self.alias,
                model_uri=self.model_uri or None,
                reference_artifact_path=self.reference_artifact_path,
                columns=list(self.columns) if self.columns else None,
                exclude_columns=self.exclude_columns,
                method=self.method or None,
                threshold=_float(self.threshold, "threshold"),
                per_column_method=self.per_column_method or None,
                per_column_threshold=(
                    {k: float(v) for k, v in self.per_column_threshold.items()}
                    if self.per_column_threshold
                    else None
                ),
                drift_share=float(self.drift_share),
                drift_options=self.drift_options or None,
                report_uri=self.report_uri or None,
                report_name=self.report_name or None,
                data_interval_start=start,
                data_interval_end=end,
                identity=run_identity(context),
                monitoring_experiment=self.monitoring_experiment or None,
                artifact_location=self.hook.target.artifact_location if client else None,
                conn_id=self.aws_conn_id,
            )
        except (MonitoringError, DriftInputError, DatasetError) as err:
            raise DriftDetectionError(f"drift detection failed: {err}") from err
        except ValueError as err:  # a bad templated number
            raise DriftDetectionError(f"invalid parameter: {err}") from err
        _persist_links(context, self.hook, summary)
        self.log.info(
            "dataset_drift=%s drift_share=%.3f drifted=%s report=%s",
            summary["dataset_drift"],
            summary["drift_share"],
            summary["drifted_columns"],
            summary["report_uri"],
        )
        return summary


class ModelPerformanceOperator(BaseOperator):
    """Evaluate predictions on labels that arrived later and compare them with the baseline.

    On run day ``D`` (the data interval's start) the predictions of the matured day
    ``D - label_delay`` (or of ``evaluation_window`` days ending there) are read from
    ``<predictions_data>/dt=YYYY-MM-DD``, joined by entity and event day with the labels found
    in ``labels_data`` partitions (keyed by arrival day; only labels available by the end of
    the data interval count), and scored per day and per model version. Each version is
    compared with its baseline: the holdout metrics logged on its training run (the
    ``model_run_id`` of its predictions), the champion's (``baseline="champion"``) or fixed
    values (a dict). A version with fewer than ``min_labels`` labelled rows is reported as
    ``insufficient_data``, not as degraded.

    :param predictions_data: base URI of the scoring output partitions. (templated)
    :param labels_data: base URI of the label partitions (or one labels dataset). (templated)
    :param label_delay: days until labels mature (default 7). (templated)
    :param evaluation_window: number of matured days evaluated (default 1). (templated)
    :param problem_type: ``"classification"`` (default) or ``"regression"``.
    :param metrics: metrics to compute (default: ``roc_auc``, ``accuracy``, ``f1``,
        ``log_loss``, ``precision``, ``recall``; or ``rmse``, ``mae``, ``r2``). (templated)
    :param primary_metric: headline metric (default ``roc_auc`` / ``rmse``). (templated)
    :param min_labels: minimum labelled rows per version (default 200). (templated)
    :param max_degradation: allowed absolute degradation: a number for the primary metric or a
        dict per metric (default 0.05). (templated)
    :param max_relative_degradation: allowed relative degradation, the same way. (templated)
    :param baseline: ``"model_version"`` (default), ``"champion"`` or a dict of metric values.
        (templated)
    :param registered_model_name: model name (report location; ``baseline="champion"``).
        (templated)
    :param alias: alias for ``baseline="champion"`` (default ``champion``). (templated)
    :param target: label column (default ``churned``). (templated)
    :param entity_column: entity key (default ``customer_id``). (templated)
    :param label_time_column: event time of a label (default ``event_timestamp``). (templated)
    :param score_column: probability column of the predictions (default ``probability``).
        (templated)
    :param prediction_column: predicted class/value column (default ``prediction``).
        (templated)
    :param threshold: class threshold when there is no prediction column (default 0.5).
    :param report_uri: report directory (``performance.json`` + ``report.html``) or ``.html``
        file; default ``<data_root>/reports/performance/<name>/dt=<data interval start>``.
        (templated)
    :param report_name: name in the default report location. (templated)
    :param monitoring_experiment: MLflow experiment of monitoring runs; ``None`` disables
        logging. (templated)
    :param mlflow_conn_id: MLflow connection (default ``mlflow_default``). (templated)
    :param aws_conn_id: connection for ``s3://`` URIs (default ``aws_default``). (templated)

    XCom (return value): ``status`` (``"ok"`` | ``"degraded"`` | ``"insufficient_data"``),
    ``reasons``, ``evaluated_days``, ``missing_prediction_days``, ``labelled_rows``,
    ``labelled_rows_total``, ``predictions``, ``metrics``, ``baseline``, ``degradation``
    (per metric ``{"abs", "rel"}``, positive = worse), ``primary_metric``, ``model_name``,
    ``model_version``, ``model_versions``, ``by_version``, ``by_day``, ``min_labels``,
    ``report_uri``, ``report_json_uri``, ``mlflow_run_id``, ``mlflow_experiment_id``. The
    top-level metrics describe the version that scored the most recent predictions in the
    window (normally the champion); ``by_version`` holds every version.

    :raises ModelPerformanceError: the labels dataset or a required column is missing, or a
        parameter is invalid.
    """

    template_fields: Sequence[str] = (
        "predictions_data",
        "labels_data",
        "label_delay",
        "evaluation_window",
        "metrics",
        "primary_metric",
        "min_labels",
        "max_degradation",
        "max_relative_degradation",
        "baseline",
        "registered_model_name",
        "alias",
        "target",
        "entity_column",
        "label_time_column",
        "score_column",
        "prediction_column",
        "report_uri",
        "report_name",
        "monitoring_experiment",
        "mlflow_conn_id",
        "aws_conn_id",
    )
    operator_extra_links = (ReportLink(), MlflowRunLink())
    ui_color = "#e7eefd"

    def __init__(
        self,
        *,
        predictions_data: str,
        labels_data: str,
        label_delay: int = 7,
        evaluation_window: int = 1,
        problem_type: str = "classification",
        metrics: list[str] | None = None,
        primary_metric: str | None = None,
        min_labels: int = 200,
        max_degradation: float | dict[str, float] | None = 0.05,
        max_relative_degradation: float | dict[str, float] | None = None,
        baseline: str | dict[str, float] = "model_version",
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
        monitoring_experiment: str | None = "mlops-monitoring",
        mlflow_conn_id: str = "mlflow_default",
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if problem_type not in ("classification", "regression"):
            raise ValueError(
                f"problem_type must be 'classification' or 'regression', got {problem_type!r}"
            )
        self.predictions_data = predictions_data
        self.labels_data = labels_data
        self.label_delay = label_delay
        self.evaluation_window = evaluation_window
        self.problem_type = problem_type
        self.metrics = metrics
        self.primary_metric = primary_metric
        self.min_labels = min_labels
        self.max_degradation = max_degradation
        self.max_relative_degradation = max_relative_degradation
        self.baseline = baseline
        self.registered_model_name = registered_model_name
        self.alias = alias
        self.target = target
        self.entity_column = entity_column
        self.label_time_column = label_time_column
        self.score_column = score_column
        self.prediction_column = prediction_column
        self.threshold = threshold
        self.report_uri = report_uri
        self.report_name = report_name
        self.monitoring_experiment = monitoring_experiment
        self.mlflow_conn_id = mlflow_conn_id
        self.aws_conn_id = aws_conn_id

    @cached_property
    def hook(self) -> MlflowHook:
        """The MLflow hook of ``mlflow_conn_id``."""
        from mlops_provider.hooks.mlflow import MlflowHook

        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)

    @staticmethod
    def _limits(value: Any, name: str) -> float | dict[str, float] | None:
        if value is None or value == "":
            return None
        if isinstance(value, Mapping):
            return {str(k): float(v) for k, v in value.items() if v is not None}
        out = _float(value, name)
        return out

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core.io import DatasetError
        from mlops_provider.core.monitoring import MonitoringError
        from mlops_provider.core.performance import run_performance_check

        start, end = data_interval(context)
        run_day: date = start.date()
        needs_mlflow = bool(self.monitoring_experiment or not isinstance(self.baseline, Mapping))
        client = self.hook.client if needs_mlflow else None
        try:
            summary = run_performance_check(
                self.predictions_data,
                self.labels_data,
                run_day=run_day,
                as_of=end,
                label_delay=int(self.label_delay),
                evaluation_window=int(self.evaluation_window),
                task=self.problem_type,  # type: ignore[arg-type]
                metrics=list(self.metrics) if self.metrics else None,
                primary_metric=self.primary_metric or None,
                min_labels=int(self.min_labels),
                max_degradation=self._limits(self.max_degradation, "max_degradation"),
                max_relative_degradation=self._limits(
                    self.max_relative_degradation, "max_relative_degradation"
                ),
                baseline=self.baseline,
                client=client,
                registered_model_name=self.registered_model_name or None,
                alias=self.alias,
                target=self.target,
                entity_column=self.entity_column,
                label_time_column=self.label_time_column,
                score_column=self.score_column or None,
                prediction_column=self.prediction_column or None,
                threshold=float(self.threshold),
                report_uri=self.report_uri or None,
                report_name=self.report_name or None,
                identity=run_identity(context),
                monitoring_experiment=self.monitoring_experiment or None,
                artifact_location=self.hook.target.artifact_location if client else None,
                conn_id=self.aws_conn_id,
            )
        except (MonitoringError, DatasetError, ValueError) as err:
            raise ModelPerformanceError(f"performance monitoring failed: {err}") from err
        _persist_links(context, self.hook, summary)
        self.log.info(
            "status=%s days=%s labelled_rows=%s %s=%s (baseline %s) report=%s",
            summary["status"],
            summary["evaluated_days"],
            summary["labelled_rows"],
            summary["primary_metric"],
            summary["metrics"].get(summary["primary_metric"]),
            summary["baseline"].get(summary["primary_metric"]),
            summary["report_uri"],
        )
        return summary
