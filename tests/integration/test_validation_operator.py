"""DataValidationOperator inside real DAGs (``dag.test()``) on simulator partitions.

Covers the three ``on_failure`` modes (fail, warn with a branch, quarantine with a rerun), the
XCom summary, the report files and link, and the failure messages (captured through the task's
``on_failure_callback``, which receives the exception).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from include.dag_runner import run_dag, task_states, xcom
from include.simulator import SCENARIOS, ChurnSimulator
from mlops_provider.core import io
from mlops_provider.core.results import COMMON_KEYS, check_result
from mlops_provider.links.reports import ReportLink
from mlops_provider.operators.validation import DataValidationOperator, branch_on_result

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RAW_SUITE = str(ROOT / "include" / "expectations" / "churn_raw.json")
CLEAN_DAY = date(2026, 1, 5)
NULLS_DAY = date(2026, 1, 6)
RENAMED_DAY = date(2026, 1, 7)
WRONG_DTYPE_DAY = date(2026, 1, 8)
SIM = ChurnSimulator(
    seed=11,
    n_customers=300,
    scenarios=[
        *SCENARIOS["nulls"](NULLS_DAY, NULLS_DAY),
        *SCENARIOS["renamed_column"](RENAMED_DAY, RENAMED_DAY),
        *SCENARIOS["wrong_dtype"](WRONG_DTYPE_DAY, WRONG_DTYPE_DAY),
    ],
)
SUMMARY_KEYS = {
    "success",
    "dataset",
    "suite",
    "row_count",
    "evaluated_expectations",
    "successful_expectations",
    "failed_expectations",
    "failed",
    "result_uri",
    "report_uri",
    "quarantine_uri",
}
#: The common result keys (docs/results.md) and the validation's own keys.
RESULT_KEYS = SUMMARY_KEYS | set(COMMON_KEYS)


@pytest.fixture
def lake(mlops_home: Path) -> Path:
    """The data root of this test with the raw partitions of the four days."""
    root = mlops_home / "data"
    for day in (CLEAN_DAY, NULLS_DAY, RENAMED_DAY, WRONG_DTYPE_DAY):
        SIM.write_day(root, day)
    return root


def _raw(lake: Path, day: date | str) -> str:
    return f"{lake}/raw/dt={day}/activity.parquet"


def _dag(name: str) -> Any:
    from airflow.sdk import DAG
    from airflow.timetables.interval import CronDataIntervalTimetable

    return DAG(
        dag_id=f"{name}_{uuid.uuid4().hex[:6]}",
        schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
    )


def _recorder(path: Path) -> Any:
    """An ``on_failure_callback`` that writes the exception's type and message to ``path``."""

    def record(context: Any) -> None:
        exc = context.get("exception")
        path.write_text(json.dumps({"type": type(exc).__name__, "message": str(exc)}))

    return record


def _snapshot(path: str) -> tuple[bytes, int]:
    return Path(path).read_bytes(), Path(path).stat().st_mtime_ns


def test_clean_partition_passes_with_templated_uri_report_and_link(
    airflow_db: Path, lake: Path
) -> None:
    with _dag("validate_clean") as dag:
        DataValidationOperator(
            task_id="validate",
            dataset=f"{lake}/raw/dt={{{{ data_interval_start | ds }}}}/activity.parquet",
            expectation_suite=RAW_SUITE,  # uses data_interval_start/_end and now
        )
    run = run_dag(dag, CLEAN_DAY)
    assert task_states(run) == {"validate": "success"}
    summary = xcom(run, "validate")
    assert set(summary) == RESULT_KEYS
    assert check_result(summary) == []
    assert summary["status"] == "passed" and summary["passed"] is True
    assert summary["reasons"] == [] and summary["model"] is None
    assert summary["success"] is True
    assert summary["rows"] == summary["row_count"]
    assert xcom(run, "validate", key="status") == "passed"
    assert xcom(run, "validate", key="passed") is True
    assert summary["dataset"] == _raw(lake, CLEAN_DAY)
    assert summary["row_count"] == len(SIM.activity(CLEAN_DAY))
    assert summary["failed"] == [] and summary["failed_expectations"] == 0
    assert summary["evaluated_expectations"] == summary["successful_expectations"] >= 40
    # default: <data_root>/reports/validation/<dataset name>/dt=<partition day>/<task_id>
    report_dir = lake / "reports" / "validation" / "raw" / "dt=2026-01-05" / "validate"
    assert summary["report_uri"] == str(report_dir / "report.html")
    assert summary["result_uri"] == str(report_dir / "result.json")
    result = json.loads((report_dir / "result.json").read_text())
    assert result["success"] is True
    params = result["meta"]["mlops"]["suite_parameters"]
    assert params["data_interval_start"] == "2026-01-05T00:00:00+00:00"
    assert params["data_interval_end"] == "2026-01-06T00:00:00+00:00"
    assert "now" in params
    # the link opens the report through the provider's plugin on the API server
    link = xcom(run, "validate", key=ReportLink().xcom_key)
    assert link == "/mlops/reports/validation/raw/dt=2026-01-05/validate/report.html"


