"""Data drift detection: per-column statistical tests and a dataset-level verdict.

:func:`detect_drift` compares a reference dataset (or a :class:`ReferenceProfile` of it) with a
current dataset column by column and calls the dataset drifted when the share of drifted
columns reaches ``drift_share``.

Method selection follows Evidently 0.7's defaults, so verdicts agree with it:

================================  =========================  ==============================
reference (non-null values)       numeric column             categorical column
================================  =========================  ==============================
<= 1000                           ``ks`` (p-value, 0.05)     ``chisquare`` (> 2 categories)
                                                             or ``z`` (<= 2), p-value 0.05
> 1000                            ``wasserstein`` (normed    ``jensenshannon`` (0.1)
                                  by reference std, 0.1)
================================  =========================  ==============================

A numeric column with at most 5 distinct values (reference and current together) is tested as
categorical. Other methods are available by name: ``psi``, ``kl_div``, ``hellinger``, ``linf``
(distances, 0.1) and ``anderson`` (p-value, 0.05). Each method reproduces Evidently's
implementation (``evidently/legacy/calculations/stattests``) including its binning of numeric
columns, its zero filling for PSI/KL and its comparison operators (``ks``: ``p <= threshold``;
other p-values: ``p < threshold``; distances: ``score >= threshold``); ``linf`` is TFDV's
L-infinity distance of frequencies.

Besides the distribution test, a column counts as drifted when its null share changes
materially (two-proportion z-test ``p < 0.05`` and an absolute change of at least 0.05, both
configurable) and when its current values are all missing.

Everything is vectorized with numpy and works column by column on zero-copy views of the
input, so only a couple of column copies are alive at any time. See ``docs/drift.md``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import numpy as np
from scipy import stats
from scipy.spatial import distance

from mlops_provider.core.profile import (
    CategoricalSummary,
    ColumnType,
    DriftInputError,
    NumericSummary,
    ReferenceProfile,
    TableLike,
    TableView,
    resolve_columns,
)

__all__ = [
    "ColumnDrift",
    "DriftInputError",
    "DriftMethod",
    "DriftResult",
    "METHODS",
    "ReferenceProfile",
    "detect_column_drift",
    "detect_drift",
    "render_drift_report",
]

Correction = Literal["bonferroni", "benjamini_hochberg"]

# Evidently's constants (stattests/registry.py and utils.py).
SMALL_REFERENCE_ROWS = 1000
LOW_CARDINALITY_LIMIT = 5
PER_VALUE_BINNING_LIMIT = 20
MIN_NORM = 0.001

REASON_DISTRIBUTION = "distribution"
REASON_NULL_SHARE = "null share"
REASON_CURRENT_EMPTY = "current column has no non-null values"
REASON_REFERENCE_EMPTY = "reference column has no non-null values"

PLOT_BINS = 30
PLOT_CATEGORIES = 20


@dataclass(frozen=True)
class DriftMethod:
    """A drift test: how its score is compared with its threshold and where it applies."""

    name: str
    display_name: str
    kind: Literal["p_value", "distance"]
    default_threshold: float
    numeric: bool
    categorical: bool
    inclusive: bool = False

    def is_drift(self, score: float, threshold: float) -> bool:
        """Distances drift when ``score >= threshold``; p-values when below it."""
        if math.isnan(score):
            return False
        if self.kind == "distance":
            return score >= threshold
        return score <= threshold if self.inclusive else score < threshold


METHODS: dict[str, DriftMethod] = {
    m.name: m
    for m in (
        DriftMethod("ks", "K-S p-value", "p_value", 0.05, True, False, inclusive=True),
        DriftMethod("chisquare", "chi-square p-value", "p_value", 0.05, False, True),
        DriftMethod("z", "Z-test p-value", "p_value", 0.05, False, True),
        DriftMethod("anderson", "Anderson-Darling p-value", "p_value", 0.05, True, False),
        DriftMethod("wasserstein", "Wasserstein distance (normed)", "distance", 0.1, True, False),
        DriftMethod("jensenshannon", "Jensen-Shannon distance", "distance", 0.1, True, True),
        DriftMethod("psi", "PSI", "distance", 0.1, True, True),
        DriftMethod("kl_div", "Kullback-Leibler divergence", "distance", 0.1, True, True),
        DriftMethod("hellinger", "Hellinger distance", "distance", 0.1, True, True),
        DriftMethod("linf", "L-infinity distance", "distance", 0.1, True, True),
    )
}


# --------------------------------------------------------------------------- results


def _jsonable(value: Any) -> Any:
    """Plain-Python, JSON-safe copy (numpy scalars unwrapped, NaN/inf -> None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in value]
    return value


