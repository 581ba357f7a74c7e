"""The realtime serving app: a registered MLflow model (alias resolved to a concrete version,
hot reload, canary and shadow) with Feast online features, Prometheus metrics and a prediction
log in the shape of batch predictions. See docs/serving.md.

Importing this package is cheap: the web framework, MLflow, Feast and pandas are imported when
an app is created or started.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_provider.serving.settings import ServingSettings

if TYPE_CHECKING:
    from mlops_provider.serving.app import create_app
    from mlops_provider.serving.server import ServerHandle, serve_in_thread

__all__ = ["ServerHandle", "ServingSettings", "create_app", "serve_in_thread"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from mlops_provider.serving.app import create_app

        return create_app
    if name in ("serve_in_thread", "ServerHandle"):
        from mlops_provider.serving import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
