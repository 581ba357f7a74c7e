"""The whole lifecycle on a short simulated timeline, through Airflow, as `make demo` runs it.

The ``lifecycle`` fixture (tests/dags/conftest.py) runs the demo runner once per session in a
fresh process (its own AIRFLOW_HOME and data lake); these tests check
what the DAGs wrote: the quarantined incident day, the first champion, drift detected after the
shift, a retrain requested by the monitoring DAG (an Asset event, not the runner), a new
version promoted, and scoring switching to it.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

pytestmark = [pytest.mark.dags, pytest.mark.integration, pytest.mark.slow]


def test_incident_day_is_quarantined_and_other_days_flow(lifecycle: dict) -> None:
    records = {r["day"]: r for r in lifecycle["records"]}
    assert records["2026-01-03"]["validation"] == "quarantined"
    assert all(r["validation"] == "passed" for d, r in records.items() if d != "2026-01-03")
    quarantine = lifecycle["lake"] / "quarantine" / "raw" / "dt=2026-01-03"
    assert (quarantine / "validation_result.json").exists()
    assert (lifecycle["lake"] / "raw" / "dt=2026-01-03").exists()  # nothing lost
    assert not (lifecycle["lake"] / "features" / "customer_activity" / "dt=2026-01-03").exists()


def test_first_champion_then_drift_retrain_and_promotion(lifecycle: dict) -> None:
    records = lifecycle["records"]
    shift = "2026-01-09"
    assert records[4]["training"].endswith("v1 promoted")
    before = [r for r in records if r["day"] < shift and r["drift_share"] is not None]
    after = [r for r in records if r["day"] >= shift and r["drift_share"] is not None]
    assert before and after
    assert max(r["drift_share"] for r in before) < 0.5
    assert after[0]["dataset_drift"] and after[1]["dataset_drift"]  # seen the day it starts
    requested = [r for r in records if r["retrain_decision"] and r["day"] >= shift]
    assert requested, "monitoring never asked for a retrain after the shift"
    # every retrain came from a monitoring decision that day, never from the runner alone
    trained = [r for r in records if r["training"] and "monitoring" in r["training"]]
    assert trained and all(r["retrain_decision"] for r in trained)
    promoted_after_shift = [r for r in trained if r["day"] >= shift and "promoted" in r["training"]]
    assert promoted_after_shift, [r["training"] for r in trained]
    assert records[-1]["champion_version"] not in (None, "1")


def test_scoring_switches_to_the_new_champion(lifecycle: dict) -> None:
    import pyarrow.dataset as ds

    records = lifecycle["records"]
    used = [r["scored_with"] for r in records if r["scored_with"]]
    assert used[0] == "1" and used[-1] == records[-1]["champion_version"]
    predictions = ds.dataset(
        lifecycle["lake"] / "predictions" / "churn", partitioning="hive"
    ).to_table(columns=["dt", "model_version", "customer_id"])
    per_day = predictions.group_by("dt").aggregate([("model_version", "count_distinct")])
    assert max(per_day.column("model_version_count_distinct").to_pylist()) == 1
    for record in records:
        if record["scored_rows"]:
            day = predictions.filter(ds.field("dt") == record["day"])
            assert day.num_rows == record["scored_rows"]


def test_lifecycle_report_written(lifecycle: dict) -> None:
    html = (lifecycle["lake"] / "reports" / "lifecycle.html").read_text()
    records = lifecycle["records"]
    assert html.count("<img") == 2 and "Per day" in html  # the timeline and the service panel
    # the lineage of every version that was champion, in the order it became champion
    champions = list(dict.fromkeys(r["champion_version"] for r in records if r["champion_version"]))
    assert "Lineage of each champion" in html
    positions = [html.index(f"churn v{v}: @champion from") for v in champions]
    assert positions == sorted(positions), champions
    assert "Realtime service per day" in html
    assert "Per-day summary" in lifecycle["stdout"]


def test_the_service_follows_the_champion_without_failing_a_request(lifecycle: dict) -> None:
    import pyarrow.dataset as ds

    records = lifecycle["records"]
    served = [r for r in records if r["service_requests"]]
    # from the first champion's day on, every scored day had traffic, none of it failed
    assert served and served[0]["day"] == records[4]["day"]
    assert all(r["service_requests"] for r in records if r["scored_rows"])
    assert sum(r["service_errors"] for r in served) == 0
    assert served[-1]["served_versions"].split("->")[-1] == records[-1]["champion_version"]
    deployed = [
        r["deployment"] for r in records if r["deployment"] and "deployed" in r["deployment"]
    ]
    assert deployed, [r["deployment"] for r in records]
    assert all("; 0 of " in d for d in deployed), (
        deployed
    )  # "v2 deployed; 0 of 812 requests failed"
    # the traffic is logged under its simulated day, and the skew check read it
    log = ds.dataset(lifecycle["lake"] / "predictions-online" / "churn", partitioning="hive")
    days = set(log.to_table(columns=["dt"]).column("dt").to_pylist())
    assert days == {r["day"] for r in served}
    assert {r["skew"] for r in records if r["scored_rows"]} == {"ok"}


def _auc_of_first_champion(home: Path, rows: pd.DataFrame) -> float:
    """The first champion, loaded from the demo's own MLflow store, on ``rows``."""
    import mlflow
    from sklearn.metrics import roc_auc_score

    from mlops_provider.core.mlflow_target import MlflowTarget, activated

    store = MlflowTarget(tracking_uri=f"sqlite:///{home / 'mlops' / 'mlflow' / 'mlflow.db'}")
    with activated(store):  # restores MLflow's globals and MLFLOW_TRACKING_URI afterwards
        model = mlflow.sklearn.load_model("models:/churn/1")
    names = [str(n) for n in model.feature_names_in_]
    return float(roc_auc_score(rows["churned"], model.predict_proba(rows[names])[:, 1]))


