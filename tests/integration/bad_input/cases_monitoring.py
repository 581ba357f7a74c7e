"""Bad inputs of the monitoring operators (drift, model performance)."""

from __future__ import annotations

from typing import Any

from tests.integration.bad_input import UNDER_TEST, BadInput, World

PREDICTIONS = "monitoring/predictions"
LABELS = "monitoring/labels"
EVALUATED_DAY = "2026-01-03"
"""The matured day of a run on 2026-01-10 with ``label_delay=7``."""


def _drift(world: World, **kwargs: Any) -> Any:
    from mlops_provider.operators.monitoring import DriftDetectionOperator

    settings = {"current_data": world.eval_uri, "reference_data": world.train_uri, **kwargs}
    return DriftDetectionOperator(task_id=UNDER_TEST, retries=0, **settings)


def _late_labels(world: World) -> None:
    """Predictions of the evaluated day and labels that arrive after the run (none matured)."""
    import pandas as pd

    from mlops_provider.core import io

    event = pd.Timestamp(f"{EVALUATED_DAY}T12:00:00Z")
    ids = list(range(1, 41))
    predictions = pd.DataFrame(
        {
            "customer_id": ids,
            "prediction": [i % 2 for i in ids],
            "probability": [(i % 10) / 10 for i in ids],
            "model_name": world.model,
            "model_version": world.champion_version,
            "model_run_id": world.champion_run_id,
            "scored_at": event,
        }
    )
    io.write_table(predictions, world.path(f"{PREDICTIONS}/dt={EVALUATED_DAY}/part-0.parquet"))
    labels = pd.DataFrame(
        {
            "customer_id": ids,
            "event_timestamp": event,
            "churned": [i % 3 == 0 for i in ids],
            "label_available_at": pd.Timestamp("2026-01-12T00:00:00Z"),
        }
    )
    io.write_table(labels, world.path(f"{LABELS}/dt=2026-01-12/part-0.parquet"))


def _performance(world: World, **kwargs: Any) -> Any:
    from mlops_provider.operators.monitoring import ModelPerformanceOperator

    settings = {
        "predictions_data": world.path(PREDICTIONS),
        "labels_data": world.path(LABELS),
        "registered_model_name": world.model,
        "target": "churned",
        "entity_columns": ["customer_id"],
        **kwargs,
    }
    return ModelPerformanceOperator(task_id=UNDER_TEST, retries=0, **settings)


CASES = [
    BadInput(
        id="monitoring-drift-report-below-a-file",
        build=lambda w: _drift(w, report_uri=w.train_uri + "/drift"),
        expect=["report_uri", "train.parquet/drift", "not a directory"],
    ),
    BadInput(
        id="monitoring-performance-unknown-metric",
        build=lambda w: _performance(w, metrics=["auc"]),
        expect=["metrics", "'auc'", "did you mean 'roc_auc'", "log_loss"],
        setup=_late_labels,
        may_write=("reports/", "monitoring/"),
    ),
    BadInput(
        id="monitoring-performance-wrong-target",
        build=lambda w: _performance(w, target="churn"),
        expect=["target", "'churn'", "dt=2026-01-12", "'churned'", "label_available_at"],
        setup=_late_labels,
        may_write=("reports/", "monitoring/"),
    ),
    BadInput(
        id="monitoring-performance-missing-score-column",
        build=lambda w: _performance(w, score_column="proba"),
        expect=["score_column", "'proba'", f"dt={EVALUATED_DAY}", "'probability'"],
        setup=_late_labels,
        may_write=("reports/", "monitoring/"),
    ),
]
