"""Every reference DAG imports cleanly, passes the integrity checks users run on their own DAGs
(mlops_provider.testing.integrity), and is wired the way the lifecycle needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = {
    "mlops_feature_pipeline",
    "mlops_training_pipeline",
    "mlops_batch_scoring",
    "mlops_monitoring",
    "mlops_deployment",
}

pytestmark = pytest.mark.dags


@pytest.fixture(scope="module")
def dagbag():
    from mlops_provider.testing.integrity import load_dagbag

    # as the DAG processor parses a bundle: the bundle's folder is importable (mlops_common)
    return load_dagbag(ROOT / "dags")


def test_no_import_errors_and_all_dags_present(dagbag) -> None:
    from mlops_provider.testing.integrity import import_findings

    assert [str(f) for f in import_findings(dagbag.import_errors)] == []
    assert set(dagbag.dag_ids) == EXPECTED


@pytest.mark.mlops_integrity
def test_the_reference_dags_pass_the_integrity_checks(mlops) -> None:
    """What a user's CI checks of its DAGs, through the provider's pytest plugin (the project
    is this repository): imports, cycles, parse time and heavy imports, owners, retries, and
    every templated field rendering for a sample run."""
    assert mlops.dags_folder == ROOT / "dags"
    report = mlops.integrity()
    report.assert_ok()
    assert {d.dag_id for d in report.dags} == EXPECTED


def test_daily_dags_use_data_intervals(dagbag) -> None:
    from airflow.sdk import CronDataIntervalTimetable

    for dag_id in EXPECTED - {"mlops_training_pipeline", "mlops_deployment"}:
        dag = dagbag.dags[dag_id]
        assert isinstance(dag.timetable, CronDataIntervalTimetable), dag_id
        assert dag.catchup is False and dag.max_active_runs == 1


def test_training_is_scheduled_by_retrain_requests_or_weekly(dagbag) -> None:
    from airflow.sdk import AssetOrTimeSchedule

    from mlops_provider.assets import RETRAIN_REQUEST_ASSET

    dag = dagbag.dags["mlops_training_pipeline"]
    assert isinstance(dag.timetable, AssetOrTimeSchedule)
    assert _assets_of(dag.timetable.asset_condition) == [RETRAIN_REQUEST_ASSET]
    assert RETRAIN_REQUEST_ASSET.name == RETRAIN_REQUEST_ASSET.uri == "mlops.retrain-request"


def _assets_of(condition: Any) -> list[Any]:
    """The assets of a schedule's asset condition (an Asset, or AssetAll / AssetAny of them)."""
    from airflow.sdk import Asset

    if condition is None:
        return []
    if isinstance(condition, Asset):
        return [condition]
    return [a for part in condition.objects for a in _assets_of(part)]


def _outlets(dagbag) -> dict[str, set[str]]:
    """Asset name -> the DAGs with a task emitting it."""
    out: dict[str, set[str]] = {}
    for dag in dagbag.dags.values():
        for task in dag.tasks:
            for outlet in task.outlets:
                out.setdefault(outlet.name, set()).add(dag.dag_id)
    return out


def _scheduled_on(dagbag) -> dict[str, set[str]]:
    """Asset name -> the DAGs it schedules."""
    out: dict[str, set[str]] = {}
    for dag in dagbag.dags.values():
        for asset in _assets_of(getattr(dag.timetable, "asset_condition", None)):
            out.setdefault(asset.name, set()).add(dag.dag_id)
    return out


def test_lifecycle_assets_connect_the_dags(dagbag) -> None:
    from mlops_common import MODEL_ASSET, PREDICTIONS_ASSET

    from mlops_provider.assets import RETRAIN_REQUEST_ASSET

    assert _outlets(dagbag) == {
        RETRAIN_REQUEST_ASSET.name: {"mlops_monitoring"},
        MODEL_ASSET.name: {"mlops_training_pipeline"},
        PREDICTIONS_ASSET.name: {"mlops_batch_scoring"},
    }
    assert _scheduled_on(dagbag) == {
        RETRAIN_REQUEST_ASSET.name: {"mlops_training_pipeline"},
        MODEL_ASSET.name: {"mlops_deployment"},
    }
    # every asset is a name, never a URI whose scheme makes parsing load provider handlers
    assert all("://" not in name for name in _outlets(dagbag))


def test_every_emitted_asset_has_a_consumer_or_is_a_documented_hook(dagbag) -> None:
    """An asset nothing schedules on is emitted only as a hook for the user's own DAGs, and
    docs/lifecycle.md's asset table says so (its consumer column reads "hook: ...")."""
    rows = {}
    for line in (ROOT / "docs" / "lifecycle.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 3 and "`mlops." in cells[0]:
            name = cells[0].split("`mlops.", 1)[1].split("`", 1)[0]
            rows[f"mlops.{name}"] = cells[2]
    scheduled = _scheduled_on(dagbag)
    for name in _outlets(dagbag):
        assert name in rows, f"{name} is emitted but not in docs/lifecycle.md's asset table"
        if name not in scheduled:
            assert rows[name].startswith("hook:"), f"{name}: no consumer and no documented hook"
        else:
            assert all(dag_id in rows[name] for dag_id in scheduled[name]), name
    assert set(rows) == set(_outlets(dagbag)), "docs/lifecycle.md lists an asset nothing emits"


def test_bad_data_is_quarantined_not_retried(dagbag) -> None:
    task = dagbag.dags["mlops_feature_pipeline"].get_task("validate_raw")
    assert task.on_failure == "quarantine" and task.retries == 0
    assert "quarantine" in task.quarantine_uri


def test_promotion_only_after_the_gate(dagbag) -> None:
    dag = dagbag.dags["mlops_training_pipeline"]
    promote = dag.get_task("promote")
    assert "gate" in promote.upstream_task_ids
    assert dag.get_task("gate").downstream_task_ids == {"promote", "approve", "record_rejection"}
