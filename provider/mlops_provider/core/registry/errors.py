"""Errors of the registry core, and how MLflow says that a create lost a race."""

from __future__ import annotations

from mlops_provider.core.errors import CoreError
from mlops_provider.core.models import is_not_found

__all__ = [
    "AliasConflictError",
    "LockTimeoutError",
    "NoPreviousHolderError",
    "PromotionRefusedError",
    "RegistryError",
    "lost_create_race",
]

_ALREADY_EXISTS = ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS")


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


def lost_create_race(err: Exception) -> bool:
    """Whether a ``create_registered_model`` failed because another caller won the race.

    The name exists already; or MLflow's SQL store, answering a unique-key violation by reading
    the existing model, found it deleted by its holder in between ("not found").
    """
    code = str(getattr(err, "error_code", "") or "")
    return code in _ALREADY_EXISTS or is_not_found(err)
