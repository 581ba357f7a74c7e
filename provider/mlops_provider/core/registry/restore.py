"""Rollback: move the alias back to ``previous_<alias>`` (or to a chosen version).

:func:`rollback` resolves (the holder and the target under the lease), computes (pure:
:func:`restored_previous`) and publishes (alias, ``previous_<alias>``, event, tags).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mlops_provider.core.failpoints import failpoint
from mlops_provider.core.models import (
    DEFAULT_ALIAS,
    ModelNotFoundError,
    ModelVersion,
    alias_holder,
    model_version_from_entity,
    resolve,
)
from mlops_provider.core.registry import history, journal
from mlops_provider.core.registry.errors import NoPreviousHolderError, PromotionRefusedError
from mlops_provider.core.registry.existence import holder_or_missing
from mlops_provider.core.registry.history import (
    AliasEvent,
    events_of,
    latest_event,
    new_event,
    previous_alias,
)
from mlops_provider.core.registry.lock import alias_lock
from mlops_provider.core.registry.promotion import RegistryResult, held_version
from mlops_provider.core.registry.registration import search_versions
from mlops_provider.core.runs import quote

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["resolve_version", "restored_previous", "rollback"]

log = logging.getLogger(__name__)


def _version_of_run(client: MlflowClient, name: str, run_id: str, uri: str) -> ModelVersion:
    versions = search_versions(client, f"name = {quote(name)} and run_id = {quote(run_id)}")
    if len(versions) != 1:
        found = sorted(str(v.version) for v in versions)
        problem = f"versions {found} were" if found else "no version was"
        raise PromotionRefusedError(
            f"{uri}: {problem} registered from run {run_id} under {name!r}; pass the version"
        )
    return model_version_from_entity(versions[0], requested_uri=uri)


def resolve_version(client: MlflowClient, name: str, version: str | int) -> ModelVersion:
    """A version of ``name`` from a number or any model URI (``models:/<name>/<v>``,
    ``models:/<name>@<alias>``, ``models:/m-<id>``, ``runs:/<run_id>/<path>``: the version
    registered from that model).

    :raises PromotionRefusedError: no such version, or a version of another registered model.
    """
    text = str(version).strip()
    if text.isdigit():
        try:
            return resolve(client, f"models:/{name}/{int(text)}", ready=False)
        except ModelNotFoundError as err:
            raise PromotionRefusedError(f"{name} has no version {text}") from err
    found = resolve(client, text, ready=False)
    if not found.registered:
        return _version_of_run(client, name, str(found.run_id), text)
    if found.name != name:
        raise PromotionRefusedError(f"{text} is a version of {found.name!r}, not of {name!r}")
    return found


def _previous_holder(client: MlflowClient, name: str, alias: str) -> ModelVersion:
    target = alias_holder(client, name, previous_alias(alias))
    if target is None:
        raise NoPreviousHolderError(
            f"{name}@{alias} has no previous holder (alias {previous_alias(alias)!r} is "
            "not set): nothing to roll back to; pass to_version to choose one"
        )
    return target


def restored_previous(target: ModelVersion, alias: str) -> str | None:
    """``previous_<alias>`` as it was when ``target`` last received the alias (pure)."""
    last = latest_event(events_of(target, alias))
    previous = last.previous if last else None
    return None if previous == target.version else previous


def _earlier_rollback(
    name: str, alias: str, holder: ModelVersion | None, by: str
) -> RegistryResult | None:
    """The result of this very rollback when an earlier try (same ``by``) did it (pure)."""
    if holder is None or not by:
        return None
    event = latest_event(events_of(holder, alias), lambda e: e.event == "rollback" and e.by == by)
    if event is None:
        return None
    log.info("rollback by %s already done at %s", by, event.at)
    return _result(name, alias, event, holder.run_id, already_done=True)


def _result(
    name: str,
    alias: str,
    event: AliasEvent,
    run_id: str | None,
    *,
    already_done: bool = False,
    status: str = "rolled_back",
) -> RegistryResult:
    return RegistryResult(
        promoted=status == "rolled_back",
        registered_model_name=name,
        alias=alias,
        version=event.version,
        previous_version=event.replaced,
        reason=event.reason,
        already_done=already_done,
        event_at=event.at,
        action="rollback",
        status=status,
        model=held_version(name, alias, event.version, run_id),
    )


def _interval_done(
    name: str, alias: str, event: AliasEvent | None, by: str
) -> RegistryResult | None:
    """The result when this data interval was already rolled back (by this task's earlier try:
    ``rolled_back``, by another DAG run: ``unchanged``), else ``None`` (pure)."""
    if event is None:
        return None
    mine = bool(by) and event.by == by
    log.info("rollback of %s@%s for %s already done at %s", name, alias, event.interval, event.at)
    return _result(
        name,
        alias,
        event,
        None,
        already_done=True,
        status="rolled_back" if mine else "unchanged",
    )


def _rollback_intent(event: AliasEvent) -> journal.Intent:
    """The journal intent of a rollback: the restored version gets status ``restored``, the
    version rolled back from ``rolled_back``; ``previous_<alias>`` is restored too."""
    return journal.Intent(
        event=event,
        received_tags=history.received_tags(event, f"rollback: {event.reason}", status="restored"),
        replaced_tags={
            "mlops.rolled_back_at": event.at,
            "mlops.rolled_back_by": event.by,
            "mlops.rollback_reason": event.reason,
            "mlops.replaced_by_version": event.version,
            "mlops.promotion_status": "rolled_back",
        },
        set_previous=True,
    )


def rollback(
    client: MlflowClient,
    name: str,
    *,
    alias: str = DEFAULT_ALIAS,
    to_version: str | int | None = None,
    reason: str,
    by: str = "",
    interval: str = "",
    lock_timeout: float = 120.0,
    lease_seconds: float = 120.0,
) -> RegistryResult:
    """Move ``alias`` back to ``previous_<alias>`` (or to ``to_version``: a version number or
    any model URI of a version of ``name``).

    Afterwards ``previous_<alias>`` is what it was when the restored version last received the
    alias through this package (removed if unknown), so repeated rollbacks walk back through
    the history. A retry of the same rollback (same ``by``) does not roll back twice, nor
    does another DAG run for the same ``interval`` (the work identity recorded on the event):
    both return ``already_done`` (status ``rolled_back`` for the same ``by``, else
    ``unchanged``). The change goes through the journal (:mod:`.journal`) like a promotion; an
    unfinished change a crashed attempt left is completed first.

    :raises PromotionRefusedError: no reason, unknown ``to_version``, a registered model or
        alias that does not exist (the message names those that do).
    :raises NoPreviousHolderError: nothing to roll back to.
    """
    if not (reason and str(reason).strip()):
        raise PromotionRefusedError("a rollback needs a reason (it is recorded)")
    try:
        holder_or_missing(
            client,
            name,
            alias,
            allow_missing=False,
            hint="A rollback moves an alias that exists; it never creates one",
        )
    except ModelNotFoundError as err:
        raise PromotionRefusedError(str(err)) from err
    with alias_lock(
        client, name, alias, owner=by, timeout=lock_timeout, lease_seconds=lease_seconds
    ) as lease:
        failpoint("registry.locked")
        journal.complete_pending(client, name, alias)
        done = _interval_done(
            name, alias, history.interval_event(client, name, alias, "rollback", interval), by
        )
        if done is not None:
            return done
        holder = alias_holder(client, name, alias)
        current = holder.version if holder else None
        done = _earlier_rollback(name, alias, holder, by)
        if done is not None:
            return done
        if to_version is not None:
            target = resolve_version(client, name, to_version)
        else:
            target = _previous_holder(client, name, alias)
        if target.version == current:
            raise PromotionRefusedError(f"{name}@{alias} already points at version {current}")
        event = new_event(
            "rollback",
            alias,
            str(target.version),
            current,
            restored_previous(target, alias),
            by,
            str(reason),
            interval=interval,
        )
        lease.ensure_valid()
        journal.run(client, name, _rollback_intent(event))
    log.info(
        "%s@%s rolled back: version %s -> %s (%s)", name, alias, current, target.version, reason
    )
    return _result(name, alias, event, target.run_id)
