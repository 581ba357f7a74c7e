"""DriftDetectionOperator and ModelPerformanceOperator inside real DAGs, on simulator data.

A module fixture builds a small lake (500 customers) and trains the models with the provider's
own training (:func:`mlops_provider.core.training.train_and_log`), so monitoring reads what
training really writes (the reference profile artifact, the ``mlops.target`` tag, the holdout
metrics): version 1 of a churn model (promoted to ``@champion``), version 2, and a model whose
labels are strings (``"yes"``/``"no"``). Predictions partitions are written like the batch
scoring output, with the models loaded back from MLflow.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from include.dag_runner import run_dag, task_states, xcom
from include.simulator import FEATURE_COLUMNS, SCENARIOS, ChurnSimulator
from mlops_provider.core import io
from mlops_provider.core.results import check_result
from mlops_provider.exceptions import MlopsProviderDeprecationWarning
from mlops_provider.hooks.mlflow import MlflowHook
from mlops_provider.links.reports import ReportLink
from mlops_provider.operators.monitoring import (
    DriftDetectionOperator,
    ModelPerformanceError,
    ModelPerformanceOperator,
)

pytestmark = pytest.mark.integration

UTC = timezone.utc
START = date(2026, 1, 1)
SHIFT_START = date(2026, 1, 8)
MODEL = "churn-monitoring"
TEXT_MODEL = "churn-monitoring-text"
ENTITY = ["customer_id"]


@dataclass
class Trained:
    """A model trained by ``train_and_log`` and registered."""

    version: str
    run_id: str
    model_uri: str  # models:/m-<id>, as TrainModelOperator returns it
    metrics: dict[str, float]
    model: Any


@dataclass
class Lake:
    home: Path
    root: Path
    sim: ChurnSimulator
    models: dict[str, Trained]  # version of MODEL -> model
    text: Trained  # the model of TEXT_MODEL (string labels)

    @property
    def versions(self) -> dict[str, str]:
        return {v: m.run_id for v, m in self.models.items()}


def _labelled(sim: ChurnSimulator, days: list[date], label: str, classes: Any) -> pd.DataFrame:
    frames = []
    for day in days:
        churned = sim.labels(day)["churned"].to_numpy()
        values = pd.Series(churned).map(classes).to_numpy() if classes else churned
        frames.append(sim.activity(day).assign(**{label: values}))
    return pd.concat(frames, ignore_index=True)


def _train(
    root: Path,
    sim: ChurnSimulator,
    train_days: list[date],
    holdout_day: date,
    *,
    name: str,
    label: str = "churned",
    classes: dict[int, str] | None = None,
) -> Trained:
    """Train with the provider's training (holdout = ``holdout_day``) and register."""
    import mlflow

    from mlops_provider.core import models
    from mlops_provider.core.training import TrainingConfig, train_and_log

    tag = f"{name}-{train_days[0]}"
    train_uri = str(root / "training" / f"{tag}.parquet")
    holdout_uri = str(root / "training" / f"{tag}-holdout.parquet")
    io.write_table(_labelled(sim, train_days, label, classes), train_uri)
    io.write_table(_labelled(sim, [holdout_day], label, classes), holdout_uri)
    hook = MlflowHook()
    result = train_and_log(
        hook.target,
        train_uri,
        TrainingConfig(
            target=label,
            estimator="sklearn.linear_model.LogisticRegression",
            estimator_params={"max_iter": 500},
            feature_columns=FEATURE_COLUMNS,
        ),
        experiment_name="monitoring-tests-training",
        validation_data=holdout_uri,
        pip_requirements=["scikit-learn"],
    )
    with hook.activated(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        version = mlflow.register_model(result.model_uri, name).version
        model = models.load(result.model_uri)
    metrics = {k: float(v) for k, v in result.metrics.items() if v is not None}
    return Trained(str(version), result.run_id, result.model_uri, metrics, model)


def _promote(name: str, trained: Trained, promoted_at: date) -> None:
    client = MlflowHook().client
    client.set_registered_model_alias(name, "champion", trained.version)
    client.set_model_version_tag(
        name, trained.version, "mlops.promoted_at", f"{promoted_at}T00:00:00+00:00"
    )


def _write_predictions(
    base: Path, day: date, frame: pd.DataFrame, trained: Trained, name: str = MODEL
) -> None:
    features = frame[FEATURE_COLUMNS]
    preds = pd.DataFrame(
        {
            "customer_id": frame["customer_id"].to_numpy(),
            "prediction": trained.model.predict(features),
            "probability": trained.model.predict_proba(features)[:, 1],
            "model_name": name,
            "model_version": trained.version,
            "model_run_id": trained.run_id,
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
        one = _train(root, sim, sim.days(START, date(2026, 1, 3)), date(2026, 1, 4), name=MODEL)
        _promote(MODEL, one, date(2026, 1, 5))
        two = _train(
            root, sim, sim.days(date(2026, 1, 2), date(2026, 1, 4)), date(2026, 1, 5), name=MODEL
        )
        text = _train(
            root,
            sim,
            sim.days(date(2026, 1, 2), date(2026, 1, 4)),
            date(2026, 1, 5),
            name=TEXT_MODEL,
            label="churn_label",
            classes={0: "no", 1: "yes"},
        )
        for day in sim.days(START, date(2026, 1, 9)):
            trained = one if day < date(2026, 1, 5) else two
            _write_predictions(root / "predictions", day, sim.activity(day), trained)
            _write_predictions(
                root / "predictions_text", day, sim.activity(day), text, name=TEXT_MODEL
            )
        _write_predictions(
            root / "predictions_shifted",
            SHIFT_START + timedelta(days=1),
            shifted.activity(SHIFT_START + timedelta(days=1)),
            one,
        )
        for day in sim.days(START, date(2026, 1, 14)):  # the string labels of TEXT_MODEL
            labels = sim.labels_available_on(day)
            labels["churn_label"] = labels.pop("churned").map({0: "no", 1: "yes"}).astype(object)
            io.write_partition(labels, io.partition_uri(str(root / "labels_text"), day))
        yield Lake(home, root, sim, {one.version: one, two.version: two}, text)


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
    assert check_result(out) == []
    assert out["status"] == "no_drift" and out["passed"] is True
    assert out["dataset_drift"] is False
    assert out["drift_share"] < 0.5
    assert out["reference"] == f"models:/{MODEL}/1" and out["reference_model_version"] == "1"
    assert out["model"] == {
        "name": MODEL,
        "version": "1",
        "run_id": lake.versions["1"],
        "uri": f"models:/{MODEL}/1",
        "alias": "champion",
    }
    assert out["reasons"][0].startswith("no dataset drift: ")
    assert set(out["columns"]) == set(FEATURE_COLUMNS)  # ids, timestamps excluded
    for col in out["columns"].values():
        assert set(col) >= {"method", "score", "threshold", "drifted"}
    assert out["current_rows"] == out["rows"] == len(lake.sim.activity(day))

    report_dir = lake.home / "data" / "reports" / "drift" / MODEL / "dt=2026-01-06"
    assert out["report_uri"] == str(report_dir / "report.html")
    html = (report_dir / "report.html").read_text()
    assert f"training profile of model {MODEL} version 1" in html and "<img" in html
    document = json.loads((report_dir / "drift.json").read_text())
    assert document["dataset_drift"] is False and document["mlflow_run_id"] == out["mlflow_run_id"]
    assert document["status"] == "no_drift" and document["result"]["n_columns"] == out["n_columns"]
    assert (
        xcom(run, "data_drift", key=ReportLink().xcom_key)
        == f"/mlops/reports/drift/{MODEL}/dt=2026-01-06/report.html"
    )

    runs = _monitoring_runs(dag_id="monitoring_drift_same", task_id="data_drift")
    assert [r.info.run_id for r in runs] == [out["mlflow_run_id"]]
    logged = runs[0]
    assert logged.data.metrics["dataset_drift"] == 0.0
    assert logged.data.metrics["drift_share"] == pytest.approx(out["drift_share"])
    assert "drift_score.monthly_charges" in logged.data.metrics
    assert logged.data.tags["mlops.reference_model_version"] == "1"
    assert logged.data.tags["mlops.monitoring_kind"] == "drift"
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
            experiment_name=None,
        )
        RetrainDecisionOperator(
            task_id="decide",
            registered_model_name=MODEL,
            drift=[data.output, prediction.output],
            retrain_asset="mlops.retrain-request.monitoring-tests",
        )
    run = run_dag(dag, day)
    states = task_states(run)
    assert states["data_drift"] == states["prediction_drift"] == states["target_drift"] == "success"
    data_out = xcom(run, "data_drift")
    assert data_out["dataset_drift"] is True
    assert data_out["status"] == "drift" and data_out["passed"] is False
    assert check_result(data_out) == []
    assert {r.split(":")[0] for r in data_out["reasons"][1:]} == set(data_out["drifted_columns"])
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
    assert target_out["model"] is None and check_result(target_out) == []

    decision = xcom(run, "decide")
    assert states["decide"] == "success" and decision["retrain"] is True
    assert len(decision["evaluations"]["drift"]["details"]["results"]) == 2


def test_drift_input_problems(lake: Lake, tmp_path: Path) -> None:
    """Nulls, new categories and constant columns are compared; bad inputs fail clearly."""
    from mlops_provider.core.errors import CoreError
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
    with pytest.raises(CoreError, match=r"parameter drift_options: \['columns'\]"):
        run_drift_check(
            str(tmp_path / "cur.parquet"),
            reference_data=str(tmp_path / "ref.parquet"),
            options={"drift_options": {"columns": ["plan"]}},
        )
    with pytest.raises(CoreError, match=r"parameter per_column_threshold\['plan'\]"):
        run_drift_check(
            str(tmp_path / "cur.parquet"),
            reference_data=str(tmp_path / "ref.parquet"),
            options={"per_column_threshold": {"plan": "high"}},
        )
    templated = run_drift_check(  # thresholds rendered as text are numbers
        str(tmp_path / "cur.parquet"),
        reference_data=str(tmp_path / "ref.parquet"),
        options={"per_column_threshold": {"plan": "0.9"}, "drift_threshold": 0.01},
        report_uri=str(tmp_path / "templated"),
    )
    assert templated["columns"]["plan"]["threshold"] == 0.9
    assert templated["columns"]["tenure_months"]["threshold"] == 0.01
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
        f"registered model '{MODEL}' has no alias 'no-such-alias' (its aliases: @champion",
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
        "target": "churned",
        "entity_columns": ENTITY,
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
    assert check_result(out) == []
    assert out["evaluated_days"] == ["2026-01-03", "2026-01-04", "2026-01-05"]
    assert out["model_versions"] == ["1", "2"] and out["model_version"] == "2"
    two = lake.models["2"]
    assert out["model"] == {
        "name": MODEL,
        "version": "2",
        "run_id": two.run_id,
        "uri": f"models:/{MODEL}/2",
    }
    labels = {d: len(lake.sim.labels(d)) for d in lake.sim.days(date(2026, 1, 3), date(2026, 1, 5))}
    assert out["labelled_rows_total"] == sum(labels.values())
    assert out["labelled_rows"] == out["rows"] == labels[date(2026, 1, 5)]
    for version, perf in out["by_version"].items():
        # Each version is compared with the holdout metrics of its own training run.
        assert perf["baseline"]["roc_auc"] == pytest.approx(lake.models[version].metrics["roc_auc"])
        assert perf["run_id"] == lake.versions[version]
    # Version 2 scored Jan 5, the very day its training held out: the same model on the same
    # rows gives its training metrics again, so nothing degraded.
    assert out["status"] == "ok" and out["passed"] is True
    assert out["degradation"]["roc_auc"] == {
        "abs": pytest.approx(0, abs=1e-6),
        "rel": pytest.approx(0, abs=1e-6),
    }
    assert out["metrics"]["roc_auc"] == pytest.approx(two.metrics["roc_auc"], abs=1e-6)
    html = Path(out["report_uri"]).read_text()
    assert "<img" in html and "per day" in html
    assert Path(out["report_uri"]).parent == (
        lake.home / "data" / "reports" / "performance" / MODEL / "dt=2026-01-12"
    )

    one = xcom(run, "one_day")
    assert one["evaluated_days"] == ["2026-01-05"]
    assert one["status"] == "insufficient_data" and one["labelled_rows"] < 200
    assert one["passed"] is True and check_result(one) == []
    assert any("min_labels 200" in r for r in one["reasons"])

    champion = xcom(run, "champion_baseline")
    for perf in champion["by_version"].values():  # every version against the champion (v1)
        assert perf["baseline"]["roc_auc"] == pytest.approx(lake.models["1"].metrics["roc_auc"])

    fixed = xcom(run, "fixed_baseline")
    assert fixed["status"] == "degraded" and fixed["passed"] is False
    assert fixed["baseline"] == {"roc_auc": 0.99}

    runs = _monitoring_runs(dag_id="monitoring_performance", task_id="window")
    assert [r.info.run_id for r in runs] == [out["mlflow_run_id"]]
    assert runs[0].data.metrics["labelled_rows"] == out["labelled_rows"]
    assert runs[0].data.tags["mlops.performance_status"] == out["status"]
    assert runs[0].data.tags["mlops.monitoring_kind"] == "performance"
    rerun = xcom(run_dag(dag, run_day), "window")
    assert rerun["mlflow_run_id"] == out["mlflow_run_id"]
    assert len(_monitoring_runs(dag_id="monitoring_performance", task_id="window")) == 1


def test_drift_accepts_every_model_uri_form(lake: Lake) -> None:
    """TrainModelOperator returns ``models:/m-<id>``: drift detection refused it. Every form
    names the same training profile (an unregistered model's comes from its source run)."""
    one = lake.models["1"]
    uris = {
        "logged": one.model_uri,
        "run": f"runs:/{one.run_id}/model",
        "version": f"models:/{MODEL}/1",
        "alias": f"models:/{MODEL}@champion",
    }
    assert one.model_uri.startswith("models:/m-")
    with _dag("monitoring_drift_uris") as dag:
        for task_id, uri in uris.items():
            DriftDetectionOperator(
                task_id=task_id,
                current_data=str(lake.root / "raw" / f"dt={DAY}"),
                model_uri=uri,
                report_name=f"uri-{task_id}",
                experiment_name=None,
            )
    run = run_dag(dag, date(2026, 1, 6))
    assert set(task_states(run).values()) == {"success"}
    outs = {task_id: xcom(run, task_id) for task_id in uris}
    assert len({json.dumps(o["columns"], sort_keys=True) for o in outs.values()}) == 1
    for task_id, out in outs.items():
        assert check_result(out) == [], task_id
        assert out["reference_run_id"] == out["model"]["run_id"] == one.run_id
    assert outs["logged"]["reference"] == outs["logged"]["model"]["uri"] == one.model_uri
    assert outs["logged"]["model"]["name"] is None  # a logged model is not a registry version
    assert outs["run"]["reference"] == uris["run"]
    assert outs["version"]["model"]["version"] == outs["alias"]["model"]["version"] == "1"
    assert outs["alias"]["model"]["alias"] == "champion"


def test_string_labels_and_the_recorded_target(lake: Lake) -> None:
    """Labels "yes"/"no" (which training accepts) crashed performance monitoring with "invalid
    literal for int()". ``target`` defaults to the label the training run recorded."""
    from mlops_provider.core.monitoring import training_record

    record = training_record(MlflowHook().client, lake.text.run_id)
    assert record.target == "churn_label"
    common = {
        "predictions_data": str(lake.root / "predictions_text"),
        "labels_data": str(lake.root / "labels_text"),
        "label_delay": 7,
        "min_labels": 100,
        "registered_model_name": TEXT_MODEL,
    }
    with _dag("monitoring_performance_text") as dag:
        ModelPerformanceOperator(task_id="text", entity_columns="customer_id", **common)
        ModelPerformanceOperator(task_id="recorded", report_name="recorded", **common)
    run = run_dag(dag, date(2026, 1, 12))  # matured: Jan 5, the text model's holdout day
    out = xcom(run, "text")
    assert task_states(run)["text"] == "success" and check_result(out) == []
    assert out["status"] == "ok" and out["rows"] == len(lake.sim.labels(date(2026, 1, 5)))
    assert out["metrics"]["roc_auc"] == pytest.approx(lake.text.metrics["roc_auc"], abs=1e-6)
    assert out["metrics"]["f1"] == pytest.approx(lake.text.metrics["f1"], abs=1e-6)
    if record.entity_columns:  # the training run records its entity columns: nothing to give
        assert task_states(run)["recorded"] == "success"
        assert xcom(run, "recorded")["metrics"] == out["metrics"]
    else:  # it does not: a clear error naming the parameter
        assert task_states(run)["recorded"] == "failed"


def test_missing_entity_columns_fail_with_a_clear_error(
    lake: Lake, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlops_provider.core.monitoring import training_record

    if training_record(MlflowHook().client, lake.models["2"].run_id).entity_columns:
        pytest.skip("the training run records its entity columns")
    with _dag("monitoring_performance_no_entities") as dag:
        ModelPerformanceOperator(
            task_id="no_entities",
            predictions_data=str(lake.root / "predictions"),
            labels_data=str(lake.root / "labels"),
            label_delay=7,
        )
    run = run_dag(dag, date(2026, 1, 12))
    assert task_states(run) == {"no_entities": "failed"}
    logged = capsys.readouterr().out
    assert (
        "ModelPerformanceError: performance monitoring failed: parameter entity_columns: " in logged
    )
    assert f"training run {lake.models['2'].run_id} of the newest predictions" in logged
    assert "records none (tag mlops.entity_columns)" in logged


def test_renamed_parameters_warn_and_keep_working() -> None:
    with pytest.warns(MlopsProviderDeprecationWarning, match="'threshold' is deprecated"):
        drift = DriftDetectionOperator(task_id="d", current_data="x", threshold=0.2)
    assert drift.drift_threshold == 0.2 and drift.experiment_name == "mlops-monitoring"
    with pytest.warns(MlopsProviderDeprecationWarning, match="use 'experiment_name'"):
        drift = DriftDetectionOperator(task_id="d2", current_data="x", monitoring_experiment=None)
    assert drift.experiment_name is None and drift.aws_conn_id == "aws_default"
    with pytest.warns(MlopsProviderDeprecationWarning) as caught:
        perf = ModelPerformanceOperator(
            task_id="p",
            predictions_data="p",
            labels_data="l",
            threshold=0.3,
            entity_column="account_id",
            monitoring_experiment="exp",
        )
    assert {str(w.message).split("'")[1] for w in caught} == {
        "threshold",
        "entity_column",
        "monitoring_experiment",
    }
    assert perf.decision_threshold == 0.3 and perf.entity_columns == "account_id"
    assert perf.experiment_name == "exp" and perf.target is None
    assert perf.aws_conn_id == "aws_default"
    assert issubclass(ModelPerformanceError, Exception)


def test_performance_deprecated_names_in_a_dag(lake: Lake) -> None:
    """The old names still run (``entity_column`` as a string, ``threshold``)."""
    with pytest.warns(MlopsProviderDeprecationWarning), _dag("monitoring_performance_old") as dag:
        ModelPerformanceOperator(
            task_id="old_names",
            predictions_data=str(lake.root / "predictions"),
            labels_data=str(lake.root / "labels"),
            label_delay=7,
            min_labels=50,
            target="churned",
            entity_column="customer_id",
            threshold=0.5,
            monitoring_experiment=None,
        )
    run = run_dag(dag, date(2026, 1, 12))
    out = xcom(run, "old_names")
    assert out["status"] == "ok" and out["mlflow_run_id"] is None


def test_online_traffic_is_monitored_like_batch_predictions(lake: Lake) -> None:
    """The serving app's prediction log (docs/serving.md) is read by the monitoring operators
    as they are: performance on late labels and data drift of the features served."""
    import httpx
    from sklearn.metrics import roc_auc_score

    from mlops_provider.serving import ServingSettings, serve_in_thread

    online = lake.root / "predictions-online"
    days = [date(2026, 1, 3), date(2026, 1, 4), date(2026, 1, 5)]
    for day in days:
        noon = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        settings = ServingSettings(
            model_name=MODEL,
            model_uri=f"models:/{MODEL}/1",
            tracking_uri=MlflowHook().target.tracking_uri,
            prediction_log_uri=str(online),
            entity_columns=ENTITY,  # the test models' runs record none
            alias_poll_seconds=0,
            clock=lambda noon=noon: noon,
        )
        rows = lake.sim.activity(day)[["customer_id", *FEATURE_COLUMNS]].to_dict("records")
        with serve_in_thread(settings) as service:  # stopping it flushes the log
            for first in range(0, len(rows), 200):
                answer = httpx.post(
                    f"{service.url}/predict", json={"rows": rows[first : first + 200]}, timeout=30
                )
                assert answer.status_code == 200, answer.text
    with _dag("monitoring_online") as dag:
        ModelPerformanceOperator(
            task_id="online_performance",
            predictions_data=str(online),
            labels_data=str(lake.root / "labels"),
            label_delay=7,
            evaluation_window=3,
            min_labels=100,
            target="churned",
            entity_columns=ENTITY,
            registered_model_name=MODEL,
            report_name="online",
        )
        DriftDetectionOperator(
            task_id="online_drift",
            current_data=str(online / "dt=2026-01-05"),
            registered_model_name=MODEL,
            report_name="online-features",
        )
    run = run_dag(dag, date(2026, 1, 12))
    assert set(task_states(run).values()) == {"success"}, task_states(run)
    performance = xcom(run, "online_performance")
    assert performance["evaluated_days"] == [d.isoformat() for d in days]
    assert performance["model_versions"] == ["1"]
    # the same AUC computed here from the log and the labels
    logged = pd.concat(
        [io.read_pandas(io.partition_uri(str(online), d)) for d in days], ignore_index=True
    )
    labels = pd.concat([lake.sim.labels(d)[["customer_id", "churned"]].assign(day=d) for d in days])
    joined = logged.assign(day=logged["scored_at"].dt.date).merge(labels, on=["customer_id", "day"])
    assert performance["labelled_rows_total"] == len(joined)
    expected = roc_auc_score(joined["churned"], joined["probability"])
    assert performance["metrics"]["roc_auc"] == pytest.approx(expected, abs=1e-4)
    drift = xcom(run, "online_drift")
    assert check_result(drift) == [] and drift["status"] == "no_drift"
    assert drift["reference_model_version"] == "1"
    assert drift["rows"] == len(lake.sim.activity(days[-1]))


GAIN_MODEL = "churn-monitoring-gain"


def _promote_with_history(name: str, version: str, replaced: str | None) -> None:
    """Move ``@champion`` and record the event as promotions do (the alias history)."""
    import time

    from mlops_provider.core.registry import journal
    from mlops_provider.core.registry.history import new_event

    client = MlflowHook().client
    event = new_event("promote", "champion", version, replaced, replaced, "test", "test")
    journal.run(client, name, journal.Intent(event, received_tags={}, set_previous=bool(replaced)))
    time.sleep(0.01)  # distinct event times


def test_gain_over_earlier_champions_on_the_same_rows(lake: Lake) -> None:
    """v1 (first champion) -> v2 -> v3: the matured rows scored by v3 are scored again by v2
    (previous champion) and v1 (first champion). v3 is v1's model registered again, so its
    gain over v1 is exactly 0 and its gain over v2 is what an independent recomputation from
    the lake gives."""
    import mlflow
    from sklearn.metrics import roc_auc_score

    from mlops_provider.core.monitoring.counterfactual import rows_digest

    one, two = lake.models["1"], lake.models["2"]
    with MlflowHook().activated(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        versions = [
            str(mlflow.register_model(m.model_uri, GAIN_MODEL).version) for m in (one, two, one)
        ]
    assert versions == ["1", "2", "3"]
    for version, replaced in (("1", None), ("2", "1"), ("3", "2")):
        _promote_with_history(GAIN_MODEL, version, replaced)
    day = date(2026, 1, 5)
    current = Trained("3", one.run_id, one.model_uri, one.metrics, one.model)
    preds = lake.root / "predictions_gain"
    _write_predictions(preds, day, lake.sim.activity(day), current, name=GAIN_MODEL)
    common = {
        "predictions_data": str(preds),
        "labels_data": str(lake.root / "labels"),
        "label_delay": 7,
        "min_labels": 50,
        "registered_model_name": GAIN_MODEL,
        "target": "churned",
        "entity_columns": ENTITY,
    }
    with _dag("monitoring_performance_gain") as dag:
        ModelPerformanceOperator(
            task_id="gain", counterfactuals=True, input_data=str(lake.root / "raw"), **common
        )
        ModelPerformanceOperator(task_id="off", report_name="off", **common)
        ModelPerformanceOperator(
            task_id="no_input", report_name="no-input", counterfactuals=True, **common
        )
    run = run_dag(dag, date(2026, 1, 12))
    states = task_states(run)
    assert states["gain"] == "success" and states["off"] == "success"
    assert states["no_input"] == "failed"  # counterfactuals without input_data: named error
    out = xcom(run, "gain")
    assert check_result(out) == []
    roles = {c["role"]: c for c in out["counterfactuals"]}
    assert {r: c["version"] for r, c in roles.items()} == {
        "previous_champion": "2",
        "first_champion": "1",
    }
    comparison = out["comparison"]
    assert comparison["model_version"] == "3" and comparison["days"] == ["2026-01-05"]
    assert comparison["rows"] == out["rows"] == len(lake.sim.labels(day))
    assert comparison["metrics"]["roc_auc"] == out["metrics"]["roc_auc"]
    for cf in out["counterfactuals"]:  # the same rows for every model
        assert cf["rows"] == comparison["rows"]
        assert cf["rows_digest"] == comparison["rows_digest"]
    # recompute from the lake: the features scored that day, the labels of that day
    features = pd.read_parquet(lake.root / "raw" / "dt=2026-01-05")
    labels = lake.sim.labels(day)[["customer_id", "churned"]]
    rows = features.merge(labels, on="customer_id")
    assert rows_digest(rows.assign(_day=day), ENTITY) == comparison["rows_digest"]
    auc = {
        v: roc_auc_score(rows["churned"], m.predict_proba(rows[FEATURE_COLUMNS])[:, 1])
        for v, m in (("1", one.model), ("2", two.model))
    }
    assert comparison["metrics"]["roc_auc"] == pytest.approx(auc["1"], abs=1e-6)
    assert roles["first_champion"]["metrics"]["roc_auc"] == pytest.approx(auc["1"], abs=1e-6)
    assert roles["previous_champion"]["metrics"]["roc_auc"] == pytest.approx(auc["2"], abs=1e-6)
    assert out["gain"]["first_champion"]["roc_auc"] == pytest.approx(0, abs=1e-6)
    assert out["gain"]["previous_champion"]["roc_auc"] == pytest.approx(
        auc["1"] - auc["2"], abs=1e-5
    )
    run_values = _monitoring_runs(dag_id="monitoring_performance_gain", task_id="gain")
    logged = run_values[0].data.metrics
    assert logged["gain.previous_champion.roc_auc"] == pytest.approx(
        out["gain"]["previous_champion"]["roc_auc"]
    )
    html = Path(out["report_uri"]).read_text()
    assert "Gain over earlier champions (same rows)" in html and "first champion" in html
    off = xcom(run, "off")
    assert off["counterfactuals"] == [] and off["metrics"] == out["metrics"]


def test_earlier_champions_without_a_recorded_history(lake: Lake) -> None:
    """Aliases moved outside the provider leave no history: the previous champion is then the
    ``previous_champion`` alias, and there is no first champion to name."""
    import mlflow

    from mlops_provider.core.monitoring.counterfactual import (
        Counterfactual,
        champion_counterfactuals,
    )

    name = "churn-monitoring-no-history"
    client = MlflowHook().client
    with MlflowHook().activated(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for trained in (lake.models["1"], lake.models["2"]):
            mlflow.register_model(trained.model_uri, name)
    client.set_registered_model_alias(name, "champion", "2")
    client.set_registered_model_alias(name, "previous_champion", "1")
    found, notes = champion_counterfactuals(client, name, "2")
    assert found == [Counterfactual("1", "previous_champion")]
    assert any("no recorded history" in n for n in notes)
    _promote_with_history(name, "2", "1")  # now recorded: v2 replaced v1, v2 came first
    found, notes = champion_counterfactuals(client, name, "2")
    assert found == [Counterfactual("1", "previous_champion")]
    assert any("is the first champion" in n for n in notes)
    found, notes = champion_counterfactuals(client, name, "1")
    assert found == [Counterfactual("2", "first_champion")]
    assert any("never held" in n for n in notes)
