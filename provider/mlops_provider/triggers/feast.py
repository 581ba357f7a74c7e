"""Trigger that waits until a Feast feature view is materialized up to a time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from mlops_provider.operators._base import FEAST_CONN_ID, pop_renamed

__all__ = ["FeatureFreshnessTrigger"]


class FeatureFreshnessTrigger(BaseTrigger):
    """Poll a feature view's materialization intervals until they reach ``target_time``.

    Used by :class:`~mlops_provider.sensors.feast.FeatureFreshnessSensor` in deferrable mode.
    The blocking Feast registry reads run in a thread. Yields exactly one event:
    ``{"status": "success", "feature_view", "target_time", "fresh_until"}`` or
    ``{"status": "error", "feature_view", "target_time", "message"}`` (the registry or view
    could not be read). No side effects.

    :param feature_view: the feature view name.
    :param target_time: ISO timestamp (UTC) the view must be materialized up to.
    :param feast_conn_id: Feast connection id.
    :param repo_path: feature repo directory overriding the connection's.
    :param poke_interval: seconds between registry reads (the sensor's ``poke_interval``).
        ``poll_interval``, its name before, is still accepted: a trigger serialized by an
        earlier release of the provider resumes with it.
    """

    def __init__(
        self,
        *,
        feature_view: str,
        target_time: str,
        feast_conn_id: str = FEAST_CONN_ID,
        repo_path: str | None = None,
        poke_interval: float = 60.0,
        **kwargs: Any,
    ) -> None:
        renamed = pop_renamed(kwargs, {"poll_interval": "poke_interval"}, type(self).__name__)
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unexpected arguments {sorted(kwargs)}")
        super().__init__()
        self.feature_view = feature_view
        self.target_time = target_time
        self.feast_conn_id = feast_conn_id
        self.repo_path = repo_path
        self.poke_interval = float(renamed.get("poke_interval", poke_interval))
        self._store: Any = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "feature_view": self.feature_view,
                "target_time": self.target_time,
                "feast_conn_id": self.feast_conn_id,
                "repo_path": self.repo_path,
                "poke_interval": self.poke_interval,
            },
        )

    def _fresh_until(self) -> datetime | None:
        from mlops_provider.core.features import freshness

        if self._store is None:
            from mlops_provider.hooks.feast import FeastHook

            hook = FeastHook(self.feast_conn_id, repo_path=self.repo_path or None)
            self._store = hook.store
        return freshness(self._store, self.feature_view)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from mlops_provider.core.errors import CoreError
        from mlops_provider.core.times import to_utc

        base = {"feature_view": self.feature_view, "target_time": self.target_time}
        try:
            target = to_utc(self.target_time, what="target_time")
        except CoreError as err:
            yield TriggerEvent({**base, "status": "error", "message": str(err)})
            return
        while True:
            try:
                fresh_until = await asyncio.to_thread(self._fresh_until)
            except Exception as err:
                yield TriggerEvent(
                    {
                        **base,
                        "status": "error",
                        "message": f"cannot read the freshness of feature view "
                        f"{self.feature_view!r}: {type(err).__name__}: {err}",
                    }
                )
                return
            if fresh_until is not None and fresh_until >= target:
                yield TriggerEvent(
                    {**base, "status": "success", "fresh_until": fresh_until.isoformat()}
                )
                return
            self.log.info(
                "Feature view %s materialized up to %s, waiting for %s",
                self.feature_view,
                fresh_until.isoformat() if fresh_until else "never",
                self.target_time,
            )
            await asyncio.sleep(self.poke_interval)
