"""The alias lease: compare-and-set on an alias without a conditional update in MLflow.

Promotions and rollbacks of one ``(model, alias)`` are serialized by a lease: a transient
registered model named ``<model>.<alias>.mlops-lock``. Creating a registered model is atomic in
every MLflow backend (the name is a primary key / unique), so exactly one of several concurrent
promoters gets it. The lock model is deleted on release, so it is only visible while a
promotion runs.

A holder that dies leaves its lock behind. The lock records its holding process
(``mlops.lock.holder``, ``<host>p<pid>`` of :func:`mlops_provider.core.processes.this_owner`):
when that process is dead on the acquirer's host, the next promoter removes the lock at once;
otherwise (another host, or alive) it expires after ``lease_seconds``
(``mlops.lock.expires_at``, the holder's wall clock) and the next promoter removes it. That
take-over is itself guarded by an atomic create (``<lock>.takeover-<token>``) so two promoters
cannot both remove locks. Guarantees: mutual exclusion holds as long as a holder finishes
within its lease (a holder re-checks its lease, by its monotonic clock, right before moving the
alias and gives up if less than ``lease_seconds / 4`` remain) and worker clocks agree to within
a small fraction of the lease. Changes made outside this package (UI, other tools) are not
serialized.
"""

from __future__ import annotations

import logging
import random
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops_provider.core.models import is_not_found
from mlops_provider.core.processes import owner_alive, this_owner
from mlops_provider.core.registry.errors import LockTimeoutError, lost_create_race

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["LOCK_SUFFIX", "Lease", "alias_lock", "lock_name"]

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".mlops-lock"
_LOCK_TOKEN = "mlops.lock.token"
_LOCK_OWNER = "mlops.lock.owner"
_LOCK_EXPIRES = "mlops.lock.expires_at"
_LOCK_HOLDER = "mlops.lock.holder"  # the holding process, core.processes.this_owner()


def lock_name(name: str, alias: str) -> str:
    """Name of the transient registered model used as the lease of ``(name, alias)``."""
    return f"{name}.{alias}{LOCK_SUFFIX}"


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


def _stale(held: Any, default_lease: float) -> bool:
    """The lock's holder is gone: its lease expired, or its process is dead on this host."""
    tags = getattr(held, "tags", None) or {}
    if owner_alive(tags.get(_LOCK_HOLDER, "")) is False:
        log.warning("the holder %s of lock %s is dead", tags.get(_LOCK_HOLDER), held.name)
        return True
    return time.time() > _lock_expiry(held, default_lease)


def _read_lock(client: MlflowClient, lock: str) -> Any | None:
    """The lock model, or ``None`` when nobody holds it."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(lock)
    except MlflowException as err:
        if is_not_found(err):
            return None
        raise


def _take_over(client: MlflowClient, lock: str, stale_token: str) -> None:
    """Remove a stale lock (expired, or its holder dead), at most one taker per stale lock."""
    from mlflow.exceptions import MlflowException

    guard = f"{lock}.takeover-{stale_token[:16]}"
    try:
        client.create_registered_model(guard, tags={"mlops.lock.takeover_of": stale_token})
    except MlflowException as err:
        if lost_create_race(err):
            return
        raise
    try:
        current = _read_lock(client, lock)
        if current is not None and (current.tags or {}).get(_LOCK_TOKEN) == stale_token:
            log.warning(
                "removing the stale lock %s of %s (expired, or its holder is dead)",
                lock,
                (current.tags or {}).get(_LOCK_OWNER),
            )
            client.delete_registered_model(lock)
    finally:
        try:
            client.delete_registered_model(guard)
        except MlflowException:
            pass


def _try_create(
    client: MlflowClient, name: str, alias: str, token: str, owner: str, lease_seconds: float
) -> bool:
    """Create the lock model; ``False`` when another caller holds it."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(
            lock_name(name, alias),
            tags={
                _LOCK_TOKEN: token,
                _LOCK_OWNER: owner,
                _LOCK_EXPIRES: f"{time.time() + lease_seconds:.3f}",
                _LOCK_HOLDER: this_owner(),
            },
            description=f"Transient promotion lock of {name}@{alias} (deleted on release).",
        )
        return True
    except MlflowException as err:
        if not lost_create_race(err):
            raise
        return False


def _acquire(
    client: MlflowClient,
    name: str,
    alias: str,
    token: str,
    owner: str,
    *,
    timeout: float,
    lease_seconds: float,
) -> float:
    """Wait for the lease; returns the monotonic time before the winning create."""
    lock = lock_name(name, alias)
    deadline = time.monotonic() + timeout
    attempt = 0
    while True:
        started = time.monotonic()
        if _try_create(client, name, alias, token, owner, lease_seconds):
            return started
        held = _read_lock(client, lock)
        if held is None:
            continue  # released meanwhile: try again at once
        held_tags = held.tags or {}
        if held_tags.get(_LOCK_TOKEN) == token:
            return started  # our create went through, its answer was lost (a retried request)
        if _stale(held, lease_seconds) and held_tags.get(_LOCK_TOKEN):
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
    token = uuid.uuid4().hex
    owner = owner or f"{socket.gethostname()}:{uuid.getnode()}"
    started = _acquire(
        client, name, alias, token, owner, timeout=timeout, lease_seconds=lease_seconds
    )
    lease = Lease(lock_name(name, alias), token, owner, lease_seconds, started)
    log.info("locked %s@%s (%s)", name, alias, lease.name)
    try:
        yield lease
    finally:
        _release(client, lease)


def _release(client: MlflowClient, lease: Lease) -> None:
    from mlflow.exceptions import MlflowException

    from mlops_provider.core.errors import MlflowUnreachableError

    if lease.remaining() <= 0:
        log.warning("lease %s expired before release; leaving it to expire", lease.name)
        return
    try:
        current = client.get_registered_model(lease.name)
        if (current.tags or {}).get(_LOCK_TOKEN) == lease.token:
            client.delete_registered_model(lease.name)
    except (MlflowException, MlflowUnreachableError) as err:
        if not is_not_found(err):
            log.warning("could not release %s: %s (it expires by itself)", lease.name, err)
