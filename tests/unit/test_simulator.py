"""Tests of the demo-domain simulator (include/simulator.py)."""

from __future__ import annotations

import datetime as dt
import os
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from scipy import stats
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from include.simulator import (
    _CLEAN_COEFS,
    CATEGORICAL_FEATURES,
    CATEGORY_LEVELS,
    ENTITY_COLUMN,
    FEATURE_COLUMNS,
    LABEL_COLUMN,
    NUMERIC_FEATURES,
    SCENARIOS,
    TIMESTAMP_COLUMN,
    ChurnSimulator,
    Scenario,
    _label_terms,
    _logit,
    main,
    parse_scenario,
)

START = date(2026, 1, 1)
SHIFT = date(2026, 1, 15)  # scenarios in these tests start here
LABEL_DTYPES = {
    ENTITY_COLUMN: "int64",
    TIMESTAMP_COLUMN: "datetime64[ns, UTC]",
    LABEL_COLUMN: "int64",
    "label_available_at": "datetime64[ns, UTC]",
}
INT_FEATURES = {
    "tenure_months",
    "sessions_last_7d",
    "support_tickets_30d",
    "days_since_last_login",
    "payment_failures_90d",
}


def day(offset: int) -> date:
    return START + dt.timedelta(days=offset)


def concat_days(sim: ChurnSimulator, days: list[date]) -> tuple[pd.DataFrame, np.ndarray]:
    features = pd.concat([sim.activity(d) for d in days], ignore_index=True)
    labels = pd.concat([sim.labels(d) for d in days], ignore_index=True)
    return features, labels[LABEL_COLUMN].to_numpy()


def std_mean_shift(reference: pd.Series, current: pd.Series) -> float:
    return float(abs(current.mean() - reference.mean()) / reference.std())


@pytest.fixture(scope="module")
def sim() -> ChurnSimulator:
    return ChurnSimulator(seed=7)


# -- constants and schema ------------------------------------------------------------------
def test_contract_constants() -> None:
    assert ENTITY_COLUMN == "customer_id"
    assert TIMESTAMP_COLUMN == "event_timestamp"
    assert LABEL_COLUMN == "churned"
    assert FEATURE_COLUMNS == NUMERIC_FEATURES + CATEGORICAL_FEATURES
    assert len(NUMERIC_FEATURES) == 9
    assert CATEGORICAL_FEATURES == ["plan", "region", "payment_method", "device"]
    assert CATEGORY_LEVELS["plan"] == ["basic", "standard", "premium"]


def test_activity_schema_and_content(sim: ChurnSimulator) -> None:
    d = day(3)
    frame = sim.activity(d)
    assert list(frame.columns) == [ENTITY_COLUMN, TIMESTAMP_COLUMN, *FEATURE_COLUMNS]
    assert frame[ENTITY_COLUMN].dtype == np.int64
    assert str(frame[TIMESTAMP_COLUMN].dtype) == "datetime64[ns, UTC]"
    for col in NUMERIC_FEATURES:
        expected = np.int64 if col in INT_FEATURES else np.float64
        assert frame[col].dtype == expected, col
        assert (frame[col] >= 0).all(), col
    for col in CATEGORICAL_FEATURES:
        assert frame[col].dtype == object, col
        assert frame[col].map(lambda v: isinstance(v, str)).all(), col
        assert set(frame[col]) <= set(CATEGORY_LEVELS[col]), col
    assert not frame.isna().to_numpy().any()
    assert frame[ENTITY_COLUMN].is_unique
    assert frame[ENTITY_COLUMN].is_monotonic_increasing
    day_start = pd.Timestamp(d, tz="UTC")
    assert (frame[TIMESTAMP_COLUMN] >= day_start).all()
    assert (frame[TIMESTAMP_COLUMN] < day_start + pd.Timedelta(days=1)).all()
    # about daily_active_fraction of the population shows up
    assert 0.25 * sim.n_customers < len(frame) < 0.35 * sim.n_customers


