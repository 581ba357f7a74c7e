"""Training reruns and crashes against a real MLflow server: one FINISHED run per data interval.

A rerun of an interval as a new DAG run reuses the run of the first one (same data and
configuration) or trains a new one that supersedes it (new data). A training killed (SIGKILL, no
cleanup) at each of its crash points (``MLOPS_KILL_AT``) is followed by a retry in place (the
same DAG run id) and a new DAG run for the interval: the end state is the one of a clean run,
with every other run FAILED and saying why.

The killed DAG run runs in a subprocess (``python -m tests.integration.test_rerun_training``);
the retries run in this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from include.simulator import ChurnSimulator
from mlops_provider.core import io, runs
from mlops_provider.core.mlflow_target import MlflowTarget, make_client
from mlops_provider.core.training import POINTS, TASK_KEY_TAG, TrainingConfig, train_and_log
from mlops_provider.testing.environment import interval_logical_date, sync_dag, task_states, xcom

pytestmark = pytest.mark.integration

DAY = date(2026, 1, 8)
FAST = {
    "estimator": "sklearn.linear_model.LogisticRegression",
    "estimator_params": {"max_iter": 200},
}
#: When the DAG runs of a test are triggered (``run_after``): their run ids differ.
FIRST = datetime(2026, 1, 9, 6, tzinfo=timezone.utc)
LATER = FIRST + timedelta(hours=5)


def write_data(path: Path, seed: int = 3) -> str:
    """A small training set (two days of 300 customers)."""
    uri = str(path)
    io.write_table(ChurnSimulator(seed=seed, n_customers=300).labelled(date(2026, 1, 1), 2), uri)
    return uri


def make_dag(dag_id: str, uri: str, experiment: str, register: str | None = None) -> Any:
    """Train on ``uri``; with ``register`` (a registered model name) the model is then
    evaluated (cold start allowed) and promoted, as the reference training DAG does."""
    from airflow.sdk import DAG

    from mlops_provider.operators.evaluation import EvaluateModelOperator
    from mlops_provider.operators.registry import PromoteModelOperator
    from mlops_provider.operators.training import TrainModelOperator

    with DAG(
        dag_id,
        schedule="@daily",
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
    ) as dag:
        train = TrainModelOperator(
            task_id="train",
            training_data=uri,
            target="churned",
            experiment_name=experiment,
            **FAST,
        )
        if register:
            evaluate = EvaluateModelOperator(
                task_id="evaluate",
                model_uri="{{ ti.xcom_pull(task_ids='train')['model']['uri'] }}",
                registered_model_name=register,
                evaluation_data=uri,
                target="churned",
                cold_start=True,
            )
            promote = PromoteModelOperator(
                task_id="promote", registered_model_name=register, evaluation=evaluate.output
            )
            train >> evaluate >> promote
    return dag


def run_interval(dag: Any, run_after: datetime) -> Any:
    """A DAG run of ``DAY``'s interval, triggered at ``run_after`` (run id
    ``manual__<run_after>``: the same ``run_after`` is the same DAG run id)."""
    sync_dag(dag)
    return dag.test(logical_date=interval_logical_date(DAY), run_after=run_after)


def work_key(dag_run: Any) -> str:
    """The ``mlops.task_key`` of the training task of ``dag_run``."""
    return runs.RunIdentity(
        dag_id=dag_run.dag_id,
        task_id="train",
        data_interval_start=dag_run.data_interval_start,
        data_interval_end=dag_run.data_interval_end,
    ).work_key


def all_runs(client, experiment: str) -> list:
    """Every run of the experiment (superseded FINISHED runs no longer carry the task key)."""
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id], max_results=100)


@pytest.fixture
def server_conn(mlflow_server, monkeypatch: pytest.MonkeyPatch) -> MlflowTarget:
    """``mlflow_default`` points at the real server (for this process and its children)."""
    conn = {"conn_type": "mlflow", "host": "127.0.0.1", "port": mlflow_server.port}
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps(conn))
    return MlflowTarget(tracking_uri=mlflow_server.url)


def test_rerun_of_an_interval_reuses_its_run_and_new_data_supersedes_it(
    airflow_db, mlops_home: Path, server_conn: MlflowTarget
) -> None:
    experiment = "it-rerun"
    uri = write_data(mlops_home / "train.parquet")
    dag = make_dag("train_rerun", uri, experiment, register="rerun-churn")
    first = run_interval(dag, FIRST)
    assert set(task_states(first).values()) == {"success"}, task_states(first)
    out = xcom(first, "train")
    assert out["status"] == "trained" and out["reused_from"] is None
    # the same interval again, as a new DAG run
    rerun = run_interval(dag, LATER)
    assert rerun.run_id != first.run_id
    assert rerun.data_interval_start == first.data_interval_start
    again = xcom(rerun, "train")
    assert again["status"] == "reused" and again["reused_from"] == out["run_id"]
    assert (again["run_id"], again["model_uri"]) == (out["run_id"], out["model_uri"])
    assert out["run_id"] in again["reasons"][0]
    client = make_client(server_conn)
    (run,) = all_runs(client, experiment)
    assert run.info.status == "FINISHED" and run.data.tags[TASK_KEY_TAG] == work_key(first)
    exp_id = run.info.experiment_id
    assert len(client.search_logged_models(experiment_ids=[exp_id])) == 1  # no second model
    # ... and no second registered version downstream (registration is once per run)
    assert set(task_states(rerun).values()) == {"success"}, task_states(rerun)
    (version,) = client.search_model_versions("name = 'rerun-churn'")
    assert version.run_id == out["run_id"]
    # new data for the same interval: a new run, the first one superseded
    write_data(Path(uri), seed=4)
    changed = xcom(run_interval(dag, LATER + timedelta(hours=1)), "train")
    assert changed["status"] == "trained" and changed["run_id"] != out["run_id"]
    assert changed["fingerprint"] != out["fingerprint"]
    keyed = runs.find_runs(client, exp_id, {TASK_KEY_TAG: work_key(first)})
    assert [r.info.run_id for r in keyed] == [changed["run_id"]]
    old = client.get_run(out["run_id"])
    assert old.info.status == "FINISHED"
    assert old.data.tags["mlops.superseded_by"] == changed["run_id"]
    assert TASK_KEY_TAG not in old.data.tags


@pytest.fixture(scope="module")
def clean(mlflow_server, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The run of a clean training on the data of the crash tests (no task key)."""
    uri = write_data(tmp_path_factory.mktemp("clean") / "train.parquet")
    target = MlflowTarget(tracking_uri=mlflow_server.url)
    result = train_and_log(
        target, uri, TrainingConfig(target="churned", **FAST), experiment_name="it-kill-clean"
    )
    return make_client(target).get_run(result.run_id)


