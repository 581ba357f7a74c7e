"""Drift detection core: each method against SciPy or hand computation, selection rules, edge cases."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats
from scipy.spatial import distance

from mlops_provider.core.drift import (
    METHODS,
    DriftInputError,
    DriftResult,
    detect_column_drift,
    detect_drift,
    render_drift_report,
)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _score(result: DriftResult, column: str) -> float:
    score = result.columns[column].score
    assert score is not None
    return score


# --------------------------------------------------------------------------- methods


def test_ks_p_value_equals_scipy_ks_2samp() -> None:
    rng = _rng(1)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 400)})
    cur = pd.DataFrame({"x": rng.normal(0.1, 1, 300)})
    result = detect_drift(ref, cur)
    col = result.columns["x"]
    assert col.method == "ks"
    assert col.score == pytest.approx(stats.ks_2samp(ref.x, cur.x).pvalue, rel=1e-12)


@pytest.mark.parametrize("n_current", [3000, 1700])
def test_wasserstein_equals_scipy_divided_by_reference_std(n_current: int) -> None:
    rng = _rng(2)
    ref = pd.DataFrame({"x": rng.gamma(2.0, 3.0, 3000)})
    cur = pd.DataFrame({"x": rng.gamma(2.2, 3.0, n_current)})
    result = detect_drift(ref, cur)
    expected = stats.wasserstein_distance(ref.x, cur.x) / np.std(ref.x)
    assert result.columns["x"].method == "wasserstein"
    assert _score(result, "x") == pytest.approx(expected, rel=1e-9)


def test_jensenshannon_equals_scipy_on_hand_frequencies() -> None:
    ref = pd.DataFrame({"c": ["a"] * 600 + ["b"] * 360 + ["c"] * 240})  # .5 .3 .2
    cur = pd.DataFrame({"c": ["a"] * 480 + ["b"] * 360 + ["c"] * 120 + ["d"] * 240})  # .4 .3 .1 .2
    result = detect_drift(ref, cur)
    col = result.columns["c"]
    assert col.method == "jensenshannon"
    expected = distance.jensenshannon([0.5, 0.3, 0.2, 0.0], [0.4, 0.3, 0.1, 0.2])
    assert col.score == pytest.approx(expected, rel=1e-12)
    assert col.new_categories == ["d"]


def test_chisquare_uses_reference_shares_scaled_to_current_size() -> None:
    ref = pd.DataFrame({"c": ["a"] * 250 + ["b"] * 150 + ["c"] * 100})
    cur = pd.DataFrame({"c": ["a"] * 120 + ["b"] * 100 + ["c"] * 80})
    col = detect_drift(ref, cur).columns["c"]
    assert col.method == "chisquare"
    expected = stats.chisquare([120, 100, 80], np.array([250, 150, 100]) * 300 / 500).pvalue
    assert col.score == pytest.approx(expected, rel=1e-12)


def test_z_test_matches_hand_computed_two_proportion_test() -> None:
    ref = pd.DataFrame({"c": ["no"] * 240 + ["yes"] * 160})  # 0.4 "yes"
    cur = pd.DataFrame({"c": ["no"] * 150 + ["yes"] * 150})  # 0.5 "yes"
    col = detect_drift(ref, cur).columns["c"]
    assert col.method == "z"
    p1, p2, n1, n2 = 160 / 400, 150 / 300, 400, 300
    pooled = (160 + 150) / 700
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    assert col.score == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)
    assert col.drifted is (col.score < 0.05)


def _two_category_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    ref = pd.DataFrame({"c": ["a"] * 1000 + ["b"] * 1000})  # .5 .5
    cur = pd.DataFrame({"c": ["a"] * 1200 + ["b"] * 800})  # .6 .4
    return ref, cur


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        ("psi", (0.5 - 0.6) * math.log(0.5 / 0.6) + (0.5 - 0.4) * math.log(0.5 / 0.4)),
        ("kl_div", 0.5 * math.log(0.5 / 0.6) + 0.5 * math.log(0.5 / 0.4)),
        ("hellinger", math.sqrt(1 - (math.sqrt(0.5 * 0.6) + math.sqrt(0.5 * 0.4)))),
        ("linf", 0.1),
        ("jensenshannon", distance.jensenshannon([0.5, 0.5], [0.6, 0.4])),
    ],
)
def test_distance_methods_on_hand_computed_shares(method: str, expected: float) -> None:
    ref, cur = _two_category_frames()
    col = detect_drift(ref, cur, method=method).columns["c"]
    assert col.method == method
    assert col.score == pytest.approx(expected, rel=1e-9)


def test_psi_and_kl_fill_empty_bins_like_evidently() -> None:
    ref = pd.DataFrame({"c": ["a"] * 1000 + ["b"] * 1000})  # .5 .5 0
    cur = pd.DataFrame({"c": ["a"] * 1000 + ["b"] * 500 + ["c"] * 500})  # .5 .25 .25
    r = np.array([0.5, 0.5, 0.0001])  # zero -> 0.0001 (the smallest non-zero share > 0.0001)
    c = np.array([0.5, 0.25, 0.25])
    psi = detect_drift(ref, cur, method="psi").columns["c"].score
    assert psi == pytest.approx(float(np.sum((r - c) * np.log(r / c))), rel=1e-9)
    kl = detect_drift(ref, cur, method="kl_div").columns["c"].score
    assert kl == pytest.approx(float(stats.entropy(r, c)), rel=1e-9)


def _evidently_binned(ref: np.ndarray, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
    return np.histogram(ref, edges)[0] / ref.size, np.histogram(cur, edges)[0] / cur.size


def test_numeric_binned_methods_use_sturges_edges_over_both_samples() -> None:
    rng = _rng(3)
    ref, cur = rng.normal(0, 1, 2500), rng.normal(0.3, 1.2, 1800)
    r, c = _evidently_binned(ref, cur)
    frames = pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur})
    js = detect_drift(*frames, method="jensenshannon").columns["x"].score
    assert js == pytest.approx(distance.jensenshannon(r, c), rel=1e-9)
    linf = detect_drift(*frames, method="linf").columns["x"].score
    assert linf == pytest.approx(np.max(np.abs(r - c)), rel=1e-9)
    psi = detect_drift(*frames, method="psi").columns["x"].score
    rf, cf = r.copy(), c.copy()
    for arr in (rf, cf):
        low = arr[arr > 0].min()
        arr[arr == 0] = low / 1e6 if low <= 1e-4 else 1e-4
    assert psi == pytest.approx(np.sum((rf - cf) * np.log(rf / cf)), rel=1e-9)


def test_numeric_hellinger_bins_on_distinct_values_like_evidently() -> None:
    rng = _rng(4)
    ref, cur = np.round(rng.normal(0, 1, 1500), 2), np.round(rng.normal(0.2, 1, 1500), 2)
    keys = list(set(ref) | set(cur))
    edges = np.histogram_bin_edges(keys, bins="sturges")
    h1 = np.histogram(ref, edges, density=True)[0]
    h2 = np.histogram(cur, edges, density=True)[0]
    width = (edges.max() - edges.min()) / (len(edges) - 1)
    expected = math.sqrt(1 - np.clip(np.sum(np.sqrt(h1 * h2)) * width, 0, 1))
    result = detect_drift(pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur}), method="hellinger")
    assert _score(result, "x") == pytest.approx(expected, rel=1e-9)


def test_anderson_equals_scipy_anderson_ksamp() -> None:
    rng = _rng(5)
    ref, cur = rng.normal(0, 1, 300), rng.normal(0.15, 1, 250)
    result = detect_drift(pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur}), method="anderson")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SciPy warns when it caps the p-value
        expected = stats.anderson_ksamp([ref, cur], midrank=True).pvalue
    assert _score(result, "x") == pytest.approx(expected, rel=1e-12)
    assert result.columns["x"].threshold == 0.05


def test_every_method_has_a_default_threshold_and_kind() -> None:
    assert set(METHODS) == {
        "ks", "chisquare", "z", "anderson", "wasserstein",
        "jensenshannon", "psi", "kl_div", "hellinger", "linf",
    }  # fmt: skip
    for m in METHODS.values():
        assert m.default_threshold == (0.05 if m.kind == "p_value" else 0.1)
    assert METHODS["ks"].is_drift(0.05, 0.05) and not METHODS["chisquare"].is_drift(0.05, 0.05)
    assert METHODS["psi"].is_drift(0.1, 0.1) and not METHODS["psi"].is_drift(0.099, 0.1)


# --------------------------------------------------------------------------- selection


@pytest.mark.parametrize(("n", "method"), [(1000, "ks"), (1001, "wasserstein")])
def test_numeric_method_depends_on_reference_size(n: int, method: str) -> None:
    rng = _rng(6)
    ref = pd.DataFrame({"x": rng.normal(size=n)})
    cur = pd.DataFrame({"x": rng.normal(size=500)})
    assert detect_drift(ref, cur).columns["x"].method == method


def test_reference_size_counts_non_null_values() -> None:
    rng = _rng(7)
    x = rng.normal(size=1200)
    x[:300] = np.nan  # 900 non-null values: a small reference
    col = detect_drift(pd.DataFrame({"x": x}), pd.DataFrame({"x": rng.normal(size=900)}))
    assert col.columns["x"].method == "ks"
    assert col.columns["x"].n_reference == 900


@pytest.mark.parametrize(
    ("n", "categories", "method"),
    [
        (500, ["a", "b", "c"], "chisquare"),
        (500, ["a", "b"], "z"),
        (1500, ["a", "b", "c"], "jensenshannon"),
        (1500, ["a", "b"], "jensenshannon"),
    ],
)
def test_categorical_method_depends_on_size_and_categories(
    n: int, categories: list[str], method: str
) -> None:
    rng = _rng(8)
    ref = pd.DataFrame({"c": rng.choice(categories, n)})
    cur = pd.DataFrame({"c": rng.choice(categories, 400)})
    col = detect_drift(ref, cur).columns["c"]
    assert (col.column_type, col.method) == ("categorical", method)


@pytest.mark.parametrize(("n", "method"), [(800, "chisquare"), (3000, "jensenshannon")])
def test_numeric_with_few_distinct_values_is_tested_as_categorical(n: int, method: str) -> None:
    rng = _rng(9)
    ref = pd.DataFrame({"k": rng.integers(0, 4, n), "x": rng.integers(0, 6, n)})
    cur = pd.DataFrame({"k": rng.integers(0, 4, 700), "x": rng.integers(0, 6, 700)})
    result = detect_drift(ref, cur)
    assert (result.columns["k"].column_type, result.columns["k"].method) == ("categorical", method)
    assert result.columns["x"].column_type == "numeric"  # 6 distinct values


def test_distinct_values_are_counted_over_both_sides() -> None:
    ref = pd.DataFrame({"k": [0, 1, 2] * 400})
    cur = pd.DataFrame({"k": [3, 4, 5] * 400})  # 6 distinct values together: numeric
    col = detect_drift(ref, cur).columns["k"]
    assert (col.column_type, col.method) == ("numeric", "wasserstein")
    assert col.drifted


def test_dtypes_decide_types_and_overrides_win() -> None:
    rng = _rng(10)
    frame = pd.DataFrame(
        {
            "flag": rng.random(2000) > 0.5,
            "city": pd.Categorical(rng.choice(["x", "y", "z"], 2000)),
            "code": rng.integers(0, 50, 2000),
            "when": pd.date_range("2026-01-01", periods=2000, freq="h"),
        }
    )
    result = detect_drift(frame, frame.copy())
    assert result.columns["flag"].column_type == "categorical"
    assert result.columns["city"].column_type == "categorical"
    assert result.columns["code"].column_type == "numeric"
    assert "when" in result.skipped_columns and "when" not in result.columns
    forced = detect_drift(frame, frame.copy(), categorical_columns=["code"], columns=["code"])
    assert forced.columns["code"].column_type == "categorical"
    assert forced.columns["code"].method == "jensenshannon"


# --------------------------------------------------------------------------- power


@pytest.mark.parametrize("seed", range(5))
def test_identical_distributions_do_not_drift(seed: int) -> None:
    rng = _rng(100 + seed)

    def frame(n: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "normal": rng.normal(3, 2, n),
                "lognormal": rng.lognormal(0, 0.8, n),
                "count": rng.poisson(20, n),
                "cat": rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1]),
            }
        )

    large = detect_drift(frame(5000), frame(4000))
    assert large.drifted_columns == [] and not large.dataset_drift
    # Each small-sample p-value test has a 5% false-positive rate; these seeds are fixed.
    small = detect_drift(frame(600), frame(500))
    assert {c.method for c in small.columns.values()} == {"ks", "chisquare"}
    assert small.n_drifted <= 1


@pytest.mark.parametrize("seed", range(3))
def test_shifted_distributions_drift(seed: int) -> None:
    rng = _rng(200 + seed)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 5000), "y": rng.normal(0, 1, 5000)})
    cur = pd.DataFrame({"x": rng.normal(0.2, 1, 5000), "y": rng.normal(0.02, 1, 5000)})
    result = detect_drift(ref, cur)
    assert 0.15 < _score(result, "x") < 0.25 and result.columns["x"].drifted
    assert _score(result, "y") < 0.06 and not result.columns["y"].drifted
    small = detect_drift(ref.iloc[:500], cur.iloc[:500].assign(x=lambda d: d.x + 0.3))
    assert small.columns["x"].method == "ks" and small.columns["x"].drifted


def test_shifted_category_shares_drift() -> None:
    rng = _rng(11)
    ref = pd.DataFrame({"c": rng.choice(list("abcd"), 4000, p=[0.4, 0.3, 0.2, 0.1])})
    cur = pd.DataFrame({"c": rng.choice(list("abcd"), 4000, p=[0.25, 0.25, 0.25, 0.25])})
    col = detect_drift(ref, cur).columns["c"]
    assert col.drifted and col.reasons == ["distribution"]


# --------------------------------------------------------------------------- edge cases


def test_nulls_are_dropped_before_the_test_and_reported() -> None:
    rng = _rng(12)
    ref = rng.normal(size=600)
    cur = rng.normal(size=600)
    ref[:30] = np.nan
    cur[:45] = np.nan
    col = detect_drift(pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur})).columns["x"]
    expected = stats.ks_2samp(ref[~np.isnan(ref)], cur[~np.isnan(cur)]).pvalue
    assert col.score == pytest.approx(expected, rel=1e-12)
    assert (col.null_share_reference, col.null_share_current) == (0.05, 0.075)
    assert (col.n_reference, col.n_current) == (570, 555)
    assert not col.null_share_drifted and not col.drifted


def test_material_null_share_change_counts_as_drift() -> None:
    rng = _rng(13)
    ref = rng.normal(size=3000)
    cur = rng.normal(size=3000)
    cur[:600] = np.nan  # 0% -> 20%
    col = detect_drift(pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur})).columns["x"]
    assert col.null_share_drifted and col.drifted and not col.distribution_drifted
    assert col.reasons == ["null share"]
    assert col.null_share_p_value is not None and col.null_share_p_value < 1e-10
    off = detect_drift(
        pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur}), null_share_min_change=None
    ).columns["x"]
    assert not off.drifted


def test_small_null_share_change_is_not_drift() -> None:
    rng = _rng(14)
    ref, cur = rng.normal(size=20000), rng.normal(size=20000)
    ref[:200], cur[:600] = np.nan, np.nan  # 1% -> 3%: significant but below 0.05
    col = detect_drift(pd.DataFrame({"x": ref}), pd.DataFrame({"x": cur})).columns["x"]
    assert col.null_share_p_value is not None and col.null_share_p_value < 0.05
    assert not col.null_share_drifted and not col.drifted


def test_all_null_current_column_is_drifted_with_a_reason() -> None:
    ref = pd.DataFrame({"x": np.arange(2000.0), "c": ["a", "b"] * 1000})
    cur = pd.DataFrame({"x": [np.nan] * 100, "c": [None] * 100})
    result = detect_drift(ref, cur)
    for name in ("x", "c"):
        col = result.columns[name]
        assert col.drifted and col.score is None
        assert "current column has no non-null values" in col.reasons
    json.dumps(result.to_dict(), allow_nan=False)


def test_new_categories_are_reported_and_add_distance() -> None:
    ref = pd.DataFrame({"c": ["a", "b"] * 1000})
    cur = pd.DataFrame({"c": ["a", "b"] * 900 + ["new"] * 200 + [None] * 10})
    col = detect_drift(ref, cur).columns["c"]
    assert col.new_categories == ["new"]
    expected = distance.jensenshannon([0.5, 0.5, 0.0], [0.45, 0.45, 0.1])
    assert col.score == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("n", [500, 2000])
def test_constant_columns_do_not_crash(n: int) -> None:
    rng = _rng(18)
    ref = pd.DataFrame({"x": np.full(n, 5.0), "y": np.full(n, 5.0), "z": np.full(n, 5.0)})
    cur = pd.DataFrame(
        {"x": np.full(300, 5.0), "y": np.full(300, 6.0), "z": 5.0 + rng.normal(0, 1, 300)}
    )
    result = detect_drift(ref, cur)
    # One or two distinct values: tested as categorical (z-test or Jensen-Shannon).
    assert result.columns["x"].column_type == "categorical" and not result.columns["x"].drifted
    assert result.columns["y"].drifted
    z = result.columns["z"]
    assert z.column_type == "numeric" and z.drifted
    if n > 1000:  # Wasserstein normed by max(std, 0.001), as Evidently does
        assert z.score == pytest.approx(np.mean(np.abs(cur.z - 5.0)) / 0.001, rel=1e-9)
        forced = detect_drift(ref, cur, method="wasserstein")
        assert _score(forced, "x") == 0.0 and _score(forced, "y") == pytest.approx(1000.0)


def test_empty_data_raises_drift_input_error() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0]})
    with pytest.raises(DriftInputError, match="current data is empty"):
        detect_drift(frame, frame.iloc[:0])
    with pytest.raises(DriftInputError, match="reference data is empty"):
        detect_drift(frame.iloc[:0], frame)
    assert issubclass(DriftInputError, ValueError)


def test_missing_column_error_names_the_column() -> None:
    ref = pd.DataFrame({"x": [1.0, 2.0], "amount": [1.0, 2.0]})
    with pytest.raises(DriftInputError, match="'amount' is missing from the current data"):
        detect_drift(ref, ref[["x"]])
    with pytest.raises(DriftInputError, match="'nope'"):
        detect_drift(ref, ref, columns=["nope"])


def test_invalid_methods_and_parameters_raise() -> None:
    frame = pd.DataFrame({"x": np.arange(50.0), "c": ["a", "b"] * 25})
    with pytest.raises(DriftInputError, match="unknown drift method 'nope'"):
        detect_drift(frame, frame, method="nope")
    with pytest.raises(DriftInputError, match="'ks' applies to numeric columns; column 'c'"):
        detect_drift(frame, frame, method="ks")
    with pytest.raises(DriftInputError, match="'chisquare' applies to categorical"):
        detect_drift(frame, frame, per_column_method={"x": "chisquare"})
    with pytest.raises(DriftInputError, match="correction"):
        detect_drift(frame, frame, correction="holm")  # type: ignore[arg-type]
    with pytest.raises(DriftInputError, match="drift_share"):
        detect_drift(frame, frame, drift_share=1.5)
    with pytest.raises(DriftInputError, match="pandas DataFrame or a pyarrow Table"):
        detect_drift(frame, [1, 2, 3])  # type: ignore[arg-type]


# --------------------------------------------------------------------------- overrides


def _mixed(seed: int = 15, n: int = 3000) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = _rng(seed)
    ref = pd.DataFrame(
        {
            "a": rng.normal(0, 1, n),
            "b": rng.normal(0, 1, n),
            "c": rng.choice(list("xyz"), n),
            "d": rng.choice(list("pq"), n),
        }
    )
    cur = pd.DataFrame(
        {
            "a": rng.normal(0.5, 1, n),
            "b": rng.normal(0, 1, n),
            "c": rng.choice(list("xyz"), n, p=[0.6, 0.2, 0.2]),
            "d": rng.choice(list("pq"), n),
        }
    )
    return ref, cur


def test_method_precedence_per_column_then_per_type_then_global() -> None:
    ref, cur = _mixed()
    result = detect_drift(
        ref,
        cur,
        method="hellinger",
        numeric_method="psi",
        per_column_method={"a": "ks"},
    )
    methods = {name: col.method for name, col in result.columns.items()}
    assert methods == {"a": "ks", "b": "psi", "c": "hellinger", "d": "hellinger"}
    typed = detect_drift(ref, cur, categorical_method="chisquare")
    assert {n: c.method for n, c in typed.columns.items()} == {
        "a": "wasserstein",
        "b": "wasserstein",
        "c": "chisquare",
        "d": "chisquare",
    }


def test_threshold_precedence_changes_verdicts() -> None:
    ref, cur = _mixed()
    base = detect_drift(ref, cur)
    assert base.columns["a"].drifted and base.columns["c"].drifted
    a_score = _score(base, "a")
    raised = detect_drift(ref, cur, per_column_threshold={"a": a_score + 0.01})
    assert not raised.columns["a"].drifted and raised.columns["a"].threshold == a_score + 0.01
    typed = detect_drift(ref, cur, threshold=0.9, categorical_threshold=0.01)
    assert typed.columns["a"].threshold == 0.9 and not typed.columns["a"].drifted
    assert typed.columns["c"].threshold == 0.01 and typed.columns["c"].drifted
    assert typed.columns["d"].threshold == 0.01


def test_corrections_adjust_p_values_and_verdicts() -> None:
    rng = _rng(16)
    ref = pd.DataFrame({f"x{i}": rng.normal(size=400) for i in range(10)})
    cur = pd.DataFrame({f"x{i}": rng.normal(size=400) for i in range(10)})
    cur["x0"] = cur["x0"] + 0.25  # a modest shift: p-value between 0.005 and 0.05
    raw = detect_drift(ref, cur)
    p = np.array([_score(raw, f"x{i}") for i in range(10)])
    assert 0.005 < p[0] < 0.05 and raw.columns["x0"].drifted
    bonf = detect_drift(ref, cur, correction="bonferroni")
    assert bonf.columns["x0"].score_adjusted == pytest.approx(min(p[0] * 10, 1.0))
    assert not bonf.columns["x0"].drifted and bonf.columns["x0"].score == p[0]
    bh = detect_drift(ref, cur, correction="benjamini_hochberg")
    adjusted = [bh.columns[f"x{i}"].score_adjusted for i in range(10)]
    assert adjusted == pytest.approx(stats.false_discovery_control(p, method="bh"))
    assert bh.columns["x0"].drifted is bool(adjusted[0] < 0.05)
    assert all(c.score_adjusted is None for c in raw.columns.values())


def test_corrections_leave_distance_methods_alone() -> None:
    ref, cur = _mixed()
    result = detect_drift(ref, cur, correction="bonferroni")
    assert all(c.score_adjusted is None for c in result.columns.values())


def test_dataset_drift_when_share_of_drifted_columns_reaches_drift_share() -> None:
    ref, cur = _mixed()  # a and c drift: 2 of 4
    half = detect_drift(ref, cur)
    assert (half.n_drifted, half.n_columns, half.drift_share) == (2, 4, 0.5)
    assert half.dataset_drift and half.drifted_columns == ["a", "c"]
    assert not detect_drift(ref, cur, drift_share=0.51).dataset_drift
    assert detect_drift(ref, cur, columns=["a", "b", "d"], drift_share=0.3).dataset_drift


# --------------------------------------------------------------------------- API shape


def test_to_dict_is_json_serializable_without_numpy_types() -> None:
    ref, cur = _mixed()
    cur.loc[:10, "b"] = np.nan
    data = detect_drift(ref, cur).to_dict()
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text) == data

    def walk(value: object) -> None:
        assert not isinstance(value, np.generic), value
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(data)
    col = data["columns"]["a"]
    for key in ("column", "column_type", "method", "score", "threshold", "drifted"):
        assert key in col
    assert col["histogram"]["kind"] == "numeric" and len(col["histogram"]["edges"]) == 31


def test_pyarrow_and_pandas_inputs_agree() -> None:
    ref, cur = _mixed()
    ref.loc[::7, "b"] = np.nan
    cur.loc[::5, "c"] = None
    from_pandas = detect_drift(ref, cur)
    from_arrow = detect_drift(pa.Table.from_pandas(ref), pa.Table.from_pandas(cur))
    for name in ref.columns:
        a, b = from_pandas.columns[name], from_arrow.columns[name]
        assert (a.method, a.drifted, a.n_reference, a.n_current) == (
            b.method,
            b.drifted,
            b.n_reference,
            b.n_current,
        )
        assert a.score == pytest.approx(b.score, rel=1e-12)
        assert a.null_share_current == b.null_share_current


def test_single_column_helper_for_prediction_drift() -> None:
    rng = _rng(17)
    ref = pd.DataFrame({"score": rng.beta(2, 5, 5000), "label": rng.integers(0, 2, 5000)})
    cur = pd.DataFrame({"score": rng.beta(3, 4, 4000), "label": rng.integers(0, 2, 4000)})
    prediction = detect_column_drift(ref, cur, "score")
    assert prediction.column == "score" and prediction.method == "wasserstein"
    assert prediction.drifted
    target = detect_column_drift(ref, cur, "label", column_type="categorical")
    assert target.column_type == "categorical" and not target.drifted


# --------------------------------------------------------------------------- report


def test_html_report_has_one_image_per_column(tmp_path: Path) -> None:
    ref, cur = _mixed()
    cur["empty"] = np.nan
    ref["empty"] = 1.0
    result = detect_drift(ref, cur)
    path = tmp_path / "reports" / "drift.html"
    html = render_drift_report(
        result, path, title="Churn drift", reference_label="training v3", current_label="today"
    )
    assert path.read_text(encoding="utf-8") == html
    assert html.count("<img") == len(result.columns) == 5
    assert "data:image/png;base64," in html
    for name in ("Churn drift", "training v3", "today", "Wasserstein distance (normed)"):
        assert name in html
    assert "dataset drift" in html
    assert render_drift_report(result, None).count("<img") == 5


def test_non_string_column_labels_are_keyed_by_their_string() -> None:
    rng = _rng(19)
    ref = pd.DataFrame({0: rng.normal(size=2000), 1: rng.choice(["a", "b", "c"], 2000)})
    cur = pd.DataFrame({0: rng.normal(1, 1, 2000), 1: rng.choice(["a", "b", "c"], 2000)})
    result = detect_drift(ref, cur)
    assert list(result.columns) == ["0", "1"]
    assert result.columns["0"].drifted and not result.columns["1"].drifted