def test_total_charges_consistent_with_tenure(sim: ChurnSimulator) -> None:
    frame = sim.activity(day(0))
    ratio = frame["total_charges"] / (frame["monthly_charges"] * frame["tenure_months"].clip(1))
    assert ratio.between(0.9, 1.05).all()


def test_tenure_grows_over_time() -> None:
    sim = ChurnSimulator(seed=1, daily_active_fraction=1.0, n_customers=300)
    early = sim.activity(day(0)).set_index(ENTITY_COLUMN)["tenure_months"]
    later = sim.activity(day(92)).set_index(ENTITY_COLUMN)["tenure_months"]
    assert ((later - early) == 3).all()


def test_days_before_start_are_rejected(sim: ChurnSimulator) -> None:
    with pytest.raises(ValueError, match="before the simulation start_date"):
        sim.activity(START - dt.timedelta(days=1))
    with pytest.raises(ValueError, match="before the simulation start_date"):
        sim.labels(START - dt.timedelta(days=1))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"seed": -1},
        {"n_customers": 0},
        {"daily_active_fraction": 0.0},
        {"daily_active_fraction": 1.5},
        {"label_delay_days": -1},
    ],
)
def test_invalid_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ChurnSimulator(**kwargs)  # type: ignore[arg-type]


# -- determinism ---------------------------------------------------------------------------
def test_same_seed_same_frames() -> None:
    a, b = ChurnSimulator(seed=11), ChurnSimulator(seed=11)
    for d in (day(0), day(9)):
        pd.testing.assert_frame_equal(a.activity(d), b.activity(d))
        pd.testing.assert_frame_equal(a.labels(d), b.labels(d))


def test_different_seeds_differ() -> None:
    a, b = ChurnSimulator(seed=11), ChurnSimulator(seed=12)
    fa, fb = a.activity(day(2)), b.activity(day(2))
    assert not fa.equals(fb)
    assert set(fa[ENTITY_COLUMN]) != set(fb[ENTITY_COLUMN])


def test_different_days_differ(sim: ChurnSimulator) -> None:
    assert set(sim.activity(day(0))[ENTITY_COLUMN]) != set(sim.activity(day(1))[ENTITY_COLUMN])


def test_generation_order_does_not_matter() -> None:
    scenarios = SCENARIOS["covariate_and_concept_shift"](day(2)) + SCENARIOS["nulls"](day(3))
    days = [day(i) for i in range(5)]
    forward = ChurnSimulator(seed=3, scenarios=scenarios)
    backward = ChurnSimulator(seed=3, scenarios=scenarios)
    first = {d: (forward.activity(d), forward.labels(d)) for d in days}
    second = {d: (backward.activity(d), backward.labels(d)) for d in reversed(days)}
    for d in days:
        pd.testing.assert_frame_equal(first[d][0], second[d][0])
        pd.testing.assert_frame_equal(first[d][1], second[d][1])
    # asking again (after other days) gives the same frame
    pd.testing.assert_frame_equal(forward.activity(days[0]), first[days[0]][0])


def test_returned_frames_are_independent_copies(sim: ChurnSimulator) -> None:
    frame = sim.activity(day(4))
    frame["monthly_charges"] = -1.0
    assert (sim.activity(day(4))["monthly_charges"] > 0).all()


# -- labels --------------------------------------------------------------------------------
def test_labels_align_with_activity(sim: ChurnSimulator) -> None:
    d = day(5)
    activity, labels = sim.activity(d), sim.labels(d)
    assert list(labels.columns) == list(LABEL_DTYPES)
    assert {c: str(t) for c, t in labels.dtypes.items()} == LABEL_DTYPES
    pd.testing.assert_series_equal(labels[ENTITY_COLUMN], activity[ENTITY_COLUMN])
    pd.testing.assert_series_equal(labels[TIMESTAMP_COLUMN], activity[TIMESTAMP_COLUMN])
    assert set(labels[LABEL_COLUMN].unique()) <= {0, 1}
    expected = pd.Timestamp(d + dt.timedelta(days=sim.label_delay_days), tz="UTC")
    assert (labels["label_available_at"] == expected).all()


