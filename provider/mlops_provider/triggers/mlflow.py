"""Async wait on an MLflow registry alias (used by the deferrable ModelAliasSensor)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

__all__ = ["ModelAliasTrigger"]


class ModelAliasTrigger(BaseTrigger):
    """Fire once when ``registered_model_name@alias`` satisfies the sensor's condition.

    The condition is the one of :func:`mlops_provider.core.registry.check_alias`: the alias
    exists and points at a version other than ``not_version`` and/or changed after
    ``newer_than``. A registered model or alias that does not exist ends the wait with an error
    event naming what exists, unless ``wait_for_creation``. The blocking MLflow client runs in a thread (``asyncio.to_thread``); the
    trigger only reads.

    :param registered_model_name: registered model.
    :param alias: alias to watch.
    :param tracking_uri: tracking URI resolved by the sensor's hook.
    :param registry_uri: registry URI resolved by the sensor's hook.
    :param mlflow_conn_id: connection whose credentials are used for the URIs (optional).
    :param not_version: fire only when the alias points at another version.
    :param newer_than: ISO time; fire only when the holder changed after it.
    :param wait_for_creation: keep waiting while the registered model or the alias does not
        exist (default False: an error event).
    :param poke_interval: seconds between checks (the sensor's ``poke_interval``).

    Event payload: ``{"status": "success", "result": {...}}`` (the sensor's XCom) or
    ``{"status": "error", "message": "..."}``.
    """

    def __init__(
        self,
        *,
        registered_model_name: str,
        alias: str,
        tracking_uri: str,
        registry_uri: str | None = None,
        mlflow_conn_id: str | None = None,
        not_version: str | None = None,
        newer_than: str | None = None,
        wait_for_creation: bool = False,
        poke_interval: float = 60.0,
    ) -> None:
        super().__init__()
        self.registered_model_name = registered_model_name
        self.alias = alias
        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri
        self.mlflow_conn_id = mlflow_conn_id
        self.not_version = not_version
        self.newer_than = newer_than
        self.wait_for_creation = wait_for_creation
        self.poke_interval = poke_interval
        self._client: Any = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "registered_model_name": self.registered_model_name,
                "alias": self.alias,
                "tracking_uri": self.tracking_uri,
                "registry_uri": self.registry_uri,
                "mlflow_conn_id": self.mlflow_conn_id,
                "not_version": self.not_version,
                "newer_than": self.newer_than,
                "wait_for_creation": self.wait_for_creation,
                "poke_interval": self.poke_interval,
            },
        )

    def _make_client(self) -> Any:
        import dataclasses

        from mlops_provider.core.mlflow_target import MlflowTarget, make_client

        target = MlflowTarget(
            tracking_uri=self.tracking_uri, registry_uri=self.registry_uri, source="trigger"
        )
        if self.mlflow_conn_id:
            try:
                from mlops_provider.hooks.mlflow import MlflowHook

                resolved = MlflowHook(mlflow_conn_id=self.mlflow_conn_id).target
                # Credentials of the connection, for the URIs the sensor resolved.
                target = dataclasses.replace(
                    resolved, tracking_uri=self.tracking_uri, registry_uri=self.registry_uri
                )
            except Exception as err:  # no connection here: the URIs alone
                self.log.info(
                    "connection %s not usable (%s); no credentials", self.mlflow_conn_id, err
                )
        return make_client(target)

    def _check(self) -> dict[str, Any]:
        from mlops_provider.core.registry import alias_result, check_alias

        if self._client is None:
            self._client = self._make_client()
        check = check_alias(
            self._client,
            self.registered_model_name,
            self.alias,
            not_version=self.not_version,
            newer_than=self.newer_than,
            wait_for_creation=self.wait_for_creation,
        ).to_dict()
        if check["done"]:
            check["result"] = alias_result(self.registered_model_name, self.alias, check)
        return check

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            try:
                check = await asyncio.to_thread(self._check)
            except Exception as err:
                yield TriggerEvent(
                    {
                        "status": "error",
                        "message": f"checking {self.registered_model_name}@{self.alias} at "
                        f"{self.tracking_uri} failed: {err}",
                    }
                )
                return
            if check["done"]:
                yield TriggerEvent({"status": "success", "result": check["result"]})
                return
            self.log.info("%s; next check in %.0fs", check["message"], self.poke_interval)
            await asyncio.sleep(self.poke_interval)
