"""Run a checked suite on a dataset with Great Expectations 1.x.

:func:`validate_dataset` reads a parquet/CSV dataset by URI (:mod:`mlops_provider.core.io`) and
runs the suite with GX's in-memory (ephemeral) context: a pandas data source, a dataframe asset,
a whole-dataframe batch definition and ``Batch.validate(suite)``. That is the same code path as
a ``ValidationDefinition`` without storing the suite, the definition and the result in the
context's stores, which we do not need. Progress bars and analytics are disabled through the
context configuration, not through environment variables.

Problems with the dataset itself (nothing at the URI, a 0-byte or corrupt file) raise
:class:`~mlops_provider.core.io.DatasetError` subclasses; problems with the suite raise
:class:`~mlops_provider.core.validation.suite.SuiteError` (both ``InputError``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mlops_provider.core import io
from mlops_provider.core.reports import ReportLocation
from mlops_provider.core.validation.outcome import (
    INDEX_META,
    ValidationOutcome,
    outcomes_from_gx,
)
from mlops_provider.core.validation.report import write_outcome
from mlops_provider.core.validation.suite import (
    SuiteError,
    SuiteSpec,
    prepare_parameters,
    quiet_gx_logging,
    read_suite,
)

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

__all__ = ["run_gx", "validate_dataset", "validate_frame"]


def _context() -> Any:
    quiet_gx_logging()
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _gx_suite(suite_name: str, expectations: Sequence[Mapping[str, Any]]) -> Any:
    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    # The constructor keeps every expectation; add_expectation_configuration() would replace an
    # earlier expectation of the same type on the same column (GX's "domain" upsert).
    suite = gx.ExpectationSuite(
        name=suite_name,
        expectations=[
            ExpectationConfiguration(
                type=item["type"],
                kwargs=dict(item["kwargs"]),
                meta={**dict(item.get("meta") or {}), INDEX_META: index},
            )
            for index, item in enumerate(expectations)
        ],
    )
    if len(suite.expectations) != len(expectations):  # the constructor logs and skips bad ones
        raise SuiteError(f"suite {suite_name}: GX rejected some expectations (see the log)")
    return suite


def run_gx(
    frame: pd.DataFrame,
    suite_name: str,
    expectations: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
    result_format: str | Mapping[str, Any] = "SUMMARY",
) -> dict[str, Any]:
    """GX's validation result (as a JSON dict) of checked expectations on a DataFrame."""
    from great_expectations.exceptions import SuiteParameterError

    context = _context()
    asset = context.data_sources.add_pandas("mlops").add_dataframe_asset(suite_name)
    batch_definition = asset.add_batch_definition_whole_dataframe("whole_dataframe")
    suite = _gx_suite(suite_name, expectations)
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    try:
        result = batch.validate(
            suite, result_format=result_format, expectation_parameters=dict(params)
        )
    except SuiteParameterError as err:
        raise SuiteError(f"suite {suite_name}: suite parameter error: {err}") from err
    return result.to_json_dict()


def _outcome(
    frame: pd.DataFrame,
    suite_name: str,
    expectations: Sequence[Mapping[str, Any]],
    params: dict[str, Any],
    *,
    dataset: str,
    null_counts: Mapping[str, int] | None,
    result_format: str | Mapping[str, Any],
    title: str | None,
) -> ValidationOutcome:
    rows = len(frame)
    progress = io.ProgressLogger(f"validating {dataset} with suite {suite_name}", total_rows=rows)
    gx_result = run_gx(frame, suite_name, expectations, params, result_format)
    progress.update(rows)
    progress.done()
    columns = [str(c) for c in frame.columns]
    outcomes = outcomes_from_gx(gx_result, columns)
    if null_counts is None:
        null_counts = {str(c): int(n) for c, n in frame.isna().sum().items()}
    gx_result.setdefault("meta", {})["mlops"] = {
        "dataset": dataset,
        "row_count": rows,
        "columns": columns,
        "suite_parameters": params,
    }
    return ValidationOutcome(
        dataset=dataset,
        suite_name=suite_name,
        success=all(o.success for o in outcomes),
        row_count=rows,
        columns=columns,
        results=outcomes,
        suite_parameters=params,
        null_share={c: (null_counts.get(c, 0) / rows if rows else 0.0) for c in columns},
        seconds=0.0,
        title=title,
        gx_result=gx_result,
    )


def _finish(
    outcome: ValidationOutcome,
    result_dir: str | ReportLocation | None,
    conn_id: str | None,
    started: float,
) -> ValidationOutcome:
    if result_dir is not None:
        write_outcome(outcome, result_dir, conn_id=conn_id)
    outcome.seconds = time.perf_counter() - started
    log.log(
        logging.INFO if outcome.success else logging.WARNING,
        "validation of %s with suite %s: %s (%d of %d expectations passed, %d rows, %.1f s)",
        outcome.dataset,
        outcome.suite_name,
        "passed" if outcome.success else "FAILED",
        outcome.successful_expectations,
        outcome.evaluated_expectations,
        outcome.row_count,
        outcome.seconds,
    )
    return outcome


