"""Reference profiles: contents, JSON round trip, and drift from a profile vs from raw data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlops_provider.core.drift import DriftResult, detect_drift
from mlops_provider.core.profile import (
    CategoricalSummary,
    DriftInputError,
    NumericSummary,
    ReferenceProfile,
    compress_numeric,
    summarize_numeric,
)


def _frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    """Mixed columns; ``shift`` moves some of them (normal, lognormal, cat_shift, few)."""
    normal = rng.normal(10 + 2 * shift, 2, n)
    normal[rng.random(n) < 0.03] = np.nan
    cats = ["a", "b", "c", "d"]
    p_ref, p_cur = [0.4, 0.3, 0.2, 0.1], [0.25, 0.25, 0.25, 0.25]
    return pd.DataFrame(
        {
            "normal": normal,
            "lognormal": rng.lognormal(0.5 * shift, 0.9, n),
            "exponential": rng.exponential(3.0, n),
            "uniform_int": rng.integers(0, 1000, n),
            "few": rng.choice(4, n, p=p_cur if shift else p_ref),
            "cat_stable": rng.choice(cats, n, p=p_ref),
            "cat_shift": rng.choice(cats, n, p=p_cur if shift else p_ref),
            "cat_new": rng.choice(cats + (["new"] if shift else []), n),
            "flag": rng.random(n) < 0.3,
        }
    )


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(42)
    return _frame(rng, 20000), _frame(rng, 15000), _frame(rng, 15000, shift=1.0)


# --------------------------------------------------------------------------- contents


def test_profile_keeps_quantiles_counts_and_statistics(data: tuple[pd.DataFrame, ...]) -> None:
    ref = data[0]
    profile = ReferenceProfile.from_data(ref)
    assert profile.n_rows == len(ref) and set(profile.columns) == set(ref.columns)

    normal = profile.columns["normal"]
    assert isinstance(normal, NumericSummary) and not normal.is_exact
    values = ref["normal"].dropna().to_numpy()
    assert normal.n_null == int(ref["normal"].isna().sum())
    assert normal.mean == pytest.approx(values.mean())
    assert normal.std == pytest.approx(values.std())
    assert (normal.min, normal.max) == (values.min(), values.max())
    assert normal.n_unique == np.unique(values).size
    assert normal.probs is not None and normal.quantiles is not None
    assert normal.probs.size >= profile.n_bins + 1 and np.all(np.diff(normal.quantiles) >= 0)
    np.testing.assert_allclose(normal.quantiles, np.quantile(values, normal.probs), rtol=1e-12)

    few = profile.columns["few"]
    assert isinstance(few, NumericSummary) and few.is_exact and few.integer
    assert few.values is not None and few.counts is not None
    assert dict(zip(few.values.tolist(), few.counts.tolist())) == (
        ref["few"].value_counts().sort_index().to_dict()
    )

    cat = profile.columns["cat_shift"]
    assert isinstance(cat, CategoricalSummary)
    assert cat.as_dict() == ref["cat_shift"].value_counts().to_dict()
    flag = profile.columns["flag"]
    assert isinstance(flag, CategoricalSummary) and set(flag.labels) == {True, False}


def test_profile_column_selection_and_types(data: tuple[pd.DataFrame, ...]) -> None:
    ref = data[0].assign(when=pd.Timestamp("2026-01-01"))
    profile = ReferenceProfile.from_data(
        ref, columns=["normal", "uniform_int"], categorical_columns=["uniform_int"]
    )
    assert list(profile.columns) == ["normal", "uniform_int"]
    assert profile.column_type("uniform_int") == "categorical"
    auto = ReferenceProfile.from_data(ref)
    assert "when" in auto.skipped_columns and "when" not in auto.columns
    with pytest.raises(DriftInputError, match="'missing' is missing from the reference data"):
        ReferenceProfile.from_data(ref, columns=["missing"])
    with pytest.raises(DriftInputError, match="reference data is empty"):
        ReferenceProfile.from_data(ref.iloc[:0])


def test_profile_from_pyarrow_equals_profile_from_pandas(data: tuple[pd.DataFrame, ...]) -> None:
    ref = data[0]
    from_pandas = ReferenceProfile.from_data(ref)
    from_arrow = ReferenceProfile.from_data(pa.Table.from_pandas(ref, preserve_index=False))
    assert from_arrow == from_pandas


# --------------------------------------------------------------------------- round trip


def test_json_round_trip(tmp_path: Path, data: tuple[pd.DataFrame, ...]) -> None:
    profile = ReferenceProfile.from_data(data[0], metadata={"model": "churn", "version": 3})
    path = tmp_path / "profiles" / "reference.json"
    text = profile.to_json(path)
    assert json.loads(path.read_text()) == json.loads(text)
    loaded = ReferenceProfile.from_json(path)
    assert loaded == profile
    assert loaded.metadata == {"model": "churn", "version": 3}
    assert ReferenceProfile.from_json(text) == profile
    assert ReferenceProfile.from_dict(json.loads(json.dumps(profile.to_dict()))) == profile
    # Labels keep their JSON types (booleans stay booleans, ints stay ints).
    flag = loaded.columns["flag"]
    assert isinstance(flag, CategoricalSummary)
    assert all(isinstance(label, bool) for label in flag.labels)


def test_round_trip_changes_nothing_in_drift_results(
    tmp_path: Path, data: tuple[pd.DataFrame, ...]
) -> None:
    ref, _, cur = data
    profile = ReferenceProfile.from_data(ref)
    loaded = ReferenceProfile.from_json(profile.to_json(tmp_path / "p.json"))
    assert detect_drift(loaded, cur).to_dict() == detect_drift(profile, cur).to_dict()


def test_invalid_profiles_are_rejected() -> None:
    with pytest.raises(DriftInputError, match="not a reference profile"):
        ReferenceProfile.from_dict({"format": "something-else"})
    with pytest.raises(DriftInputError, match="not valid JSON"):
        ReferenceProfile.from_json("{not json")


# --------------------------------------------------------------------------- agreement


def _assert_agree(raw: DriftResult, prof: DriftResult, tolerance: float) -> None:
    assert raw.dataset_drift == prof.dataset_drift
    for name, r in raw.columns.items():
        p = prof.columns[name]
        assert (p.method, p.column_type, p.drifted, p.reasons) == (
            r.method,
            r.column_type,
            r.drifted,
            r.reasons,
        ), name
        assert r.score is not None and p.score is not None
        if r.method_kind == "distance":
            assert p.score == pytest.approx(r.score, abs=tolerance), name
        else:
            assert p.score == pytest.approx(r.score, abs=0.05), name
        assert p.new_categories == r.new_categories
        assert p.null_share_reference == r.null_share_reference


@pytest.mark.parametrize("which", ["stable", "shifted"])
def test_profile_and_raw_data_agree_with_default_methods(
    which: str, data: tuple[pd.DataFrame, ...]
) -> None:
    ref, stable, shifted = data
    cur = stable if which == "stable" else shifted
    profile = ReferenceProfile.from_data(ref)
    raw, prof = detect_drift(ref, cur), detect_drift(profile, cur)
    assert prof.reference_is_profile and prof.n_reference_rows == len(ref)
    _assert_agree(raw, prof, tolerance=0.005)
    if which == "shifted":
        expected = {"normal", "lognormal", "few", "cat_shift", "cat_new"}
        assert set(raw.drifted_columns) == expected
    else:
        assert raw.drifted_columns == []
    assert prof.columns["normal"].approximate and not prof.columns["few"].approximate


@pytest.mark.parametrize("method", ["psi", "kl_div", "jensenshannon", "hellinger", "linf", "ks"])
def test_profile_and_raw_data_agree_with_other_methods(
    method: str, data: tuple[pd.DataFrame, ...]
) -> None:
    ref, stable, shifted = data
    profile = ReferenceProfile.from_data(ref)
    numeric = ["normal", "lognormal", "exponential", "uniform_int"]
    for cur in (stable, shifted):
        raw = detect_drift(ref, cur, columns=numeric, method=method)
        prof = detect_drift(profile, cur, columns=numeric, method=method)
        _assert_agree(raw, prof, tolerance=0.01)


def test_anderson_from_profile_agrees() -> None:
    rng = np.random.default_rng(7)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 3000)})
    profile = ReferenceProfile.from_data(ref)
    for shift, drifted in ((0.0, False), (0.3, True)):
        cur = pd.DataFrame({"x": rng.normal(shift, 1, 2000)})
        raw = detect_drift(ref, cur, method="anderson").columns["x"]
        prof = detect_drift(profile, cur, method="anderson").columns["x"]
        assert raw.drifted is prof.drifted is drifted


def test_small_reference_profile_is_exact() -> None:
    rng = np.random.default_rng(8)
    ref = pd.DataFrame({"x": rng.normal(0, 1, 800), "c": rng.choice(list("abc"), 800)})
    cur = pd.DataFrame({"x": rng.normal(0.1, 1, 700), "c": rng.choice(list("abcd"), 700)})
    profile = ReferenceProfile.from_data(ref)
    raw, prof = detect_drift(ref, cur), detect_drift(profile, cur)
    assert raw.columns["x"].method == "ks" and raw.columns["c"].method == "chisquare"
    for name in ("x", "c"):
        assert prof.columns[name].score == raw.columns[name].score
        assert not prof.columns[name].approximate


def test_auto_selection_uses_the_profile_row_count() -> None:
    rng = np.random.default_rng(9)
    cur = pd.DataFrame({"x": rng.normal(size=500)})
    small = ReferenceProfile.from_data(pd.DataFrame({"x": rng.normal(size=1000)}))
    large = ReferenceProfile.from_data(pd.DataFrame({"x": rng.normal(size=1001)}))
    assert detect_drift(small, cur).columns["x"].method == "ks"
    assert detect_drift(large, cur).columns["x"].method == "wasserstein"


@pytest.mark.parametrize("dist", ["normal", "lognormal", "pareto"])
def test_profile_wasserstein_is_close_to_raw_for_large_heavy_tailed_data(dist: str) -> None:
    rng = np.random.default_rng(10)
    draw = {
        "normal": lambda n: rng.normal(0, 1, n),
        "lognormal": lambda n: rng.lognormal(0, 1, n),
        "pareto": lambda n: rng.pareto(2.5, n),
    }[dist]
    ref, cur = summarize_numeric(draw(200_000)), summarize_numeric(draw(100_000))
    ref_df = pd.DataFrame({"x": ref.sample()})
    cur_df = pd.DataFrame({"x": cur.sample()})
    raw = detect_drift(ref_df, cur_df).columns["x"]
    prof = detect_drift(ReferenceProfile.from_data(ref_df), cur_df).columns["x"]
    assert raw.score is not None and prof.score is not None
    assert abs(prof.score - raw.score) < 0.002
    compressed = compress_numeric(ref)
    assert compressed.quantiles is not None and compressed.quantiles[-1] == ref.max


def test_profile_type_conflicts_and_missing_columns_raise(
    data: tuple[pd.DataFrame, ...],
) -> None:
    ref, cur, _ = data
    profile = ReferenceProfile.from_data(ref, columns=["normal", "cat_stable"])
    with pytest.raises(DriftInputError, match="'normal' is numeric in the reference profile"):
        detect_drift(profile, cur, categorical_columns=["normal"])
    with pytest.raises(DriftInputError, match="not in the reference profile"):
        detect_drift(profile, cur, columns=["lognormal"])
    with pytest.raises(DriftInputError, match="'cat_stable' is missing from the current data"):
        detect_drift(profile, cur.drop(columns=["cat_stable"]))
