"""Feature selection and problem-type inference (pure, no fitting).

Feature columns (default): every column except the target, the ``entity_columns``, columns
*named like* ids or timestamps (``id``, ``*_id``, ``*_timestamp``, ``*_ts``, ``*_at``) and
columns of a type a model cannot take (datetimes, durations, nested values). Numeric and
boolean columns are numeric features; strings and categories are categorical features
(``categorical_columns`` forces the latter, ``numeric_columns`` the former: those are converted
from text by :func:`coerce_numeric`).

Type safety: a text column that holds numbers (``"45.20"``, ``"$1,204.50"``) or mostly numbers
with some text (``"unknown"``) is an error naming the column and the offending values, not a
categorical feature with one level per number; so is a categorical feature with more than
``max_categories`` distinct values.
"""

from __future__ import annotations

import logging
import numbers
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlops_provider.core.training.config import (
    MAX_CLASSES_FOR_INFERENCE,
    TrainingConfig,
    TrainingInputError,
)

__all__ = ["FeatureSelection", "coerce_numeric", "infer_task", "select_features"]

log = logging.getLogger(__name__)

_ID_NAME = re.compile(r"(^id$|_id$|_timestamp$|_ts$|_at$)", re.IGNORECASE)
_NUMBER = r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?"
_DECORATION = r"[\s$€£¥%,]"  # currency signs, percent signs, thousands separators
_EXAMPLES = 3


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
    if pd.api.types.is_object_dtype(dtype):
        sample = series.dropna().head(1000)
        if sample.empty or all(
            isinstance(v, (str, bool, np.bool_, numbers.Number)) for v in sample
        ):
            return "categorical"  # numbers among them are an error of _text_problem
        return None
    if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype):
        return "categorical"
    return None


def _examples(counts: pd.Series, limit: int = _EXAMPLES) -> str:
    """``'unknown' (72 rows), 'n/a' (3 rows) and 4 more`` from value counts."""
    shown = [
        f"{value!r} ({n} row{'s' if n != 1 else ''})" for value, n in counts.head(limit).items()
    ]
    more = len(counts) - limit
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def _value_counts(series: pd.Series) -> pd.Series | None:
    """Row counts of the distinct non-missing values, most frequent first (None: unhashable
    values)."""
    try:
        return series.dropna().value_counts(sort=True)
    except TypeError:
        return None


def _numeric_looking(values: pd.Index) -> tuple[np.ndarray, np.ndarray]:
    """Per value: is it a number (a number, or a text of one, decorations allowed), and is it
    a text ``pandas.to_numeric`` would not convert (a currency sign, ``%`` or ``,``)."""
    items = pd.Series(values, dtype=object)
    is_text = items.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
    is_number = items.map(
        lambda v: isinstance(v, numbers.Number) and not isinstance(v, (bool, np.bool_))
    ).to_numpy(dtype=bool)
    texts = items[is_text].astype(str).str.strip()
    plain = texts.str.fullmatch(_NUMBER).to_numpy(dtype=bool)
    decorated = texts.str.replace(_DECORATION, "", regex=True).str.fullmatch(_NUMBER)
    looks = is_number.copy()
    looks[is_text] = decorated.to_numpy(dtype=bool)
    symbols = np.zeros(len(items), dtype=bool)
    symbols[is_text] = decorated.to_numpy(dtype=bool) & ~plain
    return looks, symbols


def _text_problem(name: str, series: pd.Series) -> str | None:
    """Why a would-be categorical column is really numbers (or numbers and text), or None."""
    counts = _value_counts(series)
    if counts is None or counts.empty:
        return None
    looks, symbols = _numeric_looking(counts.index)
    numbers_, texts = counts[looks], counts[~looks]
    if numbers_.empty:
        return None
    mixed_types = any(not isinstance(v, str) for v in counts.index) and any(
        isinstance(v, str) for v in counts.index
    )
    if texts.empty and symbols.any():
        return (
            f"feature column {name!r} holds numbers stored as text with symbols "
            f"({_examples(numbers_)}; {len(counts)} distinct values): store them as numbers in "
            "the training data (without currency sign, thousands separator or percent sign), "
            "or leave the column out of the features"
        )
    if texts.empty:
        stored = "text" if any(isinstance(v, str) for v in counts.index) else "objects"
        return (
            f"feature column {name!r} holds numbers stored as {stored} ({_examples(numbers_)}; "
            f"{len(counts)} distinct values): declare it in numeric_columns to train on it as "
            "numbers, or in categorical_columns to keep it as categories (codes)"
        )
    if numbers_.sum() > texts.sum() or mixed_types:
        return (
            f"feature column {name!r} mixes numbers and text: {int(numbers_.sum())} value(s) "
            f"are numbers ({_examples(numbers_)}) but {int(texts.sum())} are not "
            f"({_examples(texts)}): replace those with missing values (null) in the training "
            "data and declare the column in numeric_columns, or list it in categorical_columns "
            "to keep it as categories"
        )
    return None


