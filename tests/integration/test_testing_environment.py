"""Isolated environments (mlops_provider.testing.environment) run a project's DAGs in
subprocesses: nothing is shared between two environments nor leaks into the caller."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from mlops_provider.testing.environment import (
    DagNotFoundError,
    MlopsEnvironment,
    RunnerError,
    create_environment,
)

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration

#: A DAG that touches every piece of state an environment owns.
PROBE_DAG = """\
from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

from airflow.sdk import DAG, get_current_context, task

from mlops_provider.operators.feast import FeastApplyOperator

with DAG("env_probe", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc)):

    @task
    def lake() -> str:
        from mlops_provider.core import config

        path = Path(config.lake_uri()) / "probe.txt"
        path.write_text(get_current_context()["dag_run"].conf["name"])
        return str(path)

    @task
    def tracking() -> dict:
        from mlops_provider.hooks.mlflow import MlflowHook

        hook = MlflowHook()
        name = get_current_context()["dag_run"].conf["name"]
        return {"uri": hook.target.tracking_uri, "id": hook.get_or_create_experiment(name)}

    @task
    def where() -> dict:
        from airflow.configuration import conf

        names = ("AIRFLOW_HOME", "MLOPS_HOME", "MLOPS_FEATURE_REPO", "MLOPS_LAKE_URI",
                 "MLFLOW_TRACKING_URI", "AIRFLOW_CONN_MLFLOW_DEFAULT")
        out = {name: os.environ.get(name) for name in names}
        out["sql_alchemy_conn"] = conf.get("database", "sql_alchemy_conn")
        return out

    lake() >> tracking() >> where() >> FeastApplyOperator(task_id="apply")
"""

FAILING_DAG = """\
from __future__ import annotations

import os
import time
from datetime import datetime, timezone

from airflow.sdk import DAG, task

