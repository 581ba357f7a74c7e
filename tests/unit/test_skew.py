"""Training-serving skew core: row-by-row comparisons, tolerance, strings, offline-missing
values, the verdict, sampling and the report (no Feast, no MLflow)."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops_provider.core import io
from mlops_provider.core.errors import ParameterError
from mlops_provider.core.monitoring import (
    FeatureSkew,
    MonitoringError,
    check_skew,
    compare_features,
    render_skew_report,
    sample_rows,
    skew_verdict,
)

UTC = timezone.utc


def _frames(online: dict[str, list[Any]], offline: dict[str, list[Any]]) -> tuple[Any, Any]:
    n = len(next(iter(online.values())))
    ids = {"customer_id": list(range(1, n + 1))}
    return pd.DataFrame({**ids, **online}), pd.DataFrame(offline)


def test_identical_values_match_and_types_are_detected() -> None:
    online, offline = _frames(
        {
            "x": [1.0, 2.5, 3.0],
            "n": [1, 2, 3],
            "plan": ["a", "b", "c"],
            "flag": [True, False, True],
        },
        {"x": [1.0, 2.5, 3.0], "n": [1.0, 2.0, 3.0], "plan": ["a", "b", "c"], "flag": [1, 0, 1]},
    )
    out = compare_features(online, offline, ["x", "n", "plan", "flag"])
    assert {n: s.kind for n, s in out.items()} == {
        "x": "numeric",
        "n": "numeric",  # an int served, a float offline (nulls turn ints into floats)
        "plan": "exact",
        "flag": "numeric",
    }
    for skew in out.values():
        assert (skew.rows, skew.compared, skew.mismatches, skew.offline_missing) == (3, 3, 0, 0)
        assert skew.mismatch_rate == 0.0 and skew.examples == []


def test_numbers_match_within_the_relative_and_absolute_tolerance() -> None:
    base = np.array([100.0, 100.0, 100.0, 0.0, 0.0])
    served = np.array([100.0 + 1e-5, 100.0 + 2e-3, 110.0, 5e-10, 1e-6])
    online, offline = _frames({"x": list(served)}, {"x": list(base)})
    default = compare_features(online, offline, ["x"])["x"]
    # rtol 1e-6 * 100 = 1e-4: 1e-5 is within, 2e-3 and 10 are not; atol 1e-9: 5e-10 is within
    assert default.mismatches == 3 and default.compared == 5
    assert default.mismatch_rate == pytest.approx(3 / 5)
    loose = compare_features(online, offline, ["x"], rtol=1e-4, atol=1e-5)["x"]
    assert loose.mismatches == 1  # only 110 vs 100
    assert loose.examples == [{"online": 110.0, "offline": 100.0}]


def test_strings_must_be_equal_exactly() -> None:
    online, offline = _frames(
        {"plan": ["basic", "Basic", "basic ", "premium"]},
        {"plan": ["basic", "basic", "basic", "premium"]},
    )
    skew = compare_features(online, offline, ["plan"], context_columns=["customer_id"])["plan"]
    assert skew.kind == "exact" and skew.mismatches == 2 and skew.compared == 4
    assert skew.examples == [
        {"customer_id": 2, "online": "Basic", "offline": "basic"},
        {"customer_id": 3, "online": "basic ", "offline": "basic"},
    ]


def test_offline_missing_is_counted_apart_and_online_missing_is_a_mismatch() -> None:
    online, offline = _frames(
        {"x": [1.0, 2.0, np.nan, 4.0, np.nan], "plan": ["a", None, "c", "d", None]},
        {"x": [1.0, np.nan, 3.0, None, np.nan], "plan": [None, "b", "c", None, None]},
    )
    out = compare_features(online, offline, ["x", "plan"])
    x, plan = out["x"], out["plan"]
    # x: rows 2 and 4 and 5 have no offline value; row 3 was served without one (mismatch)
    assert (x.rows, x.offline_missing, x.compared, x.mismatches, x.online_missing) == (
        5,
        3,
        2,
        1,
        1,
    )
    assert x.mismatch_rate == 0.5 and x.offline_missing_rate == pytest.approx(0.6)
    assert x.examples == [{"online": None, "offline": 3.0}]
    # plan: offline missing in rows 1, 4, 5; row 2 served None where offline has "b"
    assert (plan.offline_missing, plan.compared, plan.mismatches, plan.online_missing) == (
        3,
        2,
        1,
        1,
    )


def test_nothing_compared_has_no_rate() -> None:
    online, offline = _frames({"x": [1.0, 2.0]}, {"x": [np.nan, np.nan]})
    skew = compare_features(online, offline, ["x"])["x"]
    assert skew.compared == 0 and skew.mismatch_rate is None and skew.offline_missing == 2


def test_examples_are_limited_and_show_the_context() -> None:
    ts = pd.Timestamp("2026-01-05T10:00:00", tz="UTC")
    online = pd.DataFrame(
        {"customer_id": range(10), "event_timestamp": [ts] * 10, "x": np.arange(10.0) + 1}
    )
    offline = pd.DataFrame({"x": np.arange(10.0)})
    skew = compare_features(
        online,
        offline,
        ["x"],
        context_columns=["customer_id", "event_timestamp", "not_in_log"],
        max_examples=2,
    )["x"]
    assert skew.mismatches == 10 and len(skew.examples) == 2
    assert skew.examples[0] == {
        "customer_id": 0,
        "event_timestamp": "2026-01-05T10:00:00+00:00",
        "online": 1.0,
        "offline": 0.0,
    }


def test_compare_rejects_frames_that_do_not_line_up() -> None:
    with pytest.raises(ValueError, match="online has 2 rows, offline 1"):
        compare_features(pd.DataFrame({"x": [1, 2]}), pd.DataFrame({"x": [1]}), ["x"])
    with pytest.raises(ValueError, match=r"\['y'\] missing"):
        compare_features(pd.DataFrame({"x": [1]}), pd.DataFrame({"x": [1]}), ["x", "y"])


def test_counts_add_up_across_row_groups() -> None:
    one = FeatureSkew("x", "numeric", 10, 8, 2, 2, 0, [{"online": 1}])
    two = FeatureSkew("x", "numeric", 5, 5, 1, 0, 1, [{"online": 2}, {"online": 3}])
    one.add(two, max_examples=2)
    assert (one.rows, one.compared, one.mismatches, one.offline_missing, one.online_missing) == (
        15,
        13,
        3,
        2,
        1,
    )
    assert one.examples == [{"online": 1}, {"online": 2}]
    assert one.to_dict(0.1)["mismatch_rate"] == round(3 / 13, 6)
    assert one.to_dict(0.1)["skewed"] is True and one.to_dict(0.5)["skewed"] is False


def _skew(rows: int, compared: int, mismatches: int) -> FeatureSkew:
    return FeatureSkew("f", "numeric", rows, compared, mismatches, rows - compared)


def test_verdict_by_the_max_mismatch_rate() -> None:
    stats = {"a": _skew(100, 100, 1), "b": _skew(100, 90, 20), "c": _skew(100, 100, 0)}
    status, reasons, skewed = skew_verdict(stats, 0.01)
    assert status == "skew" and skewed == ["b"]
    assert (
        reasons[0].startswith("skew: 1 of 3 feature(s)") and "b (22.22% of 90 rows)" in reasons[0]
    )
    assert reasons[1] == (
        "rows without an offline value at their time (not compared): b (10 of 100)"
    )
    # a rate equal to the threshold is not skew
    status, reasons, skewed = skew_verdict({"a": _skew(100, 100, 1)}, 0.01)
    assert (status, skewed) == ("ok", []) and reasons[0].startswith("no skew: 1 feature(s)")
    status, reasons, _ = skew_verdict({"a": _skew(10, 0, 0)}, 0.01)
    assert status == "insufficient_data" and reasons[0].startswith("nothing compared")


def test_sampling_is_seeded_keeps_order_and_only_applies_above_max_rows() -> None:
    frame = pd.DataFrame({"i": range(1000)})
    a = sample_rows(frame, 100, seed=7)
    b = sample_rows(frame, 100, seed=7)
    c = sample_rows(frame, 100, seed=8)
    assert len(a) == 100 and a.equals(b) and not a.equals(c)
    assert a["i"].is_monotonic_increasing and a["i"].is_unique
    assert list(a.index) == list(range(100))
    assert sample_rows(frame, 1000, seed=7).equals(frame)
    assert sample_rows(frame, None).equals(frame)


def _result(features: dict[str, FeatureSkew], threshold: float = 0.01) -> dict[str, Any]:
    status, reasons, _ = skew_verdict(features, threshold)
    return {
        "status": status,
        "reasons": reasons,
        "max_mismatch_rate": threshold,
        "predictions_data": "/lake/predictions-online/churn",
        "days": ["2026-01-05"],
        "missing_days": [],
        "rows": 100,
        "rows_logged": 100,
        "feature_source": "feature service churn_model",
        "timestamp_column": "event_timestamp",
        "rtol": 1e-6,
        "atol": 1e-9,
        "variants": {"primary": 90, "canary": 10},
        "features": {n: s.to_dict(threshold) for n, s in features.items()},
    }


def test_report_has_the_verdict_a_plot_and_the_examples() -> None:
    stats = {
        "monthly_charges": FeatureSkew(
            "monthly_charges", "numeric", 100, 100, 20, 0, 0, [{"customer_id": 7, "online": 1.1}]
        ),
        "tenure_months": _skew(100, 100, 0),
    }
    html = render_skew_report(_result(stats), title="Training-serving skew: churn 2026-01-05")
    assert html.startswith("<!DOCTYPE html>") and "<img" in html
    assert "Mismatch rate per feature" in html and "Example mismatches" in html
    assert "monthly_charges" in html and "primary (90), canary (10)" in html
    assert 'class="bad">skew<' in html


def test_nothing_to_check_without_log_partitions(tmp_path: Path) -> None:
    with pytest.raises(MonitoringError, match=r"has no rows for 2026-01-05.*nothing to check"):
        check_skew(str(tmp_path / "log"), [date(2026, 1, 5)], store=None)  # type: ignore[arg-type]


def test_parameters_are_checked_before_reading(tmp_path: Path) -> None:
    log_uri = str(tmp_path / "log")
    with pytest.raises(ParameterError, match="max_mismatch_rate: must be <= 1"):
        check_skew(log_uri, ["2026-01-05"], store=None, options={"max_mismatch_rate": 2})  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="days: 'soon' is not a YYYY-MM-DD day"):
        check_skew(log_uri, ["soon"], store=None)  # type: ignore[arg-type]
    with pytest.raises(ParameterError, match="not both"):
        check_skew(log_uri, [date(2026, 1, 5)], store=None, features=["v:a"], feature_service="s")  # type: ignore[arg-type]


def test_a_variant_filter_with_no_rows_is_nothing_to_check(tmp_path: Path) -> None:
    log_uri = str(tmp_path / "log")
    row = {
        "customer_id": [1],
        "x": [1.0],
        "variant": ["primary"],
        "event_timestamp": [datetime(2026, 1, 5, 10, tzinfo=UTC)],
    }
    io.write_table(
        pd.DataFrame(row),
        io.join_uri(io.partition_uri(log_uri, date(2026, 1, 5)), "part-1.parquet"),
    )
    with pytest.raises(MonitoringError, match=r"no rows of variant\(s\) \['shadow'\]"):
        check_skew(log_uri, [date(2026, 1, 5)], store=None, options={"variants": ["shadow"]})  # type: ignore[arg-type]


def test_options_are_checked_and_unknown_ones_named() -> None:
    from mlops_provider.core.monitoring import SkewOptions

    opts = SkewOptions.of({"max_rows": "50", "variants": ["primary"], "rtol": 0})
    assert (opts.max_rows, opts.variants, opts.rtol, opts.atol) == (50, ("primary",), 0.0, 1e-9)
    assert SkewOptions.of(None) == SkewOptions()
    with pytest.raises(ParameterError, match=r"unknown option\(s\) \['tolerance'\]"):
        SkewOptions.of({"tolerance": 1})
    with pytest.raises(ParameterError, match="max_rows: must be >= 1"):
        SkewOptions.of({"max_rows": 0})
