"""TrainingServingSkewOperator inside a real DAG against a real Feast repo (file offline store,
SQLite online store) and the embedded MLflow store.

The module fixture publishes three days of simulator activity as feature partitions, applies
the repo and materializes it, then writes online prediction logs in the serving contract's
layout (``<log>/dt=YYYY-MM-DD/part-<HHMMSS>-<uuid8>.parquet``) for requests on the next day:
the features of each request are read from the Feast online store (what the serving app
does), so the clean log has no skew; the skewed log has ``monthly_charges`` scaled by 1.1 in
20% of the rows, ``plan`` replaced in 10%, and three requests of customers the offline store
does not know (offline missing). The rows name the training run of their model, whose
``mlops.feature_refs`` tag lists the features.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from include.dag_runner import run_dag, task_states, xcom
from include.simulator import ENTITY_COLUMN, FEATURE_COLUMNS, ChurnSimulator
from mlops_provider.core import io
from mlops_provider.core.monitoring import MonitoringError, check_skew
from mlops_provider.core.results import check_result
from mlops_provider.hooks.feast import FeastHook
from mlops_provider.hooks.mlflow import MlflowHook
from mlops_provider.links.reports import ReportLink
from mlops_provider.operators.monitoring import TrainingServingSkewOperator

pytestmark = pytest.mark.integration

UTC = timezone.utc
VIEW = "customer_activity"
REFS = [f"{VIEW}:{c}" for c in FEATURE_COLUMNS]
DAYS = [date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)]
SERVED = date(2026, 1, 4)  # requests of this day see the features materialized until its start
MODEL = "churn-skew"
ROWS = 200
SCALED, REPLACED, UNKNOWN = 40, 20, 3  # 20% of monthly_charges, 10% of plan, offline missing


@dataclass
class Logs:
    home: Path
    clean: str
    skewed: str
    no_plan: str
    run_id: str


def _utc(day: date, hour: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def _training_run() -> str:
    """A training run recording the feature references, as TrainModelOperator's does."""
    client = MlflowHook().client
    experiment = client.create_experiment(f"skew-training-{uuid.uuid4().hex[:6]}")
    run = client.create_run(experiment, tags={"mlops.feature_refs": json.dumps(REFS)})
    client.set_terminated(run.info.run_id)
    return str(run.info.run_id)


def _online_features(ids: list[int]) -> pd.DataFrame:
    values = FeastHook().store.get_online_features(
        features=REFS, entity_rows=[{ENTITY_COLUMN: i} for i in ids]
    )
    return pd.DataFrame(values.to_dict())[[ENTITY_COLUMN, *FEATURE_COLUMNS]]


def _write_log(base: str, frame: pd.DataFrame, run_id: str) -> None:
    """Two part files of one day, in the serving contract's columns and layout."""
    n = len(frame)
    scored_at = [_utc(SERVED, 1) + timedelta(seconds=i) for i in range(n)]
    log = frame.assign(
        prediction=0,
        probability=0.5,
        model_name=MODEL,
        model_version="3",
        model_run_id=run_id,
        scored_at=pd.Series(scored_at, dtype="datetime64[us, UTC]"),
        event_timestamp=pd.Series(scored_at, dtype="datetime64[us, UTC]"),
        variant=["canary" if i % 10 == 0 else "primary" for i in range(n)],
        request_id=[f"req-{i:04d}" for i in range(n)],
    )
    partition = io.partition_uri(base, SERVED)
    half = n // 2
    for part, rows in (("010000", log.iloc[:half]), ("010100", log.iloc[half:])):
        name = f"part-{part}-{uuid.uuid4().hex[:8]}.parquet"
        io.write_table(rows.reset_index(drop=True), io.join_uri(partition, name))


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory, airflow_db: Path) -> Iterator[Logs]:
    from mlops_provider.core import features as feat

    home = tmp_path_factory.mktemp("skew") / "mlops"
    sim = ChurnSimulator(seed=5, n_customers=400, daily_active_fraction=0.5)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home))
        root = home / "data"
        for day in DAYS:
            raw = sim.write_day(tmp_path_factory.mktemp("raw"), day)["raw"]
            feat.publish_partition(
                str(Path(raw).parent),
                str(root / "features" / VIEW),
                day,
                entity_columns=[ENTITY_COLUMN],
            )
        store = FeastHook().store
        feat.apply_repo(store)
        store.materialize(_utc(DAYS[0]), _utc(SERVED))
        run_id = _training_run()

        seen = pd.concat([sim.activity(d) for d in DAYS])[ENTITY_COLUMN].unique()
        ids = sorted(int(i) for i in seen)[:ROWS]
        served = _online_features(ids)
        assert len(served) == ROWS and not served[FEATURE_COLUMNS].isna().any().any()
        clean = str(root / "predictions-online" / MODEL)
        _write_log(clean, served, run_id)

        skewed = served.copy()
        skewed.loc[: SCALED - 1, "monthly_charges"] *= 1.1
        skewed.loc[ROWS - REPLACED :, "plan"] = "platinum"
        strangers = served.iloc[:UNKNOWN].assign(**{ENTITY_COLUMN: [990_001, 990_002, 990_003]})
        skewed = pd.concat([skewed, strangers], ignore_index=True)
        assert (served["monthly_charges"] > 0).all()  # so scaling always changes the value
        skewed_uri = str(root / "predictions-online" / f"{MODEL}-skewed")
        _write_log(skewed_uri, skewed, run_id)

        no_plan = str(root / "predictions-online" / f"{MODEL}-no-plan")
        _write_log(no_plan, served.drop(columns=["plan", "device"]), run_id)
        yield Logs(home, clean, skewed_uri, no_plan, run_id)


