"""Training: a scikit-learn Pipeline (preprocessing + estimator) fitted, scored and logged to MLflow.

The logged model is the whole Pipeline, so scoring takes the raw feature columns exactly as
they are in the training data (training-serving parity)::

    Pipeline([
        ("preprocess", ColumnTransformer([
            ("numeric", [SimpleImputer(numeric_imputation)] + [StandardScaler()], numeric),
            ("categorical", [missing -> one sentinel, SimpleImputer(...), OneHotEncoder(
                handle_unknown="ignore")], categorical),
        ])),
        ("estimator", <the estimator>),
    ])

Only scikit-learn classes are used in the preprocessing, so loading the model needs nothing
from this provider. Missing categorical values may be ``None`` or ``NaN``; both are mapped to one
sentinel first (scikit-learn's imputer sees only one kind of missing value at a time).

Feature columns (default): every column except the target, the ``id_columns`` (default
``customer_id`` and ``event_timestamp``), columns *named like* ids or timestamps (``id``,
``*_id``, ``*_timestamp``, ``*_ts``, ``*_at``) and columns of a type a model cannot take
(datetimes, durations, nested values). Numeric and boolean columns are numeric features;
strings and categories are categorical features (``categorical_columns`` forces the latter).

Task: ``task`` if given, else the estimator's kind (classifier / regressor), else inferred from
the target: classification for boolean, string or categorical targets and for integer-valued
targets with at most 20 distinct values; regression otherwise.

Retry safety of :func:`train_and_log`: runs carry a deterministic ``mlops.task_key`` tag
(``dag_id/run_id/task_id/map_index`` from the operator). Before training, runs of the same key
are looked up: a RUNNING one (a try that died without cleaning up) is marked FAILED, a FINISHED
one with the same fingerprint (same data digest and configuration) is reused without
retraining. A try that fails after creating its run marks that run FAILED. When a new run
finishes, older runs of the key are tagged ``mlops.superseded_by`` and a FINISHED older run loses
its task-key tag, so each key has exactly one FINISHED run.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import logging
import math
import re
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlops_provider.core.errors import InputError, ServiceError
from mlops_provider.core.evaluation import metric_names, score_model

if TYPE_CHECKING:
    import pyarrow as pa
    from mlflow import MlflowClient
    from mlflow.entities import Run
    from sklearn.pipeline import Pipeline

    from mlops_provider.core.mlflow_target import MlflowTarget

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_ID_COLUMNS",
    "DEFAULT_EXPERIMENT",
    "DEFAULT_ESTIMATORS",
    "MODEL_ARTIFACT",
    "REFERENCE_PROFILE_PATH",
    "SUMMARY_PATH",
    "TASK_KEY_TAG",
    "TrainingInputError",
    "TrackingUnavailableError",
    "TrainingConfig",
    "FeatureSelection",
    "PreparedTraining",
    "FittedModel",
    "TrainingResult",
    "normalize_frame",
    "select_features",
    "infer_task",
    "resolve_estimator",
    "build_pipeline",
    "prepare_training",
    "fit_prepared",
    "train_model",
    "train_and_log",
    "find_task_runs",
]

DEFAULT_ID_COLUMNS: tuple[str, ...] = ("customer_id", "event_timestamp")
DEFAULT_EXPERIMENT = "mlops-training"
DEFAULT_ESTIMATORS = {
    "classification": "sklearn.ensemble.HistGradientBoostingClassifier",
    "regression": "sklearn.ensemble.HistGradientBoostingRegressor",
}
MODEL_ARTIFACT = "model"
REFERENCE_PROFILE_PATH = "monitoring/reference_profile.json"
SUMMARY_PATH = "training/summary.json"
TASK_KEY_TAG = "mlops.task_key"
MAX_CLASSES_FOR_INFERENCE = 20
NUMERIC_IMPUTATIONS = ("median", "mean", "most_frequent")
CATEGORICAL_IMPUTATIONS = ("most_frequent", "constant")
MISSING_CATEGORY = "__missing__"
_ID_NAME = re.compile(r"(^id$|_id$|_timestamp$|_ts$|_at$)", re.IGNORECASE)


class TrainingInputError(InputError):
    """The data, estimator or configuration cannot be trained on; nothing was logged."""


class TrackingUnavailableError(ServiceError):
    """The MLflow tracking store could not be reached (a retry may succeed)."""


@dataclass
class TrainingConfig:
    """What to train and how (see the module docstring for the defaults).

    :param target: label column.
    :param estimator: dotted class path (``sklearn.ensemble.HistGradientBoostingClassifier``),
        a factory callable returning an estimator, or an unfitted estimator (cloned);
        default: histogram gradient boosting for the task.
    :param estimator_params: keyword arguments of the estimator class / factory.
    :param feature_columns: model inputs (default: all but target, ids and timestamps).
    :param id_columns: columns never used as features (default ``customer_id``,
        ``event_timestamp``; columns named like ids/timestamps are excluded as well).
    :param categorical_columns: columns to one-hot encode even if numeric.
    :param numeric_imputation: ``median`` / ``mean`` / ``most_frequent``, a number (constant
        fill) or None (no imputation: the estimator must accept NaN).
    :param categorical_imputation: ``most_frequent``, or ``constant`` (missing is a category).
    :param scale_numeric: standardize numeric features.
    :param task: ``classification`` / ``regression`` (default: inferred).
    :param test_size: holdout fraction (0 < x < 1) or row count; ignored with validation data.
    :param random_state: seed of the split (and of the estimator if it takes one and none was
        given).
    """

    target: str
    estimator: Any = None
    estimator_params: Mapping[str, Any] = field(default_factory=dict)
    feature_columns: Sequence[str] | None = None
    id_columns: Sequence[str] | None = None
    categorical_columns: Sequence[str] | None = None
    numeric_imputation: str | float | None = "median"
    categorical_imputation: str | None = "most_frequent"
    scale_numeric: bool = True
    task: str | None = None
    test_size: float | int = 0.2
    random_state: int | None = 42


# --------------------------------------------------------------------------- data preparation


def normalize_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Plain numpy dtypes: nullable numbers/booleans -> float64 (NaN), strings -> object (None).

    The same dtypes ``pyarrow`` produces by default, so a model sees identical inputs in
    training and in scoring.
    """
    out = {}
    changed = False
    for name in frame.columns:
        col = frame[name]
        dtype = col.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            out[name] = col.astype(object).where(col.notna(), None)
            changed = True
        elif pd.api.types.is_extension_array_dtype(dtype):
            if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
                out[name] = pd.Series(
                    col.to_numpy(dtype=np.float64, na_value=np.nan), index=col.index, name=name
                )
            elif pd.api.types.is_string_dtype(dtype):
                out[name] = col.astype(object).where(col.notna(), None)
            else:
                out[name] = col
                continue
            changed = True
        else:
            out[name] = col
    return pd.DataFrame(out, index=frame.index) if changed else frame


