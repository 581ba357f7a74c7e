"""mlops_feature_pipeline end to end with dag.test(): clean days flow, a bad day is quarantined."""

from __future__ import annotations

import importlib
import runpy
import sys
from datetime import date
from pathlib import Path

import pytest

from include.dag_runner import run_dag, task_states, xcom
from include.simulator import SCENARIOS, ChurnSimulator

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.dags, pytest.mark.integration]

DAY1, DAY2, DAY3 = date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)


@pytest.fixture
def feature_dag(mlops_home: Path, airflow_db: Path):
    """The DAG file loaded with this test's data root (mlops_common reads it at import)."""
    sys.path.insert(0, str(ROOT / "dags"))
    import mlops_common

    importlib.reload(mlops_common)
    namespace = runpy.run_path(str(ROOT / "dags" / "mlops_feature_pipeline.py"))
    yield namespace["dag"], mlops_common
    sys.path.remove(str(ROOT / "dags"))


def test_clean_days_materialize_and_bad_day_is_quarantined(feature_dag, mlops_home: Path) -> None:
    dag, common = feature_dag
    sim = ChurnSimulator(seed=11, n_customers=400, scenarios=SCENARIOS["nulls"](DAY2, DAY2))
    for day in (DAY1, DAY2, DAY3):
        sim.write_day(common.DATA_ROOT, day)

    first = run_dag(dag, DAY1)
    assert set(task_states(first).values()) == {"success"}
    summary = xcom(first, "validate_raw")
    assert (summary["status"], summary["passed"]) == ("passed", True)
    assert summary["rows"] == len(sim.activity(DAY1))
    materialized = xcom(first, "materialize")
    assert materialized["window"]["start"].startswith("2026-01-01")

    bad = run_dag(dag, DAY2)
    states = task_states(bad)
    assert states["validate_raw"] == "failed"
    rejected = xcom(bad, "validate_raw")  # pushed before the task fails
    assert (rejected["status"], rejected["passed"]) == ("quarantined", False)
    assert any("monthly_charges" in reason for reason in rejected["reasons"])
    assert states["publish"] == "upstream_failed" and states["materialize"] == "upstream_failed"
    quarantine = Path(common.QUARANTINE_URI) / "raw" / "dt=2026-01-02"
    assert (quarantine / "validation_result.json").exists() and (
        quarantine / "report.html"
    ).exists()
    assert any((quarantine / "data").rglob("*.parquet"))
    assert (Path(common.RAW_URI) / "dt=2026-01-02" / "activity.parquet").exists()  # kept
    assert not (Path(common.FEATURES_URI) / "dt=2026-01-02").exists()

    third = run_dag(dag, DAY3)
    assert set(task_states(third).values()) == {"success"}

    # the online store serves day 3's values for a customer active on day 3
    from mlops_provider.hooks.feast import FeastHook

    activity = sim.activity(DAY3)
    row = activity.iloc[0]
    online = (
        FeastHook()
        .store.get_online_features(
            features=["customer_activity:monthly_charges", "customer_activity:plan"],
            entity_rows=[{"customer_id": int(row["customer_id"])}],
        )
        .to_dict()
    )
    assert online["monthly_charges"][0] == pytest.approx(float(row["monthly_charges"]))
    assert online["plan"][0] == row["plan"]

    # a rerun of a day replaces its published partition, never duplicates it
    rerun = run_dag(dag, DAY3)
    assert set(task_states(rerun).values()) == {"success"}
    import pyarrow.dataset as ds

    published = ds.dataset(Path(common.FEATURES_URI) / "dt=2026-01-03").count_rows()
    assert published == len(activity)
