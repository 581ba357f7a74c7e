"""Quarantine: copy a failing dataset, never touching the original, with its result and report."""

from __future__ import annotations

import logging
import os
import posixpath
from datetime import date

from mlops_provider.core import config, io
from mlops_provider.core.errors import InputError
from mlops_provider.core.reports import ReportLocation
from mlops_provider.core.validation.outcome import ValidationOutcome
from mlops_provider.core.validation.report import REPORT_FILE, write_report

log = logging.getLogger(__name__)

__all__ = [
    "QUARANTINE_DATA_DIR",
    "QUARANTINE_RESULT_FILE",
    "QuarantineError",
    "default_quarantine_uri",
    "quarantine",
]

QUARANTINE_RESULT_FILE = "validation_result.json"
QUARANTINE_DATA_DIR = "data"


class QuarantineError(InputError):
    """A failing dataset could not be quarantined. The message lists the failed expectations
    (:meth:`ValidationOutcome.failure_message`) and then the quarantine location's problem;
    :attr:`outcome` is the validation's outcome, :attr:`quarantine_uri` the location."""

    def __init__(self, outcome: ValidationOutcome, quarantine_uri: str, problem: Exception):
        self.outcome = outcome
        self.quarantine_uri = quarantine_uri
        super().__init__(
            f"{outcome.failure_message()}\nthe input was not copied to quarantine "
            f"(quarantine_uri {quarantine_uri}): {problem}"
        )


def default_quarantine_uri(dataset: str, day: date, *, map_index: int | None = None) -> str:
    """``<data_root>/quarantine/<dataset name>/<partition>``: the partition is the dataset
    URI's ``key=value`` segments, else ``dt=<day>``; ``/map_index=<n>`` is added for a mapped
    task."""
    key = io.partition_key(dataset) or f"dt={day.isoformat()}"
    uri = io.join_uri(str(config.data_root()), "quarantine", io.dataset_name(dataset), key)
    if map_index is not None and map_index >= 0:
        uri = io.join_uri(uri, f"map_index={map_index}")
    return uri


def _copy_data(source: io.Location, data_dir: io.Location) -> None:
    if source.fs.isdir(source.path):
        io.copy(source, data_dir)
        return
    name = posixpath.basename(source.path.rstrip("/"))
    if data_dir.fs.exists(data_dir.path):
        for stale in data_dir.fs.ls(data_dir.path, detail=False):
            if posixpath.basename(str(stale).rstrip("/")) != name:
                data_dir.fs.rm(stale, recursive=True)
    io.copy(source, data_dir.child(name))


def quarantine(
    uri: str | os.PathLike[str],
    quarantine_uri: str,
    outcome: ValidationOutcome,
    *,
    conn_id: str | None = None,
    quarantine_conn_id: str | None = None,
    result_conn_id: str | None = None,
) -> str:
    """Copy a failing dataset to ``quarantine_uri`` with its validation result and report.

    Layout: ``<quarantine_uri>/data/<file name>`` (a file dataset) or ``<quarantine_uri>/data/``
    (a directory dataset), ``<quarantine_uri>/validation_result.json`` and
    ``<quarantine_uri>/report.html``. The original is never modified or deleted. A rerun
    replaces the previous quarantine copy (each file is committed atomically; stale files of an
    earlier copy are removed), it never duplicates it.

    :param conn_id: connection for a remote ``uri``; ``quarantine_conn_id`` for a remote
        ``quarantine_uri``; ``result_conn_id`` for the outcome's result/report files, which are
        rewritten to name the quarantine location.
    :returns: ``quarantine_uri``; also recorded as ``outcome.quarantine_uri``.
    :raises DatasetNotFound: nothing at ``uri``.
    """
    source = io.resolve(os.fspath(uri), conn_id=conn_id)
    target = io.resolve(quarantine_uri, conn_id=quarantine_conn_id)
    if not source.fs.exists(source.path):
        raise io.DatasetNotFound(source.uri, "does not exist (nothing to quarantine)")
    outcome.quarantine_uri = quarantine_uri
    _copy_data(source, target.child(QUARANTINE_DATA_DIR))
    # Rewritten so that the report and the JSON result name the quarantine location.
    beside_data = ReportLocation(
        html_uri=target.child(REPORT_FILE).uri,
        json_uri=target.child(QUARANTINE_RESULT_FILE).uri,
    )
    write_report(outcome, beside_data, conn_id=quarantine_conn_id)
    if outcome.result_uri and outcome.report_uri:
        location = ReportLocation(html_uri=outcome.report_uri, json_uri=outcome.result_uri)
        write_report(outcome, location, conn_id=result_conn_id)
    log.warning("quarantined %s to %s", source.uri, quarantine_uri)
    return quarantine_uri
