"""Publishing a monitoring result: the report location is checked before anything is written
or any run is opened, and a failure after the monitoring run was opened ends it FAILED."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from mlops_provider.core.errors import ParameterError
from mlops_provider.core.monitoring import (
    MonitoringError,
    MonitoringRun,
    check_report_location,
    check_skew,
    publish_monitoring_result,
    run_drift_check,
    run_performance_check,
)
from mlops_provider.core.runs import RunIdentity, fail_run

DAY = date(2026, 1, 10)


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "train.parquet"
    path.write_text("not a directory")
    return path


@pytest.fixture
def client(tmp_path: Path) -> Any:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _runs(client: Any) -> dict[str, str]:
    """run id -> status of every run of the store."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    return {r.info.run_id: r.info.status for r in client.search_runs(experiments)}


def _publish(report_uri: str | None, client: Any, **overrides: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "kind": "drift",
        "name": "churn",
        "day": DAY,
        "html": "<html></html>",
        "json_name": "drift.json",
        "metrics": {"drift_share": 0.25},
        "tags": {},
        "report_uri": report_uri,
        "run": MonitoringRun(client, RunIdentity(dag_id="monitor", task_id="drift")),
        **overrides,
    }
    return publish_monitoring_result({"status": "no_drift"}, **settings)


def test_a_report_below_a_file_is_refused_naming_the_file(a_file: Path) -> None:
    for uri in (a_file / "drift", a_file / "drift" / "report.html"):
        with pytest.raises(ParameterError, match="report_uri") as raised:
            check_report_location(str(uri))
        assert f"{a_file} is a file, not a directory" in str(raised.value)
    assert a_file.read_text() == "not a directory"


def test_a_report_path_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "report.html").mkdir()
    with pytest.raises(ParameterError, match=r"report\.html is a directory, not a file"):
        check_report_location(str(tmp_path / "report.html"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_report_in_a_read_only_directory_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    with pytest.raises(ParameterError, match=f"directory {locked} is not writable"):
        check_report_location(str(locked / "reports" / "drift"))


def test_the_default_location_is_checked_below_the_reports_root(
    a_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_REPORTS_URI", str(a_file / "reports"))
    with pytest.raises(MonitoringError, match="default report location") as raised:
        check_report_location(None)
    assert "reports_uri" in str(raised.value) and str(a_file) in str(raised.value)
    monkeypatch.setenv("MLOPS_REPORTS_URI", str(tmp_path / "reports"))
    check_report_location(None)  # a directory still to create is fine
    check_report_location("s3://bucket/reports/drift")  # remote locations are not probed
    assert not (tmp_path / "reports").exists()  # the probe creates nothing


def test_an_unwritable_report_opens_no_run(a_file: Path, client: Any) -> None:
    with pytest.raises(ParameterError, match="report_uri"):
        _publish(str(a_file / "drift"), client)
    assert _runs(client) == {}


def test_a_failure_after_the_run_opened_ends_it_failed(tmp_path: Path, client: Any) -> None:
    report = tmp_path / "reports" / "drift"
    with pytest.raises(ValueError):
        _publish(str(report), client, metrics={"drift_share": "high"})
    assert list(_runs(client).values()) == ["FAILED"]
    # the retry reuses the run and finishes it
    result = _publish(str(report), client)
    assert _runs(client) == {result["mlflow_run_id"]: "FINISHED"}
    assert (report / "report.html").exists() and (report / "drift.json").exists()
    # a failing rerun leaves the finished run (and its report) as they were
    with pytest.raises(ValueError):
        _publish(str(report), client, metrics={"drift_share": "high"})
    assert _runs(client) == {result["mlflow_run_id"]: "FINISHED"}


def test_fail_run_marks_only_running_runs_and_never_raises(client: Any) -> None:
    experiment = client.create_experiment("runs")
    run_id = client.create_run(experiment).info.run_id
    assert fail_run(client, run_id, why="the work failed") is True
    assert client.get_run(run_id).info.status == "FAILED"
    assert fail_run(client, run_id, why="again") is False
    assert fail_run(client, "no-such-run", why="a missing run") is False


def test_every_check_refuses_an_unwritable_report_before_reading_data(
    a_file: Path, tmp_path: Path
) -> None:
    """The probe comes first: the data named below does not even exist."""
    missing = str(tmp_path / "missing")
    report_uri = str(a_file / "report")
    with pytest.raises(ParameterError, match="report_uri"):
        run_drift_check(missing, reference_data=missing, report_uri=report_uri)
    with pytest.raises(ParameterError, match="report_uri"):
        run_performance_check(missing, missing, run_day=DAY, report_uri=report_uri)
    with pytest.raises(ParameterError, match="report_uri"):
        check_skew(missing, [DAY], store=None, features=["v:f"], report_uri=report_uri)  # type: ignore[arg-type]
