"""An authenticated MLflow server that proxies artifacts: every credential form trains,
evaluates, promotes and scores, and no credential reaches a log, an XCom, MLflow or a file.

The server is a real ``mlflow server`` with ``--artifacts-destination`` (artifact URIs are
``mlflow-artifacts:``, uploaded and downloaded through the server), behind
:mod:`tests.auth_proxy`, which answers 401 to any request without the expected credentials.
The connection lives in Airflow's metadata database, as in a deployment, so nothing about it
is in the process environment.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from include.dag_runner import run_dag, task_states, xcom
from include.simulator import ChurnSimulator
from mlops_provider.core import io
from tests.conftest import ROOT, MlflowServer, free_port

pytestmark = pytest.mark.integration

USER = "admin"
PASSWORD = "sentinel-pw-5d1e8a77c2-never-shown"
TOKEN = "sentinel-token-93b0f4e6aa-never-shown"
START = datetime(2026, 1, 10, tzinfo=timezone.utc)


@dataclass
class Proxy:
    """A running :mod:`tests.auth_proxy` in front of a server."""

    url: str
    log: Path
    proc: subprocess.Popen[bytes]

    def requests(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]

    def clear(self) -> None:
        self.log.write_text("")


def _start_proxy(upstream: str, workdir: Path, name: str) -> Proxy:
    import requests

    port = free_port()
    log = workdir / f"{name}.jsonl"
    cmd = [
        sys.executable, "-m", "tests.auth_proxy", "--upstream", upstream, "--port", str(port),
        "--user", USER, "--password", PASSWORD, "--token", TOKEN, "--log", str(log),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/health", auth=(USER, PASSWORD), timeout=2).ok:
                return Proxy(url, log, proc)
        except requests.ConnectionError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"the auth proxy did not answer at {url}")


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MlflowServer, Proxy]]:
    """A fresh MLflow server with proxied artifacts, behind an authenticating proxy."""
    workdir = tmp_path_factory.mktemp("mlflow-auth")
    server = MlflowServer(f"sqlite:///{workdir / 'mlflow.db'}", workdir).start()
    proxy = _start_proxy(server.url, workdir, "proxy")
    yield server, proxy
    proxy.proc.terminate()
    proxy.proc.wait(timeout=10)
    server.stop()


def _connection(conn_id: str, **fields: Any) -> None:
    """Store an ``mlflow`` connection in the metadata database (replacing one of that id)."""
    from airflow.models import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(Connection).filter(Connection.conn_id == conn_id).delete()
        session.add(Connection(conn_id=conn_id, conn_type="mlflow", **fields))


def _connection_fields(mode: str, url: str) -> dict[str, Any]:
    host, port = url.removeprefix("http://").split(":")
    return {
        "basic": {"host": host, "port": int(port), "login": USER, "password": PASSWORD},
        "bearer": {"host": host, "port": int(port), "password": TOKEN},
        "token_extra": {"host": host, "port": int(port), "extra": json.dumps({"token": TOKEN})},
        "uri": {"host": f"http://{USER}:{PASSWORD}@{host}:{port}"},
    }[mode]


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """MLOPS_HOME with a training set, an evaluation set and a day to score."""
    home = tmp_path_factory.mktemp("auth-lake") / "mlops"
    saved = os.environ.get("MLOPS_HOME")
    os.environ["MLOPS_HOME"] = str(home)
    sim = ChurnSimulator(seed=5, n_customers=400)
    data = home / "data"
    io.write_table(sim.labelled(date(2026, 1, 1), 3), str(data / "train.parquet"))
    io.write_table(sim.labelled(date(2026, 1, 4), 2), str(data / "eval.parquet"))
    score = sim.activity(date(2026, 1, 9)).drop(columns=["event_timestamp"])
    io.write_table(score, str(data / "score" / "dt=2026-01-09" / "rows.parquet"))
    yield home
    if saved is None:
        os.environ.pop("MLOPS_HOME", None)
    else:
        os.environ["MLOPS_HOME"] = saved


def _lifecycle_dag(mode: str, conn_id: str, data: Path) -> Any:
    from airflow.sdk import DAG

    from mlops_provider.operators.evaluation import EvaluateModelOperator
    from mlops_provider.operators.registry import PromoteModelOperator
    from mlops_provider.operators.scoring import BatchScoringOperator
    from mlops_provider.operators.training import TrainModelOperator

    model = f"auth-{mode.replace('_', '-')}"
    with DAG(f"mlflow_auth_{mode}", schedule=None, start_date=START) as dag:
        train = TrainModelOperator(
            task_id="train",
            training_data=str(data / "train.parquet"),
            target="churned",
            entity_columns=["customer_id"],
            estimator="sklearn.linear_model.LogisticRegression",
            estimator_params={"max_iter": 300},
            experiment_name=model,
            mlflow_conn_id=conn_id,
        )
        evaluate = EvaluateModelOperator(
            task_id="evaluate",
            model_uri="{{ ti.xcom_pull(task_ids='train')['model']['uri'] }}",
            registered_model_name=model,
            evaluation_data=str(data / "eval.parquet"),
            target="churned",
            cold_start=True,
            mlflow_conn_id=conn_id,
        )
        promote = PromoteModelOperator(
            task_id="promote",
            registered_model_name=model,
            evaluation=evaluate.output,
            mlflow_conn_id=conn_id,
        )
        score = BatchScoringOperator(
            task_id="score",
            registered_model_name=model,
            input_data=str(data / "score" / "dt=2026-01-09" / "rows.parquet"),
            output_uri=str(data / "predictions" / mode),
            mlflow_conn_id=conn_id,
        )
        train >> evaluate >> promote >> score
    return dag


def _files_holding(root: Path, secrets: tuple[str, ...]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            found += [f"{path}: {s[:12]}..." for s in secrets if s.encode() in content]
    return found


def _mlflow_texts(server: MlflowServer, model: str) -> str:
    """Every param, tag and run name of the model's experiment and versions (read directly
    from the server, behind the proxy)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
    experiment = client.get_experiment_by_name(model)
    assert experiment is not None
    texts = [json.dumps(dict(experiment.tags))]
    for run in client.search_runs([experiment.experiment_id]):
        texts += [json.dumps(run.data.params), json.dumps(run.data.tags), run.info.artifact_uri]
    for version in client.search_model_versions(f"name = '{model}'"):
        texts += [json.dumps(version.tags), str(version.source)]
    return "\n".join(texts)