def test_fail_mode_raises_with_the_failed_expectations(
    airflow_db: Path, lake: Path, tmp_path: Path
) -> None:
    failure = tmp_path / "failure.json"
    raw = _raw(lake, NULLS_DAY)
    before = _snapshot(raw)
    with _dag("validate_fail") as dag:
        DataValidationOperator(
            task_id="validate",
            dataset=raw,
            expectation_suite=RAW_SUITE,
            on_failure="fail",
            report_uri=str(tmp_path / "reports" / "{{ ds }}"),
            on_failure_callback=_recorder(failure),
        )
    run = run_dag(dag, NULLS_DAY)
    assert task_states(run) == {"validate": "failed"}
    error = json.loads(failure.read_text())
    assert error["type"] == "DataValidationFailed"
    message = error["message"]
    assert f"dataset {raw} failed 1 of" in message
    assert "expect_column_values_to_not_be_null(monthly_charges): observed" in message
    assert "% unexpected" in message
    report_dir = tmp_path / "reports" / "2026-01-07"  # ds = logical date = interval end
    assert f"full result: {report_dir / 'result.json'}" in message
    assert (report_dir / "report.html").is_file()
    summary = xcom(run, "validate")  # pushed before raising, for failure handlers
    assert check_result(summary) == []
    assert summary["status"] == "failed" and summary["passed"] is False
    assert summary["reasons"] == [
        line[4:] for line in message.splitlines() if line.startswith("  - ")
    ]
    assert summary["success"] is False
    assert summary["failed"] == ["expect_column_values_to_not_be_null(monthly_charges)"]
    assert summary["quarantine_uri"] is None
    assert _snapshot(raw) == before
    assert not (lake / "quarantine").exists()


def test_warn_mode_succeeds_and_a_branch_routes_on_the_xcom(airflow_db: Path, lake: Path) -> None:
    from airflow.sdk import task

    with _dag("validate_warn") as dag:
        validate = DataValidationOperator(
            task_id="validate",
            dataset=f"{lake}/raw/dt={{{{ data_interval_start | ds }}}}/activity.parquet",
            expectation_suite=RAW_SUITE,
            on_failure="warn",
        )

        @task.branch
        def route(summary: dict[str, Any]) -> str | list[str]:
            return branch_on_result(summary, on_success="publish", on_failure="hold_back")

        @task
        def publish() -> str:
            return "published"

        @task
        def hold_back() -> str:
            return "held back"

        route(validate.output) >> [publish(), hold_back()]

    bad = run_dag(dag, WRONG_DTYPE_DAY)
    assert task_states(bad) == {
        "validate": "success",
        "route": "success",
        "publish": "skipped",
        "hold_back": "success",
    }
    summary = xcom(bad, "validate")
    assert check_result(summary) == []
    assert summary["status"] == "warned" and summary["passed"] is False
    assert len(summary["reasons"]) == 2
    assert summary["success"] is False
    assert set(summary["failed"]) == {
        "expect_column_values_to_be_in_type_list(total_charges)",
        "expect_column_values_to_be_between(total_charges)",
    }
    assert summary["failed_expectations"] == 2

    good = run_dag(dag, CLEAN_DAY)
    assert task_states(good)["publish"] == "success"
    assert task_states(good)["hold_back"] == "skipped"
    assert xcom(good, "validate")["success"] is True
    assert xcom(good, "validate")["status"] == "passed"


