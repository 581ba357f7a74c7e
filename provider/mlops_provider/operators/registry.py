"""Promote an evaluated candidate to a registry alias, or roll the alias back.

Thin shells over :mod:`mlops_provider.core.registry`: templated parameters are coerced with
:mod:`mlops_provider.core.params`, one core function does the work and returns the result
(docs/results.md); core errors become :class:`~mlops_provider.exceptions.PromotionError`
(:class:`~mlops_provider.exceptions.PromotionConflict` when the alias moved).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mlops_provider.exceptions import PromotionConflict, PromotionError
from mlops_provider.links.mlflow import MlflowModelVersionLink
from mlops_provider.operators._base import MLFLOW_CONN_ID, MlopsBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["PromoteModelOperator", "PromotionConflict", "PromotionError", "RollbackModelOperator"]


class _RegistryOperator(MlopsBaseOperator):
    """What promotion and rollback share: the registered model, the lease, the connection."""

    error_class = PromotionError
    push_keys = ("promoted", "version", "alias", "previous_version")
    operator_extra_links = (MlflowModelVersionLink(),)
    ui_color = "#f7e6c4"

    def __init__(
        self,
        *,
        registered_model_name: str,
        lock_timeout: float = 120.0,
        lease_seconds: float = 120.0,
        mlflow_conn_id: str = MLFLOW_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.registered_model_name = registered_model_name
        self.lock_timeout = lock_timeout
        self.lease_seconds = lease_seconds
        self.mlflow_conn_id = mlflow_conn_id

    def _lease(self) -> dict[str, Any]:
        """``name``, ``lock_timeout`` and ``lease_seconds`` as the core takes them."""
        from mlops_provider.core import params
        from mlops_provider.core.errors import ParameterError

        name = params.as_str(self.registered_model_name, "registered_model_name")
        if not name:
            raise ParameterError("registered_model_name", "a registered model name is required")
        return {
            "name": name,
            "lock_timeout": params.as_float(self.lock_timeout, "lock_timeout", minimum=0),
            "lease_seconds": params.as_float(self.lease_seconds, "lease_seconds", minimum=1),
        }


class PromoteModelOperator(_RegistryOperator):
    """Register the evaluated candidate and move ``alias`` to it if the evaluation passed.

    Registration is idempotent: the version carries ``mlops.source_run_id`` and a retry reuses
    it. A registered model or a first alias is created only when the evaluation was an explicit
    cold start (``EvaluateModelOperator(cold_start=True)`` found no holder: its result says
    ``cold_start``); otherwise a registered model or alias that does not exist fails the task,
    naming the registered models (or the model's aliases) and the closest one. The candidate's
    run must exist. Both are checked before anything is created. The alias moves only if the evaluation
    passed (or with ``force=True`` and a ``reason``), and only if it still points at the version
    the evaluation compared with (compare-and-set under a registry lease: see
    ``docs/registry.md``); otherwise :class:`PromotionConflict`. The replaced version gets the
    alias ``previous_<alias>``; the promotion is recorded as version tags
    (``mlops.promoted_at``, ``mlops.promoted_by``, ``mlops.promotion_reason``,
    ``mlops.promotion_forced``) and a history event (``mlops.alias_history.<alias>.<ms>``).

    :param registered_model_name: registered model (templated).
    :param evaluation: the dict EvaluateModelOperator returned, e.g. ``evaluate.output``; its
        JSON text is accepted (templated).
    :param alias: alias to move (default: the evaluation's, else ``champion``) (templated).
    :param force: move the alias even though the evaluation failed; needs ``reason``.
    :param reason: why (recorded; required with ``force``) (templated).
    :param lock_timeout: seconds to wait for a concurrent promotion of the same alias.
    :param lease_seconds: lifetime of the registry lease (a crashed holder's lock expires).
    :param mlflow_conn_id: MLflow connection (default ``mlflow_default``) (templated).

    XCom (return value, docs/results.md): ``status`` ``promoted`` (the alias moved to the
    candidate, also when a retry completed an earlier try's change), ``unchanged`` (the
    candidate already held the alias, or this data interval was already promoted by another DAG
    run: ``already_done``; the work identity of the interval is recorded with the promotion,
    see docs/registry.md "Reruns, races and crashes") or ``rejected`` (the evaluation failed: the candidate is
    registered, the alias did not move); ``passed`` = the alias holds the candidate;
    ``reasons`` [the reason]; ``model`` ``{name, version, run_id, uri, alias}`` of the version
    the alias points at afterwards (``None`` on a cold start whose candidate was rejected);
    ``mlflow_run_id``, ``report_uri``, ``rows`` None. Then ``promoted``,
    ``registered_model_name``, ``version`` (the candidate's version), ``alias``,
    ``previous_version``, ``reason``, ``forced``, ``created_version``, ``already_done``,
    ``run_id`` (the candidate's run), ``event_at``, ``model_uri``
    (``models:/<name>/<version>`` of the candidate), ``action`` (``promote``). ``promoted``,
    ``version``, ``alias`` and ``previous_version`` are also pushed under their own keys.

    Deprecated keys (kept for one release): ``promoted`` (use ``status``/``passed``),
    ``reason`` (``reasons``).

    :raises PromotionConflict: the alias moved since the evaluation.
    :raises PromotionError: force without reason, not an evaluation dict, evaluation of another
        model/alias, the candidate's run does not exist, a registered model or alias that does
        not exist without a cold-start evaluation, lease not acquired in time.
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

    def run(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core import params, registry

        lease = self._lease()
        identity = self.identity(context)
        try:
            result = registry.promote(
                self.mlflow_hook.client,
                lease.pop("name"),
                params.as_mapping(self.evaluation, "evaluation") or {},
                alias=params.as_str(self.alias, "alias"),
                force=bool(params.as_bool(self.force, "force", default=False)),
                reason=params.as_str(self.reason, "reason"),
                by=identity.key,
                interval=identity.work_key,
                **lease,
            )
        except registry.AliasConflictError as err:
            raise PromotionConflict(str(err)) from err
        self.log.info(
            "%s: %s version %s @%s (previous %s): %s",
            result.status,
            result.registered_model_name,
            result.version,
            result.alias,
            result.previous_version,
            result.reason,
        )
        return result.to_result()

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (docs/openlineage.md): the evaluated candidate as the input; the
        registered version of it as the output (with ``alias`` when the alias holds it)."""
        from mlops_provider.core.params import as_mapping
        from mlops_provider.lineage import Lineage, operator_result

        result = operator_result(self)
        try:
            evaluation = as_mapping(self.evaluation, "evaluation") or {}
        except Exception:  # an unusable evaluation failed the task already
            evaluation = {}
        version = None
        if result.get("version") is not None:
            version = {
                "name": result.get("registered_model_name"),
                "version": result.get("version"),
                "run_id": result.get("run_id"),
                "uri": result.get("model_uri"),
                "alias": result.get("alias") if result.get("passed") else None,
            }
        return (
            Lineage.of(self)
            .model(evaluation.get("candidate") or evaluation.get("model"))
            .model(version, output=True)
            .build()
        )


class RollbackModelOperator(_RegistryOperator):
    """Move ``alias`` back to the previous holder (``previous_<alias>``) or to ``to_version``.

    Serialized with promotions by the same registry lease and recorded the same way
    (``mlops.alias_history.<alias>.<ms>`` event with ``event: rollback``; the rolled-back version
    gets ``mlops.rolled_back_at`` / ``mlops.rollback_reason``). Afterwards ``previous_<alias>``
    is what it was when the restored version last received the alias, so a second rollback
    goes one step further back. A retry of the same task does not roll back twice.

    :param registered_model_name: registered model (templated).
    :param reason: why (required, recorded) (templated).
    :param alias: alias to roll back (default ``champion``) (templated).
    :param to_version: the version to restore: a number or any model URI of a version of the
        registered model (``models:/<name>/<v>``, ``models:/<name>@<alias>``,
        ``models:/m-<id>``, ``runs:/<run_id>/<path>``); default: the ``previous_<alias>``
        holder (templated).
    :param lock_timeout: seconds to wait for a concurrent promotion of the same alias.
    :param lease_seconds: lifetime of the registry lease.
    :param mlflow_conn_id: MLflow connection (default ``mlflow_default``) (templated).

    XCom (return value, docs/results.md): ``status`` ``rolled_back`` (``unchanged`` when this
    data interval was already rolled back by another DAG run: no second rollback); ``passed`` True;
    ``reasons`` [the reason]; ``model`` the version restored; then the keys of
    :class:`PromoteModelOperator` (``action`` = ``rollback``; ``version`` is the restored
    version, ``previous_version`` the one rolled back from; ``already_done`` for a retry).

    Deprecated keys (kept for one release): ``promoted``, ``reason`` (``reasons``).

    :raises PromotionError: no previous holder, unknown version, a registered model or alias
        that does not exist (named, with those that do: a rollback never creates an alias), the
        alias already points there, no reason.
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

    def run(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core import params, registry

        lease = self._lease()
        identity = self.identity(context)
        to_version = self.to_version
        if isinstance(to_version, str):
            to_version = params.as_str(to_version, "to_version")
        result = registry.rollback(
            self.mlflow_hook.client,
            lease.pop("name"),
            alias=params.as_str(self.alias, "alias", default="champion") or "champion",
            to_version=None if to_version in (None, "None") else to_version,
            reason=params.as_str(self.reason, "reason") or "",
            by=identity.key,
            interval=identity.work_key,
            **lease,
        )
        self.log.info(
            "rolled %s@%s back from version %s to %s: %s",
            result.registered_model_name,
            result.alias,
            result.previous_version,
            result.version,
            result.reason,
        )
        return result.to_result()

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (docs/openlineage.md): the version rolled back from as the input; the
        version restored (with its alias) as the output."""
        from mlops_provider.lineage import Lineage, operator_result

        result = operator_result(self)
        name = result.get("registered_model_name")
        previous = result.get("previous_version")
        return (
            Lineage.of(self)
            .model({"name": name, "version": previous} if previous is not None else None)
            .model(result.get("model"), output=True)
            .build()
        )
