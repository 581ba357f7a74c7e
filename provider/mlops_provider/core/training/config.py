"""What to train and how: :class:`TrainingConfig`, the defaults, and the errors of training."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlops_provider.core.errors import InputError, ServiceError

__all__ = [
    "CATEGORICAL_IMPUTATIONS",
    "DEFAULT_ESTIMATORS",
    "DEFAULT_EXPERIMENT",
    "MAX_CLASSES_FOR_INFERENCE",
    "MISSING_CATEGORY",
    "NUMERIC_IMPUTATIONS",
    "TrackingUnavailableError",
    "TrainingConfig",
    "TrainingInputError",
]

DEFAULT_EXPERIMENT = "mlops-training"
DEFAULT_ESTIMATORS = {
    "classification": "sklearn.ensemble.HistGradientBoostingClassifier",
    "regression": "sklearn.ensemble.HistGradientBoostingRegressor",
}
MAX_CLASSES_FOR_INFERENCE = 20
NUMERIC_IMPUTATIONS = ("median", "mean", "most_frequent")
CATEGORICAL_IMPUTATIONS = ("most_frequent", "constant")
MISSING_CATEGORY = "__missing__"


class TrainingInputError(InputError):
    """The data, estimator or configuration cannot be trained on; nothing was logged."""


class TrackingUnavailableError(ServiceError):
    """The MLflow tracking store could not be reached (a retry may succeed)."""


@dataclass
class TrainingConfig:
    """What to train and how (see :mod:`mlops_provider.core.training` for the defaults).

    :param target: label column.
    :param estimator: dotted class path (``sklearn.ensemble.HistGradientBoostingClassifier``),
        a factory callable returning an estimator, or an unfitted estimator (cloned);
        default: histogram gradient boosting for the problem type.
    :param estimator_params: keyword arguments of the estimator class / factory.
    :param feature_columns: model inputs (default: all but target, entity and time columns).
    :param entity_columns: identifier columns, never features (columns named like ids or
        timestamps are excluded as well; there is no domain default).
    :param categorical_columns: columns to one-hot encode even if numeric.
    :param numeric_imputation: ``median`` / ``mean`` / ``most_frequent``, a number (constant
        fill) or None (no imputation: the estimator must accept NaN).
    :param categorical_imputation: ``most_frequent``, or ``constant`` (missing is a category).
    :param scale_numeric: standardize numeric features.
    :param problem_type: ``classification`` / ``regression`` (default: inferred).
    :param test_size: holdout fraction (0 < x < 1) or row count; ignored with validation data.
    :param random_state: seed of the split (and of the estimator if it takes one and none was
        given).
    """

    target: str
    estimator: Any = None
    estimator_params: Mapping[str, Any] = field(default_factory=dict)
    feature_columns: Sequence[str] | None = None
    entity_columns: Sequence[str] | None = None
    categorical_columns: Sequence[str] | None = None
    numeric_imputation: str | float | None = "median"
    categorical_imputation: str | None = "most_frequent"
    scale_numeric: bool = True
    problem_type: str | None = None
    test_size: float | int = 0.2
    random_state: int | None = 42

    @property
    def pipeline_params(self) -> dict[str, Any]:
        """The preprocessing parameters of :func:`~.estimator.build_pipeline`."""
        return {
            "numeric_imputation": self.numeric_imputation,
            "categorical_imputation": self.categorical_imputation,
            "scale_numeric": self.scale_numeric,
        }
