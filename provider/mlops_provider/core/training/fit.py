"""Prepare (validate, choose features and estimator, split the holdout) and fit: no MLflow.

Problem type: ``problem_type`` if given, else the estimator's kind (classifier / regressor),
else inferred from the target (:func:`~.features.infer_task`). Everything is validated before
anything is fitted, so bad input fails fast with the column, value or parameter at fault.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops_provider.core.evaluation.frames import labelled_rows, normalize_frame
from mlops_provider.core.evaluation.scores import estimator_task, score_model
from mlops_provider.core.metrics import check_task
from mlops_provider.core.training.config import (
    DEFAULT_ESTIMATORS,
    TrainingConfig,
    TrainingInputError,
)
from mlops_provider.core.training.estimator import build_pipeline, resolve_estimator
from mlops_provider.core.training.features import (
    FeatureSelection,
    coerce_numeric,
    infer_task,
    select_features,
)

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

__all__ = ["FittedModel", "PreparedTraining", "fit_prepared", "prepare_training", "train_model"]

log = logging.getLogger(__name__)


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
        return self.config.pipeline_params


@dataclass
class _Holdout:
    x_train: pd.DataFrame
    y_train: pd.Series
    x_holdout: pd.DataFrame
    y_holdout: pd.Series
    kind: str  # "split" or "validation_data"


def _labelled(frame: pd.DataFrame, target: str, what: str) -> tuple[pd.DataFrame, int]:
    if target not in frame.columns:
        raise TrainingInputError(
            f"target column {target!r} not in the {what}; columns: {[str(c) for c in frame.columns]}"
        )
    frame, dropped = labelled_rows(frame, target, what)
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


def _task_and_estimator(y: pd.Series, config: TrainingConfig) -> tuple[str, Any, str]:
    """The problem type, the unfitted estimator and its dotted path.

    :raises InputError: an unknown ``problem_type``.
    """
    if config.estimator is None:
        task = check_task(config.problem_type or infer_task(y))
        estimator, path = resolve_estimator(DEFAULT_ESTIMATORS[task], config.estimator_params)
    else:
        estimator, path = resolve_estimator(config.estimator, config.estimator_params)
        kind = estimator_task(estimator)
        if config.problem_type and kind and config.problem_type != kind:
            raise TrainingInputError(
                f"problem_type {config.problem_type!r} does not match estimator {path}, which "
                f"is a {kind} model"
            )
        task = check_task(config.problem_type or kind or infer_task(y))
    params = estimator.get_params(deep=False)
    if (
        config.random_state is not None
        and "random_state" in params
        and "random_state" not in config.estimator_params
        and params["random_state"] is None
    ):
        estimator.set_params(random_state=config.random_state)
    return task, estimator, path


def _validation_holdout(
    x: pd.DataFrame,
    y: pd.Series,
    validation: pd.DataFrame,
    columns: list[str],
    config: TrainingConfig,
) -> _Holdout:
    target = config.target
    validation = normalize_frame(validation)
    missing = [c for c in columns if c not in validation.columns]
    if missing:
        raise TrainingInputError(f"validation data lacks feature column(s) {missing}")
    validation = coerce_numeric(validation, config.numeric_columns or [], "validation data")
    validation, _ = _labelled(validation, target, "validation data")
    return _Holdout(x, y, validation[columns], validation[target], "validation_data")


def _holdout_rows(size: Any, n_rows: int) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, float)):
        raise TrainingInputError(f"test_size must be a fraction or a row count, got {size!r}")
    if isinstance(size, float) and not 0.0 < size < 1.0:
        raise TrainingInputError(f"test_size {size} must be between 0 and 1 (exclusive)")
    n_holdout = math.ceil(size * n_rows) if isinstance(size, float) else int(size)
    if n_holdout < 1 or n_rows - n_holdout < 2:
        raise TrainingInputError(
            f"{n_rows} labelled row(s) are too few for a holdout of test_size={size}"
        )
    return n_holdout


def _split_holdout(x: pd.DataFrame, y: pd.Series, task: str, config: TrainingConfig) -> _Holdout:
    """A seeded split of ``test_size``, stratified for classification when every class can
    be on both sides."""
    from sklearn.model_selection import train_test_split

    size = config.test_size
    n_holdout = _holdout_rows(size, len(x))
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
    return _Holdout(x_train, y_train, x_holdout, y_holdout, "split")


def prepare_training(
    data: pd.DataFrame,
    config: TrainingConfig,
    validation: pd.DataFrame | None = None,
) -> PreparedTraining:
    """Validate everything and split the holdout; raises before anything is fitted or logged.

    :raises TrainingInputError: with the column, value or parameter at fault.
    """
    if data is None or len(data) == 0:
        raise TrainingInputError("the training data has no rows")
    data, dropped = _labelled(normalize_frame(data), config.target, "training data")
    data = coerce_numeric(data, config.numeric_columns or [], "training data")
    features = select_features(data, config)
    y = data[config.target]
    task, estimator, path = _task_and_estimator(y, config)
    classes = _check_target(y, task, config.target, "training data")
    x = data[features.feature_columns]
    if validation is not None:
        split = _validation_holdout(x, y, validation, features.feature_columns, config)
    else:
        split = _split_holdout(x, y, task, config)
    if task == "classification":
        _check_target(split.y_train, task, config.target, "training split")
    return PreparedTraining(
        config=config,
        task=task,
        estimator=estimator,
        estimator_path=path,
        features=features,
        x_train=split.x_train,
        y_train=split.y_train,
        x_holdout=split.x_holdout,
        y_holdout=split.y_holdout,
        holdout=split.kind,
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
    task = prepared.task
    holdout = score_model(pipeline, prepared.x_holdout, prepared.y_holdout.to_numpy(), task)
    train = score_model(pipeline, prepared.x_train, prepared.y_train.to_numpy(), task)
    return FittedModel(prepared, pipeline, holdout.metrics, train.metrics, seconds)


def train_model(
    data: pd.DataFrame, config: TrainingConfig, validation: pd.DataFrame | None = None
) -> FittedModel:
    """Validate, split, fit and score (no MLflow): :func:`prepare_training` + :func:`fit_prepared`."""
    return fit_prepared(prepare_training(data, config, validation))
