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
    exists. A registered model or alias that does not exist yet is "not yet", not an error (the
    sensor's ``timeout`` bounds the wait).

    Poke mode by default; ``deferrable=True`` checks once and, if not done, defers to
    :class:`~mlops_provider.triggers.mlflow.ModelAliasTrigger` (the tracking URI resolved here
    and the connection id travel to the triggerer).

    :param registered_model_name: registered model (templated).
    :param alias: alias to watch (default ``champion``) (templated).
    :param not_version: wait for any version but this one (templated; e.g. the version seen by
        an upstream task).
    :param newer_than: time (datetime or ISO string, naive = UTC) the change must be after
        (templated; e.g. ``"{{ data_interval_start }}"``).
    :param mlflow_conn_id: MLflow connection (templated).
    :param deferrable: wait in the triggerer instead of a worker slot.

    XCom: ``registered_model_name``, ``alias``, ``version``, ``run_id``, ``model_uri``
    (``models:/<name>/<version>``), ``changed_at``.

    :raises MlopsError: the trigger reported an error (e.g. tracking server unreachable).
    """

    template_fields: Sequence[str] = (
        "registered_model_name",
        "alias",
        "not_version",
        "newer_than",
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
        mlflow_conn_id: str = MLFLOW_CONN_ID,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(deferrable=deferrable, **kwargs)
        self.registered_model_name = registered_model_name
        self.alias = alias
        self.not_version = not_version
        self.newer_than = newer_than
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
        from mlops_provider.core import params

        value = self.newer_than
        if isinstance(value, datetime):
            return value.isoformat()
        text = params.as_str(None if value is None else str(value), "newer_than")
        return None if text == "None" else text

    def poke(self, context: Context) -> PokeReturnValue:
        from mlops_provider.core.registry import alias_result, check_alias

        check = check_alias(
            self.hook.client,
            self.registered_model_name,
            self.alias,
            not_version=self._not_version(),
            newer_than=self._newer_than(),
        )
        self.log.info("%s", check.message)
        if not check.done:
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(
            is_done=True,
            xcom_value=alias_result(self.registered_model_name, self.alias, check.to_dict()),
        )

    def trigger(self, context: Context) -> ModelAliasTrigger:
        target = self.hook.target
        return ModelAliasTrigger(
            registered_model_name=self.registered_model_name,
            alias=self.alias,
            tracking_uri=target.tracking_uri,
            registry_uri=target.effective_registry_uri,
            mlflow_conn_id=self.mlflow_conn_id,
            not_version=self._not_version(),
            newer_than=self._newer_than(),
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