@dataclass
class ColumnDrift:
    """Drift of one column.

    Attributes:
        column: column name.
        column_type: ``"numeric"`` or ``"categorical"`` as tested (a numeric column with at
            most 5 distinct values is tested as categorical).
        method: method name (a key of :data:`METHODS`).
        score: p-value or distance; ``None`` when a side has no non-null values.
        threshold: the threshold the score was compared with.
        drifted: overall verdict (distribution, null share or empty current column).
        distribution_drifted: the verdict of the distribution test alone.
        reasons: why the column counts as drifted (empty when it does not).
        score_adjusted: p-value after the multiple-testing correction, if one was applied.
        null_share_reference, null_share_current: share of missing values on each side.
        null_share_drifted: whether the null share changed materially.
        null_share_p_value: two-proportion z-test p-value of the null shares.
        n_reference, n_current: non-null values compared on each side.
        new_categories: categories seen in current data but not in the reference.
        approximate: the score was computed from a quantile profile, not the raw reference.
        histogram: small distributions for plots: ``{"kind": "numeric", "edges", "reference",
            "current"}`` (shares per bin) or ``{"kind": "categorical", "labels", ...}``.
    """

    column: str
    column_type: ColumnType
    method: str
    score: float | None
    threshold: float
    drifted: bool
    distribution_drifted: bool
    reasons: list[str]
    null_share_reference: float
    null_share_current: float
    null_share_drifted: bool
    n_reference: int
    n_current: int
    new_categories: list[Any] = field(default_factory=list)
    score_adjusted: float | None = None
    null_share_p_value: float | None = None
    approximate: bool = False
    histogram: dict[str, Any] | None = None

    @property
    def method_display(self) -> str:
        """Human-readable method name."""
        return METHODS[self.method].display_name

    @property
    def method_kind(self) -> str:
        """``"p_value"`` or ``"distance"``."""
        return METHODS[self.method].kind

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable form."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["method_display"] = self.method_display
        out["method_kind"] = self.method_kind
        return dict(_jsonable(out))


