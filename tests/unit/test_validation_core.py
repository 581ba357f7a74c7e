"""Validation core with real Great Expectations on small frames: suites, bad inputs, outputs,
quarantine. No Airflow."""

from __future__ import annotations

import json
import os
import re
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np
import pandas as pd
import pytest

from include.simulator import (
    CATEGORY_LEVELS,
    FEATURE_COLUMNS,
    SCENARIOS,
    ChurnSimulator,
)
from mlops_provider.core import io
from mlops_provider.core.errors import ParameterError
from mlops_provider.core.results import check_result
from mlops_provider.core.validation import (
    QuarantineError,
    SuiteError,
    ValidationOutcome,
    check_dataset,
    dataset_name,
    load_suite,
    partition_key,
    quarantine,
    read_suite,
    render_validation_report,
    suite_parameter_names,
    validate_dataset,
    validate_frame,
)

ROOT = Path(__file__).resolve().parents[2]
EXPECTATIONS = ROOT / "include" / "expectations"
RAW_SUITE = EXPECTATIONS / "churn_raw.json"
DAY = date(2026, 1, 5)
PARAMS = {
    "data_interval_start": datetime(2026, 1, 5, tzinfo=timezone.utc),
    "data_interval_end": datetime(2026, 1, 6, tzinfo=timezone.utc),
    "now": "2026-01-06T00:30:00+00:00",
}


def _sim(*scenarios: str) -> ChurnSimulator:
    chosen = [s for name in scenarios for s in SCENARIOS[name](DAY, DAY)]
    return ChurnSimulator(seed=7, n_customers=300, scenarios=chosen)


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    return _sim().activity(DAY)


