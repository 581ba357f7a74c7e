"""Wait until an MLflow registry alias points at a new version."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import PokeReturnValue

from mlops_provider.exceptions import MlopsError
from mlops_provider.operators._base import MLFLOW_CONN_ID
from mlops_provider.sensors._base import MlopsDeferrableSensor
from mlops_provider.triggers.mlflow import ModelAliasTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_provider.hooks.mlflow import MlflowHook

__all__ = ["ModelAliasSensor"]


class ModelAliasSensor(MlopsDeferrableSensor):
    """Wait until ``registered_model_name@alias`` points at a new version.

    "New" means: a version other than ``not_version`` and/or one that changed after
    ``newer_than`` (the version was created or updated then, or received the alias then through
    PromoteModelOperator/RollbackModelOperator). With neither, the sensor waits until the alias
    exists. A registered model or alias that does not exist fails the sensor at once (the error
    names the registered models, or the model's aliases, and the closest one): a typo is not
    waited on for a week. Pass ``wait_for_creation=True`` to wait for a model or alias that is
    yet to be created (the sensor's ``timeout`` bounds the wait).

    Poke mode by default; ``deferrable=True`` checks once and, if not done, defers to
    :class:`~mlops_provider.triggers.mlflow.ModelAliasTrigger` (the tracking URI resolved here
    and the connection id travel to the triggerer).

    :param registered_model_name: registered model (templated).
    :param alias: alias to watch (default ``champion``) (templated).
    :param not_version: wait for any version but this one (templated; e.g. the version seen by
        an upstream task).
    :param newer_than: time (datetime or ISO string, naive = UTC) the change must be after
        (templated; e.g. ``"{{ data_interval_start }}"``).
    :param wait_for_creation: wait while the registered model or the alias does not exist
        (default False: fail at once, naming what exists) (templated).
    :param mlflow_conn_id: MLflow connection (templated).
    :param deferrable: wait in the triggerer instead of a worker slot.

    XCom: ``registered_model_name``, ``alias``, ``version``, ``run_id``, ``model_uri``
    (``models:/<name>/<version>``), ``changed_at``.

    :raises MlopsError: the registered model or alias does not exist (without
        ``wait_for_creation``), a parameter is invalid (named), or the trigger reported an
        error (e.g. tracking server unreachable).
    """

    template_fields: Sequence[str] = (
        "registered_model_name",
        "alias",
        "not_version",
        "newer_than",
        "wait_for_creation",
        "mlflow_conn_id",
    )
    ui_color = "#f0e4d7"

    def __init__(
        self,
        *,
        registered_model_name: str,
        alias: str = "champion",
        not_version: str | int | None = None,
        newer_than: datetime | str | None = None,
        wait_for_creation: bool = False,
        mlflow_conn_id: str = MLFLOW_CONN_ID,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(deferrable=deferrable, **kwargs)
        self.registered_model_name = registered_model_name
        self.alias = alias
        self.not_version = not_version
        self.newer_than = newer_than
        self.wait_for_creation = wait_for_creation
        self.mlflow_conn_id = mlflow_conn_id

    @cached_property
    def hook(self) -> MlflowHook:
        from mlops_provider.hooks.mlflow import MlflowHook

        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)

    def _not_version(self) -> str | None:
        from mlops_provider.core import params

        value = self.not_version
        text = params.as_str(str(value), "not_version") if value is not None else None
        return None if text == "None" else text

    def _newer_than(self) -> str | None:
        """``newer_than`` as an ISO time (``None`` when blank or ``"None"``)."""
        from mlops_provider.core import params

        value = None if self.newer_than == "None" else self.newer_than
        moment = params.as_datetime(value, "newer_than")
        return None if moment is None else moment.isoformat()

    def _condition(self) -> dict[str, Any]:
        """What the alias must satisfy, as :func:`~mlops_provider.core.registry.check_alias`
        and the trigger take it.

        :raises MlopsError: a parameter is invalid (named).
        """
        from mlops_provider.core import params
        from mlops_provider.core.errors import CoreError

        try:
            return {
                "registered_model_name": params.required(
                    params.as_str(self.registered_model_name, "registered_model_name"),
                    "registered_model_name",
                    "a registered model name",
                ),
                "alias": params.as_str(self.alias, "alias", default="champion"),
                "not_version": self._not_version(),
                "newer_than": self._newer_than(),
                "wait_for_creation": bool(
                    params.as_bool(self.wait_for_creation, "wait_for_creation", default=False)
                ),
            }
        except CoreError as err:
            raise MlopsError(f"ModelAliasSensor {self.task_id}: {err}") from err

    def poke(self, context: Context) -> PokeReturnValue:
        from mlops_provider.core.errors import CoreError
        from mlops_provider.core.registry import alias_result, check_alias

        condition = self._condition()
        name, alias = condition.pop("registered_model_name"), condition.pop("alias")
        try:
            check = check_alias(self.hook.client, name, alias, **condition)
        except CoreError as err:
            raise MlopsError(f"cannot wait for {name}@{alias}: {err}") from err
        self.log.info("%s", check.message)
        if not check.done:
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=alias_result(name, alias, check.to_dict()))

    def trigger(self, context: Context) -> ModelAliasTrigger:
        target = self.hook.target
        return ModelAliasTrigger(
            **self._condition(),
            tracking_uri=target.tracking_uri,
            registry_uri=target.effective_registry_uri,
            mlflow_conn_id=self.mlflow_conn_id,
            poke_interval=float(self.poke_interval),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        if not event or event.get("status") != "success":
            message = (event or {}).get("message", "no event")
            raise MlopsError(
                f"waiting for {self.registered_model_name}@{self.alias} failed: {message}"
            )
        result = event["result"]
        self.log.info(
            "%s@%s points at version %s", self.registered_model_name, self.alias, result["version"]
        )
        return result