def _levels_problem(name: str, series: pd.Series, limit: int | None) -> str | None:
    """Why a categorical column has too many levels to one-hot encode, or None."""
    if limit is None:
        return None
    counts = _value_counts(series)
    if counts is None or len(counts) <= limit:
        return None
    return (
        f"categorical feature column {name!r} has {len(counts)} distinct values (more than "
        f"max_categories={limit}; e.g. {_examples(counts)}): one-hot encoding would make it "
        f"{len(counts)} model inputs. Leave it out of the features (feature_columns, or "
        "entity_columns for an identifier), declare it in numeric_columns if it holds numbers, "
        "or raise max_categories"
    )


def coerce_numeric(
    frame: pd.DataFrame, columns: Sequence[str], what: str = "training data"
) -> pd.DataFrame:
    """``frame`` with ``columns`` (the declared ``numeric_columns``) converted to float64 with
    ``pandas.to_numeric``; missing values and empty text stay missing. Columns of a numeric
    type are left as they are; returns ``frame`` itself when nothing changes.

    :param what: the data's name in messages (``training data``, ``validation data``).
    :raises TrainingInputError: a column is not in ``frame`` (naming the closest), or holds
        values that are not numbers (naming them, with their row counts).
    """
    from mlops_provider.core.errors import did_you_mean

    available = [str(c) for c in frame.columns]
    converted: dict[str, pd.Series] = {}
    problems: list[str] = []
    for name in columns:
        if name not in frame.columns:
            raise TrainingInputError(
                f"numeric_columns: column {name!r} is not in the {what}; columns: "
                f"{available}{did_you_mean(name, available)}"
            )
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column.dtype):
            continue
        present = column.notna() & (column.astype(str).str.strip() != "")
        values = pd.to_numeric(column.where(present), errors="coerce")
        bad = present & values.isna()
        if bad.any():
            counts = _value_counts(column[bad])
            shown = _examples(counts) if counts is not None else ""
            problems.append(f"{name!r}: {int(bad.sum())} value(s) are not numbers ({shown})")
        converted[name] = values.astype("float64")
    if problems:
        raise TrainingInputError(
            f"numeric_columns of the {what}: {'; '.join(problems)}: fix those values in the "
            "data (a missing value may be null or empty), or leave the column out of "
            "numeric_columns"
        )
    if not converted:
        return frame
    log.info("converted numeric_columns %s of the %s from text to numbers", list(converted), what)
    return frame.assign(**converted)


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
    config: TrainingConfig,
    explicit: bool,
    excluded: dict[str, str],
) -> tuple[list[str], list[str], list[str]]:
    """``(features, numeric, categorical)``; an unusable type is excluded, or an error when the
    column was asked for.

    :raises TrainingInputError: numbers stored as text, numbers mixed with text, or more
        distinct values than ``max_categories`` in a categorical column (every such column
        named in one message).
    """
    forced = [str(c) for c in config.categorical_columns or []]
    declared = [str(c) for c in config.numeric_columns or []]
    numeric: list[str] = []
    categorical: list[str] = []
    features: list[str] = []
    problems: list[str] = []
    for name in wanted:
        kind = "categorical" if name in forced else _kind(frame[name])
        if name in declared and kind != "numeric":
            raise TrainingInputError(
                f"numeric_columns: column {name!r} is of type {frame[name].dtype}; convert it "
                "with coerce_numeric before selecting features"
            )
        if kind is None:
            reason = f"unsupported type {frame[name].dtype}"
            if explicit:
                raise TrainingInputError(
                    f"feature column {name!r} has {reason}: a model cannot take it as input"
                )
            excluded[name] = reason
            continue
        if kind == "categorical":
            problem = None if name in forced else _text_problem(name, frame[name])
            problem = problem or _levels_problem(name, frame[name], config.max_categories)
            if problem:
                problems.append(problem)
        features.append(name)
        (numeric if kind == "numeric" else categorical).append(name)
    if problems:
        raise TrainingInputError("; ".join(problems))
    return features, numeric, categorical


def _stray(wanted: list[str], config: TrainingConfig) -> None:
    """``categorical_columns`` and ``numeric_columns`` must be feature columns."""
    for parameter in ("categorical_columns", "numeric_columns"):
        stray = [str(c) for c in getattr(config, parameter) or [] if str(c) not in wanted]
        if stray:
            raise TrainingInputError(
                f"{parameter} {stray} are not feature columns; features: {wanted}"
            )


def select_features(frame: pd.DataFrame, config: TrainingConfig) -> FeatureSelection:
    """Choose and type the feature columns (see the module docstring); the declared
    ``numeric_columns`` must already be numbers (:func:`coerce_numeric`).

    :raises TrainingInputError: a listed column is missing, unusable, or entirely null; a text
        column holds numbers or numbers mixed with text; a categorical column has more than
        ``max_categories`` distinct values.
    """
    columns = [str(c) for c in frame.columns]
    excluded: dict[str, str] = {}
    explicit = config.feature_columns is not None
    wanted = _explicit(columns, config) if explicit else _default(columns, config, excluded)
    _stray(wanted, config)
    features, numeric, categorical = _typed(frame, wanted, config, explicit, excluded)
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
