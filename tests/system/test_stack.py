"""The native production stack: DAGs parse; a feature pipeline run of the lifecycle (the
``lifecycle`` fixture, conftest.py) went through the scheduler, the Celery worker, S3 (moto) and
Feast on Redis; the provider's connection forms reach the API server; the connection secret
leaks into no log, XCom or report; a deferrable sensor waited in the triggerer and resumed."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from datetime import date, timedelta
from typing import Any, cast

import pytest

from stack.api import AirflowApi, wait_until

pytestmark = pytest.mark.system

FEATURE_DAG = "mlops_feature_pipeline"
DAY = date(2026, 1, 2)
RUN_TIMEOUT = 600


Api = AirflowApi
_wait = wait_until


@pytest.fixture(scope="module")
def api(stack: Any) -> Api:
    return AirflowApi(stack.api_url, stack.admin_user, stack.admin_password)


def test_failed_start_stops_what_it_started(stack_services: None) -> None:
    """MLflow cannot bind its port: ``up`` fails, stops moto (already started), leaves nothing."""
    from stack import stack as native

    from .conftest import ROOT, TEST_STACK

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
        native.drop_databases(settings)
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

    _wait("the reference DAGs", listed, timeout=180)
    errors = api.get("/importErrors")
    assert errors["total_entries"] == 0, errors["import_errors"]


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


def _celery_task_results(settings: Any) -> int:
    import psycopg2

    conn = psycopg2.connect(settings.pg_uri(settings.airflow_db, "postgresql"))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM celery_taskmeta WHERE status = 'SUCCESS'")
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def test_feature_pipeline_day_runs_on_the_celery_worker(
    api: Api, stack: Any, lifecycle: Any
) -> None:
    """A feature pipeline day of the lifecycle: every task on the Celery worker, S3 output."""
    from stack.stack import log_file, s3_client

    run = api.run(FEATURE_DAG, _feature_run(api, DAY))
    assert run["state"] == "success", _failure_details(api, run["dag_run_id"])
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


def test_feast_used_redis_online_store_and_s3_registry(stack: Any, lifecycle: Any) -> None:
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


def test_the_connection_secret_appears_in_no_log_xcom_or_report(
    api: Api, stack: Any, lifecycle: Any
) -> None:
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


def _ti(api: Api, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
    return cast(dict[str, Any], api.get(path))


def test_features_ready_deferred_to_the_triggerer_and_resumed(api: Api, lifecycle: Any) -> None:
    """The lifecycle's last day: its scoring started before its features, so ``features_ready``
    waited in the triggerer (seen live by the driver) and resumed when they were materialized."""
    assert lifecycle.deferred, "no scoring run's sensor was deferred"
    waited = lifecycle.deferred[-1]
    run_id, day, deferred = waited["run_id"], waited["day"], waited["ti"]
    assert deferred["trigger"]["classpath"].endswith("triggers.feast.FeatureFreshnessTrigger")
    assert api.run(SCORING_DAG, run_id)["state"] == "success", _failure_details(
        api, run_id, SCORING_DAG
    )
    ti = _ti(api, SCORING_DAG, run_id, "features_ready")
    assert ti["state"] == "success", ti
    assert ti["try_number"] == deferred["try_number"], "the sensor was retried, not resumed"
    log = api.task_log(SCORING_DAG, run_id, ti)
    assert f"(ID {deferred['trigger']['id']}) starting" in log, log[-3000:]
    # the worker's check found the day missing and deferred; the trigger ran in the triggerer
    # (it may find the features on its first check: the feature run was already going)
    assert f"materialized up to {day.isoformat()}T00:00:00+00:00; target" in log, log[-3000:]
    assert "Pausing task as DEFERRED" in log and "Trigger fired event" in log, log[-3000:]
    value = api.xcom(SCORING_DAG, run_id, "features_ready")
    assert value["fresh_until"] >= value["target_time"], value
    assert value["target_time"].startswith((day + timedelta(days=1)).isoformat()), value
