"""The provider's Airflow plugin inside Airflow's own API app: reports and MLflow pages behind
Airflow's login, reached through the links real operator runs published.

One DAG run (validate -> train -> evaluate -> promote, embedded MLflow store, local data lake)
feeds every test; the API app is ``airflow.api_fastapi.app.create_app()`` with the provider's
plugins discovered, and the token is the one Airflow's auth manager issues.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest

from include.dag_runner import run_dag, task_states, xcom
from include.simulator import ChurnSimulator
from mlops_provider.core import io, runs
from mlops_provider.core.training import REFERENCE_PROFILE_PATH
from tests.conftest import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DAY = date(2026, 1, 8)
RAW_SUITE = str(ROOT / "include" / "expectations" / "churn_raw.json")
LOGREG = "sklearn.linear_model.LogisticRegression"
SIM = ChurnSimulator(seed=5, n_customers=400)
SECRET = "do-not-serve-this"


def _days(uri: str, start: date, n: int) -> str:
    frames = []
    for i in range(n):
        day = start + timedelta(days=i)
        frames.append(
            SIM.activity(day).merge(SIM.labels(day), on=["customer_id", "event_timestamp"])
        )
    io.write_table(pd.concat(frames, ignore_index=True), uri)
    return uri


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The embedded state root (data lake + MLflow store) of this module."""
    path = tmp_path_factory.mktemp("plugin") / "mlops"
    mp = pytest.MonkeyPatch()
    mp.setenv("MLOPS_HOME", str(path))
    for name in ("MLOPS_REPORTS_URI", "MLOPS_LAKE_URI", "MLOPS_REPORTS_CONN_ID"):
        mp.delenv(name, raising=False)
    yield path
    mp.undo()


@pytest.fixture(scope="module")
def lifecycle(airflow_db: Path, home: Path) -> dict[str, Any]:
    """validate -> train -> evaluate -> promote, once; what the tasks returned and linked, and the
    run links the training task had published before it finished."""
    from airflow.sdk import DAG, get_current_context

    from mlops_provider.operators.evaluation import EvaluateModelOperator
    from mlops_provider.operators.registry import PromoteModelOperator
    from mlops_provider.operators.training import TrainModelOperator
    from mlops_provider.operators.validation import DataValidationOperator

    data = home / "data"
    SIM.write_day(data, DAY)
    train_uri = _days(str(data / "train.parquet"), date(2026, 1, 1), 3)
    eval_uri = _days(str(data / "eval.parquet"), date(2026, 1, 4), 2)
    seen_while_running: list[tuple[str, Any]] = []

    def record_published_link(run_id: str, experiment_id: str) -> None:
        """Registered after the provider's listener: the link must already be in the DB."""
        ti = get_current_context()["ti"]
        value = _db_xcom(ti.dag_id, ti.run_id, ti.task_id, "_link_MlflowRunLink")
        seen_while_running.append((ti.task_id, value))

    from airflow.timetables.interval import CronDataIntervalTimetable

    with DAG(
        "reports_plugin",
        schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
    ) as dag:
        validate = DataValidationOperator(
            task_id="validate",
            dataset=f"{data}/raw/dt={{{{ data_interval_start | ds }}}}/activity.parquet",
            expectation_suite=RAW_SUITE,
        )
        train = TrainModelOperator(
            task_id="train",
            training_data=train_uri,
            target="churned",
            estimator=LOGREG,
            estimator_params={"max_iter": 300},
            experiment_name="it-plugin",
        )
        evaluate = EvaluateModelOperator(
            task_id="evaluate",
            model_uri=train.output["model_uri"],
            registered_model_name="churn",
            evaluation_data=eval_uri,
            thresholds={"roc_auc": {"min": 0.5, "min_improvement": 0.0}},
            cold_start=True,  # the first model
        )
        promote = PromoteModelOperator(
            task_id="promote", registered_model_name="churn", evaluation=evaluate.output
        )
        validate >> train >> evaluate >> promote
    runs.add_run_listener(record_published_link)
    try:
        dr = run_dag(dag, DAY)
    finally:
        runs.remove_run_listener(record_published_link)
    assert set(task_states(dr).values()) == {"success"}, task_states(dr)
    links = {
        (task, key): xcom(dr, task, key=key)
        for task in ("validate", "train", "evaluate", "promote")
        for key in ("_link_ReportLink", "_link_MlflowRunLink", "_link_MlflowModelVersionLink")
    }
    return {
        "dag_run": dr,
        "validate": xcom(dr, "validate"),
        "train": xcom(dr, "train"),
        "evaluate": xcom(dr, "evaluate"),
        "promote": xcom(dr, "promote"),
        "links": links,
        "seen_while_running": seen_while_running,
    }


