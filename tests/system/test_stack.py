"""The native production stack: DAGs parse, a feature pipeline run goes through the scheduler,
the Celery worker, S3 (moto) and Feast on Redis."""

from __future__ import annotations

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


def _failure_details(api: Api, run_id: str) -> str:
    lines = []
    for ti in api.get(f"/dags/{FEATURE_DAG}/dagRuns/{run_id}/taskInstances")["task_instances"]:
        lines.append(f"{ti['task_id']}: {ti['state']}")
        if ti["state"] in ("failed", "upstream_failed", "up_for_retry") and ti["try_number"]:
            path = (
                f"/dags/{FEATURE_DAG}/dagRuns/{run_id}/taskInstances/{ti['task_id']}"
                f"/logs/{ti['try_number']}"
            )
            log = api.call("GET", path, params={"full_content": True})
            lines.append(str(log)[-4000:])
    return "\n".join(lines)


def _backfill_one_day(api: Api, day: date) -> dict[str, Any]:
    api.call("PATCH", f"/dags/{FEATURE_DAG}", json={"is_paused": False})
    logical = f"{day.isoformat()}T00:00:00Z"
    api.call(
        "POST",
        "/backfills",
        json={"dag_id": FEATURE_DAG, "from_date": logical, "to_date": logical,
              "max_active_runs": 1, "reprocess_behavior": "completed"},
    )  # fmt: skip

    def backfill_run() -> dict[str, Any] | None:
        runs = api.get(f"/dags/{FEATURE_DAG}/dagRuns", run_type="backfill")["dag_runs"]
        return runs[0] if runs else None

    run = _wait("the backfill run", backfill_run, timeout=120)
    assert run["data_interval_start"].startswith(day.isoformat()), run

    def finished() -> dict[str, Any] | None:
        current = api.get(f"/dags/{FEATURE_DAG}/dagRuns/{run['dag_run_id']}")
        return current if current["state"] in ("success", "failed") else None

    final = _wait(f"{FEATURE_DAG} {day} to finish", finished, timeout=RUN_TIMEOUT, every=5)
    api.call("PATCH", f"/dags/{FEATURE_DAG}", json={"is_paused": True})
    assert final["state"] == "success", _failure_details(api, run["dag_run_id"])
    return final


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
