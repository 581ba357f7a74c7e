"""Sensor that waits until a Feast feature view is fresh up to a time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import PokeReturnValue

from mlops_provider.exceptions import FeatureStoreError
from mlops_provider.hooks.feast import FeastHook
from mlops_provider.operators._base import FEAST_CONN_ID
from mlops_provider.sensors._base import MlopsDeferrableSensor
from mlops_provider.triggers.feast import FeatureFreshnessTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["FeatureFreshnessSensor"]


class FeatureFreshnessSensor(MlopsDeferrableSensor):
    """Wait until a feature view has been materialized up to ``target_time``.

    Freshness is the latest end of the view's materialization intervals in the Feast registry
    (``FeatureView.most_recent_end_time``), read without the registry cache. In deferrable mode
    the sensor checks once and defers to :class:`FeatureFreshnessTrigger` only if the view is
    not fresh yet.

    :param feature_view: the feature view name (templated).
    :param target_time: datetime or ISO string (templated); default ``data_interval_end``.
    :param feast_conn_id: Feast connection (templated), default ``feast_default``.
    :param repo_path: feature repo directory (templated).
    :param deferrable: wait in the triggerer instead of occupying a worker slot (needs a
        running triggerer); default Airflow's ``[operators] default_deferrable``.
    :param poke_interval: seconds between checks, in both modes (the trigger's
        ``poke_interval``).

    XCom: ``{"feature_view", "target_time", "fresh_until"}`` once fresh (a sensor's value,
    not an operator result).

    :raises FeatureStoreError: the feature view does not exist (known ones listed), the
        registry cannot be read, ``target_time`` is not a time, or the trigger reported an
        error.
    """

    template_fields: Sequence[str] = ("feature_view", "target_time", "feast_conn_id", "repo_path")
    ui_color = "#e8f1fb"

    def __init__(
        self,
        *,
        feature_view: str,
        target_time: datetime | str | None = None,
        feast_conn_id: str = FEAST_CONN_ID,
        repo_path: str | None = None,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(deferrable=deferrable, **kwargs)
        self.feature_view = feature_view
        self.target_time = target_time
        self.feast_conn_id = feast_conn_id
        self.repo_path = repo_path

    @cached_property
    def hook(self) -> FeastHook:
        return FeastHook(self.feast_conn_id, repo_path=self.repo_path or None)

    def _target(self, context: Context) -> datetime:
        from mlops_provider.core.errors import CoreError
        from mlops_provider.core.times import to_utc

        value = self.target_time if self.target_time not in (None, "") else None
        if value is None:
            value = context.get("data_interval_end")
        if value is None:
            raise FeatureStoreError("target_time is required when the run has no data interval")
        try:
            return to_utc(value, what="target_time")
        except CoreError as err:  # what the base operator does for operators
            raise FeatureStoreError(str(err)) from err

    def poke(self, context: Context) -> PokeReturnValue:
        from mlops_provider.core.errors import CoreError
        from mlops_provider.core.features import freshness

        target = self._target(context)
        try:
            fresh_until = freshness(self.hook.store, self.feature_view)
        except CoreError as err:  # an unknown view, a missing repo
            raise FeatureStoreError(f"Cannot check feature freshness: {err}") from err
        done = fresh_until is not None and fresh_until >= target
        self.log.info(
            "Feature view %s materialized up to %s; target %s: %s",
            self.feature_view,
            fresh_until.isoformat() if fresh_until else "never",
            target.isoformat(),
            "fresh" if done else "not yet",
        )
        value = {
            "feature_view": self.feature_view,
            "target_time": target.isoformat(),
            "fresh_until": fresh_until.isoformat() if fresh_until else None,
        }
        return PokeReturnValue(is_done=done, xcom_value=value if done else None)

    def trigger(self, context: Context) -> FeatureFreshnessTrigger:
        return FeatureFreshnessTrigger(
            feature_view=self.feature_view,
            target_time=self._target(context).isoformat(),
            feast_conn_id=self.feast_conn_id,
            repo_path=self.repo_path or None,
            poke_interval=float(self.poke_interval),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger fired: return the freshness, or raise its error."""
        if not event or event.get("status") != "success":
            message = (event or {}).get("message", "the trigger returned no event")
            raise FeatureStoreError(
                f"Waiting for feature view {self.feature_view!r} failed: {message}"
            )
        self.log.info(
            "Feature view %s materialized up to %s (target %s)",
            event["feature_view"],
            event["fresh_until"],
            event["target_time"],
        )
        return {
            "feature_view": event["feature_view"],
            "target_time": event["target_time"],
            "fresh_until": event["fresh_until"],
        }
