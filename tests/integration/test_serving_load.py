"""The service under load through its real CLI process (``python -m mlops_provider.serving``):
16 concurrent clients while the model is swapped twice. No request may fail, every answer
names a version that was served and equals that version's unbatched answer for its rows (the
service micro-batches concurrent requests), and the load finishes within a bound.
Loopback only, a free port; bounded in requests and time (no timing is asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from include.simulator import ENTITY_COLUMN, FEATURE_COLUMNS, ChurnSimulator
from mlops_provider.core.mlflow_target import MlflowTarget, make_client
from tests.conftest import free_port
from tests.integration.test_scoring_operator import make_pipeline
from tests.integration.test_serving_app import _register

pytestmark = pytest.mark.integration

SIM = ChurnSimulator(seed=9, n_customers=200, daily_active_fraction=0.5)
DAYS = [date(2026, 1, 1), date(2026, 1, 2)]
TOKEN = "load-test-token"
CLIENTS = 16
#: requests every client sends after each swap (the load keeps going until then)
AFTER_SWAP = 15
#: most requests a client sends (bounds the test whatever the machine's speed)
MAX_PER_CLIENT = 400
#: the load must be over within this many seconds (a hang, not a speed, fails it)
BOUND_SECONDS = 60.0


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> str:
    """``churn`` v1 (logistic) and v2 (boosting) in a SQLite MLflow store; champion -> v1."""
    root = tmp_path_factory.mktemp("mlflow-load")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = make_client(MlflowTarget(uri))
    client.create_experiment("serving-tests", artifact_location=(root / "artifacts").as_uri())
    X = pd.concat([SIM.activity(d) for d in DAYS], ignore_index=True)[FEATURE_COLUMNS]
    y = pd.concat([SIM.labels(d) for d in DAYS], ignore_index=True)["churned"]
    target = MlflowTarget(uri)
    assert _register(target, make_pipeline("logreg").fit(X, y), X) == "1"
    assert _register(target, make_pipeline("hgb").fit(X, y), X) == "2"
    client.set_registered_model_alias("churn", "champion", "1")
    return uri


@pytest.fixture
def service(registry: str, tmp_path: Path) -> Iterator[str]:
    """The CLI serving ``churn@champion`` on a free loopback port; its URL."""
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": registry, "MLOPS_SERVING_ADMIN_TOKEN": TOKEN}
    cmd = [sys.executable, "-m", "mlops_provider.serving", "--model", "churn"]
    cmd += ["--port", str(port), "--poll-seconds", "0", "--log-level", "warning"]
    with (tmp_path / "service.log").open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (tmp_path / "service.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the service did not become ready in 90 s"
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def _bodies() -> list[dict[str, Any]]:
    """Single-row requests, and every fifth one of three rows (split back from a batch)."""
    frame = SIM.activity(DAYS[0]).head(40)[[ENTITY_COLUMN, *FEATURE_COLUMNS]]
    rows = json.loads(frame.to_json(orient="records"))
    return [{"rows": rows[i : i + (3 if i % 5 == 0 else 1)]} for i in range(len(rows) - 3)]


def _key(predictions: list[dict[str, Any]]) -> tuple[int, ...]:
    return tuple(p[ENTITY_COLUMN] for p in predictions)


def _answers(client: httpx.Client, bodies: list[dict[str, Any]]) -> dict[tuple[int, ...], Any]:
    """The answers of each request sent alone (nothing to batch with), by its customers (a
    model may round a row's last bit differently in a request of another size: a request is
    compared with itself)."""
    out = {}
    for body in bodies:
        response = client.post("/predict", json=body)
        assert response.status_code == 200, response.text
        out[_key(response.json()["predictions"])] = response.json()["predictions"]
    return out


class _Load:
    """``CLIENTS`` threads posting the bodies in turn until stopped (or ``MAX_PER_CLIENT``)."""

    def __init__(self, url: str, bodies: list[dict[str, Any]]) -> None:
        self.url, self.bodies = url, bodies
        self.seen: list[tuple[int, str, list[dict[str, Any]]]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._client, args=(i,)) for i in range(CLIENTS)]

    def _client(self, offset: int) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            for n in range(MAX_PER_CLIENT):
                if self.stop.is_set():
                    return
                response = client.post(
                    "/predict", json=self.bodies[(offset + n) % len(self.bodies)]
                )
                body = response.json()
                version = body.get("model", {}).get("version", "") if response.is_success else ""
                self.seen.append((response.status_code, version, body.get("predictions", body)))

    def wait_for(self, more: int) -> None:
        target = len(self.seen) + more
        deadline = time.monotonic() + BOUND_SECONDS
        while len(self.seen) < target and time.monotonic() < deadline:
            if not any(t.is_alive() for t in self.threads):
                return
            time.sleep(0.01)


def test_two_swaps_under_concurrent_load_fail_no_request(service: str) -> None:
    bodies = _bodies()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=service, timeout=60) as admin:
        expected = {"1": _answers(admin, bodies)}
        load = _Load(service, bodies)
        started = time.monotonic()
        for t in load.threads:
            t.start()
        load.wait_for(CLIENTS * AFTER_SWAP)
        first = admin.post("/admin/reload", json={"version": "2"}, headers=auth)
        load.wait_for(CLIENTS * AFTER_SWAP)
        second = admin.post("/admin/reload", json={}, headers=auth)
        load.wait_for(CLIENTS * AFTER_SWAP)
        load.stop.set()
        for t in load.threads:
            t.join(max(0.0, BOUND_SECONDS - (time.monotonic() - started)))
        hung = [t.name for t in load.threads if t.is_alive()]
        assert admin.post("/admin/reload", json={"version": "2"}, headers=auth).is_success
        expected["2"] = _answers(admin, bodies)
    assert not hung, f"clients still waiting after {BOUND_SECONDS} s: {hung}"
    assert first.status_code == 200 and first.json()["model"]["version"] == "2", first.text
    assert second.status_code == 200 and second.json()["model"]["version"] == "1", second.text
    assert [p for s, _, p in load.seen if s != 200] == []
    versions = [v for _, v, _ in load.seen]
    assert set(versions) == {"1", "2"} and versions[0] == "1" and versions[-1] == "1"
    assert len(load.seen) >= 3 * CLIENTS * AFTER_SWAP
    for _, version, predictions in load.seen:  # micro-batched = unbatched, exactly
        assert predictions == expected[version][_key(predictions)], version