def test_churn_base_rate(sim: ChurnSimulator) -> None:
    _, y = concat_days(sim, [day(i) for i in range(7)])
    assert 0.15 <= y.mean() <= 0.25


def test_churn_probability_matches_labels(sim: ChurnSimulator) -> None:
    d = day(6)
    probability = sim.churn_probability(d)
    labels = sim.labels(d)
    assert list(probability.index) == list(labels[ENTITY_COLUMN])
    assert abs(probability.mean() - labels[LABEL_COLUMN].mean()) < 0.03


def test_labels_available_on(sim: ChurnSimulator) -> None:
    delay = sim.label_delay_days
    arrived = sim.labels_available_on(day(delay + 2))
    pd.testing.assert_frame_equal(arrived, sim.labels(day(2)))
    assert (arrived["label_available_at"] == pd.Timestamp(day(delay + 2), tz="UTC")).all()


@pytest.mark.parametrize("offset", [0, 3, 6])
def test_no_labels_before_the_first_delay(sim: ChurnSimulator, offset: int) -> None:
    empty = sim.labels_available_on(day(offset))
    assert empty.empty
    assert list(empty.columns) == list(LABEL_DTYPES)
    assert {c: str(t) for c, t in empty.dtypes.items()} == LABEL_DTYPES


def test_label_delay_zero() -> None:
    sim = ChurnSimulator(seed=5, n_customers=500, label_delay_days=0)
    pd.testing.assert_frame_equal(sim.labels_available_on(day(0)), sim.labels(day(0)))


def test_labels_are_learnable(sim: ChurnSimulator) -> None:
    x_train, y_train = concat_days(sim, [day(i) for i in range(10)])
    x_test, y_test = concat_days(sim, [day(i) for i in range(10, 14)])
    model = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("num", "passthrough", NUMERIC_FEATURES),
                        ("cat", OneHotEncoder(sparse_output=False), CATEGORICAL_FEATURES),
                    ]
                ),
            ),
            ("gbm", HistGradientBoostingClassifier(max_iter=100, random_state=0)),
        ]
    )
    # one thread: OpenMP oversubscription on a busy machine costs far more than it saves here
    with threadpool_limits(limits=1):
        model.fit(x_train, y_train)
        auc = roc_auc_score(y_test, model.predict_proba(x_test)[:, 1])
    assert 0.75 <= auc <= 0.9


# -- scenarios -----------------------------------------------------------------------------
def test_scenario_validation() -> None:
    with pytest.raises(ValueError, match="unknown scenario kind"):
        Scenario("x", "label_noise", START)
    with pytest.raises(ValueError, match="before start"):
        Scenario("x", "covariate_shift", day(5), day(4))
    with pytest.raises(ValueError, match="strength"):
        Scenario("x", "covariate_shift", START, strength=-1.0)
    with pytest.raises(ValueError, match="does not take a column"):
        Scenario("x", "concept_shift", START, column="plan")
    with pytest.raises(ValueError, match="not a feature column"):
        Scenario("x", "nulls", START, column="nope")
    with pytest.raises(ValueError, match="numeric column"):
        Scenario("x", "wrong_dtype", START, column="plan")
    with pytest.raises(ValueError, match="null_fraction"):
        Scenario("x", "nulls", START, params={"null_fraction": 1.5})


def test_scenario_defaults_and_active_window() -> None:
    nulls = Scenario("n", "nulls", day(2), day(4))
    assert nulls.column == "monthly_charges"
    assert nulls.params["null_fraction"] == 0.5
    renamed = Scenario("r", "renamed_column", START)
    assert renamed.column == "monthly_charges"
    assert renamed.params["new_name"] == "monthly_charge"
    assert Scenario("w", "wrong_dtype", START).column == "total_charges"
    assert [nulls.active(day(i)) for i in range(6)] == [False, False, True, True, True, False]
    assert Scenario("c", "concept_shift", day(1)).active(day(10_000))
    hash(nulls)  # usable in sets/dicts despite the params mapping


