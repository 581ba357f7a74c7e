"""Extra links to the MLflow run an operator created and the model version it touched.

The links point at the provider's Airflow plugin (:mod:`mlops_provider.plugins`), served by the
API server under ``/mlops``: ``/mlops/mlflow/runs/<run_id>`` and
``/mlops/mlflow/models/<name>/versions/<version>``. The plugin redirects to the MLflow UI when
MLflow is reachable over HTTP(S), and renders a small page of the run or model version from an
embedded (SQLite) store, so the links work in both setups.

URLs are root-relative (``<path of [api] base_url>/mlops/...``): the Airflow 3 UI renders a link
whose origin is its own (or an ``http``/``https``/``mailto`` link) and opens it in the same tab;
a root-relative URL keeps the browser on the host it already reached the UI with, where its
session cookie is valid.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

from airflow.sdk import BaseOperatorLink

from mlops_provider.core import runs as _runs

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

__all__ = [
    "PLUGIN_PREFIX",
    "MlflowModelVersionLink",
    "MlflowRunLink",
    "api_root_path",
    "mlflow_ui_model_version_url",
    "mlflow_ui_run_url",
    "model_version_url",
    "plugin_url",
    "run_url",
    "ui_base",
]

log = logging.getLogger(__name__)

#: Where the provider's plugin app is mounted on the API server.
PLUGIN_PREFIX = "/mlops"
_DEFAULT_MLFLOW_CONN_ID = "mlflow_default"
# characters kept as they are in a path segment (RFC 3986 pchar, minus '/')
_SEGMENT_SAFE = "-._~!$&'()*+,;=:@"


def api_root_path() -> str:
    """The path part of ``[api] base_url`` without its trailing slash (``""`` when the API
    server is at the root of its host, the default)."""
    base = ""
    try:
        from airflow.sdk.configuration import conf

        base = conf.get("api", "base_url", fallback="") or ""
    except Exception:  # no configuration available (plain Python): the root
        base = ""
    return urlsplit(base).path.rstrip("/")


def plugin_url(*segments: str, query: Mapping[str, str | None] | None = None) -> str:
    """A root-relative URL of the plugin: ``<api root>/mlops/<segments...>[?query]``; each
    segment is one path segment, percent-encoded (a ``/`` in it too)."""
    parts = [quote(str(segment), safe=_SEGMENT_SAFE) for segment in segments]
    url = f"{api_root_path()}{PLUGIN_PREFIX}/" + "/".join(parts)
    params = {k: v for k, v in (query or {}).items() if v}
    return f"{url}?{urlencode(params)}" if params else url


def _conn_param(conn_id: str | None) -> str | None:
    return conn_id if conn_id and conn_id != _DEFAULT_MLFLOW_CONN_ID else None


def run_url(run_id: str, experiment_id: str | None = None, *, conn_id: str | None = None) -> str:
    """Link of an MLflow run: ``<api root>/mlops/mlflow/runs/<run_id>``.

    :param experiment_id: saves the plugin a lookup when it redirects to the MLflow UI.
    :param conn_id: the MLflow connection of the run (named only when not ``mlflow_default``).
    """
    return plugin_url(
        "mlflow",
        "runs",
        str(run_id),
        query={"experiment_id": experiment_id, "conn_id": _conn_param(conn_id)},
    )


def model_version_url(name: str, version: str | int, *, conn_id: str | None = None) -> str:
    """Link of a registered model version: ``<api root>/mlops/mlflow/models/<name>/versions/<v>``."""
    return plugin_url(
        "mlflow",
        "models",
        str(name),
        "versions",
        str(version),
        query={"conn_id": _conn_param(conn_id)},
    )


def ui_base(tracking_uri: str) -> str | None:
    """Base URL of the MLflow UI for a tracking (or UI) URI; None when the store has no UI."""
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    return None


def mlflow_ui_run_url(ui_base_uri: str, experiment_id: str, run_id: str) -> str | None:
    """URL of a run in the MLflow UI itself (what the plugin redirects to)."""
    base = ui_base(ui_base_uri)
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}" if base else None


def mlflow_ui_model_version_url(ui_base_uri: str, name: str, version: str | int) -> str | None:
    """URL of a registered model version in the MLflow UI itself."""
    base = ui_base(ui_base_uri)
    return f"{base}/#/models/{quote(str(name), safe='')}/versions/{version}" if base else None


class _PersistedLink(BaseOperatorLink):
    """A link whose URL is computed during ``execute``.

    :meth:`persist` pushes the URL to XCom under ``xcom_key`` right away, so the UI shows the
    link while the task still runs, and keeps it on the task: when the task finishes, Airflow
    3's task runner calls :meth:`get_link` and writes its result under the same key (one value,
    replaced, never duplicated). ``get_link`` never raises and never queries anything.
    """

    name = "link"
    _ATTRIBUTE = "_mlops_link_urls"

    @classmethod
    def persist(cls, context: Any, url: str | None) -> None:
        """Publish the URL of the running task in ``context`` (no-op for an empty URL)."""
        if not url:
            return
        key = cls().xcom_key
        task = context["task"]
        urls = dict(getattr(task, cls._ATTRIBUTE, None) or {})
        if urls.get(key) == url:
            return
        urls[key] = url
        setattr(task, cls._ATTRIBUTE, urls)
        ti = context.get("ti")
        if ti is None:
            return
        try:
            ti.xcom_push(key=key, value=url)
        except Exception:  # the link is written again when the task finishes
            log.warning("could not publish the %r link yet", cls.name, exc_info=True)

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        try:
            return str((getattr(operator, self._ATTRIBUTE, None) or {}).get(self.xcom_key, ""))
        except Exception:  # a link must never break the task or the UI
            return ""


class MlflowRunLink(_PersistedLink):
    """Link to the MLflow run the task created or used (shown as soon as the run exists)."""

    name = "MLflow run"


class MlflowModelVersionLink(_PersistedLink):
    """Link to the registered model version the task created, promoted or scored with."""

    name = "MLflow model version"


def _publish_run_link(run_id: str, experiment_id: str) -> None:
    """Run listener: when the running task shows an :class:`MlflowRunLink`, publish the link of
    the run it just started logging to (a long training shows its run before it ends)."""
    try:
        from airflow.sdk import get_current_context

        context = get_current_context()
    except Exception:  # not inside a running task
        return
    task = context.get("task")
    if task is None or not any(
        isinstance(link, MlflowRunLink) for link in getattr(task, "operator_extra_links", ())
    ):
        return
    conn_id = getattr(task, "mlflow_conn_id", None)
    MlflowRunLink.persist(context, run_url(run_id, experiment_id, conn_id=conn_id))


_runs.add_run_listener(_publish_run_link)