def test_quarantine_mode_copies_input_and_a_rerun_replaces_the_copy(
    airflow_db: Path, lake: Path, tmp_path: Path
) -> None:
    failure = tmp_path / "failure.json"
    raw = _raw(lake, RENAMED_DAY)
    before = _snapshot(raw)
    with _dag("validate_quarantine") as dag:
        DataValidationOperator(
            task_id="validate",
            dataset=f"{lake}/raw/dt={{{{ data_interval_start | ds }}}}/activity.parquet",
            expectation_suite=RAW_SUITE,
            on_failure="quarantine",
            on_failure_callback=_recorder(failure),
        )
    run = run_dag(dag, RENAMED_DAY)
    assert task_states(run) == {"validate": "failed"}
    target = lake / "quarantine" / "raw" / "dt=2026-01-07"
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == [
        "data",
        "data/activity.parquet",
        "report.html",
        "validation_result.json",
    ]
    assert (target / "data" / "activity.parquet").read_bytes() == before[0]
    assert _snapshot(raw) == before  # the original is untouched

    error = json.loads(failure.read_text())
    assert error["type"] == "DataValidationFailed"
    assert f"input copied to quarantine: {target}" in error["message"]
    assert (
        "expect_column_values_to_not_be_null(monthly_charges): observed column not found"
        in (error["message"])
    )
    assert "missing columns ['monthly_charges']" in error["message"]

    summary = xcom(run, "validate")
    assert check_result(summary) == []
    assert summary["status"] == "quarantined" and summary["passed"] is False
    assert summary["quarantine_uri"] == str(target)
    assert summary["success"] is False and summary["failed_expectations"] == 4
    saved = json.loads((target / "validation_result.json").read_text())
    assert saved["success"] is False
    assert saved["meta"]["mlops"]["summary"] == {k: summary[k] for k in SUMMARY_KEYS}
    assert str(target) in (target / "report.html").read_text()
    assert str(target) in Path(summary["report_uri"]).read_text()

    # A rerun for the same interval replaces the copy: stale files go, nothing duplicates.
    (target / "data" / "stale.parquet").write_bytes(b"from an older copy")
    first_copy_mtime = (target / "data" / "activity.parquet").stat().st_mtime_ns
    rerun = run_dag(dag, RENAMED_DAY)
    assert task_states(rerun) == {"validate": "failed"}
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == [
        "data",
        "data/activity.parquet",
        "report.html",
        "validation_result.json",
    ]
    assert (target / "data" / "activity.parquet").stat().st_mtime_ns >= first_copy_mtime
    assert sorted(p.name for p in target.parent.iterdir()) == ["dt=2026-01-07"]
    assert _snapshot(raw) == before


def test_unwritable_quarantine_fails_naming_the_expectations_and_the_location(
    airflow_db: Path, lake: Path, tmp_path: Path
) -> None:
    failure = tmp_path / "failure.json"
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    with _dag("validate_quarantine_unwritable") as dag:
        DataValidationOperator(
            task_id="validate",
            dataset=_raw(lake, NULLS_DAY),
            expectation_suite=RAW_SUITE,
            on_failure="quarantine",
            quarantine_uri=str(blocker / "quarantine"),
            on_failure_callback=_recorder(failure),
        )
    run = run_dag(dag, NULLS_DAY)
    assert task_states(run) == {"validate": "failed"}
    error = json.loads(failure.read_text())
    assert error["type"] == "DataValidationFailed"
    assert "expect_column_values_to_not_be_null(" in error["message"]
    assert (
        f"not copied to quarantine (quarantine_uri {blocker / 'quarantine'})" in (error["message"])
    )
    summary = xcom(run, "validate")  # failure handlers still read the result
    assert check_result(summary) == []
    assert summary["status"] == "failed" and summary["quarantine_uri"] is None
    assert summary["reasons"] and summary["failed_expectations"] == len(summary["reasons"])
    assert blocker.read_text() == "a file"


