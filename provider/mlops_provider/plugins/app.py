"""The FastAPI app of the provider's plugin: reports and MLflow pages behind Airflow's login.

Airflow 3's API server mounts plugin apps as they are: it does not authenticate their requests.
Every route here but ``/metrics`` depends on :func:`require_user`, which resolves the caller exactly as Airflow's
own API does (``airflow.api_fastapi.core_api.security.get_user``): a JWT in the
``Authorization: Bearer`` header, else the ``_token`` cookie the UI sets at login. Without one a
browser (``Accept: text/html``) is redirected to the login page and comes back; any other client
gets 401. An invalid or expired token gets Airflow's answer (403 / 401).

Routes (below the mount point, ``<api root>/mlops``):

- ``GET /reports/{path}``: the file at ``path`` below the reports root
  (:func:`mlops_provider.core.reports.reports_root`: setting ``reports_uri``, else
  ``<lake_uri>/reports``), read through the ``$MLOPS_REPORTS_CONN_ID`` connection (else the
  ``aws_conn_id`` setting) for ``s3://``. Paths with
  ``..``, ``.``, hidden or empty segments, backslashes or absolute paths get 400; a missing file,
  a directory (no listing) or a symlink leading outside the root get 404.
- ``GET /mlflow/runs/{run_id}`` and ``GET /mlflow/models/{name}/versions/{version}`` (query
  ``conn_id``: an ``mlflow`` connection, default ``mlflow_default``; ``experiment_id`` for
  runs): a redirect to the MLflow UI when MLflow has one (tracking URI or ``ui_url`` extra
  over HTTP(S)), else a page rendered from the store (the embedded SQLite one).
- ``GET /metrics``: the latest monitoring results of every registered model in the Prometheus
  text format (:mod:`mlops_provider.core.monitoring.export`, cached for a few seconds).
  Prometheus holds no Airflow session, so with the ``metrics_token`` setting
  (``$MLOPS_METRICS_TOKEN``) the route wants ``Authorization: Bearer <that token>`` (compared in
  constant time): none -> 401, another -> 403. Without the setting it wants an Airflow login
  like the other routes (:func:`require_metrics_access`).

Heavy modules (the provider's core, MLflow, Airflow's security module) are imported inside the
handlers.
"""

from __future__ import annotations

import hmac
import os
import threading
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

__all__ = [
    "create_app",
    "get_mlflow_model_version",
    "get_mlflow_run",
    "get_metrics",
    "get_report",
    "require_metrics_access",
    "require_user",
]

#: Environment variable naming the connection of an ``s3://`` reports root.
REPORTS_CONN_ENV = "MLOPS_REPORTS_CONN_ID"
_DEFAULT_MLFLOW_CONN_ID = "mlflow_default"

# Reports are HTML with inline CSS and images (embedded or next to the report): no script may
# run and no form may post, so a served page cannot act on the Airflow API with the session.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "font-src 'self' data:; form-action 'none'; base-uri 'none'; frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "private, no-cache",
}


class _LoginRequired(Exception):
    """A browser without a session: send it to the login page."""

    def __init__(self, next_url: str) -> None:
        super().__init__(next_url)
        self.next_url = next_url


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


async def require_user(request: Request) -> Any:
    """The authenticated Airflow user of the request (see the module docstring).

    :raises HTTPException: 401 without credentials (non-browser), 401/403 for an expired or
        invalid token.
    """
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.security import HTTPAuthorizationCredentials
    from fastapi.security.utils import get_authorization_scheme_param

    scheme, credentials = get_authorization_scheme_param(request.headers.get("Authorization"))
    bearer = (
        HTTPAuthorizationCredentials(scheme=scheme, credentials=credentials)
        if scheme.lower() == "bearer" and credentials
        else None
    )
    try:
        return await get_user(request, None, bearer)
    except HTTPException as err:
        if err.status_code == status.HTTP_401_UNAUTHORIZED and bearer is None:
            if _wants_html(request):
                raise _LoginRequired(str(request.url)) from err
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail=err.detail,
                headers={"WWW-Authenticate": "Bearer"},
            ) from err
        raise


async def require_metrics_access(request: Request) -> Any:
    """Who may read ``/metrics``: the bearer of the ``metrics_token`` setting when it is set
    (401 without a token, 403 with another), else an Airflow user (:func:`require_user`)."""
    from fastapi.security.utils import get_authorization_scheme_param

    from mlops_provider.core import config

    expected = config.metrics_token()
    if expected is None:
        return await require_user(request)
    scheme, credentials = get_authorization_scheme_param(request.headers.get("Authorization"))
    if scheme.lower() != "bearer" or not credentials:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="a bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(credentials.encode(), expected.encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="invalid metrics token")
    return None


_EXPORTER: Any = None
_EXPORTER_LOCK = threading.Lock()


def _metrics_exporter() -> Any:
    """The process's exporter (one cache shared by every scrape), reading the MLflow store of
    the ``mlflow_conn_id`` setting and the reports root of the plugin."""
    global _EXPORTER
    with _EXPORTER_LOCK:
        if _EXPORTER is None:
            from mlops_provider.core import config
            from mlops_provider.core.monitoring.export import ExportSettings, MetricsExporter
            from mlops_provider.hooks.mlflow import MlflowHook

            conn_id = os.environ.get(REPORTS_CONN_ENV) or config.aws_conn_id()
            _EXPORTER = MetricsExporter(
                lambda: MlflowHook(mlflow_conn_id=config.mlflow_conn_id()).client,
                ExportSettings(conn_id=conn_id),
            )
        return _EXPORTER