def test_presets() -> None:
    required = {
        "covariate_shift",
        "concept_shift",
        "covariate_and_concept_shift",
        "nulls",
        "renamed_column",
        "wrong_dtype",
    }
    assert required <= set(SCENARIOS)
    for name, preset in SCENARIOS.items():
        scenarios = preset(SHIFT)
        assert scenarios and all(isinstance(s, Scenario) for s in scenarios), name
        assert all(s.start == SHIFT and s.end is None for s in scenarios), name
        bounded = preset(SHIFT, day(20), strength=0.5)
        assert all(s.end == day(20) and s.strength == 0.5 for s in bounded), name
    kinds = {s.kind for s in SCENARIOS["covariate_and_concept_shift"](SHIFT)}
    assert kinds == {"covariate_shift", "concept_shift"}


def test_parse_scenario() -> None:
    (scenario,) = parse_scenario("covariate_shift@2026-01-08")
    assert (scenario.kind, scenario.start, scenario.end) == ("covariate_shift", day(7), None)
    (scenario,) = parse_scenario("nulls@2026-01-08:2026-01-09*0.4")
    assert (scenario.end, scenario.strength) == (day(8), 0.4)
    assert len(parse_scenario("covariate_and_concept_shift@2026-01-08")) == 2
    with pytest.raises(ValueError, match="unknown scenario"):
        parse_scenario("meteor@2026-01-08")
    with pytest.raises(ValueError, match="NAME@"):
        parse_scenario("nulls")


def test_scenarios_do_not_touch_other_days(sim: ChurnSimulator) -> None:
    scenarios = [
        *SCENARIOS["covariate_and_concept_shift"](day(3), day(4)),
        *SCENARIOS["wrong_dtype"](day(3), day(4)),
    ]
    shifted = ChurnSimulator(seed=sim.seed, scenarios=scenarios)
    for d in (day(2), day(5)):
        pd.testing.assert_frame_equal(shifted.activity(d), sim.activity(d))
        pd.testing.assert_frame_equal(shifted.labels(d), sim.labels(d))
    assert not shifted.activity(day(3)).equals(sim.activity(day(3)))
    assert [s.kind for s in shifted.active_scenarios(day(4))] == [
        "covariate_shift",
        "concept_shift",
        "wrong_dtype",
    ]


def test_zero_strength_is_a_no_op(sim: ChurnSimulator) -> None:
    quiet = ChurnSimulator(
        seed=sim.seed, scenarios=SCENARIOS["covariate_and_concept_shift"](START, strength=0.0)
    )
    pd.testing.assert_frame_equal(quiet.activity(day(1)), sim.activity(day(1)))
    pd.testing.assert_frame_equal(quiet.labels(day(1)), sim.labels(day(1)))


def test_covariate_shift_moves_feature_distributions(sim: ChurnSimulator) -> None:
    shifted = ChurnSimulator(seed=sim.seed, scenarios=SCENARIOS["covariate_shift"](SHIFT))
    before = shifted.activity(SHIFT - dt.timedelta(days=1))
    clean_same_day = sim.activity(SHIFT)
    after = shifted.activity(SHIFT)

    # large effect on the shifted day, small one between two clean days (mean shift in
    # standard deviations of the day before the shift)
    for col, large in (
        ("sessions_last_7d", 0.45),
        ("avg_session_minutes", 0.5),
        ("tenure_months", 0.35),
        ("days_since_last_login", 0.35),
    ):
        assert stats.ks_2samp(before[col], after[col]).pvalue < 1e-6, col
        assert std_mean_shift(before[col], after[col]) > large, col
        assert std_mean_shift(before[col], clean_same_day[col]) < 0.15, col

    plan_counts = pd.concat(
        [before["plan"].value_counts(), after["plan"].value_counts()], axis=1
    ).fillna(0)
    assert stats.chi2_contingency(plan_counts.to_numpy()).pvalue < 1e-6
    assert (after["plan"] == "basic").mean() > (before["plan"] == "basic").mean() + 0.1
    clean_counts = pd.concat(
        [before["plan"].value_counts(), clean_same_day["plan"].value_counts()], axis=1
    ).fillna(0)
    assert stats.chi2_contingency(clean_counts.to_numpy()).pvalue > 1e-3


