"""core.governance.trace on a small real setup, without Airflow.

A real embedded MLflow store; feature partitions published with their validation; a model
trained with train_and_log and its lineage document, registered and made champion by the
provider's promotion; predictions written by core scoring. Then a second champion whose run has
no lineage document (as an older run would), and a changed source partition.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from include.simulator import ChurnSimulator
from mlops_provider.core import io, registry
from mlops_provider.core.governance import LINEAGE_ARTIFACT
from mlops_provider.core.governance.collect import file_digest, pipeline_lineage, read_trigger
from mlops_provider.core.governance.trace import (
    LINK_NAMES,
    TraceError,
    champion_traces_html,
    parse_row_key,
    render_trace_html,
    trace,
    trace_champion_at,
    trace_model_version,
    trace_prediction,
)
from mlops_provider.core.mlflow_target import MlflowTarget, make_client
from mlops_provider.core.training import TrainingConfig, train_and_log

ROOT = Path(__file__).resolve().parents[2]
DAYS = [date(2026, 1, d) for d in range(1, 6)]
NAME = "churn"
FAST = {
    "estimator": "sklearn.linear_model.LogisticRegression",
    "estimator_params": {"max_iter": 300},
}
VALIDATION = {"status": "passed", "passed": True, "suite": "churn_raw", "rows": None}


def _feature_view_record() -> dict[str, Any]:
    from mlops_provider.core.features.registry import feature_view_record

    path = ROOT / "include" / "feature_repo" / "churn_features.py"
    spec = importlib.util.spec_from_file_location("trace_churn_features", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return feature_view_record(module.customer_activity)


def _publish(sim: ChurnSimulator, lake: Path, day: date) -> None:
    from mlops_provider.core.features import publish_partition

    raw = lake / "raw" / f"dt={day}" / "activity.parquet"
    raw.parent.mkdir(parents=True, exist_ok=True)
    frame = sim.activity(day)
    frame.to_parquet(raw, index=False)
    report = str(lake / "reports" / "validation" / "raw" / f"dt={day}" / "report.html")
    publish_partition(
        str(raw.parent),
        str(lake / "features" / "customer_activity"),
        day,
        entity_columns=["customer_id"],
        validation={**VALIDATION, "rows": len(frame), "report_uri": report},
    )


def _labelled(sim: ChurnSimulator, days: list[date]) -> pd.DataFrame:
    frames = [
        sim.activity(d).merge(sim.labels(d)[["customer_id", "event_timestamp", "churned"]])
        for d in days
    ]
    return pd.concat(frames, ignore_index=True)


def _lineage(lake: Path, sim: ChurnSimulator, client: Any) -> dict[str, Any]:
    """What the reference DAG records, built by the same core functions it calls."""
    run_dir = lake / "training" / "20260105T000000"
    entities = run_dir / "entities"
    entities.mkdir(parents=True)
    train = _labelled(sim, DAYS[:3])
    held = _labelled(sim, DAYS[3:4])
    keys = ["customer_id", "event_timestamp", "churned"]
    train[keys].to_parquet(entities / "train.parquet", index=False)
    held[keys].to_parquet(entities / "eval.parquet", index=False)
    io.write_table(train, str(run_dir / "training_set.parquet"))
    io.write_table(held, str(run_dir / "evaluation_set.parquet"))
    event = {"reasons": ["dataset drift: 6 of 13 columns drifted"], "request_id": "mon/2026-01-04"}
    moment = {
        "as_of": "2026-01-05T00:00:00+00:00",
        "key": "20260105T000000",
        "reasons": event["reasons"],
        "trigger": read_trigger(client, NAME, events=[event], run_type="asset_triggered"),
    }
    window = {
        "train_uri": str(entities / "train.parquet"),
        "eval_uri": str(entities / "eval.parquet"),
        "train_days": [d.isoformat() for d in DAYS[:3]],
        "eval_days": [DAYS[3].isoformat()],
        "train_rows": len(train),
        "eval_rows": len(held),
    }
    fields = pipeline_lineage(
        moment=moment,
        window=window,
        training_set={"feature_service": "churn_model", "feature_views": [_feature_view_record()]},
        evaluation_set={"uri": str(run_dir / "evaluation_set.parquet")},
        labels_uri=str(lake / "labels"),
        features_uri=str(lake / "features" / "customer_activity"),
        window_days=3,
    )
    dag_file = ROOT / "dags" / "mlops_training_pipeline.py"
    fields["code"] = {
        "dag_id": "mlops_training_pipeline",
        "run_id": "asset_triggered__2026-01-05",
        "task_id": "train",
        "dag_file": str(dag_file),
        "dag_file_digest": file_digest(str(dag_file)),
    }
    return fields


def _promote(client: Any, result: Any, champion: str | None) -> str:
    evaluation = {
        "passed": True,
        "reason": "passed: test gate",
        "registered_model_name": NAME,
        "alias": "champion",
        "candidate": {
            "run_id": result.run_id,
            "model_id": result.model_id,
            "model_uri": result.model_uri,
        },
        "champion": None if champion is None else {"version": champion},
        "cold_start": champion is None,  # the first model: an explicit cold start
    }
    return str(registry.promote(client, NAME, evaluation, by="test").version)


def _score(target: MlflowTarget, lake: Path, day: date) -> str:
    from mlops_provider.core.scoring import score

    out = io.partition_uri(str(lake / "predictions" / NAME), day)
    score(
        f"models:/{NAME}@champion",
        target=target,
        output_uri=out,
        input_data=io.partition_uri(str(lake / "features" / "customer_activity"), day),
    )
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """v1 (with its lineage) scores day 5; v2 (its run's lineage document removed) scores
    day 4."""
    home = tmp_path_factory.mktemp("trace") / "mlops"
    lake = home / "data"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_HOME", str(home))
        from mlops_provider.core import config

        target = MlflowTarget(
            tracking_uri=config.embedded_mlflow_tracking_uri(),
            artifact_location=config.embedded_mlflow_artifact_root(),
        )
        client = make_client(target)
        sim = ChurnSimulator(seed=11, n_customers=300)
        for day in DAYS:
            _publish(sim, lake, day)
        lineage = _lineage(lake, sim, client)
        training = str(lake / "training" / "20260105T000000" / "training_set.parquet")
        cfg = TrainingConfig(target="churned", entity_columns=["customer_id"], **FAST)
        refs = ["customer_activity:tenure_months", "customer_activity:plan"]
        first = train_and_log(
            target, training, cfg, experiment_name="trace", lineage=lineage, feature_refs=refs
        )
        v1 = _promote(client, first, None)
        day5 = _score(target, lake, DAYS[4])
        second = train_and_log(
            target,
            training,
            TrainingConfig(
                target="churned", entity_columns=["customer_id"], random_state=1, **FAST
            ),
            experiment_name="trace-old",
            tags={"mlops.dag_id": "mlops_training_pipeline", "mlops.dag_run_id": "manual__1"},
            feature_refs=refs,
        )
        artifacts = Path(client.get_run(second.run_id).info.artifact_uri.removeprefix("file://"))
        (artifacts / LINEAGE_ARTIFACT).unlink()  # as a run trained before lineage was recorded
        v2 = _promote(client, second, v1)
        day4 = _score(target, lake, DAYS[3])
        yield {
            "home": home,
            "lake": lake,
            "client": client,
            "target": target,
            "v1": v1,
            "v2": v2,
            "first": first,
            "second": second,
            "day5": day5,
            "day4": day4,
            "lineage": lineage,
            "training": training,
        }


def refs_of(world: dict[str, Any]) -> list[str]:
    run = world["client"].get_run(world["second"].run_id)
    return list(json.loads(run.data.tags["mlops.feature_refs"]))


def _a_customer(partition: str) -> int:
    return int(io.read_pandas(partition)["customer_id"].iloc[3])


def test_a_prediction_traces_to_every_store(world: dict[str, Any]) -> None:
    client = world["client"]
    customer = _a_customer(world["day5"])
    found = trace_prediction(
        client,
        str(world["lake"] / "predictions" / NAME),
        f"customer_id={customer}",
        day="2026-01-05",
    )
    assert [link.name for link in found.links] == [n for n in LINK_NAMES if n != "validation_data"]
    assert found.missing == [] and found.changed == []
    prediction = found.link("prediction")
    assert prediction is not None
    row = io.read_pandas(world["day5"]).set_index("customer_id").loc[customer]
    assert prediction.data["model_run_id"] == row["model_run_id"] == world["first"].run_id
    assert prediction.data["values"]["probability"] == pytest.approx(row["probability"])
    version = found.link("model_version")
    assert version is not None and version.data["version"] == world["v1"]
    assert version.data["run_id"] == prediction.data["model_run_id"]
    assert version.data["run_id_matches_prediction"] is True
    alias = found.link("alias")
    assert alias is not None and alias.data["held"] == ["champion"]
    assert alias.data["holders_at"]["champion"] == world["v1"]
    run = found.link("training_run")
    assert (
        run is not None
        and run.data["metrics"] == client.get_run(world["first"].run_id).data.metrics
    )
    assert run.data["provider_version"] and run.data["params"]["estimator"].endswith(
        "LogisticRegression"
    )
    data = found.link("training_data")
    assert data is not None and data.data["uri"] == world["training"]
    assert data.data["digest"] == io.table_digest(io.read_table(world["training"]))
    assert data.data["unchanged"] is True
    recorded = world["lineage"]
    evaluation = found.link("evaluation_data")
    assert (
        evaluation is not None
        and evaluation.data["digest"] == recorded["evaluation_data"]["digest"]
    )
    entities = found.link("entity_data")
    assert entities is not None
    for role in ("training", "evaluation"):
        uri = entities.data[role]["uri"]
        assert entities.data[role]["digest"] == io.table_digest(io.read_table(uri))
    window = found.link("label_window")
    assert window is not None and window.data["start"] == "2026-01-01"
    assert window.data["end"] == "2026-01-04" and window.data["window_days"] == 3
    features = found.link("features")
    assert features is not None and features.data["feature_service"] == "churn_model"
    (view,) = features.data["feature_views"]
    assert view["name"] == "customer_activity" and view["ttl_seconds"] == 30 * 86400
    assert view["entities"] == ["customer"] and "tenure_months" in view["features"]
    partitions = found.link("source_partitions")
    assert partitions is not None
    items = partitions.data["partitions"]
    assert [p["day"] for p in items] == ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]
    for item in items:
        assert item["validation"]["status"] == "passed" and item["unchanged"] is True
        assert item["validation"]["report_uri"].endswith(f"dt={item['day']}/report.html")
        assert item["digest"] == io.table_digest(io.read_table(item["uri"]))
    trigger = found.link("trigger")
    assert trigger is not None and trigger.data["kind"] == "retrain_request"
    assert trigger.data["reasons"] == ["dataset drift: 6 of 13 columns drifted"]
    assert trigger.data["request_ids"] == ["mon/2026-01-04"]
    code = found.link("code")
    assert code is not None and code.data["dag_file_digest"] == file_digest(code.data["dag_file"])
    assert all(link.source for link in found.links)
    json.dumps(found.to_dict())


def test_after_the_champion_change_an_older_run_shows_missing_links(world: dict[str, Any]) -> None:
    client = world["client"]
    customer = _a_customer(world["day4"])
    found = trace(
        client,
        predictions_uri=world["day4"],
        row=[f"customer_id={customer}"],
    )
    version = found.link("model_version")
    assert version is not None and version.data["version"] == world["v2"]
    alias = found.link("alias")
    assert alias is not None and alias.data["held"] == ["champion"]
    document = found.link("lineage_document")
    assert document is not None and document.status == "missing"
    assert "has no lineage/training.json" in document.notes[0]
    assert set(found.missing) == {
        "lineage_document",
        "evaluation_data",
        "entity_data",
        "label_window",
        "source_partitions",
        "trigger",
    }
    data = found.link("training_data")
    assert data is not None and data.data == {"uri": world["training"], "digest": None}
    assert data.source == "run tag mlops.training_data"
    code = found.link("code")
    assert code is not None and code.source == "run tags"
    assert code.data["mlops.dag_run_id"] == "manual__1" and "mlops.provider_version" in code.data
    features = found.link("features")
    assert features is not None and features.data == {"feature_refs": refs_of(world)}
    # the champion before and after the change, by the recorded alias history
    history = registry.alias_history(client, NAME, "champion")
    assert [e.version for e in history] == [world["v1"], world["v2"]]
    before = trace_champion_at(client, NAME, history[1].at_ms - 1)
    after = trace_champion_at(client, NAME, history[1].at_ms)
    assert before.query["version"] == world["v1"] and after.query["version"] == world["v2"]
    earlier = trace_model_version(client, f"{NAME}/{world['v1']}", at=history[1].at_ms - 1)
    assert earlier.link("alias").data["held"] == ["champion"]  # type: ignore[union-attr]
    now = trace_model_version(client, f"{NAME}/{world['v1']}")
    assert now.link("alias").data["held"] == []  # type: ignore[union-attr]


def test_row_keys_and_what_cannot_be_traced(world: dict[str, Any]) -> None:
    client = world["client"]
    assert parse_row_key("dt=2026-01-10/customer_id=123") == {
        "dt": "2026-01-10",
        "customer_id": "123",
    }
    assert parse_row_key(["customer_id=1", "plan=basic"]) == {"customer_id": "1", "plan": "basic"}
    base = str(world["lake"] / "predictions" / NAME)
    with pytest.raises(TraceError, match="not <column>=<value>"):
        parse_row_key("customer_id")
    with pytest.raises(TraceError, match="no row with customer_id=-5"):
        trace_prediction(client, base, "dt=2026-01-05/customer_id=-5")
    with pytest.raises(TraceError, match="is not a partition: give the day"):
        trace_prediction(client, base, "customer_id=1")
    with pytest.raises(TraceError, match="rows with model_name=churn"):
        trace_prediction(client, world["day5"], "model_name=churn")
    with pytest.raises(TraceError, match="no column"):
        trace_prediction(client, world["day5"], "client=1")
    with pytest.raises(TraceError, match="not found in the registry"):
        trace_model_version(client, f"{NAME}/99")
    with pytest.raises(TraceError, match="not <name>/<version>"):
        trace_model_version(client, NAME)
    with pytest.raises(TraceError, match="held @champion"):
        trace_champion_at(client, NAME, datetime(2020, 1, 1, tzinfo=timezone.utc))
    with pytest.raises(TraceError, match="trace one thing"):
        trace(client, model=f"{NAME}/1", champion_at="2026-01-01")


def test_readable_html_and_command_line_views(world: dict[str, Any]) -> None:
    client = world["client"]
    found = trace_model_version(client, f"{NAME}/{world['v1']}")
    text = found.to_text()
    assert text.startswith(f"Trace of the model version {NAME}/{world['v1']}")
    assert "[ found ] source partitions" in text and "validation passed" in text
    assert f"from: runs:/{world['first'].run_id}/{LINEAGE_ARTIFACT}" in text
    page = render_trace_html(found)
    assert page.startswith('<section class="lineage-trace">') and "dataset drift" in page
    both = champion_traces_html(NAME, client)
    assert f"{NAME} v{world['v1']}: @champion" in both and f"{NAME} v{world['v2']}" in both
    assert "lineage_document" in both or "lineage document" in both
    env = {**os.environ, "MLOPS_HOME": str(world["home"])}
    customer = _a_customer(world["day5"])
    commands = {
        "row": [
            str(world["lake"] / "predictions" / NAME),
            "--row",
            f"customer_id={customer}",
            "--day",
            "2026-01-05",
        ],
        "model": ["--model", f"{NAME}/{world['v2']}"],
        "at": ["--champion-at", datetime.now(timezone.utc).isoformat(), "--model-name", NAME],
    }
    for what, args in commands.items():
        done = subprocess.run(
            [sys.executable, "-m", "mlops_provider", "trace", *args, "--json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        out = json.loads(done.stdout)
        versions = {link["name"]: link for link in out["links"]}["model_version"]["data"]["version"]
        assert versions == (world["v1"] if what == "row" else world["v2"]), what
    done = subprocess.run(
        [sys.executable, "-m", "mlops_provider", "trace", "--model", f"{NAME}/{world['v1']}"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0 and "[ found ] trigger" in done.stdout, done.stderr[-3000:]
    bad = subprocess.run(
        [sys.executable, "-m", "mlops_provider", "trace", "--model", "churn"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert bad.returncode == 2 and "not <name>/<version>" in bad.stderr


def test_a_changed_source_partition_is_reported(world: dict[str, Any]) -> None:
    """Runs last: it republishes a day the first model was trained on."""
    sim = ChurnSimulator(seed=99, n_customers=300)
    _publish(sim, world["lake"], DAYS[1])
    found = trace_model_version(world["client"], f"{NAME}/{world['v1']}")
    assert found.changed == ["source_partitions"]
    partitions = found.link("source_partitions")
    assert partitions is not None and partitions.status == "changed"
    changed = [p["day"] for p in partitions.data["partitions"] if not p["unchanged"]]
    assert changed == ["2026-01-02"] and "2026-01-02" in partitions.notes[0]
    quick = trace_model_version(world["client"], f"{NAME}/{world['v1']}", verify=False)
    assert quick.changed == []


def test_the_trigger_of_a_training_run() -> None:
    from mlops_provider.core.governance.collect import training_trigger

    event = {"reasons": ["drift"], "request_id": "mon/1", "as_of": "2026-01-05T00:00:00+00:00"}
    request = {"last_request_at": "2026-01-05T00:00:00+00:00", "reasons": ["perf"]}
    consumed = training_trigger(events=[event], request=request, run_type="asset_triggered")
    assert (consumed["kind"], consumed["source"]) == ("retrain_request", "asset_events")
    assert consumed["reasons"] == ["drift"] and consumed["request_ids"] == ["mon/1"]
    open_request = training_trigger(
        request={**request, "request_id": "mon/2", "handled": False}, run_type="manual"
    )
    assert (open_request["kind"], open_request["source"]) == ("retrain_request", "registry")
    assert open_request["reasons"] == ["perf"] and open_request["request_ids"] == ["mon/2"]
    handled = training_trigger(
        request={**request, "handled": True}, run_type="manual", conf_as_of="2026-01-06"
    )
    assert (handled["kind"], handled["reasons"]) == ("manual", [])
    assert training_trigger(run_type="scheduled")["kind"] == "schedule"
