"""Extra links to the MLflow UI: the run an operator created and the model version it touched."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey


class _PersistedLink(BaseOperatorLink):
    """A link whose URL is computed during ``execute`` and stored in XCom (never raises)."""

    name = "link"

    @classmethod
    def persist(cls, context: Any, url: str | None) -> None:
        """Store the URL for the task instance in ``context`` (no-op for an empty URL)."""
        if url:
            context["ti"].xcom_push(key=cls().xcom_key, value=url)

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        try:
            from airflow.sdk.execution_time.xcom import XCom

            return XCom.get_value(ti_key=ti_key, key=self.xcom_key) or ""
        except Exception:  # a link must never break the UI
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
