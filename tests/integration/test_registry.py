"""Registry promotion, rollback, history and concurrency against real MLflow stores.

Candidates are runs with a (metadata-only) logged model: registration and aliases do not read
model files, and creating them takes two calls instead of a training run.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from include.dag_runner import run_dag, task_states, xcom
from mlops_provider.core import registry
from mlops_provider.core.mlflow_target import MlflowTarget, ensure_experiment, make_client
from mlops_provider.core.models import alias_holder
from mlops_provider.core.registry import journal
from mlops_provider.core.results import check_result

pytestmark = pytest.mark.integration


def fake_candidate(
    client, experiment_id: str, name: str, champion: str | None = None, passed: bool = True
) -> dict[str, Any]:
    """A finished run with a logged model, and the evaluation dict that names it (without a
    champion: an explicit cold start, as ``EvaluateModelOperator(cold_start=True)`` says)."""
    run = client.create_run(experiment_id)
    run_id = run.info.run_id
    model = client.create_logged_model(experiment_id, name="model", source_run_id=run_id)
    client.finalize_logged_model(model.model_id, "READY")
    client.set_tag(run_id, "mlops.model_id", model.model_id)
    client.set_terminated(run_id)
    return {
        "passed": passed,
        "reason": "passed: test gate" if passed else "rejected: roc_auc 0.51 < minimum 0.8",
        "registered_model_name": name,
        "alias": "champion",
        "candidate": {
            "run_id": run_id,
            "model_id": model.model_id,
            "model_uri": f"models:/{model.model_id}",
        },
        "champion": None if champion is None else {"version": str(champion)},
        "cold_start": champion is None,
    }


def aliases(client, name: str) -> dict[str, str]:
    return {k: str(v) for k, v in client.get_registered_model(name).aliases.items()}


def versions_of_run(client, name: str, run_id: str) -> list[str]:
    found = client.search_model_versions(
        f"name = '{name}' and tags.`{registry.SOURCE_RUN_TAG}` = '{run_id}'"
    )
    return [str(v.version) for v in found]


@pytest.fixture
def embedded(mlops_home: Path):
    target = MlflowTarget(
        tracking_uri=f"sqlite:///{mlops_home / 'mlflow' / 'mlflow.db'}",
        artifact_location=(mlops_home / "mlflow" / "artifacts").as_uri(),
    )
    client = make_client(target)
    return client, ensure_experiment(client, "registry", target.artifact_location)


def test_promotion_rollback_and_history(embedded) -> None:
    client, exp = embedded
    name = "churn"
    assert registry.alias_holder_at(client, name, "champion", datetime.now(timezone.utc)) is None
    before = datetime.now(timezone.utc)
    first = registry.promote(client, name, fake_candidate(client, exp, name), by="d/r1/promote/-1")
    assert (first.promoted, first.version, first.previous_version) == (True, "1", None)
    assert first.created_version and "evaluation passed" in first.reason
    time.sleep(0.02)
    between = datetime.now(timezone.utc)
    time.sleep(0.02)
    second = registry.promote(
        client, name, fake_candidate(client, exp, name, champion="1"), by="d/r2/promote/-1"
    )
    assert (second.version, second.previous_version) == ("2", "1")
    assert aliases(client, name) == {"champion": "2", "previous_champion": "1"}
    tags = client.get_model_version(name, "2").tags
    assert tags["mlops.promoted_by"] == "d/r2/promote/-1"
    assert tags["mlops.promotion_reason"] == "evaluation passed: test gate"
    assert tags["mlops.promotion_forced"] == "false" and tags["mlops.promoted_at"]
    assert client.get_model_version(name, "1").tags["mlops.replaced_by_version"] == "2"

    # which version was champion when?
    after = datetime.now(timezone.utc)
    assert registry.alias_holder_at(client, name, "champion", before) is None
    assert registry.alias_holder_at(client, name, "champion", between) == "1"
    assert registry.alias_holder_at(client, name, "champion", after) == "2"
    assert registry.alias_holder_at(client, name, "champion", after.isoformat()) == "2"
    assert registry.alias_holder_at(client, name, "champion", date(2000, 1, 1)) is None

    # rollback restores v1; v1 had no previous holder, so previous_champion goes away
    back = registry.rollback(client, name, reason="v2 misbehaves", by="d/r3/rollback/-1")
    assert (back.version, back.previous_version, back.action) == ("1", "2", "rollback")
    assert aliases(client, name) == {"champion": "1"}
    assert client.get_model_version(name, "2").tags["mlops.rollback_reason"] == "v2 misbehaves"
    again = registry.rollback(client, name, reason="v2 misbehaves", by="d/r3/rollback/-1")
    assert again.already_done and aliases(client, name) == {"champion": "1"}  # a retry
    with pytest.raises(registry.NoPreviousHolderError, match="no previous holder"):
        registry.rollback(client, name, reason="again", by="d/r4/rollback/-1")
    events = registry.alias_history(client, name, "champion")
    assert [(e.event, e.version, e.replaced) for e in events] == [
        ("promote", "1", None),
        ("promote", "2", "1"),
        ("rollback", "1", "2"),
    ]
    assert registry.alias_holder_at(client, name, "champion", datetime.now(timezone.utc)) == "1"
    # explicit target
    to2 = registry.rollback(client, name, to_version=2, reason="v2 fixed", by="d/r5/rollback/-1")
    assert to2.version == "2" and aliases(client, name)["champion"] == "2"
    assert aliases(client, name).get("previous_champion") == "1"  # as when v2 was promoted


def test_compare_and_set_refuses_a_moved_alias(embedded) -> None:
    client, exp = embedded
    name = "cas"
    registry.promote(client, name, fake_candidate(client, exp, name), by="setup")
    stale = fake_candidate(client, exp, name, champion="1")
    registry.promote(client, name, fake_candidate(client, exp, name, champion="1"), by="other")
    with pytest.raises(
        registry.AliasConflictError, match=r"evaluated against 1.*now points at version 2"
    ):
        registry.promote(client, name, stale, by="late")
    assert aliases(client, name)["champion"] == "2"
    # cold-start evaluation, but a champion appeared meanwhile
    with pytest.raises(registry.AliasConflictError, match="no holder"):
        registry.promote(client, name, fake_candidate(client, exp, name), by="cold")


def test_worse_model_is_never_promoted_and_force_needs_a_reason(embedded) -> None:
    client, exp = embedded
    name = "gate"
    registry.promote(client, name, fake_candidate(client, exp, name), by="setup")
    worse = fake_candidate(client, exp, name, champion="1", passed=False)
    result = registry.promote(client, name, worse, by="d/r/promote/-1")
    assert not result.promoted and result.version == "2" and "evaluation failed" in result.reason
    assert aliases(client, name) == {"champion": "1"}
    another = fake_candidate(client, exp, name, champion="1", passed=False)
    with pytest.raises(registry.PromotionRefusedError, match="needs a reason"):
        registry.promote(client, name, another, force=True, by="d/r/force/-1")
    assert versions_of_run(client, name, another["candidate"]["run_id"]) == []  # nothing done
    forced = registry.promote(
        client, name, another, force=True, reason="hotfix for INC-42", by="d/r/force/-1"
    )
    assert forced.promoted and forced.forced and "INC-42" in forced.reason
    tags = client.get_model_version(name, forced.version).tags
    assert tags["mlops.promotion_forced"] == "true" and "INC-42" in tags["mlops.promotion_reason"]
    with pytest.raises(registry.PromotionRefusedError, match="alias 'champion', not 'challenger'"):
        registry.promote(client, name, worse, alias="challenger", by="x")
    with pytest.raises(registry.PromotionRefusedError, match="does not exist"):
        registry.rollback(client, "no-such-model", reason="x")
    assert alias_holder(client, "no-such-model", "champion") is None
    assert alias_holder(client, name, "no-such-alias") is None


def test_a_misspelt_model_or_alias_or_a_missing_run_creates_nothing(embedded) -> None:
    """A registered model or alias that does not exist is created only for an explicit cold
    start; the refusal names what exists. A candidate run that does not exist is refused
    before anything is registered. A rollback never creates an alias."""
    from mlops_provider.core.models import ModelNotFoundError

    client, exp = embedded
    registry.promote(client, "churn", fake_candidate(client, exp, "churn"), by="setup")
    models_before = {m.name for m in client.search_registered_models()}
    typo = dict(fake_candidate(client, exp, "chrun"), cold_start=False)
    with pytest.raises(
        ModelNotFoundError,
        match=r"registered model 'chrun' does not exist \(registered models: 'churn'\); did you "
        r"mean 'churn'\? The evaluation was not an explicit cold start",
    ):
        registry.promote(client, "chrun", typo, by="typo")
    alias_typo = dict(fake_candidate(client, exp, "churn"), alias="champoin", cold_start=False)
    with pytest.raises(
        ModelNotFoundError,
        match=r"has no alias 'champoin' \(its aliases: @champion -> version 1\); did you mean "
        r"'champion'\?",
    ):
        registry.promote(client, "churn", alias_typo, alias="champoin", by="typo")
    missing = "0" * 32
    gone = dict(fake_candidate(client, exp, "churn-first"), candidate={"run_id": missing})
    with pytest.raises(
        ModelNotFoundError,
        match=f"parameter evaluation: the candidate's run '{missing}' does not exist",
    ):
        registry.promote(client, "churn-first", gone, by="gone")
    with pytest.raises(registry.PromotionRefusedError, match=r"no alias 'champoin'.*never creates"):
        registry.rollback(client, "churn", alias="champoin", to_version=1, reason="x", by="x")
    assert {m.name for m in client.search_registered_models()} == models_before
    assert aliases(client, "churn") == {"champion": "1"}
    assert versions_of_run(client, "churn", alias_typo["candidate"]["run_id"]) == []


def test_retry_after_failure_past_the_alias_move_completes_records(
    embedded, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, exp = embedded
    name = "partial"
    registry.promote(client, name, fake_candidate(client, exp, name), by="setup")
    candidate = fake_candidate(client, exp, name, champion="1")

    def fail_after_previous(point: str) -> None:
        if point == "registry.previous":
            raise OSError("boom")

    monkeypatch.setattr(journal, "failpoint", fail_after_previous)
    with pytest.raises(OSError, match="boom"):
        registry.promote(client, name, candidate, by="d/r/promote/-1")
    assert aliases(client, name) == {"champion": "2", "previous_champion": "1"}
    assert journal.pending(client, name, "champion") is not None
    monkeypatch.undo()
    retry = registry.promote(client, name, candidate, by="d/r/promote/-1")
    assert retry.already_done and retry.promoted and retry.version == "2"
    assert versions_of_run(client, name, candidate["candidate"]["run_id"]) == ["2"]
    events = registry.alias_history(client, name, "champion")
    assert [(e.version, e.replaced) for e in events] == [("1", None), ("2", "1")]
    assert journal.pending(client, name, "champion") is None
    again = registry.promote(client, name, candidate, by="d/r/promote/-1")
    assert again.already_done and len(registry.alias_history(client, name, "champion")) == 2


def test_stale_lock_is_taken_over_and_a_live_lock_times_out(embedded) -> None:
    client, exp = embedded
    name = "locks"
    lock = registry.lock_name(name, "champion")
    client.create_registered_model(
        lock,
        tags={
            "mlops.lock.token": "dead-token",
            "mlops.lock.owner": "crashed-worker",
            "mlops.lock.expires_at": str(time.time() - 5),
        },
    )
    result = registry.promote(client, name, fake_candidate(client, exp, name), by="after-crash")
    assert result.promoted
    assert not client.search_registered_models(f"name LIKE '{name}.%'")  # lock and guard gone
    client.create_registered_model(
        lock,
        tags={
            "mlops.lock.token": "live-token",
            "mlops.lock.owner": "busy-worker",
            "mlops.lock.expires_at": str(time.time() + 600),
        },
    )
    started = time.monotonic()
    with pytest.raises(registry.LockTimeoutError, match="held by busy-worker"):
        registry.promote(
            client, name, fake_candidate(client, exp, name, champion="1"), by="x", lock_timeout=1.0
        )
    assert time.monotonic() - started < 10
    assert aliases(client, name) == {"champion": "1"}


def _concurrent_promotions(target: MlflowTarget, name: str, n: int = 8) -> None:
    client = make_client(target)
    exp = ensure_experiment(client, f"concurrency-{name}")
    registry.promote(client, name, fake_candidate(client, exp, name), by="setup")
    evaluations = [fake_candidate(client, exp, name, champion="1") for _ in range(n)]
    barrier = threading.Barrier(n)

    def promote(i: int) -> tuple[str, Any]:
        own = make_client(target)
        barrier.wait()
        try:
            return "promoted", registry.promote(own, name, evaluations[i], by=f"d/r/promote/{i}")
        except registry.AliasConflictError as err:
            return "conflict", err

    with ThreadPoolExecutor(max_workers=n) as pool:
        outcomes = list(pool.map(promote, range(n)))
    winners = [r for kind, r in outcomes if kind == "promoted"]
    conflicts = [r for kind, r in outcomes if kind == "conflict"]
    assert len(winners) == 1 and len(conflicts) == n - 1, outcomes
    winner = winners[0]
    assert winner.previous_version == "1"
    assert aliases(client, name) == {"champion": winner.version, "previous_champion": "1"}
    for err in conflicts:
        assert f"now points at version {winner.version}" in str(err)
    # every candidate registered exactly once, only the winner recorded as promoted
    for evaluation in evaluations:
        assert len(versions_of_run(client, name, evaluation["candidate"]["run_id"])) == 1
    events = registry.alias_history(client, name, "champion")
    assert [(e.version, e.replaced) for e in events] == [("1", None), (winner.version, "1")]
    assert not client.search_registered_models(f"name LIKE '{name}.%'")  # no lock left


def test_eight_concurrent_promotions_embedded(mlops_home: Path) -> None:
    target = MlflowTarget(tracking_uri=f"sqlite:///{mlops_home / 'mlflow.db'}")
    _concurrent_promotions(target, "race-embedded")


def test_eight_concurrent_promotions_server(mlflow_server) -> None:
    _concurrent_promotions(
        MlflowTarget(tracking_uri=mlflow_server.url), f"race-{uuid.uuid4().hex[:8]}"
    )


@pytest.mark.postgres
def test_eight_concurrent_promotions_postgres(mlflow_server_postgres) -> None:
    _concurrent_promotions(
        MlflowTarget(tracking_uri=mlflow_server_postgres.url), f"race-{uuid.uuid4().hex[:8]}"
    )


def test_operators_in_a_dag_with_a_retried_promotion(
    airflow_db, mlflow_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk import DAG
    from mlflow import MlflowClient

    from mlops_provider.operators.registry import PromoteModelOperator, RollbackModelOperator

    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT",
        json.dumps({"conn_type": "mlflow", "host": mlflow_server.url}),
    )
    target = MlflowTarget(tracking_uri=mlflow_server.url)
    client = make_client(target)
    name = f"ops-{uuid.uuid4().hex[:8]}"
    exp = ensure_experiment(client, f"ops-{name}")
    registry.promote(client, name, fake_candidate(client, exp, name), by="setup")
    candidate = fake_candidate(client, exp, name, champion="1")
    stale = fake_candidate(client, exp, name, champion="1")
    failing = fake_candidate(client, exp, name, champion="1", passed=False)

    real = MlflowClient.set_registered_model_alias
    calls = {"n": 0}

    def flaky(self, model_name, alias, version):
        calls["n"] += 1
        if calls["n"] == 1:  # after registration, before the alias moves
            raise ConnectionError("registry connection reset")
        return real(self, model_name, alias, version)

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", flaky)
    with DAG(
        "registry_ops",
        schedule="@daily",
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
        default_args={"retries": 1, "retry_delay": timedelta(seconds=0)},
    ) as dag:
        promote = PromoteModelOperator(
            task_id="promote", registered_model_name=name, evaluation=candidate
        )
        conflict = PromoteModelOperator(
            task_id="conflict", registered_model_name=name, evaluation=stale, retries=0
        )
        force_without_reason = PromoteModelOperator(
            task_id="force_without_reason",
            registered_model_name=name,
            evaluation=failing,
            force=True,
            retries=0,
        )
        rollback = RollbackModelOperator(
            task_id="rollback",
            registered_model_name=name,
            reason="{{ dag_run.conf.get('why', 'canary errors') }}",
            trigger_rule="all_done",
        )
        promote >> [conflict, force_without_reason] >> rollback
    dr = run_dag(dag, date(2026, 1, 12))
    assert task_states(dr) == {
        "promote": "success",
        "conflict": "failed",
        "force_without_reason": "failed",
        "rollback": "success",
    }
    ti = next(t for t in dr.get_task_instances() if t.task_id == "promote")
    assert ti.try_number == 2
    out = xcom(dr, "promote")
    assert (out["promoted"], out["version"], out["previous_version"]) == (True, "2", "1")
    assert check_result(out) == [] and (out["status"], out["passed"]) == ("promoted", True)
    assert out["model"] == {
        "name": name,
        "version": "2",
        "run_id": candidate["candidate"]["run_id"],
        "uri": f"models:/{name}/2",
        "alias": "champion",
    }
    assert str(xcom(dr, "promote", key="version")) == "2"
    assert versions_of_run(client, name, candidate["candidate"]["run_id"]) == ["2"]
    assert versions_of_run(client, name, failing["candidate"]["run_id"]) == []
    # the link leads to the plugin, which redirects to the MLflow UI (tests/integration/
    # test_reports_plugin.py follows it)
    assert xcom(dr, "promote", key="_link_MlflowModelVersionLink") == (
        f"/mlops/mlflow/models/{name}/versions/2"
    )
    back = xcom(dr, "rollback")
    assert (back["action"], back["version"], back["previous_version"]) == ("rollback", "1", "2")
    assert check_result(back) == [] and (back["status"], back["passed"]) == ("rolled_back", True)
    assert back["model"]["version"] == "1" and back["reasons"] == ["canary errors"]
    assert back["reason"] == "canary errors"
    assert aliases(client, name) == {"champion": "1"}
    history = registry.alias_history(client, name, "champion")
    assert [(e.event, e.version) for e in history] == [
        ("promote", "1"),
        ("promote", "2"),
        ("rollback", "1"),
    ]
    assert history[1].by == f"registry_ops/{dr.run_id}/promote/-1"


def test_results_have_the_common_shape_for_every_outcome(embedded) -> None:
    client, exp = embedded
    name = "shapes"
    cold_reject = registry.promote(
        client, name, fake_candidate(client, exp, name, passed=False), by="d/r0/promote/-1"
    ).to_result()
    assert check_result(cold_reject) == []
    assert (cold_reject["status"], cold_reject["passed"], cold_reject["model"]) == (
        "rejected",
        False,
        None,
    )
    first = fake_candidate(client, exp, name)
    promoted = registry.promote(client, name, first, by="d/r1/promote/-1").to_result()
    assert check_result(promoted) == [] and (promoted["status"], promoted["passed"]) == (
        "promoted",
        True,
    )
    assert (
        promoted["model"]["version"] == "2"
        and promoted["model"]["run_id"] == first["candidate"]["run_id"]
    )
    assert promoted["reasons"] == ["evaluation passed: test gate"] and promoted["rows"] is None
    # the candidate the champion was evaluated against is the champion itself: unchanged
    same = dict(first, champion={"version": "2"})
    unchanged = registry.promote(client, name, same, by="d/r2/promote/-1").to_result()
    assert check_result(unchanged) == [] and unchanged["status"] == "unchanged"
    assert unchanged["passed"] is True and unchanged["promoted"] is False
    worse = fake_candidate(client, exp, name, champion="2", passed=False)
    rejected = registry.promote(client, name, worse, by="d/r3/promote/-1").to_result()
    assert check_result(rejected) == [] and (rejected["status"], rejected["passed"]) == (
        "rejected",
        False,
    )
    # model: what the alias points at afterwards (the champion), version: the candidate's
    assert rejected["model"]["version"] == "2" and rejected["version"] == "3"
    back = registry.rollback(client, name, to_version=3, reason="try v3", by="d/r4/rb/-1")
    rolled = back.to_result()
    assert check_result(rolled) == [] and rolled["status"] == "rolled_back"
    assert rolled["model"]["version"] == "3" and rolled["model"]["uri"] == f"models:/{name}/3"


def test_promotion_reads_an_evaluation_in_the_common_result_shape(embedded) -> None:
    """EvaluateModelOperator's result in docs/results.md's shape: the candidate under
    ``model``, the reasons as a list, no deprecated keys."""
    client, exp = embedded
    name = "common-shape"
    old = fake_candidate(client, exp, name)
    common = {
        "status": "accepted",
        "passed": True,
        "reasons": ["roc_auc 0.81 >= 0.6"],
        "model": {
            "name": None,
            "version": None,
            "run_id": old["candidate"]["run_id"],
            "uri": old["candidate"]["model_uri"],
        },
        "champion": None,
        "cold_start": True,
        "registered_model_name": name,
        "alias": "champion",
    }
    result = registry.promote(client, name, common, by="d/r/promote/-1")
    assert result.promoted and result.version == "1"
    assert result.reason == "evaluation roc_auc 0.81 >= 0.6"
    assert aliases(client, name) == {"champion": "1"}


def test_rollback_takes_every_model_uri_form(embedded) -> None:
    client, exp = embedded
    name = "rollback-uris"
    runs = []
    for champion in (None, "1", "2"):
        evaluation = fake_candidate(client, exp, name, champion=champion)
        runs.append(evaluation["candidate"])
        registry.promote(client, name, evaluation, by=f"d/{champion}/promote/-1")
    assert aliases(client, name) == {"champion": "3", "previous_champion": "2"}
    steps = [
        (f"models:/{name}/1", "1"),
        (f"runs:/{runs[1]['run_id']}/model", "2"),  # the version registered from the run
        (f"models:/{name}@previous_champion", "1"),  # v2 replaced v1: previous_champion = 1
        (runs[2]["model_uri"], "3"),  # models:/m-<id>
    ]
    for i, (uri, expected) in enumerate(steps):
        result = registry.rollback(client, name, to_version=uri, reason=uri, by=f"d/{i}/rb/-1")
        assert result.version == expected and aliases(client, name)["champion"] == expected, uri
    registry.promote(client, "other", fake_candidate(client, exp, "other"), by="o")
    with pytest.raises(registry.PromotionRefusedError, match="not of 'rollback-uris'"):
        registry.rollback(client, name, to_version="models:/other/1", reason="x", by="x")
    with pytest.raises(registry.PromotionRefusedError, match="has no version 9"):
        registry.rollback(client, name, to_version="9", reason="x", by="y")


def test_registry_operators_follow_the_vocabulary() -> None:
    from mlops_provider.operators.registry import PromoteModelOperator, RollbackModelOperator

    promote = PromoteModelOperator(task_id="p", registered_model_name="m", evaluation={})
    rollback = RollbackModelOperator(task_id="r", registered_model_name="m", reason="why")
    for op in (promote, rollback):
        assert op.mlflow_conn_id == "mlflow_default"
        assert {"registered_model_name", "alias", "mlflow_conn_id"} <= set(op.template_fields)
    assert rollback.alias == "champion" and promote.alias is None  # None: the evaluation's
    assert "to_version" in rollback.template_fields
