"""Validate a dataset with a Great Expectations suite: fail, warn or quarantine on failure."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from mlops_provider.exceptions import DataValidationFailed
from mlops_provider.links.reports import ReportLink, report_url

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["ON_FAILURE_MODES", "DataValidationOperator", "branch_on_result"]

ON_FAILURE_MODES = ("fail", "warn", "quarantine")
_NUMBER = re.compile(r"^-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]+")


def _is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def _templated_value(value: Any) -> Any:
    # Jinja renders every template to a string: "{{ params.min_rows }}" arrives as "100".
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        text = value.strip()
        return float(text) if any(c in text for c in ".eE") else int(text)
    return value


def branch_on_result(
    summary: Mapping[str, Any] | None,
    *,
    on_success: str | Sequence[str],
    on_failure: str | Sequence[str],
) -> str | list[str]:
    """Task id(s) to follow after a validation, for a ``@task.branch`` task.

    Use with ``on_failure="warn"`` so the validation task succeeds and its XCom carries
    ``success``::

        @task.branch
        def route(summary: dict) -> str | list[str]:
            return branch_on_result(summary, on_success="publish", on_failure="notify")

        route(validate.output)

    :param summary: the validation's XCom (``DataValidationOperator`` return value).
    :param on_success: task id(s) to run when every expectation passed.
    :param on_failure: task id(s) to run otherwise (also when ``summary`` is empty).
    """
    target = on_success if summary and summary.get("success") is True else on_failure
    return target if isinstance(target, str) else list(target)


class DataValidationOperator(BaseOperator):
    """Validate a dataset (parquet/CSV, local or S3) with a Great Expectations 1.x suite.

    The suite runs on the whole dataset, read at execute time. Every run writes the full GX
    result as JSON and a self-contained HTML report (one row per expectation with its status,
    column, observed value and kwargs, plus plots of unexpected and null shares) to
    ``report_uri``, and links the report from the task (extra link "Report").

    Suite parameters: kwargs written as ``{"$PARAMETER": "name"}`` take their value from
    ``suite_parameters``. ``data_interval_start``, ``data_interval_end`` (the run's data
    interval) and ``now`` (UTC, at execution) are always provided as ISO strings, so a suite can
    say "no event_timestamp at or after data_interval_end"; a key given in ``suite_parameters``
    wins. Strings that look like numbers (what Jinja renders) are passed as numbers.

    :param dataset: URI of the dataset to validate (templated).
    :param expectation_suite: path/URI of a GX suite JSON file (``{"name": ..., "expectations":
        [{"type": "expect_...", "kwargs": {...}}]}``; relative paths are looked up in the working
        directory, then in the project root), or a list of expectation dicts (templated).
    :param on_failure: what a failed expectation does: ``"fail"`` (default) raises
        :class:`~mlops_provider.exceptions.DataValidationFailed`; ``"warn"`` logs the failures
        and succeeds with ``success: False`` in the XCom (branch on it with
        :func:`branch_on_result`); ``"quarantine"`` copies the input to ``quarantine_uri``
        (``data/`` + ``validation_result.json`` + ``report.html``; the original is never
        modified, a rerun replaces the copy) and then raises ``DataValidationFailed``.
    :param quarantine_uri: where ``"quarantine"`` copies a failing input (templated); default
        ``<data_root>/quarantine/<dataset name>/<partition or run>``.
    :param report_uri: directory for ``result.json`` and ``report.html`` (templated); default
        ``<data_root>/reports/validation/<dag_id>/<task_id>/<partition or run>``. The
        partition is the dataset URI's ``key=value`` segments, else ``dt=<data interval start
        date>``, else the run id; a rerun for the same partition replaces the files.
    :param suite_parameters: values for the suite's ``$PARAMETER`` kwargs (templated).
    :param aws_conn_id: connection for ``s3://`` (remote) URIs: the dataset, a suite file, the
        report and quarantine locations (templated). ``None`` uses the default credential
        chain; it is never used for local paths.

    **XCom** (also pushed as the return value when the task fails): ``success``, ``dataset``,
    ``suite``, ``row_count``, ``evaluated_expectations``, ``successful_expectations``,
    ``failed_expectations`` (count), ``failed`` (e.g.
    ``["expect_column_values_to_not_be_null(monthly_charges)"]``), ``result_uri`` (JSON),
    ``report_uri`` (HTML), ``quarantine_uri`` (None unless quarantined).

    :raises DataValidationFailed: an expectation failed (``fail``/``quarantine``); the message
        lists each failed expectation with its column, observed value and expected kwargs, and
        names the result, report and quarantine locations. Expectations on a missing column fail
        with ``column not found``.
    :raises mlops_provider.core.validation.SuiteError: (``ValueError``) the suite file is
        missing or not valid JSON (file and position named), names an unknown expectation type
        (close names suggested), has invalid kwargs, or uses a suite parameter without a value.
    :raises mlops_provider.core.io.DatasetError: (``ValueError``) the dataset cannot be read:
        nothing at the URI, a 0-byte or corrupt file. Raised in every ``on_failure`` mode;
        nothing is quarantined since no validation took place.
    """

    template_fields: Sequence[str] = (
        "dataset",
        "expectation_suite",
        "quarantine_uri",
        "report_uri",
        "suite_parameters",
        "aws_conn_id",
    )
    template_fields_renderers = {"expectation_suite": "json", "suite_parameters": "json"}
    operator_extra_links = (ReportLink(),)
    ui_color = "#e8f4e8"

    def __init__(
        self,
        *,
        dataset: str,
        expectation_suite: str | Sequence[Mapping[str, Any]],
        on_failure: str = "fail",
        quarantine_uri: str | None = None,
        report_uri: str | None = None,
        suite_parameters: Mapping[str, Any] | None = None,
        aws_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if on_failure not in ON_FAILURE_MODES:
            raise ValueError(
                f"on_failure must be one of {list(ON_FAILURE_MODES)}, got {on_failure!r}"
            )
        self.dataset = dataset
        self.expectation_suite = expectation_suite
        self.on_failure = on_failure
        self.quarantine_uri = quarantine_uri
        self.report_uri = report_uri
        self.suite_parameters = suite_parameters
        self.aws_conn_id = aws_conn_id

    def _conn(self, uri: Any) -> str | None:
        return self.aws_conn_id if isinstance(uri, str) and _is_remote(uri) else None

    def _run_key(self, context: Context) -> str:
        """``dt=...`` segments of the dataset URI, else the data interval's day, else the run."""
        from mlops_provider.core.validation import partition_key

        key = partition_key(str(self.dataset))
        if not key:
            start = context.get("data_interval_start")
            if start is not None:
                key = f"dt={start.strftime('%Y-%m-%d')}"
            else:
                key = _UNSAFE.sub("_", str(context["ti"].run_id)).strip("_") or "run"
        map_index = getattr(context["ti"], "map_index", -1)
        if map_index is not None and map_index >= 0:
            key = f"{key}/map_index={map_index}"
        return key

    def _parameters(self, context: Context) -> dict[str, Any]:
        params: dict[str, Any] = {"now": datetime.now(timezone.utc).isoformat()}
        for name in ("data_interval_start", "data_interval_end"):
            value: Any = context.get(name)
            if value is not None:
                params[name] = value.isoformat()
        if self.suite_parameters is not None:
            if not isinstance(self.suite_parameters, Mapping):
                raise ValueError(
                    f"suite_parameters must be a mapping, got {type(self.suite_parameters)}"
                )
            params.update({str(k): _templated_value(v) for k, v in self.suite_parameters.items()})
        return params

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core import io
        from mlops_provider.core.config import data_root
        from mlops_provider.core.validation import dataset_name, quarantine, validate_dataset

        ti = context["ti"]
        dataset = str(self.dataset)
        key = self._run_key(context)
        name = dataset_name(dataset)
        report_dir = self.report_uri or io.join_uri(
            str(data_root()), "reports", "validation", ti.dag_id, ti.task_id, key
        )
        suite = self.expectation_suite
        self.log.info(
            "validating %s with %s (on_failure=%s); result and report go to %s",
            dataset,
            suite if isinstance(suite, str) else f"{len(suite)} inline expectation(s)",
            self.on_failure,
            report_dir,
        )
        outcome = validate_dataset(
            dataset,
            suite,
            suite_parameters=self._parameters(context),
            conn_id=self._conn(dataset),
            result_dir=report_dir,
            result_conn_id=self._conn(report_dir),
            suite_conn_id=self._conn(suite),
            title=f"Validation of {name} ({ti.dag_id}.{ti.task_id}, {key})",
        )
        if outcome.report_uri:
            ReportLink.persist(context, report_url(outcome.report_uri))
        if outcome.success:
            self.log.info(
                "all %d expectations passed on %d rows; report: %s",
                outcome.evaluated_expectations,
                outcome.row_count,
                outcome.report_uri,
            )
            return outcome.to_summary()
        if self.on_failure == "warn":
            self.log.warning("%s", outcome.failure_message())
            return outcome.to_summary()
        if self.on_failure == "quarantine":
            target = self.quarantine_uri or io.join_uri(str(data_root()), "quarantine", name, key)
            quarantine(
                dataset,
                target,
                outcome,
                conn_id=self._conn(dataset),
                quarantine_conn_id=self._conn(target),
                result_conn_id=self._conn(report_dir),
            )
        # Downstream tasks with a failure trigger rule (notifications) can read the summary.
        ti.xcom_push(key="return_value", value=outcome.to_summary())
        raise DataValidationFailed(outcome.failure_message())
