"""Model registry: idempotent registration, alias promotion with compare-and-set, rollback, history.

Registration
    A candidate is registered once per source run: the version carries the tag
    ``mlops.source_run_id`` (set atomically with the version), and a retry finds it with
    ``search_model_versions`` instead of creating another version.

Compare-and-set on an alias
    MLflow has no conditional alias update. Promotions and rollbacks of one ``(model, alias)``
    are serialized by a lease: a transient registered model named
    ``<model>.<alias>.mlops-lock``. Creating a registered model is atomic in every MLflow
    backend (the name is a primary key / unique), so exactly one of several concurrent
    promoters gets it. Inside the lease the promoter re-reads the alias and moves it only if it
    still points where the evaluation saw it; otherwise :class:`AliasConflictError`. The lock model is
    deleted on release, so it is only visible while a promotion runs.

    A holder that dies leaves its lock behind; it expires after ``lease_seconds``
    (``mlops.lock.expires_at``, the holder's wall clock) and the next promoter removes it. That
    take-over is itself guarded by an atomic create (``<lock>.takeover-<token>``) so two
    promoters cannot both remove locks. Guarantees: mutual exclusion holds as long as a holder
    finishes within its lease (a holder re-checks its lease, by its monotonic clock, right
    before moving the alias and gives up if less than ``lease_seconds / 4`` remain) and worker
    clocks agree to within a small fraction of the lease. Changes made outside this module
    (UI, other tools) are not serialized.

History
    Every alias change made here is recorded on the version that received the alias as a tag
    ``mlops.alias_history.<alias>.<epoch_ms>`` holding a JSON event (who, what, when, why).
    One tag per event, written inside the lease, spread over versions: it keeps working after
    many promotions (no single tag grows) and under concurrency (no read-modify-write).
    :func:`alias_holder_at` answers "which version held the alias at time T" from these events.
    Each promotion also sets ``mlops.promoted_at`` / ``mlops.promoted_by`` /
    ``mlops.promotion_reason`` on the promoted version, and the replaced version keeps the alias
    ``previous_<alias>``.
"""

from __future__ import annotations

import json
import logging
import random
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any

from mlops_provider.core.errors import CoreError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

log = logging.getLogger(__name__)

__all__ = [
    "SOURCE_RUN_TAG",
    "HISTORY_TAG_PREFIX",
    "LOCK_SUFFIX",
    "RegistryError",
    "PromotionRefusedError",
    "AliasConflictError",
    "LockTimeoutError",
    "NoPreviousHolderError",
    "Lease",
    "AliasEvent",
    "AliasCheck",
    "RegistryResult",
    "previous_alias",
    "lock_name",
    "find_version_for_run",
    "register_candidate",
    "current_holder",
    "alias_lock",
    "promote",
    "rollback",
    "alias_history",
    "alias_holder_at",
    "check_alias",
]

SOURCE_RUN_TAG = "mlops.source_run_id"
HISTORY_TAG_PREFIX = "mlops.alias_history."
LOCK_SUFFIX = ".mlops-lock"
_LOCK_TOKEN = "mlops.lock.token"
_LOCK_OWNER = "mlops.lock.owner"
_LOCK_EXPIRES = "mlops.lock.expires_at"
_ALREADY_EXISTS = ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS")
_NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"
# A create that loses the race: MLflow's SQL store answers a unique-key violation by reading the
# existing model, which fails with "not found" if its holder deleted it in between.
_LOST_CREATE_RACE = (*_ALREADY_EXISTS, _NOT_FOUND)


class RegistryError(CoreError, RuntimeError):
    """A registry operation could not be done."""


class PromotionRefusedError(RegistryError):
    """The request itself is invalid (force without reason, mismatching alias ...)."""


class AliasConflictError(RegistryError):
    """The alias moved since the evaluation: compare-and-set refused to overwrite it."""


class LockTimeoutError(RegistryError):
    """The alias lease could not be acquired in time (another promotion holds it)."""


