"""core.runs: which RUNNING runs of earlier attempts are abandoned (closed FAILED with a reason)
and which may still be worked on, against an embedded MLflow store; and how training acts on
them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from mlops_provider.core import io, runs
from mlops_provider.core.mlflow_target import MlflowTarget, make_client
from mlops_provider.core.processes import host_id, this_owner
from mlops_provider.core.times import now_ms
from mlops_provider.core.training import (
    TASK_KEY_TAG,
    TrainingConfig,
    TrainingInProgressError,
    train_and_log,
)

HOUR_MS = 3600 * 1000


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("stale-mlflow")
    target = MlflowTarget(
        tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        artifact_location=(root / "artifacts").as_uri(),
    )
    return make_client(target)


@pytest.fixture(scope="module")
def experiment(client) -> str:
    return str(client.create_experiment("stale-rules"))


@pytest.fixture(scope="module")
def dead_owner() -> str:
    """The owner string of a process of this host that has exited."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          check=True, capture_output=True, text=True)  # fmt: skip
    return f"{host_id()}p{int(proc.stdout)}"


@pytest.fixture
def live_owner() -> Iterator[str]:
    """The owner string of a process of this host that still runs (until the test ends)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        yield f"{host_id()}p{proc.pid}"
    finally:
        proc.kill()
        proc.wait()


def _running(client, experiment: str, owner: str | None, *, age_hours: float = 0.0):
    tags = {runs.OWNER_TAG: owner} if owner else {}
    start = now_ms() - int(age_hours * HOUR_MS)
    created = client.create_run(experiment, start_time=start, tags=tags)
    return client.get_run(created.info.run_id)


def test_dead_owner_is_closed_with_the_reason(client, experiment: str, dead_owner: str) -> None:
    run = _running(client, experiment, dead_owner)
    settled = runs.settle_running(client, [run])
    assert settled.closed == [run.info.run_id] and settled.active == []
    after = client.get_run(run.info.run_id)
    assert after.info.status == "FAILED"
    reason = after.data.tags[runs.CLOSED_REASON_TAG]
    assert reason == f"left RUNNING by an earlier attempt (owner {dead_owner}, dead)"


def test_live_owner_on_this_host_is_left_whatever_its_age(
    client, experiment: str, live_owner: str
) -> None:
    run = _running(client, experiment, live_owner, age_hours=48)
    assert runs.stale_reason(run) is None
    settled = runs.settle_running(client, [run])
    assert settled.closed == [] and [r.info.run_id for r in settled.active] == [run.info.run_id]
    after = client.get_run(run.info.run_id)
    assert after.info.status == "RUNNING" and runs.CLOSED_REASON_TAG not in after.data.tags


def test_this_process_is_an_earlier_attempt(client, experiment: str) -> None:
    run = _running(client, experiment, this_owner())
    assert "in this process" in (runs.stale_reason(run) or "")


@pytest.mark.parametrize("owner", ["otherhost7p4242", None], ids=["other-host", "no-owner"])
def test_unknown_owner_is_closed_only_when_older_than_the_bound(
    client, experiment: str, owner: str | None
) -> None:
    young = _running(client, experiment, owner, age_hours=1)
    old = _running(client, experiment, owner, age_hours=7)
    assert runs.stale_reason(young) is None
    assert runs.stale_reason(young, stale_after=1800) is not None
    settled = runs.settle_running(client, [young, old])  # default bound: 6 hours
    assert settled.closed == [old.info.run_id]
    assert [r.info.run_id for r in settled.active] == [young.info.run_id]
    reason = client.get_run(old.info.run_id).data.tags[runs.CLOSED_REASON_TAG]
    assert ("not on this host" if owner else "no owner recorded") in reason
    assert "more than 6 h" in reason
    assert client.get_run(young.info.run_id).info.status == "RUNNING"


def test_terminated_runs_are_never_touched(client, experiment: str, dead_owner: str) -> None:
    run = _running(client, experiment, dead_owner)
    client.set_terminated(run.info.run_id, "FINISHED")
    finished = client.get_run(run.info.run_id)
    assert runs.stale_reason(finished) is None
    assert runs.settle_running(client, [finished]).closed == []
    assert client.get_run(run.info.run_id).info.status == "FINISHED"


def test_training_refuses_while_a_live_attempt_runs_and_closes_a_dead_one(
    tmp_path: Path, live_owner: str, dead_owner: str
) -> None:
    from include.simulator import ChurnSimulator

    target = MlflowTarget(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        artifact_location=(tmp_path / "artifacts").as_uri(),
    )
    data = str(tmp_path / "train.parquet")
    io.write_table(ChurnSimulator(seed=5, n_customers=300).labelled(date(2026, 1, 1), 2), data)
    cfg = TrainingConfig(
        target="churned",
        estimator="sklearn.linear_model.LogisticRegression",
        estimator_params={"max_iter": 200},
    )
    key = "dag/train/-1/2026-01-01T00:00:00+00:00_2026-01-02T00:00:00+00:00"
    client = make_client(target)
    exp = str(client.create_experiment("stale-training"))
    busy = client.create_run(exp, tags={TASK_KEY_TAG: key, runs.OWNER_TAG: live_owner})
    with pytest.raises(TrainingInProgressError, match=busy.info.run_id):
        train_and_log(target, data, cfg, experiment_name="stale-training", task_key=key)
    assert len(runs.find_runs(client, exp, {TASK_KEY_TAG: key})) == 1  # nothing created
    # the writer is gone (its run says so): the next attempt closes its run and trains
    client.set_tag(busy.info.run_id, runs.OWNER_TAG, dead_owner)
    result = train_and_log(target, data, cfg, experiment_name="stale-training", task_key=key)
    assert not result.reused
    new = client.get_run(result.run_id)
    assert new.info.status == "FINISHED" and new.data.tags[runs.OWNER_TAG] == this_owner()
    old = client.get_run(busy.info.run_id)
    assert old.info.status == "FAILED" and "dead" in old.data.tags[runs.CLOSED_REASON_TAG]
    assert old.data.tags["mlops.superseded_by"] == result.run_id


def test_runs_of_the_dag_run_keyed_provider_are_left_alone(tmp_path: Path) -> None:
    """Runs of earlier provider versions carry ``dag_id/run_id/task_id/map_index`` and no
    owner: a training keyed by the interval neither reuses, closes nor supersedes them."""
    from include.simulator import ChurnSimulator

    target = MlflowTarget(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                          artifact_location=(tmp_path / "artifacts").as_uri())  # fmt: skip
    data = str(tmp_path / "train.parquet")
    io.write_table(ChurnSimulator(seed=6, n_customers=300).labelled(date(2026, 1, 1), 2), data)
    client = make_client(target)
    exp = str(client.create_experiment("old-keys"))
    old_key = "dag/scheduled__2026-01-02T00:00:00+00:00/train/-1"
    old = client.create_run(exp, tags={TASK_KEY_TAG: old_key})  # RUNNING, no owner
    cfg = TrainingConfig(target="churned", estimator="sklearn.linear_model.LogisticRegression")
    key = "dag/train/-1/2026-01-01T00:00:00+00:00_2026-01-02T00:00:00+00:00"
    result = train_and_log(target, data, cfg, experiment_name="old-keys", task_key=key)
    assert not result.reused
    untouched = client.get_run(old.info.run_id)
    assert untouched.info.status == "RUNNING" and untouched.data.tags[TASK_KEY_TAG] == old_key
    assert "mlops.superseded_by" not in untouched.data.tags


def test_a_concurrent_attempt_that_finished_meanwhile_is_superseded(tmp_path: Path) -> None:
    """Two attempts for one key are not serialised: the one that finishes last keeps the key,
    the other (finished while it trained) is superseded."""
    from include.simulator import ChurnSimulator

    target = MlflowTarget(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
                          artifact_location=(tmp_path / "artifacts").as_uri())  # fmt: skip
    data = str(tmp_path / "train.parquet")
    io.write_table(ChurnSimulator(seed=7, n_customers=300).labelled(date(2026, 1, 1), 2), data)
    client = make_client(target)
    cfg = TrainingConfig(target="churned", estimator="sklearn.linear_model.LogisticRegression")
    key = "dag/train/-1/2026-01-01T00:00:00+00:00_2026-01-02T00:00:00+00:00"
    other: list[str] = []

    def concurrent_attempt_finishes(run_id: str, experiment_id: str) -> None:
        # while this attempt logs, another one (started before it) finishes its own run
        if not other:
            run = client.create_run(experiment_id, tags={TASK_KEY_TAG: key})
            client.set_terminated(run.info.run_id, "FINISHED")
            other.append(run.info.run_id)

    runs.add_run_listener(concurrent_attempt_finishes)
    try:
        result = train_and_log(target, data, cfg, experiment_name="concurrent", task_key=key)
    finally:
        runs.remove_run_listener(concurrent_attempt_finishes)
    exp = client.get_experiment_by_name("concurrent").experiment_id
    assert [r.info.run_id for r in runs.find_runs(client, exp, {TASK_KEY_TAG: key})] == [
        result.run_id
    ]
    superseded = client.get_run(other[0])
    assert superseded.info.status == "FINISHED"
    assert superseded.data.tags["mlops.superseded_by"] == result.run_id