def _dag(dag_id: str) -> Any:
    from airflow.sdk import DAG, CronDataIntervalTimetable

    return DAG(
        f"{dag_id}_{uuid.uuid4().hex[:6]}",
        schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
        start_date=_utc(DAYS[0]),
        catchup=False,
    )


def test_skew_operator_reports_exactly_the_injected_skew(logs: Logs) -> None:
    reports = logs.home / "reports-skew"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(logs.home))
        with _dag("skew_check") as dag:
            TrainingServingSkewOperator(
                task_id="clean", predictions_data=logs.clean, report_uri=str(reports / "clean")
            )
            TrainingServingSkewOperator(
                task_id="skewed",
                predictions_data=logs.skewed,
                on_skew="warn",
                report_uri=str(reports / "skewed"),
            )
            TrainingServingSkewOperator(
                task_id="skewed_sampled_fails",
                predictions_data=logs.skewed,
                feature_service="churn_model",
                max_rows=150,
                report_uri=str(reports / "sampled"),
            )
        run = run_dag(dag, SERVED)

    assert task_states(run) == {
        "clean": "success",
        "skewed": "success",
        "skewed_sampled_fails": "failed",
    }

    clean = xcom(run, "clean")
    assert check_result(clean) == []
    assert clean["status"] == "ok" and clean["passed"] is True
    assert clean["rows"] == clean["rows_logged"] == ROWS and clean["sampled"] is False
    assert clean["days"] == ["2026-01-04"] and clean["missing_days"] == []
    assert clean["feature_refs"] == REFS and logs.run_id in clean["feature_source"]
    assert clean["timestamp_column"] == "event_timestamp"
    assert clean["variants"] == {"canary": 20, "primary": 180}
    assert clean["model"] == {
        "name": MODEL,
        "version": "3",
        "run_id": logs.run_id,
        "uri": f"models:/{MODEL}/3",
    }
    assert set(clean["features"]) == set(FEATURE_COLUMNS)
    for name, info in clean["features"].items():
        assert (info["compared"], info["mismatches"], info["offline_missing"]) == (ROWS, 0, 0), name
    assert clean["worst_mismatch_rate"] == 0.0 and clean["skewed_features"] == []

    skewed = xcom(run, "skewed")
    assert check_result(skewed) == []
    assert skewed["status"] == "skew" and skewed["passed"] is False
    assert skewed["skewed_features"] == ["monthly_charges", "plan"]
    rates = {name: info["mismatch_rate"] for name, info in skewed["features"].items()}
    assert rates == {
        **dict.fromkeys(FEATURE_COLUMNS, 0.0),
        "monthly_charges": SCALED / ROWS,
        "plan": REPLACED / ROWS,
    }
    for info in skewed["features"].values():  # the unknown customers are not compared
        assert info["rows"] == ROWS + UNKNOWN and info["compared"] == ROWS
        assert info["offline_missing"] == UNKNOWN
    charges = skewed["features"]["monthly_charges"]
    assert charges["kind"] == "numeric" and charges["mismatches"] == SCALED
    example = charges["examples"][0]
    assert example["online"] == pytest.approx(example["offline"] * 1.1)
    assert isinstance(example[ENTITY_COLUMN], int) and "event_timestamp" in example
    assert example["request_id"] == "req-0000"
    plan = skewed["features"]["plan"]
    assert plan["kind"] == "exact" and {e["online"] for e in plan["examples"]} == {"platinum"}
    assert skewed["reasons"][0].startswith(f"skew: 2 of {len(FEATURE_COLUMNS)} feature(s)")
    assert "rows without an offline value" in skewed["reasons"][1]

    html = (reports / "skewed" / "report.html").read_text()
    assert "<img" in html and "Mismatch rate per feature" in html and "platinum" in html
    document = json.loads((reports / "skewed" / "skew.json").read_text())
    assert document["status"] == "skew" and document["mlflow_run_id"] == skewed["mlflow_run_id"]
    assert xcom(run, "skewed", key="skewed_features") == ["monthly_charges", "plan"]
    assert xcom(run, "skewed", key=ReportLink().xcom_key)

    logged = MlflowHook().client.get_run(skewed["mlflow_run_id"]).data
    assert logged.tags["mlops.monitoring_kind"] == "skew"
    assert logged.tags["mlops.skew_status"] == "skew"
    assert logged.metrics["mismatch_rate.monthly_charges"] == pytest.approx(0.2)
    assert logged.metrics["offline_missing_rate.plan"] == pytest.approx(
        UNKNOWN / (ROWS + UNKNOWN), abs=1e-6
    )

    # on_skew="fail": the result is pushed and the report written before the task fails
    sampled = xcom(run, "skewed_sampled_fails")
    assert sampled["status"] == "skew" and sampled["rows"] == 150
    assert sampled["rows_logged"] == ROWS + UNKNOWN and sampled["sampled"] is True
    assert sampled["feature_source"] == "feature service churn_model"
    assert (reports / "sampled" / "report.html").is_file()
    assert 0 < sampled["features"]["monthly_charges"]["mismatch_rate"] < 0.5
    assert sampled["features"]["tenure_months"]["mismatch_rate"] == 0.0


