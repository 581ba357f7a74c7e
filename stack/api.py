"""Airflow's REST API (``/api/v2``) as the stack's driver and the system tests use it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

import requests

T = TypeVar("T")
FINISHED = ("success", "failed")


class ApiError(RuntimeError):
    """A call to Airflow's REST API did not succeed: method, path, status and body."""


def wait_until(what: str, check: Callable[[], T | None], timeout: float, every: float = 3) -> T:
    """Poll ``check`` until it returns a truthy value; AssertionError naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        if value := check():
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


class AirflowApi:
    """A logged-in session on the API server (JWT from ``/auth/token``).

    :param base_url: the API server, e.g. ``http://127.0.0.1:28080``.
    :raises ApiError: the login was refused.
    """

    def __init__(self, base_url: str, username: str, password: str) -> None:
        self.base = base_url.rstrip("/")
        resp = requests.post(
            f"{self.base}/auth/token",
            json={"username": username, "password": password},
            timeout=30,
        )
        if resp.status_code not in (200, 201):
            raise ApiError(f"login as {username} at {self.base}: {resp.status_code} {resp.text}")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self.session.request(method, f"{self.base}/api/v2{path}", timeout=60, **kwargs)
        if not resp.ok:
            raise ApiError(f"{method} {path}: {resp.status_code} {resp.text[:2000]}")
        return resp.json() if resp.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params=params)

    # ------------------------------------------------------------------ DAG runs

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.call("PATCH", f"/dags/{dag_id}", json={"is_paused": paused})

    def runs(self, dag_id: str, **params: Any) -> list[dict[str, Any]]:
        params.setdefault("limit", 100)
        return cast(list[dict[str, Any]], self.get(f"/dags/{dag_id}/dagRuns", **params)["dag_runs"])

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], self.get(f"/dags/{dag_id}/dagRuns/{run_id}"))

    def backfill(
        self, dag_id: str, first: str, last: str, *, max_active_runs: int = 1
    ) -> dict[str, Any]:
        """Backfill the intervals starting from ``first`` to ``last`` (ISO times), rerunning
        intervals that already ran (the DAGs' writes replace, never duplicate)."""
        body = {
            "dag_id": dag_id,
            "from_date": first,
            "to_date": last,
            "max_active_runs": max_active_runs,
            "reprocess_behavior": "completed",
        }
        deadline = time.monotonic() + 120
        while True:  # the previous backfill of the DAG is closed by the scheduler's next loop
            try:
                return cast(dict[str, Any], self.call("POST", "/backfills", json=body))
            except ApiError as err:
                if "already a running backfill" not in str(err) or time.monotonic() > deadline:
                    raise
            time.sleep(1)

    def trigger(self, dag_id: str, *, logical_date: str | None, conf: dict[str, Any]) -> str:
        """A manual run (scheduled by the scheduler like any other); its run id."""
        body = {"logical_date": logical_date, "conf": conf}
        return str(self.call("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"])

    def wait_finished(self, dag_id: str, run_id: str, timeout: float) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            current = self.run(dag_id, run_id)
            return current if current["state"] in FINISHED else None

        return wait_until(f"{dag_id} run {run_id} to finish", finished, timeout, every=2)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances"
        return cast(list[dict[str, Any]], self.get(path, limit=100)["task_instances"])

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """A task's XCom value (JSON-decoded), ``None`` when it pushed none."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
        resp = self.session.get(f"{self.base}/api/v2{path}", timeout=60)
        if resp.status_code == 404:
            return None
        if not resp.ok:
            raise ApiError(f"GET {path}: {resp.status_code} {resp.text[:2000]}")
        value = resp.json()["value"]
        if isinstance(value, str) and value[:1] in ("{", "["):
            return json.loads(value)
        return value

    def task_log(self, dag_id: str, run_id: str, ti: dict[str, Any]) -> str:
        path = (
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{ti['task_id']}/logs/{ti['try_number']}"
        )
        value = self.call("GET", path, params={"full_content": True})
        return value if isinstance(value, str) else json.dumps(value)


class ApiRun:
    """A finished DAG run read through the API: its states and XComs (as the demo reads them)."""

    def __init__(self, api: AirflowApi, dag_id: str, run: dict[str, Any]) -> None:
        self.api = api
        self.dag_id = dag_id
        self.run_id = str(run["dag_run_id"])
        self.state = str(run["state"])
        self.run_type = str(run.get("run_type"))

    def task_states(self) -> dict[str, str]:
        out = {}
        for ti in self.api.task_instances(self.dag_id, self.run_id):
            index = ti.get("map_index", -1)
            key = ti["task_id"] if index is None or index < 0 else f"{ti['task_id']}[{index}]"
            out[key] = str(ti["state"])
        return out

    def xcom(self, task_id: str) -> Any:
        return self.api.xcom(self.dag_id, self.run_id, task_id)
