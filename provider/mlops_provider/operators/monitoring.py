"""Monitoring operators: data/prediction/target drift, model performance on late labels and
training-serving skew.

All are thin shells over :mod:`mlops_provider.core.monitoring` (docs/monitoring.md); their
results follow docs/results.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, cast

from mlops_provider.exceptions import (
    DriftDetectionError,
    ModelPerformanceError,
    TrainingServingSkewDetected,
    TrainingServingSkewError,
)
from mlops_provider.links.mlflow import MlflowModelVersionLink, MlflowRunLink
from mlops_provider.links.reports import ReportLink
from mlops_provider.operators._base import (
    AWS_CONN_ID,
    FEAST_CONN_ID,
    MLFLOW_CONN_ID,
    MlopsBaseOperator,
    data_interval,
    pop_renamed,
    run_identity,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = [
    "DriftDetectionOperator",
    "ModelPerformanceError",
    "ModelPerformanceOperator",
    "TrainingServingSkewDetected",
    "TrainingServingSkewError",
    "TrainingServingSkewOperator",
    "data_interval",
    "run_identity",
]

_MONITORING_EXPERIMENT = "mlops-monitoring"
_REFERENCE_PROFILE = "monitoring/reference_profile.json"
ON_SKEW_MODES = ("fail", "warn")


class DriftDetectionOperator(MlopsBaseOperator):
    """Detect data, prediction or target drift between a reference and the current data.

    The reference is, by default, the training profile of a model: ``registered_model_name`` +
    ``alias``, or ``model_uri`` in any form (``models:/<name>/<version>``,
    ``models:/<name>@<alias>``, ``models:/m-<id>`` as TrainModelOperator returns it,
    ``runs:/<run_id>/<path>``); the profile is the artifact
    ``monitoring/reference_profile.json`` of the model's training run (for a model that is not
    registered, its source run). Alternatively ``reference_data`` gives one or more dataset
    URIs (e.g. earlier predictions partitions for prediction drift, earlier label partitions
    with ``columns=[<label>]`` for target drift).

    Columns are detected (the profile's columns, or the columns both datasets share, minus
    identifiers, timestamps, labels, scoring bookkeeping columns and the label and entity
    columns the named model's training run recorded) unless listed in ``columns``. Drift per
    column and the dataset verdict come from :func:`mlops_provider.core.drift.detect_drift`
    (nulls, new categories and constant columns are handled there). The JSON result and the
    HTML report are written to ``report_uri`` (a rerun replaces them) and the metrics are
    logged to one MLflow monitoring run per (dag_id, task_id, data interval, map_index),
    reused on retries and reruns.

    :param current_data: dataset URI (or list of URIs) of the data to check, e.g. the day's
        feature partition. (templated)
    :param reference_data: dataset URI(s) of the reference; default: the model's training
        profile. (templated)
    :param registered_model_name: registered model whose ``alias`` holder is the reference (and
        whose name keys the default report location). (templated)
    :param alias: alias to resolve, default ``champion``. (templated)
    :param model_uri: any model URI instead of name + alias. (templated)
    :param reference_artifact_path: run artifact holding the profile. (templated)
    :param columns: columns to compare (default: detected). (templated)
    :param exclude_columns: replaces the default exclusions of detection (names or ``fnmatch``
        patterns). (templated)
    :param method: drift method for every column (default: automatic per column). (templated)
    :param drift_threshold: the drift statistic's threshold for every column (default: the
        method's). Replaces ``threshold``. (templated)
    :param per_column_method: column -> method. (templated)
    :param per_column_threshold: column -> drift threshold. (templated)
    :param drift_share: the dataset drifts when this share of columns drifted (default 0.5).
        (templated)
    :param drift_options: other keyword arguments of ``detect_drift`` (e.g.
        ``{"correction": "benjamini_hochberg"}``). (templated)
    :param report_uri: report directory (``drift.json`` + ``report.html``) or ``.html`` file;
        default ``<reports root>/drift/<report_name>/dt=<data interval start>``. (templated)
    :param report_name: name in the default report location; default the registered model
        name, else the current dataset's name. Set it when two drift tasks of a DAG share
        one (e.g. ``"churn-predictions"``). (templated)
    :param experiment_name: MLflow experiment of monitoring runs (default
        ``mlops-monitoring``); ``None`` disables MLflow logging. Replaces
        ``monitoring_experiment``. (templated)
    :param mlflow_conn_id: MLflow connection (default ``mlflow_default``). (templated)
    :param aws_conn_id: connection for ``s3://`` URIs (default ``aws_default``). (templated)

    XCom (return value, docs/results.md): ``status`` (``drift`` | ``no_drift``), ``passed``
    (no dataset drift), ``reasons`` (the verdict, then one sentence per drifted column),
    ``model`` (the reference model, ``None`` for a dataset reference without a model),
    ``mlflow_run_id``, ``report_uri`` (the HTML file), ``rows`` (current rows); then
    ``dataset_drift``, ``drift_share``, ``n_drifted``, ``n_columns``,
    ``drift_share_threshold``, ``drifted_columns``, ``columns`` (per column: ``method``,
    ``score``, ``threshold``, ``drifted``, ``reasons``, ``new_categories`` when any),
    ``reference`` (the model URI or the reference URI), ``current_data``, ``reference_rows``,
    ``columns_only_in_reference``, ``columns_only_in_current``, ``data_interval_start``,
    ``data_interval_end``, ``report_json_uri``, ``mlflow_experiment_id``. ``status``,
    ``passed``, ``dataset_drift``, ``drifted_columns`` and ``report_uri`` are also pushed under
    their own XCom keys.

    Deprecated keys (kept for one release): ``reference_model_name``,
    ``reference_model_version``, ``reference_run_id`` (use ``model``), ``current_rows`` (use
    ``rows``).

    :raises DriftDetectionError: missing or empty current/reference data, an unknown model or
        alias, no reference profile for the model, columns missing on a side, no columns to
        compare, invalid drift parameters, or a ``report_uri`` that cannot be written (below a
        file, in a directory the worker cannot write to; checked before any data is read).
        Raised before anything is written; a failure while writing the report or logging the
        run ends the monitoring run FAILED.
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
        "drift_threshold",
        "per_column_method",
        "per_column_threshold",
        "drift_share",
        "drift_options",
        "report_uri",
        "report_name",
        "experiment_name",
        "mlflow_conn_id",
        "aws_conn_id",
    )
    template_fields_renderers = {"drift_options": "json", "per_column_method": "json"}
    operator_extra_links = (ReportLink(), MlflowRunLink(), MlflowModelVersionLink())
    ui_color = "#fde7e7"
    error_class = DriftDetectionError
    push_keys: ClassVar[tuple[str, ...]] = (
        "status",
        "passed",
        "dataset_drift",
        "drifted_columns",
        "report_uri",
    )

    def __init__(
        self,
        *,
        current_data: str | list[str],
        reference_data: str | list[str] | None = None,
        registered_model_name: str | None = None,
        alias: str = "champion",
        model_uri: str | None = None,
        reference_artifact_path: str = _REFERENCE_PROFILE,
        columns: list[str] | None = None,
        exclude_columns: list[str] | None = None,
        method: str | None = None,
        drift_threshold: float | None = None,
        per_column_method: dict[str, str] | None = None,
        per_column_threshold: dict[str, float] | None = None,
        drift_share: float = 0.5,
        drift_options: dict[str, Any] | None = None,
        report_uri: str | None = None,
        report_name: str | None = None,
        experiment_name: str | None = _MONITORING_EXPERIMENT,
        mlflow_conn_id: str = MLFLOW_CONN_ID,
        aws_conn_id: str | None = AWS_CONN_ID,
        **kwargs: Any,
    ) -> None:
        renamed = pop_renamed(
            kwargs,
            {"threshold": "drift_threshold", "monitoring_experiment": "experiment_name"},
            type(self).__name__,
        )
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
        self.drift_threshold = renamed.get("drift_threshold", drift_threshold)
        self.per_column_method = per_column_method
        self.per_column_threshold = per_column_threshold
        self.drift_share = drift_share
        self.drift_options = drift_options
        self.report_uri = report_uri
        self.report_name = report_name
        self.experiment_name = renamed.get("experiment_name", experiment_name)
        self.mlflow_conn_id = mlflow_conn_id
        self.aws_conn_id = aws_conn_id

    def _needs_mlflow(self) -> bool:
        return bool(
            self.experiment_name
            or not self.reference_data
            or self.registered_model_name
            or self.model_uri
        )

    def error_message(self, err: Exception) -> str:
        return f"drift detection failed: {err}"

    def run(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core import params
        from mlops_provider.core.monitoring import run_drift_check

        options = {
            "method": params.as_str(self.method, "method"),
            "drift_threshold": params.as_float(self.drift_threshold, "drift_threshold"),
            "per_column_method": params.as_mapping(self.per_column_method, "per_column_method"),
            "per_column_threshold": params.as_mapping(
                self.per_column_threshold, "per_column_threshold"
            ),
            "drift_share": params.as_float(
                self.drift_share, "drift_share", default=0.5, minimum=0.0, maximum=1.0
            ),
            "drift_options": params.as_mapping(self.drift_options, "drift_options"),
        }
        start, end = self.data_interval(context)
        client = self.hook.client if self._needs_mlflow() else None
        result = run_drift_check(
            params.as_list(self.current_data, "current_data") or [],
            reference_data=params.as_list(self.reference_data, "reference_data") or None,
            client=client,
            registered_model_name=params.as_str(
                self.registered_model_name, "registered_model_name"
            ),
            alias=params.as_str(self.alias, "alias"),
            model_uri=params.as_str(self.model_uri, "model_uri"),
            reference_artifact_path=str(self.reference_artifact_path),
            columns=params.as_list(self.columns, "columns") or None,
            exclude_columns=params.as_list(self.exclude_columns, "exclude_columns"),
            options=options,
            report_uri=params.as_str(self.report_uri, "report_uri"),
            report_name=params.as_str(self.report_name, "report_name"),
            data_interval_start=start,
            data_interval_end=end,
            identity=self.identity(context),
            experiment_name=params.as_str(self.experiment_name, "experiment_name"),
            artifact_location=self.hook.target.artifact_location if client else None,
            conn_id=self.aws_conn_id,
        )
        self.log.info(
            "status=%s drift_share=%.3f drifted=%s report=%s",
            result["status"],
            result["drift_share"],
            result["drifted_columns"],
            result["report_uri"],
        )
        return result

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (docs/openlineage.md): the current data as input, with its rows and one
        drift assertion per column compared; the reference as input: the model whose
        training profile it is, or the reference datasets (rows)."""
        from mlops_provider.lineage import Lineage, operator_result

        result = operator_result(self)
        current = result.get("current_data") or self.current_data
        columns = result.get("columns") or {}
        assertions = [
            {
                "assertion": "no_drift",
                "name": f"{info.get('method')}({name})",
                "column": name,
                "success": not info.get("drifted"),
                "actual": info.get("score"),
                "expected": info.get("threshold"),
                "description": "; ".join(info.get("reasons") or []) or None,
            }
            for name, info in columns.items()
            if isinstance(info, Mapping)
        ]
        lineage = Lineage.of(self)
        listed = [current] if isinstance(current, str) else list(current or [])
        for uri in listed:
            lineage.dataset(
                uri, rows=result.get("rows") if len(listed) == 1 else None, assertions=assertions
            )
        if self.reference_data:
            from mlops_provider.core.params import as_list

            lineage.datasets(
                as_list(self.reference_data, "reference_data"), rows=result.get("reference_rows")
            )
        return lineage.model(result.get("model")).build()


class ModelPerformanceOperator(MlopsBaseOperator):
    """Evaluate predictions on labels that arrived later and compare them with the baseline.

    On run day ``D`` (the data interval's start) the predictions of the matured day
    ``D - label_delay`` (or of ``evaluation_window`` days ending there) are read from
    ``<predictions_data>/dt=YYYY-MM-DD``, joined on ``entity_columns`` and event day with the
    labels found in ``labels_data`` partitions (keyed by arrival day; only labels available by
    the end of the data interval count), and scored per day and per model version (string,
    boolean and integer labels alike). Each version is compared with its baseline: the
    holdout metrics logged on its training run (the ``model_run_id`` of its predictions), the
    champion's (``baseline="champion"``) or fixed values (a dict). A version with fewer than
    ``min_labels`` labelled rows is reported as ``insufficient_data``, not as degraded.

    :param predictions_data: base URI of the scoring output partitions. (templated)
    :param labels_data: base URI of the label partitions (or one labels dataset). (templated)
    :param label_delay: days until labels mature (default 7). (templated)
    :param evaluation_window: number of matured days evaluated (default 1). (templated)
    :param problem_type: ``"classification"`` (default) or ``"regression"``. (templated)
    :param metrics: metrics to compute (default: all of the task's). (templated)
    :param primary_metric: headline metric (default ``roc_auc`` / ``rmse``). (templated)
    :param min_labels: minimum labelled rows per version (default 200). (templated)
    :param max_degradation: allowed absolute degradation: a number for the primary metric or a
        dict per metric (default 0.05). (templated)
    :param max_relative_degradation: allowed relative degradation, the same way. (templated)
    :param baseline: ``"model_version"`` (default), ``"champion"`` or a dict of metric values.
        (templated)
    :param registered_model_name: model name (report location; ``baseline="champion"``; the
        training run to read ``target`` / ``entity_columns`` from when the predictions name
        none). (templated)
    :param alias: alias for ``baseline="champion"`` (default ``champion``). (templated)
    :param target: label column; default: the label the training run of the newest
        predictions' model recorded (tag ``mlops.target``). (templated)
    :param entity_columns: the columns joining predictions with labels (a string is accepted);
        default: what that training run recorded (tag ``mlops.entity_columns``). Replaces
        ``entity_column``. (templated)
    :param label_time_column: event time of a label (default ``event_timestamp``). (templated)
    :param score_column: probability column of the predictions (default ``probability``).
        (templated)
    :param prediction_column: predicted class/value column (default ``prediction``).
        (templated)
    :param decision_threshold: probability from which a binary prediction is the positive class
        when there is no prediction column (default 0.5). Replaces ``threshold``. (templated)
    :param report_uri: report directory (``performance.json`` + ``report.html``) or ``.html``
        file; default ``<reports root>/performance/<name>/dt=<data interval start>``.
        (templated)
    :param report_name: name in the default report location. (templated)
    :param experiment_name: MLflow experiment of monitoring runs (default
        ``mlops-monitoring``); ``None`` disables logging. Replaces ``monitoring_experiment``.
        (templated)
    :param counterfactuals: also score the labelled rows of the newest predictions' model with
        the champions before it (the one it replaced and the first champion ever, from the
        alias history of ``alias``) and report its gain over them on the same rows (default
        ``False``; needs ``input_data``). (templated)
    :param input_data: base URI of the feature partitions the predictions were scored from
        (``<input_data>/dt=YYYY-MM-DD``, batch scoring's ``input_data``). (templated)
    :param mlflow_conn_id: MLflow connection (default ``mlflow_default``). (templated)
    :param aws_conn_id: connection for ``s3://`` URIs (default ``aws_default``). (templated)

    XCom (return value, docs/results.md): ``status`` (``ok`` | ``degraded`` |
    ``insufficient_data``), ``passed`` (not degraded), ``reasons``, ``model`` (the version that
    scored the newest labelled predictions), ``mlflow_run_id``, ``report_uri``, ``rows``
    (its labelled rows); then ``evaluated_days``, ``missing_prediction_days``, ``task``,
    ``primary_metric``, ``min_labels``, ``labelled_rows_total``, ``predictions``, ``metrics``,
    ``baseline``, ``degradation`` (per metric ``{"abs", "rel"}``, positive = worse),
    ``model_versions``, ``by_version``, ``by_day``, ``run_day``, ``label_delay``,
    ``evaluation_window``, ``report_json_uri``, ``mlflow_experiment_id``; ``comparison`` (the
    model on the rows compared with earlier champions: ``model_version``, ``metrics``,
    ``rows``, ``rows_digest``, ``days``), ``counterfactuals`` (``[{version, role, metrics,
    rows, rows_digest, gain}]``, role ``previous_champion`` | ``first_champion``), ``gain``
    (``{role: {metric: gain}}``, positive = the current model is better) and
    ``counterfactual_notes`` (docs/monitoring.md). The top-level
    metrics describe the version of the most recent predictions in the window (normally the
    champion); ``by_version`` holds every version. ``status``, ``passed``, ``metrics`` and
    ``report_uri`` are also pushed under their own XCom keys.

    Deprecated keys (kept for one release): ``model_name``, ``model_version`` (use ``model``),
    ``labelled_rows`` (use ``rows``).

    :raises ModelPerformanceError: the labels dataset is missing; a column (``target``,
        ``entity_columns``, ``label_time_column``, ``score_column``, ``prediction_column``) is
        not in the predictions or labels files (the files and their columns are named; checked
        on their schemas before the data is found sufficient or not, so also while no label
        has matured); the label or entity columns are neither given nor recorded; an unknown
        metric (the known ones are listed); a ``report_uri`` that cannot be written; or an
        invalid parameter. A failure while writing the report or logging the run ends the
        monitoring run FAILED.
    """

    template_fields: Sequence[str] = (
        "predictions_data",
        "labels_data",
        "label_delay",
        "evaluation_window",
        "problem_type",
        "metrics",
        "primary_metric",
        "min_labels",
        "max_degradation",
        "max_relative_degradation",
        "baseline",
        "registered_model_name",
        "alias",
        "target",
        "entity_columns",
        "label_time_column",
        "score_column",
        "prediction_column",
        "decision_threshold",
        "report_uri",
        "report_name",
        "experiment_name",
        "counterfactuals",
        "input_data",
        "mlflow_conn_id",
        "aws_conn_id",
    )
    operator_extra_links = (ReportLink(), MlflowRunLink(), MlflowModelVersionLink())
    ui_color = "#e7eefd"
    error_class = ModelPerformanceError
    push_keys: ClassVar[tuple[str, ...]] = ("status", "passed", "metrics", "report_uri")

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
        target: str | None = None,
        entity_columns: str | list[str] | None = None,
        label_time_column: str = "event_timestamp",
        score_column: str | None = "probability",
        prediction_column: str | None = "prediction",
        decision_threshold: float = 0.5,
        report_uri: str | None = None,
        report_name: str | None = None,
        experiment_name: str | None = _MONITORING_EXPERIMENT,
        counterfactuals: bool = False,
        input_data: str | None = None,
        mlflow_conn_id: str = MLFLOW_CONN_ID,
        aws_conn_id: str | None = AWS_CONN_ID,
        **kwargs: Any,
    ) -> None:
        renamed = pop_renamed(
            kwargs,
            {
                "threshold": "decision_threshold",
                "entity_column": "entity_columns",
                "monitoring_experiment": "experiment_name",
            },
            type(self).__name__,
        )
        super().__init__(**kwargs)
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
        self.entity_columns = renamed.get("entity_columns", entity_columns)
        self.label_time_column = label_time_column
        self.score_column = score_column
        self.prediction_column = prediction_column
        self.decision_threshold = renamed.get("decision_threshold", decision_threshold)
        self.report_uri = report_uri
        self.report_name = report_name
        self.experiment_name = renamed.get("experiment_name", experiment_name)
        self.counterfactuals = counterfactuals
        self.input_data = input_data
        self.mlflow_conn_id = mlflow_conn_id
        self.aws_conn_id = aws_conn_id

    def error_message(self, err: Exception) -> str:
        return f"performance monitoring failed: {err}"

    def _counterfactual_request(self) -> Any:
        """What to compare the newest predictions' model with (``None``: nothing)."""
        from mlops_provider.core import params
        from mlops_provider.core.errors import ParameterError
        from mlops_provider.core.monitoring.performance_check import CounterfactualRequest

        if not params.as_bool(self.counterfactuals, "counterfactuals", default=False):
            return None
        input_data = params.as_str(self.input_data, "input_data")
        if not input_data:
            raise ParameterError(
                "input_data",
                "counterfactuals=True needs the features the predictions were scored from "
                "(input_data=<base URI of the dt= partitions>)",
            )
        return CounterfactualRequest(input_data, self.hook.target)

    def _plan(self) -> dict[str, Any]:
        """The metric plan's arguments (limits are checked by core: a number or a mapping)."""
        from mlops_provider.core import params

        return {
            "problem_type": params.as_str(self.problem_type, "problem_type"),
            "metrics": params.as_list(self.metrics, "metrics") or None,
            "primary_metric": params.as_str(self.primary_metric, "primary_metric"),
            "min_labels": params.as_int(self.min_labels, "min_labels", default=200, minimum=1),
            "max_degradation": self.max_degradation,
            "max_relative_degradation": self.max_relative_degradation,
        }

    def _columns(self) -> dict[str, Any]:
        from mlops_provider.core import params

        return {
            "target": params.as_str(self.target, "target"),
            "entity_columns": params.as_list(self.entity_columns, "entity_columns") or None,
            "label_time_column": params.as_str(
                self.label_time_column, "label_time_column", default="event_timestamp"
            ),
            "score_column": params.as_str(self.score_column, "score_column"),
            "prediction_column": params.as_str(self.prediction_column, "prediction_column"),
            "decision_threshold": params.as_float(
                self.decision_threshold, "decision_threshold", default=0.5, minimum=0, maximum=1
            ),
        }

    def run(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core import params
        from mlops_provider.core.monitoring import run_performance_check

        columns = self._columns()
        baseline = self.baseline
        if isinstance(baseline, str):
            baseline = params.parse_text(baseline)
        request = self._counterfactual_request()
        needs_mlflow = bool(
            self.experiment_name
            or request is not None
            or not isinstance(baseline, Mapping)
            or columns["target"] is None
            or columns["entity_columns"] is None
        )
        start, end = self.data_interval(context)
        client = self.hook.client if needs_mlflow else None
        result = run_performance_check(
            cast(str, params.as_str(self.predictions_data, "predictions_data")),
            cast(str, params.as_str(self.labels_data, "labels_data")),
            run_day=start.date(),
            as_of=end,
            label_delay=cast(int, params.as_int(self.label_delay, "label_delay", default=7)),
            evaluation_window=cast(
                int, params.as_int(self.evaluation_window, "evaluation_window", default=1)
            ),
            plan=self._plan(),
            columns=columns,
            baseline=baseline,
            client=client,
            registered_model_name=params.as_str(
                self.registered_model_name, "registered_model_name"
            ),
            alias=cast(str, params.as_str(self.alias, "alias", default="champion")),
            report_uri=params.as_str(self.report_uri, "report_uri"),
            report_name=params.as_str(self.report_name, "report_name"),
            identity=self.identity(context),
            experiment_name=params.as_str(self.experiment_name, "experiment_name"),
            artifact_location=self.hook.target.artifact_location if client else None,
            conn_id=self.aws_conn_id,
            counterfactuals=request,
        )
        self.log.info(
            "status=%s days=%s rows=%s %s=%s (baseline %s) gain=%s report=%s",
            result["status"],
            result["evaluated_days"],
            result["rows"],
            result["primary_metric"],
            result["metrics"].get(result["primary_metric"]),
            result["baseline"].get(result["primary_metric"]),
            result["gain"] or "-",
            result["report_uri"],
        )
        return result

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (docs/openlineage.md): the evaluated predictions partitions, the labels
        and the model version that scored the newest predictions, as inputs (and, when earlier
        champions were scored, the feature partitions they read)."""
        from mlops_provider.lineage import Lineage, join, operator_result

        result = operator_result(self)
        lineage = Lineage.of(self)
        for day in result.get("evaluated_days") or []:
            lineage.dataset(join(str(self.predictions_data), f"dt={day}"))
        for day in (result.get("comparison") or {}).get("days") or []:
            lineage.dataset(join(str(self.input_data), f"dt={day}"))
        return lineage.dataset(self.labels_data).model(result.get("model")).build()


class TrainingServingSkewOperator(MlopsBaseOperator):
    """Compare the features a model was served online with the offline features of the same
    entities at the same times (training-serving skew).

    The online side is the prediction log of the serving app (``<predictions_data>/dt=<day>/
    part-*.parquet``: entity columns, the features as fed to the model, ``model_run_id``,
    ``event_timestamp`` ...) for ``days``; the offline side is Feast historical retrieval for
    each logged row at its ``event_timestamp`` (``scored_at`` when the log has none), through
    the feature references the model was trained on: the ``mlops.feature_refs`` tag of the
    training run of each row's model, or ``features`` / ``feature_service`` when given. Numbers
    match within ``rtol`` / ``atol``, anything else exactly; rows without an offline value are
    counted apart, not compared. A feature whose mismatch rate exceeds ``max_mismatch_rate`` is
    skewed. The JSON result and the HTML report (a bar chart of mismatch rates, the
    per-feature table, example mismatching entities) are written to ``report_uri`` and logged
    to one MLflow monitoring run per (dag_id, task_id, data interval, map_index), reused on
    retries and reruns.

    :param predictions_data: base URI of the online prediction log (default layout of the
        serving app: ``<lake>/predictions-online/<model>``). (templated)
    :param days: day(s) of the log to check (``YYYY-MM-DD``, a list or a comma-separated
        text); default: the data interval's start day. (templated)
    :param feature_service: Feast feature service to retrieve offline (instead of the
        model's recorded references). (templated)
    :param features: Feast feature references ``view:feature`` (instead of the model's
        recorded references). (templated)
    :param registered_model_name: the model (report name; its ``alias`` holder's training run
        names the features of log rows without ``model_run_id``). (templated)
    :param alias: alias for the rows without ``model_run_id`` (default ``champion``).
        (templated)
    :param timestamp_column: the point in time of a logged request (default
        ``event_timestamp``, else ``scored_at``). (templated)
    :param variants: only the rows of these variants (``primary``, ``canary``, ``shadow``);
        default all. (templated)
    :param max_mismatch_rate: a feature is skewed above this share of mismatching rows
        (default 0.01). (templated)
    :param rtol: relative tolerance of numbers (default 1e-6). (templated)
    :param atol: absolute tolerance of numbers (default 1e-9). (templated)
    :param max_rows: rows compared at most; a larger log is sampled (default 100000).
        (templated)
    :param seed: seed of the sample (default 0). (templated)
    :param on_skew: ``"fail"`` (default): raise :class:`TrainingServingSkewDetected` after
        writing the report and pushing the result; ``"warn"``: log a warning and succeed.
        (templated)
    :param report_uri: report directory (``skew.json`` + ``report.html``) or ``.html`` file;
        default ``<reports root>/skew/<report_name>/dt=<data interval start>``. (templated)
    :param report_name: name in the default report location; default the registered model
        name, else the model named in the log, else the log's name. (templated)
    :param experiment_name: MLflow experiment of monitoring runs (default
        ``mlops-monitoring``); ``None`` disables MLflow logging. (templated)
    :param mlflow_conn_id: MLflow connection (default ``mlflow_default``). (templated)
    :param feast_conn_id: Feast connection (default ``feast_default``). (templated)
    :param repo_path: feature repo directory; default: the Feast connection's. (templated)
    :param aws_conn_id: connection for ``s3://`` URIs (default ``aws_default``). (templated)

    XCom (return value, docs/results.md): ``status`` (``ok`` | ``skew`` |
    ``insufficient_data``), ``passed`` (not skew), ``reasons``, ``model`` (the version that
    served the newest logged row), ``mlflow_run_id``, ``report_uri``, ``rows`` (rows
    compared); then ``max_mismatch_rate``, ``worst_mismatch_rate``, ``skewed_features``,
    ``n_features``, ``n_skewed``, ``features`` (per feature: ``kind``, ``rows``, ``compared``,
    ``mismatches``, ``mismatch_rate``, ``offline_missing``, ``offline_missing_rate``,
    ``online_missing``, ``skewed``, ``examples``), ``predictions_data``, ``days``,
    ``missing_days``, ``rows_logged``, ``sampled``, ``max_rows``, ``seed``, ``feature_refs``,
    ``feature_service``, ``feature_source``, ``timestamp_column``, ``variants``,
    ``model_versions``, ``rtol``, ``atol``, ``data_interval_start``, ``data_interval_end``,
    ``report_json_uri``, ``mlflow_experiment_id``. ``status``, ``passed``,
    ``skewed_features`` and ``report_uri`` are also pushed under their own XCom keys.

    :raises TrainingServingSkewDetected: skew with ``on_skew="fail"`` (the report is written
        and the result pushed first).
    :raises TrainingServingSkewError: no log rows for the days (nothing to check), no feature
        references (the model's training run recorded none and none were given), feature or
        entity columns missing from the log (named), a Feast retrieval error, a ``report_uri``
        that cannot be written, or an invalid parameter. Raised before anything is written; a
        failure while writing the report or logging the run ends the monitoring run FAILED.
    """

    template_fields: Sequence[str] = (
        "predictions_data",
        "days",
        "feature_service",
        "features",
        "registered_model_name",
        "alias",
        "timestamp_column",
        "variants",
        "max_mismatch_rate",
        "rtol",
        "atol",
        "max_rows",
        "seed",
        "on_skew",
        "report_uri",
        "report_name",
        "experiment_name",
        "mlflow_conn_id",
        "feast_conn_id",
        "repo_path",
        "aws_conn_id",
    )
    operator_extra_links = (ReportLink(), MlflowRunLink(), MlflowModelVersionLink())
    ui_color = "#fdf3e7"
    error_class = TrainingServingSkewError
    push_keys: ClassVar[tuple[str, ...]] = ("status", "passed", "skewed_features", "report_uri")

    def __init__(
        self,
        *,
        predictions_data: str,
        days: str | list[str] | None = None,
        feature_service: str | None = None,
        features: list[str] | None = None,
        registered_model_name: str | None = None,
        alias: str = "champion",
        timestamp_column: str | None = None,
        variants: str | list[str] | None = None,
        max_mismatch_rate: float = 0.01,
        rtol: float = 1e-6,
        atol: float = 1e-9,
        max_rows: int = 100_000,
        seed: int = 0,
        on_skew: str = "fail",
        report_uri: str | None = None,
        report_name: str | None = None,
        experiment_name: str | None = _MONITORING_EXPERIMENT,
        mlflow_conn_id: str = MLFLOW_CONN_ID,
        feast_conn_id: str = FEAST_CONN_ID,
        repo_path: str | None = None,
        aws_conn_id: str | None = AWS_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.predictions_data = predictions_data
        self.days = days
        self.feature_service = feature_service
        self.features = features
        self.registered_model_name = registered_model_name
        self.alias = alias
        self.timestamp_column = timestamp_column
        self.variants = variants
        self.max_mismatch_rate = max_mismatch_rate
        self.rtol = rtol
        self.atol = atol
        self.max_rows = max_rows
        self.seed = seed
        self.on_skew = on_skew
        self.report_uri = report_uri
        self.report_name = report_name
        self.experiment_name = experiment_name
        self.mlflow_conn_id = mlflow_conn_id
        self.feast_conn_id = feast_conn_id
        self.repo_path = repo_path
        self.aws_conn_id = aws_conn_id

    def error_message(self, err: Exception) -> str:
        return f"training-serving skew check failed: {err}"

    def run(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core import params
        from mlops_provider.core.errors import ParameterError
        from mlops_provider.core.monitoring import check_skew

        on_skew = params.as_str(self.on_skew, "on_skew", default="fail")
        if on_skew not in ON_SKEW_MODES:
            raise ParameterError(
                "on_skew", f"must be one of {list(ON_SKEW_MODES)}, got {on_skew!r}"
            )
        start, end = self.data_interval(context)
        features = params.as_names(self.features, "features")
        experiment = params.as_str(self.experiment_name, "experiment_name")
        client = self.hook.client if experiment or not (features or self.feature_service) else None
        result = check_skew(
            cast(
                str,
                params.required(
                    params.as_uri(self.predictions_data, "predictions_data"), "predictions_data"
                ),
            ),
            params.as_names(self.days, "days") or [start.date().isoformat()],
            store=self.feast_hook.store,
            client=client,
            features=features,
            feature_service=params.as_str(self.feature_service, "feature_service"),
            registered_model_name=params.as_str(
                self.registered_model_name, "registered_model_name"
            ),
            alias=params.as_str(self.alias, "alias", default="champion"),
            options={
                "timestamp_column": params.as_str(self.timestamp_column, "timestamp_column"),
                "variants": params.as_names(self.variants, "variants"),
                "max_mismatch_rate": self.max_mismatch_rate,
                "rtol": self.rtol,
                "atol": self.atol,
                "max_rows": self.max_rows,
                "seed": self.seed,
            },
            report_uri=params.as_str(self.report_uri, "report_uri"),
            report_name=params.as_str(self.report_name, "report_name"),
            data_interval_start=start,
            data_interval_end=end,
            identity=self.identity(context),
            experiment_name=experiment,
            artifact_location=self.hook.target.artifact_location if client else None,
            conn_id=self.aws_conn_id,
        )
        self.log.info(
            "status=%s rows=%s worst mismatch rate=%s skewed=%s report=%s",
            result["status"],
            result["rows"],
            result["worst_mismatch_rate"],
            result["skewed_features"],
            result["report_uri"],
        )
        if result["status"] == "skew":
            message = f"{result['reasons'][0]}; report: {result['report_uri']}"
            if on_skew == "fail":
                # Downstream tasks with a failure trigger rule (alerts) can read the result.
                self._mlops_result = result
                self.persist_links(context, result)
                self.push_result_keys(context, result)
                context["ti"].xcom_push(key="return_value", value=result)
                raise TrainingServingSkewDetected(message)
            self.log.warning("%s", message)
        return result

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (docs/openlineage.md): the prediction log partitions checked, with one
        assertion per feature compared, and the model that served the newest row, as inputs."""
        from mlops_provider.lineage import Lineage, join, operator_result

        result = operator_result(self)
        assertions = [
            {
                "assertion": "no_training_serving_skew",
                "name": f"mismatch_rate({name})",
                "column": name,
                "success": not info.get("skewed"),
                "actual": info.get("mismatch_rate"),
                "expected": result.get("max_mismatch_rate"),
            }
            for name, info in (result.get("features") or {}).items()
            if isinstance(info, Mapping)
        ]
        lineage = Lineage.of(self)
        for day in result.get("days") or []:
            if day not in (result.get("missing_days") or []):
                lineage.dataset(
                    join(str(self.predictions_data), f"dt={day}"), assertions=assertions
                )
        return lineage.model(result.get("model")).build()
