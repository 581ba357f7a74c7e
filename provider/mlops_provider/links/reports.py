"""Extra link to the HTML report a task wrote (validation, evaluation, drift ...)."""

from __future__ import annotations

from mlops_provider.links.mlflow import _PersistedLink


class ReportLink(_PersistedLink):
    """Link to the task's HTML report (a ``file://`` or object-storage URL)."""

    name = "Report"


def report_url(uri: str) -> str:
    """A browsable URL for a report URI (plain paths become ``file://`` URLs)."""
    if "://" in uri:
        return uri
    from pathlib import Path

    return Path(uri).resolve().as_uri()
