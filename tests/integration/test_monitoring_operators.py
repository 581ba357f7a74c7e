"""DriftDetectionOperator and ModelPerformanceOperator inside real DAGs, on simulator data.

A module fixture builds a small lake (500 customers) and registers two versions of a churn
model the way the training pipeline does: a fitted scikit-learn pipeline logged to an MLflow
run with the monitoring reference profile (``monitoring/reference_profile.json``) and holdout
metrics with plain names, registered, version 1 promoted to ``@champion``. Predictions
partitions are written like the batch scoring output.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from include.dag_runner import run_dag, task_states, xcom
from include.simulator import (
    CATEGORICAL_FEATURES,
    FEATURE_COLUMNS,
    NUMERIC_FEATURES,
    SCENARIOS,
    ChurnSimulator,
)
from mlops_provider.core import io
from mlops_provider.hooks.mlflow import MlflowHook
from mlops_provider.links.reports import ReportLink
from mlops_provider.operators.monitoring import DriftDetectionOperator, ModelPerformanceOperator

pytestmark = pytest.mark.integration

UTC = timezone.utc
START = date(2026, 1, 1)
SHIFT_START = date(2026, 1, 8)
MODEL = "churn-monitoring"


@dataclass
class Lake:
    home: Path
    root: Path
    sim: ChurnSimulator
    versions: dict[str, str]  # version -> run id
    holdout_metrics: dict[str, dict[str, float]]

    def raw(self, day: date, shifted: bool = False) -> str:
        base = self.root / ("raw_shifted" if shifted else "raw")
        return io.partition_uri(str(base), day)


def _pipeline() -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), NUMERIC_FEATURES),
            ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL_FEATURES),
        ]
    )
    return Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=500))])


def _train_and_register(
    sim: ChurnSimulator, train_days: list[date], holdout_day: date, promote: bool
):
    """Fit, log the model + profile + holdout metrics like the training operator, register."""
    import mlflow
    import mlflow.sklearn
    from sklearn import metrics as skm

    from mlops_provider.core.profile import ReferenceProfile

    train = pd.concat([sim.activity(d) for d in train_days], ignore_index=True)
    y_train = pd.concat([sim.labels(d)["churned"] for d in train_days], ignore_index=True)
    holdout = sim.activity(holdout_day)
    y_hold = sim.labels(holdout_day)["churned"].to_numpy()
    model = _pipeline().fit(train[FEATURE_COLUMNS], y_train)
    prob = model.predict_proba(holdout[FEATURE_COLUMNS])[:, 1]
    pred = (prob >= 0.5).astype(int)
    metrics = {
        "roc_auc": float(skm.roc_auc_score(y_hold, prob)),
        "accuracy": float(skm.accuracy_score(y_hold, pred)),
        "f1": float(skm.f1_score(y_hold, pred, zero_division=0)),
        "log_loss": float(skm.log_loss(y_hold, prob)),
        "precision": float(skm.precision_score(y_hold, pred, zero_division=0)),
        "recall": float(skm.recall_score(y_hold, pred, zero_division=0)),
    }
    profile = ReferenceProfile.from_data(train[FEATURE_COLUMNS])
    hook = MlflowHook()
    client = hook.client
    exp_id = hook.get_or_create_experiment("monitoring-tests-training")
    with hook.activated(), mlflow.start_run(experiment_id=exp_id) as run:
        mlflow.log_metrics(metrics)
        mlflow.log_text(profile.to_json(), "monitoring/reference_profile.json")
        mlflow.sklearn.log_model(
            model, name="model", registered_model_name=MODEL, pip_requirements=["scikit-learn"]
        )
    version = max(client.search_model_versions(f"name = '{MODEL}'"), key=lambda v: int(v.version))
    if promote:
        client.set_registered_model_alias(MODEL, "champion", version.version)
        client.set_model_version_tag(
            MODEL,
            version.version,
            "mlops.promoted_at",
            f"{holdout_day + timedelta(days=1)}T00:00:00+00:00",
        )
    return model, str(version.version), run.info.run_id, metrics


def _write_predictions(
    base: Path, day: date, frame: pd.DataFrame, model: Any, version: str, run_id: str
) -> None:
    prob = model.predict_proba(frame[FEATURE_COLUMNS])[:, 1]
    preds = pd.DataFrame(
        {
            "customer_id": frame["customer_id"].to_numpy(),
            "prediction": (prob >= 0.5).astype("int64"),
            "probability": prob,
            "model_name": MODEL,
            "model_version": version,
            "model_run_id": run_id,
            "scored_at": pd.Timestamp(datetime(day.year, day.month, day.day, 2, tzinfo=UTC)),
        }
    )
    io.write_partition(preds, io.partition_uri(str(base), day))


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory, airflow_db: Path) -> Iterator[Lake]:
    home = tmp_path_factory.mktemp("monitoring") / "mlops"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home))
        root = home / "data" / "lake"
        sim = ChurnSimulator(seed=11, n_customers=500, label_delay_days=7)
        shifted = ChurnSimulator(
            seed=11,
            n_customers=500,
            label_delay_days=7,
            scenarios=SCENARIOS["covariate_shift"](SHIFT_START, strength=1.5),
        )
        sim.write_range(root, START, date(2026, 1, 14))
        for day in (SHIFT_START, SHIFT_START + timedelta(days=1)):
            io.write_partition(
                shifted.activity(day), io.partition_uri(str(root / "raw_shifted"), day)
            )
        model1, v1, run1, m1 = _train_and_register(
            sim, sim.days(START, date(2026, 1, 3)), date(2026, 1, 4), True
        )
        model2, v2, run2, m2 = _train_and_register(
            sim, sim.days(date(2026, 1, 2), date(2026, 1, 4)), date(2026, 1, 5), False
        )
        for day in sim.days(START, date(2026, 1, 9)):
            model, version, run_id = (
                (model1, v1, run1) if day < date(2026, 1, 5) else (model2, v2, run2)
            )
            _write_predictions(root / "predictions", day, sim.activity(day), model, version, run_id)
        _write_predictions(
            root / "predictions_shifted",
            SHIFT_START + timedelta(days=1),
            shifted.activity(SHIFT_START + timedelta(days=1)),
            model1,
            v1,
            run1,
        )
        yield Lake(home, root, sim, {v1: run1, v2: run2}, {v1: m1, v2: m2})


def _dag(dag_id: str) -> Any:
    from airflow.sdk import DAG, CronDataIntervalTimetable

    return DAG(
        dag_id,
        schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        catchup=False,
    )


def _monitoring_runs(experiment: str = "mlops-monitoring", **tags: str) -> list[Any]:
    client = MlflowHook().client
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    query = " and ".join(f"tags.`mlops.{k}` = '{v}'" for k, v in tags.items())
    return list(client.search_runs([exp.experiment_id], filter_string=query))


DAY = "{{ data_interval_start | ds }}"


def test_no_drift_on_the_same_distribution_and_rerun_reuses_the_run(lake: Lake) -> None:
    with _dag("monitoring_drift_same") as dag:
        DriftDetectionOperator(
            task_id="data_drift",
            current_data=str(lake.root / "raw" / f"dt={DAY}"),
            registered_model_name=MODEL,
        )
    day = date(2026, 1, 6)
    run = run_dag(dag, day)
    assert task_states(run) == {"data_drift": "success"}
    out = xcom(run, "data_drift")
    assert out["dataset_drift"] is False
    assert out["drift_share"] < 0.5
    assert out["reference"] == f"models:/{MODEL}/1" and out["reference_model_version"] == "1"
    assert set(out["columns"]) == set(FEATURE_COLUMNS)  # ids, timestamps excluded
    for col in out["columns"].values():
        assert set(col) >= {"method", "score", "threshold", "drifted"}
    assert out["current_rows"] == len(lake.sim.activity(day))

    report_dir = lake.home / "data" / "reports" / "drift" / MODEL / "dt=2026-01-06"
    assert out["report_uri"] == str(report_dir / "report.html")
    html = (report_dir / "report.html").read_text()
    assert "training profile of churn-monitoring v1" in html and "<img" in html
    document = json.loads((report_dir / "drift.json").read_text())
    assert document["dataset_drift"] is False and document["mlflow_run_id"] == out["mlflow_run_id"]
    assert (
        xcom(run, "data_drift", key=ReportLink().xcom_key) == (report_dir / "report.html").as_uri()
    )

    runs = _monitoring_runs(dag_id="monitoring_drift_same", task_id="data_drift")
    assert [r.info.run_id for r in runs] == [out["mlflow_run_id"]]
    logged = runs[0]
    assert logged.data.metrics["dataset_drift"] == 0.0
    assert logged.data.metrics["drift_share"] == pytest.approx(out["drift_share"])
    assert "drift_score.monthly_charges" in logged.data.metrics
    assert logged.data.tags["mlops.reference_model_version"] == "1"
    assert logged.data.tags["mlops.data_interval_start"] == "2026-01-06T00:00:00+00:00"

    # A rerun of the same interval reuses the run and replaces the report.
    mtime = (report_dir / "report.html").stat().st_mtime_ns
    again = xcom(run_dag(dag, day), "data_drift")
    assert again["mlflow_run_id"] == out["mlflow_run_id"]
    assert len(_monitoring_runs(dag_id="monitoring_drift_same", task_id="data_drift")) == 1
    assert (report_dir / "report.html").stat().st_mtime_ns > mtime
    assert sorted(p.name for p in report_dir.iterdir()) == ["drift.json", "report.html"]


def test_covariate_shift_prediction_and_target_drift(lake: Lake) -> None:
    from mlops_provider.operators.retraining import RetrainDecisionOperator

    day = SHIFT_START + timedelta(days=1)
    predictions = lake.root / "predictions"
    with _dag("monitoring_drift_shift") as dag:
        data = DriftDetectionOperator(
            task_id="data_drift",
            current_data=str(lake.root / "raw_shifted" / f"dt={DAY}"),
            registered_model_name=MODEL,
        )
        prediction = DriftDetectionOperator(
            task_id="prediction_drift",
            current_data=str(lake.root / "predictions_shifted" / f"dt={DAY}"),
            # Reference: a window of earlier predictions partitions (the same champion, v1);
            # the window's first day has no partition and is skipped.
            reference_data=[str(predictions / "dt=2025-12-31")]
            + [str(predictions / f"dt=2026-01-0{i}") for i in (1, 2, 3)],
            columns=["probability"],
            registered_model_name=MODEL,
            report_name=f"{MODEL}-predictions",
        )
        DriftDetectionOperator(
            task_id="target_drift",
            current_data=str(lake.root / "labels" / "dt=2026-01-14"),
            reference_data=str(lake.root / "labels" / "dt=2026-01-10"),
            columns=["churned"],
            report_name=f"{MODEL}-labels",
            monitoring_experiment=None,
        )
        RetrainDecisionOperator(
            task_id="decide",
            registered_model_name=MODEL,
            drift=[data.output, prediction.output],
            retrain_asset="mlops://retrain-request/monitoring-tests",
        )
    run = run_dag(dag, day)
    states = task_states(run)
    assert states["data_drift"] == states["prediction_drift"] == states["target_drift"] == "success"
    data_out = xcom(run, "data_drift")
    assert data_out["dataset_drift"] is True
    assert {"tenure_months", "sessions_last_7d", "plan"} <= set(data_out["drifted_columns"])

    pred_out = xcom(run, "prediction_drift")
    assert list(pred_out["columns"]) == ["probability"]
    assert pred_out["columns"]["probability"]["drifted"] is True
    assert pred_out["reference"] == ",".join(
        str(predictions / f"dt=2026-01-0{i}") for i in (1, 2, 3)
    )
    assert Path(pred_out["report_uri"]).parent.parent.name == f"{MODEL}-predictions"

    target_out = xcom(run, "target_drift")
    assert list(target_out["columns"]) == ["churned"]
    assert target_out["columns"]["churned"]["method"] in ("z", "chisquare")
    assert target_out["mlflow_run_id"] is None  # logging disabled for this task

    decision = xcom(run, "decide")
    assert states["decide"] == "success" and decision["retrain"] is True
    assert len(decision["evaluations"]["drift"]["details"]["results"]) == 2


def test_drift_input_problems(lake: Lake, tmp_path: Path) -> None:
    """Nulls, new categories and constant columns are compared; bad inputs fail clearly."""
    from mlops_provider.core.monitoring import MonitoringError, run_drift_check

    day = date(2026, 1, 6)
    reference = lake.sim.activity(date(2026, 1, 5)).assign(constant=1.0)
    current = lake.sim.activity(day).assign(constant=1.0)
    current.loc[current.index[::2], "monthly_charges"] = np.nan
    current.loc[current.index[:20], "plan"] = "enterprise"
    io.write_table(reference, str(tmp_path / "ref.parquet"))
    io.write_table(current, str(tmp_path / "cur.parquet"))
    out = run_drift_check(
        str(tmp_path / "cur.parquet"),
        reference_data=str(tmp_path / "ref.parquet"),
        report_uri=str(tmp_path / "report"),
    )
    cols = out["columns"]
    assert "null share" in cols["monthly_charges"]["reasons"]
    assert cols["plan"]["new_categories"] == ["enterprise"]
    assert cols["constant"]["drifted"] is False
    assert "customer_id" not in cols and "event_timestamp" not in cols
    assert (tmp_path / "report" / "report.html").exists()

    empty = current.iloc[:0]
    io.write_table(empty, str(tmp_path / "empty.parquet"))
    with pytest.raises(MonitoringError, match="has no rows: nothing to compare"):
        run_drift_check(
            str(tmp_path / "empty.parquet"), reference_data=str(tmp_path / "ref.parquet")
        )
    renamed = current.rename(columns={"monthly_charges": "monthly_charge"})
    io.write_table(renamed, str(tmp_path / "renamed.parquet"))
    with pytest.raises(MonitoringError, match=r"\['monthly_charges'\] of the reference profile"):
        run_drift_check(
            str(tmp_path / "renamed.parquet"),
            client=MlflowHook().client,
            registered_model_name=MODEL,
        )
    io.write_table(current.drop(columns=["constant"]), str(tmp_path / "dropped.parquet"))
    with pytest.raises(MonitoringError, match=r"\['constant'\] are not in the current data"):
        run_drift_check(
            str(tmp_path / "dropped.parquet"),
            reference_data=str(tmp_path / "ref.parquet"),
            columns=["constant"],
        )
    with pytest.raises(
        MonitoringError, match=r"\['nope'\] are not in the reference \(reference ref\)"
    ):
        run_drift_check(
            str(tmp_path / "cur.parquet"),
            reference_data=str(tmp_path / "ref.parquet"),
            columns=["nope"],
        )


def test_empty_or_missing_current_data_fails_the_task(
    lake: Lake, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = lake.root / "empty"
    io.write_partition(
        lake.sim.activity(START).iloc[:0], io.partition_uri(str(empty), date(2026, 1, 6))
    )
    with _dag("monitoring_drift_empty") as dag:
        DriftDetectionOperator(
            task_id="empty_partition",
            current_data=str(empty / f"dt={DAY}"),
            registered_model_name=MODEL,
            report_name="empty",
        )
        DriftDetectionOperator(
            task_id="missing_partition",
            current_data=str(lake.root / "raw" / "dt=2030-01-01"),
            registered_model_name=MODEL,
            report_name="missing",
        )
        DriftDetectionOperator(
            task_id="unknown_alias",
            current_data=str(lake.root / "raw" / f"dt={DAY}"),
            registered_model_name=MODEL,
            alias="no-such-alias",
            report_name="alias",
        )
    run = run_dag(dag, date(2026, 1, 6))
    assert set(task_states(run).values()) == {"failed"}
    logged = capsys.readouterr().out
    for message in (
        "dt=2026-01-06 has no rows: nothing to compare (an empty partition?)",
        "raw/dt=2030-01-01: does not exist",
        f"registered model '{MODEL}' has no alias @no-such-alias",
    ):
        assert "DriftDetectionError: drift detection failed: current data" in logged
        assert message in logged
    reports = lake.home / "data" / "reports" / "drift"
    for name in ("empty", "missing", "alias"):
        assert not (reports / name).exists()  # failed before writing anything


def test_model_performance_on_late_labels(lake: Lake) -> None:
    run_day = date(2026, 1, 12)  # matured: Jan 5 (1 day) or Jan 3..5 (3 days)
    common = {
        "predictions_data": str(lake.root / "predictions"),
        "labels_data": str(lake.root / "labels"),
        "label_delay": 7,
    }
    with _dag("monitoring_performance") as dag:
        ModelPerformanceOperator(
            task_id="window",
            evaluation_window=3,
            min_labels=100,
            registered_model_name=MODEL,
            **common,
        )
        # Default min_labels=200; a second task for the same model needs its own report name.
        ModelPerformanceOperator(task_id="one_day", report_name="one-day", **common)
        ModelPerformanceOperator(
            task_id="champion_baseline",
            evaluation_window=3,
            min_labels=50,
            baseline="champion",
            registered_model_name=MODEL,
            report_name="champion-baseline",
            **common,
        )
        ModelPerformanceOperator(
            task_id="fixed_baseline",
            min_labels=50,
            baseline={"roc_auc": 0.99},
            report_name="fixed",
            **common,
        )
    run = run_dag(dag, run_day)
    assert set(task_states(run).values()) == {"success"}

    out = xcom(run, "window")
    assert out["evaluated_days"] == ["2026-01-03", "2026-01-04", "2026-01-05"]
    assert out["model_versions"] == ["1", "2"] and out["model_version"] == "2"
    labels = {d: len(lake.sim.labels(d)) for d in lake.sim.days(date(2026, 1, 3), date(2026, 1, 5))}
    assert out["labelled_rows_total"] == sum(labels.values())
    assert out["labelled_rows"] == labels[date(2026, 1, 5)]
    for version, perf in out["by_version"].items():
        # Each version is compared with the holdout metrics of its own training run.
        assert perf["baseline"]["roc_auc"] == pytest.approx(
            lake.holdout_metrics[version]["roc_auc"]
        )
        assert perf["run_id"] == lake.versions[version]
    assert out["status"] in ("ok", "degraded")
    assert set(out["degradation"]["roc_auc"]) == {"abs", "rel"}
    assert out["degradation"]["roc_auc"]["abs"] == pytest.approx(
        out["baseline"]["roc_auc"] - out["metrics"]["roc_auc"], abs=1e-5
    )
    html = Path(out["report_uri"]).read_text()
    assert "<img" in html and "per day" in html
    assert Path(out["report_uri"]).parent == (
        lake.home / "data" / "reports" / "performance" / MODEL / "dt=2026-01-12"
    )

    one = xcom(run, "one_day")
    assert one["evaluated_days"] == ["2026-01-05"]
    assert one["status"] == "insufficient_data" and one["labelled_rows"] < 200
    assert any("min_labels 200" in r for r in one["reasons"])

    champion = xcom(run, "champion_baseline")
    for perf in champion["by_version"].values():  # every version against the champion (v1)
        assert perf["baseline"]["roc_auc"] == pytest.approx(lake.holdout_metrics["1"]["roc_auc"])

    fixed = xcom(run, "fixed_baseline")
    assert fixed["status"] == "degraded" and fixed["baseline"] == {"roc_auc": 0.99}

    runs = _monitoring_runs(dag_id="monitoring_performance", task_id="window")
    assert [r.info.run_id for r in runs] == [out["mlflow_run_id"]]
    assert runs[0].data.metrics["labelled_rows"] == out["labelled_rows"]
    assert runs[0].data.tags["mlops.performance_status"] == out["status"]
    rerun = xcom(run_dag(dag, run_day), "window")
    assert rerun["mlflow_run_id"] == out["mlflow_run_id"]
    assert len(_monitoring_runs(dag_id="monitoring_performance", task_id="window")) == 1
