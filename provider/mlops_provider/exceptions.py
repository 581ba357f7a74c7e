"""Exceptions raised by the provider's operators.

Each message says what failed, with the numbers, and where the full result is (STYLE.md 8).
"""

from __future__ import annotations

from airflow.exceptions import AirflowProviderDeprecationWarning
from airflow.sdk.exceptions import AirflowException


class MlopsError(AirflowException):
    """Base class of the provider's errors."""


class DataValidationFailed(MlopsError):
    """A dataset failed its expectation suite; the message lists the failed expectations."""


class FeatureStoreError(MlopsError):
    """A Feast operation failed or was asked for something invalid."""


class TrainingError(MlopsError):
    """Training could not run on the given data/estimator."""


class ModelRejected(MlopsError):
    """A candidate model failed its evaluation gate (raised only with ``fail_on_rejection``)."""


class PromotionError(MlopsError):
    """A promotion or rollback was refused or failed."""


class PromotionConflict(PromotionError):
    """The alias moved since the evaluation: compare-and-set refused to overwrite it."""


class ScoringError(MlopsError):
    """Batch scoring could not run (model, input or output problem)."""


class DriftDetectionError(MlopsError):
    """Drift detection could not run on the given data."""


class EvaluationError(MlopsError):
    """The evaluation could not run (bad thresholds, unknown model, unusable evaluation data)."""


class ModelPerformanceError(MlopsError):
    """Performance monitoring could not run (missing labels dataset or columns, bad parameters)."""


class TrainingServingSkewError(MlopsError):
    """The skew check could not run (no logged traffic, no feature references, columns missing
    from the prediction log, a Feast retrieval error, bad parameters)."""


class TrainingServingSkewDetected(TrainingServingSkewError):
    """Features served online differ from the offline features (raised with ``on_skew="fail"``);
    the message names the skewed features with their mismatch rates and the report."""


class RetrainDecisionError(MlopsError):
    """The retraining decision could not be made (bad policy, unreadable monitoring results)."""


class MlopsProviderDeprecationWarning(AirflowProviderDeprecationWarning):
    """A deprecated parameter or behaviour of this provider (removed in the next release)."""


class DeploymentError(MlopsError):
    """A model could not be validated in the serving app or deployed to a service (the service
    keeps, or was rolled back to, what it served before)."""