def _db_xcom(dag_id: str, run_id: str, task_id: str, key: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(XComModel)
            .filter_by(dag_id=dag_id, run_id=run_id, task_id=task_id, key=key)
            .all()
        )
        return [XComModel.deserialize_value(row) for row in rows]


@pytest.fixture(scope="module")
def api(airflow_db: Path) -> Iterator[Any]:
    """Airflow's API app with the plugins of the installed providers (the provider's own
    included, registered through ``get_provider_info()["plugins"]``)."""
    from airflow import plugins_manager, settings
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    def reload_plugins() -> None:
        plugins_manager._get_plugins.cache_clear()
        plugins_manager.get_fastapi_plugins.cache_clear()

    mp = pytest.MonkeyPatch()
    mp.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "plugin-test-" + "s" * 64)  # signs the tokens
    mp.setattr(settings, "LAZY_LOAD_PROVIDERS", False)  # also load providers' "plugins"
    reload_plugins()
    try:
        apps, _ = plugins_manager.get_fastapi_plugins()
        assert "/mlops" in [a["url_prefix"] for a in apps]
        with TestClient(create_app()) as client:
            yield client
    finally:
        mp.undo()
        reload_plugins()


@pytest.fixture(scope="module")
def token(api: Any) -> str:
    """A JWT for an admin, issued by Airflow's auth manager (as the UI's login does)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    return str(
        get_auth_manager().generate_jwt(SimpleAuthManagerUser(username="admin", role="ADMIN"))
    )


def _get(api: Any, url: str, token: str | None = None, **headers: str) -> Any:
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return api.get(url, headers=headers, follow_redirects=False)


# ------------------------------------------------------------------------------ registration


def test_the_plugin_is_registered_like_official_providers_plugins() -> None:
    from airflow._shared.module_loading import import_string
    from airflow.plugins_manager import is_valid_plugin

    from mlops_provider.get_provider_info import get_provider_info

    (entry,) = get_provider_info()["plugins"]
    plugin = import_string(entry["plugin-class"])
    assert is_valid_plugin(plugin) and plugin.name == entry["name"] == "mlops"
    (app,) = plugin.fastapi_apps
    assert app["url_prefix"] == "/mlops" and callable(app["app"])
    # the airflow.plugins entry point loads it with lazy provider discovery (the default)
    text = (ROOT / "pyproject.toml").read_text()
    assert '[project.entry-points."airflow.plugins"]' in text
    assert f'mlops = "{entry["plugin-class"].rsplit(".", 1)[0]}:MlopsPlugin"' in text


def test_loading_the_plugin_imports_no_web_framework() -> None:
    """Every Airflow process imports plugins: the app is built on its first request only."""
    code = (
        "import sys, json; import mlops_provider.plugins.mlops as m; "
        "print(json.dumps(sorted({n.split('.')[0] for n in sys.modules} "
        "& {'fastapi', 'mlflow', 'pandas', 'starlette'})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


# ------------------------------------------------------------------------------ auth


def test_reports_need_an_authenticated_user(api: Any, token: str, lifecycle: Any) -> None:
    url = lifecycle["links"][("validate", "_link_ReportLink")]
    assert _get(api, url).status_code == 401
    assert _get(api, url).headers["www-authenticate"] == "Bearer"
    # a browser without a session goes to the login page and comes back
    browser = _get(api, url, Accept="text/html,application/xhtml+xml")
    assert browser.status_code == 307
    login = urlsplit(browser.headers["location"])
    assert login.path == "/api/v2/auth/login"
    assert urlsplit(parse_qs(login.query)["next"][0]).path == url
    # a token that is not one Airflow issued
    assert _get(api, url, "not-a-jwt").status_code == 403
    assert _get(api, url, token[:-4] + "AAAA").status_code == 403
    assert _get(api, url, token).status_code == 200
    # the UI's session cookie
    api.cookies.set("_token", token)
    try:
        assert _get(api, url).status_code == 200
    finally:
        api.cookies.clear()


def test_mlflow_pages_need_an_authenticated_user(api: Any, lifecycle: Any) -> None:
    for key in (("train", "_link_MlflowRunLink"), ("promote", "_link_MlflowModelVersionLink")):
        assert _get(api, lifecycle["links"][key]).status_code == 401


# ------------------------------------------------------------------------------ reports


def test_serves_the_reports_the_operators_wrote(
    api: Any, token: str, lifecycle: Any, home: Path
) -> None:
    validation, evaluation = lifecycle["validate"], lifecycle["evaluate"]
    for task, result in (("validate", validation), ("evaluate", evaluation)):
        url = lifecycle["links"][(task, "_link_ReportLink")]
        rel = Path(result["report_uri"]).relative_to(home / "data" / "reports").as_posix()
        assert url == f"/mlops/reports/{rel}"
        response = _get(api, url, token)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.content == Path(result["report_uri"]).read_bytes()
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"
    # the JSON result next to the report, with its own content type
    json_url = lifecycle["links"][("validate", "_link_ReportLink")].replace(
        "report.html", "result.json"
    )
    response = _get(api, json_url, token)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["success"] is True


def test_a_plot_next_to_a_report_and_missing_files(api: Any, token: str, home: Path) -> None:
    folder = home / "data" / "reports" / "custom" / "dt=2026-01-08"
    folder.mkdir(parents=True)
    png = b"\x89PNG\r\n\x1a\n" + os.urandom(64)
    (folder / "roc plot.png").write_bytes(png)
    response = _get(api, "/mlops/reports/custom/dt=2026-01-08/roc%20plot.png", token)
    assert response.status_code == 200 and response.content == png
    assert response.headers["content-type"] == "image/png"
    for missing in ("custom/dt=2026-01-08/nothing.html", "custom/dt=2026-01-08", "custom"):
        # a directory is not listed
        assert _get(api, f"/mlops/reports/{missing}", token).status_code == 404, missing


@pytest.fixture
def escape_targets(home: Path) -> Path:
    """A secret beside the reports root, and symlinks inside the root that lead to it."""
    reports = home / "data" / "reports"
    reports.mkdir(parents=True, exist_ok=True)
    secret = home / "data" / "secret.txt"
    secret.write_text(SECRET)
    for link, target in (("escape.txt", secret), ("escape_dir", home / "data")):
        path = reports / link
        if not path.is_symlink():
            path.symlink_to(target)
    yield secret
    for link in ("escape.txt", "escape_dir"):
        (reports / link).unlink()


@pytest.mark.parametrize(
    "path",
    [
        "../secret.txt",  # normalised by the client: must then simply not exist
        "%2e%2e/secret.txt",
        "%2E%2E/secret.txt",
        "..%2fsecret.txt",
        "..%2Fsecret.txt",
        "%2e%2e%2fsecret.txt",
        "custom/%2e%2e/%2e%2e/secret.txt",
        "%252e%252e/secret.txt",
        "%252e%252e%252fsecret.txt",
        "..%5csecret.txt",
        "%5c..%5csecret.txt",
        "%2f" + "%2f".join(["tmp", "secret.txt"]),
        "/etc/passwd",
        "%2fetc%2fpasswd",
        ".%2fsecret.txt",
        "escape.txt",
        "escape_dir/secret.txt",
        ".hidden",
        "%00secret.txt",
    ],
)
def test_refuses_paths_leaving_the_reports_root(
    api: Any, token: str, escape_targets: Path, path: str
) -> None:
    response = _get(api, f"/mlops/reports/{path}", token)
    assert response.status_code in (400, 404), (path, response.status_code)
    assert SECRET not in response.text and "root:" not in response.text


def test_serves_an_s3_reports_root_through_its_connection(
    api: Any, token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port())
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{server._port}"
        extra = {"endpoint_url": endpoint, "region_name": "us-east-1"}
        conn = {"conn_type": "aws", "login": "testing", "password": "testing", "extra": extra}
        monkeypatch.setenv("AIRFLOW_CONN_AWS_REPORTS", json.dumps(conn))
        monkeypatch.setenv("MLOPS_REPORTS_CONN_ID", "aws_reports")
        monkeypatch.setenv("MLOPS_LAKE_URI", "s3://lake/prod")  # root: s3://lake/prod/reports
        s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        )
        s3.create_bucket(Bucket="lake")
        s3.put_object(Bucket="lake", Key="prod/reports/drift/churn/report.html", Body=b"<p>s3</p>")
        s3.put_object(Bucket="lake", Key="prod/secret.txt", Body=SECRET.encode())

        from mlops_provider.links.reports import report_url

        url = report_url("s3://lake/prod/reports/drift/churn/report.html")
        assert url == "/mlops/reports/drift/churn/report.html"
        response = _get(api, url, token)
        assert response.status_code == 200 and response.content == b"<p>s3</p>"
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        for path in ("drift/churn", "drift/churn/nothing.html", "%2e%2e/secret.txt"):
            response = _get(api, f"/mlops/reports/{path}", token)
            assert response.status_code in (400, 404) and SECRET not in response.text
    finally:
        server.stop()


# ------------------------------------------------------------------------------ MLflow


def test_run_link_is_published_while_the_task_runs(lifecycle: Any) -> None:
    train = lifecycle["train"]
    expected = f"/mlops/mlflow/runs/{train['run_id']}?experiment_id={train['experiment_id']}"
    # when the run was created, the link was already in XCom (before the model was logged)
    assert ("train", [expected]) in lifecycle["seen_while_running"]
    # finalize wrote the same value under the same key: one row
    dr = lifecycle["dag_run"]
    assert _db_xcom(dr.dag_id, dr.run_id, "train", "_link_MlflowRunLink") == [expected]
    assert lifecycle["links"][("train", "_link_MlflowRunLink")] == expected


def test_embedded_run_page(api: Any, token: str, lifecycle: Any) -> None:
    train = lifecycle["train"]
    response = _get(api, lifecycle["links"][("train", "_link_MlflowRunLink")], token)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = response.text
    assert train["run_id"] in page and "it-plugin" in page and "FINISHED" in page
    assert "roc_auc" in page and "max_iter" in page  # a metric and a parameter
    assert "mlops.dag_id" in page and "reports_plugin" in page  # a tag
    # artifacts, listed recursively
    assert REFERENCE_PROFILE_PATH in page and "training/summary.json" in page
    version = lifecycle["promote"]["version"]
    assert f"/mlops/mlflow/models/churn/versions/{version}" in page  # its registered version


def test_embedded_model_version_page(api: Any, token: str, lifecycle: Any) -> None:
    promote = lifecycle["promote"]
    url = lifecycle["links"][("promote", "_link_MlflowModelVersionLink")]
    assert url == f"/mlops/mlflow/models/churn/versions/{promote['version']}"
    response = _get(api, url, token)
    assert response.status_code == 200, response.text
    page = response.text
    assert "champion" in page and f"churn version {promote['version']}" in page
    run_id = promote["model"]["run_id"]
    assert f"/mlops/mlflow/runs/{run_id}" in page
    for missing in ("/mlops/mlflow/models/churn/versions/999", "/mlops/mlflow/runs/0badc0ffee"):
        assert _get(api, missing, token).status_code == 404
    assert _get(api, "/mlops/mlflow/models/churn/versions/latest", token).status_code == 400


def test_redirects_to_the_mlflow_ui_when_mlflow_has_one(
    api: Any, token: str, lifecycle: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ui = "https://mlflow.example.com"
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT",
        json.dumps(
            {"conn_type": "mlflow", "host": "mlflow", "port": 5000, "extra": {"ui_url": ui}}
        ),
    )
    train = lifecycle["train"]
    response = _get(api, lifecycle["links"][("train", "_link_MlflowRunLink")], token)
    assert response.status_code == 302
    assert response.headers["location"] == (
        f"{ui}/#/experiments/{train['experiment_id']}/runs/{train['run_id']}"
    )
    response = _get(api, f"/mlops/mlflow/runs/{train['run_id']}", token)
    assert response.headers["location"] == f"{ui}/#/runs/{train['run_id']}"
    response = _get(api, "/mlops/mlflow/models/churn/versions/3", token)
    assert (response.status_code, response.headers["location"]) == (
        302,
        f"{ui}/#/models/churn/versions/3",
    )
    # another MLflow connection named by the link; a connection of another type is refused
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_OTHER",
        json.dumps({"conn_type": "mlflow", "host": "http://other.example.com:5000"}),
    )
    monkeypatch.setenv("AIRFLOW_CONN_NOT_MLFLOW", json.dumps({"conn_type": "http", "host": "x"}))
    other = _get(api, "/mlops/mlflow/models/churn/versions/3?conn_id=mlflow_other", token)
    assert other.headers["location"] == "http://other.example.com:5000/#/models/churn/versions/3"
    for conn_id in ("not_mlflow", "missing_conn"):
        url = f"/mlops/mlflow/models/churn/versions/3?conn_id={conn_id}"
        assert _get(api, url, token).status_code == 404