@dataclass
class DriftResult:
    """Result of :func:`detect_drift`.

    Attributes:
        dataset_drift: ``drift_share >= share_threshold``.
        drift_share: share of the compared columns that drifted.
        n_drifted: number of drifted columns.
        n_columns: number of compared columns.
        share_threshold: the ``drift_share`` parameter.
        columns: per-column results, in comparison order.
        correction: multiple-testing correction applied to p-value tests, if any.
        n_reference_rows, n_current_rows: rows on each side.
        reference_is_profile: the reference was a :class:`ReferenceProfile`.
        skipped_columns: columns left out (unsupported dtype) -> reason.
    """

    dataset_drift: bool
    drift_share: float
    n_drifted: int
    n_columns: int
    share_threshold: float
    columns: dict[str, ColumnDrift]
    correction: str | None = None
    n_reference_rows: int = 0
    n_current_rows: int = 0
    reference_is_profile: bool = False
    skipped_columns: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_columns(
        cls, columns: dict[str, ColumnDrift], *, share_threshold: float, **details: Any
    ) -> DriftResult:
        """The dataset verdict from per-column results: drifted when the share of drifted
        columns reaches ``share_threshold``."""
        n_drifted = sum(1 for c in columns.values() if c.drifted)
        share = n_drifted / len(columns)
        return cls(
            dataset_drift=share >= share_threshold,
            drift_share=share,
            n_drifted=n_drifted,
            n_columns=len(columns),
            share_threshold=share_threshold,
            columns=columns,
            **details,
        )

    @property
    def drifted_columns(self) -> list[str]:
        """Names of the drifted columns."""
        return [name for name, col in self.columns.items() if col.drifted]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable form (no numpy types, NaN as ``None``)."""
        return {
            "dataset_drift": bool(self.dataset_drift),
            "drift_share": float(self.drift_share),
            "n_drifted": int(self.n_drifted),
            "n_columns": int(self.n_columns),
            "share_threshold": float(self.share_threshold),
            "drifted_columns": self.drifted_columns,
            "correction": self.correction,
            "n_reference_rows": int(self.n_reference_rows),
            "n_current_rows": int(self.n_current_rows),
            "reference_is_profile": bool(self.reference_is_profile),
            "skipped_columns": dict(self.skipped_columns),
            "columns": {name: col.to_dict() for name, col in self.columns.items()},
        }

    def summary(self) -> dict[str, Any]:
        """A small summary (for XCom): verdict, share, drifted columns and their methods."""
        return {
            "dataset_drift": bool(self.dataset_drift),
            "drift_share": round(float(self.drift_share), 6),
            "n_drifted": int(self.n_drifted),
            "n_columns": int(self.n_columns),
            "drifted_columns": self.drifted_columns,
        }


# --------------------------------------------------------------------------- statistics


def _wasserstein_sorted(a: np.ndarray, b: np.ndarray) -> float:
    """First Wasserstein distance of two sorted samples (equals scipy's, in O(n) memory)."""
    if a.size == b.size:
        diff = a - b
        np.abs(diff, out=diff)
        return float(diff.mean())
    # Merge both samples; the two empirical CDFs are running counts along the merge.
    merged = np.concatenate((a, b))
    order = np.argsort(merged, kind="stable")
    merged = merged[order]
    cum_a = np.cumsum(order < a.size)[:-1]
    del order
    cum_b = np.arange(1, merged.size, dtype=np.int64) - cum_a
    gaps = np.diff(merged)
    del merged
    return float(np.sum(np.abs(cum_a / a.size - cum_b / b.size) * gaps))


def wasserstein_normed(ref: NumericSummary, cur: NumericSummary) -> float:
    """Wasserstein distance divided by the reference std (floored at 0.001, as Evidently).

    With a quantile profile the reference quantile function is interpolated linearly and the
    distance is integrated at the midpoints of the current sample's steps.
    """
    norm = max(ref.std, MIN_NORM)
    b = cur.sample()
    if ref.is_exact:
        return _wasserstein_sorted(ref.sample(), b) / norm
    q = ref.quantile((np.arange(b.size, dtype=np.float64) + 0.5) / b.size)
    q -= b
    np.abs(q, out=q)
    return float(q.mean()) / norm


def ks_p_value(ref: NumericSummary, cur: NumericSummary) -> float:
    """Two-sample Kolmogorov-Smirnov p-value (``scipy.stats.ks_2samp``).

    With a quantile profile the statistic is ``sup |F_ref - F_cur|`` against the interpolated
    reference CDF and the p-value is the asymptotic two-sample one (Kolmogorov distribution
    with ``n*m/(n+m)``), which is what ``ks_2samp`` uses for large samples.
    """
    b = cur.sample()
    if ref.is_exact:
        return float(stats.ks_2samp(ref.sample(), b).pvalue)
    values, counts = cur.distinct()
    m, n = b.size, ref.n_valid
    at = np.cumsum(counts) / m
    before = at - counts / m
    f_ref = ref.cdf(values)
    d = float(max(np.max(at - f_ref), np.max(f_ref - before)))
    return float(stats.kstwo.sf(d, np.round(n * m / (n + m))))


def anderson_p_value(ref: NumericSummary, cur: NumericSummary) -> float:
    """k-sample Anderson-Darling p-value (``scipy.stats.anderson_ksamp``, midrank variant).

    SciPy caps the p-value to [0.001, 0.25]. With a quantile profile the reference sample is
    reconstructed as its quantile function at ``(i + 0.5) / n`` for its ``n`` values.
    """
    b = cur.sample()
    if ref.is_exact:
        a = ref.sample()
    else:
        a = ref.quantile((np.arange(ref.n_valid, dtype=np.float64) + 0.5) / ref.n_valid)
    if a[0] == a[-1] == b[0] == b[-1]:
        return 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            res = stats.anderson_ksamp([a, b], variant="midrank")
        except TypeError:  # SciPy < 1.17 has no `variant`
            res = stats.anderson_ksamp([a, b], midrank=True)
    return float(res.pvalue)


def _sturges_edges(lo: float, hi: float, n: int, integer: bool) -> np.ndarray:
    """``np.histogram_bin_edges(data, bins="sturges")`` from the data's min, max and size."""
    first, last = float(lo), float(hi)
    if first == last:
        first, last = first - 0.5, last + 0.5
    width = (hi - lo) / (np.log2(n) + 1.0)
    if width:
        if integer and width < 1:
            width = 1.0
        n_bins = int(np.ceil((last - first) / width))
    else:
        n_bins = 1
    return np.linspace(first, last, n_bins + 1, endpoint=True)


def _union(
    ref: CategoricalSummary, cur: CategoricalSummary
) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """Union of categories (reference order first) and both count vectors aligned to it."""
    index: dict[Any, int] = {}
    for label in ref.labels:
        index.setdefault(label, len(index))
    for label in cur.labels:
        index.setdefault(label, len(index))
    r = np.zeros(len(index), dtype=np.float64)
    c = np.zeros(len(index), dtype=np.float64)
    np.add.at(r, [index[k] for k in ref.labels], ref.counts)
    np.add.at(c, [index[k] for k in cur.labels], cur.counts)
    return list(index), r, c


def as_categorical(summary: NumericSummary) -> CategoricalSummary:
    """A numeric column's distinct values as categories (exact summaries only)."""
    _, counts = summary.distinct()
    return CategoricalSummary(summary.n_rows, summary.n_null, summary.labels(), counts)


def _shares(
    ref: NumericSummary | CategoricalSummary, cur: NumericSummary | CategoricalSummary
) -> tuple[np.ndarray, np.ndarray]:
    """Reference and current value shares per bin, as Evidently's ``get_binned_data``.

    Categorical: per category over the union of categories. Numeric with more than 20
    distinct reference values: ``np.histogram`` on Sturges edges over both samples. Numeric
    with fewer: per distinct value.
    """
    if isinstance(ref, NumericSummary) and isinstance(cur, NumericSummary):
        if ref.n_unique > PER_VALUE_BINNING_LIMIT or not ref.is_exact:
            edges = _sturges_edges(
                min(ref.min, cur.min),
                max(ref.max, cur.max),
                ref.n_valid + cur.n_valid,
                ref.integer and cur.integer,
            )
            return ref.bin_shares(edges), cur.bin_shares(edges)
        ref, cur = as_categorical(ref), as_categorical(cur)
    assert isinstance(ref, CategoricalSummary) and isinstance(cur, CategoricalSummary)
    _, r, c = _union(ref, cur)
    return r / ref.n_valid, c / cur.n_valid


def _fill_zeros(p: np.ndarray) -> np.ndarray:
    """Evidently's ``feel_zeroes``: empty bins get a small share so logs stay finite."""
    p = p.copy()
    nonzero = p[p != 0]
    if nonzero.size:
        low = float(nonzero.min())
        p[p == 0] = low / 10**6 if low <= 0.0001 else 0.0001
    return p


def psi(r: np.ndarray, c: np.ndarray) -> float:
    """Population stability index of two share vectors (zeros filled as Evidently)."""
    r, c = _fill_zeros(r), _fill_zeros(c)
    return float(np.sum((r - c) * np.log(r / c)))


def kl_divergence(r: np.ndarray, c: np.ndarray) -> float:
    """Kullback-Leibler divergence KL(reference || current) (zeros filled as Evidently)."""
    return float(stats.entropy(_fill_zeros(r), _fill_zeros(c)))


def jensen_shannon(r: np.ndarray, c: np.ndarray) -> float:
    """Jensen-Shannon distance (natural log), ``scipy.spatial.distance.jensenshannon``."""
    return float(distance.jensenshannon(r, c))


def hellinger_shares(r: np.ndarray, c: np.ndarray) -> float:
    """Hellinger distance ``sqrt(1 - sum(sqrt(r * c)))`` of two share vectors."""
    return math.sqrt(1.0 - float(np.clip(np.sum(np.sqrt(r * c)), 0.0, 1.0)))


def linf(r: np.ndarray, c: np.ndarray) -> float:
    """L-infinity distance of two share vectors (TFDV's categorical drift measure)."""
    return float(np.max(np.abs(r - c))) if r.size else 0.0


def hellinger(
    ref: NumericSummary | CategoricalSummary, cur: NumericSummary | CategoricalSummary
) -> float:
    """Hellinger distance as Evidently computes it.

    Categorical: over the union of categories. Numeric: over Sturges bins whose count is
    derived from the number of distinct values of both samples together (estimated as the
    sum of both counts when the reference is a quantile profile).
    """
    if isinstance(ref, NumericSummary) and isinstance(cur, NumericSummary):
        if ref.is_exact:
            a, _ = ref.distinct()
            b, _ = cur.distinct()
            pos = np.minimum(np.searchsorted(a, b), max(a.size - 1, 0))
            shared = int(np.count_nonzero(a[pos] == b)) if a.size else 0
            n_keys = a.size + b.size - shared
        else:
            n_keys = ref.n_unique + cur.n_unique
        edges = _sturges_edges(
            min(ref.min, cur.min), max(ref.max, cur.max), n_keys, ref.integer and cur.integer
        )
        return hellinger_shares(ref.bin_shares(edges), cur.bin_shares(edges))
    return hellinger_shares(*_shares(ref, cur))


def chisquare_p_value(ref: CategoricalSummary, cur: CategoricalSummary) -> float:
    """Chi-square p-value of current counts against reference shares scaled to current size."""
    keys, r, c = _union(ref, cur)
    if len(keys) < 2:
        return 1.0
    expected = r * (cur.n_valid / ref.n_valid)
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.chisquare(c, expected).pvalue)