def test_errors_name_the_problem(logs: Logs, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_HOME", str(logs.home))
    store, client = FeastHook().store, MlflowHook().client
    with pytest.raises(MonitoringError, match=r"lacks feature column\(s\) \['plan', 'device'\]"):
        check_skew(logs.no_plan, [SERVED], store=store, client=client, experiment_name=None)
    with pytest.raises(MonitoringError, match=r"has no rows for 2026-01-05.*nothing to check"):
        check_skew(logs.clean, [date(2026, 1, 5)], store=store, client=client)
    bare = MlflowHook().client.create_run(
        MlflowHook().client.create_experiment(f"skew-bare-{uuid.uuid4().hex[:6]}")
    )
    frame = io.read_pandas(io.partition_uri(logs.clean, SERVED)).drop(
        columns=["dt"], errors="ignore"
    )
    frame["model_run_id"] = bare.info.run_id
    other = str(logs.home / "data" / "predictions-online" / "untagged")
    io.write_table(frame, io.join_uri(io.partition_uri(other, SERVED), "part-000000-a.parquet"))
    with pytest.raises(MonitoringError, match="recorded no feature references"):
        check_skew(other, [SERVED], store=store, client=client, experiment_name=None)
    # an explicit feature list needs no training run
    out = check_skew(
        other,
        [SERVED],
        store=store,
        features=[f"{VIEW}:tenure_months", f"{VIEW}:plan"],
        experiment_name=None,
        report_uri=str(logs.home / "reports-untagged"),
    )
    assert out["status"] == "ok" and set(out["features"]) == {"tenure_months", "plan"}
    assert np.isclose(out["worst_mismatch_rate"], 0.0)
