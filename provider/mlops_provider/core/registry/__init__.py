"""Model registry: idempotent registration, alias promotion with compare-and-set, rollback,
history and waiting on an alias.

Modules, in the order of a promotion:

- :mod:`.registration`: a candidate is registered once per source run (tag
  ``mlops.source_run_id``, set atomically with the version; a retry finds it).
- :mod:`.lock`: the alias lease. MLflow has no conditional alias update; promotions and
  rollbacks of one ``(model, alias)`` are serialized by a transient registered model
  ``<model>.<alias>.mlops-lock`` (creating a registered model is atomic in every backend).
  Inside the lease the promoter re-reads the alias and moves it only if it still points where
  the evaluation saw it, otherwise :class:`AliasConflictError`.
- :mod:`.journal`: an alias change as a recoverable sequence of idempotent steps under the
  lease (intent tag ``mlops.pending.<alias>`` on the registered model; crash points
  :data:`POINTS`); the next attempt completes what a crashed one left.
- :mod:`.promotion`: :func:`promote`; :mod:`.restore`: :func:`rollback`. Both take the work
  identity ``interval``: a rerun of one data interval as a new DAG run changes nothing.
- :mod:`.history`: every alias change made here is recorded on the version that received the
  alias as a tag ``mlops.alias_history.<alias>.<epoch_ms>`` holding a JSON event;
  :func:`alias_holder_at` answers "which version held the alias at time T". Each promotion also
  sets ``mlops.promoted_at`` / ``mlops.promoted_by`` / ``mlops.promotion_reason`` on the
  promoted version, and the replaced version keeps the alias ``previous_<alias>``.
- :mod:`.check`: :func:`check_alias`, the condition of ``ModelAliasSensor`` and its trigger.
- :mod:`.existence`: what exists, for the error a misspelt model or alias gets
  (:func:`missing_holder`: the registered models or the model's aliases, and "did you mean").
  A missing model or alias is refused by the evaluation, the promotion and the sensor unless
  the caller said a first model is meant (``cold_start``, ``wait_for_creation``).

Who holds an alias now is :func:`mlops_provider.core.models.alias_holder`. No module here
imports MLflow at module level.
"""

from __future__ import annotations

from mlops_provider.core.registry.check import AliasCheck, alias_result, check_alias
from mlops_provider.core.registry.errors import (
    AliasConflictError,
    LockTimeoutError,
    NoPreviousHolderError,
    PromotionRefusedError,
    RegistryError,
)
from mlops_provider.core.registry.existence import (
    holder_or_missing,
    missing_holder,
    registered_model_names,
)
from mlops_provider.core.registry.history import (
    HISTORY_TAG_PREFIX,
    AliasEvent,
    alias_history,
    alias_holder_at,
    previous_alias,
)
from mlops_provider.core.registry.journal import PENDING_TAG_PREFIX, POINTS
from mlops_provider.core.registry.lock import LOCK_SUFFIX, Lease, alias_lock, lock_name
from mlops_provider.core.registry.promotion import RegistryResult, promote
from mlops_provider.core.registry.registration import (
    SOURCE_RUN_TAG,
    find_version_for_run,
    register_candidate,
)
from mlops_provider.core.registry.restore import rollback

__all__ = [
    "SOURCE_RUN_TAG",
    "HISTORY_TAG_PREFIX",
    "LOCK_SUFFIX",
    "PENDING_TAG_PREFIX",
    "POINTS",
    "RegistryError",
    "PromotionRefusedError",
    "AliasConflictError",
    "LockTimeoutError",
    "NoPreviousHolderError",
    "Lease",
    "AliasEvent",
    "AliasCheck",
    "RegistryResult",
    "alias_result",
    "previous_alias",
    "lock_name",
    "find_version_for_run",
    "register_candidate",
    "alias_lock",
    "promote",
    "rollback",
    "alias_history",
    "alias_holder_at",
    "check_alias",
    "holder_or_missing",
    "missing_holder",
    "registered_model_names",
]