def _sort_labels(labels: list[Any]) -> list[Any]:
    try:
        return sorted(labels)
    except TypeError:
        return sorted(labels, key=lambda x: (type(x).__name__, str(x)))


def two_proportion_p_value(x1: float, n1: float, x2: float, n2: float) -> float:
    """Two-sided p-value of the pooled two-proportion z-test of ``x1/n1`` vs ``x2/n2``."""
    if n1 <= 0 or n2 <= 0:
        return 1.0
    p1, p2 = x1 / n1, x2 / n2
    pooled = (x1 + x2) / (n1 + n2)
    var = pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2)
    if var <= 0:
        return 1.0 if p1 == p2 else 0.0
    return float(2 * stats.norm.sf(abs(p1 - p2) / math.sqrt(var)))


def z_p_value(ref: CategoricalSummary, cur: CategoricalSummary) -> float:
    """Two-proportion z-test p-value of the first (sorted) category's share, as Evidently."""
    keys, r, c = _union(ref, cur)
    if len(ref.labels) == 1 and len(cur.labels) == 1 and ref.labels[0] == cur.labels[0]:
        return 1.0
    first = _sort_labels(keys)[0]
    i = keys.index(first)
    n1, n2 = ref.n_valid, cur.n_valid
    return two_proportion_p_value(n1 - r[i], n1, n2 - c[i], n2)


