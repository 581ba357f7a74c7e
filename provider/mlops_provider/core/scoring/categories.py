"""Categories the model never saw: found in the fitted encoders, counted while scoring.

A scikit-learn pipeline trained by the provider (:func:`mlops_provider.core.training.estimator.
build_pipeline`) one-hot encodes its categorical columns with ``handle_unknown="ignore"``: a
category the encoder never saw becomes all zeros, silently, and the row is scored as if it had
none. :func:`known_categories` reads the categories each input column's fitted encoder knows
(``categories_`` of a ``OneHotEncoder`` / ``OrdinalEncoder``, inside ``Pipeline`` and
``ColumnTransformer`` steps); :class:`UnseenCategories` counts the input values outside them,
batch by batch, per column: rows, share and the most frequent examples. Missing values (null)
are not counted: the pipeline imputes them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlops_provider.core.scoring.model import ScoringInputError

__all__ = ["UnseenCategories", "known_categories"]

_EXAMPLES = 5
_DISTINCT_KEPT = 1000


def _column_names(owner: Any, columns: Any) -> list[str] | None:
    """A ``ColumnTransformer`` column selection as input column names (None: not resolvable)."""
    if isinstance(columns, str):
        return [columns]
    names_in = getattr(owner, "feature_names_in_", None)
    selected = list(columns) if isinstance(columns, (list, tuple, np.ndarray)) else None
    if selected is None:
        if isinstance(columns, slice) and names_in is not None:
            return [str(n) for n in list(names_in)[columns]]
        return None
    if all(isinstance(c, str) for c in selected):
        return [str(c) for c in selected]
    if names_in is None:
        return None
    if selected and all(isinstance(c, (bool, np.bool_)) for c in selected):
        return [str(n) for n, keep in zip(names_in, selected, strict=False) if keep]
    if all(isinstance(c, (int, np.integer)) for c in selected):
        return [str(names_in[int(i)]) for i in selected]
    return None


def _walk(obj: Any, columns: list[str] | None, found: dict[str, list[Any]]) -> bool:
    """Collect the encoders' categories below ``obj`` (which sees ``columns``); True when
    ``obj`` changes the columns (later pipeline steps no longer see the input columns)."""
    if hasattr(obj, "transformers_"):  # ColumnTransformer
        for _, transformer, selection in obj.transformers_:
            if isinstance(transformer, str):  # "drop" / "passthrough"
                continue
            _walk(transformer, _column_names(obj, selection), found)
        return True
    if hasattr(obj, "steps"):  # Pipeline
        for _, step in obj.steps:
            if step is None or isinstance(step, str):
                continue
            if _walk(step, columns, found):
                return True
        return False
    categories = getattr(obj, "categories_", None)
    if categories is None:
        return False
    names = columns
    if names is None and getattr(obj, "feature_names_in_", None) is not None:
        names = [str(n) for n in obj.feature_names_in_]
    if names is not None and len(names) == len(categories):
        for name, values in zip(names, categories, strict=True):
            found[name] = [v for v in np.asarray(values).tolist() if v is not None]
    return True


def known_categories(estimator: Any, columns: Sequence[str] = ()) -> dict[str, list[Any]]:
    """``{input column: categories its fitted encoder knows}`` of a scikit-learn model.

    :param estimator: the fitted model (a ``Pipeline``, a ``ColumnTransformer``, an encoder);
        anything else (a pyfunc model, an estimator without encoders) gives ``{}``.
    :param columns: the model's input columns: encoders that see them directly (the first
        step of a pipeline) are mapped to them when they recorded no names.
    """
    found: dict[str, list[Any]] = {}
    try:
        _walk(estimator, list(columns) or None, found)
    except (AttributeError, TypeError, ValueError, IndexError):  # an unusual estimator
        return {}
    return found


def _plain(values: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    if pa.types.is_dictionary(values.type):
        return values.cast(values.type.value_type)
    return values


@dataclass
class UnseenCategories:
    """Counts, per categorical column, the input values its encoder never saw.

    :param known: :func:`known_categories` of the model.
    """

    known: dict[str, list[Any]]
    rows: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, Counter[Any]] = field(default_factory=dict)
    _sets: dict[str, tuple[pa.DataType, pa.Array]] = field(default_factory=dict, repr=False)

    def _value_set(self, column: str, type_: pa.DataType) -> tuple[pa.DataType, pa.Array]:
        """The known categories as an array of the column's type (else both as strings)."""
        cached = self._sets.get(column)
        if cached is not None and cached[0] == type_:
            return cached
        values = self.known[column]
        try:
            result = (type_, pa.array(values).cast(type_))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            result = (pa.string(), pa.array([str(v) for v in values], type=pa.string()))
        self._sets[column] = result
        return result

    def update(self, table: pa.Table) -> None:
        """Count the unseen values of one input table (the model's input columns)."""
        self.rows += table.num_rows
        for column in self.known:
            if column not in table.column_names:
                continue
            values = _plain(table.column(column))
            type_, value_set = self._value_set(column, values.type)
            if type_ != values.type:
                values = values.cast(type_)
            unseen = pc.and_(pc.is_valid(values), pc.invert(pc.is_in(values, value_set=value_set)))
            count = int(pc.sum(unseen).as_py() or 0)
            if not count:
                continue
            self.counts[column] = self.counts.get(column, 0) + count
            seen = self.examples.setdefault(column, Counter())
            for item in pc.value_counts(pc.filter(values, unseen)).to_pylist():
                seen[item["values"]] += int(item["counts"])
            if len(seen) > _DISTINCT_KEPT:
                self.examples[column] = Counter(dict(seen.most_common(_DISTINCT_KEPT)))

    def report(self) -> dict[str, dict[str, Any]]:
        """``{column: {"count", "share", "examples", "known"}}`` of the columns with unseen
        values (``share`` of the rows scored; ``examples``: the most frequent unseen values;
        ``known``: some of the categories the model knows)."""
        return {
            column: {
                "count": count,
                "share": round(count / self.rows, 6) if self.rows else 0.0,
                "examples": [value for value, _ in self.examples[column].most_common(_EXAMPLES)],
                "known": list(self.known[column][:10]),
            }
            for column, count in sorted(self.counts.items())
        }

    def lines(self) -> list[str]:
        """One line per column with unseen values, for the log and the result's reasons."""
        return [
            f"column {column!r}: {item['count']:,} of {self.rows:,} rows "
            f"({100 * item['share']:.1f}%) have categories the model never saw in training, "
            f"e.g. {item['examples']} (known: {item['known']})"
            for column, item in self.report().items()
        ]

    def check(self, max_share: float | None, *, of_rows: int | None = None) -> None:
        """Raise when a column's unseen rows are more than ``max_share`` of ``of_rows`` (default:
        the rows counted; None ``max_share``: never).

        While streaming, pass the input's total rows when known: a column whose count already
        exceeds ``max_share`` of all the rows fails at once, no later batch can bring it back.

        :raises ScoringInputError: naming ``max_unseen_share``, the columns, their counts,
            shares and examples.
        """
        if max_share is None:
            return
        rows = self.rows if of_rows is None else of_rows
        over = [column for column, count in self.counts.items() if count > max_share * rows]
        if not over:
            return
        lines = [line for line in self.lines() if any(f"column {c!r}" in line for c in over)]
        raise ScoringInputError(
            f"unseen categories above max_unseen_share={max_share:g} (the share of rows with a "
            "category the model never saw, per column); nothing was written:\n  "
            + "\n  ".join(lines)
        )
