"""Small HTML pages of an MLflow run and a registered model version, for setups whose MLflow
store has no UI (the embedded SQLite store). The provider's Airflow plugin serves them.

Everything is read with one ``MlflowClient``; values are HTML-escaped (tags and params are user
text).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from mlops_provider.core.errors import InputError
from mlops_provider.core.reports import escape, page, table_html

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["MlflowObjectNotFound", "model_version_page", "run_page", "store_exists"]

_MAX_ARTIFACTS = 500


class MlflowObjectNotFound(InputError):
    """The run or model version named in a request does not exist in the store."""


def store_exists(tracking_uri: str) -> bool:
    """Whether an SQLite store file exists (opening a missing one would create it); other
    stores are taken to exist."""
    from mlops_provider.core.mlflow_target import sqlite_path

    path = sqlite_path(tracking_uri)
    return path is None or path.is_file()


def _when(ms: int | None) -> str:
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _not_found(err: Exception) -> bool:
    code = getattr(err, "error_code", "")
    return "RESOURCE_DOES_NOT_EXIST" in str(code) or "INVALID_PARAMETER_VALUE" in str(code)


def _artifacts(client: MlflowClient, run_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    pending: list[str | None] = [None]
    while pending and len(out) < _MAX_ARTIFACTS:
        for info in client.list_artifacts(run_id, pending.pop(0)):
            if info.is_dir:
                pending.append(info.path)
            else:
                out.append({"path": info.path, "size (bytes)": info.file_size})
    return sorted(out, key=lambda row: row["path"])


def run_page(
    client: MlflowClient,
    run_id: str,
    *,
    model_version_href: Callable[[str, str], str] | None = None,
) -> str:
    """The HTML page of run ``run_id``: info, params, metrics, tags and artifacts.

    :param model_version_href: ``(name, version) -> URL`` for the model versions of the run.
    :raises MlflowObjectNotFound: no such run.
    """
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException as err:
        if _not_found(err):
            raise MlflowObjectNotFound(f"no MLflow run {run_id!r}") from err
        raise
    info, data = run.info, run.data
    try:
        experiment = client.get_experiment(info.experiment_id).name
    except MlflowException:
        experiment = info.experiment_id
    summary = [
        ("run id", info.run_id),
        ("name", info.run_name),
        ("experiment", f"{experiment} ({info.experiment_id})"),
        ("status", info.status),
        ("started", _when(info.start_time)),
        ("ended", _when(info.end_time)),
        ("artifact URI", info.artifact_uri),
    ]
    sections = [("", table_html(summary, ["field", "value"]))]
    versions = []
    try:
        versions = list(client.search_model_versions(f"run_id = '{info.run_id}'"))
    except MlflowException:
        pass
    if versions:
        rows = []
        for mv in versions:
            label = f"{mv.name} version {mv.version}"
            href = model_version_href(mv.name, str(mv.version)) if model_version_href else None
            rows.append(
                f"<li><a href='{escape(href)}'>{escape(label)}</a></li>"
                if href
                else f"<li>{escape(label)}</li>"
            )
        sections.append(("Registered model versions", f"<ul>{''.join(rows)}</ul>"))
    sections += [
        ("Parameters", table_html(sorted(data.params.items()), ["name", "value"])),
        ("Metrics", table_html(sorted(data.metrics.items()), ["name", "value"])),
        ("Tags", table_html(sorted(data.tags.items()), ["name", "value"])),
        ("Artifacts", table_html(_artifacts(client, info.run_id))),
    ]
    return page(f"MLflow run {info.run_name or info.run_id}", sections, subtitle="MLflow run;")


def model_version_page(
    client: MlflowClient,
    name: str,
    version: str,
    *,
    run_href: Callable[[str], str] | None = None,
) -> str:
    """The HTML page of version ``version`` of registered model ``name``: version, status,
    source, run, aliases, tags.

    :param run_href: ``run_id -> URL`` for the version's run.
    :raises MlflowObjectNotFound: no such model or version.
    """
    from mlflow.exceptions import MlflowException

    try:
        mv = client.get_model_version(name, str(version))
    except MlflowException as err:
        if _not_found(err):
            raise MlflowObjectNotFound(f"no version {version!r} of model {name!r}") from err
        raise
    aliases = list(getattr(mv, "aliases", None) or [])
    run = escape(mv.run_id or "")
    if mv.run_id and run_href:
        run = f"<a href='{escape(run_href(mv.run_id))}'>{run}</a>"
    summary = [
        ("model", mv.name),
        ("version", mv.version),
        ("aliases", ", ".join(sorted(aliases)) or "none"),
        ("status", mv.status),
        ("created", _when(mv.creation_timestamp)),
        ("source", mv.source),
        ("description", mv.description or ""),
    ]
    body = table_html(summary, ["field", "value"])
    body += f"<table><tbody><tr><th>run</th><td>{run}</td></tr></tbody></table>"
    sections = [
        ("", body),
        ("Tags", table_html(sorted((mv.tags or {}).items()), ["name", "value"])),
    ]
    return page(f"{mv.name} version {mv.version}", sections, subtitle="MLflow model version;")
