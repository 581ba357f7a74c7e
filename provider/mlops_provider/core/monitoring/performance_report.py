"""The HTML page of a performance check: status, comparison with each version's baseline,
metrics per day, and plots of each metric per day against the baselines."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mlops_provider.core import reports

if TYPE_CHECKING:
    from mlops_provider.core.monitoring.performance_check import PerformanceResult

__all__ = ["render_performance_report"]

_COLORS = ["#1565c0", "#2e7d32", "#c62828", "#6a1b9a", "#ef6c00"]


def _plot_metric(result: PerformanceResult, metric: str) -> str:
    from matplotlib.ticker import MaxNLocator

    fig = reports.new_figure(4.2, 2.5)
    ax = fig.add_subplot(1, 1, 1)
    days = [d.isoformat() for d in result.evaluated_days]
    x_of = {d: i for i, d in enumerate(days)}
    for i, (version, perf) in enumerate(result.versions.items()):
        color = _COLORS[i % len(_COLORS)]
        points = [e for e in perf.by_day if e["day"] in x_of]
        ys = [e["metrics"].get(metric) for e in points]
        ax.plot(
            [x_of[e["day"]] for e in points],
            [float("nan") if y is None else y for y in ys],
            marker="o",
            color=color,
            label=f"v{version}",
        )
        base = perf.baseline.get(metric)
        if base is not None:
            ax.axhline(base, color=color, linestyle="--", alpha=0.6, label=f"v{version} baseline")
    ax.set_xticks(range(len(days)), [d[5:] for d in days], fontsize=6)
    ax.yaxis.set_major_locator(MaxNLocator(4))
    ax.tick_params(labelsize=6)
    ax.legend(fontsize=6, loc="best")
    ax.set_title(metric, fontsize=8)
    return reports.figure_to_img(
        fig, alt=f"{metric} per day", caption=f"{metric} per day vs baseline"
    )


def _summary(result: PerformanceResult) -> str:
    ok = {"ok": True, "degraded": False}.get(result.status)
    facts = [
        ("evaluated days", ", ".join(d.isoformat() for d in result.evaluated_days)),
        ("predictions read", f"{result.predictions:,}"),
        ("labelled rows", f"{result.labelled_rows_total:,}"),
        ("min labels", str(result.min_labels)),
        ("primary metric", result.primary_metric),
        ("model version (headline)", result.primary or "none"),
    ]
    out = f"<p>{reports.badge(ok, result.status)}</p>" + reports.table_html(facts, ["", ""])
    if result.reasons:
        out += "<ul>" + "".join(f"<li>{reports.escape(r)}</li>" for r in result.reasons) + "</ul>"
    return out


def _comparison_rows(result: PerformanceResult) -> list[dict[str, Any]]:
    return [
        {
            "version": version,
            "status": perf.status,
            "labelled rows": perf.labelled_rows,
            "metric": metric,
            "current": d["current"],
            "baseline": d["baseline"],
            "degradation": d["abs"],
            "relative": d["rel"],
        }
        for version, perf in result.versions.items()
        for metric, d in perf.degradation.items()
    ]


def _day_rows(result: PerformanceResult) -> list[dict[str, Any]]:
    return [
        {
            "day": entry["day"],
            "version": version,
            "labelled rows": entry["labelled_rows"],
            **entry["metrics"],
        }
        for version, perf in result.versions.items()
        for entry in perf.by_day
    ]


def _gain_rows(out: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row for the current model and one per earlier champion, on the same rows."""
    comparison = out.get("comparison") or {}
    if not comparison or not out.get("counterfactuals"):
        return []
    metric = out.get("primary_metric")
    rows = [
        {
            "model": f"v{comparison['model_version']} (current)",
            "rows": comparison["rows"],
            "rows digest": str(comparison["rows_digest"])[:16],
            str(metric): (comparison.get("metrics") or {}).get(metric),
            "gain of the current model": "",
        }
    ]
    for cf in out["counterfactuals"]:
        rows.append(
            {
                "model": f"v{cf['version']} ({cf['role'].replace('_', ' ')})",
                "rows": cf["rows"],
                "rows digest": str(cf["rows_digest"])[:16],
                str(metric): (cf.get("metrics") or {}).get(metric),
                "gain of the current model": (cf.get("gain") or {}).get(metric),
            }
        )
    return rows


def render_performance_report(
    result: PerformanceResult, *, title: str, out: Mapping[str, Any] | None = None
) -> str:
    """A self-contained HTML page: status, per-version comparison, per-day metrics and plots;
    with ``out`` (the check's result), the gain over earlier champions on the same rows."""
    plot_metrics = [result.primary_metric] + [
        m
        for m in ("accuracy", "f1", "log_loss", "mae", "r2")
        if m != result.primary_metric and any(m in p.metrics for p in result.versions.values())
    ]
    plots = "".join(_plot_metric(result, m) for m in plot_metrics[:4]) if result.versions else ""
    sections = [
        ("Summary", _summary(result)),
        ("Versus baseline", reports.table_html(_comparison_rows(result))),
        ("Per day", reports.table_html(_day_rows(result))),
    ]
    gain = _gain_rows(out or {})
    if gain:
        sections.append(("Gain over earlier champions (same rows)", reports.table_html(gain)))
    if plots:
        sections.append(("Plots", f"<div class='grid'>{plots}</div>"))
    return reports.page(title, sections, subtitle="predictions joined with late labels;")