def kill_at(point: str, dag_id: str, uri: str, experiment: str) -> subprocess.CompletedProcess:
    """Run the DAG for ``DAY`` in a subprocess that kills itself at ``point``."""
    env = {**os.environ, "MLOPS_KILL_AT": point}
    cmd = [sys.executable, "-m", "tests.integration.test_rerun_training", dag_id, uri, experiment]
    root = Path(__file__).resolve().parents[2]
    return subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("point", POINTS)
def test_killed_training_recovers_to_one_finished_run(
    point: str, airflow_db, mlops_home: Path, server_conn: MlflowTarget, clean: Any
) -> None:
    experiment = f"it-kill-{point.replace('.', '-')}"
    dag_id = f"train_kill_{point.split('.')[1]}"
    uri = write_data(mlops_home / "train.parquet")
    killed = kill_at(point, dag_id, uri, experiment)
    assert killed.returncode == -9, killed.stdout[-3000:] + killed.stderr[-3000:]
    client = make_client(server_conn)
    left = all_runs(client, experiment)
    # (a) a retry in place: the same DAG run id
    dag = make_dag(dag_id, uri, experiment)
    retry = run_interval(dag, FIRST)
    assert retry.run_id == f"manual__{FIRST.isoformat()}"
    out = xcom(retry, "train")
    finished_before = [r.info.run_id for r in left if r.info.status == "FINISHED"]
    assert out["status"] == ("reused" if finished_before else "trained")
    # (b) a new DAG run for the interval
    rerun = xcom(run_interval(dag, LATER), "train")
    assert rerun["status"] == "reused" and rerun["reused_from"] == out["run_id"]
    final = all_runs(client, experiment)
    statuses = {r.info.run_id: r.info.status for r in final}
    assert [i for i, s in statuses.items() if s == "FINISHED"] == [out["run_id"]], statuses
    for run in final:
        if run.info.run_id != out["run_id"]:
            assert run.info.status == "FAILED"
            assert "dead" in run.data.tags[runs.CLOSED_REASON_TAG]
            assert run.data.tags["mlops.superseded_by"] == out["run_id"]
    assert len(final) == len(left) + (0 if finished_before else 1)
    done = client.get_run(out["run_id"])
    assert done.data.tags["mlops.fingerprint"] == clean.data.tags["mlops.fingerprint"]
    assert done.data.metrics == pytest.approx(clean.data.metrics)


def _child(argv: list[str]) -> None:
    """The killed DAG run: ``DAG_ID URI EXPERIMENT`` (``MLOPS_KILL_AT`` in the environment)."""
    dag_id, uri, experiment = argv
    run_interval(make_dag(dag_id, uri, experiment), FIRST)


if __name__ == "__main__":
    _child(sys.argv[1:])