def test_covariate_shift_keeps_the_concept(sim: ChurnSimulator) -> None:
    """Same features -> same churn probability, whatever the scenario does to P(X)."""
    shifted = ChurnSimulator(seed=sim.seed, scenarios=SCENARIOS["covariate_shift"](SHIFT))
    features = shifted.activity(SHIFT)
    # the label model of clean days reproduces the shifted day's probabilities
    expected = 1.0 / (1.0 + np.exp(-_logit(_label_terms(features), _CLEAN_COEFS)))
    np.testing.assert_allclose(shifted.churn_probability(SHIFT).to_numpy(), expected)
    np.testing.assert_allclose(
        sim.churn_probability(SHIFT).to_numpy(),
        1.0 / (1.0 + np.exp(-_logit(_label_terms(sim.activity(SHIFT)), _CLEAN_COEFS))),
    )


def _logistic_model() -> Pipeline:
    return Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), NUMERIC_FEATURES),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL_FEATURES),
                    ]
                ),
            ),
            ("lr", LogisticRegression(max_iter=1000)),
        ]
    )


def test_concept_shift_changes_the_relationship(sim: ChurnSimulator) -> None:
    shifted = ChurnSimulator(seed=sim.seed, scenarios=SCENARIOS["concept_shift"](SHIFT))
    test_days = [SHIFT + dt.timedelta(days=i) for i in range(5)]

    # the features are exactly those of the clean simulation, only the labels change
    for d in test_days[:2]:
        pd.testing.assert_frame_equal(shifted.activity(d), sim.activity(d))
    assert not shifted.labels(SHIFT)[LABEL_COLUMN].equals(sim.labels(SHIFT)[LABEL_COLUMN])

    x_train, y_train = concat_days(sim, [day(i) for i in range(10)])
    model = _logistic_model().fit(x_train, y_train)
    x_clean, y_clean = concat_days(sim, test_days)
    x_shift, y_shift = concat_days(shifted, test_days)
    auc_train = roc_auc_score(y_train, model.predict_proba(x_train)[:, 1])
    auc_clean = roc_auc_score(y_clean, model.predict_proba(x_clean)[:, 1])
    auc_shift = roc_auc_score(y_shift, model.predict_proba(x_shift)[:, 1])
    assert abs(auc_train - auc_clean) < 0.03
    assert auc_clean - auc_shift > 0.1
    # a model retrained on the new regime recovers: the new concept is learnable too
    x_new, y_new = concat_days(shifted, [SHIFT + dt.timedelta(days=i) for i in range(5, 15)])
    retrained = _logistic_model().fit(x_new, y_new)
    assert roc_auc_score(y_shift, retrained.predict_proba(x_shift)[:, 1]) > auc_shift + 0.1


def test_concept_shift_strength_scales_the_effect(sim: ChurnSimulator) -> None:
    x_train, y_train = concat_days(sim, [day(i) for i in range(7)])
    model = _logistic_model().fit(x_train, y_train)
    aucs = []
    for strength in (0.0, 0.5, 1.0):
        shifted = ChurnSimulator(
            seed=sim.seed, scenarios=SCENARIOS["concept_shift"](SHIFT, strength=strength)
        )
        x, y = concat_days(shifted, [SHIFT + dt.timedelta(days=i) for i in range(4)])
        aucs.append(roc_auc_score(y, model.predict_proba(x)[:, 1]))
    assert aucs[0] > aucs[1] > aucs[2]


