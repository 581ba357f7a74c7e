"""Validate datasets with Great Expectations 1.x suites; summarise, report and quarantine.

A *suite* is GX's own JSON format (``{"name": ..., "expectations": [{"type": "expect_...",
"kwargs": {...}}]}``), given as a path/URI of such a file or as a list of expectation dicts.
:func:`load_suite` checks it completely (JSON syntax, known expectation types, valid kwargs)
before any data is read.

:func:`validate_dataset` reads a parquet/CSV dataset by URI (:mod:`mlops_provider.core.io`) and
runs the suite with GX's in-memory (ephemeral) context: a pandas data source, a dataframe asset,
a whole-dataframe batch definition and ``Batch.validate(suite)``. That is the same code path as
a ``ValidationDefinition`` without storing the suite, the definition and the result in the
context's stores, which we do not need. Progress bars and analytics are disabled through the
context configuration, not through environment variables.

GX records expectations that cannot be evaluated (a missing column, a wrong type for a range
check) as failed with an exception. They are reported here as failed expectations with a short
observed value such as ``column not found: monthly_charges``, so a data-structure problem shows
up as a validation failure and not as a crash. Problems with the dataset itself (nothing at the
URI, a 0-byte or corrupt file) raise :class:`~mlops_provider.core.io.DatasetError` subclasses
(``ValueError``); problems with the suite raise :class:`SuiteError` (``ValueError``).

The full GX result is written as JSON (``result.json``) beside a self-contained HTML report
(``report.html``, see :mod:`mlops_provider.core.validation_report`); :func:`quarantine` copies
a failing dataset, never touching the original, next to both files.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import os
import posixpath
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_provider.core import io
from mlops_provider.core.errors import InputError
from mlops_provider.core.validation_report import render_validation_report

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

__all__ = [
    "RESULT_FILE",
    "REPORT_FILE",
    "QUARANTINE_DATA_DIR",
    "SuiteError",
    "ExpectationOutcome",
    "ValidationOutcome",
    "load_suite",
    "read_suite",
    "suite_parameter_names",
    "validate_frame",
    "validate_dataset",
    "write_outcome",
    "quarantine",
    "render_validation_report",
    "dataset_name",
    "partition_key",
]

RESULT_FILE = "result.json"
REPORT_FILE = "report.html"
QUARANTINE_RESULT_FILE = "validation_result.json"
QUARANTINE_DATA_DIR = "data"
_INDEX_META = "suite_index"
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_COLUMN_KWARGS = ("column", "column_A", "column_B")
_COLUMN_LIST_KWARGS = ("column_list",)
_NAMING_KWARGS = (*_COLUMN_KWARGS, *_COLUMN_LIST_KWARGS)
_DATA_SUFFIXES = io.PARQUET_SUFFIXES + io.CSV_SUFFIXES
_TYPE_EXPECTATIONS = (
    "expect_column_values_to_be_in_type_list",
    "expect_column_values_to_be_of_type",
)


class SuiteError(InputError):
    """An expectation suite is unusable: missing file, invalid JSON, unknown expectation type,
    invalid kwargs or a suite parameter without a value. The message names the suite and the
    expectation."""


# ==========================================================================================
# Suites
# ==========================================================================================
def _resolve_suite_location(path: str | os.PathLike[str]) -> str:
    text = os.fspath(path)
    if "://" in text and not text.startswith("file://"):
        return text
    local = Path(text[len("file://") :] if text.startswith("file://") else text).expanduser()
    from mlops_provider.core.config import resolve_project_file

    return str(resolve_project_file(local))


def _registered_types() -> list[str]:
    _quiet_gx_logging()
    from great_expectations.expectations.registry import (
        list_registered_expectation_implementations,
    )

    return sorted(list_registered_expectation_implementations())


def _check_expectation(source: str, index: int, item: Any, known: Sequence[str]) -> dict:
    where = f"suite {source}: expectation #{index}"
    if not isinstance(item, Mapping):
        raise SuiteError(f"{where} must be an object with 'type' and 'kwargs', got {item!r}")
    entry = dict(item)
    if "type" not in entry and "expectation_type" in entry:  # GX 0.x spelling
        entry["type"] = entry.pop("expectation_type")
    kind = entry.get("type")
    if not isinstance(kind, str) or not kind:
        raise SuiteError(f"{where} has no 'type' (e.g. 'expect_column_values_to_not_be_null')")
    if kind not in known:
        close = difflib.get_close_matches(kind, known, n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise SuiteError(f"{where} has unknown expectation type {kind!r}{hint}")
    kwargs = entry.get("kwargs", {})
    if not isinstance(kwargs, Mapping):
        raise SuiteError(f"{where} ({kind}): 'kwargs' must be an object, got {kwargs!r}")
    unknown_keys = set(entry) - {
        "type",
        "kwargs",
        "meta",
        "id",
        "notes",
        "description",
        "rendered_content",
        "severity",
    }
    if unknown_keys:
        raise SuiteError(f"{where} ({kind}) has unknown key(s) {sorted(unknown_keys)}")
    entry["kwargs"] = dict(kwargs)
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    try:
        ExpectationConfiguration(type=kind, kwargs=dict(kwargs)).to_domain_obj()
    except Exception as err:  # pydantic ValidationError and friends: report them all alike
        detail = " ".join(str(err).split())
        raise SuiteError(f"{where} ({kind}) has invalid kwargs {dict(kwargs)!r}: {detail}") from err
    return entry


def read_suite(
    suite: str | os.PathLike[str] | Sequence[Mapping[str, Any]] | Mapping[str, Any],
    *,
    conn_id: str | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """Load and check a suite; return its name and its expectation dicts.

    :param suite: a path or URI of a GX suite JSON file (relative paths are looked up in the
        working directory, then in the project root), a suite dict with ``expectations``, or a
        list of expectation dicts (``{"type": ..., "kwargs": {...}}``).
    :raises SuiteError: the file is missing or not valid JSON (the message names the file and
        the position of the error), an expectation type is unknown (with close names), or an
        expectation's kwargs are invalid.
    """
    name: str | None = None
    if isinstance(suite, (str, os.PathLike)):
        location = _resolve_suite_location(suite)
        source = location
        try:
            text = io.read_text(location, conn_id=conn_id)
        except io.DatasetNotFound:
            raise SuiteError(f"suite file {location} does not exist") from None
        except (OSError, io.DatasetError) as err:
            raise SuiteError(f"suite file {location} is not readable: {err}") from err
        try:
            data: Any = json.loads(text)
        except json.JSONDecodeError as err:
            raise SuiteError(
                f"suite file {location} is not valid JSON: {err.msg} at line {err.lineno}, "
                f"column {err.colno} (char {err.pos})"
            ) from err
        name = Path(str(location).rstrip("/")).stem
    else:
        data = suite
        source = "<inline>"
    if isinstance(data, Mapping):
        if "expectations" not in data:
            raise SuiteError(f"suite {source} has no 'expectations' list")
        name = str(data.get("name") or data.get("expectation_suite_name") or name or "suite")
        items = data["expectations"]
    else:
        items = data
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        raise SuiteError(
            f"suite {source} must be a list of expectations, got {type(items).__name__}"
        )
    if not items:
        raise SuiteError(f"suite {source} has no expectations")
    known = _registered_types()
    expectations = [_check_expectation(source, i, item, known) for i, item in enumerate(items)]
    return name or "inline_suite", expectations


def load_suite(
    path_or_list: str | os.PathLike[str] | Sequence[Mapping[str, Any]] | Mapping[str, Any],
    *,
    conn_id: str | None = None,
) -> list[dict[str, Any]]:
    """The checked expectation dicts of a suite file or list (see :func:`read_suite`)."""
    return read_suite(path_or_list, conn_id=conn_id)[1]


def suite_parameter_names(expectations: Sequence[Mapping[str, Any]]) -> set[str]:
    """Names used as ``{"$PARAMETER": "name"}`` in the expectations' kwargs (plain names only;
    expressions such as ``now() - timedelta(days=1)`` are left to GX)."""
    names: set[str] = set()
    for item in expectations:
        for value in dict(item.get("kwargs") or {}).values():
            if isinstance(value, Mapping) and "$PARAMETER" in value:
                expr = str(value["$PARAMETER"]).strip()
                if _PARAM_NAME.match(expr):
                    names.add(expr)
    return names


def _parameter_value(value: Any) -> Any:
    # GX compares datetime columns with ISO strings (it parses them) and keeps its result JSON
    # clean that way; pendulum DateTimes are datetimes too.
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def _prepare_parameters(
    suite_name: str,
    expectations: Sequence[Mapping[str, Any]],
    suite_parameters: Mapping[str, Any] | None,
) -> dict[str, Any]:
    params = {str(k): _parameter_value(v) for k, v in dict(suite_parameters or {}).items()}
    params.setdefault("now", datetime.now(timezone.utc).isoformat())
    missing = sorted(suite_parameter_names(expectations) - set(params))
    if missing:
        users = [
            f"{e['type']}({_column_label(e['kwargs']) or ''})"
            for e in expectations
            if any(
                isinstance(v, Mapping) and str(v.get("$PARAMETER", "")).strip() in missing
                for v in e["kwargs"].values()
            )
        ]
        raise SuiteError(
            f"suite {suite_name}: no value for suite parameter(s) {missing} used by "
            f"{', '.join(users)}; given: {sorted(params)}"
        )
    return params


# ==========================================================================================
# Outcomes
# ==========================================================================================
def _column_label(kwargs: Mapping[str, Any]) -> str | None:
    cols: list[str] = []
    for key in _COLUMN_KWARGS:
        if kwargs.get(key) is not None:
            cols.append(str(kwargs[key]))
    for key in _COLUMN_LIST_KWARGS:
        if isinstance(kwargs.get(key), (list, tuple)):
            cols.extend(str(c) for c in kwargs[key])
    return ",".join(cols) if cols else None


def _referenced_columns(kwargs: Mapping[str, Any]) -> list[str]:
    cols = [str(kwargs[k]) for k in _COLUMN_KWARGS if kwargs.get(k) is not None]
    for key in _COLUMN_LIST_KWARGS:
        if isinstance(kwargs.get(key), (list, tuple)):
            cols.extend(str(c) for c in kwargs[key])
    return cols


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _exception_message(info: Mapping[str, Any] | None) -> str | None:
    if not info:
        return None
    if "raised_exception" in info:
        return str(info.get("exception_message")) if info.get("raised_exception") else None
    messages = []
    for value in info.values():
        if isinstance(value, Mapping) and value.get("raised_exception"):
            msg = str(value.get("exception_message") or "").strip()
            if msg and msg not in messages:
                messages.append(msg)
    return "; ".join(messages) if messages else None


@dataclass(frozen=True)
class ExpectationOutcome:
    """One expectation's verdict in a form made for messages, reports and XCom."""

    index: int
    expectation_type: str
    kwargs: dict[str, Any]
    success: bool
    observed: str
    unexpected_percent: float | None = None
    unexpected_count: int | None = None
    partial_unexpected: list[Any] = field(default_factory=list)
    error: str | None = None

    @property
    def column(self) -> str | None:
        """The column(s) the expectation is about, comma-separated; None for table-level."""
        return _column_label(self.kwargs)

    @property
    def short_name(self) -> str:
        """``expect_column_values_to_not_be_null(monthly_charges)`` style name."""
        col = self.column
        return f"{self.expectation_type}({col})" if col else self.expectation_type

    def describe(self) -> str:
        """One line: name, observed value and the expectation's kwargs."""
        shown = {k: v for k, v in self.kwargs.items() if k not in _NAMING_KWARGS}
        expected = f"; expected {_short(shown, 200)}" if shown else ""
        return f"{self.short_name}: observed {self.observed}{expected}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "expectation": self.short_name,
            "type": self.expectation_type,
            "column": self.column,
            "success": self.success,
            "observed": self.observed,
            "unexpected_percent": self.unexpected_percent,
            "unexpected_count": self.unexpected_count,
            "error": self.error,
            "kwargs": self.kwargs,
        }


