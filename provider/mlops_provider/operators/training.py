"""Train a scikit-learn model and log it, with its lineage, to MLflow."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from mlops_provider.exceptions import TrainingError
from mlops_provider.links.mlflow import MlflowRunLink
from mlops_provider.operators._base import (
    AWS_CONN_ID,
    MLFLOW_CONN_ID,
    MlopsBaseOperator,
    pop_renamed,
    run_identity,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["TRAINING_XCOM_KEYS", "TrainModelOperator", "code_lineage", "lineage_tags"]

#: Also pushed under their own XCom keys so ``task.output["model_uri"]`` works in DAGs.
TRAINING_XCOM_KEYS = (
    "run_id",
    "model_uri",
    "run_model_uri",
    "model_id",
    "experiment_id",
    "metrics",
    "task",
    "feature_columns",
    "training_rows",
    "dataset_digest",
    "reference_profile_uri",
)
_RENAMED = {"task": "problem_type", "id_columns": "entity_columns"}


def lineage_tags(context: Context) -> dict[str, str]:
    """MLflow tags naming the Airflow task instance and its data interval
    (``RunIdentity.lineage_tags()`` plus ``mlops.logical_date``)."""
    from mlops_provider.core.times import iso

    tags = run_identity(context).lineage_tags()
    logical_date = iso(context.get("logical_date"))
    if logical_date:
        tags["mlops.logical_date"] = logical_date
    return tags


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value))


def code_lineage(context: Context) -> dict[str, Any]:
    """The ``code`` of a run's lineage document, from the Airflow context: ``dag_id``,
    ``run_id``, ``task_id``, ``map_index``, ``try_number``, ``run_type``, ``dag_version_id``
    (the DAG version Airflow 3 records for the task instance), ``bundle_name`` and
    ``bundle_version`` (the DAG bundle, when the task runs from one), ``dag_file`` (absolute),
    ``dag_file_relative`` (in its bundle), ``dag_file_digest`` (sha256 of its content) and
    ``airflow_version``. Values Airflow does not provide are None."""
    from airflow import __version__ as airflow_version

    from mlops_provider.core.governance.collect import file_digest

    ti = context.get("ti") or context.get("task_instance")
    dag = context.get("dag")
    dag_run = context.get("dag_run")
    bundle = getattr(ti, "bundle_instance", None)
    dag_file = getattr(dag, "fileloc", None)
    map_index = getattr(ti, "map_index", None)
    return {
        "dag_id": getattr(ti, "dag_id", None) or getattr(dag, "dag_id", None),
        "run_id": getattr(ti, "run_id", None) or context.get("run_id"),
        "task_id": getattr(ti, "task_id", None),
        "map_index": None if map_index is None else int(map_index),
        "try_number": getattr(ti, "try_number", None),
        "run_type": _text(getattr(dag_run, "run_type", None)),
        "dag_version_id": _text(getattr(ti, "dag_version_id", None)),
        "bundle_name": getattr(bundle, "name", None),
        "bundle_version": getattr(bundle, "version", None),
        "dag_file": dag_file,
        "dag_file_relative": _text(getattr(dag, "relative_fileloc", None)),
        "dag_file_digest": file_digest(dag_file),
        "airflow_version": airflow_version,
    }


class TrainModelOperator(MlopsBaseOperator):
    """Fit a scikit-learn Pipeline (preprocessing + estimator) and log it to MLflow.

    The logged model is the whole Pipeline: numeric columns imputed and scaled, categorical
    columns imputed and one-hot encoded (unknown categories ignored), then the estimator; it
    scores raw feature columns. The run records params (estimator, its parameters,
    preprocessing), holdout metrics under plain names (``accuracy``, ``precision``, ``recall``,
    ``f1``, ``roc_auc``, ``log_loss`` / ``rmse``, ``mae``, ``r2``) and ``train_``-prefixed
    training metrics, the training dataset as an MLflow dataset input (source + digest), tags for
    the DAG run, task and data interval, the Feast feature references and the provider version,
    the monitoring reference profile (artifact ``monitoring/reference_profile.json``) and the
    model (artifact ``model``, with signature and input example).

    Retries and reruns of a data interval reuse or cleanly replace the run of an earlier
    attempt (tag ``mlops.task_key`` = ``RunIdentity.work_key``: ``dag_id/task_id/map_index/
    <interval>``, the same for every DAG run of the interval): a FINISHED run with the same data
    and configuration is reused without retraining (``status`` ``reused``), new data trains a
    new run and the older one is tagged ``mlops.superseded_by``; RUNNING runs left by a crashed
    attempt are marked FAILED with ``mlops.closed_reason`` (docs/training.md, "Reruns and
    crashes").

    :param training_data: dataset URI with the features and the target (templated).
    :param target: label column (templated).
    :param estimator: dotted class path (e.g. ``sklearn.ensemble.HistGradientBoostingClassifier``),
        a factory callable, or an unfitted estimator; default: histogram gradient boosting for
        the problem type (templated when a string).
    :param estimator_params: keyword arguments of the estimator (templated).
    :param feature_columns: model inputs; default all columns but the target, the
        ``entity_columns`` and columns named like ids/timestamps (``id``, ``*_id``,
        ``*_timestamp``, ``*_ts``, ``*_at``) or of datetime type (templated).
    :param entity_columns: identifier columns, never features; a single name is accepted
        (templated). Replaces ``id_columns`` (deprecated).
    :param categorical_columns: columns to one-hot encode even if numeric, or numbers stored
        as text that are codes (templated).
    :param numeric_columns: columns that are numbers even if the data stores them as text
        (``"45.20"``): converted with ``pandas.to_numeric`` before training, empty text being a
        missing value; a value that does not convert (``"unknown"``, ``"$45.20"``) is an error
        naming it. The model then takes numbers in these columns (templated).
    :param max_categories: the most distinct values a categorical feature may have (default
        100; None: no limit); a column with more is an error naming it and its level count
        (templated).
    :param numeric_imputation: ``median`` (default), ``mean``, ``most_frequent``, a number, or
        None (templated).
    :param categorical_imputation: ``most_frequent`` (default) or ``constant`` (missing is a
        category of its own) (templated).
    :param scale_numeric: standardize numeric features (default True) (templated).
    :param problem_type: ``classification`` / ``regression``; default from the estimator, else
        inferred from the target (templated). Replaces ``task`` (deprecated).
    :param test_size: holdout fraction or row count, split with ``random_state``, stratified for
        classification; ignored when ``validation_data`` is given (templated).
    :param random_state: seed of the split (and of the estimator unless set in its params)
        (templated).
    :param validation_data: dataset URI used as the holdout instead of a split (templated).
    :param experiment_name: MLflow experiment, created with the connection's artifact location
        if missing (default ``mlops-training``) (templated).
    :param run_name: MLflow run name (default ``<dag_id>.<task_id>``) (templated).
    :param feature_refs: Feast feature references used to build the training set, recorded as the
        tag ``mlops.feature_refs`` (templated; e.g. the training-set task's XCom).
    :param pip_requirements: requirements recorded with the model (default: pinned scikit-learn
        and the estimator's package).
    :param lineage: fields of the run's lineage document ``lineage/training.json``
        (docs/lineage.md) the DAG knows: ``evaluation_data``, ``entity_data``,
        ``label_window``, ``feature_service``, ``feature_views``, ``source_partitions``,
        ``trigger``, ``code`` (templated; e.g. a task's XCom). The operator adds ``code`` from
        the Airflow context (:func:`code_lineage`: DAG, run, task, DAG version, bundle version,
        DAG file and its sha256); the training data, its digest and the configuration are
        recorded in any case.
    :param mlflow_conn_id: MLflow connection (default ``mlflow_default``) (templated).
    :param aws_conn_id: connection for ``s3://`` datasets (default ``aws_default``) (templated).
    :param stale_after: seconds (or a ``timedelta``) after its start at which a RUNNING run of
        the same interval written on another host counts as abandoned and is closed (default 6
        hours); on this host the writer's process is checked instead.

    XCom (docs/results.md): ``status`` ``trained`` or ``reused`` (the finished run of an earlier
    try with the same data and configuration), ``passed`` True, ``reasons``, ``model`` (the
    logged model: ``name``/``version`` None, ``run_id``, ``uri`` ``models:/m-...``),
    ``mlflow_run_id``, ``report_uri`` None, ``rows`` (training rows); then ``reused_from``
    (the reused run's id, or None);
    ``mlflow_experiment_id``, ``problem_type``, ``experiment_id``, ``experiment_name``,
    ``model_uri`` (``models:/m-...``), ``run_model_uri`` (``runs:/<run_id>/model``),
    ``model_id``, ``target``, ``estimator``, ``metrics`` (holdout), ``train_metrics``,
    ``feature_columns``, ``numeric_columns``, ``categorical_columns``, ``holdout_rows``,
    ``dataset_digest``, ``dataset_source``, ``reference_profile_uri``, ``fingerprint``,
    ``tracking_uri``. The keys of :data:`TRAINING_XCOM_KEYS` are also pushed under their own
    XCom keys, so ``train.output["model_uri"]`` works.

    Deprecated keys (kept for one release): ``run_id`` (use ``mlflow_run_id``),
    ``training_rows`` (use ``rows``), ``task`` (use ``problem_type``), ``reused`` (use
    ``status == "reused"``).

    A text column that holds numbers (``"45.20"``, ``"$1,204.50"``), or mostly numbers and
    some text (``"unknown"``), is an error naming the column and the values (declare it in
    ``numeric_columns`` or ``categorical_columns``, or fix the data), not a categorical feature
    with one level per number.

    :raises TrainingError: bad data (missing target, single class, all-null feature, empty,
        numbers stored as text, too many categories), an estimator that is unknown or not an
        estimator, a parameter whose rendered value does not parse (naming it and the value) or
        invalid estimator parameters (all raised before any MLflow run exists), or an
        unreachable tracking server (a retry then continues cleanly).
    """

    template_fields: Sequence[str] = (
        "training_data",
        "target",
        "estimator",
        "estimator_params",
        "feature_columns",
        "entity_columns",
        "categorical_columns",
        "numeric_columns",
        "max_categories",
        "numeric_imputation",
        "categorical_imputation",
        "scale_numeric",
        "problem_type",
        "test_size",
        "random_state",
        "validation_data",
        "experiment_name",
        "run_name",
        "feature_refs",
        "lineage",
        "mlflow_conn_id",
        "aws_conn_id",
    )
    template_fields_renderers = {"estimator_params": "json", "lineage": "json"}
    operator_extra_links = (MlflowRunLink(),)
    ui_color = "#d0e6f7"
    error_class = TrainingError
    push_keys = TRAINING_XCOM_KEYS

    def __init__(
        self,
        *,
        training_data: str,
        target: str,
        estimator: str | Callable[..., Any] | Any | None = None,
        estimator_params: Mapping[str, Any] | None = None,
        feature_columns: Sequence[str] | None = None,
        entity_columns: str | Sequence[str] | None = None,
        categorical_columns: Sequence[str] | None = None,
        numeric_columns: Sequence[str] | None = None,
        max_categories: int | None = 100,  # core.training.DEFAULT_MAX_CATEGORIES
        numeric_imputation: str | float | None = "median",
        categorical_imputation: str | None = "most_frequent",
        scale_numeric: bool = True,
        problem_type: str | None = None,
        test_size: float | int = 0.2,
        random_state: int | None = 42,
        validation_data: str | None = None,
        experiment_name: str = "mlops-training",  # core.training.DEFAULT_EXPERIMENT
        run_name: str | None = None,
        feature_refs: Sequence[str] | None = None,
        pip_requirements: Sequence[str] | None = None,
        lineage: Mapping[str, Any] | str | None = None,
        mlflow_conn_id: str = MLFLOW_CONN_ID,
        aws_conn_id: str | None = AWS_CONN_ID,
        stale_after: float | timedelta = 6 * 3600.0,  # core.runs.DEFAULT_STALE_AFTER
        **kwargs: Any,
    ) -> None:
        renamed = pop_renamed(kwargs, _RENAMED, type(self).__name__)
        super().__init__(**kwargs)
        self.training_data = training_data
        self.target = target
        self.estimator = estimator
        self.estimator_params = estimator_params
        self.feature_columns = feature_columns
        self.entity_columns = renamed.get("entity_columns", entity_columns)
        self.categorical_columns = categorical_columns
        self.numeric_columns = numeric_columns
        self.max_categories = max_categories
        self.numeric_imputation = numeric_imputation
        self.categorical_imputation = categorical_imputation
        self.scale_numeric = scale_numeric
        self.problem_type = renamed.get("problem_type", problem_type)
        self.test_size = test_size
        self.random_state = random_state
        self.validation_data = validation_data
        self.experiment_name = experiment_name
        self.run_name = run_name
        self.feature_refs = feature_refs
        self.pip_requirements = pip_requirements
        self.lineage = lineage
        self.mlflow_conn_id = mlflow_conn_id
        self.aws_conn_id = aws_conn_id
        if isinstance(stale_after, timedelta):
            stale_after = stale_after.total_seconds()
        self.stale_after = float(stale_after)

    def training_config(self) -> Any:
        """The :class:`~mlops_provider.core.training.TrainingConfig` of the fields (rendered
        when the task runs; as written in the DAG otherwise, which is what a CI check of the
        configuration trains: ``mlops_provider.testing.train_sample``). The config parses every
        value with :mod:`mlops_provider.core.params`.

        :raises TrainingInputError: a value that does not parse, naming the parameter and it.
        """
        from mlops_provider.core.training import TrainingConfig

        return TrainingConfig(
            target=self.target,
            estimator=self.estimator,
            estimator_params=self.estimator_params or {},
            feature_columns=self.feature_columns,
            entity_columns=self.entity_columns,
            categorical_columns=self.categorical_columns,
            numeric_columns=self.numeric_columns,
            max_categories=self.max_categories,
            numeric_imputation=self.numeric_imputation,
            categorical_imputation=self.categorical_imputation,
            scale_numeric=self.scale_numeric,
            problem_type=self.problem_type,
            test_size=self.test_size,
            random_state=self.random_state,
        )

    def _lineage(self, context: Context) -> dict[str, Any]:
        """The rendered ``lineage`` with ``code`` completed from the context (the DAG's own
        ``code`` entries win)."""
        from mlops_provider.core.params import as_mapping

        given = dict(as_mapping(self.lineage, "lineage") or {})
        given["code"] = {**code_lineage(context), **dict(given.get("code") or {})}
        return given

    def run(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core import params
        from mlops_provider.core.params import as_list, as_str
        from mlops_provider.core.training import DEFAULT_EXPERIMENT, train_and_log

        ident = self.identity(context)
        result = train_and_log(
            self.hook.target,
            params.required(
                params.as_uri(self.training_data, "training_data"), "training_data", "a dataset URI"
            ),
            self.training_config(),
            experiment_name=as_str(self.experiment_name, "experiment_name") or DEFAULT_EXPERIMENT,
            task_key=ident.work_key,
            tags=lineage_tags(context),
            validation_data=as_str(self.validation_data, "validation_data"),
            conn_id=as_str(self.aws_conn_id, "aws_conn_id"),
            feature_refs=params.as_names(self.feature_refs, "feature_refs"),
            run_name=as_str(self.run_name, "run_name", default=f"{ident.dag_id}.{ident.task_id}"),
            pip_requirements=as_list(self.pip_requirements, "pip_requirements"),
            lineage=self._lineage(context),
            stale_after=self.stale_after,
        )
        self.log.info(
            "run %s (%s): %s holdout metrics %s",
            result.run_id,
            result.status,
            result.task,
            result.metrics,
        )
        return result.to_dict()

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (docs/openlineage.md): the training data (and ``validation_data``) as
        inputs with schema and rows read; the logged MLflow model as the output
        (``logged-models/<model id>``, with its run id)."""
        from mlops_provider.lineage import Lineage, operator_result

        result = operator_result(self)
        rows: int | None = result.get("rows")
        holdout: int | None = result.get("holdout_rows")
        read = rows  # a split (no validation_data): both parts were read from training_data
        if not self.validation_data and rows is not None and holdout is not None:
            read = rows + holdout
        lineage = Lineage.of(self).dataset(
            result.get("dataset_source") or self.training_data, rows=read
        )
        lineage.dataset(self.validation_data, rows=holdout)
        return lineage.model(
            {**(result.get("model") or {}), "model_id": result.get("model_id")}, output=True
        ).build()

    def error_message(self, err: Exception) -> str:
        from mlops_provider.core.errors import ServiceError

        if isinstance(err, ServiceError):
            return f"{err}; nothing was logged, a retry starts cleanly"
        return f"cannot train on {self.training_data}: {err}"
