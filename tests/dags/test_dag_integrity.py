"""Every reference DAG imports cleanly and is wired the way the lifecycle needs."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = {
    "mlops_feature_pipeline",
    "mlops_training_pipeline",
    "mlops_batch_scoring",
    "mlops_monitoring",
}

pytestmark = pytest.mark.dags


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import BundleDagBag

    # as the DAG processor parses a bundle: the bundle's folder is importable (mlops_common)
    return BundleDagBag(
        dag_folder=str(ROOT / "dags"), bundle_path=ROOT / "dags", bundle_name="dags-folder"
    )


def test_no_import_errors_and_all_dags_present(dagbag) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == EXPECTED


def test_daily_dags_use_data_intervals(dagbag) -> None:
    from airflow.timetables.interval import CronDataIntervalTimetable

    for dag_id in EXPECTED - {"mlops_training_pipeline"}:
        dag = dagbag.dags[dag_id]
        assert isinstance(dag.timetable, CronDataIntervalTimetable), dag_id
        assert dag.catchup is False and dag.max_active_runs == 1


def test_training_is_scheduled_by_retrain_requests_or_weekly(dagbag) -> None:
    from airflow.timetables.assets import AssetOrTimeSchedule

    from mlops_provider.assets import RETRAIN_REQUEST_ASSET_URI

    dag = dagbag.dags["mlops_training_pipeline"]
    assert isinstance(dag.timetable, AssetOrTimeSchedule)
    uris = {asset.uri.rstrip("/") for _, asset in dag.timetable.asset_condition.iter_assets()}
    assert RETRAIN_REQUEST_ASSET_URI in uris


def test_lifecycle_assets_connect_the_dags(dagbag) -> None:
    from mlops_common import FEATURES_ASSET_URI, MODEL_ASSET_URI, PREDICTIONS_ASSET_URI

    from mlops_provider.assets import RETRAIN_REQUEST_ASSET_URI

    def outlets(dag_id: str) -> set[str]:
        dag = dagbag.dags[dag_id]
        return {o.uri.rstrip("/") for t in dag.tasks for o in t.outlets}

    assert FEATURES_ASSET_URI in outlets("mlops_feature_pipeline")
    assert MODEL_ASSET_URI in outlets("mlops_training_pipeline")
    assert PREDICTIONS_ASSET_URI in outlets("mlops_batch_scoring")
    assert RETRAIN_REQUEST_ASSET_URI in outlets("mlops_monitoring")


def test_bad_data_is_quarantined_not_retried(dagbag) -> None:
    task = dagbag.dags["mlops_feature_pipeline"].get_task("validate_raw")
    assert task.on_failure == "quarantine" and task.retries == 0
    assert "quarantine" in task.quarantine_uri


def test_promotion_only_after_the_gate(dagbag) -> None:
    dag = dagbag.dags["mlops_training_pipeline"]
    promote = dag.get_task("promote")
    assert "gate" in promote.upstream_task_ids
    assert dag.get_task("gate").downstream_task_ids == {"promote", "approve", "record_rejection"}