def _write(frame: pd.DataFrame, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return str(path)


def _failed(outcome: ValidationOutcome) -> dict[str, str]:
    return {r.short_name: r.observed for r in outcome.failed}


# --------------------------------------------------------------------------- suites


def test_raw_suite_passes_on_clean_simulator_days(tmp_path: Path) -> None:
    sim = _sim()
    for day in (DAY, date(2026, 1, 6)):
        raw = sim.write_day(tmp_path, day)["raw"]
        params = {
            "data_interval_start": datetime.combine(day, datetime.min.time(), timezone.utc),
            "data_interval_end": pd.Timestamp(day, tz="UTC") + pd.Timedelta(days=1),
        }
        outcome = validate_dataset(raw, RAW_SUITE, suite_parameters=params)
        assert outcome.success, outcome.failure_message()
        assert outcome.evaluated_expectations == len(load_suite(RAW_SUITE)) >= 40
        assert outcome.row_count == len(sim.activity(day)) > 0


@pytest.mark.parametrize(
    ("scenario", "expected_failures", "observed_part"),
    [
        ("nulls", {"expect_column_values_to_not_be_null(monthly_charges)"}, "% unexpected"),
        (
            "renamed_column",
            {
                "expect_table_columns_to_match_set",
                "expect_column_values_to_not_be_null(monthly_charges)",
                "expect_column_values_to_be_in_type_list(monthly_charges)",
                "expect_column_values_to_be_between(monthly_charges)",
            },
            "column not found: monthly_charges",
        ),
        (
            "wrong_dtype",
            {
                "expect_column_values_to_be_in_type_list(total_charges)",
                "expect_column_values_to_be_between(total_charges)",
            },
            "of type ['str']",
        ),
    ],
)
def test_raw_suite_fails_on_each_data_quality_scenario(
    tmp_path: Path, scenario: str, expected_failures: set[str], observed_part: str
) -> None:
    raw = _sim(scenario).write_day(tmp_path, DAY)["raw"]
    outcome = validate_dataset(raw, RAW_SUITE, suite_parameters=PARAMS)
    failed = _failed(outcome)
    assert not outcome.success
    assert set(failed) == expected_failures
    assert any(observed_part in observed for observed in failed.values()), failed


def test_renamed_column_reports_missing_and_unexpected_columns(tmp_path: Path) -> None:
    raw = _sim("renamed_column").write_day(tmp_path, DAY)["raw"]
    outcome = validate_dataset(raw, RAW_SUITE, suite_parameters=PARAMS)
    observed = _failed(outcome)["expect_table_columns_to_match_set"]
    assert "missing columns ['monthly_charges']" in observed
    assert "unexpected columns ['monthly_charge']" in observed


def test_missing_column_is_a_failed_expectation_not_a_crash(clean: pd.DataFrame) -> None:
    outcome = validate_frame(clean.drop(columns=["plan"]), RAW_SUITE, suite_parameters=PARAMS)
    failed = _failed(outcome)
    assert failed["expect_column_values_to_be_in_set(plan)"] == "column not found: plan"
    assert failed["expect_column_values_to_not_be_null(plan)"] == "column not found: plan"
    assert "missing columns ['plan']" in failed["expect_table_columns_to_match_set"]
    errored = [r for r in outcome.failed if r.column == "plan"]
    assert all(r.error and "not in the dataset" in r.error for r in errored)


def test_wrong_dtype_numeric_column_as_strings(clean: pd.DataFrame) -> None:
    frame = clean.assign(customer_id=clean["customer_id"].astype(str))
    failed = _failed(validate_frame(frame, RAW_SUITE, suite_parameters=PARAMS))
    assert (
        "100.00% of values of type ['str']"
        in failed["expect_column_values_to_be_in_type_list(customer_id)"]
    )


def test_wrong_dtype_non_object_column_reports_dtype(clean: pd.DataFrame) -> None:
    frame = clean.assign(sessions_last_7d=clean["sessions_last_7d"].astype("float64"))
    failed = _failed(validate_frame(frame, RAW_SUITE, suite_parameters=PARAMS))
    assert failed == {"expect_column_values_to_be_in_type_list(sessions_last_7d)": "float64"}


@pytest.mark.parametrize("column", ["monthly_charges", "plan"])
def test_all_null_column(clean: pd.DataFrame, column: str) -> None:
    frame = clean.copy()
    frame[column] = np.nan if column == "monthly_charges" else None
    outcome = validate_frame(frame, RAW_SUITE, suite_parameters=PARAMS)
    failed = _failed(outcome)
    assert failed[f"expect_column_values_to_not_be_null({column})"].startswith("100.00% unexpected")
    assert outcome.null_share[column] == 1.0


def test_zero_byte_file_is_a_clear_dataset_error(tmp_path: Path) -> None:
    path = tmp_path / "raw" / "dt=2026-01-05" / "activity.parquet"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    with pytest.raises(io.DatasetFormatError, match=r"empty \(0 bytes\)"):
        validate_dataset(path, RAW_SUITE, suite_parameters=PARAMS)
    assert path.exists() and path.stat().st_size == 0


def test_zero_rows_fail_the_row_count_expectation(tmp_path: Path, clean: pd.DataFrame) -> None:
    path = _write(clean.iloc[:0], tmp_path / "empty.parquet")
    outcome = validate_dataset(path, RAW_SUITE, suite_parameters=PARAMS)
    assert outcome.row_count == 0
    assert _failed(outcome) == {"expect_table_row_count_to_be_between": "0"}
    assert "(0 rows)" in outcome.failure_message()


def test_corrupt_parquet_is_a_clear_dataset_error(tmp_path: Path, clean: pd.DataFrame) -> None:
    path = Path(_write(clean, tmp_path / "activity.parquet"))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(io.DatasetFormatError, match="not readable as parquet"):
        validate_dataset(path, RAW_SUITE, suite_parameters=PARAMS)


def test_missing_path_is_a_clear_dataset_error(tmp_path: Path) -> None:
    missing = tmp_path / "raw" / "dt=2026-01-05"
    with pytest.raises(io.DatasetNotFound, match="does not exist") as info:
        validate_dataset(missing, RAW_SUITE, suite_parameters=PARAMS)
    assert str(missing) in str(info.value)


def test_duplicate_entity_timestamp_rows(clean: pd.DataFrame) -> None:
    frame = pd.concat([clean, clean.iloc[:2]], ignore_index=True)
    failed = _failed(validate_frame(frame, RAW_SUITE, suite_parameters=PARAMS))
    observed = failed["expect_compound_columns_to_be_unique(customer_id,event_timestamp)"]
    assert "(4 of " in observed
    assert str(int(clean["customer_id"].iloc[0])) in observed


def test_timestamps_in_the_future(clean: pd.DataFrame) -> None:
    frame = clean.copy()
    frame.loc[frame.index[:3], "event_timestamp"] = pd.Timestamp("2027-03-01", tz="UTC")
    outcome = validate_frame(frame, RAW_SUITE, suite_parameters=PARAMS)
    between = [r for r in outcome.failed if r.short_name.endswith("to_be_between(event_timestamp)")]
    # both "inside the data interval" and "not after now" catch it
    assert len(between) == 2
    assert all(r.unexpected_count == 3 for r in between)
    assert all("2027-03-01" in r.observed for r in between)


def test_timestamps_after_now_with_a_fresh_interval(clean: pd.DataFrame) -> None:
    expectations = [
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "event_timestamp", "max_value": {"$PARAMETER": "now"}},
        }
    ]
    ok = validate_frame(clean, expectations)  # "now" defaults to the current time
    assert ok.success
    late = validate_frame(clean, expectations, suite_parameters={"now": "2026-01-05T06:00:00Z"})
    assert not late.success
    assert late.results[0].unexpected_count == int(
        (clean["event_timestamp"] > pd.Timestamp("2026-01-05T06:00:00Z")).sum()
    )


