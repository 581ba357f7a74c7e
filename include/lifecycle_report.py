"""The demo's lifecycle summary: one row per simulated/operational day, as text and HTML.

The rows are collected from what the DAGs wrote (XComs, reports, the registry); this module only
aggregates and renders them, so the same report serves the demo and production backfills.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from mlops_provider.core import reports

__all__ = [
    "DayRecord",
    "RetrainingGain",
    "format_table",
    "render_lifecycle_report",
    "retraining_gain",
]


@dataclass
class DayRecord:
    """What happened on one day of the lifecycle."""

    day: str
    rows: int | None = None
    validation: str | None = None
    drift_share: float | None = None
    dataset_drift: bool | None = None
    performance_status: str | None = None
    roc_auc: float | None = None
    baseline_roc_auc: float | None = None
    # what retraining bought (docs/monitoring.md "Gain over earlier champions"): the matured
    # rows the AUC above was measured on, scored again by the first champion ("never retrained")
    matured_version: str | None = None
    first_champion_version: str | None = None
    first_champion_roc_auc: float | None = None
    previous_champion_roc_auc: float | None = None
    compared_rows: int | None = None
    compared_days: list[str] = field(default_factory=list)
    rows_digest: str | None = None
    champion_version: str | None = None
    scored_rows: int | None = None
    scored_with: str | None = None
    retrain_decision: bool | None = None
    decision_reasons: list[str] = field(default_factory=list)
    training: str | None = None
    notes: list[str] = field(default_factory=list)
    # the realtime service (docs/serving.md) on this day
    service_requests: int | None = None
    service_errors: int | None = None
    service_p50_ms: float | None = None
    service_p99_ms: float | None = None
    served_versions: str | None = None
    deployment: str | None = None
    skew: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


_COLUMNS = (
    ("day", "day"),
    ("rows", "rows"),
    ("validation", "validation"),
    ("drift_share", "drift share"),
    ("roc_auc", "AUC (matured)"),
    ("first_champion_roc_auc", "AUC never retrained"),
    ("champion_version", "champion"),
    ("scored_with", "scored with"),
    ("retrain_decision", "retrain?"),
    ("training", "training"),
)


def format_table(records: Sequence[DayRecord]) -> str:
    """A fixed-width text table of the records (for the terminal)."""
    header = [title for _, title in _COLUMNS]
    body = [[_fmt(getattr(r, key)) for key, _ in _COLUMNS] for r in records]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in body]
    return "\n".join(lines)


def _timeline_plot(records: Sequence[DayRecord]) -> str:
    fig = reports.new_figure(9.0, 4.2)
    ax = fig.add_subplot(2, 1, 1)
    days = list(range(len(records)))
    labels = [r.day[5:] for r in records]
    drift = [r.drift_share if r.drift_share is not None else float("nan") for r in records]
    auc = [r.roc_auc if r.roc_auc is not None else float("nan") for r in records]
    ax.plot(days, drift, marker="o", label="drift share", color="#c62828")
    ax.plot(days, auc, marker="s", label="served model: ROC AUC on matured labels", color="#1565c0")
    base = [r.baseline_roc_auc if r.baseline_roc_auc is not None else float("nan") for r in records]
    ax.plot(days, base, linestyle="--", label="champion's baseline AUC", color="#1565c0", alpha=0.5)
    never = [_nan(r.first_champion_roc_auc) for r in records]
    ax.plot(
        days,
        never,
        marker="x",
        linestyle="-.",
        label="first champion on the same rows (never retrained)",
        color="#6d4c41",
    )
    for i, r in enumerate(records):
        if r.retrain_decision:
            ax.axvline(i, color="#f9a825", linestyle=":", linewidth=2)
    ax.set_ylim(0, 1.05)
    ax.set_xticks(days, labels, fontsize=7)
    ax.legend(fontsize=7, loc="lower left")
    ax.set_title("Drift and performance (dotted: retrain requested)", fontsize=9)
    ax2 = fig.add_subplot(2, 1, 2)
    versions = [float(r.champion_version) if r.champion_version else float("nan") for r in records]
    ax2.step(days, versions, where="post", color="#2e7d32")
    ax2.set_xticks(days, labels, fontsize=7)
    ax2.set_ylabel("champion version", fontsize=8)
    ax2.set_title("Champion version over time", fontsize=9)
    return reports.figure_to_img(fig, alt="lifecycle timeline")


_SERVICE_COLUMNS = (
    ("day", "day"),
    ("service_requests", "requests"),
    ("service_errors", "failed"),
    ("service_p50_ms", "p50 ms"),
    ("service_p99_ms", "p99 ms"),
    ("served_versions", "served version(s)"),
    ("deployment", "deployment"),
    ("skew", "training-serving skew"),
)


def _nan(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _service_plot(records: Sequence[DayRecord]) -> str:
    fig = reports.new_figure(9.0, 4.2)
    days = list(range(len(records)))
    labels = [r.day[5:] for r in records]
    ax = fig.add_subplot(2, 1, 1)
    ax.bar(days, [r.service_requests or 0 for r in records], color="#90caf9", label="requests")
    ax.bar(days, [r.service_errors or 0 for r in records], color="#c62828", label="failed")
    ax.set_xticks(days, labels, fontsize=7)
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title("Requests per day", fontsize=9)
    lat = ax.twinx()
    lat.plot(days, [_nan(r.service_p50_ms) for r in records], marker="o", color="#2e7d32")
    lat.plot(days, [_nan(r.service_p99_ms) for r in records], marker="s", color="#f9a825")
    lat.set_ylabel("p50 (green) / p99 (yellow) ms", fontsize=7)
    ax2 = fig.add_subplot(2, 1, 2)
    served = [
        _nan(float(r.served_versions.split("->")[-1])) if r.served_versions else float("nan")
        for r in records
    ]
    ax2.step(days, served, where="post", color="#6a1b9a", label="served (end of day)")
    champion = [_nan(float(r.champion_version) if r.champion_version else None) for r in records]
    ax2.step(days, champion, where="post", color="#2e7d32", linestyle="--", label="champion")
    ax2.set_xticks(days, labels, fontsize=7)
    ax2.legend(fontsize=7, loc="upper left")
    ax2.set_title("Served version and registry champion", fontsize=9)
    return reports.figure_to_img(fig, alt="service timeline")


@dataclass(frozen=True)
class RetrainingGain:
    """The served models' matured AUC against the first champion's on the same rows, over
    the days a retrained champion's predictions matured: ``gain`` is the ``rows``-weighted mean
    of the daily gains, ``by_version`` the same per served version ``(version, gain, rows,
    days)``."""

    gain: float
    rows: int
    days: list[str]
    first_champion: str | None
    by_version: list[tuple[str, float, int, list[str]]]

    def sentence(self) -> str:
        """``retraining bought +0.06 AUC over the first champion (v1) on 7,264 matured rows of
        2026-01-09..2026-01-20 (...)``."""
        versions = ", ".join(f"v{v}" for v, *_ in self.by_version)
        return (
            f"retraining bought {self.gain:+.2f} AUC over the first champion "
            f"(v{self.first_champion}) on {self.rows:,} matured rows of {_span(self.days)} "
            f"(scored by {versions}; the first champion scored the same rows)"
        )

    def per_version(self) -> str:
        """``v2 +0.00 on 2,474 rows of 2026-01-09..2026-01-12; v3 ...``."""
        return "; ".join(
            f"v{v} {gain:+.2f} on {rows:,} rows of {_span(days)}"
            for v, gain, rows, days in self.by_version
        )


def _span(days: Sequence[str]) -> str:
    return days[0] + (f"..{days[-1]}" if len(days) > 1 else "") if days else "-"


def _weighted_gain(days: Sequence[DayRecord]) -> tuple[float, int, list[str]]:
    rows = sum(int(r.compared_rows or 0) for r in days)
    weighted = sum(
        (float(r.roc_auc or 0) - float(r.first_champion_roc_auc or 0)) * int(r.compared_rows or 0)
        for r in days
    )
    matured = sorted({d for r in days for d in r.compared_days}) or [r.day for r in days]
    return weighted / rows, rows, matured


def retraining_gain(records: Sequence[DayRecord]) -> RetrainingGain | None:
    """What retraining bought over the days whose matured predictions came from a retrained
    champion (``None`` before any did)."""
    days = [
        r
        for r in records
        if r.first_champion_roc_auc is not None
        and r.roc_auc is not None
        and r.compared_rows
        and r.matured_version not in (None, r.first_champion_version)
    ]
    if not days:
        return None
    gain, rows, matured = _weighted_gain(days)
    by_version = []
    for version in dict.fromkeys(str(r.matured_version) for r in days):
        v_gain, v_rows, v_days = _weighted_gain([r for r in days if r.matured_version == version])
        by_version.append((version, v_gain, v_rows, v_days))
    return RetrainingGain(gain, rows, matured, days[0].first_champion_version, by_version)


def render_lifecycle_report(
    records: Sequence[DayRecord],
    *,
    title: str = "ML lifecycle report",
    facts: Mapping[str, Any] | None = None,
    extra_sections: Sequence[tuple[str, str]] = (),
) -> str:
    """An HTML page: key facts, a timeline plot (with the "never retrained" counterfactual),
    the per-day table, the realtime service, then ``extra_sections`` (``(title, html)``
    pairs, e.g. a trace of each champion)."""
    rows = []
    for r in records:
        row = {title_: _fmt(getattr(r, key)) for key, title_ in _COLUMNS}
        row["reasons / notes"] = "; ".join([*r.decision_reasons, *r.notes])
        rows.append(row)
    sections = []
    if facts:
        sections.append(
            ("Summary", reports.table_html([{"": k, "value": v} for k, v in facts.items()]))
        )
    sections.append(("Timeline", _timeline_plot(records)))
    sections.append(("Per day", reports.table_html(rows)))
    if any(r.service_requests for r in records):
        service_rows = [
            {title_: _fmt(getattr(r, key)) for key, title_ in _SERVICE_COLUMNS} for r in records
        ]
        sections.append(("Realtime service", _service_plot(records)))
        sections.append(("Realtime service per day", reports.table_html(service_rows)))
    sections.extend(extra_sections)
    return reports.page(title, sections)
