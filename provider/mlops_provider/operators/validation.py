"""Validate a dataset with a Great Expectations suite: fail, warn or quarantine on failure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

from mlops_provider.exceptions import DataValidationFailed
from mlops_provider.links.reports import ReportLink
from mlops_provider.operators._base import AWS_CONN_ID, MlopsBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["ON_FAILURE_MODES", "DataValidationFailed", "DataValidationOperator", "branch_on_result"]

#: Same as ``mlops_provider.core.validation.ON_FAILURE_MODES`` (kept here so that defining a
#: DAG does not import core, which imports pyarrow).
ON_FAILURE_MODES = ("fail", "warn", "quarantine")


def branch_on_result(
    summary: Mapping[str, Any] | None,
    *,
    on_success: str | Sequence[str],
    on_failure: str | Sequence[str],
) -> str | list[str]:
    """Task id(s) to follow after a validation, for a ``@task.branch`` task.

    Use with ``on_failure="warn"`` so the validation task succeeds and its XCom carries
    ``passed``::

        @task.branch
        def route(result: dict) -> str | list[str]:
            return branch_on_result(result, on_success="publish", on_failure="notify")

        route(validate.output)

    :param summary: the validation's XCom (``DataValidationOperator`` return value; a result
        of an earlier release, with ``success`` only, works too).
    :param on_success: task id(s) to run when every expectation passed.
    :param on_failure: task id(s) to run otherwise (also when ``summary`` is empty).
    """
    passed = summary.get("passed", summary.get("success")) if summary else None
    target = on_success if passed is True else on_failure
    return target if isinstance(target, str) else list(target)


class DataValidationOperator(MlopsBaseOperator):
    """Validate a dataset (parquet/CSV, local or S3) with a Great Expectations 1.x suite.

    The suite runs on the whole dataset, read at execute time. Every run writes the full GX
    result as JSON and a self-contained HTML report (one row per expectation with its status,
    column, observed value and kwargs, plus plots of unexpected and null shares) to
    ``report_uri``, and links the report from the task (extra link "Report").

    Suite parameters: kwargs written as ``{"$PARAMETER": "name"}`` take their value from
    ``suite_parameters``. ``data_interval_start``, ``data_interval_end`` (the run's data
    interval) and ``now`` (UTC, at execution) are always provided as ISO strings, so a suite can
    say "no event_timestamp at or after data_interval_end"; a key given in ``suite_parameters``
    wins. Strings that are JSON or Python literals (what Jinja renders: ``"100"``,
    ``"[1, 2]"``) are passed as their value (:func:`mlops_provider.core.params.parse_text`).

    :param dataset: URI of the dataset to validate (templated).
    :param expectation_suite: path/URI of a GX suite JSON file (``{"name": ..., "expectations":
        [{"type": "expect_...", "kwargs": {...}}]}``; relative paths are looked up in the working
        directory, then in ``$MLOPS_PROJECT_ROOT``), or a list of expectation dicts (templated).
    :param on_failure: what a failed expectation does: ``"fail"`` (default) raises
        :class:`~mlops_provider.exceptions.DataValidationFailed`; ``"warn"`` logs the failures
        and succeeds with ``passed: False`` in the XCom (branch on it with
        :func:`branch_on_result`); ``"quarantine"`` copies the input to ``quarantine_uri``
        (``data/`` + ``validation_result.json`` + ``report.html``; the original is never
        modified, a rerun replaces the copy) and then raises ``DataValidationFailed``.
        Checked when the DAG is defined.
    :param quarantine_uri: where ``"quarantine"`` copies a failing input (templated); default
        ``<data_root>/quarantine/<dataset name>/<partition>``: the partition is the dataset
        URI's ``key=value`` segments, else ``dt=<data interval start>``.
    :param report_uri: where the report goes (templated): a directory (``report.html`` +
        ``result.json``) or an ``.html`` file (the JSON beside it, same stem). Default
        ``<reports root>/validation/<dataset name>/dt=<day>/<task_id>``, the day being the
        dataset URI's ``dt=`` partition, else the data interval start (``<task_id>-<map
        index>`` for a mapped task); a rerun for the same day replaces the files.
    :param suite_parameters: values for the suite's ``$PARAMETER`` kwargs (templated).
    :param allow_empty: a dataset with no rows fails the task by default (``DatasetEmpty``,
        in every ``on_failure`` mode: expectations on its values would hold on no data);
        ``True`` validates it, with a warning in the log and a line in the result's
        ``reasons``. (templated)
    :param aws_conn_id: connection for ``s3://`` (remote) URIs: the dataset, a suite file, the
        report and quarantine locations (templated), default ``aws_default``; never used for
        local paths.

    **XCom** (``return_value``; also pushed when the task fails, before raising, for failure
    handlers): the common result keys (docs/results.md): ``status`` (``passed``: every
    expectation held; ``warned``: some failed with ``on_failure="warn"``; ``quarantined``: some
    failed and the input was copied to quarantine, the task fails; ``failed``: some failed,
    the task fails), ``passed``, ``reasons`` (one line per failed expectation: name, observed
    value, expected kwargs), ``model`` (``None``), ``mlflow_run_id`` (``None``), ``report_uri``
    (the HTML report), ``rows`` (rows validated); then ``dataset``, ``suite``,
    ``evaluated_expectations``, ``successful_expectations``, ``failed_expectations`` (count),
    ``failed`` (e.g. ``["expect_column_values_to_not_be_null(monthly_charges)"]``),
    ``result_uri`` (the JSON result), ``quarantine_uri`` (None unless quarantined).
    ``status`` and ``passed`` are also pushed under their own XCom keys.

    **Deprecated keys** (kept for one release): ``success`` (use ``passed``), ``row_count``
    (use ``rows``).

    :raises DataValidationFailed: only when an expectation failed (``fail``/``quarantine``);
        the message lists each failed expectation with its column, observed value and expected
        kwargs, and names the result, report and quarantine locations. When the input could
        not be quarantined (an unwritable ``quarantine_uri``), the message lists the failed
        expectations and then the quarantine location's problem (status ``failed``). Expectations on a
        missing column fail with ``column not found``.
    :raises MlopsError: the input is unusable, in every ``on_failure`` mode and before anything
        is quarantined: the suite (``SuiteError``: file missing or not valid JSON with file and
        position, unknown expectation type with close names, invalid kwargs, a suite parameter
        without a value) or the dataset (``DatasetNotFound`` / ``DatasetFormatError`` /
        ``DatasetEmpty``: nothing at the URI, a 0-byte or corrupt file, no rows without
        ``allow_empty``). The message starts with the core error's name.
    """

    template_fields: Sequence[str] = (
        "dataset",
        "expectation_suite",
        "quarantine_uri",
        "report_uri",
        "suite_parameters",
        "allow_empty",
        "aws_conn_id",
    )
    template_fields_renderers = {"expectation_suite": "json", "suite_parameters": "json"}
    operator_extra_links = (ReportLink(),)
    ui_color = "#e8f4e8"
    push_keys = ("status", "passed")

    def __init__(
        self,
        *,
        dataset: str,
        expectation_suite: str | Sequence[Mapping[str, Any]],
        on_failure: str = "fail",
        quarantine_uri: str | None = None,
        report_uri: str | None = None,
        suite_parameters: Mapping[str, Any] | None = None,
        allow_empty: bool | str = False,
        aws_conn_id: str | None = AWS_CONN_ID,
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
        self.allow_empty = allow_empty
        self.aws_conn_id = aws_conn_id

    def error_message(self, err: Exception) -> str:
        return f"{type(err).__name__}: {err}"

    def _suite(self) -> Any:
        from mlops_provider.core.params import parse_text

        suite = self.expectation_suite
        if isinstance(suite, str):  # a path, or a suite rendered from a template as text
            parsed = parse_text(suite)
            return parsed if isinstance(parsed, (list, dict)) else suite
        return suite

    def _suite_parameters(self, start: datetime, end: datetime | None) -> dict[str, Any]:
        from mlops_provider.core.params import as_mapping, parse_text

        params: dict[str, Any] = {"data_interval_start": start}
        if end is not None:
            params["data_interval_end"] = end
        given = as_mapping(self.suite_parameters, "suite_parameters", default={}) or {}
        params.update(
            {str(k): parse_text(v) if isinstance(v, str) else v for k, v in given.items()}
        )
        return params

    def _check(self, context: Context) -> Any:
        """:func:`~mlops_provider.core.validation.check_dataset` with the rendered parameters."""
        from mlops_provider.core.params import as_bool, as_str
        from mlops_provider.core.validation import check_dataset

        ti = context["ti"]
        start, end = self.data_interval(context)
        return check_dataset(
            as_str(self.dataset, "dataset") or "",
            self._suite(),
            on_failure=self.on_failure,
            suite_parameters=self._suite_parameters(start, end),
            report_uri=as_str(self.report_uri, "report_uri"),
            quarantine_uri=as_str(self.quarantine_uri, "quarantine_uri"),
            day=start,
            task=ti.task_id,
            map_index=getattr(ti, "map_index", None),
            conn_id=self.aws_conn_id,
            run_label=f"{ti.dag_id}.{ti.task_id}",
            allow_empty=bool(as_bool(self.allow_empty, "allow_empty", default=False)),
        )

    def _stop(
        self, context: Context, outcome: Any, result: dict[str, Any], message: str
    ) -> NoReturn:
        """Fail the task after publishing the result (XCom, links) for failure handlers."""
        self._note(outcome)
        self._mlops_result = result  # the failure event reports the validation too
        # Downstream tasks with a failure trigger rule (notifications) can read the result.
        self.persist_links(context, result)
        self.push_result_keys(context, result)
        context["ti"].xcom_push(key="return_value", value=result)
        raise DataValidationFailed(message)

    def _note(self, outcome: Any) -> None:
        """What lineage reports: the expectations and null counts."""
        self._expectations = [r.to_dict() for r in outcome.results]
        self._null_counts = {
            c: round(share * outcome.row_count) for c, share in outcome.null_share.items()
        }

    def run(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core.validation import QuarantineError

        try:
            check = self._check(context)
        except QuarantineError as err:
            self._stop(context, err.outcome, err.outcome.to_result("failed"), str(err))
        result = check.result
        self._note(check.outcome)
        if check.stops:
            self._stop(context, check.outcome, result, check.message())
        if result["passed"]:
            self.log.info(
                "all %d expectations passed on %d rows; report: %s",
                result["evaluated_expectations"],
                result["rows"],
                result["report_uri"],
            )
        else:
            self.log.warning("%s", check.message())
        return result

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (docs/openlineage.md): the validated dataset as the input, with its
        schema, rows, null counts and one assertion per expectation; the quarantined copy as
        the output when there is one. Also what the failure event reports."""
        from mlops_provider.lineage import Lineage, join, operator_result

        result = operator_result(self)
        severity = "warn" if self.on_failure == "warn" else "error"
        lineage = Lineage.of(self).dataset(
            result.get("dataset") or self.dataset,
            rows=result.get("rows"),
            null_counts=getattr(self, "_null_counts", None),
            assertions=[
                {
                    "assertion": e["type"],
                    "name": e["expectation"],
                    "column": e["column"],
                    "success": e["success"],
                    "actual": e["observed"],
                    "expected": {k: v for k, v in e["kwargs"].items() if k != "column"},
                    "severity": severity,
                }
                for e in getattr(self, "_expectations", [])
            ],
        )
        if result.get("quarantine_uri"):
            lineage.dataset(
                join(result["quarantine_uri"], "data"), output=True, rows=result["rows"]
            )
        return lineage.build()