def test_unknown_category(clean: pd.DataFrame) -> None:
    frame = clean.copy()
    frame.loc[frame.index[:2], "region"] = "atlantis"
    failed = _failed(validate_frame(frame, RAW_SUITE, suite_parameters=PARAMS))
    assert list(failed) == ["expect_column_values_to_be_in_set(region)"]
    assert '"atlantis"' in failed["expect_column_values_to_be_in_set(region)"]


def test_two_expectations_of_one_type_on_one_column_both_run(clean: pd.DataFrame) -> None:
    # GX's suite.add_expectation_configuration would keep only the second one (domain upsert).
    expectations = [
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "tenure_months", "min_value": 0},
        },
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "tenure_months", "max_value": -1},
        },
    ]
    outcome = validate_frame(clean, expectations)
    assert [r.success for r in outcome.results] == [True, False]
    assert [r.index for r in outcome.results] == [0, 1]


# --------------------------------------------------------------------------- suite errors


def test_suite_file_that_is_not_json_names_file_and_position(tmp_path: Path) -> None:
    bad = tmp_path / "broken.json"
    bad.write_text('{\n  "name": "x",\n  "expectations": [\n    {"type": "a",}\n  ]\n}\n')
    with pytest.raises(SuiteError) as info:
        load_suite(bad)
    message = str(info.value)
    assert str(bad) in message
    assert "line 4" in message and "column" in message


def test_missing_suite_file(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="does not exist"):
        load_suite(tmp_path / "nope.json")


def test_unknown_expectation_type_suggests_close_names() -> None:
    with pytest.raises(SuiteError) as info:
        load_suite([{"type": "expect_column_values_to_not_be_nul", "kwargs": {"column": "a"}}])
    message = str(info.value)
    assert "'expect_column_values_to_not_be_nul'" in message
    assert "did you mean 'expect_column_values_to_not_be_null'" in message
    assert "expectation #0" in message


