"""OpenLineage events of real operators, emitted by the OpenLineage provider's own listener.

A DAG validates a training set, trains a model, evaluates and promotes it, scores the day's raw
partition and checks it for drift, all against the embedded MLflow store; a second validation
fails on purpose and quarantines its input (its FAIL event carries the lineage). It runs with
``dag.test()`` in a fresh Python process configured like a deployment would be
(``AIRFLOW__OPENLINEAGE__TRANSPORT`` = a file transport), so the provider's plugin registers
its listener, which calls each operator's ``get_openlineage_facets_on_complete`` through the
``DefaultExtractor`` and writes START/COMPLETE events as JSON lines. (A fresh process: the
listener is registered when the task runner's listener manager is first built, which an earlier
test of the session may have done without OpenLineage.) The test then reads the events.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DAY = date(2026, 1, 12)
MODEL = "churn-lineage"
SUITE = [
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "customer_id"}},
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "tenure_months", "min_value": 0}},
    {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1}},
]  # fmt: skip


def _feast_dag(data: Path, dag_id: str) -> Any:
    """apply >> materialize >> training set, on the default feature repo (project ``churn``)."""
    from airflow.sdk import DAG
    from airflow.timetables.interval import CronDataIntervalTimetable

    from mlops_provider.operators.feast import (
        FeastApplyOperator,
        FeastMaterializeOperator,
        FeastTrainingDatasetOperator,
    )

    with DAG(
        dag_id=dag_id,
        schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
    ) as dag:
        apply = FeastApplyOperator(task_id="apply")
        materialize = FeastMaterializeOperator(task_id="materialize")
        training = FeastTrainingDatasetOperator(
            task_id="training_set",
            entity_data=str(data / "entity" / "labels.parquet"),
            output_uri=str(data / "features_training" / "training.parquet"),
            feature_service="churn_model",
            label_columns=["churned"],
        )
        apply >> materialize >> training
    return dag


def _build_and_run(data: Path, dag_id: str) -> None:
    """Build the DAGs over the files under ``data`` and run them for DAY (in the child
    process)."""
    from airflow.sdk import DAG
    from airflow.timetables.interval import CronDataIntervalTimetable

    from include.dag_runner import run_dag, task_states
    from include.simulator import FEATURE_COLUMNS
    from mlops_provider.operators.evaluation import EvaluateModelOperator
    from mlops_provider.operators.monitoring import DriftDetectionOperator
    from mlops_provider.operators.registry import PromoteModelOperator
    from mlops_provider.operators.scoring import BatchScoringOperator
    from mlops_provider.operators.training import TrainModelOperator
    from mlops_provider.operators.validation import DataValidationOperator

    raw = str(data / "raw" / "dt={{ data_interval_start | ds }}")
    with DAG(
        dag_id=dag_id,
        schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
    ) as dag:
        validate = DataValidationOperator(
            task_id="validate",
            dataset=str(data / "training" / "train.parquet"),
            expectation_suite=SUITE,
            on_failure="warn",
        )
        train = TrainModelOperator(
            task_id="train",
            training_data=str(data / "training" / "train.parquet"),
            target="churned",
            estimator="sklearn.linear_model.LogisticRegression",
            estimator_params={"max_iter": 300},
            feature_columns=FEATURE_COLUMNS,
            entity_columns=["customer_id"],
            experiment_name="lineage",
        )
        evaluate = EvaluateModelOperator(
            task_id="evaluate",
            model_uri=train.output["model_uri"],
            registered_model_name=MODEL,
            evaluation_data=str(data / "training" / "holdout.parquet"),
            cold_start=True,  # the first model
        )
        promote = PromoteModelOperator(
            task_id="promote", registered_model_name=MODEL, evaluation=evaluate.output
        )
        score = BatchScoringOperator(
            task_id="score",
            registered_model_name=MODEL,
            input_data=raw,
            output_uri=str(data / "predictions"),
        )
        drift = DriftDetectionOperator(
            task_id="drift", current_data=raw, registered_model_name=MODEL, experiment_name=None
        )
        validate >> train >> evaluate >> promote >> [score, drift]
        DataValidationOperator(  # fails: its FAIL event reports the validation
            task_id="validate_bad",
            dataset=str(data / "incoming" / "bad.parquet"),
            expectation_suite=SUITE[:1],
            on_failure="quarantine",
            quarantine_uri=str(data / "quarantine" / "bad"),
        )
    run = run_dag(dag, DAY)
    states = task_states(run)
    print(json.dumps(states))
    expected = {**dict.fromkeys(states, "success"), "validate_bad": "failed"}
    if states != expected:
        raise SystemExit(f"unexpected task states: {states}")
    states = task_states(run_dag(_feast_dag(data, f"{dag_id}_feast"), DAY))
    if set(states.values()) != {"success"}:
        raise SystemExit(f"unexpected Feast task states: {states}")


@pytest.fixture
def lake(mlops_home: Path) -> dict[str, Any]:
    """The training set (4 days), its holdout (1 day) and DAY's raw partition (2 files)."""
    import pandas as pd

    from include.simulator import ChurnSimulator
    from mlops_provider.core import io

    sim = ChurnSimulator(seed=5, n_customers=400)
    data = mlops_home / "data"

    def labelled(days: list[date]) -> pd.DataFrame:
        return pd.concat(
            [sim.activity(d).assign(churned=sim.labels(d)["churned"].to_numpy()) for d in days],
            ignore_index=True,
        )

    train = labelled([date(2026, 1, d) for d in range(1, 5)])
    holdout = labelled([date(2026, 1, 5)])
    io.write_table(train, str(data / "training" / "train.parquet"))
    io.write_table(holdout, str(data / "training" / "holdout.parquet"))
    bad = train.head(20).astype({"customer_id": "float64"})
    bad.loc[:4, "customer_id"] = None
    io.write_table(bad, str(data / "incoming" / "bad.parquet"))
    raw = sim.activity(DAY)
    partition = data / "raw" / f"dt={DAY.isoformat()}"
    partition.mkdir(parents=True)
    half = len(raw) // 2
    raw.iloc[:half].to_parquet(partition / "part-0.parquet", index=False)
    raw.iloc[half:].to_parquet(partition / "part-1.parquet", index=False)
    from mlops_provider.core import features

    published = features.publish_partition(
        str(partition), str(data / "features" / "customer_activity"), DAY,
        entity_columns=["customer_id"],
    )  # fmt: skip
    labels = sim.labels(DAY)
    io.write_table(labels, str(data / "entity" / "labels.parquet"))
    return {
        "published": published,
        "labels": labels,
        "data": data,
        "train": train,
        "holdout": holdout,
        "raw": raw,
        "partition": partition,
    }


