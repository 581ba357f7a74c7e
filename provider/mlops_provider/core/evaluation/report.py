"""HTML report of a champion/challenger evaluation: verdict, checks, metrics table and plots.

Classification: ROC and precision-recall curves of both models (binary targets), and the
confusion counts. Regression: predicted vs actual and residual plots of both models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mlops_provider.core import reports

if TYPE_CHECKING:
    from mlops_provider.core.evaluation.run import EvaluationResult
    from mlops_provider.core.evaluation.scores import ModelScores

__all__ = ["render_evaluation_report"]

_COLORS = {"candidate": "#1565c0", "champion": "#ef6c00"}


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _binary_truth(y_true: np.ndarray, scores: ModelScores) -> np.ndarray | None:
    if scores.classes is None or len(scores.classes) != 2:
        return None
    return np.asarray(y_true) == scores.classes[1]


def _curves(y_true: np.ndarray, models: dict[str, ModelScores]) -> str:
    from sklearn.metrics import auc, precision_recall_curve, roc_curve

    roc_fig = reports.new_figure(4.4, 3.6)
    pr_fig = reports.new_figure(4.4, 3.6)
    roc_ax, pr_ax = roc_fig.add_subplot(1, 1, 1), pr_fig.add_subplot(1, 1, 1)
    drawn = 0
    for label, scores in models.items():
        truth, score = _binary_truth(y_true, scores), scores.positive_score
        if truth is None or score is None or truth.all() or not truth.any():
            continue
        fpr, tpr, _ = roc_curve(truth, score)
        roc_ax.plot(fpr, tpr, color=_COLORS[label], label=f"{label} (AUC {auc(fpr, tpr):.3f})")
        precision, recall, _ = precision_recall_curve(truth, score)
        pr_ax.plot(recall, precision, color=_COLORS[label], label=label)
        drawn += 1
    if not drawn:
        return (
            "<p><em>ROC / PR curves need a binary target with both classes present and "
            "predicted probabilities.</em></p>"
        )
    roc_ax.plot([0, 1], [0, 1], color="#999", linestyle="--", linewidth=0.8)
    roc_ax.set_xlabel("false positive rate")
    roc_ax.set_ylabel("true positive rate")
    roc_ax.set_title("ROC curve")
    roc_ax.legend(loc="lower right", fontsize=8)
    pr_ax.set_xlabel("recall")
    pr_ax.set_ylabel("precision")
    pr_ax.set_title("Precision-recall curve")
    pr_ax.legend(loc="upper right", fontsize=8)
    return (
        "<div class='grid'>"
        + reports.figure_to_img(roc_fig, alt="ROC curves", caption="ROC")
        + reports.figure_to_img(pr_fig, alt="precision-recall curves", caption="Precision-recall")
        + "</div>"
    )


def _confusion(y_true: np.ndarray, models: dict[str, ModelScores]) -> str:
    parts = []
    for label, scores in models.items():
        labels = scores.classes or sorted(set(np.asarray(y_true).tolist()))
        if len(labels) > 10:
            continue
        rows = []
        for actual in labels:
            mask = np.asarray(y_true) == actual
            row: dict[str, Any] = {"actual \\ predicted": actual}
            for predicted in labels:
                row[str(predicted)] = int(np.sum(scores.y_pred[mask] == predicted))
            rows.append(row)
        parts.append(f"<h3>{reports.escape(label)}</h3>" + reports.table_html(rows))
    return "".join(parts) or "<p><em>too many classes for a confusion table</em></p>"


def _regression_plots(y_true: np.ndarray, models: dict[str, ModelScores]) -> str:
    y = np.asarray(y_true, dtype=np.float64)
    figures = []
    for label, scores in models.items():
        pred = np.asarray(scores.y_pred, dtype=np.float64)
        fig = reports.new_figure(8.0, 3.2)
        ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
        ax1.scatter(y, pred, s=6, alpha=0.5, color=_COLORS[label])
        low, high = float(np.nanmin([y.min(), pred.min()])), float(np.nanmax([y.max(), pred.max()]))
        ax1.plot([low, high], [low, high], color="#999", linestyle="--", linewidth=0.8)
        ax1.set_xlabel("actual")
        ax1.set_ylabel("predicted")
        ax1.set_title(f"{label}: predicted vs actual")
        residuals = y - pred
        ax2.scatter(pred, residuals, s=6, alpha=0.5, color=_COLORS[label])
        ax2.axhline(0.0, color="#999", linestyle="--", linewidth=0.8)
        ax2.set_xlabel("predicted")
        ax2.set_ylabel("residual (actual - predicted)")
        ax2.set_title(f"{label}: residuals")
        figures.append(reports.figure_to_img(fig, alt=f"{label} residual plots", caption=label))
    return "<div class='grid'>" + "".join(figures) + "</div>"


def render_evaluation_report(
    result: EvaluationResult,
    y_true: Any,
    candidate: ModelScores,
    champion: ModelScores | None,
) -> str:
    """One self-contained HTML page comparing the candidate with the alias holder."""
    y = np.asarray(y_true)
    models = {"candidate": candidate}
    if champion is not None:
        models["champion"] = champion
    champ_label = (
        f"version {result.champion.version} (run {result.champion.run_id})"
        if result.champion
        else f"none: {result.cold_start_reason or 'cold start'}"
    )
    summary = reports.table_html(
        [
            {
                "": "verdict",
                "value": reports.badge(result.passed, "passed" if result.passed else "rejected"),
            },
            {"": "reason", "value": result.reason},
            {"": "rule", "value": result.rule},
            {
                "": "candidate",
                "value": f"{result.candidate.uri} (run {result.candidate.run_id})",
            },
            {"": f"{result.alias} (compared with)", "value": champ_label},
            {"": "task / primary metric", "value": f"{result.task} / {result.primary_metric}"},
            {
                "": "evaluation data",
                "value": f"{result.evaluation_data} ({result.n_rows} rows, digest {result.evaluation_digest})",
            },
        ]
    )
    metric_rows = []
    for metric, row in result.metrics_table().items():
        delta = row["delta"]
        better = None
        if delta is not None and delta != 0:
            better = (delta > 0) == row["higher_is_better"]
        metric_rows.append(
            {
                "metric": metric + ("" if row["higher_is_better"] else " (lower is better)"),
                "candidate": _fmt(row["candidate"]),
                result.alias: _fmt(row["champion"]),
                "delta": _fmt(delta),
                "": ""
                if better is None
                else reports.badge(better, "better" if better else "worse"),
            }
        )
    check_rows = [
        {"check": f"{c.metric} {c.check}", "result": reports.badge(c.passed), "reason": c.reason}
        for c in result.checks
    ]
    sections = [
        ("Summary", summary),
        ("Checks", reports.table_html(check_rows)),
        ("Metrics", reports.table_html(metric_rows)),
    ]
    if result.task == "classification":
        sections.append(("ROC and precision-recall curves", _curves(y, models)))
        sections.append(("Confusion counts", _confusion(y, models)))
    else:
        sections.append(("Residuals", _regression_plots(y, models)))
    title = f"Evaluation of {result.registered_model_name} candidate vs @{result.alias}"
    return reports.page(title, sections, subtitle=f"evaluated {result.evaluated_at};")