def test_invalid_kwargs_name_the_expectation() -> None:
    with pytest.raises(SuiteError, match=r"#1 \(expect_column_values_to_not_be_null\).*colum"):
        load_suite(
            [
                {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
                {"type": "expect_column_values_to_not_be_null", "kwargs": {"colum": "a"}},
            ]
        )


@pytest.mark.parametrize(
    ("suite", "match"),
    [
        ([], "no expectations"),
        ({"name": "x"}, "no 'expectations'"),
        ([{"kwargs": {}}], "no 'type'"),
        ([{"type": "expect_table_row_count_to_be_between", "kwargs": []}], "must be an object"),
        ("not a list but a missing path.json", "does not exist"),
    ],
)
def test_malformed_suites(suite: Any, match: str) -> None:
    with pytest.raises(SuiteError, match=match):
        load_suite(suite)


def test_missing_suite_parameter_is_named_before_reading(tmp_path: Path) -> None:
    with pytest.raises(SuiteError) as info:
        # the dataset does not exist: the suite error must come first
        validate_dataset(tmp_path / "absent.parquet", RAW_SUITE, suite_parameters={"now": "x"})
    message = str(info.value)
    assert "data_interval_end" in message and "data_interval_start" in message
    assert "expect_column_values_to_be_between(event_timestamp)" in message


def test_suite_forms_and_parameter_names(tmp_path: Path) -> None:
    name, expectations = read_suite(RAW_SUITE)
    assert name == "churn_raw"
    assert suite_parameter_names(expectations) == {
        "data_interval_start",
        "data_interval_end",
        "now",
    }
    # relative to the project root, GX 0.x key spelling, whole-suite dict
    assert load_suite("include/expectations/churn_raw.json") == expectations
    legacy = [
        {"expectation_type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}
    ]
    assert load_suite(legacy)[0]["type"] == "expect_table_row_count_to_be_between"
    assert read_suite({"name": "mine", "expectations": legacy})[0] == "mine"


@pytest.mark.parametrize("suite_file", sorted(EXPECTATIONS.glob("*.json")), ids=lambda p: p.name)
def test_shipped_suites_load(suite_file: Path) -> None:
    raw = json.loads(suite_file.read_text())
    assert raw["name"] == suite_file.stem
    assert len(load_suite(suite_file)) == len(raw["expectations"])


# --------------------------------------------------------------------------- other suites


def _training_set(clean: pd.DataFrame) -> pd.DataFrame:
    frame = clean.copy()
    frame["churned"] = (np.arange(len(frame)) % 4 == 0).astype("int64")
    return frame


def test_training_set_suite(clean: pd.DataFrame) -> None:
    suite = EXPECTATIONS / "churn_training_set.json"
    good = _training_set(clean).assign(label_available_at=pd.Timestamp("2026-01-12", tz="UTC"))
    assert validate_frame(good, suite).success
    bad = _training_set(clean)
    bad["churned"] = bad["churned"].where(bad.index > 0, 2)
    bad = pd.concat([bad, bad.iloc[1:3]], ignore_index=True)
    bad.loc[bad.index[:20], "monthly_charges"] = np.nan
    assert set(_failed(validate_frame(bad, suite))) == {
        "expect_column_values_to_be_in_set(churned)",
        "expect_compound_columns_to_be_unique(customer_id,event_timestamp)",
        "expect_column_values_to_not_be_null(monthly_charges)",
    }
    one_class = _training_set(clean).assign(churned=0)
    assert set(_failed(validate_frame(one_class, suite))) == {
        "expect_column_distinct_values_to_contain_set(churned)"
    }


def test_predictions_suite(clean: pd.DataFrame) -> None:
    suite = EXPECTATIONS / "churn_predictions.json"
    n = len(clean)
    probability = np.linspace(0.01, 0.99, n)
    good = pd.DataFrame(
        {
            "customer_id": clean["customer_id"].to_numpy(),
            "prediction": (probability >= 0.5).astype("int64"),
            "probability": probability,
            "model_name": "churn",
            "model_version": "3",
            "model_run_id": "abc123",
            "scored_at": pd.Timestamp("2026-01-06T01:00:00Z"),
            "event_timestamp": clean["event_timestamp"].to_numpy(),
        }
    )
    assert validate_frame(good, suite, suite_parameters={"expected_rows": n}).success
    short = validate_frame(good, suite, suite_parameters={"expected_rows": n + 1})
    assert set(_failed(short)) == {"expect_table_row_count_to_equal"}
    bad = good.drop(columns=["model_run_id"])
    bad.loc[0, "probability"] = 1.5
    bad.loc[1, "prediction"] = 7
    assert set(_failed(validate_frame(bad, suite, suite_parameters={"expected_rows": n}))) == {
        "expect_table_columns_to_match_set",
        "expect_column_values_to_not_be_null(model_run_id)",
        "expect_column_values_to_be_between(probability)",
        "expect_column_values_to_be_in_set(prediction)",
    }


# --------------------------------------------------------------------------- outputs


def test_result_json_report_and_summary(tmp_path: Path) -> None:
    raw = _sim("nulls").write_day(tmp_path / "lake", DAY)["raw"]
    out = tmp_path / "reports" / "dt=2026-01-05"
    outcome = validate_dataset(raw, RAW_SUITE, suite_parameters=PARAMS, result_dir=str(out))
    summary = outcome.to_summary()
    assert json.loads(json.dumps(summary)) == summary
    assert summary["success"] is False
    assert summary["failed"] == ["expect_column_values_to_not_be_null(monthly_charges)"]
    assert summary["failed_expectations"] == 1
    assert summary["successful_expectations"] == summary["evaluated_expectations"] - 1
    assert summary["row_count"] == outcome.row_count > 0
    assert summary["dataset"] == raw
    assert summary["result_uri"] == str(out / "result.json")
    assert summary["report_uri"] == str(out / "report.html")
    assert summary["quarantine_uri"] is None

    result = json.loads((out / "result.json").read_text())
    assert result["success"] is False
    assert result["statistics"]["unsuccessful_expectations"] == 1
    assert len(result["results"]) == summary["evaluated_expectations"]
    assert result["meta"]["mlops"]["summary"] == summary
    assert result["meta"]["mlops"]["suite_parameters"]["data_interval_end"] == (
        "2026-01-06T00:00:00+00:00"
    )

    html = (out / "report.html").read_text()
    svgs = re.findall(r"<svg.*?</svg>", html, re.S)
    assert len(svgs) == 2  # unexpected share per failed expectation + null share per column
    for svg in svgs:
        ElementTree.fromstring(svg)  # well-formed
    assert "monthly_charges" in svgs[1] and "Null share per column" in html
    assert 'class="bad">failed' in html and 'class="ok">passed' in html
    assert "expect_column_values_to_not_be_null" in html and "% unexpected" in html
    assert str(out / "result.json") in html

    message = outcome.failure_message()
    assert "failed 1 of" in message
    assert "expect_column_values_to_not_be_null(monthly_charges): observed" in message
    assert str(out / "result.json") in message and str(out / "report.html") in message

    # a rerun replaces the files (no staging leftovers)
    validate_dataset(raw, RAW_SUITE, suite_parameters=PARAMS, result_dir=str(out))
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "result.json"]


def test_render_validation_report_standalone(clean: pd.DataFrame, tmp_path: Path) -> None:
    outcome = validate_frame(clean, RAW_SUITE, suite_parameters=PARAMS, dataset="memory")
    html = render_validation_report(outcome, tmp_path / "r.html", title="Clean day")
    assert (tmp_path / "r.html").read_text() == html
    assert "<h1>Clean day</h1>" in html
    # one badge per expectation plus the verdict
    assert html.count('class="ok">passed') == outcome.evaluated_expectations + 1
    assert 'class="bad"' not in html
    assert html.count("<svg") == 1  # only the null share plot: nothing failed


def test_csv_dataset(tmp_path: Path, clean: pd.DataFrame) -> None:
    path = tmp_path / "activity.csv"
    clean.to_csv(path, index=False)
    expectations = [
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
        {
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": "plan", "value_set": CATEGORY_LEVELS["plan"]},
        },
        {
            "type": "expect_table_columns_to_match_set",
            "kwargs": {"column_set": ["customer_id", "event_timestamp", *FEATURE_COLUMNS]},
        },
    ]
    outcome = validate_dataset(path, expectations)
    assert outcome.success, outcome.failure_message()
    assert outcome.row_count == len(clean)


# --------------------------------------------------------------------------- quarantine


def _snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def test_quarantine_copies_file_keeps_original_and_rerun_replaces(tmp_path: Path) -> None:
    raw = Path(_sim("wrong_dtype").write_day(tmp_path / "lake", DAY)["raw"])
    before = _snapshot(raw)
    outcome = validate_dataset(
        raw, RAW_SUITE, suite_parameters=PARAMS, result_dir=str(tmp_path / "rep")
    )
    target = tmp_path / "quarantine" / "raw" / "dt=2026-01-05"
    assert quarantine(raw, str(target), outcome) == str(target)
    assert outcome.quarantine_uri == str(target)
    assert _snapshot(raw) == before
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == [
        "data",
        "data/activity.parquet",
        "report.html",
        "validation_result.json",
    ]
    assert (target / "data" / "activity.parquet").read_bytes() == before[0]
    saved = json.loads((target / "validation_result.json").read_text())
    assert saved["meta"]["mlops"]["summary"]["quarantine_uri"] == str(target)
    assert str(target) in (target / "report.html").read_text()
    assert str(target) in (tmp_path / "rep" / "report.html").read_text()

    # rerun: a stale file from an earlier copy goes, the copy is replaced, nothing duplicates
    (target / "data" / "old-name.parquet").write_bytes(b"stale")
    quarantine(raw, str(target), outcome)
    assert sorted(p.name for p in (target / "data").iterdir()) == ["activity.parquet"]
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]
    assert _snapshot(raw) == before


