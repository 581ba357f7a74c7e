"""Feature selection and problem-type inference (pure, no fitting).

Feature columns (default): every column except the target, the ``entity_columns``, columns
*named like* ids or timestamps (``id``, ``*_id``, ``*_timestamp``, ``*_ts``, ``*_at``) and
columns of a type a model cannot take (datetimes, durations, nested values). Numeric and
boolean columns are numeric features; strings and categories are categorical features
(``categorical_columns`` forces the latter).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlops_provider.core.training.config import (
    MAX_CLASSES_FOR_INFERENCE,
    TrainingConfig,
    TrainingInputError,
)

__all__ = ["FeatureSelection", "infer_task", "select_features"]

log = logging.getLogger(__name__)

_ID_NAME = re.compile(r"(^id$|_id$|_timestamp$|_ts$|_at$)", re.IGNORECASE)


@dataclass
class FeatureSelection:
    """The model's inputs, by kind, and why other columns were left out."""

    feature_columns: list[str]
    numeric_columns: list[str]
    categorical_columns: list[str]
    excluded: dict[str, str]


def _kind(series: pd.Series) -> str | None:
    """``numeric``, ``categorical`` or None (a type no model input can take)."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        return None if pd.api.types.is_complex_dtype(dtype) else "numeric"
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return None
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype):
        return "categorical"
    if pd.api.types.is_object_dtype(dtype):
        sample = series.dropna().head(1000)
        if sample.empty or all(isinstance(v, (str, bool, np.bool_)) for v in sample):
            return "categorical"
    return None


def _explicit(columns: list[str], config: TrainingConfig) -> list[str]:
    """``feature_columns`` as given, checked against the data and the target."""
    wanted = [str(c) for c in config.feature_columns or []]
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
    return wanted


def _default(columns: list[str], config: TrainingConfig, excluded: dict[str, str]) -> list[str]:
    """Every column but the target, entity columns and columns named like ids/timestamps."""
    entities = [str(c) for c in config.entity_columns or []]
    wanted = []
    for name in columns:
        if name == config.target:
            continue
        if name in entities:
            excluded[name] = "entity column"
        elif _ID_NAME.search(name):
            excluded[name] = "named like an id/timestamp column"
        else:
            wanted.append(name)
    return wanted


def _typed(
    frame: pd.DataFrame,
    wanted: list[str],
    forced: list[str],
    explicit: bool,
    excluded: dict[str, str],
) -> tuple[list[str], list[str], list[str]]:
    """``(features, numeric, categorical)``; an unusable type is excluded, or an error when the
    column was asked for."""
    numeric: list[str] = []
    categorical: list[str] = []
    features: list[str] = []
    for name in wanted:
        kind = "categorical" if name in forced else _kind(frame[name])
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
    return features, numeric, categorical


def select_features(frame: pd.DataFrame, config: TrainingConfig) -> FeatureSelection:
    """Choose and type the feature columns (see the module docstring).

    :raises TrainingInputError: a listed column is missing, unusable, or entirely null.
    """
    columns = [str(c) for c in frame.columns]
    excluded: dict[str, str] = {}
    explicit = config.feature_columns is not None
    wanted = _explicit(columns, config) if explicit else _default(columns, config, excluded)
    forced = [str(c) for c in (config.categorical_columns or [])]
    stray = [c for c in forced if c not in wanted]
    if stray:
        raise TrainingInputError(
            f"categorical_columns {stray} are not feature columns; features: {wanted}"
        )
    features, numeric, categorical = _typed(frame, wanted, forced, explicit, excluded)
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
    """``classification`` or ``regression`` from the target's type and cardinality:
    classification for boolean, string or categorical targets and for integer-valued targets
    with at most 20 distinct values; regression otherwise."""
    dtype = y.dtype
    if (
        pd.api.types.is_bool_dtype(dtype)
        or isinstance(dtype, pd.CategoricalDtype)
        or pd.api.types.is_string_dtype(dtype)
        or pd.api.types.is_object_dtype(dtype)
    ):
        return "classification"
    if not pd.api.types.is_numeric_dtype(dtype):
        raise TrainingInputError(
            f"cannot infer the problem type from a target of type {dtype}: pass problem_type="
        )
    values = y.dropna()
    integral = pd.api.types.is_integer_dtype(dtype) or bool(
        np.all(np.mod(values.to_numpy(dtype=np.float64), 1.0) == 0)
    )
    if integral and values.nunique() <= MAX_CLASSES_FOR_INFERENCE:
        return "classification"
    return "regression"
