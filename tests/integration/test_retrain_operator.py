"""RetrainDecisionOperator / RetrainRequestOperator inside real DAGs (dag.test).

Asserts on what Airflow recorded: the asset events in the metadata DB (exactly one per decided
request, none otherwise, the reasons in ``extra``), the queued run of the DAG scheduled on the
asset, the request state on the registered model and the decision XCom.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from include.dag_runner import run_dag, sync_dag, task_states, xcom
from mlops_provider.assets import retrain_request_asset
from mlops_provider.core.results import check_result
from mlops_provider.hooks.mlflow import MlflowHook
from mlops_provider.operators.retraining import RetrainDecisionOperator, RetrainRequestOperator

pytestmark = pytest.mark.integration

UTC = timezone.utc
START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def registry_home(tmp_path_factory: pytest.TempPathFactory, airflow_db: Path) -> Iterator[Path]:
    """One embedded MLflow store for the module (each test uses its own registered model)."""
    home = tmp_path_factory.mktemp("retrain") / "mlops"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home))
        yield home


def _register_champion(
    name: str, promoted_at: datetime, run_tags: dict[str, str] | None = None
) -> str:
    """Register a version (a run with holdout metrics) and make it the champion."""
    client = MlflowHook().client
    exp_id = MlflowHook().get_or_create_experiment("retrain-tests-training")
    tags = {"mlops.data_interval_end": promoted_at.isoformat(), **(run_tags or {})}
    run = client.create_run(exp_id, tags=tags)
    client.log_metric(run.info.run_id, "roc_auc", 0.8)
    client.set_terminated(run.info.run_id)
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name)
    mv = client.create_model_version(name, f"runs:/{run.info.run_id}/model", run.info.run_id)
    client.set_registered_model_alias(name, "champion", mv.version)
    client.set_model_version_tag(name, mv.version, "mlops.promoted_at", promoted_at.isoformat())
    return str(mv.version)


def _events(uri: str) -> list[dict[str, Any]]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(AssetEvent.extra, AssetEvent.source_dag_id, AssetEvent.source_task_id)
            .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
            .where(AssetModel.uri == uri)
            .order_by(AssetEvent.id)
        ).all()
    return [{"extra": r[0], "dag_id": r[1], "task_id": r[2]} for r in rows]


def _queued_runs(dag_id: str) -> int:
    from airflow.models.asset import AssetDagRunQueue
    from airflow.utils.session import create_session
    from sqlalchemy import func, select

    with create_session() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(AssetDagRunQueue)
                .where(AssetDagRunQueue.target_dag_id == dag_id)
            )
            or 0
        )


def _unpaused(dag: Any) -> None:
    """Sync a DAG to the metadata DB and unpause it (asset events queue unpaused DAGs only)."""
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from sqlalchemy import update

    sync_dag(dag)
    with create_session() as session:
        session.execute(
            update(DagModel).where(DagModel.dag_id == dag.dag_id).values(is_paused=False)
        )


def _drift_xcom(dataset_drift: bool) -> dict[str, Any]:
    drifted = ["tenure_months", "plan"] if dataset_drift else []
    return {
        "dataset_drift": dataset_drift,
        "drift_share": len(drifted) / 3,
        "n_drifted": len(drifted),
        "n_columns": 3,
        "drift_share_threshold": 0.5,
        "reference": "models:/m/1",
        "columns": {
            c: {
                "method": "ks",
                "score": 0.001 if c in drifted else 0.5,
                "threshold": 0.05,
                "drifted": c in drifted,
            }
            for c in ("tenure_months", "plan", "region")
        },
    }


def _decision_dag(dag_id: str, model: str, asset_uri: str, policy: dict[str, Any]) -> Any:
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG, CronDataIntervalTimetable, task

    with DAG(
        dag_id,
        schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
        start_date=START,
        catchup=False,
    ) as dag:

        @task
        def monitor(**context: Any) -> dict[str, Any]:
            return _drift_xcom(bool(context["dag_run"].conf.get("drift")))

        decide = RetrainDecisionOperator(
            task_id="decide",
            registered_model_name=model,
            drift=monitor(),
            policy=policy,
            retrain_asset=asset_uri,
        )
        # Reads the decision even when the decision task skipped itself.
        decide >> EmptyOperator(task_id="report", trigger_rule="none_failed")
    return dag


def _consumer_dag(dag_id: str, asset_uri: str) -> Any:
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG, Asset

    with DAG(dag_id, schedule=[Asset(asset_uri)], start_date=START, catchup=False) as dag:
        EmptyOperator(task_id="train")
    return dag


def test_asset_mode_emits_exactly_one_event_only_when_decided(registry_home: Path) -> None:
    model = "retrain-asset-mode"
    asset = retrain_request_asset(model)
    version = _register_champion(model, START + timedelta(days=2))
    _unpaused(_consumer_dag("retrain_consumer_training", asset.uri))
    dag = _decision_dag("retrain_asset_mode", model, asset.uri, {"cooldown": "3d"})

    # Day 1: no drift -> no retraining, the task skips itself, no event.
    run = run_dag(dag, date(2026, 1, 10), conf={"drift": False})
    assert task_states(run)["decide"] == "skipped"
    assert task_states(run)["report"] == "success"
    decision = xcom(run, "decide")
    assert decision["retrain"] is False and decision["reasons"] == []
    assert check_result(decision) == [] and (decision["status"], decision["passed"]) == (
        "no_retrain",
        True,
    )
    assert decision["model"]["version"] == version and decision["model"]["alias"] == "champion"
    assert _events(asset.uri) == []

    # Day 2: drift -> one event whose extra carries the reasons; the training DAG is queued.
    run = run_dag(dag, date(2026, 1, 11), conf={"drift": True})
    assert task_states(run)["decide"] == "success"
    decision = xcom(run, "decide")
    assert decision["retrain"] is True and decision["suppressed_by"] is None
    assert check_result(decision) == [] and (decision["status"], decision["passed"]) == (
        "retrain",
        False,
    )
    events = _events(asset.uri)
    assert len(events) == 1
    extra = events[0]["extra"]
    assert extra["reasons"] == decision["reasons"]
    assert extra["reasons"][0].startswith("dataset drift: 2 of 3 columns drifted")
    assert extra["registered_model_name"] == model and extra["champion_version"] == version
    assert extra["requested_at"] == extra["as_of"] == "2026-01-12T00:00:00+00:00"  # interval end
    assert (events[0]["dag_id"], events[0]["task_id"]) == ("retrain_asset_mode", "decide")
    assert _queued_runs("retrain_consumer_training") == 1
    tags = MlflowHook().client.get_registered_model(model).tags
    assert tags["mlops.retrain.last_request_at"] == "2026-01-12T00:00:00+00:00"
    assert tags["mlops.retrain.last_request_champion_version"] == version

    # Day 3: still drifting, but within the cooldown -> suppressed, no second event.
    run = run_dag(dag, date(2026, 1, 12), conf={"drift": True})
    decision = xcom(run, "decide")
    assert task_states(run)["decide"] == "skipped"
    assert (decision["triggered"], decision["retrain"]) == (True, False)
    assert decision["suppressed_by"] == "cooldown"
    assert len(_events(asset.uri)) == 1

    # Day 6: the cooldown is over but the request is still open (no promotion) -> suppressed.
    run = run_dag(dag, date(2026, 1, 15), conf={"drift": True})
    assert xcom(run, "decide")["suppressed_by"] == "open_request"
    assert len(_events(asset.uri)) == 1

    # A new champion is promoted: the request is closed, the next drift is requested again.
    new_version = _register_champion(model, datetime(2026, 1, 16, 6, tzinfo=UTC))
    run = run_dag(dag, date(2026, 1, 16), conf={"drift": True})
    decision = xcom(run, "decide")
    assert decision["retrain"] is True and decision["champion"]["version"] == new_version
    events = _events(asset.uri)
    assert len(events) == 2 and events[1]["extra"]["champion_version"] == new_version


def test_rerun_of_the_deciding_interval_is_not_suppressed_by_its_own_request(
    registry_home: Path,
) -> None:
    model = "retrain-rerun"
    asset = retrain_request_asset(model)
    _register_champion(model, START)
    dag = _decision_dag("retrain_rerun", model, asset.uri, {"cooldown": "7d"})
    first = xcom(run_dag(dag, date(2026, 1, 10), conf={"drift": True}), "decide")
    # A retry/rerun of the same interval (e.g. after a failure before the event was recorded)
    # recognizes its own request instead of reporting a cooldown.
    again = xcom(run_dag(dag, date(2026, 1, 10), conf={"drift": True}), "decide")
    assert first["retrain"] and again["retrain"] and again["retry_of_request"]
    # Another interval within the cooldown is suppressed.
    later = xcom(run_dag(dag, date(2026, 1, 11), conf={"drift": True}), "decide")
    assert later["suppressed_by"] == "cooldown"


def test_request_marked_handled_by_training_allows_the_next_one(registry_home: Path) -> None:
    from mlops_provider.core.retraining import mark_request_handled

    model = "retrain-handled"
    asset = retrain_request_asset(model)
    _register_champion(model, START)
    dag = _decision_dag("retrain_handled", model, asset.uri, {"cooldown": "0s"})
    run_dag(dag, date(2026, 1, 10), conf={"drift": True})
    request_id = _events(asset.uri)[0]["extra"]["request_id"]
    # Still open: the training has not finished (no promotion, not handled).
    assert (
        xcom(run_dag(dag, date(2026, 1, 11), conf={"drift": True}), "decide")["suppressed_by"]
        == "open_request"
    )
    # The training pipeline rejected its candidate and marks the request handled.
    client = MlflowHook().client
    assert mark_request_handled(client, model, request_id="another/request")["handled"] is False
    # a first candidate rejected before any version exists: nothing to close, no failure
    none_yet = mark_request_handled(client, "not-registered-yet")
    assert none_yet["handled"] is False and "no registered model" in none_yet["reason"]
    done = mark_request_handled(
        client, model, handled_at="2026-01-12T06:00:00Z", request_id=request_id
    )
    assert done["handled"] is True and done["request_id"] == request_id
    decision = xcom(run_dag(dag, date(2026, 1, 12), conf={"drift": True}), "decide")
    assert decision["retrain"] is True and decision["last_request"]["handled"] is True
    assert len(_events(asset.uri)) == 2


def test_branch_mode_with_request_operator(registry_home: Path) -> None:
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG, CronDataIntervalTimetable, task

    model = "retrain-branch-mode"
    asset = retrain_request_asset(model)
    _register_champion(model, START)
    with DAG(
        "retrain_branch_mode",
        schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
        start_date=START,
        catchup=False,
    ) as dag:

        @task
        def monitor(**context: Any) -> dict[str, Any]:
            return _drift_xcom(bool(context["dag_run"].conf.get("drift")))

        decide = RetrainDecisionOperator(
            task_id="decide",
            registered_model_name=model,
            drift=monitor(),
            policy={"cooldown": "0s", "deduplicate": False},
            mode="branch",
            retrain_task_ids="request",
            no_retrain_task_ids="no_retraining",
        )
        # In production an ApprovalOperator may sit between the decision and the request.
        request = RetrainRequestOperator(
            task_id="request",
            registered_model_name=model,
            decision=decide.output,
            retrain_asset=asset,
        )
        decide >> [request, EmptyOperator(task_id="no_retraining")]

    assert decide.outlets == []  # the decision emits nothing itself in branch mode
    run = run_dag(dag, date(2026, 1, 10), conf={"drift": False})
    states = task_states(run)
    assert (states["decide"], states["request"], states["no_retraining"]) == (
        "success",
        "skipped",
        "success",
    )
    assert xcom(run, "decide")["branch"] == ["no_retraining"]
    assert check_result(xcom(run, "decide")) == []
    assert _events(asset.uri) == []
    tags = MlflowHook().client.get_registered_model(model).tags
    assert "mlops.retrain.last_request_at" not in tags

    run = run_dag(dag, date(2026, 1, 11), conf={"drift": True})
    states = task_states(run)
    assert (states["request"], states["no_retraining"]) == ("success", "skipped")
    decision = xcom(run, "decide")
    assert decision["retrain"] and decision["branch"] == ["request"]
    events = _events(asset.uri)
    assert len(events) == 1 and events[0]["task_id"] == "request"
    assert events[0]["extra"]["reasons"] == decision["reasons"]
    assert events[0]["extra"]["policies"] == ["drift"]
    # The request operator recorded the request (the decision does not in branch mode).
    tags = MlflowHook().client.get_registered_model(model).tags
    assert tags["mlops.retrain.last_request_at"] == "2026-01-12T00:00:00+00:00"
    requested = xcom(run, "request")
    assert requested["requested"] is True and requested["recorded"] is True
    assert check_result(requested) == [] and (requested["status"], requested["passed"]) == (
        "requested",
        True,
    )
    assert requested["model"]["version"] == requested["champion_version"] == "1"
    assert requested["reasons"] == decision["reasons"]


def test_invalid_policy_fails_the_task(registry_home: Path) -> None:
    model = "retrain-bad-policy"
    asset = retrain_request_asset(model)
    _register_champion(model, START)
    dag = _decision_dag("retrain_bad_policy", model, asset.uri, {"cooldwon": "1d"})
    run = run_dag(dag, date(2026, 1, 10), conf={"drift": True})
    assert task_states(run)["decide"] == "failed"
    assert _events(asset.uri) == []


def test_operator_arguments_are_checked_at_parse_time() -> None:
    with pytest.raises(ValueError, match="mode must be"):
        RetrainDecisionOperator(task_id="x", registered_model_name="m", mode="sometimes")
    with pytest.raises(ValueError, match="retrain_task_ids"):
        RetrainDecisionOperator(task_id="y", registered_model_name="m", mode="branch")
    op = RetrainDecisionOperator(task_id="z", registered_model_name="m")
    assert [(a.name, a.uri) for a in op.outlets] == [("mlops.retrain-request",) * 2]
    # a former mlops:// URI names the same asset
    old = RetrainDecisionOperator(
        task_id="old", registered_model_name="m", retrain_asset="mlops://retrain-request/m"
    )
    assert old.outlets == [retrain_request_asset("m")]


def test_operator_arguments_follow_the_vocabulary() -> None:
    decide = RetrainDecisionOperator(task_id="d", registered_model_name="m")
    assert decide.target is None  # the champion's mlops.target: no domain default
    assert (decide.alias, decide.mlflow_conn_id, decide.aws_conn_id) == (
        "champion",
        "mlflow_default",
        "aws_default",
    )
    assert {"registered_model_name", "alias", "labels_data", "target", "aws_conn_id"} <= set(
        decide.template_fields
    )
    request = RetrainRequestOperator(task_id="r", registered_model_name="m")
    assert (request.alias, request.mlflow_conn_id) == ("champion", "mlflow_default")


def _labels(root: Path, days: int, column: str) -> str:
    """Label partitions ``dt=2026-01-0<d>`` with 4 labelled rows a day in ``column``."""
    import pyarrow as pa

    from mlops_provider.core import io

    base = root / "labels"
    for d in range(1, days + 1):
        day = datetime(2026, 1, d, tzinfo=UTC)
        table = pa.table(
            {
                "customer_id": [1, 2, 3, 4],
                column: [True, False, True, False],
                "event_timestamp": [day] * 4,
                "label_available_at": [day + timedelta(hours=1)] * 4,
            }
        )
        io.write_table(table, str(base / f"dt={day.date()}" / "part.parquet"))
    return str(base)


def test_data_volume_counts_the_label_the_champion_was_trained_on(
    registry_home: Path, tmp_path: Path
) -> None:
    """No ``target`` given: the label column is the champion's ``mlops.target`` (the provider
    used to count a ``churned`` column whatever the model predicted)."""
    labels = _labels(tmp_path, 5, column="upgraded")
    model = "retrain-volume"
    trained_until = {"mlops.training_data_end": "2026-01-02T00:00:00+00:00"}
    _register_champion(model, START, {"mlops.target": "upgraded", **trained_until})
    policy = {"min_new_labels": 10, "drift": False, "cooldown": "0s"}
    with _plain_dag("retrain_volume") as dag:
        RetrainDecisionOperator(
            task_id="decide", registered_model_name=model, labels_data=labels, policy=policy
        )
    run = run_dag(dag, date(2026, 1, 5))
    decision = xcom(run, "decide")
    assert task_states(run)["decide"] == "success", decision
    assert decision["evaluations"]["data_volume"]["details"]["new_labels"] == 16  # Jan 2..5
    assert decision["reasons"][0].startswith("data volume: 16 new labelled rows")
    assert decision["champion"]["target"] == "upgraded"

    unknown = "retrain-volume-no-target"
    _register_champion(unknown, START, trained_until)  # a run without mlops.target
    with _plain_dag("retrain_volume_no_target") as dag:
        RetrainDecisionOperator(
            task_id="decide", registered_model_name=unknown, labels_data=labels, policy=policy
        )
    assert task_states(run_dag(dag, date(2026, 1, 5)))["decide"] == "failed"


def test_unknown_label_column_is_an_error_naming_target(
    registry_home: Path, tmp_path: Path
) -> None:
    from mlops_provider.core.errors import ParameterError
    from mlops_provider.core.retraining import run_retrain_decision

    labels = _labels(tmp_path, 2, column="upgraded")
    model = "retrain-volume-unknown"
    _register_champion(model, START)
    with pytest.raises(ParameterError, match=r"parameter target: .*no 'mlops\.target' tag"):
        run_retrain_decision(
            MlflowHook().client,
            model,
            policy={"min_new_labels": 1},
            labels_data=labels,
            now=datetime(2026, 1, 3, tzinfo=UTC),
        )
    decision = run_retrain_decision(
        MlflowHook().client,
        model,
        policy={"min_new_labels": 1},
        labels_data=labels,
        target="upgraded",
        now=datetime(2026, 1, 3, tzinfo=UTC),
        record=False,
    )
    assert decision.retrain and decision.champion is not None


def _plain_dag(dag_id: str) -> Any:
    from airflow.sdk import DAG, CronDataIntervalTimetable

    return DAG(
        dag_id,
        schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
        start_date=START,
        catchup=False,
    )


def test_request_operator_given_a_no_retrain_decision_skips_with_a_result(
    registry_home: Path,
) -> None:
    model = "retrain-request-skip"
    asset = retrain_request_asset(model)
    holder = {"name": model, "version": "1", "run_id": "r1", "uri": f"models:/{model}/1"}
    with _plain_dag("retrain_request_skip") as dag:
        RetrainRequestOperator(
            task_id="request",
            registered_model_name=model,
            decision={"retrain": False, "reasons": [], "model": holder},
            retrain_asset=asset,
        )
    run = run_dag(dag, date(2026, 1, 10))
    assert task_states(run)["request"] == "skipped"
    skipped = xcom(run, "request")  # pushed before skipping
    assert check_result(skipped) == [] and (skipped["status"], skipped["passed"]) == (
        "skipped",
        True,
    )
    assert skipped["requested"] is False and skipped["model"] == holder
    assert skipped["champion_version"] == "1" and _events(asset.uri) == []
