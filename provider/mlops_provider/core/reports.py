"""Self-contained HTML reports: one file, plots embedded as base64 PNG, no external assets."""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

__all__ = [
    "ReportLocation",
    "badge",
    "escape",
    "figure_to_img",
    "new_figure",
    "page",
    "report_location",
    "table_html",
]

_CSS = """
body{font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin-bottom:4px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}
.meta{color:#666;font-size:13px}table{border-collapse:collapse;margin:8px 0;font-size:13px}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left}th{background:#f5f5f5}
.ok{color:#fff;background:#2e7d32;padding:2px 8px;border-radius:4px}
.bad{color:#fff;background:#c62828;padding:2px 8px;border-radius:4px}
.warn{color:#000;background:#f9a825;padding:2px 8px;border-radius:4px}
.grid{display:flex;flex-wrap:wrap;gap:12px}.grid figure{margin:0}
figcaption{font-size:12px;color:#555;text-align:center}
"""


def escape(value: Any) -> str:
    """HTML-escape any value's string form."""
    return html.escape(str(value))


def new_figure(width: float = 4.0, height: float = 2.6) -> Any:
    """A matplotlib figure on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=90)


def figure_to_img(fig: Any, *, alt: str = "", caption: str | None = None) -> str:
    """Render a matplotlib figure as an ``<img>`` (base64 PNG), optionally with a caption."""
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    img = f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}"/>'
    if caption is None:
        return img
    return f"<figure>{img}<figcaption>{escape(caption)}</figcaption></figure>"


def badge(ok: bool | None, text: str | None = None) -> str:
    """A coloured label: green for True, red for False, amber for None."""
    cls = "warn" if ok is None else ("ok" if ok else "bad")
    label = text if text is not None else ("passed" if ok else "failed")
    return f'<span class="{cls}">{escape(label)}</span>'


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return escape(f"{value:.4g}")
    if isinstance(value, str) and value.startswith("<span"):
        return value
    return escape("" if value is None else value)


def table_html(
    rows: Iterable[Mapping[str, Any]] | Iterable[Sequence[Any]],
    columns: Sequence[str] | None = None,
) -> str:
    """An HTML table from dict rows (columns = keys of the first row) or sequences."""
    items: list[Any] = list(rows)
    if not items:
        return "<p><em>none</em></p>"
    first = items[0]
    if isinstance(first, Mapping):
        columns = list(columns or first.keys())
        body = [[row.get(c) for c in columns] for row in items]
    else:
        columns = list(columns or [])
        body = [list(row) for row in items]
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    lines = ["<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in body]
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"


def page(title: str, sections: Sequence[tuple[str, str]], *, subtitle: str = "") -> str:
    """A full HTML document: a title, a generation time and ``(heading, html)`` sections."""
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<div class='meta'>{escape(subtitle)} generated {generated}</div>",
    ]
    for heading, body in sections:
        parts.append(f"<h2>{escape(heading)}</h2>{body}" if heading else body)
    parts.append("</body></html>")
    return "".join(parts)


# --------------------------------------------------------------------------- where reports go


@dataclass(frozen=True)
class ReportLocation:
    """Where one report goes: the HTML page and the JSON result beside it."""

    html_uri: str
    json_uri: str


def _safe_segment(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", str(name)) or "unnamed"


def report_location(
    report_uri: str | None,
    *,
    kind: str,
    name: str,
    day: date | datetime | None,
    json_name: str = "result.json",
    task: str | None = None,
) -> ReportLocation:
    """The one report-location policy of every operator.

    ``report_uri`` is either an ``.html`` file (the JSON goes next to it, same stem, ``.json``)
    or a directory (``<dir>/report.html`` and ``<dir>/<json_name>``). The default directory is
    ``<data_root>/reports/<kind>/<name>/dt=<day>[/<task>]`` (``<task>`` keeps two tasks that
    report on the same name and day apart).
    """
    from mlops_provider.core import config, io

    if not report_uri:
        base = io.join_uri(str(config.data_root()), "reports", kind, _safe_segment(name))
        report_uri = io.partition_uri(base, day) if day is not None else base
        if task:
            report_uri = io.join_uri(report_uri, _safe_segment(task))
    if report_uri.lower().endswith((".html", ".htm")):
        stem = report_uri.rsplit(".", 1)[0]
        return ReportLocation(html_uri=report_uri, json_uri=f"{stem}.json")
    return ReportLocation(
        html_uri=io.join_uri(report_uri, "report.html"),
        json_uri=io.join_uri(report_uri, json_name),
    )