def test_quarantine_directory_dataset(tmp_path: Path, clean: pd.DataFrame) -> None:
    partition = tmp_path / "lake" / "features" / "dt=2026-01-05"
    io.write_partition(clean, str(partition))
    files_before = sorted(p.name for p in partition.iterdir())
    too_many_rows = [{"type": "expect_table_row_count_to_be_between", "kwargs": {"max_value": 1}}]
    outcome = validate_dataset(partition, too_many_rows)
    assert not outcome.success
    target = tmp_path / "q"
    quarantine(partition, str(target), outcome)
    assert sorted(p.name for p in (target / "data").iterdir()) == files_before
    assert sorted(p.name for p in partition.iterdir()) == files_before


def test_quarantine_of_a_missing_dataset(tmp_path: Path, clean: pd.DataFrame) -> None:
    outcome = validate_frame(
        clean, [{"type": "expect_table_row_count_to_be_between", "kwargs": {"max_value": 1}}]
    )
    with pytest.raises(io.DatasetNotFound):
        quarantine(tmp_path / "gone.parquet", str(tmp_path / "q"), outcome)
    assert not (tmp_path / "q").exists()


# --------------------------------------------------------------------------- naming


@pytest.mark.parametrize(
    ("uri", "name", "key"),
    [
        ("/lake/raw/dt=2026-01-05/activity.parquet", "raw", "dt=2026-01-05"),
        ("s3://bucket/lake/raw/dt=2026-01-05/", "raw", "dt=2026-01-05"),
        ("/lake/training/run-1/training_set.parquet", "training_set", None),
        ("file:///lake/predictions/churn", "churn", None),
        ("/lake/events/y=2026/m=01/part.csv", "events", "y=2026/m=01"),
    ],
)
def test_dataset_name_and_partition_key(uri: str, name: str, key: str | None) -> None:
    assert dataset_name(uri) == name
    assert partition_key(uri) == key


