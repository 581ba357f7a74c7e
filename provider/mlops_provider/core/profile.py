"""Column summaries and reference profiles for drift detection.

A :class:`ReferenceProfile` is computed once from the reference data (typically the champion
model's training set) and stored as JSON next to the model. Drift detection then compares new
data against the profile instead of re-reading the reference data.

Per column the profile keeps what the drift methods in :mod:`mlops_provider.core.drift` need:

* numeric columns: row and null counts, mean / std / min / max, the number of distinct
  values and either

  - the exact distinct values with their counts, when there are at most ``max_exact_values``
    of them (always the case for references of up to that many rows), so every method
    computed from the profile equals the one computed from the raw data, or
  - ``n_bins + 1`` quantiles at equally spaced probabilities (an equal-frequency histogram
    with ``n_bins`` bins). Between quantiles the distribution is taken as linear (the
    quantile function and the CDF are interpolated), which is what the approximate methods
    use;

* categorical columns: row and null counts and the frequency table.

The same summaries are built for raw data on both sides of a comparison (there the numeric
summary holds the sorted values themselves), so the drift code has one representation to
work on. Summaries are computed column by column: at most one converted copy of a column
plus its sorted copy exist at a time.

Missing values: ``None``/null, ``NaN`` and, for numeric columns, ``+-inf`` count as missing
(Evidently drops infinities the same way before its tests).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mlops_provider.core.errors import InputError

__all__ = [
    "CategoricalSummary",
    "ColumnType",
    "DriftInputError",
    "NumericSummary",
    "ReferenceProfile",
    "TableLike",
    "TableView",
    "summarize_categorical",
    "summarize_numeric",
]

ColumnType = Literal["numeric", "categorical"]
Label: TypeAlias = str | int | float | bool
TableLike: TypeAlias = pd.DataFrame | pa.Table

PROFILE_FORMAT = "mlops-provider/reference-profile"
PROFILE_VERSION = 1
DEFAULT_N_BINS = 1000
DEFAULT_MAX_EXACT_VALUES = 1000
# Evidently bins numeric columns with more than 20 distinct values; fewer are counted per value.
# A profile therefore always keeps exact counts for at least this many distinct values.
MIN_EXACT_VALUES = 20
# Extra quantiles in each tail of a numeric profile (see _probability_grid).
TAIL_POINTS = 32
TAIL_ORDER_STATISTICS = 16


class DriftInputError(InputError):
    """The data or parameters given to drift detection or profiling cannot be used.

    Raised for empty data, a column missing on one side, a column that cannot be typed, a
    method that does not apply to a column's type, or an unreadable profile.
    """


# --------------------------------------------------------------------------- summaries


@dataclass(eq=False)
class NumericSummary:
    """Distribution of one numeric column.

    Exactly one representation is set: ``sorted_values`` (raw data), ``values``/``counts``
    (exact distinct values, from a profile) or ``probs``/``quantiles`` (approximate, from a
    profile). ``std`` is the population standard deviation (``ddof=0``, as ``np.std``).
    """

    n_rows: int
    n_null: int
    mean: float
    std: float
    min: float
    max: float
    n_unique: int
    integer: bool = False
    sorted_values: np.ndarray | None = None
    values: np.ndarray | None = None
    counts: np.ndarray | None = None
    probs: np.ndarray | None = None
    quantiles: np.ndarray | None = None

    column_type: ColumnType = field(default="numeric", init=False)

    @property
    def n_valid(self) -> int:
        """Number of non-missing values."""
        return self.n_rows - self.n_null

    @property
    def is_exact(self) -> bool:
        """Whether the summary holds the whole distribution (not only quantiles)."""
        return self.quantiles is None

    def sample(self) -> np.ndarray:
        """The sorted non-missing values (exact summaries only; rebuilt from counts if needed)."""
        if self.sorted_values is not None:
            return self.sorted_values
        if self.values is not None and self.counts is not None:
            return np.repeat(self.values, self.counts)
        raise ValueError("an approximate (quantile) summary has no sample")

    def distinct(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct values (ascending) and their counts (exact summaries only)."""
        if self.values is not None and self.counts is not None:
            return self.values, self.counts
        s = self.sample()
        if s.size == 0:
            return s, np.zeros(0, dtype=np.int64)
        starts = np.concatenate(([0], np.flatnonzero(s[1:] != s[:-1]) + 1))
        counts = np.diff(np.append(starts, s.size))
        return s[starts], counts.astype(np.int64)

    def _cumulative(self) -> np.ndarray:
        assert self.counts is not None
        return np.concatenate(([0], np.cumsum(self.counts)))

    def _count_before(self, x: np.ndarray, side: Literal["left", "right"]) -> np.ndarray:
        """Number of values < x (side="left") or <= x (side="right"); exact summaries."""
        if self.sorted_values is not None:
            return np.searchsorted(self.sorted_values, x, side=side)
        assert self.values is not None
        return self._cumulative()[np.searchsorted(self.values, x, side=side)]

    def cdf(self, x: np.ndarray) -> np.ndarray:
        """Share of values ``<= x`` (interpolated for approximate summaries)."""
        x = np.asarray(x, dtype=np.float64)
        if self.quantiles is not None and self.probs is not None:
            return np.interp(x, self.quantiles, self.probs, left=0.0, right=1.0)
        return self._count_before(x, "right") / max(self.n_valid, 1)

    def share_below(self, x: np.ndarray) -> np.ndarray:
        """Share of values ``< x`` (interpolated for approximate summaries)."""
        x = np.asarray(x, dtype=np.float64)
        if self.quantiles is not None and self.probs is not None:
            return np.interp(x, self.quantiles, self.probs, left=0.0, right=1.0)
        return self._count_before(x, "left") / max(self.n_valid, 1)

    def quantile(self, t: np.ndarray) -> np.ndarray:
        """Quantile function at probabilities ``t`` (the empirical step function if exact)."""
        t = np.asarray(t, dtype=np.float64)
        if self.quantiles is not None and self.probs is not None:
            return np.interp(t, self.probs, self.quantiles)
        n = self.n_valid
        k = np.clip(np.ceil(t * n).astype(np.int64) - 1, 0, max(n - 1, 0))
        if self.sorted_values is not None:
            return self.sorted_values[k]
        assert self.values is not None
        return self.values[np.searchsorted(self._cumulative()[1:], k, side="right")]

    def bin_shares(self, edges: np.ndarray) -> np.ndarray:
        """Share of values per bin with ``np.histogram`` semantics (last bin closed)."""
        below = self.share_below(edges)
        below[-1] = self.cdf(edges[-1:])[0]
        return np.diff(below)

    def labels(self) -> list[Label]:
        """Distinct values as Python labels (ints for integer columns)."""
        values, _ = self.distinct()
        if self.integer:
            return [int(v) for v in values]
        return [float(v) for v in values]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable form. Raw-data summaries are stored as distinct counts."""
        out: dict[str, Any] = {
            "column_type": "numeric",
            "n_rows": self.n_rows,
            "n_null": self.n_null,
            "mean": _num(self.mean),
            "std": _num(self.std),
            "min": _num(self.min),
            "max": _num(self.max),
            "n_unique": self.n_unique,
            "integer": self.integer,
        }
        if self.quantiles is not None and self.probs is not None:
            out["probs"] = [float(p) for p in self.probs]
            out["quantiles"] = [float(q) for q in self.quantiles]
        else:
            values, counts = self.distinct()
            out["values"] = [float(v) for v in values]
            out["counts"] = [int(c) for c in counts]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericSummary:
        """Inverse of :meth:`to_dict`."""
        summary = cls(
            n_rows=int(data["n_rows"]),
            n_null=int(data["n_null"]),
            mean=_float(data["mean"]),
            std=_float(data["std"]),
            min=_float(data["min"]),
            max=_float(data["max"]),
            n_unique=int(data["n_unique"]),
            integer=bool(data.get("integer", False)),
        )
        if "quantiles" in data:
            summary.probs = np.asarray(data["probs"], dtype=np.float64)
            summary.quantiles = np.asarray(data["quantiles"], dtype=np.float64)
            if summary.probs.shape != summary.quantiles.shape or summary.probs.size < 2:
                raise DriftInputError("profile: 'probs' and 'quantiles' must match (>= 2 each)")
        else:
            summary.values = np.asarray(data["values"], dtype=np.float64)
            summary.counts = np.asarray(data["counts"], dtype=np.int64)
            if summary.values.shape != summary.counts.shape:
                raise DriftInputError("profile: 'values' and 'counts' must have the same length")
        return summary

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NumericSummary):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


@dataclass(eq=False)
class CategoricalSummary:
    """Frequency table of one categorical column (missing values excluded)."""

    n_rows: int
    n_null: int
    labels: list[Label]
    counts: np.ndarray

    column_type: ColumnType = field(default="categorical", init=False)

    @property
    def n_valid(self) -> int:
        """Number of non-missing values."""
        return self.n_rows - self.n_null

    @property
    def n_unique(self) -> int:
        """Number of distinct categories."""
        return len(self.labels)

    def as_dict(self) -> dict[Label, int]:
        """Category -> count."""
        return {label: int(c) for label, c in zip(self.labels, self.counts)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable form; labels keep their JSON type (string, number, boolean)."""
        return {
            "column_type": "categorical",
            "n_rows": self.n_rows,
            "n_null": self.n_null,
            "labels": list(self.labels),
            "counts": [int(c) for c in self.counts],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoricalSummary:
        """Inverse of :meth:`to_dict`."""
        labels = list(data["labels"])
        counts = np.asarray(data["counts"], dtype=np.int64)
        if len(labels) != counts.size:
            raise DriftInputError("profile: 'labels' and 'counts' must have the same length")
        return cls(
            n_rows=int(data["n_rows"]), n_null=int(data["n_null"]), labels=labels, counts=counts
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CategoricalSummary):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


Summary: TypeAlias = NumericSummary | CategoricalSummary


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _float(x: Any) -> float:
    return math.nan if x is None else float(x)


def _label(value: Any) -> Label:
    """A category label as a plain Python scalar."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (str, bool, int, float)):
        return value
    return str(value)


def summarize_numeric(values: np.ndarray, *, integer: bool = False) -> NumericSummary:
    """Summarize a float64 array (missing as NaN/inf); the sorted copy is kept.

    ``values`` is not modified; one sorted copy of its finite values is made.
    """
    n_rows = int(values.size)
    finite = np.isfinite(values)
    if finite.all():
        ordered = np.sort(values)
    else:
        ordered = values[finite]  # a new array: sort it in place
        ordered.sort()
    del finite
    n = ordered.size
    if n == 0:
        nan = math.nan
        return NumericSummary(n_rows, n_rows, nan, nan, nan, nan, 0, integer, ordered)
    n_unique = int(np.count_nonzero(ordered[1:] != ordered[:-1])) + 1
    return NumericSummary(
        n_rows=n_rows,
        n_null=n_rows - n,
        mean=float(np.mean(ordered)),
        std=float(np.std(ordered)),
        min=float(ordered[0]),
        max=float(ordered[-1]),
        n_unique=n_unique,
        integer=integer,
        sorted_values=ordered,
    )


def summarize_categorical(labels: Iterable[Any], counts: Iterable[int], n_rows: int) -> Summary:
    """Build a categorical summary from a frequency table (missing values already removed)."""
    table: dict[Label, int] = {}
    for label, count in zip(labels, counts):
        key = _label(label)
        table[key] = table.get(key, 0) + int(count)
    n_valid = sum(table.values())
    return CategoricalSummary(
        n_rows=n_rows,
        n_null=n_rows - n_valid,
        labels=list(table),
        counts=np.fromiter(table.values(), dtype=np.int64, count=len(table)),
    )


def _probability_grid(n_bins: int, n: int) -> np.ndarray:
    """Probabilities at which a profile keeps quantiles.

    ``n_bins + 1`` equally spaced probabilities, refined in both tails (where a linear
    quantile function is least accurate, e.g. for log-normal data): geometrically spaced
    points from ``1 / n_bins`` down to ``1 / (n - 1)`` and the positions of the
    ``TAIL_ORDER_STATISTICS`` most extreme order statistics, which are stored exactly.
    """
    grid = [np.linspace(0.0, 1.0, n_bins + 1)]
    step, smallest = 1.0 / n_bins, 1.0 / max(n - 1, 1)
    tail = [np.arange(1, min(TAIL_ORDER_STATISTICS, n - 1) + 1) * smallest]
    if smallest < step:
        tail.append(np.geomspace(step, smallest, TAIL_POINTS))
    low = np.concatenate(tail)
    grid += [low, 1.0 - low]
    probs = np.unique(np.clip(np.concatenate(grid), 0.0, 1.0))
    return probs


def compress_numeric(
    summary: NumericSummary,
    *,
    n_bins: int = DEFAULT_N_BINS,
    max_exact_values: int = DEFAULT_MAX_EXACT_VALUES,
) -> NumericSummary:
    """Turn a raw-data summary into its profile form (exact counts or quantiles)."""
    out = NumericSummary(
        n_rows=summary.n_rows,
        n_null=summary.n_null,
        mean=summary.mean,
        std=summary.std,
        min=summary.min,
        max=summary.max,
        n_unique=summary.n_unique,
        integer=summary.integer,
    )
    if summary.n_unique <= max(max_exact_values, MIN_EXACT_VALUES):
        out.values, out.counts = summary.distinct()
        return out
    s = summary.sample()
    n = s.size
    out.probs = _probability_grid(n_bins, n)
    # Linear interpolation between order statistics (numpy's default quantile method).
    pos = out.probs * (n - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    out.quantiles = s[lo] + (s[hi] - s[lo]) * (pos - lo)
    out.quantiles[0], out.quantiles[-1] = s[0], s[-1]
    # Guard against rounding making the grid non-monotone (np.interp needs it sorted).
    np.maximum.accumulate(out.quantiles, out=out.quantiles)
    return out


# --------------------------------------------------------------------------- table access


class TableView:
    """Column access over a pandas DataFrame or a pyarrow Table without copying the frame.

    Numeric columns come out as float64 arrays (zero-copy where the source allows it);
    categorical columns as frequency tables computed by pyarrow or pandas.
    """

    def __init__(self, data: Any, side: str) -> None:
        if isinstance(data, pa.RecordBatch):
            data = pa.Table.from_batches([data])
        if not isinstance(data, (pd.DataFrame, pa.Table)):
            raise DriftInputError(
                f"{side} data must be a pandas DataFrame or a pyarrow Table, "
                f"got {type(data).__name__}"
            )
        self.data: pd.DataFrame | pa.Table = data
        self.side = side
        self.is_arrow = isinstance(data, pa.Table)
        if isinstance(data, pa.Table):
            self.columns: list[str] = list(data.column_names)
            self.n_rows = int(data.num_rows)
        else:
            # Column labels may be non-strings (e.g. ints); results are keyed by str(label).
            self._labels = {str(c): c for c in data.columns}
            self.columns = list(self._labels)
            self.n_rows = len(data)

    def require(self, name: str) -> None:
        """Raise :class:`DriftInputError` naming ``name`` when the column is missing."""
        if name not in self.columns:
            shown = ", ".join(self.columns[:20]) + (" ..." if len(self.columns) > 20 else "")
            raise DriftInputError(
                f"column {name!r} is missing from the {self.side} data (it has: {shown})"
            )

    def _pandas(self, name: str) -> pd.Series:
        assert isinstance(self.data, pd.DataFrame)
        series = self.data[self._labels[name]]
        if isinstance(series, pd.DataFrame):
            raise DriftInputError(f"column {name!r} appears more than once in the {self.side} data")
        return series

    def infer_type(self, name: str) -> tuple[ColumnType | None, bool]:
        """``(type, is_integer)`` from the dtype; ``None`` when the dtype is not supported.

        bool, string, object and category dtypes are categorical; integer, float and decimal
        dtypes are numeric; datetimes, binary and nested types are not supported.
        """
        if self.is_arrow:
            assert isinstance(self.data, pa.Table)
            t = self.data.schema.field(name).type
            if pa.types.is_boolean(t) or pa.types.is_dictionary(t):
                return "categorical", False
            if pa.types.is_integer(t):
                return "numeric", True
            if pa.types.is_floating(t) or pa.types.is_decimal(t):
                return "numeric", False
            if (
                pa.types.is_string(t)
                or pa.types.is_large_string(t)
                or getattr(pa.types, "is_string_view", lambda _: False)(t)
            ):
                return "categorical", False
            if pa.types.is_null(t):
                return "categorical", False
            return None, False
        dtype = self._pandas(name).dtype
        if pd.api.types.is_bool_dtype(dtype):
            return "categorical", False
        if isinstance(dtype, pd.CategoricalDtype):
            return "categorical", False
        if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
            return "numeric", bool(pd.api.types.is_integer_dtype(dtype))
        if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
            return "categorical", False
        return None, False

    def numeric(self, name: str) -> np.ndarray:
        """The column as float64 with missing values as NaN (a view when possible)."""
        try:
            if self.is_arrow:
                assert isinstance(self.data, pa.Table)
                col = self.data.column(name)
                if not pa.types.is_floating(col.type) or col.type != pa.float64():
                    col = pc.cast(col, pa.float64())
                return np.asarray(col.to_numpy(), dtype=np.float64)
            series = self._pandas(name)
            if series.dtype == np.float64:
                return series.to_numpy()
            return series.to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            raise DriftInputError(
                f"column {name!r} in the {self.side} data is not numeric: {err}"
            ) from err

    def categorical(self, name: str) -> CategoricalSummary:
        """Frequency table of the column; NaN counts as missing."""
        if self.is_arrow:
            assert isinstance(self.data, pa.Table)
            col = self.data.column(name)
            if pa.types.is_null(col.type):
                return CategoricalSummary(self.n_rows, self.n_rows, [], np.zeros(0, np.int64))
            vc = pc.value_counts(col)
            values = vc.field("values")
            counts = vc.field("counts").to_numpy(zero_copy_only=False)
            keep = pc.is_valid(values).to_numpy(zero_copy_only=False)
            if pa.types.is_floating(values.type):
                keep &= ~np.isnan(values.to_numpy(zero_copy_only=False).astype(np.float64))
            labels = values.filter(pa.array(keep)).to_pylist()
            summary = summarize_categorical(labels, counts[keep], self.n_rows)
        else:
            series = self._pandas(name)
            if pd.api.types.is_bool_dtype(series.dtype) and series.dtype == np.bool_:
                n_true = int(np.count_nonzero(series.to_numpy()))
                labels_counts = [(False, self.n_rows - n_true), (True, n_true)]
                labels_counts = [(k, c) for k, c in labels_counts if c]
                summary = summarize_categorical(
                    [k for k, _ in labels_counts], [c for _, c in labels_counts], self.n_rows
                )
            elif isinstance(series.dtype, pd.CategoricalDtype):
                codes = series.cat.codes.to_numpy()
                counts = np.bincount(codes[codes >= 0], minlength=len(series.cat.categories))
                present = counts > 0
                summary = summarize_categorical(
                    np.asarray(series.cat.categories)[present], counts[present], self.n_rows
                )
            else:
                vc = series.value_counts(dropna=True, sort=False)
                summary = summarize_categorical(vc.index.tolist(), vc.to_numpy(), self.n_rows)
        assert isinstance(summary, CategoricalSummary)
        return summary

    def summarize(self, name: str, column_type: ColumnType, integer: bool) -> Summary:
        """Summary of one column as the given type."""
        if column_type == "numeric":
            return summarize_numeric(self.numeric(name), integer=integer)
        return self.categorical(name)


def resolve_columns(
    view: TableView,
    columns: Sequence[str] | None,
    numeric_columns: Sequence[str] | None,
    categorical_columns: Sequence[str] | None,
) -> tuple[dict[str, tuple[ColumnType, bool]], dict[str, str]]:
    """Decide each column's type from dtypes and overrides.

    Returns ``({column: (type, is_integer)}, {skipped column: reason})``. Columns listed in
    ``numeric_columns``/``categorical_columns`` are always included with that type; with
    ``columns=None`` every column of a supported dtype is included and the rest are skipped.
    """
    numeric = list(numeric_columns or [])
    categorical = list(categorical_columns or [])
    both = sorted(set(numeric) & set(categorical))
    if both:
        raise DriftInputError(f"columns listed as both numeric and categorical: {both}")
    explicit = columns is not None
    wanted = list(columns) if columns is not None else list(view.columns)
    for name in numeric + categorical:
        if name not in wanted:
            wanted.append(name)
    if len(set(wanted)) != len(wanted):
        raise DriftInputError("the list of columns contains duplicates")
    types: dict[str, tuple[ColumnType, bool]] = {}
    skipped: dict[str, str] = {}
    for name in wanted:
        view.require(name)
        inferred, integer = view.infer_type(name)
        if name in numeric:
            if inferred != "numeric":
                # Let the conversion decide (e.g. decimal strings); it raises clearly if not.
                view.numeric(name)
            types[name] = ("numeric", integer)
        elif name in categorical:
            types[name] = ("categorical", False)
        elif inferred is None:
            reason = f"unsupported type {_type_name(view, name)}"
            if explicit:
                raise DriftInputError(
                    f"column {name!r} has {reason}; list it in numeric_columns or "
                    "categorical_columns, or leave it out"
                )
            skipped[name] = reason
        else:
            types[name] = (inferred, integer)
    return types, skipped


def _type_name(view: TableView, name: str) -> str:
    if view.is_arrow:
        assert isinstance(view.data, pa.Table)
        return str(view.data.schema.field(name).type)
    return str(view._pandas(name).dtype)


# --------------------------------------------------------------------------- profile


@dataclass(eq=False)
class ReferenceProfile:
    """Summary of a reference dataset, enough to run drift detection without the data.

    Build it with :meth:`from_data`, store it with :meth:`to_json` (local path or object-store
    URI) and pass it as ``reference`` to :func:`mlops_provider.core.drift.detect_drift`.

    Attributes:
        n_rows: rows of the reference data.
        columns: column name -> :class:`NumericSummary` or :class:`CategoricalSummary`.
        skipped_columns: columns left out (unsupported dtype) -> reason.
        n_bins: equal-frequency bins (quantiles - 1) kept for numeric columns.
        max_exact_values: numeric columns with at most this many distinct values keep exact
            counts instead of quantiles.
        metadata: free-form JSON-serializable context (e.g. model name and version).
    """

    n_rows: int
    columns: dict[str, Summary]
    skipped_columns: dict[str, str] = field(default_factory=dict)
    n_bins: int = DEFAULT_N_BINS
    max_exact_values: int = DEFAULT_MAX_EXACT_VALUES
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_data(
        cls,
        data: TableLike,
        columns: Sequence[str] | None = None,
        numeric_columns: Sequence[str] | None = None,
        categorical_columns: Sequence[str] | None = None,
        n_bins: int = DEFAULT_N_BINS,
        *,
        max_exact_values: int = DEFAULT_MAX_EXACT_VALUES,
        metadata: Mapping[str, Any] | None = None,
    ) -> ReferenceProfile:
        """Profile a pandas DataFrame or pyarrow Table.

        Args:
            data: the reference data.
            columns: columns to profile (default: every column of a supported dtype).
            numeric_columns: columns to treat as numeric whatever their dtype.
            categorical_columns: columns to treat as categorical whatever their dtype.
            n_bins: equal-frequency bins for numeric columns (``n_bins + 1`` quantiles).
            max_exact_values: keep exact distinct-value counts up to this many values
                (at least 20, so Evidently's per-value binning stays exact).
            metadata: JSON-serializable context stored with the profile.

        Raises:
            DriftInputError: the data is empty, a column is missing or cannot be typed.
        """
        if n_bins < 2:
            raise DriftInputError("n_bins must be at least 2")
        view = TableView(data, "reference")
        if view.n_rows == 0:
            raise DriftInputError("reference data is empty (0 rows): nothing to profile")
        types, skipped = resolve_columns(view, columns, numeric_columns, categorical_columns)
        summaries: dict[str, Summary] = {}
        for name, (column_type, integer) in types.items():
            summary = view.summarize(name, column_type, integer)
            if isinstance(summary, NumericSummary):
                summary = compress_numeric(
                    summary, n_bins=n_bins, max_exact_values=max_exact_values
                )
            summaries[name] = summary
        return cls(
            n_rows=view.n_rows,
            columns=summaries,
            skipped_columns=skipped,
            n_bins=n_bins,
            max_exact_values=max_exact_values,
            metadata=dict(metadata or {}),
        )

    def column_type(self, name: str) -> ColumnType:
        """``"numeric"`` or ``"categorical"``."""
        return self.columns[name].column_type

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable form (see :meth:`from_dict`)."""
        return {
            "format": PROFILE_FORMAT,
            "version": PROFILE_VERSION,
            "n_rows": self.n_rows,
            "n_bins": self.n_bins,
            "max_exact_values": self.max_exact_values,
            "metadata": self.metadata,
            "skipped_columns": dict(self.skipped_columns),
            "columns": {name: s.to_dict() for name, s in self.columns.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        """Rebuild a profile from :meth:`to_dict` output."""
        if data.get("format") != PROFILE_FORMAT:
            raise DriftInputError(
                f"not a reference profile (format {data.get('format')!r}, "
                f"expected {PROFILE_FORMAT!r})"
            )
        if int(data.get("version", 0)) > PROFILE_VERSION:
            raise DriftInputError(
                f"profile version {data['version']} is newer than supported ({PROFILE_VERSION})"
            )
        columns: dict[str, Summary] = {}
        for name, col in data["columns"].items():
            kind = col.get("column_type")
            if kind == "numeric":
                columns[name] = NumericSummary.from_dict(col)
            elif kind == "categorical":
                columns[name] = CategoricalSummary.from_dict(col)
            else:
                raise DriftInputError(f"profile column {name!r} has unknown type {kind!r}")
        return cls(
            n_rows=int(data["n_rows"]),
            columns=columns,
            skipped_columns=dict(data.get("skipped_columns", {})),
            n_bins=int(data.get("n_bins", DEFAULT_N_BINS)),
            max_exact_values=int(data.get("max_exact_values", DEFAULT_MAX_EXACT_VALUES)),
            metadata=dict(data.get("metadata", {})),
        )

    def to_json(
        self, path: str | os.PathLike[str] | None = None, *, conn_id: str | None = None
    ) -> str:
        """Serialize to JSON; with ``path`` also write it there atomically (any dataset URI).

        Returns the JSON text.
        """
        text = json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)
        if path is not None:
            from mlops_provider.core import io

            io.write_text(text, path, conn_id=conn_id)
        return text

    @classmethod
    def from_json(
        cls, path_or_text: str | os.PathLike[str], *, conn_id: str | None = None
    ) -> ReferenceProfile:
        """Load a profile written by :meth:`to_json` (a path/URI, or the JSON text itself)."""
        source = os.fspath(path_or_text)
        if source.lstrip().startswith("{"):
            text = source
        else:
            from mlops_provider.core import io

            text = io.read_text(source, conn_id=conn_id)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise DriftInputError(f"profile {source[:200]!r} is not valid JSON: {err}") from err
        return cls.from_dict(data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ReferenceProfile):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]
