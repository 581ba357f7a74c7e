"""Extra links to the MLflow UI: the run an operator created and the model version it touched."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey


class _PersistedLink(BaseOperatorLink):
    """A link whose URL is computed during ``execute``.

    ``persist`` keeps the URL on the running task; when the task finishes, Airflow 3's task
    runner calls ``get_link`` and stores the result in XCom under ``xcom_key``, which is what
    the UI reads. ``get_link`` never raises and never queries anything.
    """

    name = "link"
    _ATTRIBUTE = "_mlops_link_urls"

    @classmethod
    def persist(cls, context: Any, url: str | None) -> None:
        """Remember the URL for the running task in ``context`` (no-op for an empty URL)."""
        if not url:
            return
        task = context["task"]
        urls = dict(getattr(task, cls._ATTRIBUTE, None) or {})
        urls[cls().xcom_key] = url
        setattr(task, cls._ATTRIBUTE, urls)

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        try:
            return str((getattr(operator, self._ATTRIBUTE, None) or {}).get(self.xcom_key, ""))
        except Exception:  # a link must never break the task or the UI
            return ""


class MlflowRunLink(_PersistedLink):
    """Link to the MLflow run the task created or used."""

    name = "MLflow run"


class MlflowModelVersionLink(_PersistedLink):
    """Link to the registered model version the task created, promoted or scored with."""

    name = "MLflow model version"


def ui_base(tracking_uri: str) -> str | None:
    """Base URL of the MLflow UI for a tracking URI; None when the store has no UI (SQLite)."""
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    return None


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str | None:
    """URL of a run in the MLflow UI."""
    base = ui_base(tracking_uri)
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}" if base else None


def model_version_url(tracking_uri: str, name: str, version: str | int) -> str | None:
    """URL of a registered model version in the MLflow UI."""
    base = ui_base(tracking_uri)
    return f"{base}/#/models/{name}/versions/{version}" if base else None
