"""The reference DAGs take their settings explicitly: the project's Feast repo and GX suites
(so they run from a wheel install without MLOPS_PROJECT_ROOT) and MLOPS_AWS_CONN_ID for every
storage access, in operators and in the DAGs' own Python tasks alike."""

from __future__ import annotations

import importlib
import runpy
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGS = ROOT / "dags"
DAG_FILES = sorted(p for p in DAGS.glob("mlops_*.py") if p.stem != "mlops_common")
SETTINGS = (
    "MLOPS_PROJECT_ROOT",
    "MLOPS_FEATURE_REPO",
    "MLOPS_EXPECTATIONS_DIR",
    "MLOPS_AWS_CONN_ID",
    "MLOPS_LAKE_URI",
    "MLOPS_REPORTS_URI",
    "MLOPS_MODEL_NAME",
    "MLOPS_MLFLOW_CONN_ID",
    "MLOPS_FEAST_CONN_ID",
    *(
        f"AIRFLOW__MLOPS__{option}"
        for option in (
            "LAKE_URI",
            "REPORTS_URI",
            "MODEL_NAME",
            "MLFLOW_CONN_ID",
            "FEAST_CONN_ID",
            "AWS_CONN_ID",
            "FEATURE_REPO",
            "PROJECT_ROOT",
        )
    ),
)

pytestmark = pytest.mark.dags

Loader = Callable[..., tuple[dict[str, Any], Any]]


@pytest.fixture
def load_dags(monkeypatch: pytest.MonkeyPatch) -> Iterator[Loader]:
    """Load every DAG file under the given environment (``None`` unsets a variable)."""
    sys.path.insert(0, str(DAGS))
    import mlops_common

    def load(**env: str | None) -> tuple[dict[str, Any], Any]:
        for name in SETTINGS:
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            if value is not None:
                monkeypatch.setenv(name, value)
        importlib.reload(mlops_common)
        dags = {p.stem: runpy.run_path(str(p))["dag"] for p in DAG_FILES}
        return dags, mlops_common

    yield load
    monkeypatch.undo()
    importlib.reload(mlops_common)
    sys.path.remove(str(DAGS))


def _tasks_with(dags: dict[str, Any], parameter: str) -> dict[str, Any]:
    """``{dag.task: value}`` of every task that has ``parameter`` (a template field, as every
    parameter of the vocabulary is)."""
    return {
        f"{dag_id}.{task.task_id}": getattr(task, parameter)
        for dag_id, dag in dags.items()
        for task in dag.tasks
        if parameter in task.template_fields
    }


def test_dags_find_their_files_without_settings(load_dags: Loader) -> None:
    """As installed from a wheel: no MLOPS_PROJECT_ROOT, no MLOPS_FEATURE_REPO. The provider
    finds nothing on its own; the DAGs name their repo and suites from their own location."""
    from mlops_provider.core.config import project_root

    dags, common = load_dags()
    assert project_root() is None
    assert common.PROJECT_ROOT == ROOT
    repos = _tasks_with(dags, "repo_path")
    assert set(repos) >= {
        "mlops_feature_pipeline.apply_feature_repo",
        "mlops_feature_pipeline.materialize",
        "mlops_training_pipeline.training_set",
        "mlops_training_pipeline.evaluation_set",
        "mlops_batch_scoring.features_ready",
        "mlops_monitoring.training_serving_skew",
    }
    assert set(repos.values()) == {str(ROOT / "include" / "feature_repo")}
    suites = _tasks_with(dags, "expectation_suite")
    assert len(suites) == 3
    for task, suite in suites.items():
        assert Path(suite).is_absolute() and Path(suite).is_file(), (task, suite)


def test_settings_move_the_files(load_dags: Loader, tmp_path: Path) -> None:
    dags, _ = load_dags(
        MLOPS_FEATURE_REPO=str(tmp_path / "repo"), MLOPS_EXPECTATIONS_DIR=str(tmp_path / "gx")
    )
    assert set(_tasks_with(dags, "repo_path").values()) == {str(tmp_path / "repo")}
    suites = _tasks_with(dags, "expectation_suite").values()
    assert all(Path(s).parent == tmp_path / "gx" for s in suites)
    dags, common = load_dags(MLOPS_PROJECT_ROOT=str(tmp_path))
    assert str(tmp_path / "include" / "feature_repo") == common.FEATURE_REPO


def test_every_operator_uses_the_aws_connection_setting(load_dags: Loader) -> None:
    """MLOPS_AWS_CONN_ID reaches every task that reads or writes the lake (it was ignored by
    the monitoring DAG's operators)."""
    dags, _ = load_dags(MLOPS_AWS_CONN_ID="lake_s3")
    conns = _tasks_with(dags, "aws_conn_id")
    assert {
        "mlops_monitoring.data_drift",
        "mlops_monitoring.prediction_drift",
        "mlops_monitoring.performance",
        "mlops_monitoring.training_serving_skew",
        "mlops_monitoring.retrain_decision",
        "mlops_batch_scoring.score",
        "mlops_training_pipeline.train",
    } <= set(conns)
    assert {task: conn for task, conn in conns.items() if conn != "lake_s3"} == {}


