"""Lineage of the simulated lifecycle: a prediction row scored before and one scored after the
champion change, traced back, and every link checked against the store that holds it (the
MLflow registry and runs, the lake's files, the Feast registry, the feature pipeline's
validation results, the Airflow metadata database's asset events and task instances). Also the
``trace`` command on the demo's stores, and every day's predictions.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mlops_provider.core import io
from mlops_provider.core.governance.trace import (
    LINK_NAMES,
    Trace,
    champion_traces_html,
    trace_prediction,
)
from mlops_provider.core.mlflow_target import MlflowTarget, make_client

pytestmark = [pytest.mark.dags, pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
NAME = "churn"


@pytest.fixture(scope="module")
def stores(lifecycle: dict[str, Any]) -> dict[str, Any]:
    home = Path(lifecycle["home"])
    mlops = home / "mlops"
    target = MlflowTarget(
        tracking_uri=f"sqlite:///{mlops / 'mlflow' / 'mlflow.db'}",
        artifact_location=(mlops / "mlflow" / "artifacts").as_uri(),
    )
    return {
        "home": home,
        "mlops": mlops,
        "lake": Path(lifecycle["lake"]),
        "client": make_client(target),
        "airflow_db": home / "airflow.db",
    }


def _query(db: Path, sql: str, *args: Any) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql, args).fetchall())


def _row_scored_by(lake: Path, version: str) -> tuple[str, int]:
    """(day, customer_id) of a prediction row scored by ``version``."""
    base = lake / "predictions" / NAME
    for day, partition in io.list_partitions(str(base)).items():
        frame = io.read_pandas(partition)
        rows = frame[frame["model_version"] == version]
        if len(rows):
            return day.isoformat(), int(rows["customer_id"].iloc[0])
    raise AssertionError(f"no prediction of version {version} under {base}")


def _data(found: Trace, name: str) -> dict[str, Any]:
    link = found.link(name)
    assert link is not None, name
    assert link.status == "found", (name, link.status, link.notes)
    return link.data


def _check_model_links(found: Trace, client: Any, day: str, customer: int, lake: Path) -> None:
    from mlops_provider.core.registry.history import alias_holder_at

    row = io.read_pandas(io.partition_uri(str(lake / "predictions" / NAME), day))
    row = row[row["customer_id"] == customer].iloc[0]
    prediction = _data(found, "prediction")
    assert prediction["model_run_id"] == row["model_run_id"]
    assert prediction["values"]["probability"] == pytest.approx(row["probability"])
    version = _data(found, "model_version")
    registered = client.get_model_version(NAME, row["model_version"])
    assert version["version"] == row["model_version"] == str(registered.version)
    assert version["run_id"] == registered.run_id == row["model_run_id"]
    alias = _data(found, "alias")
    holder = alias_holder_at(client, NAME, "champion", prediction["scored_at"])
    assert alias["held"] == ["champion"] and holder == version["version"]
    run = _data(found, "training_run")
    stored = client.get_run(registered.run_id)
    assert run["metrics"] == stored.data.metrics and run["params"] == stored.data.params
    from mlops_provider import __version__

    assert run["provider_version"] == __version__


def _check_datasets(found: Trace) -> dict[str, Any]:
    training = _data(found, "training_data")
    table = io.read_table(training["uri"])
    assert training["digest"] == io.table_digest(table) and training["rows"] == table.num_rows
    assert training["unchanged"] is True
    evaluation = _data(found, "evaluation_data")
    assert evaluation["digest"] == io.table_digest(io.read_table(evaluation["uri"]))
    assert Path(evaluation["uri"]).parent == Path(training["uri"]).parent
    entities = _data(found, "entity_data")
    for role in ("training", "evaluation"):
        uri = entities[role]["uri"]
        assert entities[role]["digest"] == io.table_digest(io.read_table(uri)), role
    window = _data(found, "label_window")
    train = io.read_pandas(entities["training"]["uri"])
    days = sorted({str(d)[:10] for d in train["event_timestamp"]})
    assert window["train_days"] == days and window["train_rows"] == len(train)
    assert window["start"] == days[0] and window["end"] == window["eval_days"][-1]
    return window


def _check_features(found: Trace, mlops: Path) -> None:
    from google.protobuf.json_format import MessageToDict

    from mlops_provider.core.features.registry import definition_digest

    features = _data(found, "features")
    assert features["feature_service"] == "churn_model"
    os.environ["MLOPS_HOME"] = str(mlops)
    try:
        from mlops_provider.core.feast_config import make_feature_store

        store = make_feature_store(ROOT / "include" / "feature_repo")
        service = store.get_feature_service("churn_model")
        (recorded,) = features["feature_views"]
        view = store.get_feature_view(recorded["name"])
    finally:
        os.environ.pop("MLOPS_HOME", None)
    assert [p.name for p in service.feature_view_projections] == [recorded["name"]]
    assert recorded["features"] == [f.name for f in view.features]
    assert features["feature_refs"] == [f"{view.name}:{f.name}" for f in view.features]
    assert recorded["ttl_seconds"] == int(view.ttl.total_seconds())
    assert recorded["entities"] == list(view.entities)
    assert recorded["source"] == view.batch_source.path
    assert recorded["definition_digest"] == definition_digest(MessageToDict(view.to_proto().spec))


def _check_partitions(found: Trace, window: dict[str, Any], lake: Path) -> None:
    partitions = _data(found, "source_partitions")["partitions"]
    assert [p["day"] for p in partitions] == window["train_days"] + window["eval_days"]
    for item in partitions:
        assert item["uri"].endswith(f"features/customer_activity/dt={item['day']}")
        assert item["digest"] == io.table_digest(io.read_table(item["uri"]))
        validation = item["validation"]
        assert validation["status"] == "passed" and validation["passed"] is True
        # the feature pipeline's own record of that day's validation (GX result + summary)
        result = json.loads(io.read_text(validation["result_uri"]))
        summary = result["meta"]["mlops"]["summary"]
        assert summary["success"] is True and summary["dataset"].endswith(f"raw/dt={item['day']}")
        assert summary["row_count"] == validation["rows"]
        assert io.exists(validation["report_uri"])


def _check_code(found: Trace, db: Path) -> None:
    code = _data(found, "code")
    (stored,) = _query(
        db,
        "select dag_version_id from task_instance where dag_id = ? and run_id = ? and task_id = ?",
        code["dag_id"],
        code["run_id"],
        code["task_id"],
    )
    assert code["dag_id"] == "mlops_training_pipeline" and code["task_id"] == "train"
    assert code["dag_version_id"].replace("-", "") == str(stored[0]).replace("-", "")
    dag_file = ROOT / "dags" / "mlops_training_pipeline.py"
    assert code["dag_file_digest"] == hashlib.sha256(dag_file.read_bytes()).hexdigest()


def _requests(db: Path) -> dict[str, dict[str, Any]]:
    """The retrain requests the monitoring DAG emitted (asset events), by request id."""
    rows = _query(
        db,
        "select e.extra from asset_event e join asset a on a.id = e.asset_id where a.uri = ?",
        "mlops.retrain-request",
    )
    extras = [json.loads(r[0]) if isinstance(r[0], str) else r[0] for r in rows]
    return {e["request_id"]: e for e in extras if e and e.get("request_id")}


def _trace(stores: dict[str, Any], version: str) -> tuple[Trace, str, int]:
    day, customer = _row_scored_by(stores["lake"], version)
    base = str(stores["lake"] / "predictions" / NAME)
    found = trace_prediction(stores["client"], base, f"dt={day}/customer_id={customer}")
    assert found.missing == [] and found.changed == [], found.to_text()
    assert [link.name for link in found.links] == [n for n in LINK_NAMES if n != "validation_data"]
    return found, day, customer


def test_rows_before_and_after_the_champion_change_trace_to_their_stores(
    stores: dict[str, Any],
) -> None:
    from mlops_provider.core.registry.history import alias_history

    client, lake = stores["client"], stores["lake"]
    history = alias_history(client, NAME, "champion")
    assert len(history) >= 2, [e.version for e in history]
    first, retrained = history[0].version, history[1].version
    requests = _requests(stores["airflow_db"])
    assert requests, "the monitoring DAG emitted no retrain request"
    for version in (first, retrained):
        found, day, customer = _trace(stores, version)
        _check_model_links(found, client, day, customer, lake)
        window = _check_datasets(found)
        _check_features(found, stores["mlops"])
        _check_partitions(found, window, lake)
        _check_code(found, stores["airflow_db"])
        trigger = _data(found, "trigger")
        if version == first:  # the demo starts the first training itself, with an as_of
            assert trigger["kind"] == "manual" and trigger["reasons"] == []
        else:
            (request_id,) = trigger["request_ids"]
            assert trigger["kind"] == "retrain_request" and trigger["source"] == "registry"
            assert trigger["reasons"] == requests[request_id]["reasons"]
            assert trigger["request"]["champion_version"] == first
            assert requests[request_id]["champion_version"] == first
    page = champion_traces_html(NAME, client)
    for event in history:
        assert f"{NAME} v{event.version}: @champion from {event.at}" in page


def test_every_prediction_day_traces_and_the_command_agrees(stores: dict[str, Any]) -> None:
    client, lake = stores["client"], stores["lake"]
    base = lake / "predictions" / NAME
    partitions = io.list_partitions(str(base))
    assert len(partitions) >= 5
    for day, partition in partitions.items():
        customer = int(io.read_pandas(partition)["customer_id"].iloc[-1])
        found = trace_prediction(client, partition, {"customer_id": str(customer)}, verify=False)
        assert found.missing == [], (day, found.missing)
    day, customer = _row_scored_by(lake, _data(found, "model_version")["version"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.pop("MLOPS_HOME", None)
    env.update(
        AIRFLOW_HOME=str(stores["home"]),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{stores['airflow_db']}",
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mlops_provider",
            "trace",
            str(base),
            "--row",
            f"customer_id={customer}",
            "--day",
            day,
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    expected = trace_prediction(client, str(base), f"customer_id={customer}", day=day).to_dict()
    assert [(link["name"], link["status"]) for link in out["links"]] == [
        (link["name"], link["status"]) for link in expected["links"]
    ]
    by_name = {link["name"]: link for link in out["links"]}
    assert (
        by_name["model_version"]["data"]
        == {link["name"]: link for link in expected["links"]}["model_version"]["data"]
    )
    assert by_name["training_data"]["data"]["unchanged"] is True
