"""What to train and how: :class:`TrainingConfig`, the defaults, and the errors of training."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlops_provider.core import params
from mlops_provider.core.errors import InputError, ParameterError, ServiceError

__all__ = [
    "CATEGORICAL_IMPUTATIONS",
    "DEFAULT_ESTIMATORS",
    "DEFAULT_MAX_CATEGORIES",
    "DEFAULT_EXPERIMENT",
    "MAX_CLASSES_FOR_INFERENCE",
    "MISSING_CATEGORY",
    "NUMERIC_IMPUTATIONS",
    "TrackingUnavailableError",
    "TrainingConfig",
    "TrainingInProgressError",
    "TrainingInputError",
]

DEFAULT_EXPERIMENT = "mlops-training"
DEFAULT_ESTIMATORS = {
    "classification": "sklearn.ensemble.HistGradientBoostingClassifier",
    "regression": "sklearn.ensemble.HistGradientBoostingRegressor",
}
MAX_CLASSES_FOR_INFERENCE = 20
DEFAULT_MAX_CATEGORIES = 100
NUMERIC_IMPUTATIONS = ("median", "mean", "most_frequent")
CATEGORICAL_IMPUTATIONS = ("most_frequent", "constant")
MISSING_CATEGORY = "__missing__"


class TrainingInputError(InputError):
    """The data, estimator or configuration cannot be trained on; nothing was logged."""


class TrackingUnavailableError(ServiceError):
    """The MLflow tracking store could not be reached (a retry may succeed)."""


class TrainingInProgressError(ServiceError):
    """Another attempt is training the same work (a RUNNING run of the same task key whose
    writer may still be alive); nothing was logged, a retry after it finishes reuses its run."""


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
    :param categorical_columns: columns to one-hot encode even if numeric (or numbers stored
        as text, such as codes).
    :param numeric_imputation: ``median`` / ``mean`` / ``most_frequent``, a number (constant
        fill) or None (no imputation: the estimator must accept NaN).
    :param categorical_imputation: ``most_frequent``, or ``constant`` (missing is a category).
    :param scale_numeric: standardize numeric features.
    :param problem_type: ``classification`` / ``regression`` (default: inferred).
    :param test_size: holdout fraction (0 < x < 1) or row count; ignored with validation data.
    :param random_state: seed of the split (and of the estimator if it takes one and none was
        given).
    :param numeric_columns: columns that are numbers even when the data stores them as text
        (``"45.20"``): converted with ``pandas.to_numeric`` before training (empty text is a
        missing value); a value that does not convert is an error naming it. The model then
        takes numbers in these columns.
    :param max_categories: the most distinct values a categorical feature may have (default
        100; None: no limit); more is an error naming the column and its level count.

    Every field is parsed on construction with :mod:`mlops_provider.core.params` (rendered
    template text such as ``"0.2"`` or ``'{"max_iter": 300}'`` is accepted).

    :raises TrainingInputError: a field that does not parse (naming it and its value), a
        column in both ``numeric_columns`` and ``categorical_columns``, or the target listed in
        ``numeric_columns``.
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
    numeric_columns: Sequence[str] | None = None
    max_categories: int | None = DEFAULT_MAX_CATEGORIES

    def __post_init__(self) -> None:
        try:
            self._parse()
        except ParameterError as err:
            raise TrainingInputError(str(err)) from None
        both = sorted(set(self.numeric_columns or []) & set(self.categorical_columns or []))
        if both:
            raise TrainingInputError(
                f"column(s) {both} are in both numeric_columns and categorical_columns: "
                "keep each in one"
            )
        if self.target in (self.numeric_columns or []):
            raise TrainingInputError(
                f"the target {self.target!r} is listed in numeric_columns: remove it"
            )

    def _parse(self) -> None:
        """Every field as its type, from its value or its rendered template text."""
        self.target = params.required(params.as_str(self.target, "target"), "target")
        if isinstance(self.estimator, str):
            self.estimator = params.as_str(self.estimator, "estimator")
        self.estimator_params = params.as_mapping(self.estimator_params, "estimator_params") or {}
        self.feature_columns = params.as_names(self.feature_columns, "feature_columns")
        self.entity_columns = params.as_names(self.entity_columns, "entity_columns")
        self.categorical_columns = params.as_names(self.categorical_columns, "categorical_columns")
        self.numeric_columns = params.as_names(self.numeric_columns, "numeric_columns")
        self.numeric_imputation = params.as_choice_or_number(
            self.numeric_imputation, "numeric_imputation", NUMERIC_IMPUTATIONS
        )
        self.categorical_imputation = params.as_choice(
            self.categorical_imputation, "categorical_imputation", CATEGORICAL_IMPUTATIONS
        )
        self.scale_numeric = bool(params.as_bool(self.scale_numeric, "scale_numeric", default=True))
        self.problem_type = params.as_str(self.problem_type, "problem_type")
        test_size = params.as_number(
            self.test_size, "test_size", default=0.2, expected="a fraction or a row count"
        )
        self.test_size = 0.2 if test_size is None else test_size
        self.random_state = params.as_int(self.random_state, "random_state")
        self.max_categories = params.as_int(self.max_categories, "max_categories", minimum=1)

    @property
    def pipeline_params(self) -> dict[str, Any]:
        """The preprocessing parameters of :func:`~.estimator.build_pipeline`."""
        return {
            "numeric_imputation": self.numeric_imputation,
            "categorical_imputation": self.categorical_imputation,
            "scale_numeric": self.scale_numeric,
        }