def _observed(kind: str, result: Mapping[str, Any]) -> str:
    details = result.get("details") or {}
    mismatched = details.get("mismatched") if isinstance(details, Mapping) else None
    if isinstance(mismatched, Mapping) and mismatched:
        parts = []
        if mismatched.get("missing"):
            parts.append(f"missing columns {mismatched['missing']}")
        if mismatched.get("unexpected"):
            parts.append(f"unexpected columns {mismatched['unexpected']}")
        return "; ".join(parts)
    if "unexpected_percent" in result and result.get("unexpected_percent") is not None:
        pct = float(result["unexpected_percent"])
        sample = result.get("partial_unexpected_list") or []
        if kind in _TYPE_EXPECTATIONS and sample:
            # Object columns are checked value by value: name the Python types found.
            found = sorted({type(v).__name__ for v in sample if v is not None})
            return f"{pct:.2f}% of values of type {found}, e.g. {_short(list(sample[:3]), 80)}"
        count = result.get("unexpected_count")
        total = result.get("element_count")
        text = f"{pct:.2f}% unexpected"
        if count is not None and total is not None:
            text += f" ({count} of {total} rows)"
        if sample:
            text += f", e.g. {_short(list(sample[:5]), 120)}"
        return text
    if "observed_value" in result:
        return _short(result["observed_value"])
    if result.get("element_count") == 0 or result.get("unexpected_count") == 0:
        return "no rows"
    return "n/a"


