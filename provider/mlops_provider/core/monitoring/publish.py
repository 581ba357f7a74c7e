"""Publish a monitoring result: the JSON + HTML report and the MLflow monitoring run.

Both checks (drift, performance) end with :func:`publish_monitoring_result`:

1. the report location (:func:`mlops_provider.core.reports.report_location`, default
   ``<reports root>/<kind>/<name>/dt=<day>``);
2. the monitoring run of the task's identity (:mod:`mlops_provider.core.runs`), found again by
   its tags on a retry or a rerun, so reruns never create a second run;
3. the JSON result and the HTML page, written atomically (a rerun replaces them);
4. metrics, tags and both documents logged to the run, which is then marked finished.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from mlops_provider.core import io
from mlops_provider.core.reports import report_location
from mlops_provider.core.runs import RunIdentity, finish_run, get_or_create_run, log_results

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["DEFAULT_MONITORING_EXPERIMENT", "MonitoringRun", "publish_monitoring_result"]

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
    result.update(
        report_uri=location.html_uri,
        report_json_uri=location.json_uri,
        mlflow_run_id=None,
        mlflow_experiment_id=None,
    )
    tags = {**tags, "mlops.report_uri": location.html_uri}
    run_id = None
    if run is not None and run.enabled:
        run_id, experiment_id = _open_run(run, kind, tags)
        result.update(mlflow_run_id=run_id, mlflow_experiment_id=experiment_id)
    document = {k: v for k, v in result.items() if k not in document_omit}
    text = json.dumps(
        {**document, **(document_extra or {})}, indent=1, allow_nan=False, default=str
    )
    io.write_text(text, location.json_uri, conn_id=conn_id)
    io.write_text(html, location.html_uri, conn_id=conn_id)
    log.info("%s report written to %s", kind.capitalize(), location.html_uri)
    if run is not None and run.client is not None and run_id is not None:
        log_results(
            run.client,
            run_id,
            metrics=metrics,
            tags=tags,
            texts={f"{kind}/{json_name}": text, f"{kind}/report.html": html},
        )
        finish_run(run.client, run_id)
    return result
