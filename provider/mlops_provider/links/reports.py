"""Extra link to the HTML report a task wrote (validation, evaluation, drift ...).

A report under the reports root (:func:`mlops_provider.core.reports.reports_root`: local
directory or ``s3://``) is linked through the provider's Airflow plugin,
``<api root>/mlops/reports/<path below the root>``, which serves it behind Airflow's login. A
report written elsewhere cannot be served: its link is the report's own URL when that is
``http(s)``, else its ``file://`` / ``s3://`` URI (the REST API returns it; the UI, which renders
only links it can open, shows none) and the task log names the location.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mlops_provider.links.mlflow import _PersistedLink, plugin_url

__all__ = ["ReportLink", "report_url"]

log = logging.getLogger(__name__)


class ReportLink(_PersistedLink):
    """Link to the task's HTML report, served by the provider's plugin on the API server."""

    name = "Report"


def report_url(uri: str, root: str | None = None) -> str:
    """The link of a report URI (see the module docstring).

    :param uri: where the report was written (a path, ``file://`` or ``s3://`` URI).
    :param root: the reports root (default: the configured one).
    """
    from mlops_provider.core.reports import report_relative_path

    rel = report_relative_path(uri, root)
    if rel is not None:
        return plugin_url("reports", *rel.split("/"))
    if uri.startswith(("http://", "https://")):
        return uri
    log.info("report %s is outside the reports root: the UI cannot open it", uri)
    if "://" in uri:
        return uri
    return Path(uri).resolve().as_uri()
