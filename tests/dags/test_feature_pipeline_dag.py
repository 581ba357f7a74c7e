"""mlops_feature_pipeline end to end in an isolated environment: clean days flow, a bad day is
quarantined."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from include.simulator import SCENARIOS, ChurnSimulator
from mlops_provider.testing.environment import MlopsEnvironment

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.dags, pytest.mark.integration, pytest.mark.mlops_run]

DAY1, DAY2, DAY3 = date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)
DAG_ID = "mlops_feature_pipeline"


@pytest.fixture
def env(mlops_env: MlopsEnvironment) -> MlopsEnvironment:
    """An isolated environment for this repository's DAGs (data lake, MLflow, Feast, metadata
    DB), from the provider's pytest plugin (the project is this repository)."""
    assert mlops_env.dags_folder == ROOT / "dags"
    return mlops_env


def _online(env: MlopsEnvironment, customer_id: int) -> dict:
    """The online features of one customer, read through the environment's Feast repo."""
    from mlops_provider.hooks.feast import FeastHook

    return (
        FeastHook(repo_path=str(env.feature_repo))
        .store.get_online_features(
            features=["customer_activity:monthly_charges", "customer_activity:plan"],
            entity_rows=[{"customer_id": customer_id}],
        )
        .to_dict()
    )


def test_clean_days_materialize_and_bad_day_is_quarantined(
    env: MlopsEnvironment, tmp_path: Path
) -> None:
    sim = ChurnSimulator(seed=11, n_customers=400, scenarios=SCENARIOS["nulls"](DAY2, DAY2))
    samples = tmp_path / "samples"
    for day in (DAY1, DAY2, DAY3):
        sim.write_day(samples, day)
        env.put(samples / "raw" / f"dt={day}", f"raw/dt={day}")

    first = env.run_dag(DAG_ID, day=DAY1)
    first.assert_success()
    assert set(first.task_states.values()) == {"success"}
    summary = first.xcoms["validate_raw"]
    assert (summary["status"], summary["passed"]) == ("passed", True)
    assert summary["rows"] == len(sim.activity(DAY1))
    assert first.xcoms["materialize"]["window"]["start"].startswith("2026-01-01")

    bad = env.run_dag(DAG_ID, day=DAY2)
    assert bad.task_states["validate_raw"] == "failed"
    rejected = bad.xcoms["validate_raw"]  # pushed before the task fails
    assert (rejected["status"], rejected["passed"]) == ("quarantined", False)
    assert any("monthly_charges" in reason for reason in rejected["reasons"])
    assert bad.task_states["publish"] == "upstream_failed"
    assert bad.task_states["materialize"] == "upstream_failed"
    quarantine = env.path("quarantine/raw/dt=2026-01-02")
    assert (quarantine / "validation_result.json").exists()
    assert (quarantine / "report.html").exists()
    assert any((quarantine / "data").rglob("*.parquet"))
    assert env.path("raw/dt=2026-01-02/activity.parquet").exists()  # kept
    assert not env.path("features/customer_activity/dt=2026-01-02").exists()

    env.run_dag(DAG_ID, day=DAY3).assert_success()

    # the online store serves day 3's values for a customer active on day 3
    activity = sim.activity(DAY3)
    row = activity.iloc[0]
    online = _online(env, int(row["customer_id"]))
    assert online["monthly_charges"][0] == pytest.approx(float(row["monthly_charges"]))
    assert online["plan"][0] == row["plan"]

    # a rerun of a day replaces its published partition, never duplicates it
    env.run_dag(DAG_ID, day=DAY3).assert_success()
    import pyarrow.dataset as ds

    published = ds.dataset(env.path("features/customer_activity/dt=2026-01-03")).count_rows()
    assert published == len(activity)