def _score(
    method: str,
    ref: NumericSummary | CategoricalSummary,
    cur: NumericSummary | CategoricalSummary,
) -> float:
    if method in ("ks", "wasserstein", "anderson"):
        assert isinstance(ref, NumericSummary) and isinstance(cur, NumericSummary)
        if method == "ks":
            return ks_p_value(ref, cur)
        if method == "wasserstein":
            return wasserstein_normed(ref, cur)
        return anderson_p_value(ref, cur)
    if method in ("chisquare", "z"):
        if isinstance(ref, NumericSummary):
            ref = as_categorical(ref)
        if isinstance(cur, NumericSummary):
            cur = as_categorical(cur)
        return chisquare_p_value(ref, cur) if method == "chisquare" else z_p_value(ref, cur)
    if method == "hellinger":
        return hellinger(ref, cur)
    r, c = _shares(ref, cur)
    if method == "psi":
        return psi(r, c)
    if method == "kl_div":
        return kl_divergence(r, c)
    if method == "jensenshannon":
        return jensen_shannon(r, c)
    if method == "linf":
        return linf(r, c)
    raise DriftInputError(f"unknown drift method {method!r}")


# --------------------------------------------------------------------------- plots data


def _numeric_histogram(ref: NumericSummary, cur: NumericSummary) -> dict[str, Any]:
    """Shares per bin on shared edges spanning the 0.1%-99.9% quantiles (tails folded in)."""
    probs = np.array([0.001, 0.999])
    parts = [s.quantile(probs) for s in (ref, cur) if s.n_valid]
    lo = min(float(p[0]) for p in parts)
    hi = max(float(p[1]) for p in parts)
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, PLOT_BINS + 1)

    def shares(s: NumericSummary) -> list[float]:
        if not s.n_valid:
            return [0.0] * PLOT_BINS
        below = s.share_below(edges)
        below[0], below[-1] = 0.0, 1.0
        return [float(x) for x in np.diff(below)]

    return {
        "kind": "numeric",
        "edges": [float(e) for e in edges],
        "reference": shares(ref),
        "current": shares(cur),
    }


def _categorical_histogram(ref: CategoricalSummary, cur: CategoricalSummary) -> dict[str, Any]:
    """Shares of the most frequent categories; the rest are summed as ``(other)``."""
    keys, r, c = _union(ref, cur)
    r = r / max(ref.n_valid, 1)
    c = c / max(cur.n_valid, 1)
    order = np.argsort(-np.maximum(r, c), kind="stable")
    top = order[:PLOT_CATEGORIES]
    if all(isinstance(k, (int, float)) and not isinstance(k, bool) for k in keys):
        top = top[np.argsort([keys[i] for i in top], kind="stable")]  # numbers in value order
    labels = [str(keys[i]) for i in top]
    ref_shares = [float(r[i]) for i in top]
    cur_shares = [float(c[i]) for i in top]
    if order.size > PLOT_CATEGORIES:
        rest = order[PLOT_CATEGORIES:]
        labels.append("(other)")
        ref_shares.append(float(r[rest].sum()))
        cur_shares.append(float(c[rest].sum()))
    return {"kind": "categorical", "labels": labels, "reference": ref_shares, "current": cur_shares}


# --------------------------------------------------------------------------- detection


@dataclass
class _Settings:
    method: str | None
    threshold: float | None
    per_column_method: Mapping[str, str]
    per_column_threshold: Mapping[str, float]
    numeric_method: str | None
    categorical_method: str | None
    numeric_threshold: float | None
    categorical_threshold: float | None
    null_share_alpha: float
    null_share_min_change: float | None
    low_cardinality_limit: int
    keep_histograms: bool

    def method_for(self, column: str, column_type: ColumnType) -> str | None:
        typed = self.numeric_method if column_type == "numeric" else self.categorical_method
        chosen = self.per_column_method.get(column) or typed or self.method
        return chosen

    def threshold_for(self, column: str, column_type: ColumnType, method: DriftMethod) -> float:
        if column in self.per_column_threshold:
            return float(self.per_column_threshold[column])
        typed = self.numeric_threshold if column_type == "numeric" else self.categorical_threshold
        if typed is not None:
            return float(typed)
        if self.threshold is not None:
            return float(self.threshold)
        return method.default_threshold

    def check(self, drift_share: float, correction: str | None) -> None:
        """Refuse invalid parameters before any data is read."""
        if not 0.0 <= drift_share <= 1.0:
            raise DriftInputError(f"drift_share must be within [0, 1], got {drift_share!r}")
        if correction not in (None, "bonferroni", "benjamini_hochberg"):
            raise DriftInputError(
                f"correction must be None, 'bonferroni' or 'benjamini_hochberg', got {correction!r}"
            )
        for label, value in (
            ("threshold", self.threshold),
            ("numeric_threshold", self.numeric_threshold),
            ("categorical_threshold", self.categorical_threshold),
            *((f"per_column_threshold[{k!r}]", v) for k, v in self.per_column_threshold.items()),
        ):
            _validate_threshold(label, value)
        for name in (
            self.method,
            self.numeric_method,
            self.categorical_method,
            *self.per_column_method.values(),
        ):
            if name is not None:
                _check_method(name)


def _check_method(name: str) -> DriftMethod:
    try:
        return METHODS[name]
    except KeyError:
        raise DriftInputError(
            f"unknown drift method {name!r}; available: {', '.join(METHODS)}"
        ) from None


