"""The error of the monitoring checks (imports nothing heavy)."""

from __future__ import annotations

from mlops_provider.core.errors import InputError

__all__ = ["MonitoringError"]


class MonitoringError(InputError):
    """Monitoring cannot run on the given inputs; the message names the input and the problem."""
