"""The Airflow plugin of the provider (Airflow 3 ``fastapi_apps``), mounted at ``/mlops``.

Airflow imports plugin modules in every process (scheduler, workers, DAG processor), so this
module is light: the FastAPI app (:func:`mlops_provider.plugins.app.create_app`) is built on
the first request the API server passes to it.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from airflow.plugins_manager import AirflowPlugin

__all__ = ["URL_PREFIX", "MlopsPlugin", "app"]

#: Where the app is mounted on the API server (links are built on it too).
URL_PREFIX = "/mlops"

_Scope = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
_Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class _LazyApp:
    """An ASGI app that builds the real one on its first call (keeps FastAPI, the provider's
    core and MLflow out of processes that only load plugins)."""

    def __init__(self) -> None:
        self._app: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        """The FastAPI app, built once."""
        if self._app is None:
            with self._lock:
                if self._app is None:
                    from mlops_provider.plugins.app import create_app

                    self._app = create_app()
        return self._app

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        await self.get()(scope, receive, send)

    def __repr__(self) -> str:
        return "mlops_provider.plugins.app:create_app()"


#: The ASGI app mounted by the plugin.
app = _LazyApp()


class MlopsPlugin(AirflowPlugin):
    """Serves the provider's HTML reports, MLflow pages and monitoring metrics through the Airflow API server.

    Routes (behind Airflow's login, see :mod:`mlops_provider.plugins.app`):

    - ``GET /mlops/reports/{path}``: a file below the reports root (local or ``s3://``);
    - ``GET /mlops/mlflow/runs/{run_id}``: the MLflow run (redirect to the MLflow UI, or a page
      rendered from an embedded store);
    - ``GET /mlops/mlflow/models/{name}/versions/{version}``: likewise for a model version;
    - ``GET /mlops/metrics``: the monitoring results as Prometheus metrics (a bearer token of
      its own when the ``metrics_token`` setting is set, docs/metrics.md).
    """

    name = "mlops"
    fastapi_apps = [
        {"app": app, "url_prefix": URL_PREFIX, "name": "MLOps reports, MLflow pages and metrics"},
    ]