@pytest.mark.parametrize("mode", ["basic", "bearer", "token_extra", "uri"])
def test_lifecycle_against_authenticated_server(
    mode: str,
    auth_server: tuple[MlflowServer, Proxy],
    lake: Path,
    airflow_db: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    server, proxy = auth_server
    conn_id = f"mlflow_auth_{mode}"
    _connection(conn_id, **_connection_fields(mode, proxy.url))
    proxy.clear()
    capfd.readouterr()
    with caplog.at_level(logging.DEBUG):
        run = run_dag(_lifecycle_dag(mode, conn_id, lake / "data"), logical_date=START)
    printed = capfd.readouterr()
    logs = "\n".join([caplog.text, printed.out, printed.err])
    states = task_states(run)
    assert set(states.values()) == {"success"}, f"{states}\n{logs[-4000:]}"

    seen = proxy.requests()
    refused = [r for r in seen if r["status"] == 401]
    assert not refused, f"the proxy refused {len(refused)} request(s): {refused[:5]}"
    expected = "basic" if mode in ("basic", "uri") else "bearer"
    assert {r["auth"] for r in seen} == {expected}
    artifacts = [r for r in seen if "/mlflow-artifacts/" in r["path"]]
    assert {r["method"] for r in artifacts} >= {"PUT", "GET"}, "no artifact went through"

    secrets = (PASSWORD, TOKEN)
    for secret in secrets:
        assert secret not in logs, f"{secret[:12]}... is in the task logs"
        xcoms = json.dumps([xcom(run, task) for task in states], default=str)
        assert secret not in xcoms, f"{secret[:12]}... is in an XCom"
        model = f"auth-{mode.replace('_', '-')}"
        assert secret not in _mlflow_texts(server, model), f"{secret[:12]}... is in MLflow"
        held = [k for k, v in os.environ.items() if secret in v]
        assert not held, f"the environment holds {secret[:12]}... in {held}"
    written = _files_holding(lake, secrets) + _files_holding(server.workdir / "artifacts", secrets)
    assert not written, f"written files hold a credential: {written}"


def test_credentials_stay_with_their_connection(
    auth_server: tuple[MlflowServer, Proxy], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In one process: a connection without credentials to the same server is refused after
    an authenticated one was used (nothing is inherited), and an artifact download through the
    proxy authenticates with the connection's credentials only while it is bound."""
    from mlflow.exceptions import MlflowException

    from mlops_provider.hooks.mlflow import MlflowHook

    _server, proxy = auth_server
    fields = {"conn_type": "mlflow", **_connection_fields("basic", proxy.url)}
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_AUTH_OK", json.dumps(fields))
    anonymous_fields = {k: v for k, v in fields.items() if k not in ("login", "password")}
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_AUTH_NONE", json.dumps(anonymous_fields))
    proxy.clear()

    ok = MlflowHook("mlflow_auth_ok")
    experiment = ok.get_or_create_experiment("auth-isolation")
    run = ok.client.create_run(experiment)
    source = tmp_path / "note.txt"
    source.write_text("artifact through the proxy")
    ok.client.log_artifact(run.info.run_id, str(source))
    assert [f.path for f in ok.client.list_artifacts(run.info.run_id)] == ["note.txt"]

    anonymous = MlflowHook("mlflow_auth_none")
    with pytest.raises(MlflowException):
        anonymous.client.search_experiments(max_results=1)
    with pytest.raises(Exception, match="401"):
        anonymous.client.download_artifacts(run.info.run_id, "note.txt", str(tmp_path))
    seen = proxy.requests()
    assert {r["auth"] for r in seen if r["status"] == 401} == {"none"}
    assert not [r for r in seen if r["auth"] == "wrong"]