def auto_method(column_type: ColumnType, n_reference: int, n_values: int) -> str:
    """Evidently 0.7's default method for a column (see the module docstring)."""
    if n_reference <= SMALL_REFERENCE_ROWS:
        if column_type == "categorical":
            return "chisquare" if n_values > 2 else "z"
        return "ks"
    return "jensenshannon" if column_type == "categorical" else "wasserstein"


def _n_values_and_type(
    declared: ColumnType,
    ref: NumericSummary | CategoricalSummary,
    cur: NumericSummary | CategoricalSummary,
    limit: int,
) -> tuple[ColumnType, int]:
    """Tested type and the number of distinct values of both sides together."""
    if isinstance(ref, CategoricalSummary) and isinstance(cur, CategoricalSummary):
        return "categorical", len(set(ref.labels) | set(cur.labels))
    assert isinstance(ref, NumericSummary) and isinstance(cur, NumericSummary)
    if ref.n_unique <= limit and cur.n_unique <= limit and ref.is_exact:
        n_values = len(np.union1d(ref.distinct()[0], cur.distinct()[0]))
        if n_values <= limit:
            return "categorical", n_values
        return declared, n_values
    return declared, max(ref.n_unique, cur.n_unique)


def _tested_method(
    name: str,
    declared: ColumnType,
    column_type: ColumnType,
    n_values: int,
    n_reference: int,
    settings: _Settings,
) -> DriftMethod:
    """The method a column is tested with (settings, else the automatic choice), checked
    against the column's type."""
    chosen = settings.method_for(name, column_type)
    if chosen is None:
        chosen = auto_method(column_type, n_reference, n_values)
    method = _check_method(chosen)
    if column_type == "categorical" and declared == "categorical" and not method.categorical:
        raise DriftInputError(
            f"method {method.name!r} applies to numeric columns; column {name!r} is categorical"
        )
    if column_type == "numeric" and not method.numeric:
        raise DriftInputError(
            f"method {method.name!r} applies to categorical columns; column {name!r} is numeric "
            "(list it in categorical_columns to test it per value)"
        )
    return method


def _null_share(
    ref: NumericSummary | CategoricalSummary,
    cur: NumericSummary | CategoricalSummary,
    settings: _Settings,
) -> tuple[float, float, float, bool]:
    """``(reference share, current share, z-test p-value, drifted)`` of missing values."""
    null_ref = ref.n_null / ref.n_rows if ref.n_rows else 0.0
    null_cur = cur.n_null / cur.n_rows if cur.n_rows else 0.0
    null_p = two_proportion_p_value(ref.n_null, ref.n_rows, cur.n_null, cur.n_rows)
    null_drifted = (
        settings.null_share_min_change is not None
        and null_p < settings.null_share_alpha
        and abs(null_cur - null_ref) >= settings.null_share_min_change
    )
    return null_ref, null_cur, null_p, bool(null_drifted)


def _categories_and_histogram(
    ref: NumericSummary | CategoricalSummary,
    cur: NumericSummary | CategoricalSummary,
    ref_c: NumericSummary | CategoricalSummary,
    cur_c: NumericSummary | CategoricalSummary,
    keep_histograms: bool,
) -> tuple[list[Any], dict[str, Any] | None]:
    """New categories of the current data and the small distribution kept for plots."""
    if isinstance(ref_c, CategoricalSummary) and isinstance(cur_c, CategoricalSummary):
        known = set(ref_c.labels)
        new_categories = [k for k in cur_c.labels if k not in known]
        return new_categories, _categorical_histogram(ref_c, cur_c) if keep_histograms else None
    if keep_histograms and (ref.n_valid or cur.n_valid):
        assert isinstance(ref, NumericSummary) and isinstance(cur, NumericSummary)
        return [], _numeric_histogram(ref, cur)
    return [], None


def _compare(
    name: str,
    declared: ColumnType,
    ref: NumericSummary | CategoricalSummary,
    cur: NumericSummary | CategoricalSummary,
    settings: _Settings,
) -> ColumnDrift:
    column_type, n_values = _n_values_and_type(declared, ref, cur, settings.low_cardinality_limit)
    method = _tested_method(name, declared, column_type, n_values, ref.n_valid, settings)
    threshold = settings.threshold_for(name, column_type, method)

    # Categorical view of the data for categorical tests and plots.
    ref_c: NumericSummary | CategoricalSummary = ref
    cur_c: NumericSummary | CategoricalSummary = cur
    if column_type == "categorical" and isinstance(ref, NumericSummary):
        assert isinstance(cur, NumericSummary)
        ref_c, cur_c = as_categorical(ref), as_categorical(cur)

    reasons: list[str] = []
    score: float | None = None
    distribution_drifted = False
    if ref.n_valid and cur.n_valid:
        use_numeric = method.name in ("ks", "wasserstein", "anderson") or (column_type == "numeric")
        score = _score(method.name, ref if use_numeric else ref_c, cur if use_numeric else cur_c)
        distribution_drifted = method.is_drift(score, threshold)
        if distribution_drifted:
            reasons.append(REASON_DISTRIBUTION)
    elif cur.n_valid == 0 and ref.n_valid:
        reasons.append(REASON_CURRENT_EMPTY)
    elif ref.n_valid == 0 and cur.n_valid:
        reasons.append(REASON_REFERENCE_EMPTY)

    null_ref, null_cur, null_p, null_drifted = _null_share(ref, cur, settings)
    if null_drifted:
        reasons.append(REASON_NULL_SHARE)
    new_categories, histogram = _categories_and_histogram(
        ref, cur, ref_c, cur_c, settings.keep_histograms
    )
    return ColumnDrift(
        column=name,
        column_type=column_type,
        method=method.name,
        score=score,
        threshold=threshold,
        drifted=bool(reasons),
        distribution_drifted=distribution_drifted,
        reasons=reasons,
        null_share_reference=null_ref,
        null_share_current=null_cur,
        null_share_drifted=null_drifted,
        null_share_p_value=null_p,
        n_reference=ref.n_valid,
        n_current=cur.n_valid,
        new_categories=new_categories,
        approximate=isinstance(ref, NumericSummary) and not ref.is_exact,
        histogram=histogram,
    )


