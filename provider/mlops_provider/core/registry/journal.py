"""The promotion journal: an alias change as a recoverable sequence of idempotent steps.

Under the alias lease a promotion or rollback goes through these steps, with a crash point
(:func:`mlops_provider.core.failpoints.failpoint`) after each::

    lock -> register -> intent -> alias -> previous -> history -> tags -> demote -> clear
    -> release

Before the alias moves, the whole change (the event with its time, the tags of the version that
receives the alias and of the one it replaces, ``previous_<alias>``) is written as one intent:
the registered-model tag ``mlops.pending.<alias>`` (JSON). Every later step only repeats what
the intent says (same alias targets, same tag keys and values), so it can be done twice. The
next attempt that takes the lease (a retry of the same task, or a new DAG run for the same data
interval) finds the intent and completes it before doing anything else; a crash before the
intent leaves at most a lock (taken over at once when its holder is dead on this host) and a
registered version (found again by its source run). A crash after the intent is cleared leaves
only the lock.

:data:`POINTS` names the crash points (``MLOPS_KILL_AT=<point>`` kills the process there).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mlops_provider.core.failpoints import failpoint
from mlops_provider.core.registry import history
from mlops_provider.core.registry.history import AliasEvent

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["PENDING_TAG_PREFIX", "POINTS", "Intent", "complete_pending", "pending", "run"]

log = logging.getLogger(__name__)

PENDING_TAG_PREFIX = "mlops.pending."

POINTS: tuple[str, ...] = (
    "registry.locked",
    "registry.registered",
    "registry.intent",
    "registry.alias",
    "registry.previous",
    "registry.history",
    "registry.tags",
    "registry.demoted",
    "registry.cleared",
)


def pending_key(alias: str) -> str:
    """The registered-model tag holding the unfinished change of ``alias``."""
    return f"{PENDING_TAG_PREFIX}{alias}"


@dataclass
class Intent:
    """One alias change, complete enough to be redone by another process."""

    event: AliasEvent
    received_tags: dict[str, str]
    replaced_tags: dict[str, str] = field(default_factory=dict)
    set_previous: bool = True  # False: leave previous_<alias> alone (a cold start)

    def to_json(self) -> str:
        return json.dumps(
            {
                "event": json.loads(self.event.to_json()),
                "received_tags": self.received_tags,
                "replaced_tags": self.replaced_tags,
                "set_previous": self.set_previous,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Intent:
        data = json.loads(text)
        return cls(
            event=AliasEvent.from_json(json.dumps(data["event"])),
            received_tags=dict(data.get("received_tags") or {}),
            replaced_tags=dict(data.get("replaced_tags") or {}),
            set_previous=bool(data.get("set_previous", True)),
        )


def pending(client: MlflowClient, name: str, alias: str) -> Intent | None:
    """The unfinished change of ``name@alias`` a crashed attempt left, if any."""
    from mlflow.exceptions import MlflowException

    from mlops_provider.core.models import is_not_found

    try:
        model = client.get_registered_model(name)
    except MlflowException as err:
        if is_not_found(err):
            return None
        raise
    text = (model.tags or {}).get(pending_key(alias))
    if not text:
        return None
    try:
        return Intent.from_json(text)
    except (ValueError, KeyError, TypeError) as err:
        log.warning("unreadable pending change %s on %s (%s): removing it", text, name, err)
        client.delete_registered_model_tag(name, pending_key(alias))
        return None


def _apply(client: MlflowClient, name: str, intent: Intent) -> None:
    """The steps after the intent; each is idempotent."""
    event = intent.event
    client.set_registered_model_alias(name, event.alias, event.version)
    failpoint("registry.alias")
    if intent.set_previous:
        history.set_previous(client, name, event.alias, event.previous)
    failpoint("registry.previous")
    client.set_model_version_tag(
        name, event.version, history.history_key(event.alias, event.at_ms), event.to_json()
    )
    failpoint("registry.history")
    for key, value in intent.received_tags.items():
        client.set_model_version_tag(name, event.version, key, str(value))
    failpoint("registry.tags")
    if event.replaced and event.replaced != event.version:
        for key, value in intent.replaced_tags.items():
            client.set_model_version_tag(name, event.replaced, key, str(value))
    failpoint("registry.demoted")
    client.delete_registered_model_tag(name, pending_key(event.alias))
    failpoint("registry.cleared")


def run(client: MlflowClient, name: str, intent: Intent) -> None:
    """Write the intent, then carry it out (call under the lease)."""
    client.set_registered_model_tag(name, pending_key(intent.event.alias), intent.to_json())
    failpoint("registry.intent")
    _apply(client, name, intent)


def complete_pending(client: MlflowClient, name: str, alias: str) -> Intent | None:
    """Finish the change a crashed attempt left (call under the lease); returns it."""
    intent = pending(client, name, alias)
    if intent is None:
        return None
    log.warning(
        "completing the unfinished %s of %s@%s to version %s (by %s, %s)",
        intent.event.event,
        name,
        alias,
        intent.event.version,
        intent.event.by,
        intent.event.at,
    )
    _apply(client, name, intent)
    return intent
