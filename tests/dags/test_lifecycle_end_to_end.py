"""The whole lifecycle on a short simulated timeline, through Airflow, as `make demo` runs it.

The ``lifecycle`` fixture (tests/dags/conftest.py) runs the demo runner once per session in a
fresh process (its own AIRFLOW_HOME and data lake); these tests check
what the DAGs wrote: the quarantined incident day, the first champion, drift detected after the
shift, a retrain requested by the monitoring DAG (an Asset event, not the runner), a new
version promoted, and scoring switching to it.
"""

from __future__ import annotations

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
    assert html.count("<img") == 2 and "Per day" in html  # the timeline and the service panel
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