def get_metrics() -> Response:
    """The monitoring metrics in the Prometheus text format."""
    from mlops_provider.core.monitoring.export import CONTENT_TYPE

    return Response(
        _metrics_exporter().render(),
        media_type=CONTENT_TYPE,
        headers={"Cache-Control": "no-store"},
    )


def _login_redirect(request: Request, exc: Exception) -> Response:
    from airflow.api_fastapi.app import API_ROOT_PATH

    assert isinstance(exc, _LoginRequired)
    login = f"{API_ROOT_PATH.rstrip('/')}/api/v2/auth/login?{urlencode({'next': exc.next_url})}"
    return RedirectResponse(login, status_code=status.HTTP_307_TEMPORARY_REDIRECT)


def _html(body: str) -> HTMLResponse:
    return HTMLResponse(body, headers=_SECURITY_HEADERS)


def _mount(request: Request) -> str:
    """The path the app is mounted at (``<api root>/mlops``) as the browser sees it."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _conn_query(conn_id: str | None) -> str:
    if not conn_id or conn_id == _DEFAULT_MLFLOW_CONN_ID:
        return ""
    return "?" + urlencode({"conn_id": conn_id})


def _mlflow_hook(conn_id: str | None) -> Any:
    """The MLflow hook of ``conn_id``; 404 for a connection that does not exist or is not of
    type ``mlflow`` (the query parameter must not reach arbitrary connections)."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    from mlops_provider.hooks.mlflow import MlflowHook

    conn_id = conn_id or _DEFAULT_MLFLOW_CONN_ID
    hook = MlflowHook(mlflow_conn_id=conn_id)
    if conn_id != _DEFAULT_MLFLOW_CONN_ID:
        try:
            conn = hook.get_connection(conn_id)
        except AirflowNotFoundException:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no connection {conn_id!r}") from None
        if conn.conn_type != "mlflow":
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, f"{conn_id!r} is not an MLflow connection"
            )
    return hook


def _embedded_client(hook: Any) -> Any:
    from mlops_provider.core.mlflow_pages import store_exists

    target = hook.target
    if not store_exists(target.tracking_uri):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"no MLflow store at {target.tracking_uri} on this host"
        )
    return hook.client


def get_report(path: str) -> Response:
    """A report file below the reports root."""
    from mlops_provider.core import config
    from mlops_provider.core.reports import ReportNotFound, UnsafeReportPath, open_report

    conn_id = os.environ.get(REPORTS_CONN_ENV) or config.aws_conn_id()
    try:
        found = open_report(path, conn_id=conn_id)
    except UnsafeReportPath as err:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(err)) from None
    except ReportNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "report not found") from None
    if found.local_path is not None:
        return FileResponse(
            found.local_path, media_type=found.media_type, headers=_SECURITY_HEADERS
        )
    return Response(found.data, media_type=found.media_type, headers=_SECURITY_HEADERS)


def get_mlflow_run(
    request: Request,
    run_id: str,
    experiment_id: str | None = None,
    conn_id: str | None = None,
) -> Response:
    """The MLflow run: a redirect to the MLflow UI, or a page from the embedded store."""
    from mlops_provider.core.mlflow_pages import MlflowObjectNotFound, run_page
    from mlops_provider.links.mlflow import mlflow_ui_run_url, ui_base

    hook = _mlflow_hook(conn_id)
    base = ui_base(hook.target.ui_base_uri)
    if base is not None:
        if experiment_id:
            url = mlflow_ui_run_url(base, experiment_id, run_id)
        else:
            url = f"{base}/#/runs/{quote(run_id, safe='')}"
        return RedirectResponse(str(url), status_code=status.HTTP_302_FOUND)
    mount, query = _mount(request), _conn_query(conn_id)
    try:
        body = run_page(
            _embedded_client(hook),
            run_id,
            model_version_href=lambda name, version: (
                f"{mount}/mlflow/models/{quote(name, safe='')}/versions/{version}{query}"
            ),
        )
    except MlflowObjectNotFound as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(err)) from None
    return _html(body)


def get_mlflow_model_version(
    request: Request, name: str, version: str, conn_id: str | None = None
) -> Response:
    """A registered model version: a redirect to the MLflow UI, or a page from the store."""
    from mlops_provider.core.mlflow_pages import MlflowObjectNotFound, model_version_page
    from mlops_provider.links.mlflow import mlflow_ui_model_version_url, ui_base

    if not version.isdigit():
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "a model version is a number")
    hook = _mlflow_hook(conn_id)
    base = ui_base(hook.target.ui_base_uri)
    if base is not None:
        url = mlflow_ui_model_version_url(base, name, version)
        return RedirectResponse(str(url), status_code=status.HTTP_302_FOUND)
    mount, query = _mount(request), _conn_query(conn_id)
    try:
        body = model_version_page(
            _embedded_client(hook),
            name,
            version,
            run_href=lambda run_id: f"{mount}/mlflow/runs/{quote(run_id, safe='')}{query}",
        )
    except MlflowObjectNotFound as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(err)) from None
    return _html(body)


def create_app() -> FastAPI:
    """The plugin's FastAPI app (every route requires an authenticated Airflow user, except
    ``/metrics``, see :func:`require_metrics_access`)."""
    app = FastAPI(
        title="MLOps provider: reports, MLflow pages and monitoring metrics",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.add_exception_handler(_LoginRequired, _login_redirect)
    pages = APIRouter(dependencies=[Depends(require_user)])
    pages.get("/reports/{path:path}", response_model=None)(get_report)
    pages.get("/mlflow/runs/{run_id}", response_model=None)(get_mlflow_run)
    pages.get("/mlflow/models/{name:path}/versions/{version}", response_model=None)(
        get_mlflow_model_version
    )
    app.include_router(pages)
    app.get("/metrics", response_model=None, dependencies=[Depends(require_metrics_access)])(
        get_metrics
    )
    return app