def _kind(series: pd.Series) -> str | None:
    """``numeric``, ``categorical`` or None (a type no model input can take)."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        if pd.api.types.is_complex_dtype(dtype):
            return None
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return None
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype):
        return "categorical"
    if pd.api.types.is_object_dtype(dtype):
        sample = series.dropna().head(1000)
        if sample.empty or all(isinstance(v, (str, bool, np.bool_)) for v in sample):
            return "categorical"
        return None
    return None


@dataclass
class FeatureSelection:
    """The model's inputs, by kind, and why other columns were left out."""

    feature_columns: list[str]
    numeric_columns: list[str]
    categorical_columns: list[str]
    excluded: dict[str, str]


def select_features(frame: pd.DataFrame, config: TrainingConfig) -> FeatureSelection:
    """Choose and type the feature columns (see the module docstring).

    :raises TrainingInputError: a listed column is missing, unusable, or entirely null.
    """
    columns = [str(c) for c in frame.columns]
    ids = list(DEFAULT_ID_COLUMNS if config.id_columns is None else config.id_columns)
    excluded: dict[str, str] = {}
    if config.feature_columns is not None:
        wanted = [str(c) for c in config.feature_columns]
        missing = [c for c in wanted if c not in columns]
        if missing:
            raise TrainingInputError(
                f"feature column(s) {missing} not in the training data; available: {columns}"
            )
        if config.target in wanted:
            raise TrainingInputError(
                f"the target {config.target!r} is listed in feature_columns: remove it"
            )
        if len(set(wanted)) != len(wanted):
            raise TrainingInputError(f"feature_columns has duplicates: {wanted}")
        explicit = True
    else:
        wanted = []
        for name in columns:
            if name == config.target:
                continue
            if name in ids:
                excluded[name] = "id column"
            elif _ID_NAME.search(name):
                excluded[name] = "named like an id/timestamp column"
            else:
                wanted.append(name)
        explicit = False
    forced_categorical = [str(c) for c in (config.categorical_columns or [])]
    stray = [c for c in forced_categorical if c not in wanted]
    if stray:
        raise TrainingInputError(
            f"categorical_columns {stray} are not feature columns; features: {wanted}"
        )
    numeric: list[str] = []
    categorical: list[str] = []
    features: list[str] = []
    for name in wanted:
        kind = "categorical" if name in forced_categorical else _kind(frame[name])
        if kind is None:
            reason = f"unsupported type {frame[name].dtype}"
            if explicit:
                raise TrainingInputError(
                    f"feature column {name!r} has {reason}: a model cannot take it as input"
                )
            excluded[name] = reason
            continue
        features.append(name)
        (numeric if kind == "numeric" else categorical).append(name)
    if not features:
        raise TrainingInputError(
            f"no feature columns left (target {config.target!r}; excluded: {excluded})"
        )
    all_null = [c for c in features if frame[c].isna().all()]
    if all_null:
        raise TrainingInputError(
            f"feature column(s) {all_null} contain only missing values in the training data: "
            "fix the data or leave them out of feature_columns"
        )
    if excluded:
        log.info("columns not used as features: %s", excluded)
    return FeatureSelection(features, numeric, categorical, excluded)


