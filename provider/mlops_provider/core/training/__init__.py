"""Training: a scikit-learn Pipeline (preprocessing + estimator) fitted, scored and logged to
MLflow.

- :mod:`.config`: :class:`TrainingConfig`, defaults and errors;
- :mod:`.features`: feature selection and problem-type inference;
- :mod:`.estimator`: the estimator and the logged Pipeline;
- :mod:`.fit`: prepare (validate, split the holdout) and fit, no MLflow;
- :mod:`.tracking`: :func:`train_and_log`, the MLflow run with its retry-safe identity.

Holdout metrics are computed by :func:`mlops_provider.core.evaluation.score_model` (the same
metrics an evaluation computes); model input frames by
:func:`mlops_provider.core.evaluation.normalize_frame` (re-exported here).
"""

from mlops_provider.core.evaluation.frames import normalize_frame
from mlops_provider.core.training.config import (
    DEFAULT_ESTIMATORS,
    DEFAULT_EXPERIMENT,
    TrackingUnavailableError,
    TrainingConfig,
    TrainingInProgressError,
    TrainingInputError,
)
from mlops_provider.core.training.estimator import build_pipeline, resolve_estimator
from mlops_provider.core.training.features import FeatureSelection, infer_task, select_features
from mlops_provider.core.training.fit import (
    FittedModel,
    PreparedTraining,
    fit_prepared,
    prepare_training,
    train_model,
)
from mlops_provider.core.training.tracking import (
    MODEL_ARTIFACT,
    POINTS,
    REFERENCE_PROFILE_PATH,
    SUMMARY_PATH,
    TASK_KEY_TAG,
    TrainingResult,
    train_and_log,
)

__all__ = [
    "DEFAULT_ESTIMATORS",
    "DEFAULT_EXPERIMENT",
    "MODEL_ARTIFACT",
    "POINTS",
    "REFERENCE_PROFILE_PATH",
    "SUMMARY_PATH",
    "TASK_KEY_TAG",
    "FeatureSelection",
    "FittedModel",
    "PreparedTraining",
    "TrackingUnavailableError",
    "TrainingConfig",
    "TrainingInProgressError",
    "TrainingInputError",
    "TrainingResult",
    "build_pipeline",
    "fit_prepared",
    "infer_task",
    "normalize_frame",
    "prepare_training",
    "resolve_estimator",
    "select_features",
    "train_and_log",
    "train_model",
]
