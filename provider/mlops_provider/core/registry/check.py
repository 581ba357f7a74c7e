"""Waiting on an alias: does ``name@alias`` satisfy a sensor's condition yet?"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from mlops_provider.core.models import (
    ModelNotFoundError,
    ModelVersion,
    registered_model_or_error,
    version_uri,
)
from mlops_provider.core.registry.existence import holder_or_missing
from mlops_provider.core.registry.history import events_of
from mlops_provider.core.times import from_ms, to_ms

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["AliasCheck", "alias_result", "check_alias", "check_holder"]


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


def _iso_ms(ms: int) -> str:
    return from_ms(ms).isoformat(timespec="milliseconds")


def check_holder(
    holder: ModelVersion,
    alias: str,
    *,
    not_version: str | int | None = None,
    newer_than: datetime | date | str | float | None = None,
) -> AliasCheck:
    """The condition on a known holder (pure): another version than ``not_version``, and
    created, or given the alias through this package, after ``newer_than``.

    :raises InputError: ``newer_than`` is not a time.
    """
    where = f"{holder.name}@{alias}"
    version, run_id = str(holder.version), holder.run_id
    if not_version is not None and version == str(not_version):
        return AliasCheck(False, f"{where} still points at version {version}", version, run_id)
    changed_ms = max(
        [int(holder.creation_timestamp or 0)] + [e.at_ms for e in events_of(holder, alias)]
    )
    changed_at = _iso_ms(changed_ms)
    if newer_than is not None and changed_ms <= (limit := to_ms(newer_than)):
        return AliasCheck(
            False,
            f"{where} points at version {version}, last changed {changed_at}, not after "
            f"{_iso_ms(limit)}",
            version,
            run_id,
            changed_at=changed_at,
        )
    return AliasCheck(
        True, f"{where} points at version {version}", version, run_id, changed_at=changed_at
    )


def check_alias(
    client: MlflowClient,
    name: str,
    alias: str,
    *,
    not_version: str | int | None = None,
    newer_than: datetime | date | str | float | None = None,
    wait_for_creation: bool = False,
) -> AliasCheck:
    """Does ``name@alias`` point at a version other than ``not_version`` / changed after
    ``newer_than``?

    "Changed after" means: the holder was created after ``newer_than``, or (recorded by
    :func:`promote`/:func:`rollback`) received the alias after it.

    :param wait_for_creation: a registered model or alias that does not exist is "not yet"
        (it is awaited); by default it is an error (most often a typo).
    :raises ModelNotFoundError: the registered model or the alias does not exist and not
        ``wait_for_creation``; the message names the registered models (or the model's aliases)
        and the closest one.
    """
    holder = holder_or_missing(
        client,
        name,
        alias,
        allow_missing=wait_for_creation,
        hint="Pass wait_for_creation=True to wait until it is created",
    )
    if holder is not None:
        return check_holder(holder, alias, not_version=not_version, newer_than=newer_than)
    try:
        registered_model_or_error(client, name)
    except ModelNotFoundError:
        return AliasCheck(
            False, f"registered model {name!r} does not exist (yet)", model_exists=False
        )
    return AliasCheck(False, f"{name} has no alias {alias!r} (yet)")


def alias_result(name: str, alias: str, check: Mapping[str, Any]) -> dict[str, Any]:
    """The ModelAliasSensor's XCom for a satisfied check (``check``: ``AliasCheck.to_dict()``)."""
    version = check.get("version")
    return {
        "registered_model_name": name,
        "alias": alias,
        "version": version,
        "run_id": check.get("run_id"),
        "model_uri": version_uri(name, version) if version else None,
        "changed_at": check.get("changed_at"),
    }