def test_retraining_gain_is_measured_on_the_same_rows(lifecycle: dict) -> None:
    """Once a retrained champion's predictions matured, monitoring scored the very same rows
    with the first champion: the digests and row counts agree, and recomputing both AUCs from
    the lake (predictions, labels, the features that were scored) gives the reported numbers."""
    from sklearn.metrics import roc_auc_score

    from mlops_provider.core.monitoring.counterfactual import rows_digest

    lake = lifecycle["lake"]
    measured = [
        r
        for r in lifecycle["records"]
        if r["first_champion_roc_auc"] is not None and r["matured_version"] not in (None, "1")
    ]
    assert measured, "no retrained champion's predictions matured in the timeline"
    # the champion promoted after the shift is among them
    shift = "2026-01-09"
    assert any(r["compared_days"][0] >= shift for r in measured)
    for record in measured:
        report = json.loads(
            (
                lake / "reports" / "performance" / f"dt={record['day']}" / "performance.json"
            ).read_text()
        )
        comparison = report["comparison"]
        first = next(c for c in report["counterfactuals"] if c["role"] == "first_champion")
        assert first["version"] == "1" and comparison["model_version"] == record["matured_version"]
        assert first["rows"] == comparison["rows"] == report["rows"] == record["compared_rows"]
        assert first["rows_digest"] == comparison["rows_digest"] == record["rows_digest"]
        [day] = comparison["days"]
        preds = pd.read_parquet(lake / "predictions" / "churn" / f"dt={day}")
        features = pd.read_parquet(lake / "features" / "customer_activity" / f"dt={day}")
        labels = pd.concat(
            pd.read_parquet(p)
            for p in sorted((lake / "labels").glob("dt=*"))
            if p.name <= f"dt={record['day']}"
        )
        labels = labels[
            pd.to_datetime(labels["event_timestamp"], utc=True).dt.date.astype(str) == day
        ]
        rows = preds[["customer_id", "probability", "model_version"]].merge(
            labels[["customer_id", "churned"]], on="customer_id"
        )
        rows = rows.merge(features, on="customer_id")
        assert set(rows["model_version"]) == {record["matured_version"]}
        assert (
            rows_digest(rows.assign(_day=date.fromisoformat(day)), ["customer_id"])
            == (comparison["rows_digest"])
        )
        served = roc_auc_score(rows["churned"], rows["probability"])
        never = _auc_of_first_champion(lifecycle["home"], rows)
        assert comparison["metrics"]["roc_auc"] == pytest.approx(served, abs=1e-6)
        assert first["metrics"]["roc_auc"] == pytest.approx(never, abs=1e-6)
        assert report["gain"]["first_champion"]["roc_auc"] == pytest.approx(
            served - never, abs=1e-5
        )
        assert record["roc_auc"] == pytest.approx(served, abs=1e-6)
        assert record["first_champion_roc_auc"] == pytest.approx(never, abs=1e-6)
    # the demo's closing facts state it (after them come only the governance commands)
    closing = lifecycle["stdout"].split("Lifecycle report:")[-1].splitlines()
    assert any("retraining bought +" in line for line in closing), closing


def test_the_demo_ends_with_the_governance_commands(lifecycle: dict) -> None:
    closing = lifecycle["stdout"].split("Where a prediction came from")[-1].splitlines()
    trace = next(line for line in closing if " -m mlops_provider trace " in line)
    assert f"AIRFLOW_HOME={lifecycle['home']}" in trace and "--row customer_id=" in trace
    assert any(
        line.rstrip().endswith("mlops_provider reproduce churn@champion") for line in closing
    )