def test_default_aws_connection_is_the_provider_default(load_dags: Loader) -> None:
    dags, common = load_dags()
    assert common.AWS_CONN_ID == "aws_default"
    assert set(_tasks_with(dags, "aws_conn_id").values()) == {"aws_default"}


def test_the_mlops_config_section_moves_the_dags(load_dags: Loader, tmp_path: Path) -> None:
    """``[mlops]`` of Airflow's configuration (here AIRFLOW__MLOPS__*) reaches the DAGs: lake,
    reports, model, and the three connections of every task that takes one."""
    dags, common = load_dags(
        AIRFLOW__MLOPS__LAKE_URI="s3://lake/base",
        AIRFLOW__MLOPS__MODEL_NAME="demand",
        AIRFLOW__MLOPS__MLFLOW_CONN_ID="mlflow_prod",
        AIRFLOW__MLOPS__FEAST_CONN_ID="feast_prod",
        AIRFLOW__MLOPS__AWS_CONN_ID="aws_lake",
        AIRFLOW__MLOPS__FEATURE_REPO=str(tmp_path / "repo"),
    )
    assert common.DATA_ROOT == "s3://lake/base" and common.RAW_URI == "s3://lake/base/raw"
    assert common.REPORTS_URI == "s3://lake/base/reports"
    assert common.MODEL_NAME == "demand" and common.MODEL_ASSET.name == "mlops.models.demand"
    assert set(_tasks_with(dags, "aws_conn_id").values()) == {"aws_lake"}
    assert set(_tasks_with(dags, "repo_path").values()) == {str(tmp_path / "repo")}
    mlflow = _tasks_with(dags, "mlflow_conn_id")
    feast = _tasks_with(dags, "feast_conn_id")
    assert {"mlops_training_pipeline.train", "mlops_monitoring.retrain_decision"} <= set(mlflow)
    assert {"mlops_feature_pipeline.materialize", "mlops_batch_scoring.features_ready"} <= set(
        feast
    )
    assert set(mlflow.values()) == {"mlflow_prod"} and set(feast.values()) == {"feast_prod"}
    # an MLOPS_* variable wins over the section
    _, common = load_dags(AIRFLOW__MLOPS__MODEL_NAME="demand", MLOPS_MODEL_NAME="churn_v2")
    assert common.MODEL_NAME == "churn_v2"
    _, common = load_dags(AIRFLOW__MLOPS__REPORTS_URI="s3://reports/")
    assert common.REPORTS_URI == "s3://reports"


def test_without_settings_the_connections_are_the_defaults(load_dags: Loader) -> None:
    dags, common = load_dags()
    assert common.MODEL_NAME == "churn"
    assert set(_tasks_with(dags, "mlflow_conn_id").values()) == {"mlflow_default"}
    assert set(_tasks_with(dags, "feast_conn_id").values()) == {"feast_default"}


def _recorder(calls: list[dict[str, Any]], result: Any) -> Callable[..., Any]:
    def record(*args: Any, **kwargs: Any) -> Any:
        calls.append({"args": args, **kwargs})
        return result

    return record


def test_feature_publish_uses_the_aws_connection_setting(
    load_dags: Loader, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The feature pipeline's publish step passed no connection (MLOPS_AWS_CONN_ID ignored)."""
    from mlops_provider.core import features

    dags, _ = load_dags(MLOPS_AWS_CONN_ID="lake_s3")
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(features, "publish_partition", _recorder(calls, {"rows": 1}))
    publish = dags["mlops_feature_pipeline"].get_task("publish")
    validation = {"status": "passed", "passed": True, "rows": 1}
    publish.python_callable("s3://lake/raw/dt=2026-01-05", "2026-01-05", validation)
    assert len(calls) == 1 and calls[0]["conn_id"] == "lake_s3"
    assert calls[0]["validation"] == validation  # kept with the partition for lineage
    assert calls[0]["entity_columns"] == ["customer_id"]


def test_monitoring_python_tasks_use_the_aws_connection_setting(
    load_dags: Loader, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops_provider.core import io

    dags, _ = load_dags(MLOPS_AWS_CONN_ID="lake_s3")
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(io, "exists", _recorder(calls, False))
    earlier = dags["mlops_monitoring"].get_task("earlier_predictions")
    assert earlier.python_callable("2026-01-08") == []
    assert len(calls) == 7 and {c["conn_id"] for c in calls} == {"lake_s3"}

    calls.clear()
    monkeypatch.setattr(io, "count_rows", _recorder(calls, 10))
    rows = dags["mlops_batch_scoring"].get_task("input_rows")
    assert rows.python_callable("s3://lake/features/dt=2026-01-08") == 10
    assert calls[0]["conn_id"] == "lake_s3"


def test_dags_use_no_deprecated_parameter(load_dags: Loader) -> None:
    """The reference DAGs speak the vocabulary (docs/vocabulary.md), not the old names."""
    from mlops_provider.exceptions import MlopsProviderDeprecationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", MlopsProviderDeprecationWarning)
        dags, _ = load_dags()
    assert set(dags) == {p.stem for p in DAG_FILES}