def test_outcome_paths_are_plain_strings(tmp_path: Path, clean: pd.DataFrame) -> None:
    outcome = validate_frame(
        clean, RAW_SUITE, suite_parameters=PARAMS, result_dir=os.fspath(tmp_path / "o")
    )
    assert isinstance(outcome.result_uri, str) and Path(outcome.result_uri).is_file()


def test_naming_is_core_io_s_not_a_copy() -> None:
    assert dataset_name is io.dataset_name and partition_key is io.partition_key


# --------------------------------------------------------------------------- the task's work


def test_report_uri_may_name_an_html_file(tmp_path: Path, clean: pd.DataFrame) -> None:
    outcome = validate_frame(
        clean, RAW_SUITE, suite_parameters=PARAMS, result_dir=str(tmp_path / "r" / "raw.html")
    )
    assert outcome.report_uri == str(tmp_path / "r" / "raw.html")
    assert outcome.result_uri == str(tmp_path / "r" / "raw.json")
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == ["raw.html", "raw.json"]


@pytest.mark.parametrize(
    ("scenario", "on_failure", "status"),
    [
        (None, "fail", "passed"),
        ("nulls", "warn", "warned"),
        ("nulls", "fail", "failed"),
        ("nulls", "quarantine", "quarantined"),
    ],
)
def test_check_dataset_results_follow_the_common_shape(
    mlops_home: Path, scenario: str | None, on_failure: str, status: str
) -> None:
    lake = mlops_home / "data"
    raw = (_sim(scenario) if scenario else _sim()).write_day(lake, DAY)["raw"]
    check = check_dataset(
        raw,
        RAW_SUITE,
        on_failure=on_failure,
        suite_parameters=PARAMS,
        day=datetime(2026, 2, 1, tzinfo=timezone.utc),  # the URI's dt= partition wins
        task="validate_raw",
    )
    result = check.result
    assert check_result(result) == []
    assert result["status"] == status
    assert result["passed"] is (scenario is None) is result["success"]
    assert check.stops is (status in ("failed", "quarantined"))
    assert result["rows"] == result["row_count"] == check.outcome.row_count > 0
    assert result["reasons"] == [r.describe() for r in check.outcome.failed]
    assert json.loads(json.dumps(result)) == result
    report_dir = lake / "reports" / "validation" / "raw" / "dt=2026-01-05" / "validate_raw"
    assert result["report_uri"] == str(report_dir / "report.html")
    assert result["result_uri"] == str(report_dir / "result.json")
    assert sorted(p.name for p in report_dir.iterdir()) == ["report.html", "result.json"]
    quarantined = lake / "quarantine" / "raw" / "dt=2026-01-05"
    assert result["quarantine_uri"] == (str(quarantined) if status == "quarantined" else None)
    assert quarantined.exists() is (status == "quarantined")


