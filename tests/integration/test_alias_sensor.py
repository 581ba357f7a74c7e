"""ModelAliasSensor (poke and deferrable) and ModelAliasTrigger against the embedded MLflow store."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from include.dag_runner import run_dag, task_states, xcom
from mlops_provider.core import registry
from mlops_provider.core.mlflow_target import MlflowTarget, ensure_experiment, make_client

pytestmark = pytest.mark.integration


@pytest.fixture
def store(mlops_home: Path):
    """The embedded store the hook falls back to, with model ``churn`` (v1 champion, v2 idle)."""
    target = MlflowTarget(
        tracking_uri=f"sqlite:///{mlops_home / 'mlflow' / 'mlflow.db'}",
        artifact_location=(mlops_home / "mlflow" / "artifacts").as_uri(),
    )
    client = make_client(target)
    exp = ensure_experiment(client, "sensor", target.artifact_location)
    client.create_registered_model("churn")
    for _ in range(2):
        run = client.create_run(exp)
        client.create_model_version("churn", f"runs:/{run.info.run_id}/model", run.info.run_id)
    client.set_registered_model_alias("churn", "champion", "1")
    return target, client


def test_check_alias_semantics(store) -> None:
    from mlops_provider.core.models import ModelNotFoundError

    _, client = store
    # a missing model or alias is a typo (named, with what exists), or awaited when asked to
    with pytest.raises(
        ModelNotFoundError,
        match=r"registered model 'chrun' does not exist \(registered models: 'churn'\); did "
        r"you mean 'churn'\? Pass wait_for_creation=True",
    ):
        registry.check_alias(client, "chrun", "champion")
    with pytest.raises(
        ModelNotFoundError,
        match=r"'churn' has no alias 'champoin' \(its aliases: @champion -> version 1\); did "
        r"you mean 'champion'\?",
    ):
        registry.check_alias(client, "churn", "champoin")
    missing = registry.check_alias(client, "no-such-model", "champion", wait_for_creation=True)
    assert not missing.done and not missing.model_exists and "does not exist" in missing.message
    no_alias = registry.check_alias(client, "churn", "challenger", wait_for_creation=True)
    assert not no_alias.done and "no alias 'challenger'" in no_alias.message
    assert registry.check_alias(client, "churn", "champion").done  # exists: enough
    same = registry.check_alias(client, "churn", "champion", not_version="1")
    assert not same.done and "still points at version 1" in same.message
    future = datetime.now(timezone.utc) + timedelta(hours=1)
    assert not registry.check_alias(client, "churn", "champion", newer_than=future).done
    past = registry.check_alias(client, "churn", "champion", newer_than="2020-01-01T00:00:00")
    assert past.done and past.version == "1" and past.changed_at


def test_trigger_serializes_and_fires_once(store) -> None:
    from airflow.sdk.module_loading import import_string

    from mlops_provider.triggers.mlflow import ModelAliasTrigger

    target, client = store
    trigger = ModelAliasTrigger(
        registered_model_name="churn",
        alias="champion",
        tracking_uri=target.tracking_uri,
        registry_uri=target.tracking_uri,
        not_version="1",
        wait_for_creation=True,
        poke_interval=0.2,
    )
    classpath, kwargs = trigger.serialize()
    assert kwargs["wait_for_creation"] is True
    json.dumps(kwargs)  # JSON-serializable
    rebuilt = import_string(classpath)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)

    mover = threading.Timer(1.0, client.set_registered_model_alias, ("churn", "champion", "2"))

    async def first_events() -> list:
        events = []
        async for event in rebuilt.run():
            events.append(event)
        return events

    mover.start()
    try:
        events = asyncio.run(asyncio.wait_for(first_events(), timeout=60))
    finally:
        mover.cancel()
    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "success"
    assert (
        payload["result"]["version"] == "2" and payload["result"]["model_uri"] == "models:/churn/2"
    )


def test_trigger_ends_at_once_on_a_missing_alias_unless_waiting_for_its_creation(store) -> None:
    from mlops_provider.triggers.mlflow import ModelAliasTrigger

    target, client = store
    common = {"registered_model_name": "churn", "alias": "champoin", "poke_interval": 0.2}
    typo = ModelAliasTrigger(tracking_uri=target.tracking_uri, **common)

    async def events(trigger: ModelAliasTrigger) -> list:
        return [event async for event in trigger.run()]

    (event,) = asyncio.run(asyncio.wait_for(events(typo), timeout=60))
    assert event.payload["status"] == "error"
    assert "did you mean 'champion'" in event.payload["message"]
    waiting = ModelAliasTrigger(tracking_uri=target.tracking_uri, wait_for_creation=True, **common)
    creator = threading.Timer(1.0, client.set_registered_model_alias, ("churn", "champoin", "2"))
    creator.start()
    try:
        (event,) = asyncio.run(asyncio.wait_for(events(waiting), timeout=60))
    finally:
        creator.cancel()
    assert event.payload["status"] == "success" and event.payload["result"]["version"] == "2"


def test_sensor_fails_fast_on_a_typo_and_names_bad_parameters(store) -> None:
    from mlops_provider.exceptions import MlopsError
    from mlops_provider.sensors.mlflow import ModelAliasSensor

    for deferrable in (False, True):
        typo = ModelAliasSensor(
            task_id="typo", registered_model_name="chrun", deferrable=deferrable, timeout=600
        )
        with pytest.raises(MlopsError, match=r"'chrun' does not exist.*did you mean 'churn'"):
            typo.execute({})
    awaiting = ModelAliasSensor(
        task_id="awaiting", registered_model_name="fraud", wait_for_creation="true"
    )
    assert awaiting.poke({}).is_done is False  # "not yet": awaited until the timeout
    garbage = ModelAliasSensor(
        task_id="garbage", registered_model_name="churn", newer_than="last tuesday"
    )
    with pytest.raises(MlopsError, match=r"parameter newer_than: .*'last tuesday'"):
        garbage.poke({})


def test_trigger_reports_an_unreachable_server(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_provider.triggers.mlflow import ModelAliasTrigger
    from tests.conftest import free_port

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    port = free_port()
    trigger = ModelAliasTrigger(
        registered_model_name="churn", alias="champion", tracking_uri=f"http://127.0.0.1:{port}"
    )

    async def first() -> object:
        async for event in trigger.run():
            return event
        return None

    event = asyncio.run(asyncio.wait_for(first(), timeout=60))
    assert event.payload["status"] == "error" and str(port) in event.payload["message"]


def test_deferrable_sensor_polls_once_before_deferring(store) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    from mlops_provider.exceptions import MlopsError
    from mlops_provider.sensors.mlflow import ModelAliasSensor
    from mlops_provider.triggers.mlflow import ModelAliasTrigger

    target, _ = store
    done = ModelAliasSensor(task_id="s1", registered_model_name="churn", deferrable=True)
    assert done.execute({})["version"] == "1"  # already satisfied: no deferral
    waiting = ModelAliasSensor(
        task_id="s2",
        registered_model_name="churn",
        not_version=1,
        newer_than=datetime(2026, 1, 1, tzinfo=timezone.utc),
        deferrable=True,
        poke_interval=5,
        timeout=120,
    )
    with pytest.raises(TaskDeferred) as deferred:
        waiting.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, ModelAliasTrigger)
    _, kwargs = trigger.serialize()
    assert kwargs["tracking_uri"] == target.tracking_uri
    assert kwargs["not_version"] == "1" and kwargs["newer_than"].startswith("2026-01-01")
    assert kwargs["mlflow_conn_id"] == "mlflow_default" and kwargs["poke_interval"] == 5
    assert deferred.value.timeout == timedelta(seconds=120)
    assert deferred.value.method_name == "execute_complete"
    with pytest.raises(MlopsError, match="server gone"):
        waiting.execute_complete({}, {"status": "error", "message": "server gone"})
    result = {"version": "2", "registered_model_name": "churn"}
    assert waiting.execute_complete({}, {"status": "success", "result": result}) == result


def test_sensors_in_a_dag(airflow_db, store, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk import DAG

    from mlops_provider.sensors.mlflow import ModelAliasSensor
    from mlops_provider.triggers.mlflow import ModelAliasTrigger

    _, client = store
    first_poke = threading.Event()
    trigger_checks = {"n": 0}
    real_check = registry.check_alias
    real_trigger_check = ModelAliasTrigger._check

    def observed_check(*args, **kwargs):
        first_poke.set()
        return real_check(*args, **kwargs)

    def counted_trigger_check(self):
        trigger_checks["n"] += 1
        return real_trigger_check(self)

    monkeypatch.setattr(registry, "check_alias", observed_check)
    monkeypatch.setattr(ModelAliasTrigger, "_check", counted_trigger_check)

    def promote_later() -> None:
        first_poke.wait(timeout=120)
        threading.Event().wait(1.5)
        client.set_registered_model_alias("churn", "champion", "2")

    with DAG(
        "alias_sensors",
        schedule="@daily",
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
    ) as dag:
        deferred = ModelAliasSensor(
            task_id="deferred",
            registered_model_name="churn",
            not_version="{{ dag_run.conf.get('seen_version', '1') }}",
            deferrable=True,
            poke_interval=0.5,
            timeout=120,
        )
        poked = ModelAliasSensor(
            task_id="poked",
            registered_model_name="churn",
            not_version=1,
            newer_than="{{ data_interval_start }}",
            mode="poke",
            poke_interval=0.5,
            timeout=60,
        )
        deferred >> poked
    mover = threading.Thread(target=promote_later, daemon=True)
    mover.start()
    dr = run_dag(dag, date(2026, 1, 12))
    mover.join(timeout=5)
    assert task_states(dr) == {"deferred": "success", "poked": "success"}
    assert trigger_checks["n"] >= 1  # the wait happened in the trigger
    for task_id in ("deferred", "poked"):
        out = xcom(dr, task_id)
        assert out["version"] == "2" and out["model_uri"] == "models:/churn/2", out
