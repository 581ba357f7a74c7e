"""Champion/challenger evaluation: score a candidate and the holder of an alias on the same
data and decide whether the candidate may replace it.

- :mod:`.frames`: model input frames (dtypes shared with training and scoring);
- :mod:`.scores`: scoring one fitted model (:func:`score_model`), shared with training;
- :mod:`.gate`: thresholds and the pure decision (:func:`parse_thresholds`, :func:`apply_gate`);
- :mod:`.run`: :func:`evaluate_candidate` against MLflow (resolve -> compute -> publish);
- :mod:`.report`: the HTML report.

Metrics and their directions are :mod:`mlops_provider.core.metrics`; model URIs and alias
holders are :mod:`mlops_provider.core.models`. This package never imports ``core.training``.
"""

from mlops_provider.core.evaluation.frames import labelled_rows, normalize_frame
from mlops_provider.core.evaluation.gate import (
    THRESHOLD_KEYS,
    Check,
    EvaluationError,
    Threshold,
    apply_gate,
    parse_thresholds,
)
from mlops_provider.core.evaluation.report import render_evaluation_report
from mlops_provider.core.evaluation.run import (
    EVALUATION_REPORT_PATH,
    EVALUATION_RESULT_PATH,
    EvaluationDataError,
    EvaluationResult,
    evaluate_candidate,
)
from mlops_provider.core.evaluation.scores import ModelScores, model_task, score_model

__all__ = [
    "EVALUATION_REPORT_PATH",
    "EVALUATION_RESULT_PATH",
    "THRESHOLD_KEYS",
    "Check",
    "EvaluationDataError",
    "EvaluationError",
    "EvaluationResult",
    "ModelScores",
    "Threshold",
    "apply_gate",
    "evaluate_candidate",
    "labelled_rows",
    "model_task",
    "normalize_frame",
    "parse_thresholds",
    "render_evaluation_report",
    "score_model",
]
