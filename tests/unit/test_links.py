"""Extra-link URLs (links/) and the reports-root path rules behind them (core/reports.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlops_provider.core.reports import (
    ReportNotFound,
    UnsafeReportPath,
    open_report,
    report_relative_path,
    reports_root,
    safe_relative_path,
)
from mlops_provider.links.mlflow import (
    api_root_path,
    mlflow_ui_model_version_url,
    mlflow_ui_run_url,
    model_version_url,
    run_url,
)
from mlops_provider.links.reports import report_url


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "MLOPS_REPORTS_URI",
        "MLOPS_LAKE_URI",
        "MLOPS_DATA_ROOT",
        "AIRFLOW__API__BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "mlops"))


def test_reports_root_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert reports_root() == str(tmp_path / "mlops" / "data" / "reports")
    monkeypatch.setenv("MLOPS_LAKE_URI", "s3://lake/prod/")
    assert reports_root() == "s3://lake/prod/reports"
    monkeypatch.setenv("MLOPS_REPORTS_URI", "s3://reports-bucket")
    assert reports_root() == "s3://reports-bucket"
    monkeypatch.delenv("MLOPS_REPORTS_URI")
    monkeypatch.setenv("AIRFLOW__MLOPS__REPORTS_URI", "s3://from-config")  # the [mlops] section
    assert reports_root() == "s3://from-config"


def test_default_report_locations_are_below_the_served_root(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An operator without ``report_uri`` writes where the plugin serves from: with an s3://
    lake, the lake's reports, not the worker's local disk."""
    from datetime import date

    from mlops_provider.core.reports import report_location

    monkeypatch.setenv("MLOPS_LAKE_URI", "s3://lake/prod")
    location = report_location(None, kind="validation", name="raw", day=date(2026, 1, 5))
    assert location.html_uri == "s3://lake/prod/reports/validation/raw/dt=2026-01-05/report.html"
    assert report_relative_path(location.html_uri) == "validation/raw/dt=2026-01-05/report.html"


def test_report_under_the_local_root_links_to_the_plugin(tmp_path: Path) -> None:
    report = tmp_path / "mlops" / "data" / "reports" / "validation" / "raw" / "dt=2026-01-05"
    assert report_url(str(report / "report.html")) == (
        "/mlops/reports/validation/raw/dt=2026-01-05/report.html"
    )
    # file:// URIs (taken literally, as core.io does) and a symlinked data root map the same way
    assert report_url(f"file://{report}/report.html") == (
        "/mlops/reports/validation/raw/dt=2026-01-05/report.html"
    )
    (tmp_path / "mlops" / "data").mkdir(parents=True)
    (tmp_path / "alias").symlink_to(tmp_path / "mlops" / "data")
    assert report_url(str(tmp_path / "alias" / "reports" / "a.html")) == "/mlops/reports/a.html"


def test_report_under_an_s3_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_LAKE_URI", "s3://lake/prod")
    assert report_url("s3://lake/prod/reports/drift/churn/dt=2026-01-06/report.html") == (
        "/mlops/reports/drift/churn/dt=2026-01-06/report.html"
    )
    # another bucket, a sibling prefix, the root itself: not servable, the URI is kept
    for outside in (
        "s3://other/prod/reports/x.html",
        "s3://lake/prod/reports2/x.html",
        "s3://lake/prod/reports",
        "s3://lake/prod/reports/../secret.html",
    ):
        assert report_relative_path(outside) is None, outside
        assert report_url(outside) == outside


def test_report_outside_the_root_keeps_its_uri(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "report.html"
    assert report_url(str(outside)) == outside.resolve().as_uri()
    assert report_url("https://reports.example.com/r.html") == "https://reports.example.com/r.html"


def test_segments_are_percent_encoded(tmp_path: Path) -> None:
    root = tmp_path / "mlops" / "data" / "reports"
    assert report_url(str(root / "my model" / "r#1?.html")) == (
        "/mlops/reports/my%20model/r%231%3F.html"
    )
    assert model_version_url("churn model/eu", 3) == (
        "/mlops/mlflow/models/churn%20model%2Feu/versions/3"
    )


def test_mlflow_links(monkeypatch: pytest.MonkeyPatch) -> None:
    assert run_url("abc123", "7") == "/mlops/mlflow/runs/abc123?experiment_id=7"
    assert run_url("abc123") == "/mlops/mlflow/runs/abc123"
    assert run_url("abc123", "7", conn_id="mlflow_default") == (
        "/mlops/mlflow/runs/abc123?experiment_id=7"
    )
    assert run_url("abc123", None, conn_id="mlflow_prod") == (
        "/mlops/mlflow/runs/abc123?conn_id=mlflow_prod"
    )
    assert model_version_url("churn", "2", conn_id="mlflow_prod") == (
        "/mlops/mlflow/models/churn/versions/2?conn_id=mlflow_prod"
    )
    # what the plugin redirects to
    assert mlflow_ui_run_url("http://mlflow:5000/", "7", "abc") == (
        "http://mlflow:5000/#/experiments/7/runs/abc"
    )
    assert mlflow_ui_model_version_url("https://m.example.com", "churn", 2) == (
        "https://m.example.com/#/models/churn/versions/2"
    )
    assert mlflow_ui_run_url("sqlite:////tmp/mlflow.db", "7", "abc") is None


def test_links_follow_the_api_base_url_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind a reverse proxy under a path, the API server (and its plugin) live below it; the
    links stay root-relative so the browser keeps the host (and the session cookie) it has."""
    assert api_root_path() == ""
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/team-a/")
    assert api_root_path() == "/team-a"
    assert run_url("abc") == "/team-a/mlops/mlflow/runs/abc"
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://localhost:8080")
    assert model_version_url("churn", 1) == "/mlops/mlflow/models/churn/versions/1"


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/etc/passwd",
        "..",
        "../x",
        "a/../../x",
        "a/./b",
        "a//b",
        "a/",
        ".env",
        "a/.staging/b",
        "a\\..\\b",
        "C:/x",
        "a\x00b",
    ],
)
def test_unsafe_request_paths_are_refused(path: str) -> None:
    with pytest.raises(UnsafeReportPath):
        safe_relative_path(path)


def test_open_report_stays_inside_the_real_root(tmp_path: Path) -> None:
    root = tmp_path / "reports"
    (root / "a").mkdir(parents=True)
    (root / "a" / "report.html").write_text("<p>ok</p>")
    (tmp_path / "secret.txt").write_text("secret")
    (root / "leak.txt").symlink_to(tmp_path / "secret.txt")
    (root / "inner.html").symlink_to(root / "a" / "report.html")  # inside: fine
    found = open_report("a/report.html", root=str(root))
    assert found.local_path == os.path.realpath(root / "a" / "report.html")
    assert found.media_type == "text/html; charset=utf-8"
    assert open_report("inner.html", root=str(root)).local_path == found.local_path
    for path in ("leak.txt", "a", "missing.html"):
        with pytest.raises(ReportNotFound):
            open_report(path, root=str(root))
    with pytest.raises(UnsafeReportPath):
        open_report("../secret.txt", root=str(root))
