"""TrainModelOperator inside real DAGs (dag.test) against the embedded store and a real MLflow server."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from include.dag_runner import run_dag, task_states, xcom
from include.simulator import ChurnSimulator
from mlops_provider.core import io, runs
from mlops_provider.core.mlflow_target import MlflowTarget, make_client
from mlops_provider.core.processes import host_id
from mlops_provider.core.results import check_result
from mlops_provider.core.training import REFERENCE_PROFILE_PATH, TASK_KEY_TAG
from mlops_provider.exceptions import MlopsProviderDeprecationWarning
from tests.conftest import MAX_TASK_LOG_LINES, RecordingHandler, task_log_records

pytestmark = pytest.mark.integration

DAY = date(2026, 1, 8)
FAST = {
    "estimator": "sklearn.linear_model.LogisticRegression",
    "estimator_params": {"max_iter": 300},
}


def write_training_set(root: Path, days: int = 4, seed: int = 11) -> str:
    sim = ChurnSimulator(seed=seed, n_customers=800)
    frames = []
    for i in range(days):
        day = date(2026, 1, 1) + timedelta(days=i)
        frames.append(
            sim.activity(day).merge(sim.labels(day), on=["customer_id", "event_timestamp"])
        )
    uri = str(root / "training" / "train.parquet")
    io.write_table(pd.concat(frames, ignore_index=True), uri)
    return uri


def make_dag(dag_id: str, tasks: dict[str, dict], **default_args):
    from airflow.sdk import DAG

    from mlops_provider.operators.training import TrainModelOperator

    with DAG(
        dag_id,
        schedule="@daily",
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
        default_args=default_args,
    ) as dag:
        for task_id, kwargs in tasks.items():
            TrainModelOperator(task_id=task_id, **kwargs)
    return dag


def work_key(dag_run, task_id: str) -> str:
    """The ``mlops.task_key`` of a task of ``dag_run`` (``RunIdentity.work_key``)."""
    return runs.RunIdentity(
        dag_id=dag_run.dag_id,
        task_id=task_id,
        data_interval_start=dag_run.data_interval_start,
        data_interval_end=dag_run.data_interval_end,
    ).work_key


def runs_for(client, experiment: str, key: str) -> list:
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else runs.find_runs(client, exp.experiment_id, {TASK_KEY_TAG: key})


def test_train_in_dag_embedded(airflow_db, mlops_home: Path, tmp_path: Path, caplog) -> None:
    import mlflow

    from mlops_provider import __version__
    from mlops_provider.core.governance import read_training_lineage
    from mlops_provider.core.logs import CHATTY_LOGGERS
    from mlops_provider.core.mlflow_target import activated
    from mlops_provider.hooks.mlflow import MlflowHook

    uri = write_training_set(mlops_home / "data")
    dag = make_dag(
        "train_embedded",
        {
            "train": {
                "training_data": uri,
                "target": "churned",
                "experiment_name": "it-train",
                "feature_refs": ["customer_activity:tenure_months", "customer_activity:plan"],
                "lineage": {"label_window": {"window_days": "{{ 1 + 2 }}"}},
                **FAST,
            }
        },
    )
    # what reaches MLflow's own (stderr) handler: an ERROR line each in Airflow's task log
    mlflow_handler = RecordingHandler()
    logging.getLogger("mlflow").addHandler(mlflow_handler)
    try:
        with caplog.at_level(logging.INFO):
            dr = run_dag(dag, DAY)
    finally:
        logging.getLogger("mlflow").removeHandler(mlflow_handler)
    assert task_states(dr) == {"train": "success"}
    task_log = task_log_records(caplog.records, "train")
    lines = [f"{r.levelname} {r.name}: {r.getMessage()}" for r in task_log]
    assert len(lines) <= MAX_TASK_LOG_LINES, "\n".join(lines)
    assert all(r.levelno < logging.WARNING for r in task_log), lines
    assert any("fitted sklearn" in line for line in lines)
    # MLflow's environment inference while logging the model and its store migrations
    chatter = [r for r in mlflow_handler.records if r.name.startswith(CHATTY_LOGGERS)]
    assert chatter == [], [r.getMessage() for r in chatter]
    out = xcom(dr, "train")
    for key in ("run_id", "model_uri", "experiment_id", "metrics", "task", "feature_columns",
                "training_rows", "dataset_digest", "reference_profile_uri"):  # fmt: skip
        assert key in out, key
    assert out["task"] == "classification" and out["model_uri"].startswith("models:/m-")
    # the common result shape (docs/results.md): the model is the logged, unregistered model
    assert check_result(out) == [] and (out["status"], out["passed"]) == ("trained", True)
    assert out["model"] == {
        "name": None,
        "version": None,
        "run_id": out["run_id"],
        "uri": out["model_uri"],
    }
    assert (out["mlflow_run_id"], out["rows"]) == (out["run_id"], out["training_rows"])
    assert out["problem_type"] == "classification" and out["reasons"] == []
    assert xcom(dr, "train", key="model_uri") == out["model_uri"]
    assert out["metrics"]["roc_auc"] > 0.6 and out["training_rows"] > 500
    assert "customer_id" not in out["feature_columns"] and "churned" not in out["feature_columns"]

    target = MlflowHook().target
    assert target.tracking_uri.endswith(str(mlops_home / "mlflow" / "mlflow.db"))
    client = make_client(target)
    run = client.get_run(out["run_id"])
    tags = run.data.tags
    assert tags["mlops.dag_id"] == "train_embedded" and tags["mlops.task_id"] == "train"
    # the work key: one per data interval, whatever the DAG run
    assert tags[TASK_KEY_TAG] == work_key(dr, "train")
    assert tags["mlops.owner"].startswith(host_id() + "p")
    assert tags["mlops.data_interval_start"] == dr.data_interval_start.isoformat()
    assert tags["mlops.data_interval_end"] == dr.data_interval_end.isoformat()
    assert json.loads(tags["mlops.feature_refs"])[1] == "customer_activity:plan"
    assert tags["mlops.provider_version"] == __version__
    assert run.data.metrics["roc_auc"] == pytest.approx(out["metrics"]["roc_auc"])
    assert run.inputs.dataset_inputs[0].dataset.digest == out["dataset_digest"]
    exp = client.get_experiment(out["experiment_id"])
    assert exp.name == "it-train" and exp.artifact_location.startswith(
        (mlops_home / "mlflow" / "artifacts").as_uri()
    )
    assert client.list_artifacts(out["run_id"], "monitoring")[0].path == REFERENCE_PROFILE_PATH
    # the lineage document: the DAG's fields (templated) and the code from the Airflow context
    lineage = read_training_lineage(client, out["run_id"])
    assert lineage is not None and lineage.label_window == {"window_days": "3"}
    code = lineage.code
    assert (code["dag_id"], code["task_id"], code["run_id"]) == (
        "train_embedded",
        "train",
        dr.run_id,
    )
    ti = next(t for t in dr.get_task_instances() if t.task_id == "train")
    assert code["dag_version_id"] == str(ti.dag_version_id)
    assert code["dag_file"] == dag.fileloc and code["provider_version"] == __version__
    digest = hashlib.sha256(Path(dag.fileloc).read_bytes()).hexdigest()
    assert code["dag_file_digest"] == digest and code["airflow_version"]
    with activated(target):
        model = mlflow.sklearn.load_model(out["model_uri"])
    raw = io.read_pandas(uri).head(10)  # raw rows, ids included: the model picks its columns
    assert model.predict(raw[out["feature_columns"]]).shape == (10,)


def test_retry_after_failure_leaves_one_finished_run(
    airflow_db, mlops_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow.sklearn

    uri = write_training_set(mlops_home / "data", days=3)
    real = mlflow.sklearn.log_model
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("artifact store went away mid-upload")
        return real(*args, **kwargs)

    monkeypatch.setattr(mlflow.sklearn, "log_model", flaky)
    dag = make_dag(
        "train_retry",
        {
            "train": {
                "training_data": uri,
                "target": "churned",
                "experiment_name": "it-retry",
                **FAST,
            }
        },
        retries=1,
        retry_delay=timedelta(seconds=0),
    )
    dr = run_dag(dag, DAY)
    assert task_states(dr) == {"train": "success"}
    assert calls["n"] == 2
    (ti,) = dr.get_task_instances()
    assert ti.try_number == 2
    client = make_client(
        MlflowTarget(tracking_uri=f"sqlite:///{mlops_home / 'mlflow' / 'mlflow.db'}")
    )
    runs = runs_for(client, "it-retry", work_key(dr, "train"))
    statuses = sorted(r.info.status for r in runs)
    assert statuses == ["FAILED", "FINISHED"]
    finished = next(r for r in runs if r.info.status == "FINISHED")
    assert xcom(dr, "train")["run_id"] == finished.info.run_id
    failed = next(r for r in runs if r.info.status == "FAILED")
    assert failed.data.tags["mlops.superseded_by"] == finished.info.run_id


def test_bad_input_fails_before_any_run(airflow_db, mlops_home: Path) -> None:
    uri = write_training_set(mlops_home / "data", days=2)
    single = str(mlops_home / "data" / "single.parquet")
    io.write_table(io.read_pandas(uri).assign(churned=0), single)
    common = {"experiment_name": "it-bad", **FAST}
    dag = make_dag(
        "train_bad",
        {
            "missing_target": {"training_data": uri, "target": "label", **common},
            "single_class": {"training_data": single, "target": "churned", **common},
            "unknown_estimator": {
                "training_data": uri,
                "target": "churned",
                "experiment_name": "it-bad",
                "estimator": "sklearn.ensemble.NoSuchForest",
            },
            "bad_params": {
                "training_data": uri,
                "target": "churned",
                "experiment_name": "it-bad",
                "estimator": "sklearn.ensemble.HistGradientBoostingClassifier",
                "estimator_params": {"max_iter": 0},
            },
            "empty": {
                "training_data": str(mlops_home / "nothing.parquet"),
                "target": "churned",
                **common,
            },
        },
    )
    dr = run_dag(dag, DAY)
    assert set(task_states(dr).values()) == {"failed"}
    client = make_client(
        MlflowTarget(tracking_uri=f"sqlite:///{mlops_home / 'mlflow' / 'mlflow.db'}")
    )
    assert client.get_experiment_by_name("it-bad") is None  # validation ran before MLflow


def test_unreachable_server_then_real_server(
    airflow_db, mlops_home: Path, mlflow_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import free_port

    uri = write_training_set(mlops_home / "data", days=3)
    down = free_port()
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT",
        json.dumps({"conn_type": "mlflow", "host": "127.0.0.1", "port": down}),
    )
    experiment = f"it-http-{down}"
    dag = make_dag(
        "train_http",
        {
            "train": {
                "training_data": uri,
                "target": "churned",
                "experiment_name": experiment,
                **FAST,
            }
        },
    )
    dr = run_dag(dag, DAY)
    assert task_states(dr) == {"train": "failed"}

    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT")
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT",
        json.dumps({"conn_type": "mlflow", "host": "127.0.0.1", "port": mlflow_server.port}),
    )
    dr = run_dag(dag, DAY)
    assert task_states(dr) == {"train": "success"}
    out = xcom(dr, "train")
    client = make_client(MlflowTarget(tracking_uri=mlflow_server.url))
    runs = runs_for(client, experiment, work_key(dr, "train"))
    assert [r.info.run_id for r in runs] == [out["run_id"]]
    assert runs[0].info.status == "FINISHED"
    exp_id = client.get_experiment_by_name(experiment).experiment_id
    assert len(client.search_runs([exp_id])) == 1  # the failed try left nothing behind
    assert out["tracking_uri"] == mlflow_server.url
    link = xcom(dr, "train", key="_link_MlflowRunLink")
    assert link == f"/mlops/mlflow/runs/{out['run_id']}?experiment_id={out['experiment_id']}"


def test_deprecated_parameter_names_still_work(airflow_db, mlops_home: Path) -> None:
    uri = write_training_set(mlops_home / "data", days=2)
    with pytest.warns(MlopsProviderDeprecationWarning, match="'task' is deprecated") as caught:
        dag = make_dag(
            "train_old_names",
            {
                "train": {
                    "training_data": uri,
                    "target": "churned",
                    "experiment_name": "it-old-names",
                    "task": "classification",
                    "id_columns": ["plan"],
                    **FAST,
                }
            },
        )
    assert any("'id_columns' is deprecated" in str(w.message) for w in caught)
    (op,) = dag.tasks
    assert (op.problem_type, op.entity_columns) == ("classification", ["plan"])
    dr = run_dag(dag, DAY)
    assert task_states(dr) == {"train": "success"}
    out = xcom(dr, "train")
    assert check_result(out) == [] and out["problem_type"] == "classification"
    assert "plan" not in out["feature_columns"]  # an entity column, never a feature