class NoPreviousHolderError(RegistryError):
    """A rollback found nothing to roll back to."""


def previous_alias(alias: str) -> str:
    """The alias that keeps the replaced holder: ``previous_<alias>``."""
    return f"previous_{alias}"


def lock_name(name: str, alias: str) -> str:
    """Name of the transient registered model used as the lease of ``(name, alias)``."""
    return f"{name}.{alias}{LOCK_SUFFIX}"


def _error_code(err: Exception) -> str | None:
    return getattr(err, "error_code", None)


def _quote(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("'", "\\'")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")


# --------------------------------------------------------------------------- registration


def _search_versions(client: MlflowClient, filter_string: str) -> list[ModelVersion]:
    out: list[ModelVersion] = []
    token = None
    while True:
        page = client.search_model_versions(filter_string, max_results=1000, page_token=token)
        out.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return out


def find_version_for_run(client: MlflowClient, name: str, run_id: str) -> ModelVersion | None:
    """The version of ``name`` registered from ``run_id`` by :func:`register_candidate`."""
    versions = _search_versions(
        client, f"name = '{_quote(name)}' and tags.`{SOURCE_RUN_TAG}` = '{_quote(run_id)}'"
    )
    if not versions:
        return None
    versions.sort(key=lambda v: int(v.version))
    if len(versions) > 1:
        log.warning(
            "%d versions of %s were registered from run %s; using version %s",
            len(versions),
            name,
            run_id,
            versions[0].version,
        )
    return versions[0]


def _logged_model_id(client: MlflowClient, run_id: str) -> str | None:
    run = client.get_run(run_id)
    model_id = run.data.tags.get("mlops.model_id")
    if model_id:
        return str(model_id)
    outputs = getattr(getattr(run, "outputs", None), "model_outputs", None) or []
    if outputs:
        return str(max(outputs, key=lambda o: o.step).model_id)
    return None


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
        return
    except MlflowException as err:
        if _error_code(err) != _NOT_FOUND:
            raise
    try:
        client.create_registered_model(name)
        log.info("created registered model %s", name)
    except MlflowException as err:
        if _error_code(err) not in _LOST_CREATE_RACE:
            raise


def register_candidate(
    client: MlflowClient,
    name: str,
    *,
    run_id: str,
    model_id: str | None = None,
    model_uri: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> tuple[ModelVersion, bool]:
    """Register the model of ``run_id`` under ``name`` once; return ``(version, created)``.

    The registered model is created if missing. The version source is the logged model's
    artifact location (``model_id`` recorded too), or ``model_uri``'s artifacts for models
    logged without MLflow 3's logged-model entity.
    """
    from mlflow.exceptions import MlflowException

    existing = find_version_for_run(client, name, run_id)
    if existing is not None:
        log.info("run %s is already registered as %s version %s", run_id, name, existing.version)
        return existing, False
    _ensure_registered_model(client, name)
    model_id = model_id or _logged_model_id(client, run_id)
    if model_id:
        source = client.get_logged_model(model_id).artifact_location
    else:
        from mlflow.store.artifact.runs_artifact_repo import RunsArtifactRepository

        uri = model_uri or f"runs:/{run_id}/model"
        source = RunsArtifactRepository.get_underlying_uri(uri) if uri.startswith("runs:/") else uri
    version_tags = {SOURCE_RUN_TAG: run_id, **{k: str(v) for k, v in (tags or {}).items()}}
    mv = client.create_model_version(
        name, source, run_id=run_id, tags=version_tags, model_id=model_id
    )
    log.info("registered run %s as %s version %s", run_id, name, mv.version)
    if model_id:  # the MLflow UI links logged models to their versions through this tag
        try:
            logged = client.get_logged_model(model_id)
            linked = json.loads(logged.tags.get("mlflow.modelVersions", "[]"))
            linked.append({"name": name, "version": mv.version})
            client.set_logged_model_tags(model_id, {"mlflow.modelVersions": json.dumps(linked)})
        except (MlflowException, ValueError) as err:
            log.info("could not link logged model %s to the version: %s", model_id, err)
    return mv, True


def current_holder(client: MlflowClient, name: str, alias: str) -> str | None:
    """Version currently holding ``alias`` (None if the alias or the model does not exist)."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException as err:
        if _error_code(err) == _NOT_FOUND:
            return None
        raise
    version = (getattr(model, "aliases", None) or {}).get(alias)
    return None if version is None else str(version)


# --------------------------------------------------------------------------- the lease


@dataclass
class Lease:
    """A held alias lock."""

    name: str
    token: str
    owner: str
    lease_seconds: float
    started: float  # time.monotonic() before the lock was created

    def remaining(self) -> float:
        return self.lease_seconds - (time.monotonic() - self.started)

    def ensure_valid(self) -> None:
        """Raise unless a comfortable part of the lease is left (see the module docstring)."""
        if self.remaining() < self.lease_seconds / 4:
            raise LockTimeoutError(
                f"lease on {self.name} nearly expired ({self.remaining():.1f}s of "
                f"{self.lease_seconds:.0f}s left): giving up rather than risking a concurrent "
                "change; retry the task"
            )


def _lock_expiry(model: Any, default_lease: float) -> float:
    tags = getattr(model, "tags", None) or {}
    try:
        return float(tags[_LOCK_EXPIRES])
    except (KeyError, TypeError, ValueError):
        created = (getattr(model, "creation_timestamp", None) or 0) / 1000
        return created + default_lease


def _take_over(client: MlflowClient, lock: str, stale_token: str) -> None:
    """Remove an expired lock, at most one taker per stale lock (see the module docstring)."""
    from mlflow.exceptions import MlflowException

    guard = f"{lock}.takeover-{stale_token[:16]}"
    try:
        client.create_registered_model(guard, tags={"mlops.lock.takeover_of": stale_token})
    except MlflowException as err:
        if _error_code(err) in _LOST_CREATE_RACE:
            return
        raise
    try:
        try:
            current = client.get_registered_model(lock)
        except MlflowException as err:
            if _error_code(err) == _NOT_FOUND:
                return
            raise
        if (current.tags or {}).get(_LOCK_TOKEN) == stale_token:
            log.warning(
                "removing expired lock %s of %s", lock, (current.tags or {}).get(_LOCK_OWNER)
            )
            client.delete_registered_model(lock)
    finally:
        try:
            client.delete_registered_model(guard)
        except MlflowException:
            pass


@contextmanager
def alias_lock(
    client: MlflowClient,
    name: str,
    alias: str,
    *,
    owner: str = "",
    timeout: float = 120.0,
    lease_seconds: float = 120.0,
) -> Iterator[Lease]:
    """Hold the lease of ``(name, alias)`` for the block (see the module docstring).

    :raises LockTimeoutError: not acquired within ``timeout`` seconds.
    """
    from mlflow.exceptions import MlflowException

    lock = lock_name(name, alias)
    token = uuid.uuid4().hex
    owner = owner or f"{socket.gethostname()}:{uuid.getnode()}"
    deadline = time.monotonic() + timeout
    attempt = 0
    while True:
        started = time.monotonic()
        try:
            client.create_registered_model(
                lock,
                tags={
                    _LOCK_TOKEN: token,
                    _LOCK_OWNER: owner,
                    _LOCK_EXPIRES: f"{time.time() + lease_seconds:.3f}",
                },
                description=f"Transient promotion lock of {name}@{alias} (deleted on release).",
            )
            break
        except MlflowException as err:
            if _error_code(err) not in _LOST_CREATE_RACE:
                raise
        try:
            held = client.get_registered_model(lock)
        except MlflowException as err:
            if _error_code(err) == _NOT_FOUND:
                continue  # released meanwhile: try again at once
            raise
        held_tags = held.tags or {}
        if held_tags.get(_LOCK_TOKEN) == token:
            break  # our create went through, its answer was lost (a retried request)
        if time.time() > _lock_expiry(held, lease_seconds) and held_tags.get(_LOCK_TOKEN):
            _take_over(client, lock, held_tags[_LOCK_TOKEN])
            continue
        if time.monotonic() > deadline:
            raise LockTimeoutError(
                f"could not lock {name}@{alias} within {timeout:.0f}s: held by "
                f"{held_tags.get(_LOCK_OWNER, '?')} until {held_tags.get(_LOCK_EXPIRES, '?')} "
                f"(registered model {lock!r}; delete it if its holder is gone)"
            )
        attempt += 1
        time.sleep(min(0.05 * (1.5**attempt), 1.0) * random.uniform(0.5, 1.5))
    lease = Lease(lock, token, owner, lease_seconds, started)
    log.info("locked %s@%s (%s)", name, alias, lock)
    try:
        yield lease
    finally:
        _release(client, lease)


def _release(client: MlflowClient, lease: Lease) -> None:
    from mlflow.exceptions import MlflowException

    if lease.remaining() <= 0:
        log.warning("lease %s expired before release; leaving it to expire", lease.name)
        return
    try:
        current = client.get_registered_model(lease.name)
        if (current.tags or {}).get(_LOCK_TOKEN) == lease.token:
            client.delete_registered_model(lease.name)
    except MlflowException as err:
        if _error_code(err) != _NOT_FOUND:
            log.warning("could not release %s: %s (it expires by itself)", lease.name, err)


# --------------------------------------------------------------------------- history


@dataclass
class AliasEvent:
    """One recorded alias change."""

    event: str  # "promote" or "rollback"
    alias: str
    version: str
    replaced: str | None
    previous: str | None  # what previous_<alias> pointed at after the change
    at_ms: int
    at: str
    by: str
    reason: str
    forced: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> AliasEvent:
        data = json.loads(text)
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


def _history_key(alias: str, at_ms: int) -> str:
    return f"{HISTORY_TAG_PREFIX}{alias}.{at_ms:013d}"


def _events_of(version: ModelVersion, alias: str) -> list[AliasEvent]:
    prefix = f"{HISTORY_TAG_PREFIX}{alias}."
    events = []
    for key, value in (version.tags or {}).items():
        if key.startswith(prefix):
            try:
                events.append(AliasEvent.from_json(value))
            except (ValueError, TypeError) as err:
                log.warning(
                    "unreadable history tag %s on version %s: %s", key, version.version, err
                )
    return events


def alias_history(client: MlflowClient, name: str, alias: str) -> list[AliasEvent]:
    """All recorded changes of ``alias`` of ``name``, oldest first."""
    events: list[AliasEvent] = []
    for version in _search_versions(client, f"name = '{_quote(name)}'"):
        events.extend(_events_of(version, alias))
    events.sort(key=lambda e: (e.at_ms, e.version))
    return events


def _to_ms(when: datetime | date | str | float | int) -> int:
    if isinstance(when, (int, float)) and not isinstance(when, bool):
        return int(when * 1000) if when < 1e11 else int(when)  # seconds or milliseconds
    if isinstance(when, str):
        when = datetime.fromisoformat(when.replace("Z", "+00:00"))
    if isinstance(when, datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return int(when.timestamp() * 1000)
    if isinstance(when, date):
        return int(
            datetime(when.year, when.month, when.day, tzinfo=timezone.utc).timestamp() * 1000
        )
    raise TypeError(f"not a time: {when!r}")


def alias_holder_at(
    client: MlflowClient, name: str, alias: str, when: datetime | date | str | float | int
) -> str | None:
    """The version that held ``alias`` at ``when`` according to the recorded history.

    ``when``: a datetime (naive = UTC), a date (its midnight UTC), an ISO string or epoch
    seconds/milliseconds. Returns None before the first recorded change. Only changes made
    through this module are recorded.
    """
    at = _to_ms(when)
    holder = None
    for event in alias_history(client, name, alias):
        if event.at_ms <= at:
            holder = event.version
        else:
            break
    return holder


def _record(
    client: MlflowClient,
    name: str,
    event: AliasEvent,
    *,
    version_tags: Mapping[str, str],
    replaced_tags: Mapping[str, str] | None = None,
) -> None:
    client.set_model_version_tag(
        name, event.version, _history_key(event.alias, event.at_ms), event.to_json()
    )
    for key, value in version_tags.items():
        client.set_model_version_tag(name, event.version, key, str(value))
    if event.replaced and event.replaced != event.version and replaced_tags:
        for key, value in replaced_tags.items():
            client.set_model_version_tag(name, event.replaced, key, str(value))


def _new_event(
    kind: str,
    alias: str,
    version: str,
    replaced: str | None,
    previous: str | None,
    by: str,
    reason: str,
    forced: bool = False,
    **extra: Any,
) -> AliasEvent:
    at_ms = _now_ms()
    return AliasEvent(
        event=kind,
        alias=alias,
        version=str(version),
        replaced=None if replaced is None else str(replaced),
        previous=None if previous is None else str(previous),
        at_ms=at_ms,
        at=_iso(at_ms),
        by=by,
        reason=reason,
        forced=forced,
        extra={k: v for k, v in extra.items() if v is not None},
    )


def _set_previous(client: MlflowClient, name: str, alias: str, version: str | None) -> None:
    from mlflow.exceptions import MlflowException

    prev = previous_alias(alias)
    if version is None:
        try:
            client.delete_registered_model_alias(name, prev)
        except MlflowException as err:
            log.info("no %s alias to remove: %s", prev, err)
        return
    client.set_registered_model_alias(name, prev, str(version))


# --------------------------------------------------------------------------- promotion


@dataclass
class RegistryResult:
    """Outcome of :func:`promote` / :func:`rollback`; ``to_dict()`` is the operator's XCom."""

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

    @property
    def model_uri(self) -> str | None:
        return f"models:/{self.registered_model_name}/{self.version}" if self.version else None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["model_uri"] = self.model_uri
        return out


@dataclass
class _Evaluation:
    passed: bool
    run_id: str
    model_id: str | None
    model_uri: str | None
    champion_version: str | None
    alias: str | None
    registered_model_name: str | None
    reason: str


def _parse_evaluation(evaluation: Mapping[str, Any]) -> _Evaluation:
    if not isinstance(evaluation, Mapping):
        raise PromotionRefusedError(
            f"evaluation must be the dict EvaluateModelOperator returned, got {type(evaluation).__name__}"
        )
    candidate = evaluation.get("candidate") or {}
    run_id = candidate.get("run_id") or evaluation.get("candidate_run_id")
    if "passed" not in evaluation or not run_id:
        raise PromotionRefusedError(
            "evaluation lacks 'passed' or the candidate's run id: pass the dict "
            "EvaluateModelOperator returned (e.g. evaluation=evaluate.output)"
        )
    champion = evaluation.get("champion") or {}
    champion_version = champion.get("version") if champion else evaluation.get("champion_version")
    return _Evaluation(
        passed=bool(evaluation["passed"]),
        run_id=str(run_id),
        model_id=candidate.get("model_id"),
        model_uri=candidate.get("model_uri") or evaluation.get("candidate_model_uri"),
        champion_version=None if champion_version is None else str(champion_version),
        alias=evaluation.get("alias"),
        registered_model_name=evaluation.get("registered_model_name"),
        reason=str(evaluation.get("reason") or ""),
    )


def promote(
    client: MlflowClient,
    name: str,
    evaluation: Mapping[str, Any],
    *,
    alias: str | None = None,
    force: bool = False,
    reason: str | None = None,
    by: str = "",
    lock_timeout: float = 120.0,
    lease_seconds: float = 120.0,
    version_tags: Mapping[str, str] | None = None,
) -> RegistryResult:
    """Register the evaluated candidate and move ``alias`` to it if the evaluation passed.

    Compare-and-set: the alias must still point at the version the evaluation compared with
    (none on a cold start). A retry after a partial failure reuses the registered version and,
    if the alias already points at it, completes the records instead of failing.

    :param force: move the alias although the evaluation failed (needs ``reason``).
    :raises PromotionRefusedError: force without a reason, alias/model differing from the evaluation.
    :raises AliasConflictError: the alias moved since the evaluation.
    :raises LockTimeoutError: another promotion of the same alias holds the lease too long.
    """
    ev = _parse_evaluation(evaluation)
    if force and not (reason and str(reason).strip()):
        raise PromotionRefusedError("force=True needs a reason (it is recorded with the promotion)")
    alias = alias or ev.alias or "champion"
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
    mv, created = register_candidate(
        client,
        name,
        run_id=ev.run_id,
        model_id=ev.model_id,
        model_uri=ev.model_uri,
        tags=version_tags,
    )
    version = str(mv.version)
    if not ev.passed and not force:
        text = f"not promoted: the evaluation failed ({ev.reason or 'no reason given'})"
        client.set_model_version_tag(name, version, "mlops.promotion_status", "rejected")
        log.info("%s version %s %s", name, version, text)
        return RegistryResult(
            promoted=False,
            registered_model_name=name,
            alias=alias,
            version=version,
            previous_version=current_holder(client, name, alias),
            reason=text,
            created_version=created,
            run_id=ev.run_id,
        )
    forced = bool(force and not ev.passed)
    why = str(reason).strip() if reason else f"evaluation {ev.reason or 'passed'}"
    if forced:
        why = f"forced despite a failed evaluation: {why}"
    with alias_lock(
        client, name, alias, owner=by, timeout=lock_timeout, lease_seconds=lease_seconds
    ) as lease:
        current = current_holder(client, name, alias)
        if current == version and ev.champion_version == version:
            return RegistryResult(
                promoted=False,
                registered_model_name=name,
                alias=alias,
                version=version,
                previous_version=current,
                reason=f"version {version} already holds {alias}",
                created_version=created,
                already_done=True,
                run_id=ev.run_id,
            )
        if current == version:
            return _complete_earlier_promotion(
                client, name, alias, version, ev, by, why, forced, created
            )
        if current != ev.champion_version:
            seen = ev.champion_version or "no holder (cold start)"
            raise AliasConflictError(
                f"{name}@{alias} moved since the evaluation: the candidate (run {ev.run_id}, "
                f"version {version}) was evaluated against {seen}, but the alias now points at "
                f"version {current}. Not overwriting it; evaluate again against the new holder."
            )
        lease.ensure_valid()
        client.set_registered_model_alias(name, alias, version)
        if current is not None:
            _set_previous(client, name, alias, current)
        event = _new_event(
            "promote",
            alias,
            version,
            current,
            current,
            by,
            why,
            forced,
            source_run_id=ev.run_id,
            evaluation_passed=ev.passed,
        )
        _record_promotion(client, name, alias, version, event, by, why, forced)
    log.info("%s@%s: version %s -> %s (%s)", name, alias, current, version, why)
    return RegistryResult(
        promoted=True,
        registered_model_name=name,
        alias=alias,
        version=version,
        previous_version=current,
        reason=why,
        forced=forced,
        created_version=created,
        run_id=ev.run_id,
        event_at=event.at,
    )


def _record_promotion(
    client: MlflowClient,
    name: str,
    alias: str,
    version: str,
    event: AliasEvent,
    by: str,
    why: str,
    forced: bool,
) -> None:
    """Record a promotion event: tags on the promoted version and on the version it replaced."""
    _record(
        client,
        name,
        event,
        version_tags={
            "mlops.promoted_at": event.at,
            "mlops.promoted_by": by,
            "mlops.promotion_reason": why,
            "mlops.promotion_forced": str(forced).lower(),
            "mlops.promoted_alias": alias,
            "mlops.promotion_status": "promoted",
        },
        replaced_tags={
            "mlops.demoted_at": event.at,
            "mlops.demoted_by": by,
            "mlops.replaced_by_version": version,
        },
    )


def _complete_earlier_promotion(
    client: MlflowClient,
    name: str,
    alias: str,
    version: str,
    ev: _Evaluation,
    by: str,
    why: str,
    forced: bool,
    created: bool,
) -> RegistryResult:
    """The alias already points at the candidate: an earlier try got that far; finish its records."""
    mv = client.get_model_version(name, version)
    recorded = [e for e in _events_of(mv, alias) if e.event == "promote"]
    mine = [e for e in recorded if e.by == by and e.replaced == ev.champion_version]
    if mine:
        event = max(mine, key=lambda e: e.at_ms)
        log.info("%s@%s already points at version %s (promoted %s)", name, alias, version, event.at)
    else:
        if ev.champion_version is not None:
            _set_previous(client, name, alias, ev.champion_version)
        event = _new_event(
            "promote",
            alias,
            version,
            ev.champion_version,
            ev.champion_version,
            by,
            why,
            forced,
            source_run_id=ev.run_id,
            evaluation_passed=ev.passed,
            completed_by_retry=True,
        )
        _record_promotion(client, name, alias, version, event, by, why, forced)
    return RegistryResult(
        promoted=True,
        registered_model_name=name,
        alias=alias,
        version=version,
        previous_version=event.replaced,
        reason=event.reason,
        forced=event.forced,
        created_version=created,
        already_done=True,
        run_id=ev.run_id,
        event_at=event.at,
    )


def rollback(
    client: MlflowClient,
    name: str,
    *,
    alias: str = "champion",
    to_version: str | int | None = None,
    reason: str,
    by: str = "",
    lock_timeout: float = 120.0,
    lease_seconds: float = 120.0,
) -> RegistryResult:
    """Move ``alias`` back to ``previous_<alias>`` (or to ``to_version``).

    Afterwards ``previous_<alias>`` is what it was when the restored version last received the
    alias through this module (removed if unknown), so repeated rollbacks walk back through the
    history. A retry of the same rollback (same ``by``) does not roll back twice.

    :raises PromotionRefusedError: no reason, unknown ``to_version``, missing registered model.
    :raises NoPreviousHolderError: nothing to roll back to.
    """
    from mlflow.exceptions import MlflowException

    if not (reason and str(reason).strip()):
        raise PromotionRefusedError("a rollback needs a reason (it is recorded)")
    try:
        client.get_registered_model(name)
    except MlflowException as err:
        if _error_code(err) == _NOT_FOUND:
            raise PromotionRefusedError(f"registered model {name!r} does not exist") from err
        raise
    with alias_lock(
        client, name, alias, owner=by, timeout=lock_timeout, lease_seconds=lease_seconds
    ) as lease:
        current = current_holder(client, name, alias)
        if current is not None and by:
            done = [
                e
                for e in _events_of(client.get_model_version(name, current), alias)
                if e.event == "rollback" and e.by == by
            ]
            if done:
                event = max(done, key=lambda e: e.at_ms)
                log.info("rollback by %s already done at %s", by, event.at)
                return RegistryResult(
                    promoted=True,
                    registered_model_name=name,
                    alias=alias,
                    version=current,
                    previous_version=event.replaced,
                    reason=event.reason,
                    already_done=True,
                    event_at=event.at,
                    action="rollback",
                )
        if to_version is not None:
            target = str(to_version)
            try:
                client.get_model_version(name, target)
            except MlflowException as err:
                raise PromotionRefusedError(f"{name} has no version {target}") from err
        else:
            target = current_holder(client, name, previous_alias(alias))  # type: ignore[assignment]
            if target is None:
                raise NoPreviousHolderError(
                    f"{name}@{alias} has no previous holder (alias {previous_alias(alias)!r} is "
                    "not set): nothing to roll back to; pass to_version to choose one"
                )
        if target == current:
            raise PromotionRefusedError(f"{name}@{alias} already points at version {target}")
        # previous_<alias> as it was when the target last received the alias
        restored_previous = None
        earlier = _events_of(client.get_model_version(name, target), alias)
        if earlier:
            restored_previous = max(earlier, key=lambda e: e.at_ms).previous
        if restored_previous == target:
            restored_previous = None
        lease.ensure_valid()
        client.set_registered_model_alias(name, alias, target)
        _set_previous(client, name, alias, restored_previous)
        event = _new_event("rollback", alias, target, current, restored_previous, by, str(reason))
        _record(
            client,
            name,
            event,
            version_tags={
                "mlops.promoted_at": event.at,
                "mlops.promoted_by": by,
                "mlops.promotion_reason": f"rollback: {reason}",
                "mlops.promotion_forced": "false",
                "mlops.promoted_alias": alias,
                "mlops.promotion_status": "promoted",
            },
            replaced_tags={
                "mlops.rolled_back_at": event.at,
                "mlops.rolled_back_by": by,
                "mlops.rollback_reason": str(reason),
                "mlops.replaced_by_version": target,
            },
        )
    log.info("%s@%s rolled back: version %s -> %s (%s)", name, alias, current, target, reason)
    return RegistryResult(
        promoted=True,
        registered_model_name=name,
        alias=alias,
        version=target,
        previous_version=current,
        reason=str(reason),
        event_at=event.at,
        action="rollback",
    )


# --------------------------------------------------------------------------- waiting on aliases


@dataclass
class AliasCheck:
    """Whether an alias satisfies a sensor's condition, and the holder it saw."""

    done: bool
    message: str
    version: str | None = None
    run_id: str | None = None
    model_exists: bool = True
    changed_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_alias(
    client: MlflowClient,
    name: str,
    alias: str,
    *,
    not_version: str | int | None = None,
    newer_than: datetime | date | str | float | None = None,
) -> AliasCheck:
    """Does ``name@alias`` point at a version other than ``not_version`` / changed after
    ``newer_than``? A missing model or alias is "not yet", never an error.

    "Changed after" means: the holder was created or updated after ``newer_than``, or (recorded
    by :func:`promote`/:func:`rollback`) received the alias after it.
    """
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException as err:
        if _error_code(err) == _NOT_FOUND:
            return AliasCheck(
                False, f"registered model {name!r} does not exist (yet)", model_exists=False
            )
        raise
    version = (getattr(model, "aliases", None) or {}).get(alias)
    if version is None:
        return AliasCheck(False, f"{name} has no alias {alias!r} (yet)")
    version = str(version)
    mv = client.get_model_version(name, version)
    if not_version is not None and version == str(not_version):
        return AliasCheck(
            False, f"{name}@{alias} still points at version {version}", version, mv.run_id
        )
    events = _events_of(mv, alias)
    changed_ms = max(
        [int(mv.creation_timestamp or 0), int(mv.last_updated_timestamp or 0)]
        + [e.at_ms for e in events]
    )
    if newer_than is not None:
        limit = _to_ms(newer_than)
        if changed_ms <= limit:
            return AliasCheck(
                False,
                f"{name}@{alias} points at version {version}, last changed {_iso(changed_ms)}, "
                f"not after {_iso(limit)}",
                version,
                mv.run_id,
                changed_at=_iso(changed_ms),
            )
    return AliasCheck(
        True,
        f"{name}@{alias} points at version {version}",
        version,
        mv.run_id,
        changed_at=_iso(changed_ms),
    )