def test_nulls_scenario(sim: ChurnSimulator) -> None:
    scenario = Scenario(
        "nulls", "nulls", SHIFT, column="sessions_last_7d", params={"null_fraction": 0.3}
    )
    broken = ChurnSimulator(seed=sim.seed, scenarios=[scenario])
    frame = broken.activity(SHIFT)
    clean = sim.activity(SHIFT)
    assert abs(frame["sessions_last_7d"].isna().mean() - 0.3) < 0.04
    assert frame["sessions_last_7d"].dtype == np.float64
    present = frame["sessions_last_7d"].notna()
    np.testing.assert_array_equal(
        frame.loc[present, "sessions_last_7d"], clean.loc[present, "sessions_last_7d"]
    )
    assert not frame.drop(columns="sessions_last_7d").isna().to_numpy().any()
    # labels come from the clean features
    pd.testing.assert_frame_equal(broken.labels(SHIFT), sim.labels(SHIFT))


def test_nulls_preset_and_categorical_nulls(sim: ChurnSimulator) -> None:
    frame = ChurnSimulator(seed=sim.seed, scenarios=SCENARIOS["nulls"](SHIFT)).activity(SHIFT)
    assert abs(frame["monthly_charges"].isna().mean() - 0.5) < 0.05
    scenario = Scenario("n", "nulls", SHIFT, column="plan", params={"null_fraction": 0.2})
    frame = ChurnSimulator(seed=sim.seed, scenarios=[scenario]).activity(SHIFT)
    assert frame["plan"].dtype == object
    assert abs(frame["plan"].isna().mean() - 0.2) < 0.04


def test_renamed_column_scenario(sim: ChurnSimulator) -> None:
    broken = ChurnSimulator(seed=sim.seed, scenarios=SCENARIOS["renamed_column"](SHIFT))
    frame = broken.activity(SHIFT)
    assert "monthly_charges" not in frame.columns
    assert "monthly_charge" in frame.columns
    np.testing.assert_array_equal(frame["monthly_charge"], sim.activity(SHIFT)["monthly_charges"])
    pd.testing.assert_frame_equal(broken.labels(SHIFT), sim.labels(SHIFT))


def test_wrong_dtype_scenario(sim: ChurnSimulator) -> None:
    frame = ChurnSimulator(seed=sim.seed, scenarios=SCENARIOS["wrong_dtype"](SHIFT)).activity(SHIFT)
    assert frame["total_charges"].dtype == object
    assert frame["total_charges"].map(lambda v: isinstance(v, str)).all()
    np.testing.assert_allclose(
        frame["total_charges"].astype(float), sim.activity(SHIFT)["total_charges"], atol=0.006
    )
    scenario = Scenario("w", "wrong_dtype", SHIFT, column="tenure_months")
    frame = ChurnSimulator(seed=sim.seed, scenarios=[scenario]).activity(SHIFT)
    assert frame["tenure_months"].map(lambda v: isinstance(v, str)).all()
    assert frame["tenure_months"].str.fullmatch(r"\d+").all()


def test_data_quality_scenarios_combine_in_any_order(sim: ChurnSimulator) -> None:
    nulls = SCENARIOS["nulls"](SHIFT)
    renamed = SCENARIOS["renamed_column"](SHIFT)
    for scenarios in (nulls + renamed, renamed + nulls):
        frame = ChurnSimulator(seed=sim.seed, scenarios=scenarios).activity(SHIFT)
        assert "monthly_charges" not in frame.columns
        assert 0.4 < frame["monthly_charge"].isna().mean() < 0.6


# -- files ---------------------------------------------------------------------------------
def test_write_day(tmp_path: Path, sim: ChurnSimulator) -> None:
    d = day(sim.label_delay_days + 1)
    paths = sim.write_day(tmp_path, d)
    assert paths == {
        "raw": str(tmp_path / "raw" / f"dt={d.isoformat()}" / "activity.parquet"),
        "labels": str(tmp_path / "labels" / f"dt={d.isoformat()}" / "labels.parquet"),
    }
    raw = pq.read_table(paths["raw"]).to_pandas()
    pd.testing.assert_frame_equal(raw, sim.activity(d))
    labels = pq.read_table(paths["labels"]).to_pandas()
    pd.testing.assert_frame_equal(labels, sim.labels(day(1)))

    first_mtime = os.stat(paths["raw"]).st_mtime_ns
    assert sim.write_day(tmp_path, d) == paths  # rerun replaces
    assert os.stat(paths["raw"]).st_mtime_ns >= first_mtime
    for key in ("raw", "labels"):
        assert os.listdir(Path(paths[key]).parent) == [Path(paths[key]).name]  # no temp leftovers
    dataset = pads.dataset(tmp_path / "raw", format="parquet", partitioning="hive")
    assert dataset.count_rows() == len(raw)


