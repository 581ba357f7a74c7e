"""Promotion: register the evaluated candidate and move the alias with compare-and-set.

:func:`promote` resolves (the evaluation, the registered version, the alias holder under the
lease), computes (pure: :func:`promotion_reason`, :func:`plan_promotion`) and publishes (moves
the alias, ``previous_<alias>``, the history event and the version tags).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from mlops_provider.core.failpoints import failpoint
from mlops_provider.core.models import (
    DEFAULT_ALIAS,
    ModelNotFoundError,
    ModelVersion,
    alias_holder,
    is_not_found,
    version_uri,
)
from mlops_provider.core.registry import history, journal
from mlops_provider.core.registry.errors import AliasConflictError, PromotionRefusedError
from mlops_provider.core.registry.existence import holder_or_missing
from mlops_provider.core.registry.history import AliasEvent, events_of, latest_event, new_event
from mlops_provider.core.registry.lock import Lease, alias_lock
from mlops_provider.core.registry.registration import register_candidate
from mlops_provider.core.results import make_result

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["RegistryResult", "plan_promotion", "promote", "promotion_reason"]

log = logging.getLogger(__name__)

STATUS_TAG = "mlops.promotion_status"


@dataclass
class RegistryResult:
    """Outcome of :func:`promote` / :func:`rollback`.

    :param status: ``promoted`` (the alias moved to the candidate, by this call or by an
        earlier try of the same task: ``already_done``), ``unchanged`` (nothing to do: the
        candidate already holds the alias, or this data interval was already promoted / rolled
        back by another DAG run; ``already_done``), ``rejected`` (the evaluation failed) or
        ``rolled_back``.
    :param model: the version the alias points at afterwards (``None`` on a cold start whose
        candidate was rejected).

    ``to_dict()`` holds the keys the operators always returned; ``to_result()`` is the
    operator's XCom (docs/results.md) with those keys after the common ones.
    """

    promoted: bool
    registered_model_name: str
    alias: str
    version: str | None
    previous_version: str | None
    reason: str
    forced: bool = False
    created_version: bool = False
    already_done: bool = False
    run_id: str | None = None
    event_at: str | None = None
    action: str = "promote"
    status: str = "promoted"
    model: ModelVersion | None = None

    @property
    def model_uri(self) -> str | None:
        return version_uri(self.registered_model_name, self.version) if self.version else None

    def to_dict(self) -> dict[str, Any]:
        keys = (
            "promoted",
            "registered_model_name",
            "alias",
            "version",
            "previous_version",
            "reason",
            "forced",
            "created_version",
            "already_done",
            "run_id",
            "event_at",
            "action",
        )
        out = {key: getattr(self, key) for key in keys}
        out["model_uri"] = self.model_uri
        return out

    def to_result(self) -> dict[str, Any]:
        """The common result: ``passed`` = the alias holds the candidate (or the restored
        version), ``model`` = what the alias points at afterwards."""
        return make_result(
            status=self.status,
            passed=self.status != "rejected",
            reasons=[self.reason] if self.reason else [],
            model=self.model,
            **self.to_dict(),
        )


def held_version(name: str, alias: str, version: str, run_id: str | None) -> ModelVersion:
    """The version ``alias`` points at after a change made here."""
    return ModelVersion(
        uri=version_uri(name, version),
        name=name,
        version=str(version),
        run_id=run_id,
        requested_uri=f"models:/{name}@{alias}",
        alias=alias,
    )


@dataclass(frozen=True)
class _Evaluation:
    passed: bool
    run_id: str
    model_id: str | None
    model_uri: str | None
    champion_version: str | None
    alias: str | None
    registered_model_name: str | None
    reason: str
    cold_start: bool = False


def _parse_evaluation(evaluation: Mapping[str, Any]) -> _Evaluation:
    """The parts of an EvaluateModelOperator result a promotion needs (old and common keys)."""
    if not isinstance(evaluation, Mapping):
        raise PromotionRefusedError(
            "evaluation must be the dict EvaluateModelOperator returned, got "
            f"{type(evaluation).__name__}"
        )
    candidate = evaluation.get("candidate") or {}
    model = evaluation.get("model") or {}
    run_id = candidate.get("run_id") or evaluation.get("candidate_run_id") or model.get("run_id")
    if "passed" not in evaluation or not run_id:
        raise PromotionRefusedError(
            "evaluation lacks 'passed' or the candidate's run id: pass the dict "
            "EvaluateModelOperator returned (e.g. evaluation=evaluate.output)"
        )
    champion = evaluation.get("champion") or {}
    champion_version = champion.get("version") if champion else evaluation.get("champion_version")
    reason = evaluation.get("reason") or "; ".join(str(r) for r in evaluation.get("reasons") or [])
    return _Evaluation(
        passed=bool(evaluation["passed"]),
        run_id=str(run_id),
        model_id=candidate.get("model_id"),
        model_uri=candidate.get("model_uri")
        or evaluation.get("candidate_model_uri")
        or model.get("uri"),
        champion_version=None if champion_version is None else str(champion_version),
        alias=evaluation.get("alias"),
        registered_model_name=evaluation.get("registered_model_name"),
        reason=str(reason or ""),
        cold_start=evaluation.get("cold_start") is True,
    )


def _checked_alias(
    ev: _Evaluation, name: str, alias: str | None, force: bool, reason: str | None
) -> str:
    """The alias to move, after refusing requests that contradict the evaluation."""
    if force and not (reason and str(reason).strip()):
        raise PromotionRefusedError("force=True needs a reason (it is recorded with the promotion)")
    alias = alias or ev.alias or DEFAULT_ALIAS
    if ev.alias and ev.alias != alias:
        raise PromotionRefusedError(
            f"the evaluation compared against alias {ev.alias!r}, not {alias!r}: evaluate against "
            "the alias you promote"
        )
    if ev.registered_model_name and ev.registered_model_name != name:
        raise PromotionRefusedError(
            f"the evaluation compared against registered model {ev.registered_model_name!r}, "
            f"not {name!r}"
        )
    return alias


NOT_A_COLD_START = (
    "The evaluation was not an explicit cold start, so no registered model or first alias is "
    "created: check the names, or evaluate the first model with "
    "EvaluateModelOperator(cold_start=True)"
)


def _check_target(client: MlflowClient, name: str, alias: str, ev: _Evaluation) -> None:
    """Before anything is registered: the candidate's run exists, and ``name@alias`` has a
    holder unless the evaluation was an explicit cold start.

    :raises ModelNotFoundError: the run does not exist; or the registered model or the alias
        does not exist and the evaluation is not a cold start (names what exists).
    """
    from mlflow.exceptions import MlflowException

    try:
        client.get_run(ev.run_id)
    except MlflowException as err:
        if not is_not_found(err):
            raise
        raise ModelNotFoundError(
            f"parameter evaluation: the candidate's run {ev.run_id!r} does not exist in the "
            "tracking store; pass the result of the EvaluateModelOperator that evaluated it "
            "(e.g. evaluation=evaluate.output)"
        ) from err
    holder_or_missing(client, name, alias, allow_missing=ev.cold_start, hint=NOT_A_COLD_START)


def promotion_reason(
    passed: bool, evaluation_reason: str, force: bool, reason: str | None
) -> tuple[bool, str]:
    """``(forced, why)`` of a promotion (pure)."""
    forced = bool(force and not passed)
    why = str(reason).strip() if reason else f"evaluation {evaluation_reason or 'passed'}"
    return forced, f"forced despite a failed evaluation: {why}" if forced else why


def plan_promotion(
    current: str | None, version: str, seen: str | None, *, what: str, run_id: str
) -> Literal["unchanged", "complete", "move"]:
    """What a promotion of ``version`` does, given the holder ``current`` and the holder the
    evaluation saw (pure): nothing (it already holds the alias and was evaluated so),
    complete an earlier try's records (the alias moved, the records may be missing), or move.

    :raises AliasConflictError: the alias moved since the evaluation.
    """
    if current == version:
        return "unchanged" if seen == version else "complete"
    if current != seen:
        raise AliasConflictError(
            f"{what} moved since the evaluation: the candidate (run {run_id}, version "
            f"{version}) was evaluated against {seen or 'no holder (cold start)'}, but the alias "
            f"now points at version {current}. Not overwriting it; evaluate again against the "
            "new holder."
        )
    return "move"


def _promotion_intent(event: AliasEvent) -> journal.Intent:
    """The journal intent of a promotion: the received version's tags, the demotion tags of
    the replaced version, ``previous_<alias>`` = the replaced version (kept on a cold start)."""
    return journal.Intent(
        event=event,
        received_tags=history.received_tags(event, event.reason, forced=event.forced),
        replaced_tags={
            "mlops.demoted_at": event.at,
            "mlops.demoted_by": event.by,
            "mlops.replaced_by_version": event.version,
            "mlops.promotion_status": "demoted",
        },
        set_previous=event.replaced is not None,
    )


def _promotion_event(
    ev: _Evaluation,
    alias: str,
    version: str,
    replaced: str | None,
    by: str,
    why: str,
    forced: bool,
    *,
    interval: str = "",
    retry: bool = False,
) -> AliasEvent:
    return new_event(
        "promote",
        alias,
        version,
        replaced,
        replaced,
        by,
        why,
        forced,
        interval=interval,
        source_run_id=ev.run_id,
        evaluation_passed=ev.passed,
        completed_by_retry=True if retry else None,
    )


def _reject(
    client: MlflowClient, name: str, alias: str, version: str, ev: _Evaluation, created: bool
) -> RegistryResult:
    """The evaluation failed: tag the candidate ``rejected``, leave the alias alone. A
    candidate that already holds the alias (evaluated against itself) keeps its status."""
    text = f"not promoted: the evaluation failed ({ev.reason or 'no reason given'})"
    holder = alias_holder(client, name, alias)
    if holder is not None and holder.version == version:
        text = f"not promoted: version {version} already holds {alias} ({text})"
    else:
        client.set_model_version_tag(name, version, STATUS_TAG, "rejected")
    log.info("%s version %s %s", name, version, text)
    return RegistryResult(
        promoted=False,
        registered_model_name=name,
        alias=alias,
        version=version,
        previous_version=holder.version if holder else None,
        reason=text,
        created_version=created,
        run_id=ev.run_id,
        status="rejected",
        model=holder,
    )


def _done_result(result: RegistryResult, event: AliasEvent, by: str) -> RegistryResult:
    """``result`` for a promotion an earlier attempt made: ``promoted`` when it was this task
    (same ``by``: a retry in place), ``unchanged`` when another DAG run or promoter made it."""
    mine = bool(by) and event.by == by
    result.already_done, result.promoted = True, mine
    result.status = "promoted" if mine else "unchanged"
    result.version, result.previous_version = event.version, event.replaced
    result.reason, result.forced, result.event_at = event.reason, event.forced, event.at
    run_id = event.extra.get("source_run_id") or result.run_id
    result.run_id = run_id
    result.model = held_version(result.registered_model_name, result.alias, event.version, run_id)
    if not mine:
        result.reason = f"already promoted by {event.by} at {event.at}: {event.reason}"
    return result


def _complete_earlier_promotion(
    client: MlflowClient,
    name: str,
    alias: str,
    version: str,
    ev: _Evaluation,
    by: str,
    why: str,
    forced: bool,
    interval: str,
) -> tuple[AliasEvent, bool]:
    """The alias already points at the candidate, evaluated against the replaced holder: a
    promoter made that change. Return its event (``True``) or, when the alias was moved without
    records (outside this package's journal), record them now (``False``)."""
    mv = client.get_model_version(name, version)
    event = latest_event(
        events_of(mv, alias),
        lambda e: e.event == "promote" and e.replaced == ev.champion_version,
    )
    if event is not None:
        log.info("%s@%s already points at version %s (promoted %s)", name, alias, version, event.at)
        return event, True
    event = _promotion_event(
        ev, alias, version, ev.champion_version, by, why, forced, interval=interval, retry=True
    )
    journal.run(client, name, _promotion_intent(event))
    return event, False


def _publish(
    client: MlflowClient,
    name: str,
    alias: str,
    version: str,
    ev: _Evaluation,
    result: RegistryResult,
    lease: Lease,
    *,
    by: str,
    interval: str,
) -> RegistryResult:
    """Under the lease, with the candidate registered: compare-and-set, then the journal."""
    holder = alias_holder(client, name, alias)
    current = holder.version if holder else None
    try:
        plan = plan_promotion(
            current, version, ev.champion_version, what=f"{name}@{alias}", run_id=ev.run_id
        )
    except AliasConflictError:
        client.set_model_version_tag(name, version, STATUS_TAG, "lost_race")
        raise
    if plan == "unchanged":
        result.promoted, result.status, result.already_done = False, "unchanged", True
        result.forced = False
        result.previous_version = current
        result.reason = f"version {version} already holds {alias}"
        return result
    if plan == "complete":
        event, earlier = _complete_earlier_promotion(
            client, name, alias, version, ev, by, result.reason, result.forced, interval
        )
        if earlier:
            return _done_result(result, event, by)
        result.already_done, result.reason, result.forced = True, event.reason, event.forced
    else:
        lease.ensure_valid()
        event = _promotion_event(
            ev, alias, version, current, by, result.reason, result.forced, interval=interval
        )
        journal.run(client, name, _promotion_intent(event))
        log.info("%s@%s: version %s -> %s (%s)", name, alias, current, version, result.reason)
    result.previous_version, result.event_at = event.replaced, event.at
    return result


def promote(
    client: MlflowClient,
    name: str,
    evaluation: Mapping[str, Any],
    *,
    alias: str | None = None,
    force: bool = False,
    reason: str | None = None,
    by: str = "",
    interval: str = "",
    lock_timeout: float = 120.0,
    lease_seconds: float = 120.0,
    version_tags: Mapping[str, str] | None = None,
) -> RegistryResult:
    """Register the evaluated candidate and move ``alias`` to it if the evaluation passed.

    Compare-and-set: the alias must still point at the version the evaluation compared with
    (none on a cold start). A registered model or a first alias is created only for an
    explicit cold start (the evaluation's ``cold_start`` is True: ``EvaluateModelOperator(
    cold_start=True)`` found no holder); nothing is created before the candidate's run and the
    target are checked.

    Everything happens under the alias lease, as the journal's steps
    (:mod:`.journal`): an unfinished change a crashed attempt left is completed first; then,
    when ``interval`` (the work identity, same for every DAG run of one data interval) already
    has a promotion event, nothing changes (``already_done``; status ``promoted`` for the same
    ``by``, i.e. a retry, else ``unchanged``); otherwise the candidate is found or registered
    (one version per source run, even under concurrency), tagged ``rejected`` when the
    evaluation failed, ``lost_race`` when the alias moved since the evaluation, and promoted
    otherwise. ``by`` (the DAG run's task identity) is recorded for audit.

    :param force: move the alias although the evaluation failed (needs ``reason``).
    :param interval: the work identity recorded on the event; ``""`` skips the interval check.
    :raises PromotionRefusedError: force without a reason, alias/model differing from the evaluation.
    :raises ModelNotFoundError: the candidate's run does not exist; the registered model or the
        alias does not exist and the evaluation is not a cold start.
    :raises AliasConflictError: the alias moved since the evaluation (candidate tagged
        ``lost_race``).
    :raises LockTimeoutError: another promotion of the same alias holds the lease too long.
    """
    ev = _parse_evaluation(evaluation)
    alias = _checked_alias(ev, name, alias, force, reason)
    _check_target(client, name, alias, ev)
    forced, why = promotion_reason(ev.passed, ev.reason, force, reason)
    result = RegistryResult(
        promoted=True,
        registered_model_name=name,
        alias=alias,
        version=None,
        previous_version=None,
        reason=why,
        forced=forced,
        run_id=ev.run_id,
    )
    with alias_lock(
        client, name, alias, owner=by, timeout=lock_timeout, lease_seconds=lease_seconds
    ) as lease:
        failpoint("registry.locked")
        journal.complete_pending(client, name, alias)
        earlier = history.interval_event(client, name, alias, "promote", interval)
        if earlier is not None:
            log.info(
                "%s@%s: %s was promoted for %s already", name, alias, earlier.version, interval
            )
            return _done_result(result, earlier, by)
        mv, created = register_candidate(
            client,
            name,
            run_id=ev.run_id,
            model_id=ev.model_id,
            model_uri=ev.model_uri,
            tags=version_tags,
        )
        failpoint("registry.registered")
        version = str(mv.version)
        if not ev.passed and not force:
            return _reject(client, name, alias, version, ev, created)
        result.version, result.created_version = version, created
        result.model = held_version(name, alias, version, ev.run_id)
        return _publish(client, name, alias, version, ev, result, lease, by=by, interval=interval)
