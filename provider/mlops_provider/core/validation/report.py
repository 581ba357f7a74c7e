"""HTML report of a validation: verdict, failed expectations, every expectation, and plots;
and writing it with the JSON result beside it.

The page is self-contained (see :mod:`mlops_provider.core.reports`) and built only from what a
:class:`~mlops_provider.core.validation.outcome.ValidationOutcome` keeps, so it can be rendered
again later (for example once the dataset has been quarantined).
"""

from __future__ import annotations

import json
import os
from typing import Any

from mlops_provider.core import io, reports
from mlops_provider.core.validation.outcome import (
    ExpectationOutcome,
    ValidationOutcome,
    result_json,
)

__all__ = [
    "REPORT_FILE",
    "RESULT_FILE",
    "render_validation_report",
    "write_outcome",
    "write_report",
]

#: File names inside a report directory.
RESULT_FILE = "result.json"
REPORT_FILE = "report.html"

FAILED_COLOR = "#c62828"
NULL_COLOR = "#4c72b0"
_MAX_BARS = 25
_MAX_COLUMNS = 80


def _kwargs_text(result: ExpectationOutcome) -> str:
    text = json.dumps(result.kwargs, default=str)
    return text if len(text) <= 300 else text[:297] + "..."


def _row(result: ExpectationOutcome) -> dict[str, Any]:
    return {
        "#": result.index,
        "status": reports.badge(result.success),
        "expectation": result.expectation_type,
        "column": result.column or "(table)",
        "observed": result.observed,
        "expectation kwargs": _kwargs_text(result),
    }


def _unexpected_plot(outcome: ValidationOutcome) -> str:
    failed = [r for r in outcome.failed if r.unexpected_percent is not None][:_MAX_BARS]
    if not failed:
        return ""
    return reports.svg_bars(
        [r.short_name for r in failed],
        [float(r.unexpected_percent or 0.0) for r in failed],
        color=FAILED_COLOR,
        axis_label="unexpected values (%)",
        caption="Share of unexpected values per failed row-level expectation",
    )


def _null_plot(outcome: ValidationOutcome) -> str:
    if not outcome.null_share:
        return ""
    items = list(outcome.null_share.items())[:_MAX_COLUMNS]
    return reports.svg_bars(
        [name for name, _ in items],
        [100.0 * share for _, share in items],
        color=NULL_COLOR,
        axis_label="null values (%)",
        caption=f"Null share per column ({outcome.row_count:,} rows)",
    )


def render_validation_report(
    outcome: ValidationOutcome,
    path: str | os.PathLike[str] | None = None,
    *,
    title: str | None = None,
    conn_id: str | None = None,
) -> str:
    """Render ``outcome`` as an HTML page and return it; with ``path`` also write it there.

    Sections: summary (verdict, dataset, suite, rows, counts, suite parameters, result and
    quarantine locations), failed expectations, all expectations (status badge, column,
    observed value, kwargs), and plots: the unexpected share of each failed expectation and
    the null share of each column.
    """
    verdict = reports.badge(outcome.success, "passed" if outcome.success else "FAILED")
    facts: list[tuple[str, Any]] = [
        ("dataset", outcome.dataset),
        ("suite", outcome.suite_name),
        ("rows", f"{outcome.row_count:,}"),
        ("columns", f"{len(outcome.columns)}: {', '.join(outcome.columns)}"),
        (
            "expectations",
            f"{outcome.evaluated_expectations} evaluated, {outcome.successful_expectations} "
            f"passed, {len(outcome.failed)} failed",
        ),
        ("suite parameters", json.dumps(outcome.suite_parameters, default=str)),
    ]
    if outcome.result_uri:
        facts.append(("full result (JSON)", outcome.result_uri))
    if outcome.quarantine_uri:
        facts.append(("quarantined to", outcome.quarantine_uri))
    summary = f"<p>{verdict}</p>" + reports.table_html(facts, ["", ""])
    failed_rows = [_row(r) for r in outcome.failed]
    sections = [
        ("Summary", summary),
        ("Failed expectations", reports.table_html(failed_rows)),
        ("All expectations", reports.table_html([_row(r) for r in outcome.results])),
    ]
    plots = _unexpected_plot(outcome) + _null_plot(outcome)
    if plots:
        sections.append(("Plots", f"<div class='grid'>{plots}</div>"))
    html = reports.page(
        title or outcome.title or f"Validation of {io.dataset_name(outcome.dataset)}",
        sections,
        subtitle=f"suite {outcome.suite_name} on {outcome.dataset};",
    )
    if path is not None:
        io.write_text(html, path, conn_id=conn_id)
    return html


def write_report(
    outcome: ValidationOutcome, location: reports.ReportLocation, *, conn_id: str | None = None
) -> None:
    """Render the report and write it and the JSON result (atomically, replacing earlier
    ones) to ``location``; the outcome keeps the rendered HTML."""
    outcome.report_html = render_validation_report(outcome)
    io.write_text(result_json(outcome), location.json_uri, conn_id=conn_id)
    io.write_text(outcome.report_html, location.html_uri, conn_id=conn_id)


def write_outcome(
    outcome: ValidationOutcome,
    result_dir: str | reports.ReportLocation,
    *,
    conn_id: str | None = None,
    title: str | None = None,
) -> ValidationOutcome:
    """Write the JSON result and the HTML report and record their URIs on ``outcome``.

    :param result_dir: a :class:`~mlops_provider.core.reports.ReportLocation`, a directory
        (``result.json`` + ``report.html`` inside) or an ``.html`` file (the JSON goes next to
        it, same stem), as :func:`~mlops_provider.core.reports.report_location` reads it.
    """
    if title is not None:
        outcome.title = title
    location = (
        result_dir
        if isinstance(result_dir, reports.ReportLocation)
        else reports.report_location(
            result_dir, kind="validation", name=outcome.suite_name, day=None, json_name=RESULT_FILE
        )
    )
    outcome.result_uri = location.json_uri
    outcome.report_uri = location.html_uri
    write_report(outcome, location, conn_id=conn_id)
    return outcome
