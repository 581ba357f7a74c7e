"""HTML report of a drift result: a summary table and one distribution plot per column.

The page is self-contained (plots are embedded as base64 PNG, rendered with matplotlib's Agg
canvas) and is built only from what :class:`~mlops_provider.core.drift.DriftResult` keeps, so a
report can be rendered long after the data is gone.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops_provider.core import reports

if TYPE_CHECKING:
    from mlops_provider.core.drift import ColumnDrift, DriftResult

__all__ = ["render_drift_report"]

REFERENCE_COLOR = "#4c72b0"
CURRENT_COLOR = "#dd8452"


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e4):
        return f"{value:.3e}"
    return f"{value:.4f}"


def _plot(col: ColumnDrift) -> str:
    from matplotlib.ticker import MaxNLocator

    # Small figures, few ticks, legend and title in HTML: drawing text dominates render time.
    fig = reports.new_figure(3.6, 2.1)
    ax = fig.add_subplot(1, 1, 1)
    hist = col.histogram
    if not hist:
        ax.text(0.5, 0.5, "no values to plot", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    elif hist["kind"] == "numeric":
        edges = np.asarray(hist["edges"], dtype=float)
        ax.stairs(hist["reference"], edges, fill=True, alpha=0.45, color=REFERENCE_COLOR)
        ax.stairs(hist["current"], edges, fill=True, alpha=0.45, color=CURRENT_COLOR)
        ax.xaxis.set_major_locator(MaxNLocator(5))
    else:
        labels = hist["labels"]
        x = np.arange(len(labels))
        ax.bar(x - 0.2, hist["reference"], 0.4, color=REFERENCE_COLOR)
        ax.bar(x + 0.2, hist["current"], 0.4, color=CURRENT_COLOR)
        ax.set_xticks(x)
        shown = [str(label)[:12] for label in labels]
        ax.set_xticklabels(shown, rotation=45 if len(labels) > 4 else 0, ha="right", fontsize=6)
    if hist:
        ax.yaxis.set_major_locator(MaxNLocator(3))
        ax.tick_params(labelsize=6)
    state = "DRIFTED" if col.drifted else "no drift"
    caption = (
        f"{col.column} ({state}): {col.method_display} = {_fmt(col.score)}, "
        f"threshold {col.threshold:g}"
    )
    return reports.figure_to_img(fig, alt=f"distribution of {col.column}", caption=caption)


def _legend(reference_label: str, current_label: str) -> str:
    def key(color: str, label: str) -> str:
        swatch = f"display:inline-block;width:12px;height:12px;background:{color};opacity:.6"
        return f"<span style='{swatch}'></span> {reports.escape(label)}"

    return (
        f"<p>{key(REFERENCE_COLOR, reference_label)} &nbsp; {key(CURRENT_COLOR, current_label)}"
        " &nbsp; (share of non-null values per bin or category)</p>"
    )


def _row(col: ColumnDrift) -> dict[str, Any]:
    new = ", ".join(str(c) for c in col.new_categories[:5])
    if len(col.new_categories) > 5:
        new += f" (+{len(col.new_categories) - 5})"
    row: dict[str, Any] = {
        "column": col.column,
        "type": col.column_type,
        "method": col.method_display,
        "score": _fmt(col.score),
        "threshold": f"{col.threshold:g}",
        "drift": reports.badge(not col.drifted, "drifted" if col.drifted else "no drift"),
        "reasons": ", ".join(col.reasons),
        "null share (ref / cur)": f"{col.null_share_reference:.3f} / {col.null_share_current:.3f}",
        "new categories": new,
    }
    if col.score_adjusted is not None:
        row["adjusted p"] = _fmt(col.score_adjusted)
    return row


def render_drift_report(
    result: DriftResult,
    path: str | os.PathLike[str] | None = None,
    *,
    title: str = "Data drift report",
    reference_label: str = "reference",
    current_label: str = "current",
    conn_id: str | None = None,
) -> str:
    """Render ``result`` as an HTML page and return it; with ``path`` also write it there.

    Args:
        result: output of :func:`~mlops_provider.core.drift.detect_drift`.
        path: local path or dataset URI to write the page to atomically (``None``: don't write).
        title: page title.
        reference_label, current_label: names of both sides in the summary and the legends
            (e.g. ``"training (model v3)"`` and ``"2026-01-02"``).
        conn_id: connection for a remote ``path``.

    Returns:
        The HTML text.
    """
    verdict = reports.badge(
        not result.dataset_drift, "dataset drift" if result.dataset_drift else "no dataset drift"
    )
    facts = [
        ("drifted columns", f"{result.n_drifted} of {result.n_columns}"),
        ("share of drifted columns", f"{result.drift_share:.3f}"),
        ("dataset drift when share >=", f"{result.share_threshold:g}"),
        (
            f"{reference_label} rows",
            f"{result.n_reference_rows:,}" + (" (profile)" if result.reference_is_profile else ""),
        ),
        (f"{current_label} rows", f"{result.n_current_rows:,}"),
        ("multiple-testing correction", result.correction or "none"),
    ]
    if result.skipped_columns:
        skipped = ", ".join(f"{k} ({v})" for k, v in result.skipped_columns.items())
        facts.append(("skipped columns", skipped))
    summary = f"<p>{verdict}</p>" + reports.table_html(facts, ["", ""])
    ordered = sorted(result.columns.values(), key=lambda c: not c.drifted)
    table = reports.table_html([_row(c) for c in ordered])
    plots = "".join(_plot(c) for c in ordered)
    html = reports.page(
        title,
        [
            ("Summary", summary),
            ("Columns", table),
            (
                "Distributions",
                _legend(reference_label, current_label) + f"<div class='grid'>{plots}</div>",
            ),
        ],
        subtitle=f"{reference_label} vs {current_label};",
    )
    if path is not None:
        from mlops_provider.core import io

        io.write_text(html, path, conn_id=conn_id)
    return html
