"""Scoring a fitted model on labelled rows: what training (holdout metrics) and evaluation
(champion/challenger) share, so the metrics of a run and of an evaluation mean the same thing.

The metrics themselves are :func:`mlops_provider.core.metrics.compute_metrics`. Binary
classification: the positive class is the greater label of the model's ``classes_`` (``1``
for 0/1, ``True`` for booleans, the alphabetically last string).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlops_provider.core.metrics import compute_metrics

__all__ = ["ModelScores", "estimator_task", "model_task", "score_model"]


@dataclass
class ModelScores:
    """Predictions of one model on one dataset, and its metrics."""

    task: str
    y_pred: np.ndarray
    metrics: dict[str, float | None]
    proba: np.ndarray | None = None
    classes: list[Any] | None = None

    @property
    def positive_score(self) -> np.ndarray | None:
        """Probability of the positive (greater) class for binary classification."""
        if self.proba is None or self.classes is None or len(self.classes) != 2:
            return None
        return np.asarray(self.proba)[:, 1]


def _probabilities(model: Any, x: pd.DataFrame) -> np.ndarray | None:
    if not hasattr(model, "predict_proba"):
        return None
    try:
        return np.asarray(model.predict_proba(x))
    except (AttributeError, NotImplementedError):
        return None


def score_model(model: Any, x: pd.DataFrame, y: Any, task: str) -> ModelScores:
    """Predict ``x`` with a fitted model and compute the metrics of ``task`` against ``y``."""
    y_pred = np.asarray(model.predict(x))
    if task != "classification":
        return ModelScores(task, y_pred, compute_metrics(task, y, y_pred=y_pred))
    fitted = getattr(model, "classes_", None)
    classes = list(fitted) if fitted is not None else None
    proba = _probabilities(model, x)
    metrics = compute_metrics(task, y, y_pred=y_pred, proba=proba, classes=classes)
    return ModelScores(task, y_pred, metrics, proba, classes)


def estimator_task(estimator: Any) -> str | None:
    """``classification`` / ``regression`` from a scikit-learn estimator's kind (None when it
    is neither, e.g. a transformer-only pipeline)."""
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(estimator):
        return "classification"
    if is_regressor(estimator):
        return "regression"
    return None


def model_task(model: Any, run_tags: Mapping[str, str]) -> str:
    """The task of a logged model: its training run's ``mlops.task`` tag, else its kind."""
    task = run_tags.get("mlops.task")
    if task in ("classification", "regression"):
        return task
    return "classification" if estimator_task(model) == "classification" else "regression"