def infer_task(y: pd.Series) -> str:
    """``classification`` or ``regression`` from the target's type and cardinality."""
    dtype = y.dtype
    if (
        pd.api.types.is_bool_dtype(dtype)
        or isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_string_dtype(dtype)
        or pd.api.types.is_object_dtype(dtype)
    ):
        return "classification"
    values = y.dropna()
    if pd.api.types.is_numeric_dtype(dtype):
        integral = pd.api.types.is_integer_dtype(dtype) or bool(
            np.all(np.mod(values.to_numpy(dtype=np.float64), 1.0) == 0)
        )
        if integral and values.nunique() <= MAX_CLASSES_FOR_INFERENCE:
            return "classification"
        return "regression"
    raise TrainingInputError(f"cannot infer the task from a target of type {dtype}: pass task=")


def _import_path(path: str) -> Any:
    module_name, _, attr = path.rpartition(".")
    if not module_name:
        raise TrainingInputError(
            f"estimator {path!r} is not a dotted path like 'sklearn.linear_model.LogisticRegression'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise TrainingInputError(
            f"estimator {path!r}: module {module_name!r} cannot be imported ({err})"
        ) from err
    try:
        return getattr(module, attr)
    except AttributeError:
        raise TrainingInputError(
            f"estimator {path!r}: module {module_name!r} has no attribute {attr!r}"
        ) from None


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _check_params(factory: Any, params: Mapping[str, Any], label: str) -> None:
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return
    unknown = sorted(set(params) - set(signature.parameters))
    if unknown:
        valid = sorted(n for n in signature.parameters if n != "self")
        raise TrainingInputError(
            f"estimator {label} does not accept parameter(s) {unknown}; valid: {valid}"
        )


def resolve_estimator(spec: Any, params: Mapping[str, Any] | None = None) -> tuple[Any, str]:
    """Build the (unfitted) estimator; return it and its dotted path for the records.

    :raises TrainingInputError: unknown path, not an estimator, invalid parameters.
    """
    from sklearn.base import clone

    params = dict(params or {})
    if isinstance(spec, str):
        factory = _import_path(spec.strip())
        label = spec.strip()
    else:
        factory = spec
        label = _qualname(spec) if callable(spec) and not hasattr(spec, "fit") else ""
    try:
        if hasattr(factory, "fit") and not inspect.isclass(factory):
            estimator = clone(factory)
            label = _qualname(type(estimator))
            if params:
                estimator.set_params(**params)
        elif callable(factory):
            _check_params(factory, params, label)
            estimator = factory(**params)
        else:
            raise TrainingInputError(
                f"estimator must be a dotted path, a factory or an estimator, got {spec!r}"
            )
    except TrainingInputError:
        raise
    except (TypeError, ValueError) as err:
        raise TrainingInputError(f"estimator {label}: invalid parameters {params}: {err}") from err
    if not (hasattr(estimator, "fit") and hasattr(estimator, "predict")):
        raise TrainingInputError(
            f"estimator {label} built {type(estimator).__name__}, which has no fit/predict"
        )
    validate = getattr(estimator, "_validate_params", None)
    if callable(validate):  # scikit-learn's own parameter constraints, before any fitting
        try:
            validate()
        except (TypeError, ValueError) as err:
            raise TrainingInputError(f"estimator {label}: {err}") from err
    if inspect.isclass(factory) and not isinstance(spec, str):
        label = _qualname(factory)
    return estimator, label


def _estimator_task(estimator: Any) -> str | None:
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(estimator):
        return "classification"
    if is_regressor(estimator):
        return "regression"
    return None