def _outcome_from_result(
    item: Mapping[str, Any], index: int, columns: Sequence[str]
) -> ExpectationOutcome:
    config = item.get("expectation_config") or {}
    kwargs = {k: v for k, v in dict(config.get("kwargs") or {}).items() if k != "batch_id"}
    result = dict(item.get("result") or {})
    error = _exception_message(item.get("exception_info"))
    success = bool(item.get("success"))
    if error is not None:
        missing = [c for c in _referenced_columns(kwargs) if c not in columns]
        if missing:
            observed = f"column not found: {', '.join(missing)}"
            error = f"column(s) {missing} not in the dataset; {error}"
        else:
            observed = f"error: {_short(error.splitlines()[0], 200)}"
        success = False
    else:
        observed = _observed(str(config.get("type")), result)
    pct = result.get("unexpected_percent")
    count = result.get("unexpected_count")
    return ExpectationOutcome(
        index=index,
        expectation_type=str(config.get("type")),
        kwargs=kwargs,
        success=success,
        observed=observed,
        unexpected_percent=float(pct)
        if isinstance(pct, (int, float)) and math.isfinite(pct)
        else None,
        unexpected_count=int(count) if isinstance(count, int) else None,
        partial_unexpected=list(result.get("partial_unexpected_list") or [])[:20],
        error=error,
    )


