"""Self-contained HTML reports: one file, plots embedded as base64 PNG, no external assets."""

from __future__ import annotations

import base64
import html
import io
import os
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

__all__ = [
    "ReportFile",
    "ReportLocation",
    "ReportNotFound",
    "UnsafeReportPath",
    "badge",
    "escape",
    "figure_to_img",
    "new_figure",
    "open_report",
    "page",
    "report_location",
    "report_relative_path",
    "reports_root",
    "safe_relative_path",
    "svg_bars",
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


def svg_bars(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    color: str | Sequence[str],
    axis_label: str,
    caption: str,
    maximum: float = 100.0,
    unit: str = "%",
    digits: int = 1,
    limit: float | None = None,
    limit_label: str = "",
) -> str:
    """A horizontal bar chart as inline SVG, in a ``<figure>``.

    Drawn by hand rather than with matplotlib: importing matplotlib costs seconds on a busy
    worker, more than some reports are allowed to add to the work they report on.

    :param labels: one label per bar (long ones are shortened, the full text is the tooltip).
    :param values: the bar lengths, on an axis from 0 to ``maximum`` (longer bars are clipped);
        each is printed after its bar with ``digits`` decimals and ``unit``.
    :param color: one colour for every bar, or one per bar.
    :param limit: where to draw a dashed vertical line (a budget or threshold), labelled
        ``limit_label``; ``None``: no line.
    :returns: the ``<figure>`` (the SVG and ``caption``).
    """
    colors = [color] * len(values) if isinstance(color, str) else list(color)
    bar_h, gap, label_w, plot_w, bottom = 14, 6, 330, 300, 34
    top = 10 if limit is None else 24
    axis_y = top + len(values) * (bar_h + gap)
    width = label_w + plot_w + 70

    def x_of(value: float) -> float:
        return label_w + plot_w * min(max(value, 0.0), maximum) / maximum

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{axis_y + bottom}" '
        f'role="img" aria-label="{escape(caption)}" style="font-family:sans-serif;font-size:11px">'
    ]
    for tick in (maximum * i / 4 for i in range(5)):
        x = x_of(tick)
        parts.append(
            f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{axis_y}" stroke="#ddd"/>'
            f'<text x="{x:.1f}" y="{axis_y + 13}" text-anchor="middle" fill="#555">{tick:.3g}</text>'
        )
    for i, (label, value) in enumerate(zip(labels, values)):
        y = top + i * (bar_h + gap)
        shown = label if len(label) <= 52 else "..." + label[-49:]
        parts.append(
            f'<text x="{label_w - 6}" y="{y + bar_h - 3}" text-anchor="end">'
            f"<title>{escape(label)}</title>{escape(shown)}</text>"
            f'<rect x="{label_w}" y="{y}" width="{x_of(value) - label_w:.1f}" height="{bar_h}" '
            f'fill="{colors[i]}"/>'
            f'<text x="{x_of(value) + 4:.1f}" y="{y + bar_h - 3}" '
            f'fill="#333">{value:.{digits}f}{escape(unit)}</text>'
        )
    if limit is not None:
        x = x_of(limit)
        parts.append(
            f'<line x1="{x:.1f}" y1="{top - 8}" x2="{x:.1f}" y2="{axis_y}" stroke="#c62828" '
            f'stroke-dasharray="4 3"/><text x="{x:.1f}" y="{top - 12}" text-anchor="middle" '
            f'fill="#c62828">{escape(limit_label)}</text>'
        )
    parts.append(
        f'<text x="{label_w + plot_w / 2}" y="{axis_y + 28}" text-anchor="middle" '
        f'fill="#333">{escape(axis_label)}</text></svg>'
    )
    return f"<figure>{''.join(parts)}<figcaption>{escape(caption)}</figcaption></figure>"


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
    ``<reports root>/<kind>/<name>/dt=<day>[/<task>]`` (:func:`reports_root`, the root the
    Airflow plugin serves; ``<task>`` keeps two tasks that report on the same name and day apart).
    """
    from mlops_provider.core import io

    if not report_uri:
        base = io.join_uri(reports_root(), kind, _safe_segment(name))
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


# --------------------------------------------------------------------------- serving reports


def reports_root() -> str:
    """The reports root: where operators write their reports when no ``report_uri`` is given,
    and what the Airflow plugin serves (:func:`mlops_provider.core.config.reports_uri`: setting
    ``reports_uri``, else ``<lake_uri>/reports``, else ``<reports root>``)."""
    from mlops_provider.core import config

    return config.reports_uri()


def _canonical(uri: str) -> tuple[str, str]:
    """``(scheme, normalised absolute path)`` of a path or URI (local paths: ``file`` and the
    real path, so a symlinked data root compares equal to its target)."""
    if "://" in uri:
        scheme, rest = uri.split("://", 1)
        scheme = scheme.lower()
    else:
        scheme, rest = "file", uri
    if scheme in ("file", "local"):
        return "file", os.path.realpath(os.path.expanduser(rest or "/"))
    return scheme, posixpath.normpath("/" + rest.lstrip("/"))


def report_relative_path(uri: str, root: str | None = None) -> str | None:
    """The POSIX path of report ``uri`` below the reports ``root`` (default
    :func:`reports_root`), or ``None`` when the report lies outside it (another scheme, bucket or
    directory, or the root itself)."""
    if not uri:
        return None
    scheme, path = _canonical(str(uri))
    root_scheme, root_path = _canonical(root if root is not None else reports_root())
    if scheme != root_scheme:
        return None
    if scheme == "file":
        try:
            rel = os.path.relpath(path, root_path)
        except ValueError:  # another drive (Windows)
            return None
        rel = rel.replace(os.sep, "/")
    else:
        prefix = root_path.rstrip("/") + "/"
        if not path.startswith(prefix):
            return None
        rel = path[len(prefix) :]
    if rel in ("", ".") or rel == ".." or rel.startswith("../"):
        return None
    return rel


class UnsafeReportPath(ValueError):
    """A requested report path that could leave the reports root or name no file."""


def safe_relative_path(path: str) -> str:
    """Check a report path taken from a request and return it unchanged.

    Accepted: a relative POSIX path of non-empty segments, none of them ``.``, ``..`` or hidden
    (a leading dot: staging files), no backslash, NUL or drive letter.

    :raises UnsafeReportPath: anything else.
    """
    if not path or "\x00" in path or "\\" in path:
        raise UnsafeReportPath(f"invalid report path {path!r}")
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        raise UnsafeReportPath(f"absolute report path {path!r}")
    for segment in path.split("/"):
        if not segment or segment in (".", "..") or segment.startswith("."):
            raise UnsafeReportPath(f"invalid segment {segment!r} in report path {path!r}")
    return path


class ReportNotFound(LookupError):
    """No servable file at a report path (missing, a directory, outside the root, too large)."""


@dataclass(frozen=True)
class ReportFile:
    """A report file ready to be served: a local path (streamed) or the bytes of a remote one.

    :param name: the file name (its content type comes from it).
    """

    name: str
    local_path: str | None = None
    data: bytes | None = None

    @property
    def media_type(self) -> str:
        """The content type for the file's name (``application/octet-stream`` if unknown)."""
        import mimetypes

        kind = mimetypes.guess_type(self.name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind in ("application/json", "image/svg+xml"):
            kind += "; charset=utf-8"
        return kind


#: The largest remote report file served (reports are a few MB at most).
MAX_REMOTE_REPORT_BYTES = 64 * 1024 * 1024


def open_report(
    path: str,
    *,
    root: str | None = None,
    conn_id: str | None = None,
    max_bytes: int = MAX_REMOTE_REPORT_BYTES,
) -> ReportFile:
    """The file at ``path`` below the reports ``root`` (default :func:`reports_root`).

    Local roots: the real path (symlinks resolved) must stay inside the real root. Remote roots
    (``s3://`` ...) are read through ``conn_id`` (Airflow's ObjectStoragePath).

    :raises UnsafeReportPath: ``path`` fails :func:`safe_relative_path`.
    :raises ReportNotFound: nothing servable there.
    """
    from mlops_provider.core import io as lake_io

    rel = safe_relative_path(path)
    root = root if root is not None else reports_root()
    scheme, _ = _canonical(root)
    if scheme == "file":
        root_real = _canonical(root)[1]
        target = os.path.realpath(os.path.join(root_real, *rel.split("/")))
        if os.path.commonpath([root_real, target]) != root_real or target == root_real:
            raise ReportNotFound(f"{path} is outside the reports root")
        if not os.path.isfile(target):
            raise ReportNotFound(f"no report file {path}")
        return ReportFile(name=posixpath.basename(rel), local_path=target)
    loc = lake_io.resolve(root, conn_id=conn_id).child(*rel.split("/"))
    try:
        info = loc.fs.info(loc.path)
    except (FileNotFoundError, PermissionError) as err:
        raise ReportNotFound(f"no report file {path}") from err
    if info.get("type") != "file":
        raise ReportNotFound(f"no report file {path}")
    if int(info.get("size") or 0) > max_bytes:
        raise ReportNotFound(f"{path} is larger than {max_bytes} bytes")
    return ReportFile(name=posixpath.basename(rel), data=bytes(loc.fs.cat_file(loc.path)))