def _apply_correction(columns: dict[str, ColumnDrift], correction: str | None) -> None:
    if correction is None:
        return
    family = [
        c for c in columns.values() if c.score is not None and METHODS[c.method].kind == "p_value"
    ]
    if not family:
        return
    p = np.array([c.score for c in family], dtype=np.float64)
    if correction == "bonferroni":
        adjusted = np.minimum(p * p.size, 1.0)
    else:
        adjusted = stats.false_discovery_control(p, method="bh")
    for col, adj in zip(family, adjusted):
        col.score_adjusted = float(adj)
        was = col.distribution_drifted
        col.distribution_drifted = METHODS[col.method].is_drift(float(adj), col.threshold)
        if was and not col.distribution_drifted:
            col.reasons.remove(REASON_DISTRIBUTION)
        elif col.distribution_drifted and not was:
            col.reasons.insert(0, REASON_DISTRIBUTION)
        col.drifted = bool(col.reasons)


def _validate_threshold(name: str, value: float | None) -> None:
    if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value)):
        raise DriftInputError(f"{name} must be a finite number, got {value!r}")


ColumnTypes: TypeAlias = dict[str, tuple[ColumnType, bool]]


def _profile_columns(
    profile: ReferenceProfile,
    columns: Sequence[str] | None,
    numeric_columns: Sequence[str] | None,
    categorical_columns: Sequence[str] | None,
) -> tuple[ColumnTypes, dict[str, str]]:
    """Columns compared against a profile, with their types, and the skipped ones."""
    if profile.n_rows == 0:
        raise DriftInputError("reference profile is empty (0 rows)")
    names = list(columns) if columns is not None else list(profile.columns)
    for forced, kind in ((numeric_columns, "numeric"), (categorical_columns, "categorical")):
        for col in forced or []:
            if col not in names:
                names.append(col)
            if col in profile.columns and profile.column_type(col) != kind:
                raise DriftInputError(
                    f"column {col!r} is {profile.column_type(col)} in the reference "
                    f"profile, not {kind}"
                )
    missing = [c for c in names if c not in profile.columns]
    if missing:
        raise DriftInputError(
            f"column(s) {missing} are not in the reference profile "
            f"(it has: {', '.join(profile.columns)})"
        )
    types: ColumnTypes = {
        c: (profile.column_type(c), getattr(profile.columns[c], "integer", False)) for c in names
    }
    skipped = dict(profile.skipped_columns) if columns is None else {}
    return types, skipped


def _reference_columns(
    reference: TableLike | ReferenceProfile,
    columns: Sequence[str] | None,
    numeric_columns: Sequence[str] | None,
    categorical_columns: Sequence[str] | None,
) -> tuple[TableView | None, ColumnTypes, dict[str, str], int]:
    """``(view of the reference data or None for a profile, column types, skipped columns,
    reference rows)``."""
    if isinstance(reference, ReferenceProfile):
        types, skipped = _profile_columns(reference, columns, numeric_columns, categorical_columns)
        return None, types, skipped, reference.n_rows
    ref_view = TableView(reference, "reference")
    if ref_view.n_rows == 0:
        raise DriftInputError("reference data is empty (0 rows): nothing to compare with")
    types, skipped = resolve_columns(ref_view, columns, numeric_columns, categorical_columns)
    return ref_view, types, skipped, ref_view.n_rows


def _compare_columns(
    reference: TableLike | ReferenceProfile,
    ref_view: TableView | None,
    cur_view: TableView,
    types: ColumnTypes,
    settings: _Settings,
) -> dict[str, ColumnDrift]:
    if not types:
        raise DriftInputError("no columns to compare")
    for name in types:
        cur_view.require(name)
    results: dict[str, ColumnDrift] = {}
    for name, (column_type, integer) in types.items():
        # One column at a time: its converted/sorted copies are released before the next.
        if isinstance(reference, ReferenceProfile):
            ref_summary = reference.columns[name]
        else:
            assert ref_view is not None
            ref_summary = ref_view.summarize(name, column_type, integer)
        cur_summary = cur_view.summarize(name, column_type, integer)
        if isinstance(cur_summary, NumericSummary) and isinstance(ref_summary, NumericSummary):
            cur_summary.integer = cur_summary.integer and ref_summary.integer
        results[name] = _compare(name, column_type, ref_summary, cur_summary, settings)
        del ref_summary, cur_summary
    return results


