"""The native production stack: DAGs parse, a feature pipeline run goes through the scheduler,
the Celery worker, S3 (moto) and Feast on Redis; the provider's connection forms reach the API
server; the connection secret leaks into no log, XCom or report; a deferrable sensor waits in
the triggerer and resumes."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any, cast

import pytest
import requests

pytestmark = pytest.mark.system

FEATURE_DAG = "mlops_feature_pipeline"
DAY = date(2026, 1, 2)
RUN_TIMEOUT = 600


class Api:
    """Airflow's REST API with a JWT from ``/auth/token``."""

    def __init__(self, settings: Any) -> None:
        self.base = settings.api_url
        resp = requests.post(
            f"{self.base}/auth/token",
            json={"username": settings.admin_user, "password": settings.admin_password},
            timeout=30,
        )
        assert resp.status_code in (200, 201), resp.text
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self.session.request(method, f"{self.base}/api/v2{path}", timeout=60, **kwargs)
        assert resp.ok, f"{method} {path}: {resp.status_code} {resp.text[:2000]}"
        return resp.json() if resp.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params=params)


@pytest.fixture(scope="module")
def api(stack: Any) -> Api:
    return Api(stack)


def _wait(what: str, check: Any, timeout: float, every: float = 3) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        if value := check():
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def test_failed_start_stops_what_it_started(stack_services: None) -> None:
    """MLflow cannot bind its port: ``up`` fails, stops moto (already started), leaves nothing."""
    from stack import stack as native

    from .conftest import ROOT, TEST_STACK, drop_databases

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        overrides = TEST_STACK | {
            "MLOPS_STACK_HOME": str(ROOT / ".stack-test-failed"),
            "MLOPS_STACK_S3_PORT": "25021",
            "MLOPS_STACK_MLFLOW_PORT": str(taken.getsockname()[1]),
            "MLOPS_STACK_AIRFLOW_DB": "mlops_airflow_failtest",
            "MLOPS_STACK_MLFLOW_DB": "mlops_mlflow_failtest",
        }
        env = os.environ | overrides
        result = subprocess.run(
            [sys.executable, "-m", "stack.stack", "up"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
    saved = dict(os.environ)
    os.environ.update(overrides)
    try:
        settings = native.Settings()
        left = native._marked(settings)
        drop_databases(settings)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Start failed: mlflow" in result.stdout, result.stdout
    assert "stopping moto" in result.stdout, result.stdout
    assert not left, f"processes of the failed stack still run: {left}"
    assert not any(settings.home.glob("pids/*.pid")), "pid files left behind"


def test_reference_dags_parse_without_import_errors(api: Api) -> None:
    from stack.stack import DAG_IDS

    def listed() -> set[str]:
        found = {d["dag_id"] for d in api.get("/dags", limit=100)["dags"]}
        return found if set(DAG_IDS) <= found else set()

    _wait("the four reference DAGs", listed, timeout=180)
    errors = api.get("/importErrors")
    assert errors["total_entries"] == 0, errors["import_errors"]


def _seed_raw_day(settings: Any, day: date) -> list[str]:
    """Simulate ``day`` as ``make demo`` does, then land its raw/labels files in the S3 lake."""
    from include.simulator import ChurnSimulator
    from stack.stack import s3_client

    client = s3_client(settings)
    keys = []
    with tempfile.TemporaryDirectory() as tmp:
        simulator = ChurnSimulator(seed=42, n_customers=2000, start_date=date(2026, 1, 1))
        for path in simulator.write_day(tmp, day).values():
            key = f"lake/{Path(path).relative_to(tmp).as_posix()}"
            client.upload_file(path, settings.lake_bucket, key)
            keys.append(key)
    return keys


def _failure_details(api: Api, run_id: str, dag_id: str = FEATURE_DAG) -> str:
    lines = []
    for ti in api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]:
        lines.append(f"{ti['task_id']}: {ti['state']}")
        if ti["state"] in ("failed", "upstream_failed", "up_for_retry") and ti["try_number"]:
            lines.append(str(_task_log(api, dag_id, run_id, ti))[-4000:])
    return "\n".join(lines)


def _task_log(api: Api, dag_id: str, run_id: str, ti: dict[str, Any]) -> Any:
    path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/logs/{ti['try_number']}"
    return api.call("GET", path, params={"full_content": True})


def _start_backfill(api: Api, dag_id: str, day: date) -> str:
    """Unpause ``dag_id``, backfill the one interval starting at ``day``: the run's id."""
    api.call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
    logical = f"{day.isoformat()}T00:00:00Z"
    api.call(
        "POST",
        "/backfills",
        json={"dag_id": dag_id, "from_date": logical, "to_date": logical,
              "max_active_runs": 1, "reprocess_behavior": "completed"},
    )  # fmt: skip

    def backfill_run() -> str | None:
        runs = api.get(f"/dags/{dag_id}/dagRuns", run_type="backfill")["dag_runs"]
        found = [r for r in runs if r["data_interval_start"].startswith(day.isoformat())]
        return found[0]["dag_run_id"] if found else None

    return cast(str, _wait(f"the backfill run of {dag_id} {day}", backfill_run, timeout=120))


def _backfill_one_day(api: Api, day: date) -> dict[str, Any]:
    run_id = _start_backfill(api, FEATURE_DAG, day)

    def finished() -> dict[str, Any] | None:
        current = api.get(f"/dags/{FEATURE_DAG}/dagRuns/{run_id}")
        return current if current["state"] in ("success", "failed") else None

    final = _wait(f"{FEATURE_DAG} {day} to finish", finished, timeout=RUN_TIMEOUT, every=5)
    api.call("PATCH", f"/dags/{FEATURE_DAG}", json={"is_paused": True})
    assert final["state"] == "success", _failure_details(api, run_id)
    return cast(dict[str, Any], final)


def _celery_task_results(settings: Any) -> int:
    import psycopg2

    conn = psycopg2.connect(settings.pg_uri(settings.airflow_db, "postgresql"))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM celery_taskmeta WHERE status = 'SUCCESS'")
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def test_feature_pipeline_day_runs_on_the_celery_worker(api: Api, stack: Any) -> None:
    from stack.stack import log_file, s3_client

    seeded = _seed_raw_day(stack, DAY)
    assert any("/raw/dt=2026-01-02/" in key for key in seeded)
    run = _backfill_one_day(api, DAY)

    tis = api.get(f"/dags/{FEATURE_DAG}/dagRuns/{run['dag_run_id']}/taskInstances")
    tis = tis["task_instances"]
    assert {ti["task_id"] for ti in tis} == {
        "wait_for_raw_partition", "validate_raw", "publish", "apply_feature_repo", "materialize",
    }  # fmt: skip
    worker_log = log_file(stack, "celery-worker").read_text(errors="replace")
    worker = re.search(r"celery@(\S+) ready\.", worker_log)
    assert worker, "the Celery worker never reported ready"
    for ti in tis:
        assert ti["state"] == "success", ti
        assert ti["hostname"] == worker.group(1), ti
        assert ti["executor"] in (None, "CeleryExecutor"), ti
        assert ti["queue"] == "default", ti
    assert _celery_task_results(stack) >= len(tis), "Celery's result backend holds no results"
    assert worker_log.count(run["dag_run_id"]) >= len(tis) or "execute_workload" in worker_log

    listed = s3_client(stack).list_objects_v2(
        Bucket=stack.lake_bucket, Prefix=f"lake/features/customer_activity/dt={DAY.isoformat()}/"
    )
    files = [o["Key"] for o in listed.get("Contents", []) if o["Key"].endswith(".parquet")]
    assert files, f"no feature partition in s3://{stack.lake_bucket}: {listed}"


def test_feast_used_redis_online_store_and_s3_registry(stack: Any) -> None:
    """The feature run materialized into Redis (the stack's db) with an S3 registry."""
    import redis

    from stack.stack import s3_client

    client = s3_client(stack)
    registry = client.head_object(Bucket=stack.lake_bucket, Key="feast/registry.db")
    assert registry["ContentLength"] > 0
    online = redis.Redis(host=stack.redis_host, port=stack.redis_port, db=stack.feast_db)
    assert cast(int, online.dbsize()) > 0, f"no Feast keys in redis db {stack.feast_db}"


# ---------------------------------------------------------------- connection forms


def _provider_connection(conn_type: str) -> dict[str, Any]:
    from mlops_provider.get_provider_info import get_provider_info

    for conn in get_provider_info()["connection-types"]:
        if conn["connection-type"] == conn_type:
            return cast(dict[str, Any], conn)
    raise AssertionError(f"the provider registers no {conn_type} connection type")


def _hook_meta(api: Api) -> dict[str, dict[str, Any]]:
    resp = api.session.get(f"{api.base}/ui/connections/hook_meta", timeout=60)
    assert resp.ok, f"GET /ui/connections/hook_meta: {resp.status_code} {resp.text[:2000]}"
    return {m["connection_type"]: m for m in resp.json() if m.get("connection_type")}


@pytest.mark.parametrize("conn_type", ["mlflow", "feast"])
def test_connection_forms_in_the_hook_metadata(api: Api, conn_type: str) -> None:
    """The API server (the UI's Connections > Add form) knows the provider's forms."""
    meta = _hook_meta(api).get(conn_type)
    assert meta, f"no {conn_type} connection type in the API's hook metadata"
    expected = _provider_connection(conn_type)
    assert meta["hook_class_name"] == expected["hook-class-name"], meta
    assert meta["hook_name"] == expected["hook-name"], meta
    behaviour = expected["ui-field-behaviour"]
    standard = meta["standard_fields"] or {}
    for name in ("host", "port", "login", "password", "schema"):
        shown = standard.get("url_schema" if name == "schema" else name) or {}
        assert bool(shown.get("hidden")) == (name in behaviour["hidden-fields"]), (name, shown)
        assert shown.get("title") == behaviour["relabeling"].get(name), (name, shown)
        assert shown.get("placeholder") == behaviour["placeholders"].get(name), (name, shown)
    extra = meta["extra_fields"] or {}
    assert set(extra) == set(expected["conn-fields"]), extra
    for name, spec in expected["conn-fields"].items():
        assert extra[name]["schema"]["title"] == spec["label"], extra[name]
        assert extra[name]["schema"]["type"] == spec["schema"]["type"], extra[name]


# ---------------------------------------------------------------- no secret leaks


def _run_task_instances(api: Api, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
    return cast(list[dict[str, Any]], api.get(path)["task_instances"])


def _xcom_values(api: Api, dag_id: str, run_id: str, task_id: str) -> list[str]:
    base = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries"
    values = []
    for entry in api.get(base)["xcom_entries"]:
        for mode in ({}, {"deserialize": True, "stringify": True}):
            values.append(str(api.get(f"{base}/{entry['key']}", **mode)["value"]))
    return values


def _stored_xcoms(settings: Any, dag_id: str, run_id: str) -> list[str]:
    """The XCom values as stored in the metadata DB (no API redaction in between)."""
    import psycopg2

    conn = psycopg2.connect(settings.pg_uri(settings.airflow_db, "postgresql"))
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT value::text FROM xcom WHERE dag_id = %s AND run_id = %s", (dag_id, run_id)
            )
            return [str(row[0]) for row in cur.fetchall()]
    finally:
        conn.close()


def _objects(settings: Any, prefix: str) -> dict[str, bytes]:
    from stack.stack import s3_client

    client = s3_client(settings)
    listed = client.list_objects_v2(Bucket=settings.lake_bucket, Prefix=prefix)
    return {
        o["Key"]: client.get_object(Bucket=settings.lake_bucket, Key=o["Key"])["Body"].read()
        for o in listed.get("Contents", [])
    }


def test_the_connection_secret_appears_in_no_log_xcom_or_report(api: Api, stack: Any) -> None:
    from stack.stack import stack_environment

    from .conftest import SECRET_SENTINEL

    conn_env = json.loads(stack_environment(stack)["AIRFLOW_CONN_AWS_DEFAULT"])
    assert conn_env["password"] == SECRET_SENTINEL, "the sentinel is not the connection's secret"
    run = _feature_run(api, DAY)
    tis = _run_task_instances(api, FEATURE_DAG, run)
    assert len(tis) == 5, tis
    xcoms: list[str] = []
    for ti in tis:
        log = json_text(_task_log(api, FEATURE_DAG, run, ti))
        assert len(log) > 300, f"the log of {ti['task_id']} is (nearly) empty: {log}"
        assert SECRET_SENTINEL not in log, f"the secret is in the log of {ti['task_id']}"
        xcoms += _xcom_values(api, FEATURE_DAG, run, ti["task_id"])
    stored = _stored_xcoms(stack, FEATURE_DAG, run)
    assert xcoms and stored, "the run pushed no XCom: the check could not fail"
    assert not [v for v in xcoms + stored if SECRET_SENTINEL in v], "the secret is in an XCom"
    files = [p for p in (stack.airflow_home / "logs").rglob("*") if p.is_file()]
    assert files, "no task log file on disk"
    assert not [p for p in files if SECRET_SENTINEL.encode() in p.read_bytes()], "in a log file"
    reports = _objects(stack, f"lake/reports/validation/raw/dt={DAY.isoformat()}")
    assert reports, "the feature run wrote no validation report to S3"
    assert not [k for k, body in reports.items() if SECRET_SENTINEL.encode() in body], reports


def json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _feature_run(api: Api, day: date) -> str:
    runs = api.get(f"/dags/{FEATURE_DAG}/dagRuns", run_type="backfill")["dag_runs"]
    found = [r for r in runs if r["data_interval_start"].startswith(day.isoformat())]
    assert found, f"no backfill run of {FEATURE_DAG} for {day}"
    return cast(str, found[0]["dag_run_id"])


# ---------------------------------------------------------------- deferrable sensor

SCORING_DAG = "mlops_batch_scoring"
SCORING_DAY = date(2026, 1, 3)
"""Scored after DAY's features only: ``features_ready`` wants them up to the end of this day."""


def _ti(api: Api, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
    return cast(dict[str, Any], api.get(path))


def _stop_runs(api: Api, dag_id: str) -> None:
    """Pause ``dag_id`` and mark its unfinished runs failed (their triggers are dropped)."""
    api.call("PATCH", f"/dags/{dag_id}", json={"is_paused": True})
    for run in api.get(f"/dags/{dag_id}/dagRuns", limit=100)["dag_runs"]:
        if run["state"] in ("queued", "running"):
            api.call(
                "PATCH", f"/dags/{dag_id}/dagRuns/{run['dag_run_id']}", json={"state": "failed"}
            )


def _wait_deferred(api: Api, run_id: str) -> dict[str, Any]:
    def deferred() -> dict[str, Any] | None:
        ti = _ti(api, SCORING_DAG, run_id, "features_ready")
        assert ti["state"] not in ("success", "failed", "upstream_failed"), ti
        trigger = ti.get("trigger") or {}
        return ti if ti["state"] == "deferred" and trigger.get("triggerer_id") else None

    ti = _wait("features_ready deferred to the triggerer", deferred, timeout=240)
    assert ti["trigger"]["classpath"].endswith("triggers.feast.FeatureFreshnessTrigger"), ti

    def trigger_ran() -> bool:
        """The trigger's own lines, written by the triggerer, in the task's log (REST API)."""
        log = json_text(_task_log(api, SCORING_DAG, run_id, ti))
        started = f"(ID {ti['trigger']['id']}) starting" in log
        waiting = f"materialized up to {SCORING_DAY.isoformat()}T00:00:00+00:00, waiting for"
        return started and waiting in log

    _wait("the trigger to run in the triggerer", trigger_ran, timeout=90, every=5)
    return ti


def test_features_ready_defers_to_the_triggerer_and_resumes(api: Api, stack: Any) -> None:
    """Scoring SCORING_DAY waits in the triggerer until its features are materialized."""
    from .conftest import TEST_STACK

    assert TEST_STACK["MLOPS_STACK_DEFERRABLE"] == "true"
    try:
        run_id = _start_backfill(api, SCORING_DAG, SCORING_DAY)
        deferred = _wait_deferred(api, run_id)
        _seed_raw_day(stack, SCORING_DAY)
        _backfill_one_day(api, SCORING_DAY)

        def resumed() -> dict[str, Any] | None:
            ti = _ti(api, SCORING_DAG, run_id, "features_ready")
            return ti if ti["state"] in ("success", "failed", "upstream_failed") else None

        ti = _wait("features_ready to resume", resumed, timeout=240)
        assert ti["state"] == "success", _failure_details(api, run_id, SCORING_DAG)
        assert ti["try_number"] == deferred["try_number"], "the sensor was retried, not resumed"
        log = json_text(_task_log(api, SCORING_DAG, run_id, ti))
        assert "materialized up to" in log, log[-3000:]
        value = api.get(
            f"/dags/{SCORING_DAG}/dagRuns/{run_id}/taskInstances/features_ready/xcomEntries/return_value"
        )["value"]
        value = json.loads(value) if isinstance(value, str) else value
        assert value["fresh_until"] >= value["target_time"], value
        assert value["target_time"].startswith("2026-01-04"), value
    finally:
        _stop_runs(api, SCORING_DAG)