def test_empty_dataset_fails_unless_allow_empty(airflow_db: Path, lake: Path) -> None:
    empty = lake / "raw" / "dt=2026-01-09" / "activity.parquet"
    io.write_table(io.read_table(_raw(lake, CLEAN_DAY)).slice(0, 0), str(empty))
    not_null = [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "customer_id"}}
    ]
    with _dag("validate_empty") as dag:
        for task_id, allow in (("refused", False), ("allowed", "{{ 'true' }}")):
            DataValidationOperator(
                task_id=task_id,
                dataset=str(empty),
                expectation_suite=not_null,
                allow_empty=allow,
            )
    run = run_dag(dag, CLEAN_DAY)
    assert task_states(run) == {"refused": "failed", "allowed": "success"}
    allowed = xcom(run, "allowed")
    assert allowed["rows"] == 0 and allowed["passed"] is True
    assert "has 0 rows (allow_empty=True)" in allowed["reasons"][0]


def test_inline_suite_templated_parameters_and_hand_made_corruption(
    airflow_db: Path, lake: Path, tmp_path: Path
) -> None:
    frame = SIM.activity(CLEAN_DAY)
    frame = pd.concat([frame, frame.iloc[:2]], ignore_index=True)  # duplicated keys
    frame.loc[frame.index[-1], "event_timestamp"] = pd.Timestamp("2031-01-01", tz="UTC")
    corrupt = tmp_path / "incoming" / "activity.parquet"
    corrupt.parent.mkdir()
    frame.to_parquet(corrupt, index=False)
    suite = [
        {
            "type": "expect_table_row_count_to_be_between",
            "kwargs": {"min_value": {"$PARAMETER": "min_rows"}},
        },
        {
            "type": "expect_compound_columns_to_be_unique",
            "kwargs": {"column_list": ["customer_id", "event_timestamp"]},
        },
        {
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": "event_timestamp", "max_value": {"$PARAMETER": "now"}},
        },
    ]
    with _dag("validate_inline") as dag:
        DataValidationOperator(
            task_id="validate",
            dataset=str(corrupt),
            expectation_suite=suite,
            suite_parameters={"min_rows": "{{ params.min_rows }}"},
            params={"min_rows": 10},
            on_failure="warn",
        )
    run = run_dag(dag, CLEAN_DAY)
    assert task_states(run) == {"validate": "success"}
    summary = xcom(run, "validate")
    assert summary["failed"] == [
        "expect_compound_columns_to_be_unique(customer_id,event_timestamp)",
        "expect_column_values_to_be_between(event_timestamp)",
    ]
    assert summary["evaluated_expectations"] == 3
    # the default report location uses the run's interval when the URI has no partition
    assert summary["report_uri"].endswith("/validation/activity/dt=2026-01-05/validate/report.html")


def test_unreadable_dataset_and_broken_suite_fail_clearly(
    airflow_db: Path, lake: Path, tmp_path: Path
) -> None:
    missing_failure = tmp_path / "missing.json"
    suite_failure = tmp_path / "suite.json"
    broken = tmp_path / "broken_suite.json"
    broken.write_text('{"name": "broken", "expectations": [\n  {"type": }\n]}')
    with _dag("validate_errors") as dag:
        DataValidationOperator(
            task_id="missing_dataset",
            dataset=str(lake / "raw" / "dt=1999-01-01"),
            expectation_suite=RAW_SUITE,
            on_failure="quarantine",
            on_failure_callback=_recorder(missing_failure),
        )
        DataValidationOperator(
            task_id="broken_suite",
            dataset=_raw(lake, CLEAN_DAY),
            expectation_suite=str(broken),
            on_failure_callback=_recorder(suite_failure),
        )
    run = run_dag(dag, CLEAN_DAY)
    assert task_states(run) == {"missing_dataset": "failed", "broken_suite": "failed"}
    # bad input is not a failed validation: MlopsError (not DataValidationFailed) naming the
    # core error, the file and the problem
    missing = json.loads(missing_failure.read_text())
    assert missing["type"] == "MlopsError"
    assert missing["message"].startswith("DatasetNotFound: ")
    assert "dt=1999-01-01" in missing["message"] and "does not exist" in missing["message"]
    suite_error = json.loads(suite_failure.read_text())
    assert suite_error["type"] == "MlopsError"
    assert suite_error["message"].startswith("SuiteError: suite file ")
    assert str(broken) in suite_error["message"] and "line 2" in suite_error["message"]
    assert not (lake / "quarantine").exists()
    assert not (lake / "reports").exists()