def build_pipeline(
    estimator: Any,
    numeric_columns: Sequence[str],
    categorical_columns: Sequence[str],
    *,
    numeric_imputation: str | float | None = "median",
    categorical_imputation: str | None = "most_frequent",
    scale_numeric: bool = True,
) -> Pipeline:
    """The full model: ColumnTransformer preprocessing + the estimator."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    transformers = []
    if numeric_columns:
        steps: list[tuple[str, Any]] = []
        if numeric_imputation is not None:
            if isinstance(numeric_imputation, str):
                steps.append(("impute", SimpleImputer(strategy=numeric_imputation)))
            else:
                steps.append(
                    (
                        "impute",
                        SimpleImputer(strategy="constant", fill_value=float(numeric_imputation)),
                    )
                )
        if scale_numeric:
            steps.append(("scale", StandardScaler()))
        transformers.append(
            ("numeric", Pipeline(steps) if steps else "passthrough", list(numeric_columns))
        )
    if categorical_columns:
        cat_steps: list[tuple[str, Any]] = [
            # NaN and None both mean "missing"; the imputer handles one marker at a time.
            (
                "nan_to_marker",
                SimpleImputer(
                    missing_values=np.nan, strategy="constant", fill_value=MISSING_CATEGORY
                ),
            ),
            (
                "none_to_marker",
                SimpleImputer(
                    missing_values=None, strategy="constant", fill_value=MISSING_CATEGORY
                ),
            ),
        ]
        if categorical_imputation == "most_frequent":
            cat_steps.append(
                (
                    "impute",
                    SimpleImputer(missing_values=MISSING_CATEGORY, strategy="most_frequent"),
                )
            )
        cat_steps.append(("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)))
        transformers.append(("categorical", Pipeline(cat_steps), list(categorical_columns)))
    preprocess = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
    return Pipeline([("preprocess", preprocess), ("estimator", estimator)])


@dataclass
class PreparedTraining:
    """Validated inputs, ready to fit (no MLflow involved yet)."""

    config: TrainingConfig
    task: str
    estimator: Any
    estimator_path: str
    features: FeatureSelection
    x_train: pd.DataFrame
    y_train: pd.Series
    x_holdout: pd.DataFrame
    y_holdout: pd.Series
    holdout: str  # "split" or "validation_data"
    data: pd.DataFrame  # the full training data (feature columns only), for the profile
    classes: list[Any] | None = None
    dropped_unlabelled: int = 0

    @property
    def pipeline_params(self) -> dict[str, Any]:
        c = self.config
        return {
            "numeric_imputation": c.numeric_imputation,
            "categorical_imputation": c.categorical_imputation,
            "scale_numeric": c.scale_numeric,
        }


def _check_imputations(config: TrainingConfig) -> None:
    value = config.numeric_imputation
    if value is not None and not (
        (isinstance(value, str) and value in NUMERIC_IMPUTATIONS)
        or (
            isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        )
    ):
        raise TrainingInputError(
            f"numeric_imputation {value!r}: expected one of {list(NUMERIC_IMPUTATIONS)}, "
            "a number (constant fill) or None"
        )
    if config.categorical_imputation not in (*CATEGORICAL_IMPUTATIONS, None):
        raise TrainingInputError(
            f"categorical_imputation {config.categorical_imputation!r}: expected one of "
            f"{list(CATEGORICAL_IMPUTATIONS)}"
        )


def _drop_unlabelled(frame: pd.DataFrame, target: str, what: str) -> tuple[pd.DataFrame, int]:
    if target not in frame.columns:
        raise TrainingInputError(
            f"target column {target!r} not in the {what}; columns: {[str(c) for c in frame.columns]}"
        )
    labelled = frame[target].notna()
    dropped = int((~labelled).sum())
    if dropped:
        log.warning("%s: dropped %d row(s) without a %r label", what, dropped, target)
        frame = frame[labelled].reset_index(drop=True)
    if frame.empty:
        raise TrainingInputError(f"the {what} has no rows with a {target!r} label")
    return frame, dropped


def _check_target(y: pd.Series, task: str, target: str, what: str) -> list[Any] | None:
    if task == "classification":
        classes = sorted(pd.unique(y).tolist(), key=lambda v: (str(type(v)), v))
        if len(classes) < 2:
            raise TrainingInputError(
                f"target {target!r} has a single class ({classes[0]!r}) in {len(y)} rows of the "
                f"{what}: a classifier needs at least two classes"
            )
        return classes
    if not pd.api.types.is_numeric_dtype(y.dtype):
        raise TrainingInputError(
            f"target {target!r} is of type {y.dtype}: regression needs a numeric target"
        )
    if y.nunique() < 2:
        raise TrainingInputError(
            f"target {target!r} is constant ({y.iloc[0]!r}) in the {what}: nothing to learn"
        )
    return None


def prepare_training(
    data: pd.DataFrame,
    config: TrainingConfig,
    validation: pd.DataFrame | None = None,
) -> PreparedTraining:
    """Validate everything and split the holdout; raises before anything is fitted or logged.

    :raises TrainingInputError: with the column, value or parameter at fault.
    """
    from sklearn.model_selection import train_test_split

    if data is None or len(data) == 0:
        raise TrainingInputError("the training data has no rows")
    _check_imputations(config)
    data = normalize_frame(data)
    data, dropped = _drop_unlabelled(data, config.target, "training data")
    features = select_features(data, config)

    if config.estimator is None:
        task = config.task or infer_task(data[config.target])
        if task not in DEFAULT_ESTIMATORS:
            raise TrainingInputError(f"task {task!r}: expected 'classification' or 'regression'")
        estimator, path = resolve_estimator(DEFAULT_ESTIMATORS[task], config.estimator_params)
    else:
        estimator, path = resolve_estimator(config.estimator, config.estimator_params)
        kind = _estimator_task(estimator)
        if config.task and kind and config.task != kind:
            raise TrainingInputError(
                f"task {config.task!r} does not match estimator {path}, which is a {kind} model"
            )
        task = config.task or kind or infer_task(data[config.target])
    if task not in ("classification", "regression"):
        raise TrainingInputError(f"task {task!r}: expected 'classification' or 'regression'")
    if (
        config.random_state is not None
        and "random_state" in estimator.get_params(deep=False)
        and "random_state" not in config.estimator_params
        and estimator.get_params(deep=False)["random_state"] is None
    ):
        estimator.set_params(random_state=config.random_state)

    y = data[config.target]
    classes = _check_target(y, task, config.target, "training data")
    x = data[features.feature_columns]
    if validation is not None:
        validation = normalize_frame(validation)
        missing = [c for c in features.feature_columns if c not in validation.columns]
        if missing:
            raise TrainingInputError(f"validation data lacks feature column(s) {missing}")
        validation, _ = _drop_unlabelled(validation, config.target, "validation data")
        x_train, y_train = x, y
        x_holdout = validation[features.feature_columns]
        y_holdout = validation[config.target]
        holdout = "validation_data"
    else:
        size = config.test_size
        if isinstance(size, bool) or not isinstance(size, (int, float)):
            raise TrainingInputError(f"test_size must be a fraction or a row count, got {size!r}")
        if isinstance(size, float) and not 0.0 < size < 1.0:
            raise TrainingInputError(f"test_size {size} must be between 0 and 1 (exclusive)")
        n_holdout = math.ceil(size * len(x)) if isinstance(size, float) else int(size)
        if n_holdout < 1 or len(x) - n_holdout < 2:
            raise TrainingInputError(
                f"{len(x)} labelled row(s) are too few for a holdout of test_size={size}"
            )
        stratify = None
        if task == "classification":
            counts = y.value_counts()
            if counts.min() >= 2 and n_holdout >= len(counts) and len(x) - n_holdout >= len(counts):
                stratify = y
            else:
                log.warning("holdout split not stratified: class counts %s", counts.to_dict())
        try:
            x_train, x_holdout, y_train, y_holdout = train_test_split(
                x, y, test_size=size, random_state=config.random_state, stratify=stratify
            )
        except ValueError as err:
            raise TrainingInputError(f"cannot split a holdout (test_size={size}): {err}") from err
        holdout = "split"
    if task == "classification":
        _check_target(y_train, task, config.target, "training split")
    return PreparedTraining(
        config=config,
        task=task,
        estimator=estimator,
        estimator_path=path,
        features=features,
        x_train=x_train,
        y_train=y_train,
        x_holdout=x_holdout,
        y_holdout=y_holdout,
        holdout=holdout,
        data=x,
        classes=classes,
        dropped_unlabelled=dropped,
    )


@dataclass
class FittedModel:
    """A fitted Pipeline and its holdout (and training) metrics."""

    prepared: PreparedTraining
    pipeline: Pipeline
    metrics: dict[str, float | None]
    train_metrics: dict[str, float | None]
    fit_seconds: float

    @property
    def task(self) -> str:
        return self.prepared.task


def fit_prepared(prepared: PreparedTraining) -> FittedModel:
    """Fit the pipeline on the training split and score the holdout.

    :raises TrainingInputError: the estimator rejected the data during ``fit``.
    """
    import time

    pipeline = build_pipeline(
        prepared.estimator,
        prepared.features.numeric_columns,
        prepared.features.categorical_columns,
        **prepared.pipeline_params,
    )
    started = time.perf_counter()
    try:
        pipeline.fit(prepared.x_train, prepared.y_train)
    except (TypeError, ValueError) as err:
        raise TrainingInputError(f"{prepared.estimator_path} failed to fit: {err}") from err
    seconds = time.perf_counter() - started
    log.info(
        "fitted %s on %d rows x %d features in %.1f s",
        prepared.estimator_path,
        len(prepared.x_train),
        len(prepared.features.feature_columns),
        seconds,
    )
    holdout = score_model(
        pipeline, prepared.x_holdout, prepared.y_holdout.to_numpy(), prepared.task
    )
    train = score_model(pipeline, prepared.x_train, prepared.y_train.to_numpy(), prepared.task)
    return FittedModel(prepared, pipeline, holdout.metrics, train.metrics, seconds)


def train_model(
    data: pd.DataFrame, config: TrainingConfig, validation: pd.DataFrame | None = None
) -> FittedModel:
    """Validate, split, fit and score (no MLflow): :func:`prepare_training` + :func:`fit_prepared`."""
    return fit_prepared(prepare_training(data, config, validation))


# --------------------------------------------------------------------------- MLflow


@dataclass
class TrainingResult:
    """What a training run produced; ``to_dict()`` is the operator's XCom."""

    run_id: str
    experiment_id: str
    experiment_name: str
    model_uri: str
    model_id: str
    task: str
    target: str
    estimator: str
    metrics: dict[str, float | None]
    train_metrics: dict[str, float | None]
    feature_columns: list[str]
    numeric_columns: list[str]
    categorical_columns: list[str]
    training_rows: int
    holdout_rows: int
    dataset_digest: str
    dataset_source: str
    fingerprint: str
    tracking_uri: str
    reused: bool = False

    @property
    def run_model_uri(self) -> str:
        return f"runs:/{self.run_id}/{MODEL_ARTIFACT}"

    @property
    def reference_profile_uri(self) -> str:
        return f"runs:/{self.run_id}/{REFERENCE_PROFILE_PATH}"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["run_model_uri"] = self.run_model_uri
        out["reference_profile_uri"] = self.reference_profile_uri
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], **overrides: Any) -> TrainingResult:
        names = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in names}
        values.update(overrides)
        return cls(**values)