@dataclass
class ValidationOutcome:
    """What a validation found, where its result and report are, and a summary for XCom."""

    dataset: str
    suite_name: str
    success: bool
    row_count: int
    columns: list[str]
    results: list[ExpectationOutcome]
    suite_parameters: dict[str, Any]
    null_share: dict[str, float]
    seconds: float
    result_uri: str | None = None
    report_uri: str | None = None
    quarantine_uri: str | None = None
    title: str | None = None
    gx_result: dict[str, Any] = field(default_factory=dict, repr=False)
    report_html: str = field(default="", repr=False)

    @property
    def evaluated_expectations(self) -> int:
        return len(self.results)

    @property
    def successful_expectations(self) -> int:
        return sum(1 for r in self.results if r.success)

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [r for r in self.results if not r.success]

    def to_summary(self) -> dict[str, Any]:
        """The small JSON-serializable summary returned to XCom."""
        return {
            "success": self.success,
            "dataset": self.dataset,
            "suite": self.suite_name,
            "row_count": self.row_count,
            "evaluated_expectations": self.evaluated_expectations,
            "successful_expectations": self.successful_expectations,
            "failed_expectations": len(self.failed),
            "failed": [r.short_name for r in self.failed],
            "result_uri": self.result_uri,
            "report_uri": self.report_uri,
            "quarantine_uri": self.quarantine_uri,
        }

    def failure_message(self, *, limit: int = 15) -> str:
        """Multi-line message listing the failed expectations (observed value, expectation) and
        where the full result is."""
        failed = self.failed
        lines = [
            f"dataset {self.dataset} failed {len(failed)} of {self.evaluated_expectations} "
            f"expectation(s) of suite '{self.suite_name}' ({self.row_count:,} rows):"
        ]
        lines += [f"  - {r.describe()}" for r in failed[:limit]]
        if len(failed) > limit:
            lines.append(f"  ... and {len(failed) - limit} more")
        if self.result_uri:
            lines.append(f"full result: {self.result_uri}")
        if self.report_uri:
            lines.append(f"report: {self.report_uri}")
        if self.quarantine_uri:
            lines.append(f"input copied to quarantine: {self.quarantine_uri}")
        return "\n".join(lines)