def test_check_dataset_day_without_partition_and_bad_parameters(
    mlops_home: Path, clean: pd.DataFrame, tmp_path: Path
) -> None:
    path = _write(clean, tmp_path / "incoming" / "activity.parquet")
    check = check_dataset(
        path,
        [{"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}}],
        day="2026-01-09T00:00:00Z",
        task="v",
        map_index=3,
    )
    expected = mlops_home / "data" / "reports" / "validation" / "activity" / "dt=2026-01-09"
    assert check.result["report_uri"] == str(expected / "v-3" / "report.html")
    with pytest.raises(ParameterError, match="parameter day: required"):
        check_dataset(path, RAW_SUITE)
    with pytest.raises(ParameterError, match="parameter on_failure"):
        check_dataset(path, RAW_SUITE, day=DAY, on_failure="ignore")
    with pytest.raises(ParameterError, match="parameter dataset"):
        check_dataset(" ", RAW_SUITE, day=DAY)


NOT_NULL_IDS = [
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "customer_id"}}
]


def test_check_dataset_refuses_an_empty_dataset_unless_allowed(
    mlops_home: Path, clean: pd.DataFrame, tmp_path: Path
) -> None:
    path = _write(clean.iloc[:0], tmp_path / "raw" / "dt=2026-01-05" / "activity.parquet")
    # every expectation on values holds on 0 rows: without allow_empty it is an error
    with pytest.raises(io.DatasetEmpty, match=r"activity\.parquet: has 0 rows.*allow_empty=True"):
        check_dataset(path, NOT_NULL_IDS, on_failure="warn")
    assert not (mlops_home / "data" / "reports").exists()
    check = check_dataset(path, NOT_NULL_IDS, allow_empty=True)
    assert check.result["status"] == "passed" and check.result["rows"] == 0
    assert check.result["reasons"] == [
        f"dataset {path} has 0 rows (allow_empty=True): expectations on its values hold on no data"
    ]
    assert check_result(check.result) == []


def test_unwritable_quarantine_names_the_failed_expectations_and_the_location(
    mlops_home: Path, tmp_path: Path
) -> None:
    raw = _sim("nulls").write_day(mlops_home / "data", DAY)["raw"]
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    with pytest.raises(QuarantineError) as info:
        check_dataset(
            raw,
            RAW_SUITE,
            on_failure="quarantine",
            suite_parameters=PARAMS,
            quarantine_uri=str(blocker / "q"),
        )
    message = str(info.value)
    failed = [r.describe() for r in info.value.outcome.failed]
    assert failed and all(line in message for line in failed)
    assert f"the input was not copied to quarantine (quarantine_uri {blocker / 'q'})" in message
    assert "Not a directory" in message and "input copied to quarantine" not in message
    assert info.value.outcome.quarantine_uri is None
    assert blocker.read_text() == "a file"


def test_the_validation_package_has_no_import_cycle() -> None:
    """core/validation <-> core/validation_report was a cycle: the report imported
    ``dataset_name`` from the module that imported it."""
    from tests.unit.test_code_shape import _cycles, _graph, _without_package_inits

    graph = _graph()
    package = "mlops_provider.core.validation"
    ours = {name for name in graph if name == package or name.startswith(f"{package}.")}
    assert {f"{package}.{m}" for m in ("suite", "outcome", "report", "run", "quarantine")} <= ours
    assert not [c for c in _cycles(_without_package_inits(graph)) if set(c) & ours]
    # no submodule goes back through the package (which imports every submodule)
    assert not [name for name in ours - {package} if package in graph[name]]
    assert f"{package}.run" not in graph[f"{package}.report"]