def detect_drift(
    reference: TableLike | ReferenceProfile,
    current: TableLike,
    *,
    columns: Sequence[str] | None = None,
    method: str | None = None,
    threshold: float | None = None,
    per_column_method: Mapping[str, str] | None = None,
    per_column_threshold: Mapping[str, float] | None = None,
    drift_share: float = 0.5,
    numeric_method: str | None = None,
    categorical_method: str | None = None,
    numeric_threshold: float | None = None,
    categorical_threshold: float | None = None,
    numeric_columns: Sequence[str] | None = None,
    categorical_columns: Sequence[str] | None = None,
    correction: Correction | None = None,
    null_share_alpha: float = 0.05,
    null_share_min_change: float | None = 0.05,
    low_cardinality_limit: int = LOW_CARDINALITY_LIMIT,
    keep_histograms: bool = True,
) -> DriftResult:
    """Compare ``current`` with ``reference`` column by column.

    Args:
        reference: pandas DataFrame, pyarrow Table or :class:`ReferenceProfile`.
        current: pandas DataFrame or pyarrow Table.
        columns: columns to compare (default: every reference/profile column of a supported
            dtype; datetimes and nested types are skipped and listed in the result).
        method, numeric_method, categorical_method, per_column_method: the test of a column;
            per column wins over per tested type, which wins over ``method`` (all columns);
            default: Evidently's automatic choice.
        threshold, numeric_threshold, categorical_threshold, per_column_threshold: the same
            precedence; default: the method's own threshold.
        drift_share: the dataset drifts when ``n_drifted / n_columns >= drift_share``.
        numeric_columns, categorical_columns: force a column's type instead of inferring it
            from the dtype (bool/string/object/category are categorical, numbers numeric).
        correction: ``"bonferroni"`` or ``"benjamini_hochberg"`` corrects the p-values of
            p-value tests for their number; verdicts use the adjusted p-values.
        null_share_alpha, null_share_min_change: the null-share z-test's significance and the
            smallest change of the null share that counts as drift (``None``: no check).
        low_cardinality_limit: numeric columns with at most this many distinct values (both
            sides together) are tested as categorical; 0 disables it.
        keep_histograms: keep small per-column distributions for plots.

    Raises:
        DriftInputError: empty data, a missing column, a bad method or another bad parameter.
    """
    settings = _Settings(
        method,
        threshold,
        dict(per_column_method or {}),
        dict(per_column_threshold or {}),
        numeric_method,
        categorical_method,
        numeric_threshold,
        categorical_threshold,
        null_share_alpha,
        null_share_min_change,
        low_cardinality_limit,
        keep_histograms,
    )
    settings.check(drift_share, correction)
    cur_view = TableView(current, "current")
    if cur_view.n_rows == 0:
        raise DriftInputError("current data is empty (0 rows): nothing to compare")
    ref_view, types, skipped, n_reference_rows = _reference_columns(
        reference, columns, numeric_columns, categorical_columns
    )
    results = _compare_columns(reference, ref_view, cur_view, types, settings)
    _apply_correction(results, correction)
    return DriftResult.from_columns(
        results,
        share_threshold=drift_share,
        correction=correction,
        n_reference_rows=n_reference_rows,
        n_current_rows=cur_view.n_rows,
        reference_is_profile=isinstance(reference, ReferenceProfile),
        skipped_columns=skipped,
    )


def detect_column_drift(
    reference: TableLike | ReferenceProfile,
    current: TableLike,
    column: str,
    *,
    column_type: ColumnType | None = None,
    method: str | None = None,
    threshold: float | None = None,
    **options: Any,
) -> ColumnDrift:
    """Drift of a single column, e.g. a model's prediction score or the target.

    ``column_type`` forces ``"numeric"`` or ``"categorical"``; other keyword arguments are
    those of :func:`detect_drift`.
    """
    result = detect_drift(
        reference,
        current,
        columns=[column],
        method=method,
        threshold=threshold,
        numeric_columns=[column] if column_type == "numeric" else None,
        categorical_columns=[column] if column_type == "categorical" else None,
        **options,
    )
    return result.columns[column]


def render_drift_report(
    result: DriftResult,
    path: Any = None,
    *,
    title: str = "Data drift report",
    reference_label: str = "reference",
    current_label: str = "current",
    conn_id: str | None = None,
) -> str:
    """Render ``result`` as a self-contained HTML page; see :mod:`.drift_report`."""
    from mlops_provider.core.drift_report import render_drift_report as _render

    return _render(
        result,
        path,
        title=title,
        reference_label=reference_label,
        current_label=current_label,
        conn_id=conn_id,
    )