# ==========================================================================================
# Validation
# ==========================================================================================
def _quiet_gx_logging() -> None:
    # GX logs its API registration and data source loading at INFO on import and on every
    # context; keep task logs readable unless the user configured GX's logger themselves.
    logger = logging.getLogger("great_expectations")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.WARNING)


def _context() -> Any:
    _quiet_gx_logging()
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


def _run_gx(
    frame: pd.DataFrame,
    suite_name: str,
    expectations: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
    result_format: str | Mapping[str, Any],
) -> dict[str, Any]:
    import great_expectations as gx
    from great_expectations.exceptions import SuiteParameterError
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    context = _context()
    asset = context.data_sources.add_pandas("mlops").add_dataframe_asset(suite_name)
    batch_definition = asset.add_batch_definition_whole_dataframe("whole_dataframe")
    # The constructor keeps every expectation; add_expectation_configuration() would replace an
    # earlier expectation of the same type on the same column (GX's "domain" upsert).
    suite = gx.ExpectationSuite(
        name=suite_name,
        expectations=[
            ExpectationConfiguration(
                type=item["type"],
                kwargs=dict(item["kwargs"]),
                meta={**dict(item.get("meta") or {}), _INDEX_META: index},
            )
            for index, item in enumerate(expectations)
        ],
    )
    if len(suite.expectations) != len(expectations):  # the constructor logs and skips bad ones
        raise SuiteError(f"suite {suite_name}: GX rejected some expectations (see the log)")
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    try:
        result = batch.validate(
            suite, result_format=result_format, expectation_parameters=dict(params)
        )
    except SuiteParameterError as err:
        raise SuiteError(f"suite {suite_name}: suite parameter error: {err}") from err
    return result.to_json_dict()


