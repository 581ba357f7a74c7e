"""Alias history: one event per alias change, recorded on the version that received the alias.

Every alias change made by this package is recorded as a tag
``mlops.alias_history.<alias>.<epoch_ms>`` holding a JSON event (who, what, when, why). One tag
per event, written inside the lease, spread over versions: it keeps working after many
promotions (no single tag grows) and under concurrency (no read-modify-write).
:func:`alias_holder_at` answers "which version held the alias at time T" from these events.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from mlops_provider.core.registry.registration import search_versions
from mlops_provider.core.runs import quote
from mlops_provider.core.times import from_ms, now_ms, to_ms

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "HISTORY_TAG_PREFIX",
    "AliasEvent",
    "alias_history",
    "alias_holder_at",
    "events_of",
    "history_key",
    "interval_event",
    "latest_event",
    "new_event",
    "previous_alias",
    "received_tags",
    "set_previous",
]

log = logging.getLogger(__name__)

HISTORY_TAG_PREFIX = "mlops.alias_history."


def previous_alias(alias: str) -> str:
    """The alias that keeps the replaced holder: ``previous_<alias>``."""
    return f"previous_{alias}"


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
    interval: str = ""  # the work identity (data interval) of the change; "" if unknown

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> AliasEvent:
        data = json.loads(text)
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


def history_key(alias: str, at_ms: int) -> str:
    """The tag key of an event of ``alias`` at ``at_ms``."""
    return f"{HISTORY_TAG_PREFIX}{alias}.{at_ms:013d}"


def events_of(version: Any, alias: str) -> list[AliasEvent]:
    """The events of ``alias`` recorded on one version (an MLflow entity or a ModelVersion)."""
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


def latest_event(
    events: Iterable[AliasEvent], where: Callable[[AliasEvent], bool] = lambda e: True
) -> AliasEvent | None:
    """The newest of ``events`` satisfying ``where``."""
    chosen = [e for e in events if where(e)]
    return max(chosen, key=lambda e: e.at_ms) if chosen else None


def alias_history(client: MlflowClient, name: str, alias: str) -> list[AliasEvent]:
    """All recorded changes of ``alias`` of ``name``, oldest first."""
    events: list[AliasEvent] = []
    for version in search_versions(client, f"name = {quote(name)}"):
        events.extend(events_of(version, alias))
    events.sort(key=lambda e: (e.at_ms, e.version))
    return events


def alias_holder_at(
    client: MlflowClient, name: str, alias: str, when: datetime | date | str | float | int
) -> str | None:
    """The version that held ``alias`` at ``when`` according to the recorded history.

    ``when``: a datetime (naive = UTC), a date (its midnight UTC), an ISO string or epoch
    seconds/milliseconds. Returns None before the first recorded change. Only changes made
    through this package are recorded.

    :raises InputError: ``when`` is not a time.
    """
    at = to_ms(when)
    holder = None
    for event in alias_history(client, name, alias):
        if event.at_ms <= at:
            holder = event.version
        else:
            break
    return holder


def new_event(
    kind: str,
    alias: str,
    version: str,
    replaced: str | None,
    previous: str | None,
    by: str,
    reason: str,
    forced: bool = False,
    *,
    interval: str = "",
    **extra: Any,
) -> AliasEvent:
    """An event stamped now (epoch ms, and ISO with milliseconds)."""
    at_ms = now_ms()
    return AliasEvent(
        event=kind,
        alias=alias,
        version=str(version),
        replaced=None if replaced is None else str(replaced),
        previous=None if previous is None else str(previous),
        at_ms=at_ms,
        at=from_ms(at_ms).isoformat(timespec="milliseconds"),
        by=by,
        reason=reason,
        forced=forced,
        extra={k: v for k, v in extra.items() if v is not None},
        interval=interval,
    )


def received_tags(
    event: AliasEvent, reason: str, *, forced: bool = False, status: str = "promoted"
) -> dict[str, str]:
    """The tags of the version that received the alias (a promotion: status ``promoted``; a
    rollback: ``restored``)."""
    tags = {
        "mlops.promoted_at": event.at,
        "mlops.promoted_by": event.by,
        "mlops.promotion_reason": reason,
        "mlops.promotion_forced": str(forced).lower(),
        "mlops.promoted_alias": event.alias,
        "mlops.promotion_status": status,
    }
    if event.interval:
        tags["mlops.promotion_interval"] = event.interval
    return tags


def interval_event(
    client: MlflowClient, name: str, alias: str, kind: str, interval: str
) -> AliasEvent | None:
    """The latest ``kind`` event of ``alias`` recorded for the work identity ``interval``."""
    if not interval:
        return None
    return latest_event(
        alias_history(client, name, alias), lambda e: e.event == kind and e.interval == interval
    )


def set_previous(client: MlflowClient, name: str, alias: str, version: str | None) -> None:
    """Point ``previous_<alias>`` at ``version`` (remove it for ``None``)."""
    from mlflow.exceptions import MlflowException

    prev = previous_alias(alias)
    if version is None:
        try:
            client.delete_registered_model_alias(name, prev)
        except MlflowException as err:
            log.info("no %s alias to remove: %s", prev, err)
        return
    client.set_registered_model_alias(name, prev, str(version))
