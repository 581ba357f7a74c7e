"""A validation task's work: where its files go, the validation, quarantine, the result.

:func:`check_dataset` is what ``DataValidationOperator`` runs: resolve the report (and
quarantine) locations, validate, quarantine a failing input when asked, and build the result
(docs/results.md). Whether a failure stops the task is the caller's decision
(:attr:`ValidationCheck.stops`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from mlops_provider.core import io, reports
from mlops_provider.core.errors import ParameterError
from mlops_provider.core.times import to_utc
from mlops_provider.core.validation.outcome import ValidationOutcome
from mlops_provider.core.validation.quarantine import (
    QuarantineError,
    default_quarantine_uri,
    quarantine,
)
from mlops_provider.core.validation.report import RESULT_FILE
from mlops_provider.core.validation.run import validate_dataset
from mlops_provider.core.validation.suite import SuiteSpec

__all__ = ["ON_FAILURE_MODES", "ValidationCheck", "check_dataset", "validation_report_location"]

#: What a failed expectation does: fail the task, warn and go on, or quarantine and fail.
ON_FAILURE_MODES = ("fail", "warn", "quarantine")
_STATUS_ON_FAILURE = {"fail": "failed", "warn": "warned", "quarantine": "quarantined"}


@dataclass(frozen=True)
class ValidationCheck:
    """A validation task's outcome and result; :attr:`stops` says whether the task fails."""

    outcome: ValidationOutcome
    result: dict[str, Any]
    on_failure: str

    @property
    def stops(self) -> bool:
        """Whether the task must fail: an expectation failed and ``on_failure`` is not warn."""
        return not self.outcome.success and self.on_failure != "warn"

    def message(self) -> str:
        """The failure message (the failed expectations and where the files are)."""
        return self.outcome.failure_message()


def _partition_day(uri: str) -> date | None:
    for segment in (io.partition_key(uri) or "").split("/"):
        key, _, value = segment.partition("=")
        if key == "dt":
            try:
                return date.fromisoformat(value[:10])
            except ValueError:
                return None
    return None


def validation_report_location(
    dataset: str,
    report_uri: str | None,
    *,
    day: date,
    task: str | None = None,
) -> reports.ReportLocation:
    """Where a validation's HTML report and JSON result go.

    ``report_uri`` as given (a directory: ``report.html`` + ``result.json``; an ``.html`` file:
    the JSON beside it), else ``<reports root>/validation/<dataset name>/dt=<day>/<task>``
    (:func:`~mlops_provider.core.reports.report_location`).
    """
    return reports.report_location(
        report_uri,
        kind="validation",
        name=io.dataset_name(dataset),
        day=day,
        json_name=RESULT_FILE,
        task=task,
    )


def _quarantine(dataset: str, target: str, outcome: ValidationOutcome, conn_id: str | None) -> None:
    """Quarantine a failing dataset; a location that cannot be written raises
    :class:`QuarantineError` naming the failed expectations too."""
    try:
        quarantine(
            dataset,
            target,
            outcome,
            conn_id=conn_id,
            quarantine_conn_id=conn_id,
            result_conn_id=conn_id,
        )
    except io.DatasetError as err:
        outcome.quarantine_uri = None
        raise QuarantineError(outcome, target, err) from err


def check_dataset(
    dataset: str | os.PathLike[str],
    suite: SuiteSpec,
    *,
    on_failure: str = "fail",
    suite_parameters: Mapping[str, Any] | None = None,
    report_uri: str | None = None,
    quarantine_uri: str | None = None,
    day: date | datetime | str | None = None,
    task: str | None = None,
    map_index: int | None = None,
    conn_id: str | None = None,
    run_label: str | None = None,
    allow_empty: bool = False,
) -> ValidationCheck:
    """Validate ``dataset``, write its report, quarantine it if it failed and ``on_failure``
    says so, and build the result.

    :param on_failure: ``fail``, ``warn`` or ``quarantine`` (see :data:`ON_FAILURE_MODES`).
    :param report_uri: see :func:`validation_report_location`.
    :param quarantine_uri: where a failing input is copied; default
        ``<data_root>/quarantine/<dataset name>/<partition or dt=day>``.
    :param day: the day of the data: the ``dt=`` partition of the dataset URI wins, else this
        (the data interval start).
    :param task: the task id (the last segment of the default report directory); a mapped
        task's ``map_index`` is added to it.
    :param conn_id: connection for remote URIs (dataset, suite file, report, quarantine).
    :param run_label: e.g. ``dag_id.task_id``, shown in the report title.
    :param allow_empty: validate a dataset with no rows (a warning in the log and the result's
        ``reasons``); by default a 0-row dataset is an error, since every expectation on its
        values would hold on no data.
    :returns: the outcome and the result, status ``passed``, ``warned``, ``quarantined`` or
        ``failed``, ``rows`` = rows validated.
    :raises SuiteError: the suite is unusable (nothing is read).
    :raises DatasetError: the dataset cannot be read, or has no rows and ``allow_empty`` is
        False (``DatasetEmpty``; nothing is validated or quarantined).
    :raises QuarantineError: the dataset failed and could not be quarantined; the message lists
        the failed expectations and the quarantine location's problem.
    """
    if on_failure not in ON_FAILURE_MODES:
        raise ParameterError("on_failure", f"must be one of {list(ON_FAILURE_MODES)}")
    text = os.fspath(dataset)
    if not text.strip():
        raise ParameterError("dataset", "a dataset URI is required")
    the_day = _partition_day(text)
    if the_day is None:
        if day is None:
            raise ParameterError("day", "required when the dataset URI has no dt= partition")
        the_day = to_utc(day, what="day").date()
    mapped = map_index is not None and map_index >= 0
    label = f"{task}-{map_index}" if task and mapped else task
    location = validation_report_location(text, report_uri, day=the_day, task=label)
    where = ", ".join(part for part in (run_label, f"dt={the_day.isoformat()}") if part)
    outcome = validate_dataset(
        text,
        suite,
        suite_parameters=suite_parameters,
        conn_id=conn_id,
        result_dir=location,
        result_conn_id=conn_id,
        suite_conn_id=conn_id,
        title=f"Validation of {io.dataset_name(text)} ({where})",
        allow_empty=allow_empty,
    )
    status = "passed"
    if not outcome.success:
        status = _STATUS_ON_FAILURE[on_failure]
    if status == "quarantined":
        target = quarantine_uri or default_quarantine_uri(text, the_day, map_index=map_index)
        _quarantine(text, target, outcome, conn_id)
    return ValidationCheck(outcome=outcome, result=outcome.to_result(status), on_failure=on_failure)