def test_on_failure_is_checked_when_the_dag_is_defined() -> None:
    with pytest.raises(ValueError, match="on_failure must be one of"):
        DataValidationOperator(
            task_id="v", dataset="x.parquet", expectation_suite=RAW_SUITE, on_failure="ignore"
        )


def test_aws_conn_id_defaults_to_aws_default() -> None:
    operator = DataValidationOperator(task_id="v", dataset="x.parquet", expectation_suite=RAW_SUITE)
    assert operator.aws_conn_id == "aws_default"


def test_branch_on_result() -> None:
    assert branch_on_result({"passed": True}, on_success="a", on_failure="b") == "a"
    assert branch_on_result({"passed": False}, on_success="a", on_failure="b") == "b"
    # a result of an earlier release carries ``success`` only
    assert branch_on_result({"success": True}, on_success="a", on_failure="b") == "a"
    assert branch_on_result({"success": False}, on_success="a", on_failure=["b", "c"]) == [
        "b",
        "c",
    ]
    assert branch_on_result(None, on_success="a", on_failure="b") == "b"


# ------------------------------------------------------------------------------------------
# s3:// through an aws connection (moto S3 server)
# ------------------------------------------------------------------------------------------
@pytest.fixture
def aws_conn(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    import boto3
    from moto.server import ThreadedMotoServer

    from tests.conftest import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_VALIDATION",
        json.dumps(
            {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"},
            }
        ),
    )
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket="lake")
    yield "aws_validation"
    server.stop()


def test_s3_dataset_report_and_quarantine_through_the_connection(
    airflow_db: Path, mlops_home: Path, aws_conn: str
) -> None:
    raw = "s3://lake/raw/dt=2026-01-06/activity.parquet"
    io.write_table(SIM.activity(NULLS_DAY), raw, conn_id=aws_conn)
    with _dag("validate_s3") as dag:
        DataValidationOperator(
            task_id="validate",
            dataset="s3://lake/raw/dt={{ data_interval_start | ds }}/activity.parquet",
            expectation_suite=RAW_SUITE,
            on_failure="quarantine",
            report_uri="s3://lake/reports/validation/raw/dt={{ data_interval_start | ds }}",
            quarantine_uri="s3://lake/quarantine/raw/dt={{ data_interval_start | ds }}",
            aws_conn_id=aws_conn,
        )
    run = run_dag(dag, NULLS_DAY)
    assert task_states(run) == {"validate": "failed"}
    summary = xcom(run, "validate")
    assert summary["result_uri"] == "s3://lake/reports/validation/raw/dt=2026-01-06/result.json"
    assert summary["quarantine_uri"] == "s3://lake/quarantine/raw/dt=2026-01-06"
    assert summary["failed"] == ["expect_column_values_to_not_be_null(monthly_charges)"]
    result = json.loads(io.read_text(summary["result_uri"], conn_id=aws_conn))
    assert result["meta"]["mlops"]["summary"]["quarantine_uri"] == summary["quarantine_uri"]
    copied = io.read_table(
        "s3://lake/quarantine/raw/dt=2026-01-06/data/activity.parquet", conn_id=aws_conn
    )
    assert copied.equals(io.read_table(raw, conn_id=aws_conn))
    for name in ("validation_result.json", "report.html"):
        assert io.exists(f"s3://lake/quarantine/raw/dt=2026-01-06/{name}", conn_id=aws_conn)
    assert not (mlops_home / "data" / "quarantine").exists()  # nothing went to the local lake