def _empty(dataset: str, allow_empty: bool) -> None:
    """A dataset without rows: an error unless ``allow_empty``, then a warning."""
    if not allow_empty:
        raise io.DatasetEmpty(
            dataset,
            "has 0 rows: nothing to validate (expectations on its values would hold on no "
            "data); pass allow_empty=True to validate an empty dataset",
        )
    log.warning(
        "dataset %s has 0 rows; validating it anyway (allow_empty=True): expectations on its "
        "values hold on no data",
        dataset,
    )


def validate_frame(
    frame: pd.DataFrame,
    suite: SuiteSpec,
    *,
    suite_parameters: Mapping[str, Any] | None = None,
    dataset: str = "<dataframe>",
    result_dir: str | ReportLocation | None = None,
    conn_id: str | None = None,
    suite_conn_id: str | None = None,
    null_counts: Mapping[str, int] | None = None,
    result_format: str | Mapping[str, Any] = "SUMMARY",
    title: str | None = None,
) -> ValidationOutcome:
    """Validate an in-memory DataFrame (see :func:`validate_dataset` for the parameters).

    :param null_counts: per-column null counts when already known (from the parquet/Arrow
        metadata); computed from ``frame`` otherwise. They feed the report's null-share plot.
    """
    started = time.perf_counter()
    suite_name, expectations = read_suite(suite, conn_id=suite_conn_id)
    params = prepare_parameters(suite_name, expectations, suite_parameters)
    outcome = _outcome(
        frame,
        suite_name,
        expectations,
        params,
        dataset=dataset,
        null_counts=null_counts,
        result_format=result_format,
        title=title,
    )
    return _finish(outcome, result_dir, conn_id, started)


def validate_dataset(
    uri: str | os.PathLike[str],
    suite: SuiteSpec,
    *,
    suite_parameters: Mapping[str, Any] | None = None,
    conn_id: str | None = None,
    result_dir: str | ReportLocation | None = None,
    result_conn_id: str | None = None,
    suite_conn_id: str | None = None,
    format: str | None = None,  # noqa: A002 - core.io's name
    result_format: str | Mapping[str, Any] = "SUMMARY",
    title: str | None = None,
    allow_empty: bool = True,
) -> ValidationOutcome:
    """Validate the dataset at ``uri`` with a GX suite.

    The suite is loaded and checked first, then the dataset is read (parquet or CSV, one file
    or a directory, local or remote) and validated.

    :param uri: dataset URI (plain path, ``file://``, ``s3://`` ...).
    :param suite: suite file path/URI, suite dict, or list of expectation dicts.
    :param suite_parameters: values for ``{"$PARAMETER": "name"}`` kwargs; datetimes are passed
        as ISO strings. ``now`` (current UTC time) is always provided unless given.
    :param conn_id: connection for a remote ``uri``.
    :param result_dir: where the JSON result (full GX result) and the HTML report go: a
        directory (``result.json`` + ``report.html``), an ``.html`` file (the JSON beside it,
        same stem) or a :class:`~mlops_provider.core.reports.ReportLocation`; ``None`` writes
        nothing.
    :param result_conn_id: connection for a remote ``result_dir``.
    :param suite_conn_id: connection for a remote suite file.
    :param format: ``parquet`` or ``csv`` (default: from the file names).
    :param result_format: GX result format (``SUMMARY`` keeps 20 sample unexpected values).
    :param allow_empty: False: a dataset with no rows raises ``DatasetEmpty`` (before GX runs);
        True (default): it is validated, with a warning.
    :returns: a :class:`ValidationOutcome` (``success`` False when an expectation failed).
    :raises SuiteError: the suite or its parameters are invalid (before any data is read).
    :raises mlops_provider.core.io.DatasetError: the dataset does not exist, is a 0-byte or
        corrupt file, or is a directory without data files; ``DatasetEmpty`` for 0 rows when
        ``allow_empty`` is False.
    """
    started = time.perf_counter()
    suite_name, expectations = read_suite(suite, conn_id=suite_conn_id)
    params = prepare_parameters(suite_name, expectations, suite_parameters)
    text = os.fspath(uri)
    table = io.read_table(text, conn_id=conn_id, format=format)
    if table.num_rows == 0:
        _empty(text, allow_empty)
    null_counts = {name: int(table.column(name).null_count) for name in table.column_names}
    frame = table.to_pandas()
    del table
    outcome = _outcome(
        frame,
        suite_name,
        expectations,
        params,
        dataset=text,
        null_counts=null_counts,
        result_format=result_format,
        title=title,
    )
    return _finish(outcome, result_dir, result_conn_id, started)
