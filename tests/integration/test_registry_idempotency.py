"""Reruns, races and crashes of promotions against a real ``mlflow server``.

- A rerun of one data interval as a new DAG run promotes and rolls back nothing twice.
- Concurrent promotions register one version per run and promote exactly one.
- A promotion killed (SIGKILL) at each crash point of the journal is completed by a retry in
  place and by a new DAG run for the same interval, leaving the registry as a clean run does.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from include.dag_runner import run_dag, task_states, xcom
from mlops_provider.core import registry
from mlops_provider.core.mlflow_target import MlflowTarget, ensure_experiment, make_client
from mlops_provider.core.registry import journal
from tests.integration.test_registry import aliases, fake_candidate, versions_of_run
from tests.registry_snapshot import snapshot

pytestmark = pytest.mark.integration

INTERVAL = "promotions/promote/-1/2026-01-01T00:00:00+00:00_2026-01-02T00:00:00+00:00"
FIRST_RUN = "promotions/scheduled__2026-01-01/promote/-1"
SECOND_RUN = "promotions/manual__2026-01-05/promote/-1"

PROMOTE_IN_CHILD = """
import json, sys
from mlops_provider.core import registry
from mlops_provider.core.mlflow_target import MlflowTarget, make_client
url, name, evaluation, by, interval = sys.argv[1:6]
client = make_client(MlflowTarget(tracking_uri=url))
registry.promote(client, name, json.loads(evaluation), by=by, interval=interval)
"""


def _client(server):
    return make_client(MlflowTarget(tracking_uri=server.url))


def _champion_and_candidate(client, name: str) -> dict[str, Any]:
    """Version 1 holds ``champion``; returns a passing candidate evaluated against it."""
    exp = ensure_experiment(client, f"idem-{name}")
    registry.promote(client, name, fake_candidate(client, exp, name), by="setup", interval="setup")
    return fake_candidate(client, exp, name, champion="1")


@pytest.fixture(scope="module")
def clean(mlflow_server) -> tuple[dict[str, Any], dict[str, Any]]:
    """Snapshots (with and without ``by``) of a promotion that was not interrupted."""
    client = _client(mlflow_server)
    name = f"clean-{uuid.uuid4().hex[:8]}"
    candidate = _champion_and_candidate(client, name)
    result = registry.promote(client, name, candidate, by=FIRST_RUN, interval=INTERVAL)
    assert (result.status, result.version, result.already_done) == ("promoted", "2", False)
    return snapshot(client, name), snapshot(client, name, drop_by=True)


def _killed_promotion(server, point: str) -> tuple[Any, str, dict[str, Any]]:
    """A registry where a promotion was SIGKILLed at ``point``."""
    client = _client(server)
    name = f"kill-{point.replace('.', '-')}-{uuid.uuid4().hex[:6]}"
    candidate = _champion_and_candidate(client, name)
    env = {**os.environ, "MLOPS_KILL_AT": point}
    args = [server.url, name, json.dumps(candidate), FIRST_RUN, INTERVAL]
    proc = subprocess.run(
        [sys.executable, "-c", PROMOTE_IN_CHILD, *args], env=env, capture_output=True, text=True
    )
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr[-2000:])
    return client, name, candidate


def test_the_crash_points_are_the_journal_steps() -> None:
    assert journal.POINTS[0] == "registry.locked" and journal.POINTS[-1] == "registry.cleared"
    assert len(set(journal.POINTS)) == len(journal.POINTS)
    assert registry.POINTS == journal.POINTS


@pytest.mark.parametrize("point", journal.POINTS)
def test_a_killed_promotion_is_completed_by_a_retry_in_place(mlflow_server, clean, point) -> None:
    client, name, candidate = _killed_promotion(mlflow_server, point)
    retry = registry.promote(client, name, candidate, by=FIRST_RUN, interval=INTERVAL)
    assert (retry.status, retry.version, retry.promoted) == ("promoted", "2", True)
    assert retry.already_done == (journal.POINTS.index(point) >= 2)
    assert snapshot(client, name) == clean[0]
    again = registry.promote(client, name, candidate, by=FIRST_RUN, interval=INTERVAL)
    assert again.already_done and snapshot(client, name) == clean[0]


@pytest.mark.parametrize("point", journal.POINTS)
def test_a_killed_promotion_is_completed_by_a_new_dag_run(mlflow_server, clean, point) -> None:
    client, name, candidate = _killed_promotion(mlflow_server, point)
    rerun = registry.promote(client, name, candidate, by=SECOND_RUN, interval=INTERVAL)
    assert rerun.version == "2" and rerun.status != "rejected"
    if journal.POINTS.index(point) >= 2:  # the intent was written: the first run's promotion
        assert (rerun.status, rerun.already_done, rerun.promoted) == ("unchanged", True, False)
    else:
        assert (rerun.status, rerun.already_done) == ("promoted", False)
    assert snapshot(client, name, drop_by=True) == clean[1]


def test_a_dead_holder_lock_is_taken_over_at_once(mlflow_server) -> None:
    client, name, candidate = _killed_promotion(mlflow_server, "registry.locked")
    lock = client.get_registered_model(registry.lock_name(name, "champion"))
    assert lock.tags["mlops.lock.holder"].rsplit("p", 1)[1].isdigit()
    result = registry.promote(
        client, name, candidate, by=FIRST_RUN, interval=INTERVAL, lock_timeout=0.5
    )
    assert result.status == "promoted"
    assert not client.search_registered_models(f"name LIKE '{name}.%'")


def test_eight_concurrent_promotions_of_one_run(mlflow_server) -> None:
    client = _client(mlflow_server)
    name = f"same-run-{uuid.uuid4().hex[:8]}"
    candidate = _champion_and_candidate(client, name)
    barrier = threading.Barrier(8)

    def promote(i: int) -> registry.RegistryResult:
        own = _client(mlflow_server)
        barrier.wait()
        return registry.promote(own, name, candidate, by=f"d/run{i}/promote/-1", interval=f"i{i}")

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(promote, range(8)))
    assert sorted(r.status for r in results) == ["promoted"] + ["unchanged"] * 7
    assert all(r.version == "2" for r in results)
    assert versions_of_run(client, name, candidate["candidate"]["run_id"]) == ["2"]
    events = registry.alias_history(client, name, "champion")
    assert [(e.version, e.replaced) for e in events] == [("1", None), ("2", "1")]
    assert aliases(client, name) == {"champion": "2", "previous_champion": "1"}


def test_eight_concurrent_promotions_of_eight_runs(mlflow_server) -> None:
    client = _client(mlflow_server)
    name = f"eight-runs-{uuid.uuid4().hex[:8]}"
    exp = ensure_experiment(client, f"idem-{name}")
    registry.promote(client, name, fake_candidate(client, exp, name), by="setup")
    evaluations = [fake_candidate(client, exp, name, champion="1") for _ in range(8)]
    barrier = threading.Barrier(8)

    def promote(i: int) -> str:
        own = _client(mlflow_server)
        barrier.wait()
        try:
            registry.promote(own, name, evaluations[i], by=f"d/r/promote/{i}", interval=f"i{i}")
            return "promoted"
        except registry.AliasConflictError:
            return "conflict"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(promote, range(8)))
    assert sorted(outcomes) == ["conflict"] * 7 + ["promoted"]
    statuses = {}
    for evaluation in evaluations:
        (version,) = versions_of_run(client, name, evaluation["candidate"]["run_id"])
        statuses[version] = client.get_model_version(name, version).tags["mlops.promotion_status"]
    winner = aliases(client, name)["champion"]
    assert statuses.pop(winner) == "promoted"
    assert sorted(statuses.values()) == ["lost_race"] * 7
    assert client.get_model_version(name, "1").tags["mlops.promotion_status"] == "demoted"
    assert len(registry.alias_history(client, name, "champion")) == 2


def test_a_rejected_candidate_is_registered_and_tagged(mlflow_server) -> None:
    client = _client(mlflow_server)
    name = f"rejected-{uuid.uuid4().hex[:8]}"
    exp = ensure_experiment(client, f"idem-{name}")
    registry.promote(client, name, fake_candidate(client, exp, name), by="setup")
    failing = fake_candidate(client, exp, name, champion="1", passed=False)
    for by in ("d/a/promote/-1", "d/b/promote/-1"):
        result = registry.promote(client, name, failing, by=by, interval=INTERVAL)
        assert (result.status, result.version) == ("rejected", "2")
    assert client.get_model_version(name, "2").tags["mlops.promotion_status"] == "rejected"
    assert aliases(client, name) == {"champion": "1"}


def test_a_failed_evaluation_of_the_champion_itself_leaves_it_promoted(mlflow_server) -> None:
    """The champion's own run evaluated against itself (equal metrics fail a gain rule) is
    reported, not tagged ``rejected``: it holds the alias."""
    client = _client(mlflow_server)
    name = f"self-{uuid.uuid4().hex[:8]}"
    exp = ensure_experiment(client, f"idem-{name}")
    first = fake_candidate(client, exp, name)
    registry.promote(client, name, first, by="setup")
    itself = {**first, "passed": False, "champion": {"version": "1"}, "cold_start": False}
    result = registry.promote(client, name, itself, by="d/b/promote/-1", interval=INTERVAL)
    assert (result.status, result.version, result.promoted) == ("rejected", "1", False)
    assert "already holds champion" in result.reason
    assert client.get_model_version(name, "1").tags["mlops.promotion_status"] == "promoted"
    assert aliases(client, name) == {"champion": "1"}


def test_a_rollback_rerun_for_one_interval_rolls_back_once(mlflow_server) -> None:
    client = _client(mlflow_server)
    name = f"rollback-{uuid.uuid4().hex[:8]}"
    exp = ensure_experiment(client, f"idem-{name}")
    registry.promote(client, name, fake_candidate(client, exp, name), by="setup", interval="a")
    second = fake_candidate(client, exp, name, champion="1")
    registry.promote(client, name, second, by="setup", interval="b")
    third = fake_candidate(client, exp, name, champion="2")
    registry.promote(client, name, third, by="setup", interval="c")
    first = registry.rollback(client, name, reason="canary", by="d/r1/rb/-1", interval="rb")
    assert (first.status, first.version, first.already_done) == ("rolled_back", "2", False)
    rerun = registry.rollback(client, name, reason="canary", by="d/r2/rb/-1", interval="rb")
    assert (rerun.status, rerun.version, rerun.already_done) == ("unchanged", "2", True)
    assert aliases(client, name) == {"champion": "2", "previous_champion": "1"}
    assert [e.event for e in registry.alias_history(client, name, "champion")] == [
        "promote",
        "promote",
        "promote",
        "rollback",
    ]
    tags = {v: client.get_model_version(name, v).tags["mlops.promotion_status"] for v in "123"}
    assert tags == {"1": "demoted", "2": "restored", "3": "rolled_back"}


def test_a_dag_rerun_for_one_interval_changes_nothing(
    airflow_db, mlflow_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk import DAG

    from mlops_provider.operators.registry import PromoteModelOperator, RollbackModelOperator

    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT",
        json.dumps({"conn_type": "mlflow", "host": mlflow_server.url}),
    )
    client = _client(mlflow_server)
    name = f"rerun-{uuid.uuid4().hex[:8]}"
    candidate = _champion_and_candidate(client, name)
    with DAG(
        "registry_rerun",
        schedule="@daily",
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
        default_args={"retries": 0, "retry_delay": timedelta(seconds=0)},
    ) as dag:
        promote = PromoteModelOperator(
            task_id="promote", registered_model_name=name, evaluation=candidate
        )
        rollback = RollbackModelOperator(
            task_id="rollback", registered_model_name=name, reason="canary errors"
        )
        promote >> rollback
    first = run_dag(dag, date(2026, 1, 12))
    assert task_states(first) == {"promote": "success", "rollback": "success"}
    assert (xcom(first, "promote")["status"], xcom(first, "promote")["version"]) == (
        "promoted",
        "2",
    )
    assert xcom(first, "rollback")["status"] == "rolled_back"
    before = snapshot(client, name)
    second = run_dag(dag, date(2026, 1, 12))
    assert second.run_id != first.run_id
    assert task_states(second) == {"promote": "success", "rollback": "success"}
    out = xcom(second, "promote")
    assert (out["status"], out["already_done"], out["version"]) == ("unchanged", True, "2")
    back = xcom(second, "rollback")
    assert (back["status"], back["already_done"], back["version"]) == ("unchanged", True, "1")
    assert snapshot(client, name) == before
    assert aliases(client, name) == {"champion": "1"}
    assert [e.event for e in registry.alias_history(client, name, "champion")] == [
        "promote",
        "promote",
        "rollback",
    ]
    assert registry.alias_history(client, name, "champion")[1].interval.startswith(
        "registry_rerun/promote/-1/2026-01-1"
    )


ROLLBACK_IN_CHILD = """
import sys
from mlops_provider.core import registry
from mlops_provider.core.mlflow_target import MlflowTarget, make_client
url, name, by, interval = sys.argv[1:5]
client = make_client(MlflowTarget(tracking_uri=url))
registry.rollback(client, name, reason="canary", by=by, interval=interval)
"""


def _promoted_twice(client, name: str) -> None:
    candidate = _champion_and_candidate(client, name)
    registry.promote(client, name, candidate, by="setup", interval="b")


@pytest.mark.parametrize("point", ["registry.intent", "registry.history"])
def test_a_killed_rollback_is_completed_once_by_a_new_dag_run(mlflow_server, point) -> None:
    client = _client(mlflow_server)
    clean_name, name = (f"rb-{k}-{uuid.uuid4().hex[:6]}" for k in ("clean", "kill"))
    _promoted_twice(client, clean_name)
    registry.rollback(client, clean_name, reason="canary", by="d/r1/rb/-1", interval="rb")
    _promoted_twice(client, name)
    proc = subprocess.run(
        [sys.executable, "-c", ROLLBACK_IN_CHILD, mlflow_server.url, name, "d/r1/rb/-1", "rb"],
        env={**os.environ, "MLOPS_KILL_AT": point},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr[-2000:])
    rerun = registry.rollback(client, name, reason="canary", by="d/r2/rb/-1", interval="rb")
    assert (rerun.status, rerun.version, rerun.already_done) == ("unchanged", "1", True)
    assert snapshot(client, name) == snapshot(client, clean_name)
    assert aliases(client, name) == {"champion": "1"}
