"""Promote an evaluated candidate to a registry alias, or roll the alias back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from mlops_provider.exceptions import PromotionConflict, PromotionError
from mlops_provider.hooks.mlflow import MlflowHook
from mlops_provider.links.mlflow import MlflowModelVersionLink, model_version_url
from mlops_provider.operators.training import push_keys, task_identity

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["PromoteModelOperator", "RollbackModelOperator"]


def _actor(context: Context) -> str:
    ident = task_identity(context)
    return ident["key"]


def _as_mapping(value: Any) -> Mapping[str, Any]:
    """The evaluation dict, also when templating rendered it to JSON or a Python literal."""
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str):
        import ast
        import json

        try:
            parsed = json.loads(value)
        except ValueError:
            try:
                parsed = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                parsed = None
        if isinstance(parsed, Mapping):
            return parsed
    raise PromotionError(
        "evaluation must be the dict EvaluateModelOperator returned (e.g. "
        f"evaluation=evaluate.output), got {type(value).__name__}: {str(value)[:200]}"
    )


class _RegistryOperator(BaseOperator):
    operator_extra_links = (MlflowModelVersionLink(),)
    ui_color = "#f7e6c4"

    def __init__(
        self,
        *,
        registered_model_name: str,
        lock_timeout: float = 120.0,
        lease_seconds: float = 120.0,
        mlflow_conn_id: str = MlflowHook.default_conn_name,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.registered_model_name = registered_model_name
        self.lock_timeout = lock_timeout
        self.lease_seconds = lease_seconds
        self.mlflow_conn_id = mlflow_conn_id

    @cached_property
    def hook(self) -> MlflowHook:
        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)

    def _finish(self, context: Context, result: Any) -> dict[str, Any]:
        if result.version:
            MlflowModelVersionLink.persist(
                context,
                model_version_url(
                    self.hook.target.tracking_uri, result.registered_model_name, result.version
                ),
            )
        out = dict(result.to_dict())
        push_keys(context, out, ("promoted", "version", "alias", "previous_version"))
        return out


class PromoteModelOperator(_RegistryOperator):
    """Register the evaluated candidate and move ``alias`` to it if the evaluation passed.

    Registration is idempotent: the version carries ``mlops.source_run_id`` and a retry reuses
    it; the registered model is created if missing. The alias moves only if the evaluation
    passed (or with ``force=True`` and a ``reason``), and only if it still points at the version
    the evaluation compared with (compare-and-set under a registry lease: see
    ``docs/registry.md``); otherwise :class:`PromotionConflict`. The replaced version gets the
    alias ``previous_<alias>``; the promotion is recorded as version tags
    (``mlops.promoted_at``, ``mlops.promoted_by``, ``mlops.promotion_reason``,
    ``mlops.promotion_forced``) and a history event (``mlops.alias_history.<alias>.<ms>``).

    :param registered_model_name: registered model (templated).
    :param evaluation: the dict EvaluateModelOperator returned, e.g. ``evaluate.output``
        (templated).
    :param alias: alias to move (default: the evaluation's, normally ``champion``) (templated).
    :param force: move the alias even though the evaluation failed; needs ``reason``.
    :param reason: why (recorded; required with ``force``) (templated).
    :param lock_timeout: seconds to wait for a concurrent promotion of the same alias.
    :param lease_seconds: lifetime of the registry lease (a crashed holder's lock expires).
    :param mlflow_conn_id: MLflow connection (templated).

    XCom: ``promoted``, ``registered_model_name``, ``version``, ``alias``,
    ``previous_version``, ``reason``, ``forced``, ``created_version``, ``already_done``,
    ``run_id``, ``event_at``, ``model_uri`` (``models:/<name>/<version>``), ``action``;
    ``promoted``, ``version``, ``alias`` and ``previous_version`` also under their own keys.

    :raises PromotionConflict: the alias moved since the evaluation.
    :raises PromotionError: force without reason, evaluation of another model/alias, lease
        not acquired in time.
    """

    template_fields: Sequence[str] = (
        "registered_model_name",
        "evaluation",
        "alias",
        "reason",
        "mlflow_conn_id",
    )

    def __init__(
        self,
        *,
        registered_model_name: str,
        evaluation: Mapping[str, Any] | str,
        alias: str | None = None,
        force: bool = False,
        reason: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(registered_model_name=registered_model_name, **kwargs)
        self.evaluation = evaluation
        self.alias = alias
        self.force = force
        self.reason = reason

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core import registry

        if self.force and not (self.reason and str(self.reason).strip()):
            raise PromotionError("force=True needs a reason: it is recorded with the promotion")
        evaluation = _as_mapping(self.evaluation)
        try:
            result = registry.promote(
                self.hook.client,
                self.registered_model_name,
                evaluation,
                alias=self.alias or None,
                force=self.force,
                reason=self.reason or None,
                by=_actor(context),
                lock_timeout=self.lock_timeout,
                lease_seconds=self.lease_seconds,
            )
        except registry.AliasConflictError as err:
            raise PromotionConflict(str(err)) from err
        except registry.RegistryError as err:
            raise PromotionError(str(err)) from err
        self.log.info(
            "%s %s version %s @%s (previous %s): %s",
            "promoted" if result.promoted else "did not promote",
            result.registered_model_name,
            result.version,
            result.alias,
            result.previous_version,
            result.reason,
        )
        return self._finish(context, result)


class RollbackModelOperator(_RegistryOperator):
    """Move ``alias`` back to the previous holder (``previous_<alias>``) or to ``to_version``.

    Serialized with promotions by the same registry lease and recorded the same way
    (``mlops.alias_history.<alias>.<ms>`` event with ``event: rollback``; the rolled-back version
    gets ``mlops.rolled_back_at`` / ``mlops.rollback_reason``). Afterwards ``previous_<alias>``
    is what it was when the restored version last received the alias, so a second rollback
    goes one step further back. A retry of the same task does not roll back twice.

    :param registered_model_name: registered model (templated).
    :param alias: alias to roll back (default ``champion``) (templated).
    :param to_version: explicit version to restore (default: the ``previous_<alias>`` holder)
        (templated).
    :param reason: why (required, recorded) (templated).
    :param lock_timeout: seconds to wait for a concurrent promotion of the same alias.
    :param lease_seconds: lifetime of the registry lease.
    :param mlflow_conn_id: MLflow connection (templated).

    XCom: as :class:`PromoteModelOperator` (``action`` = ``rollback``; ``version`` is the
    restored version, ``previous_version`` the one rolled back from).

    :raises PromotionError: no previous holder, unknown version or registered model, no reason.
    """

    template_fields: Sequence[str] = (
        "registered_model_name",
        "alias",
        "to_version",
        "reason",
        "mlflow_conn_id",
    )

    def __init__(
        self,
        *,
        registered_model_name: str,
        reason: str,
        alias: str = "champion",
        to_version: str | int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(registered_model_name=registered_model_name, **kwargs)
        self.alias = alias
        self.to_version = to_version
        self.reason = reason

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core import registry

        if not (self.reason and str(self.reason).strip()):
            raise PromotionError("a rollback needs a reason: it is recorded")
        to_version = self.to_version
        if to_version in ("", "None"):
            to_version = None
        try:
            result = registry.rollback(
                self.hook.client,
                self.registered_model_name,
                alias=self.alias or "champion",
                to_version=to_version,
                reason=str(self.reason),
                by=_actor(context),
                lock_timeout=self.lock_timeout,
                lease_seconds=self.lease_seconds,
            )
        except registry.RegistryError as err:
            raise PromotionError(str(err)) from err
        self.log.info(
            "rolled %s@%s back from version %s to %s: %s",
            result.registered_model_name,
            result.alias,
            result.previous_version,
            result.version,
            result.reason,
        )
        return self._finish(context, result)