def validate_frame(
    frame: pd.DataFrame,
    suite: str | os.PathLike[str] | Sequence[Mapping[str, Any]] | Mapping[str, Any],
    *,
    suite_parameters: Mapping[str, Any] | None = None,
    dataset: str = "<dataframe>",
    result_dir: str | None = None,
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
    suite_name, expectations = read_suite(suite, conn_id=suite_conn_id)
    params = _prepare_parameters(suite_name, expectations, suite_parameters)
    return _validate_loaded(
        frame,
        suite_name,
        expectations,
        params,
        dataset=dataset,
        result_dir=result_dir,
        conn_id=conn_id,
        null_counts=null_counts,
        result_format=result_format,
        title=title,
    )


def _validate_loaded(
    frame: pd.DataFrame,
    suite_name: str,
    expectations: Sequence[Mapping[str, Any]],
    params: dict[str, Any],
    *,
    dataset: str,
    result_dir: str | None,
    conn_id: str | None,
    null_counts: Mapping[str, int] | None,
    result_format: str | Mapping[str, Any],
    title: str | None,
    started: float | None = None,
) -> ValidationOutcome:
    started = time.perf_counter() if started is None else started
    rows = len(frame)
    progress = io.ProgressLogger(f"validating {dataset} with suite {suite_name}", total_rows=rows)
    gx_result = _run_gx(frame, suite_name, expectations, params, result_format)
    progress.update(rows)
    progress.done()
    columns = [str(c) for c in frame.columns]
    outcomes = []
    for position, item in enumerate(gx_result.get("results") or []):
        meta = (item.get("expectation_config") or {}).get("meta") or {}
        index = int(meta.get(_INDEX_META, position))
        outcomes.append(_outcome_from_result(item, index, columns))
    outcomes.sort(key=lambda o: o.index)
    if null_counts is None:
        null_counts = {str(c): int(n) for c, n in frame.isna().sum().items()}
    null_share = {c: (null_counts.get(c, 0) / rows if rows else 0.0) for c in columns}
    gx_result.setdefault("meta", {})["mlops"] = {
        "dataset": dataset,
        "row_count": rows,
        "columns": columns,
        "suite_parameters": params,
    }
    outcome = ValidationOutcome(
        dataset=dataset,
        suite_name=suite_name,
        success=all(o.success for o in outcomes),
        row_count=rows,
        columns=columns,
        results=outcomes,
        suite_parameters=params,
        null_share=null_share,
        seconds=0.0,
        title=title,
        gx_result=gx_result,
    )
    if result_dir is not None:
        write_outcome(outcome, result_dir, conn_id=conn_id)
    outcome.seconds = time.perf_counter() - started
    level = logging.INFO if outcome.success else logging.WARNING
    log.log(
        level,
        "validation of %s with suite %s: %s (%d of %d expectations passed, %d rows, %.1f s)",
        dataset,
        suite_name,
        "passed" if outcome.success else "FAILED",
        outcome.successful_expectations,
        outcome.evaluated_expectations,
        rows,
        outcome.seconds,
    )
    return outcome


def validate_dataset(
    uri: str | os.PathLike[str],
    suite: str | os.PathLike[str] | Sequence[Mapping[str, Any]] | Mapping[str, Any],
    *,
    suite_parameters: Mapping[str, Any] | None = None,
    conn_id: str | None = None,
    result_dir: str | None = None,
    result_conn_id: str | None = None,
    suite_conn_id: str | None = None,
    format: str | None = None,  # noqa: A002 - core.io's name
    result_format: str | Mapping[str, Any] = "SUMMARY",
    title: str | None = None,
) -> ValidationOutcome:
    """Validate the dataset at ``uri`` with a GX suite.

    The suite is loaded and checked first, then the dataset is read (parquet or CSV, one file
    or a directory, local or remote) and validated.

    :param uri: dataset URI (plain path, ``file://``, ``s3://`` ...).
    :param suite: suite file path/URI, suite dict, or list of expectation dicts.
    :param suite_parameters: values for ``{"$PARAMETER": "name"}`` kwargs; datetimes are passed
        as ISO strings. ``now`` (current UTC time) is always provided unless given.
    :param conn_id: connection for a remote ``uri``.
    :param result_dir: where to write ``result.json`` (full GX result) and ``report.html``;
        ``None`` writes nothing.
    :param result_conn_id: connection for a remote ``result_dir``.
    :param suite_conn_id: connection for a remote suite file.
    :param format: ``parquet`` or ``csv`` (default: from the file names).
    :param result_format: GX result format (``SUMMARY`` keeps 20 sample unexpected values).
    :returns: a :class:`ValidationOutcome` (``success`` False when an expectation failed).
    :raises SuiteError: the suite or its parameters are invalid (before any data is read).
    :raises mlops_provider.core.io.DatasetError: the dataset does not exist, is a 0-byte or
        corrupt file, or is a directory without data files.
    """
    started = time.perf_counter()
    suite_name, expectations = read_suite(suite, conn_id=suite_conn_id)
    params = _prepare_parameters(suite_name, expectations, suite_parameters)
    text = os.fspath(uri)
    table = io.read_table(text, conn_id=conn_id, format=format)
    null_counts = {name: int(table.column(name).null_count) for name in table.column_names}
    frame = table.to_pandas()
    del table
    return _validate_loaded(
        frame,
        suite_name,
        expectations,
        params,
        dataset=text,
        result_dir=result_dir,
        conn_id=result_conn_id,
        null_counts=null_counts,
        result_format=result_format,
        title=title,
        started=started,
    )


def write_outcome(
    outcome: ValidationOutcome,
    result_dir: str,
    *,
    conn_id: str | None = None,
    title: str | None = None,
) -> ValidationOutcome:
    """Write ``result.json`` and ``report.html`` into ``result_dir`` (atomically, replacing
    earlier ones) and record their URIs on ``outcome``."""
    if title is not None:
        outcome.title = title
    outcome.result_uri = io.join_uri(result_dir, RESULT_FILE)
    outcome.report_uri = io.join_uri(result_dir, REPORT_FILE)
    outcome.report_html = render_validation_report(outcome)
    io.write_text(_result_json(outcome), outcome.result_uri, conn_id=conn_id)
    io.write_text(outcome.report_html, outcome.report_uri, conn_id=conn_id)
    return outcome


def _result_json(outcome: ValidationOutcome) -> str:
    payload = dict(outcome.gx_result)
    meta = dict(payload.get("meta") or {})
    meta["mlops"] = {**dict(meta.get("mlops") or {}), "summary": outcome.to_summary()}
    payload["meta"] = meta
    return json.dumps(payload, indent=1, default=str)


# ==========================================================================================
# Quarantine and naming
# ==========================================================================================
def _is_partition_segment(part: str) -> bool:
    return "=" in part and not part.startswith("=")


def _uri_parts(uri: str) -> list[str]:
    path = uri.split("://", 1)[1] if "://" in uri else uri
    return [p for p in path.split("/") if p and p != "."]


def dataset_name(uri: str) -> str:
    """A short name for a dataset URI: ``.../raw/dt=2026-01-05/activity.parquet`` -> ``raw``,
    ``.../train.parquet`` -> ``train``, ``.../predictions/`` -> ``predictions``."""
    parts = _uri_parts(os.fspath(uri))
    if not parts:
        return "dataset"
    stem = None
    if parts[-1].lower().endswith(_DATA_SUFFIXES):
        stem = parts[-1].split(".", 1)[0]
        parts = parts[:-1]
    partitioned = False
    while parts and _is_partition_segment(parts[-1]):
        parts = parts[:-1]
        partitioned = True
    if partitioned and parts:
        return parts[-1]
    return stem or (parts[-1] if parts else "dataset")


def partition_key(uri: str) -> str | None:
    """The hive partition segments of a URI (``dt=2026-01-05``, ``a=1/b=2``), or None."""
    segments = [p for p in _uri_parts(os.fspath(uri)) if _is_partition_segment(p)]
    return "/".join(segments) if segments else None


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
    """
    source = io.resolve(os.fspath(uri), conn_id=conn_id)
    target = io.resolve(quarantine_uri, conn_id=quarantine_conn_id)
    data_dir = target.child(QUARANTINE_DATA_DIR)
    if not source.fs.exists(source.path):
        raise io.DatasetNotFound(source.uri, "does not exist (nothing to quarantine)")
    outcome.quarantine_uri = quarantine_uri
    if source.fs.isdir(source.path):
        io.copy(source, data_dir)
    else:
        name = posixpath.basename(source.path.rstrip("/"))
        if data_dir.fs.exists(data_dir.path):
            for stale in data_dir.fs.ls(data_dir.path, detail=False):
                if posixpath.basename(str(stale).rstrip("/")) != name:
                    data_dir.fs.rm(stale, recursive=True)
        io.copy(source, data_dir.child(name))
    # Re-render so that the report (and the result JSON) name the quarantine location.
    outcome.report_html = render_validation_report(outcome)
    result_json = _result_json(outcome)
    io.write_text(result_json, target.child(QUARANTINE_RESULT_FILE))
    io.write_text(outcome.report_html, target.child(REPORT_FILE))
    if outcome.result_uri and outcome.report_uri:
        io.write_text(result_json, outcome.result_uri, conn_id=result_conn_id)
        io.write_text(outcome.report_html, outcome.report_uri, conn_id=result_conn_id)
    log.warning("quarantined %s to %s", source.uri, quarantine_uri)
    return quarantine_uri