def _run_with_openlineage(data: Path, events: Path, dag_id: str) -> None:
    env = {
        **os.environ,
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(events), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "mlops-tests",
        # emit in a thread of the task process, not a forked child (the default)
        "AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD": "True",
        "AIRFLOW__OPENLINEAGE__DISABLED": "False",
    }
    code = (
        "import sys; from pathlib import Path; "
        "from tests.integration.test_openlineage import _build_and_run; "
        "_build_and_run(Path(sys.argv[1]), sys.argv[2])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(data), dag_id],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-6000:]


def _task_events(events: Path, dag_id: str) -> dict[str, dict[str, dict[str, Any]]]:
    """``{event type: {task_id: event}}`` of the DAG's tasks."""
    lines = [json.loads(line) for line in events.read_text().splitlines() if line.strip()]
    by_type: dict[str, dict[str, dict[str, Any]]] = {"START": {}, "COMPLETE": {}, "FAIL": {}}
    for event in lines:
        job = event["job"]["name"]
        if job.startswith(f"{dag_id}.") and event["eventType"] in by_type:
            by_type[event["eventType"]][job.split(".", 1)[1]] = event
    return by_type


def _by_name(datasets: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["name"]: d for d in datasets}


def _columns(dataset: dict[str, Any]) -> dict[str, str]:
    return {f["name"]: f["type"] for f in dataset["facets"]["schema"]["fields"]}


def _tags(dataset: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in dataset["facets"]["tags"]["tags"]}


def test_operators_emit_their_lineage_through_the_listener(
    airflow_db: Path, lake: dict[str, Any], mlops_home: Path, tmp_path: Path
) -> None:
    from include.simulator import FEATURE_COLUMNS

    events = tmp_path / "openlineage.jsonl"
    dag_id = f"lineage_{uuid.uuid4().hex[:6]}"
    _run_with_openlineage(lake["data"], events, dag_id)
    by_type = _task_events(events, dag_id)
    done = by_type["COMPLETE"]
    assert set(done) == {"validate", "train", "evaluate", "promote", "score", "drift"}
    assert set(by_type["FAIL"]) == {"validate_bad"}
    assert set(by_type["START"]) == set(done) | {"validate_bad"}
    for event in done.values():
        assert event["job"]["namespace"] == "mlops-tests"
    data = lake["data"].resolve()
    train_path = str(data / "training" / "train.parquet")
    partition = str(lake["partition"].resolve())
    mlflow_ns = f"mlflow+sqlite://{mlops_home.resolve() / 'mlflow' / 'mlflow.db'}"
    version_1 = f"models/{MODEL}/versions/1"

    # validation: the dataset with its schema, rows, null counts and one assertion per expectation
    (validated,) = done["validate"]["inputs"]
    assert (validated["namespace"], validated["name"]) == ("file", train_path)
    assert done["validate"]["outputs"] == []
    columns = _columns(validated)
    assert list(columns) == list(lake["train"].columns)
    assert columns["customer_id"] == "int64" and columns["monthly_charges"] == "double"
    assert validated["inputFacets"]["inputStatistics"]["rowCount"] == len(lake["train"])
    metrics = validated["inputFacets"]["dataQualityMetrics"]
    assert metrics["rowCount"] == len(lake["train"])
    assert metrics["columnMetrics"]["customer_id"]["nullCount"] == 0
    assertions = validated["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert [(a["assertion"], a.get("column"), a["success"]) for a in assertions] == [
        ("expect_column_values_to_not_be_null", "customer_id", True),
        ("expect_column_values_to_be_between", "tenure_months", True),
        ("expect_table_row_count_to_be_between", None, True),
    ]
    assert json.loads(assertions[1]["expected"]) == {"min_value": 0}

    # training: the training set in, the logged model (not registered yet) out
    (train_in,) = done["train"]["inputs"]
    assert (train_in["namespace"], train_in["name"]) == ("file", train_path)
    assert train_in["inputFacets"]["inputStatistics"]["rowCount"] == len(lake["train"])
    assert set(FEATURE_COLUMNS) <= set(_columns(train_in))
    (logged,) = done["train"]["outputs"]
    assert logged["namespace"] == mlflow_ns
    assert logged["name"].startswith("logged-models/m-")
    model_id = logged["name"].split("/", 1)[1]
    assert logged["facets"]["datasetType"]["datasetType"] == "MODEL"
    assert logged["facets"]["version"]["datasetVersion"] == model_id
    run_id = _tags(logged)["mlflow.run_id"]
    assert _tags(logged)["mlflow.model_uri"] == f"models:/{model_id}"

    # evaluation: the holdout and the candidate (with the gate's checks as assertions)
    inputs = _by_name(done["evaluate"]["inputs"])
    assert set(inputs) == {str(data / "training" / "holdout.parquet"), logged["name"]}
    holdout = inputs[str(data / "training" / "holdout.parquet")]
    assert holdout["inputFacets"]["inputStatistics"]["rowCount"] == len(lake["holdout"])
    gate = inputs[logged["name"]]["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert gate and all(a["success"] for a in gate)

    # promotion: the candidate in, registered version 1 (now @champion) out
    assert [d["name"] for d in done["promote"]["inputs"]] == [logged["name"]]
    (registered,) = done["promote"]["outputs"]
    assert (registered["namespace"], registered["name"]) == (mlflow_ns, version_1)
    assert registered["facets"]["version"]["datasetVersion"] == "1"
    assert _tags(registered)["mlflow.alias"] == "champion"
    assert _tags(registered)["mlflow.run_id"] == run_id

    # scoring: the day's raw partition and version 1 in, the predictions partition out
    inputs = _by_name(done["score"]["inputs"])
    assert set(inputs) == {partition, version_1}
    raw_in = inputs[partition]
    assert raw_in["namespace"] == "file"
    assert raw_in["inputFacets"]["inputStatistics"]["rowCount"] == len(lake["raw"])
    assert set(FEATURE_COLUMNS) <= set(_columns(raw_in))
    assert raw_in["facets"]["symlinks"]["identifiers"][0]["name"] == str(data / "raw")
    assert inputs[version_1]["namespace"] == mlflow_ns
    assert _tags(inputs[version_1])["mlflow.run_id"] == run_id
    (predictions,) = done["score"]["outputs"]
    assert (predictions["namespace"], predictions["name"]) == (
        "file",
        str(data / "predictions" / f"dt={DAY.isoformat()}"),
    )
    assert predictions["outputFacets"]["outputStatistics"]["rowCount"] == len(lake["raw"])
    assert predictions["outputFacets"]["outputStatistics"]["fileCount"] >= 1
    out_columns = _columns(predictions)
    assert {"customer_id", "prediction", "probability", "model_version"} <= set(out_columns)
    assert out_columns["probability"] == "double"
    assert predictions["facets"]["symlinks"]["identifiers"][0]["name"] == str(data / "predictions")

    # drift: the current partition (rows, one assertion per compared column) and the reference
    inputs = _by_name(done["drift"]["inputs"])
    assert set(inputs) == {partition, version_1}
    current = inputs[partition]
    assert current["inputFacets"]["inputStatistics"]["rowCount"] == len(lake["raw"])
    drift_assertions = current["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert {a["column"] for a in drift_assertions} == set(FEATURE_COLUMNS)
    assert {a["assertion"] for a in drift_assertions} == {"no_drift"}
    assert done["drift"]["outputs"] == []

    # a failed validation: its FAIL event has the failed assertion and the quarantined copy
    failed = by_type["FAIL"]["validate_bad"]
    (bad_in,) = failed["inputs"]
    assert bad_in["name"] == str(data / "incoming" / "bad.parquet")
    assert bad_in["inputFacets"]["dataQualityMetrics"]["columnMetrics"]["customer_id"] == {
        **bad_in["inputFacets"]["dataQualityMetrics"]["columnMetrics"]["customer_id"],
        "nullCount": 5,
    }
    (not_null,) = bad_in["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert (not_null["column"], not_null["success"], not_null["severity"]) == (
        "customer_id",
        False,
        "error",
    )
    assert [(d["namespace"], d["name"]) for d in failed["outputs"]] == [
        ("file", str(data / "quarantine" / "bad" / "data"))
    ]
    assert failed["outputs"][0]["outputFacets"]["outputStatistics"]["rowCount"] == 20

    _check_feast(_task_events(events, f"{dag_id}_feast")["COMPLETE"], lake)


def _check_feast(done: dict[str, dict[str, Any]], lake: dict[str, Any]) -> None:
    """The Feast DAG: sources -> apply/materialize -> views; entity data + sources -> set."""
    from include.simulator import FEATURE_COLUMNS

    assert set(done) == {"apply", "materialize", "training_set"}
    data = lake["data"].resolve()
    source = ("file", str(data / "features" / "customer_activity"))
    view = ("feast://churn", "customer_activity")

    assert [(d["namespace"], d["name"]) for d in done["apply"]["inputs"]] == [source]
    (applied,) = done["apply"]["outputs"]
    assert (applied["namespace"], applied["name"]) == view
    columns = _columns(applied)
    assert next(iter(columns)) == "customer_id" and set(FEATURE_COLUMNS) <= set(columns)

    (read,) = done["materialize"]["inputs"]
    assert (read["namespace"], read["name"]) == source
    assert read["inputFacets"]["inputStatistics"]["rowCount"] == lake["published"]["rows"]
    (served,) = done["materialize"]["outputs"]
    assert (served["namespace"], served["name"]) == view
    assert served["outputFacets"]["outputStatistics"]["rowCount"] == lake["published"]["rows"]

    inputs = _by_name(done["training_set"]["inputs"])
    entity = str(data / "entity" / "labels.parquet")
    assert set(inputs) == {entity, source[1]}
    assert inputs[entity]["inputFacets"]["inputStatistics"]["rowCount"] == len(lake["labels"])
    (written,) = done["training_set"]["outputs"]
    assert written["name"] == str(data / "features_training" / "training.parquet")
    assert written["outputFacets"]["outputStatistics"]["rowCount"] == len(lake["labels"])
    assert {"customer_id", "churned", *FEATURE_COLUMNS} <= set(_columns(written))