with DAG("env_fails", schedule=None, start_date=datetime(2026, 1, 1, tzinfo=timezone.utc)):

    @task
    def explode() -> None:
        raise ValueError("column 'price' is missing from sample.parquet")

    @task
    def after() -> None:
        pass

    @task
    def crash() -> None:
        os._exit(3)  # the whole runner dies: no result is written

    @task
    def hang() -> None:
        time.sleep(600)

    explode() >> after()
    crash()
    hang()
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's project: two DAG files, a broken one, and the reference Feast repo (with
    local data and a SQLite store an environment must not copy)."""
    root = tmp_path_factory.mktemp("project")
    dags = root / "dags"
    dags.mkdir()
    (dags / "env_probe.py").write_text(PROBE_DAG)
    (dags / "env_fails.py").write_text(FAILING_DAG)
    (dags / "broken.py").write_text(
        "from airflow.sdk import DAG\nimport module_that_does_not_exist\n"
    )
    repo = root / "include" / "feature_repo"
    shutil.copytree(ROOT / "include" / "feature_repo", repo)
    (repo / "data").mkdir()
    (repo / "data" / "registry.db").write_text("stale")
    (repo / "online_store.db").write_text("stale")
    return root


def _env(project: Path, base: Path, template: Path) -> MlopsEnvironment:
    return create_environment(base, dags_folder=project / "dags", template_db=template)


def _run_ids(env: MlopsEnvironment) -> list[str]:
    with sqlite3.connect(env.airflow_home / "airflow.db") as db:
        return [row[0] for row in db.execute("SELECT run_id FROM dag_run")]


def _experiments(env: MlopsEnvironment) -> set[str]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{env.mlops_home / 'mlflow' / 'mlflow.db'}")
    return {e.name for e in client.search_experiments()} - {"Default"}


def _feature_source(env: MlopsEnvironment) -> str:
    from mlops_provider.core.feast_config import make_feature_store

    store = make_feature_store(env.feature_repo)
    return store.get_feature_view("customer_activity").batch_source.path


def test_two_environments_share_nothing(
    project: Path, tmp_path: Path, mlops_template_db: Path
) -> None:
    envs = {name: _env(project, tmp_path / name, mlops_template_db) for name in ("a", "b")}
    results = {name: env.run_dag("env_probe", conf={"name": name}) for name, env in envs.items()}
    for name, env in envs.items():
        result = results[name]
        result.assert_success()
        # the lake
        assert (env.lake / "probe.txt").read_text() == name
        assert result.xcoms["lake"] == str(env.lake / "probe.txt")
        # the MLflow store
        assert result.xcoms["tracking"]["uri"] == f"sqlite:///{env.mlops_home}/mlflow/mlflow.db"
        assert _experiments(env) == {name}
        # the Feast repo copy (without the project's data) and its registry
        assert (env.feature_repo / "churn_features.py").is_file()
        assert not (env.feature_repo / "data").exists()
        assert not (env.feature_repo / "online_store.db").exists()
        assert (env.mlops_home / "feast" / "registry.db").is_file()
        assert _feature_source(env).startswith(str(env.lake))
        # the metadata database
        assert _run_ids(env) == [result.run_id]
        seen = result.xcoms["where"]
        assert seen["AIRFLOW_HOME"] == str(env.airflow_home)
        assert seen["sql_alchemy_conn"] == f"sqlite:///{env.airflow_home}/airflow.db"
        assert seen["MLOPS_HOME"] == str(env.mlops_home)
        assert seen["MLOPS_FEATURE_REPO"] == str(env.feature_repo)
    assert results["a"].run_id != results["b"].run_id


def test_tasks_restricts_the_run_to_those_tasks(
    project: Path, tmp_path: Path, mlops_template_db: Path
) -> None:
    env = _env(project, tmp_path / "env", mlops_template_db)
    result = env.run_dag("env_probe", conf={"name": "only"}, tasks=["lake", "where"])
    result.assert_success()
    assert result.task_states == {"lake": "success", "where": "success"}
    assert set(result.xcoms) == {"lake", "where"}
    assert (env.lake / "probe.txt").read_text() == "only"
    assert not (env.mlops_home / "mlflow").exists()  # tracking did not run
    assert not (env.mlops_home / "feast" / "registry.db").exists()  # apply did not run
    with pytest.raises(ValueError, match=r"no task\(s\) \['nope'\]"):
        env.run_dag("env_probe", tasks=["lake", "nope"])


def test_unknown_dag_id_names_the_dags_found_and_import_errors(
    project: Path, tmp_path: Path, mlops_template_db: Path
) -> None:
    env = _env(project, tmp_path / "env", mlops_template_db)
    with pytest.raises(DagNotFoundError) as caught:
        env.run_dag("env_missing")
    message = str(caught.value)
    assert "env_missing" in message
    assert "env_probe" in message and "env_fails" in message
    assert "broken.py" in message and "module_that_does_not_exist" in message
    assert caught.value.dag_ids == ["env_fails", "env_probe"]


def test_a_failing_task_shows_its_error_in_assert_success(
    project: Path, tmp_path: Path, mlops_template_db: Path
) -> None:
    env = _env(project, tmp_path / "env", mlops_template_db)
    result = env.run_dag("env_fails", tasks=["explode", "after"])
    assert result.state == "failed"
    assert result.failed_tasks() == ["explode"]
    assert result.task_states["after"] == "upstream_failed"
    with pytest.raises(AssertionError) as caught:
        result.assert_success()
    message = str(caught.value)
    assert "failed tasks: explode" in message
    assert "upstream_failed tasks: after" in message
    assert "ValueError: column 'price' is missing from sample.parquet" in message


def test_a_crashed_run_raises_with_its_output(
    project: Path, tmp_path: Path, mlops_template_db: Path
) -> None:
    env = _env(project, tmp_path / "env", mlops_template_db)
    with pytest.raises(
        RunnerError, match=r"the run of DAG env_fails crashed \(exit code 3"
    ) as caught:
        env.run_dag("env_fails", tasks=["crash"])
    assert "starting task_id=crash" in caught.value.output


def test_a_run_past_its_timeout_is_killed_and_raises(
    project: Path, tmp_path: Path, mlops_template_db: Path
) -> None:
    env = _env(project, tmp_path / "env", mlops_template_db)
    with pytest.raises(RunnerError, match=r"the run of DAG env_fails .* did not finish within 20s"):
        env.run_dag("env_fails", tasks=["hang"], timeout=20)


def test_the_callers_environment_is_unchanged_and_not_inherited(
    project: Path, tmp_path: Path, mlops_template_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9/caller")
    monkeypatch.setenv("MLOPS_LAKE_URI", "s3://caller-lake")
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", "mlflow://127.0.0.1:9")
    before = dict(os.environ)
    env = _env(project, tmp_path / "env", mlops_template_db)
    environ = env.environ()
    result = env.run_dag("env_probe", conf={"name": "x"}, tasks=["lake", "tracking", "where"])
    assert dict(os.environ) == before
    result.assert_success()
    seen = result.xcoms["where"]
    assert seen["MLFLOW_TRACKING_URI"] is None and seen["MLOPS_LAKE_URI"] is None
    assert seen["AIRFLOW_CONN_MLFLOW_DEFAULT"] is None
    assert result.xcoms["tracking"]["uri"].startswith(f"sqlite:///{env.mlops_home}")
    assert environ["PYTHONPATH"].split(os.pathsep)[:2] == [
        str(project / "dags"),
        str(project),
    ]
    assert environ["PYTHONPATH"].endswith(os.environ["PYTHONPATH"])
