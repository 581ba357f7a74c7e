"""Train a scikit-learn model and log it, with its lineage, to MLflow."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from mlops_provider.exceptions import TrainingError
from mlops_provider.hooks.mlflow import MlflowHook
from mlops_provider.links.mlflow import MlflowRunLink, run_url

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["TrainModelOperator", "task_identity", "lineage_tags", "push_keys"]

# Also pushed under their own XCom keys so ``task.output["model_uri"]`` works in DAGs.
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


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def task_identity(context: Context) -> dict[str, Any]:
    """``dag_id``, ``run_id``, ``task_id``, ``map_index``, ``try_number`` and the ``key``
    ``dag_id/run_id/task_id/map_index`` that stays the same across retries."""
    ti = context["ti"]
    map_index = getattr(ti, "map_index", -1)
    map_index = -1 if map_index is None else int(map_index)
    ident = {
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "task_id": ti.task_id,
        "map_index": map_index,
        "try_number": getattr(ti, "try_number", None),
    }
    ident["key"] = f"{ti.dag_id}/{ti.run_id}/{ti.task_id}/{map_index}"
    return ident


def push_keys(context: Context, result: Mapping[str, Any], keys: Sequence[str]) -> None:
    """Push ``result[key]`` under XCom key ``key`` (``task.output[key]`` then resolves)."""
    ti = context["ti"]
    for key in keys:
        if key in result:
            ti.xcom_push(key=key, value=result[key])


def lineage_tags(context: Context) -> dict[str, str]:
    """MLflow tags naming the Airflow task instance and its data interval."""
    ident = task_identity(context)
    tags = {
        "mlops.dag_id": ident["dag_id"],
        "mlops.dag_run_id": ident["run_id"],
        "mlops.task_id": ident["task_id"],
        "mlops.map_index": str(ident["map_index"]),
        "mlops.try_number": str(ident["try_number"]),
        "mlops.data_interval_start": _iso(context.get("data_interval_start")),
        "mlops.data_interval_end": _iso(context.get("data_interval_end")),
        "mlops.logical_date": _iso(context.get("logical_date")),
    }
    return {k: v for k, v in tags.items() if v not in (None, "None")}


class TrainModelOperator(BaseOperator):
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

    Retries reuse or cleanly replace the run of an earlier try (tag ``mlops.task_key`` =
    ``dag_id/run_id/task_id/map_index``): leftover RUNNING runs are marked FAILED, a FINISHED run
    with the same data and configuration is reused without retraining.

    :param training_data: dataset URI with the features and the target (templated).
    :param target: label column (templated).
    :param estimator: dotted class path (e.g. ``sklearn.ensemble.HistGradientBoostingClassifier``),
        a factory callable, or an unfitted estimator; default: histogram gradient boosting for
        the task (templated when a string).
    :param estimator_params: keyword arguments of the estimator (templated).
    :param feature_columns: model inputs; default all columns but the target, the
        ``id_columns`` and columns named like ids/timestamps (``id``, ``*_id``,
        ``*_timestamp``, ``*_ts``, ``*_at``) or of datetime type (templated).
    :param id_columns: columns never used as features (default ``customer_id``,
        ``event_timestamp``) (templated).
    :param categorical_columns: columns to one-hot encode even if numeric (templated).
    :param numeric_imputation: ``median`` (default), ``mean``, ``most_frequent``, a number, or
        None (templated).
    :param categorical_imputation: ``most_frequent`` (default) or ``constant`` (missing is a
        category of its own) (templated).
    :param scale_numeric: standardize numeric features (default True).
    :param task: ``classification`` / ``regression``; default from the estimator, else inferred
        from the target (templated).
    :param test_size: holdout fraction or row count, split with ``random_state``, stratified for
        classification; ignored when ``validation_data`` is given (templated).
    :param random_state: seed of the split (and of the estimator unless set in its params).
    :param validation_data: dataset URI used as the holdout instead of a split (templated).
    :param experiment_name: MLflow experiment, created with the connection's artifact location
        if missing (default ``mlops-training``) (templated).
    :param run_name: MLflow run name (templated).
    :param feature_refs: Feast feature references used to build the training set, recorded as the
        tag ``mlops.feature_refs`` (templated; e.g. the training-set task's XCom).
    :param pip_requirements: requirements recorded with the model (default: pinned scikit-learn
        and the estimator's package).
    :param mlflow_conn_id: MLflow connection (templated).
    :param aws_conn_id: connection for ``s3://`` datasets (templated).

    XCom: ``run_id``, ``experiment_id``, ``experiment_name``, ``model_uri`` (the logged model,
    ``models:/m-...``), ``run_model_uri`` (``runs:/<run_id>/model``), ``model_id``, ``task``,
    ``target``, ``estimator``, ``metrics`` (holdout), ``train_metrics``, ``feature_columns``,
    ``numeric_columns``, ``categorical_columns``, ``training_rows``, ``holdout_rows``,
    ``dataset_digest``, ``dataset_source``, ``reference_profile_uri``, ``fingerprint``,
    ``tracking_uri``, ``reused``. The main keys (``run_id``, ``model_uri``, ``run_model_uri``,
    ``model_id``, ``experiment_id``, ``metrics``, ``task``, ``feature_columns``,
    ``training_rows``, ``dataset_digest``, ``reference_profile_uri``) are also pushed under their
    own XCom keys, so ``train.output["model_uri"]`` works.

    :raises TrainingError: bad data (missing target, single class, all-null feature, empty),
        unknown estimator or invalid parameters (raised before any MLflow run exists), or an
        unreachable tracking server (a retry then continues cleanly).
    """

    template_fields: Sequence[str] = (
        "training_data",
        "target",
        "estimator",
        "estimator_params",
        "feature_columns",
        "id_columns",
        "categorical_columns",
        "numeric_imputation",
        "categorical_imputation",
        "task",
        "test_size",
        "validation_data",
        "experiment_name",
        "run_name",
        "feature_refs",
        "mlflow_conn_id",
        "aws_conn_id",
    )
    template_fields_renderers = {"estimator_params": "json"}
    operator_extra_links = (MlflowRunLink(),)
    ui_color = "#d0e6f7"

    def __init__(
        self,
        *,
        training_data: str,
        target: str,
        estimator: str | Callable[..., Any] | Any | None = None,
        estimator_params: Mapping[str, Any] | None = None,
        feature_columns: Sequence[str] | None = None,
        id_columns: Sequence[str] | None = None,
        categorical_columns: Sequence[str] | None = None,
        numeric_imputation: str | float | None = "median",
        categorical_imputation: str | None = "most_frequent",
        scale_numeric: bool = True,
        task: str | None = None,
        test_size: float | int = 0.2,
        random_state: int | None = 42,
        validation_data: str | None = None,
        experiment_name: str = "mlops-training",
        run_name: str | None = None,
        feature_refs: Sequence[str] | None = None,
        pip_requirements: Sequence[str] | None = None,
        mlflow_conn_id: str = MlflowHook.default_conn_name,
        aws_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.training_data = training_data
        self.target = target
        self.estimator = estimator
        self.estimator_params = estimator_params
        self.feature_columns = feature_columns
        self.id_columns = id_columns
        self.categorical_columns = categorical_columns
        self.numeric_imputation = numeric_imputation
        self.categorical_imputation = categorical_imputation
        self.scale_numeric = scale_numeric
        self.task = task
        self.test_size = test_size
        self.random_state = random_state
        self.validation_data = validation_data
        self.experiment_name = experiment_name
        self.run_name = run_name
        self.feature_refs = feature_refs
        self.pip_requirements = pip_requirements
        self.mlflow_conn_id = mlflow_conn_id
        self.aws_conn_id = aws_conn_id

    @cached_property
    def hook(self) -> MlflowHook:
        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core.training import (
            TrackingUnavailableError,
            TrainingConfig,
            TrainingInputError,
            train_and_log,
        )

        ident = task_identity(context)
        config = TrainingConfig(
            target=self.target,
            estimator=None if self.estimator is None or self.estimator == "" else self.estimator,
            estimator_params=dict(self.estimator_params or {}),
            feature_columns=_list(self.feature_columns),
            id_columns=_list(self.id_columns),
            categorical_columns=_list(self.categorical_columns),
            numeric_imputation=_imputation(self.numeric_imputation),
            categorical_imputation=self.categorical_imputation or None,
            scale_numeric=self.scale_numeric,
            task=self.task or None,
            test_size=_number(self.test_size),
            random_state=self.random_state,
        )
        target = self.hook.target
        try:
            result = train_and_log(
                target,
                self.training_data,
                config,
                experiment_name=self.experiment_name,
                task_key=ident["key"],
                tags=lineage_tags(context),
                validation_data=self.validation_data or None,
                conn_id=self.aws_conn_id,
                feature_refs=_list(self.feature_refs),
                run_name=self.run_name or f"{ident['dag_id']}.{ident['task_id']}",
                pip_requirements=self.pip_requirements,
            )
        except TrainingInputError as err:
            raise TrainingError(f"cannot train on {self.training_data}: {err}") from err
        except TrackingUnavailableError as err:
            raise TrainingError(
                f"{err}; nothing was logged, a retry starts cleanly (task {ident['key']})"
            ) from err
        MlflowRunLink.persist(
            context, run_url(target.tracking_uri, result.experiment_id, result.run_id)
        )
        out = result.to_dict()
        push_keys(context, out, TRAINING_XCOM_KEYS)
        self.log.info(
            "run %s (%s): %s holdout metrics %s",
            result.run_id,
            "reused" if result.reused else "new",
            result.task,
            result.metrics,
        )
        return out


def _list(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        # a rendered template: JSON or a Python list literal, else comma-separated names
        import ast
        import json

        text = value.strip()
        if text.startswith(("[", "(")):
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = ast.literal_eval(text)
            return [str(v) for v in parsed]
        return [v.strip() for v in text.split(",") if v.strip()]
    return [str(v) for v in value]


def _number(value: Any) -> float | int:
    if isinstance(value, str):
        return float(value) if any(c in value for c in ".eE") else int(value)
    return value  # type: ignore[no-any-return]


def _imputation(value: Any) -> str | float | None:
    if value is None or value == "" or value == "None":
        return None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value  # type: ignore[no-any-return]