def _read(uri: str, conn_id: str | None, what: str) -> pa.Table:
    from mlops_provider.core import io

    try:
        return io.read_table(uri, conn_id=conn_id)
    except io.DatasetError as err:
        raise TrainingInputError(f"{what}: {err}") from err


def _fingerprint(parts: Mapping[str, Any]) -> str:
    text = json.dumps(parts, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def find_task_runs(client: MlflowClient, experiment_id: str, task_key: str) -> list[Run]:
    """Active (not deleted) runs tagged with ``task_key``, newest first."""
    from mlflow.entities import ViewType

    return list(
        client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{TASK_KEY_TAG}` = '{_quote(task_key)}'",
            run_view_type=ViewType.ACTIVE_ONLY,
            order_by=["attributes.start_time DESC"],
            max_results=200,
        )
    )


def _load_summary(client: MlflowClient, run_id: str) -> dict[str, Any] | None:
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = client.download_artifacts(run_id, SUMMARY_PATH, tmp)
            return dict(json.loads(Path(path).read_text()))
    except Exception as err:  # a run without the summary is not reusable
        log.info("run %s has no readable %s: %s", run_id, SUMMARY_PATH, err)
        return None


def _settle_previous_runs(
    client: MlflowClient, runs: Sequence[Run], fingerprint: str
) -> tuple[Run | None, dict[str, Any] | None]:
    """Mark leftover RUNNING runs FAILED; return a FINISHED run with the same fingerprint."""
    for run in runs:
        if run.info.status == "RUNNING":
            log.warning(
                "run %s of a previous try is still RUNNING: marking it FAILED", run.info.run_id
            )
            client.set_terminated(run.info.run_id, status="FAILED")
    for run in runs:
        if run.info.status == "FINISHED" and run.data.tags.get("mlops.fingerprint") == fingerprint:
            summary = _load_summary(client, run.info.run_id)
            if summary is not None:
                return run, summary
    return None, None


def _supersede(client: MlflowClient, runs: Sequence[Run], new_run_id: str, task_key: str) -> None:
    for run in runs:
        run_id = run.info.run_id
        if run_id == new_run_id:
            continue
        client.set_tag(run_id, "mlops.superseded_by", new_run_id)
        if run.info.status == "FINISHED":
            client.set_tag(run_id, "mlops.superseded_task_key", task_key)
            client.delete_tag(run_id, TASK_KEY_TAG)


def _serialization(pipeline: Any) -> dict[str, Any]:
    """``log_model`` arguments for the safe skops format, trusting the types of our own model.

    skops refuses to load types outside its allow-list (``numpy.dtype`` is referenced by the
    encoders); the list of types this freshly fitted pipeline uses is recorded in the model's
    flavor configuration so loading it later works. Models skops cannot serialize (custom code
    in a factory) fall back to cloudpickle.
    """
    import mlflow.sklearn

    try:
        import skops.io

        trusted = list(skops.io.get_untrusted_types(data=skops.io.dumps(pipeline)))
    except Exception as err:  # skops cannot represent the model: pickle it instead
        log.warning("model cannot be saved with skops (%s); using cloudpickle", err)
        return {"serialization_format": mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE}
    return {
        "serialization_format": mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        "skops_trusted_types": trusted or None,
    }


def _pip_requirements(estimator: Any, serialization_format: str) -> list[str]:
    """Pinned requirements without MLflow's slow import-tracing inference."""
    from importlib import metadata

    import mlflow.sklearn

    requirements = list(
        mlflow.sklearn.get_default_pip_requirements(
            include_cloudpickle=serialization_format == "cloudpickle",
            include_skops=serialization_format == "skops",
        )
    )
    package = type(estimator).__module__.split(".", 1)[0]
    if package not in ("sklearn", "builtins", "__main__"):
        for dist in metadata.packages_distributions().get(package, []):
            try:
                requirements.append(f"{dist}=={metadata.version(dist)}")
            except metadata.PackageNotFoundError:
                pass
    return requirements


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 500 else text[:497] + "..."


def train_and_log(
    target: MlflowTarget,
    training_data: str,
    config: TrainingConfig,
    *,
    experiment_name: str = DEFAULT_EXPERIMENT,
    task_key: str | None = None,
    tags: Mapping[str, str] | None = None,
    validation_data: str | None = None,
    conn_id: str | None = None,
    feature_refs: Sequence[str] | None = None,
    run_name: str | None = None,
    pip_requirements: Sequence[str] | None = None,
) -> TrainingResult:
    """Train on ``training_data`` and log params, metrics, dataset, profile and model to MLflow.

    Order: read and validate the data and the estimator (no MLflow call yet) -> reach the
    tracking store -> settle runs of earlier tries of ``task_key`` (reuse a FINISHED one with the
    same fingerprint) -> fit -> create the run and log everything.

    :raises TrainingInputError: bad data, estimator or configuration (nothing was logged).
    :raises TrackingUnavailableError: the tracking store does not answer.
    """
    import mlflow
    import mlflow.data
    import mlflow.sklearn
    from mlflow.models import infer_signature

    from mlops_provider import __version__
    from mlops_provider.core import io
    from mlops_provider.core.mlflow_target import (
        activated,
        check_reachable,
        ensure_experiment,
        make_client,
    )
    from mlops_provider.core.profile import ReferenceProfile

    table = _read(training_data, conn_id, "training data")
    if table.num_rows == 0:
        raise TrainingInputError(f"training data {training_data} has no rows")
    valid_table = _read(validation_data, conn_id, "validation data") if validation_data else None
    frame = table.to_pandas()
    valid_frame = valid_table.to_pandas() if valid_table is not None else None
    prepared = prepare_training(frame, config, valid_frame)
    feature_refs = [str(r) for r in (feature_refs or [])]
    fingerprint = _fingerprint(
        {
            "data": io.table_digest(table),
            "validation": io.table_digest(valid_table) if valid_table is not None else None,
            "estimator": prepared.estimator_path,
            "params": {
                k: _param_value(v) for k, v in prepared.estimator.get_params(deep=False).items()
            },
            "features": asdict(prepared.features),
            "pipeline": prepared.pipeline_params,
            "target": config.target,
            "task": prepared.task,
            "test_size": config.test_size,
            "random_state": config.random_state,
            "feature_refs": feature_refs,
        }
    )

    client = make_client(target)
    ok, message = check_reachable(target, client)
    if not ok:
        raise TrackingUnavailableError(message)
    experiment_id = ensure_experiment(client, experiment_name, target.artifact_location)
    previous = find_task_runs(client, experiment_id, task_key) if task_key else []
    reused_run, summary = _settle_previous_runs(client, previous, fingerprint)
    if reused_run is not None and summary is not None:
        log.info(
            "reusing run %s of an earlier try (same data and configuration)", reused_run.info.run_id
        )
        if task_key:
            _supersede(client, previous, reused_run.info.run_id, task_key)
        return TrainingResult.from_dict(summary, reused=True)

    fitted = fit_prepared(prepared)
    features = prepared.features
    dataset_name = Path(str(training_data).rstrip("/")).name or "training_data"
    run_tags = {
        **{k: str(v) for k, v in (tags or {}).items() if v is not None},
        "mlops.provider_version": __version__,
        "mlops.target": config.target,
        "mlops.task": prepared.task,
        "mlops.estimator": prepared.estimator_path,
        "mlops.training_data": str(training_data),
        "mlops.fingerprint": fingerprint,
        "mlops.feature_refs": json.dumps(feature_refs),
    }
    if task_key:
        run_tags[TASK_KEY_TAG] = task_key
    run = client.create_run(experiment_id, run_name=run_name, tags=run_tags)
    run_id = run.info.run_id
    log.info("MLflow run %s created in experiment %s (%s)", run_id, experiment_name, experiment_id)
    try:
        with activated(target), mlflow.start_run(run_id=run_id):
            params = {
                "estimator": prepared.estimator_path,
                "task": prepared.task,
                "target": config.target,
                "holdout": prepared.holdout,
                "test_size": config.test_size if prepared.holdout == "split" else "",
                "random_state": config.random_state,
                "validation_data": validation_data or "",
                "numeric_imputation": config.numeric_imputation,
                "categorical_imputation": config.categorical_imputation,
                "scale_numeric": config.scale_numeric,
                "n_features": len(features.feature_columns),
                "training_rows": len(prepared.x_train),
                "holdout_rows": len(prepared.x_holdout),
            }
            params.update(
                {
                    f"estimator.{k}": _param_value(v)
                    for k, v in prepared.estimator.get_params(deep=False).items()
                }
            )
            mlflow.log_params({k: "" if v is None else v for k, v in params.items()})
            with warnings.catch_warnings():  # schema hints about int columns, source guessing
                warnings.simplefilter("ignore", UserWarning)
                dataset = mlflow.data.from_pandas(
                    frame, source=str(training_data), name=dataset_name, targets=config.target
                )
                mlflow.log_input(dataset, context="training")
                if valid_frame is not None and validation_data:
                    mlflow.log_input(
                        mlflow.data.from_pandas(
                            valid_frame,
                            source=str(validation_data),
                            name=Path(str(validation_data).rstrip("/")).name or "validation_data",
                            targets=config.target,
                        ),
                        context="validation",
                    )
            mlflow.log_dict(
                {**asdict(features), "target": config.target, "task": prepared.task},
                "training/features.json",
            )
            profile = ReferenceProfile.from_data(
                prepared.data,
                columns=features.feature_columns,
                numeric_columns=features.numeric_columns,
                categorical_columns=features.categorical_columns,
                metadata={
                    "run_id": run_id,
                    "source": str(training_data),
                    "dataset_digest": dataset.digest,
                    "target": config.target,
                    "task": prepared.task,
                    "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                },
            )
            mlflow.log_text(profile.to_json(), REFERENCE_PROFILE_PATH)
            # Integer columns are declared as doubles: a scoring batch may hold missing values.
            example = prepared.x_train.head(5)
            example = example.astype(
                {c: "float64" for c in example.columns if pd.api.types.is_integer_dtype(example[c])}
            )
            serialization = _serialization(fitted.pipeline)
            requirements = pip_requirements or _pip_requirements(
                prepared.estimator, serialization["serialization_format"]
            )
            info = mlflow.sklearn.log_model(
                fitted.pipeline,
                name=MODEL_ARTIFACT,
                signature=infer_signature(example, fitted.pipeline.predict(example)),
                input_example=example,
                pip_requirements=list(requirements),
                **serialization,
            )
            metrics = {k: v for k, v in fitted.metrics.items() if v is not None}
            metrics.update(
                {f"train_{k}": v for k, v in fitted.train_metrics.items() if v is not None}
            )
            mlflow.log_metrics(metrics, model_id=info.model_id)
            mlflow.set_tag("mlops.model_id", info.model_id)
            result = TrainingResult(
                run_id=run_id,
                experiment_id=str(experiment_id),
                experiment_name=experiment_name,
                model_uri=info.model_uri,
                model_id=str(info.model_id),
                task=prepared.task,
                target=config.target,
                estimator=prepared.estimator_path,
                metrics=fitted.metrics,
                train_metrics=fitted.train_metrics,
                feature_columns=features.feature_columns,
                numeric_columns=features.numeric_columns,
                categorical_columns=features.categorical_columns,
                training_rows=len(prepared.x_train),
                holdout_rows=len(prepared.x_holdout),
                dataset_digest=str(dataset.digest),
                dataset_source=str(training_data),
                fingerprint=fingerprint,
                tracking_uri=target.tracking_uri,
            )
            mlflow.log_dict(result.to_dict(), SUMMARY_PATH)
    except BaseException:
        _mark_failed(client, run_id)
        raise
    if task_key:
        _supersede(client, previous, run_id, task_key)
    log.info("run %s finished: %s", run_id, {k: v for k, v in fitted.metrics.items()})
    return result


def _mark_failed(client: MlflowClient, run_id: str) -> None:
    try:
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, status="FAILED")
    except Exception as err:  # the store may be what failed; the next try cleans up
        log.warning("could not mark run %s FAILED (%s); the next try will", run_id, err)


def standard_metrics(task: str) -> tuple[str, ...]:
    """Names of the holdout metrics a run logs for ``task`` (plain names, no prefix)."""
    return metric_names(task)