def test_write_day_empty_labels_keep_schema(tmp_path: Path, sim: ChurnSimulator) -> None:
    paths = sim.write_day(tmp_path, START)
    table = pq.read_table(paths["labels"])
    assert table.num_rows == 0
    assert table.schema.field(ENTITY_COLUMN).type == pa.int64()
    assert table.schema.field(LABEL_COLUMN).type == pa.int64()
    assert table.schema.field(TIMESTAMP_COLUMN).type == pa.timestamp("ns", tz="UTC")
    assert table.schema.field("label_available_at").type == pa.timestamp("ns", tz="UTC")
    raw_schema = pq.read_schema(paths["raw"])
    for col in CATEGORICAL_FEATURES:
        assert raw_schema.field(col).type == pa.string()


def test_write_day_with_corrupted_data(tmp_path: Path) -> None:
    scenarios = SCENARIOS["wrong_dtype"](START) + SCENARIOS["renamed_column"](START)
    sim = ChurnSimulator(seed=2, n_customers=400, scenarios=scenarios)
    schema = pq.read_schema(sim.write_day(tmp_path, START)["raw"])
    assert schema.field("total_charges").type == pa.string()
    assert "monthly_charge" in schema.names and "monthly_charges" not in schema.names


def test_write_range_and_rerun(tmp_path: Path) -> None:
    sim = ChurnSimulator(seed=9, n_customers=600, label_delay_days=2)
    written = sim.write_range(tmp_path, day(0), day(4))
    assert len(written) == 5
    assert sim.days(day(0), day(4)) == [day(i) for i in range(5)]
    assert sim.days(day(4), day(0)) == []
    sim.write_range(tmp_path, day(0), day(4))  # rerun: replaced, not appended
    labels = pads.dataset(tmp_path / "labels", format="parquet", partitioning="hive").to_table()
    frame = labels.to_pandas()
    expected = pd.concat([sim.labels(day(i)) for i in range(3)], ignore_index=True)
    assert len(frame) == len(expected)
    assert not frame.duplicated([ENTITY_COLUMN, TIMESTAMP_COLUMN]).any()
    raw = pads.dataset(tmp_path / "raw", format="parquet", partitioning="hive").to_table()
    assert raw.num_rows == sum(len(sim.activity(day(i))) for i in range(5))


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "--root",
            str(tmp_path),
            "--start",
            "2026-01-01",
            "--days",
            "3",
            "--seed",
            "4",
            "--customers",
            "500",
            "--label-delay",
            "1",
            "--scenario",
            "covariate_shift@2026-01-02",
        ]
    )
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("2026-01-01 rows=") and "scenarios=-" in lines[0]
    assert "covariate_shift[2026-01-02..]" in lines[1]
    assert "labels_arrived=0" in lines[0] and "labels_arrived=0" not in lines[1]
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == [
        "dt=2026-01-01",
        "dt=2026-01-02",
        "dt=2026-01-03",
    ]


def test_cli_rejects_bad_scenario(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        main(["--root", str(tmp_path), "--start", "2026-01-01", "--scenario", "meteor@2026-01-02"])


def test_labelled_joins_each_days_activity_with_its_label(sim: ChurnSimulator) -> None:
    first = sim.start_date
    table = sim.labelled(first, 2)
    days = [first, first + dt.timedelta(days=1)]
    assert len(table) == sum(len(sim.activity(d)) for d in days)
    assert table["churned"].tolist() == [v for d in days for v in sim.labels(d)["churned"]]
    assert "label_available_at" not in table.columns
