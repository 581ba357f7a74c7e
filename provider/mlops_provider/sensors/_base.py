"""What the provider's sensors share: the deferrable default and the check-then-defer tail."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.triggers.base import BaseTrigger


def default_deferrable() -> bool:
    """Airflow's ``[operators] default_deferrable`` (False when it cannot be read)."""
    try:
        from airflow.configuration import conf

        return conf.getboolean("operators", "default_deferrable", fallback=False)
    except Exception:
        return False


class MlopsDeferrableSensor(BaseSensorOperator):
    """A sensor that pokes on a worker, or checks once and then waits in the triggerer.

    :param deferrable: wait in the triggerer instead of a worker slot; default Airflow's
        ``[operators] default_deferrable``. Deferrable mode needs a running triggerer.

    Subclasses implement ``poke`` and :meth:`trigger` (the trigger that waits for the same
    condition) and handle the trigger's event in ``execute_complete``.
    """

    def __init__(self, *, deferrable: bool | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.deferrable = default_deferrable() if deferrable is None else bool(deferrable)

    def trigger(self, context: Context) -> BaseTrigger:
        """The trigger that waits for what ``poke`` checks."""
        raise NotImplementedError

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        first = self.poke(context)
        if first:  # a PokeReturnValue is truthy when done
            return getattr(first, "xcom_value", None)
        self.defer(
            trigger=self.trigger(context),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout)),
        )
