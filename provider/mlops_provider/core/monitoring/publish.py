"""Publish a monitoring result: the JSON + HTML report and the MLflow monitoring run.

Every check (drift, performance, skew) starts with :func:`check_report_location` (before it
reads any data) and ends with :func:`publish_monitoring_result`:

1. the report location (:func:`mlops_provider.core.reports.report_location`, default
   ``<reports root>/<kind>/<name>/dt=<day>``), checked again before the run is opened;
2. the monitoring run of the task's identity (:mod:`mlops_provider.core.runs`), found again by
   its tags on a retry or a rerun, so reruns never create a second run;
3. the JSON result and the HTML page, written atomically (a rerun replaces them);
4. metrics, tags and both documents logged to the run, which is then marked finished. A
   failure after the run was opened marks it FAILED (:func:`mlops_provider.core.runs.fail_run`)
   before the error propagates: no monitoring run is left RUNNING.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from mlops_provider.core import io
from mlops_provider.core.errors import ParameterError
from mlops_provider.core.monitoring.errors import MonitoringError
from mlops_provider.core.reports import ReportLocation, report_location, reports_root
from mlops_provider.core.runs import (
    RunIdentity,
    fail_run,
    finish_run,
    get_or_create_run,
    log_results,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "DEFAULT_MONITORING_EXPERIMENT",
    "MonitoringRun",
    "check_report_location",
    "publish_monitoring_result",
]

log = logging.getLogger(__name__)

DEFAULT_MONITORING_EXPERIMENT = "mlops-monitoring"


@dataclass(frozen=True)
class MonitoringRun:
    """Where a check logs: the MLflow client, the task's identity and the experiment
    (``experiment_name=None`` disables logging)."""

    client: MlflowClient | None
    identity: RunIdentity | None
    experiment_name: str | None = DEFAULT_MONITORING_EXPERIMENT
    artifact_location: str | None = None

    @property
    def enabled(self) -> bool:
        return self.client is not None and self.identity is not None and bool(self.experiment_name)


def _unwritable(path: str) -> str | None:
    """Why nothing can be written at local ``path`` (a file or a directory to create), or
    ``None``: its nearest existing ancestor must be a directory this process may write to."""
    if os.path.isdir(path) and path.lower().endswith((".html", ".htm", ".json")):
        return f"{path} is a directory, not a file"
    existing = path
    while not os.path.lexists(existing):
        parent = posixpath.dirname(existing)
        if parent == existing:
            break
        existing = parent
    if existing != path and not os.path.isdir(existing):
        return f"{existing} is a file, not a directory"
    folder = existing if os.path.isdir(existing) else posixpath.dirname(existing)
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"directory {folder} is not writable by this process"
    return None


def check_report_location(
    report_uri: str | None,
    *,
    location: ReportLocation | None = None,
    conn_id: str | None = None,
) -> None:
    """Fail before any work when the report cannot be written: a cheap probe of the local
    paths of the report (``location``'s two files when given, else ``report_uri``, a directory
    or an ``.html`` file, else the reports root). Nothing is created; remote locations
    (``s3://`` ...) are not probed.

    :param report_uri: the task's ``report_uri`` (``None``: the default location).
    :param location: the resolved location (:func:`report_location`), when known.
    :raises ParameterError: ``report_uri`` lies below a file, or in a directory this process
        cannot write to (names the path at fault).
    :raises MonitoringError: the same for the default location (below the reports root).
    """
    if location is not None:
        uris = [location.html_uri, location.json_uri]
    else:
        uris = [report_uri or reports_root()]
    for uri in uris:
        scheme = uri.split("://", 1)[0].lower() if "://" in uri else "file"
        if scheme not in ("file", "local"):
            continue
        why = _unwritable(io.resolve(uri, conn_id=conn_id).path)
        if why is None:
            continue
        if report_uri:
            raise ParameterError(
                "report_uri",
                f"{uri} cannot be written: {why}; give a report_uri in a writable directory",
            )
        raise MonitoringError(
            f"the default report location {uri} cannot be written: {why}; set report_uri, or "
            "the reports root (setting reports_uri, $MLOPS_REPORTS_URI), to a writable location"
        )


def _open_run(run: MonitoringRun, kind: str, tags: Mapping[str, str]) -> tuple[str, str]:
    from mlops_provider.core.mlflow_target import ensure_experiment

    assert run.client is not None and run.identity is not None and run.experiment_name
    experiment_id = ensure_experiment(run.client, run.experiment_name, run.artifact_location)
    run_id, _ = get_or_create_run(run.client, experiment_id, run.identity, kind=kind, tags=tags)
    return run_id, str(experiment_id)


def publish_monitoring_result(
    result: dict[str, Any],
    *,
    kind: str,
    name: str,
    day: date,
    html: str,
    json_name: str,
    metrics: Mapping[str, Any],
    tags: Mapping[str, str],
    report_uri: str | None = None,
    run: MonitoringRun | None = None,
    document_extra: Mapping[str, Any] | None = None,
    document_omit: Sequence[str] = (),
    conn_id: str | None = None,
) -> dict[str, Any]:
    """Write the report of ``result`` and log it to the monitoring run; returns ``result``
    with ``report_uri``, ``report_json_uri``, ``mlflow_run_id`` and ``mlflow_experiment_id``.

    :param kind: ``drift`` or ``performance``: the report folder, the run's
        ``mlops.monitoring_kind`` and the artifact folder of the run.
    :param name: the name in the default report location.
    :param day: the data interval's day (the report partition).
    :param json_name: file name of the JSON in a report directory.
    :param document_extra: keys the JSON document has beyond the result (e.g. full details).
    :param document_omit: result keys the JSON document leaves out.
    """
    location = report_location(report_uri, kind=kind, name=name, day=day, json_name=json_name)
    check_report_location(report_uri, location=location, conn_id=conn_id)
    result.update(
        report_uri=location.html_uri,
        report_json_uri=location.json_uri,
        mlflow_run_id=None,
        mlflow_experiment_id=None,
    )
    tags = {**tags, "mlops.report_uri": location.html_uri}
    if run is None or not run.enabled:
        _write(kind, result, location, html, document_extra, document_omit, conn_id)
        return result
    assert run.client is not None
    run_id, experiment_id = _open_run(run, kind, tags)
    result.update(mlflow_run_id=run_id, mlflow_experiment_id=experiment_id)
    try:
        text = _write(kind, result, location, html, document_extra, document_omit, conn_id)
        log_results(
            run.client,
            run_id,
            metrics=metrics,
            tags=tags,
            texts={f"{kind}/{json_name}": text, f"{kind}/report.html": html},
        )
    except BaseException:
        fail_run(run.client, run_id, why=f"publishing the {kind} result failed")
        raise
    finish_run(run.client, run_id)
    return result


def _write(
    kind: str,
    result: Mapping[str, Any],
    location: ReportLocation,
    html: str,
    document_extra: Mapping[str, Any] | None,
    document_omit: Sequence[str],
    conn_id: str | None,
) -> str:
    """Write the JSON document and the HTML page; returns the JSON text."""
    document = {k: v for k, v in result.items() if k not in document_omit}
    text = json.dumps(
        {**document, **(document_extra or {})}, indent=1, allow_nan=False, default=str
    )
    io.write_text(text, location.json_uri, conn_id=conn_id)
    io.write_text(html, location.html_uri, conn_id=conn_id)
    log.info("%s report written to %s", kind.capitalize(), location.html_uri)
    return text
