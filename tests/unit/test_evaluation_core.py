"""core/evaluation: scoring, threshold parsing, the gate, the result and the HTML report (no
Airflow, no MLflow). The metrics are core.metrics, checked here as evaluation uses them."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from mlops_provider.core.evaluation import (
    Check,
    EvaluationError,
    EvaluationResult,
    ModelScores,
    apply_gate,
    parse_thresholds,
    render_evaluation_report,
    score_model,
)
from mlops_provider.core.metrics import compute_metrics
from mlops_provider.core.models import ModelVersion
from mlops_provider.core.results import check_result

RNG = np.random.default_rng(7)
Y = RNG.integers(0, 2, 400)
P = np.clip(Y * 0.35 + RNG.random(400) * 0.65, 0, 1)
PROBA = np.column_stack([1 - P, P])


def test_binary_metrics_match_sklearn() -> None:
    pred = (P > 0.5).astype(int)
    m = compute_metrics("classification", Y, y_pred=pred, proba=PROBA, classes=[0, 1])
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(Y, pred))
    assert m["precision"] == pytest.approx(skm.precision_score(Y, pred))
    assert m["recall"] == pytest.approx(skm.recall_score(Y, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(Y, pred))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(Y, P))
    assert m["log_loss"] == pytest.approx(skm.log_loss(Y, P))


def test_positive_class_is_the_greater_label() -> None:
    y = np.array(["no", "yes", "yes", "no"])
    pred = np.array(["no", "yes", "no", "no"])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]])
    m = compute_metrics("classification", y, y_pred=pred, proba=proba, classes=["no", "yes"])
    assert m["recall"] == 0.5 and m["precision"] == 1.0 and m["roc_auc"] == 1.0


def test_undefined_metrics_are_none() -> None:
    y = np.ones(10, dtype=int)
    proba = np.column_stack([np.zeros(10), np.ones(10)])
    m = compute_metrics("classification", y, y_pred=y, proba=proba, classes=[0, 1])
    assert m["roc_auc"] is None and m["accuracy"] == 1.0


def test_regression_metrics() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0])
    pred = np.array([1.5, 2.0, 2.5, 4.0])
    m = compute_metrics("regression", y, y_pred=pred)
    assert m["mae"] == pytest.approx(0.25)
    assert m["rmse"] == pytest.approx(math.sqrt(0.125))
    assert m["r2"] == pytest.approx(skm.r2_score(y, pred))


def test_multiclass_metrics_are_macro() -> None:
    y = np.array([0, 1, 2, 2, 1, 0])
    pred = np.array([0, 2, 2, 2, 1, 0])
    proba = np.eye(3)[pred] * 0.8 + 0.2 / 3
    m = compute_metrics("classification", y, y_pred=pred, proba=proba, classes=[0, 1, 2])
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["roc_auc"] is not None


@pytest.mark.parametrize(
    ("thresholds", "message"),
    [
        ({"auc": {"min": 0.8}}, "unknown metric 'auc'"),
        ({"roc_auc": {"minimum": 0.8}}, r"unknown key\(s\) \['minimum'\]"),
        ({"roc_auc": {"min": "high"}}, "must be a number"),
        ({"roc_auc": ["min", 0.8]}, "must be a mapping"),
        ({"rmse": {"max": 1.0}}, r"unknown metric 'rmse' \(task classification\)"),
        (["roc_auc"], "must be a mapping"),
    ],
)
def test_threshold_errors(thresholds, message: str) -> None:
    with pytest.raises(EvaluationError, match=message):
        parse_thresholds(thresholds, "classification")


def test_threshold_shorthand_respects_direction() -> None:
    parsed = {t.metric: t for t in parse_thresholds({"roc_auc": 0.7, "log_loss": 0.5})}
    assert parsed["roc_auc"].min == 0.7 and parsed["log_loss"].max == 0.5


def _gate(cand, champ, thresholds, task="classification"):
    return apply_gate(task, cand, champ, parse_thresholds(thresholds, task))


def test_absolute_bounds() -> None:
    ok, checks, _ = _gate({"roc_auc": 0.79, "log_loss": 0.4}, None, {"roc_auc": {"min": 0.8}})
    assert not ok and "0.79 < minimum 0.8" in checks[0].reason
    ok, checks, _ = _gate({"log_loss": 0.6}, None, {"log_loss": {"max": 0.5}})
    assert not ok and "0.6 > maximum 0.5" in checks[0].reason
    ok, _, _ = _gate({"log_loss": 0.4}, None, {"log_loss": {"max": 0.5}})
    assert ok


def test_comparisons_with_the_champion() -> None:
    champ = {"roc_auc": 0.80, "rmse": 1.0}
    thresholds = {"roc_auc": {"min_improvement": 0.01}}
    ok, checks, _ = _gate({"roc_auc": 0.805}, champ, thresholds)
    assert (
        not ok
        and "improvement +0.005" in checks[0].reason
        and "< required 0.01" in checks[0].reason
    )
    ok, _, _ = _gate({"roc_auc": 0.811}, champ, thresholds)
    assert ok
    # allowed degradation
    ok, checks, _ = _gate({"roc_auc": 0.795}, champ, {"roc_auc": {"max_degradation": 0.01}})
    assert ok and "degradation 0.005 <= allowed 0.01" in checks[0].reason
    assert checks[0].check == "max_degradation"
    ok, _, _ = _gate({"roc_auc": 0.78}, champ, {"roc_auc": {"max_degradation": 0.01}})
    assert not ok
    ok, checks, _ = _gate({"roc_auc": 0.78}, champ, {"roc_auc": {"max_relative_degradation": 0.03}})
    assert (
        ok and "relative degradation 2.50% from champion 0.8 <= allowed 3.00%" in checks[0].reason
    )
    ok, _, _ = _gate({"roc_auc": 0.77}, champ, {"roc_auc": {"max_relative_degradation": 0.03}})
    assert not ok
    # lower is better: a drop of rmse is an improvement
    ok, checks, _ = _gate({"rmse": 0.9}, champ, {"rmse": {"min_improvement": 0.05}}, "regression")
    assert ok and "+0.1" in checks[0].reason
    ok, checks, _ = _gate(
        {"rmse": 0.95}, champ, {"rmse": {"min_relative_improvement": 0.1}}, "regression"
    )
    assert not ok and "+5.00%" in checks[0].reason and "10.00%" in checks[0].reason


def test_cold_start_only_absolute_thresholds_apply() -> None:
    ok, checks, rule = _gate(
        {"roc_auc": 0.85}, None, {"roc_auc": {"min": 0.8, "min_improvement": 0.02}}
    )
    assert ok and "cold start" in rule
    skipped = next(c for c in checks if c.check == "min_improvement")
    assert skipped.passed and "cold start" in skipped.reason


def test_default_rule_without_thresholds() -> None:
    ok, checks, rule = apply_gate("classification", {"roc_auc": 0.78}, {"roc_auc": 0.80}, [])
    assert not ok and "must not be worse" in rule and "roc_auc" in rule
    assert "is worse than champion 0.8" in checks[0].reason
    ok, _, _ = apply_gate("classification", {"roc_auc": 0.80}, {"roc_auc": 0.80}, [])
    assert ok
    ok, _, rule = apply_gate("regression", {"rmse": 1.1}, {"rmse": 1.0}, [])
    assert not ok and "rmse" in rule
    ok, checks, rule = apply_gate("classification", {"roc_auc": 0.6}, None, [])
    assert ok and "cold start" in rule and checks[0].passed


def test_undefined_values_fail_with_a_reason() -> None:
    ok, checks, _ = _gate({"roc_auc": None}, {"roc_auc": 0.8}, {"roc_auc": {"min": 0.5}})
    assert not ok and "undefined" in checks[0].reason
    ok, checks, _ = apply_gate("classification", {"roc_auc": 0.7}, {"roc_auc": None}, [])
    assert not ok and "undefined for the champion" in checks[0].reason


def _result(task: str, passed: bool, cand_metrics, champ_metrics) -> EvaluationResult:
    return EvaluationResult(
        passed=passed,
        reason="passed" if passed else "rejected: x",
        rule="default rule",
        cold_start=champ_metrics is None,
        cold_start_reason=None if champ_metrics else "no champion",
        task=task,
        primary_metric="roc_auc" if task == "classification" else "rmse",
        registered_model_name="churn",
        alias="champion",
        target="y",
        candidate=ModelVersion(uri="models:/m-1", run_id="r1", model_id="m-1"),
        champion=(
            ModelVersion(uri="models:/churn/1", name="churn", version="1", run_id="r0")
            if champ_metrics
            else None
        ),
        candidate_metrics=cand_metrics,
        champion_metrics=champ_metrics,
        checks=[Check("roc_auc", "not_worse", passed, "roc_auc: <b>reason</b>")],
        thresholds={},
        evaluation_data="/data/eval.parquet",
        evaluation_digest="abc",
        n_rows=400,
        evaluated_at="2026-01-08T00:00:00+00:00",
    )


def test_classification_report_has_curves_for_both_models() -> None:
    pred = (P > 0.5).astype(int)
    cand = ModelScores(
        "classification",
        pred,
        compute_metrics("classification", Y, y_pred=pred, proba=PROBA, classes=[0, 1]),
        PROBA,
        [0, 1],
    )
    other = np.column_stack([1 - P**2, P**2])
    champ = ModelScores(
        "classification",
        pred,
        compute_metrics("classification", Y, y_pred=pred, proba=other, classes=[0, 1]),
        other,
        [0, 1],
    )
    result = _result("classification", True, cand.metrics, champ.metrics)
    html = render_evaluation_report(result, Y, cand, champ)
    assert html.startswith("<!DOCTYPE html>")
    assert len(re.findall(r"<img ", html)) == 2  # ROC and PR figures
    assert "ROC" in html and "Precision-recall" in html
    assert "&lt;b&gt;reason&lt;/b&gt;" in html  # reasons are escaped
    assert "version 1 (run r0)" in html and "roc_auc" in html
    assert result.to_dict()["metrics"]["roc_auc"]["delta"] == pytest.approx(
        cand.metrics["roc_auc"] - champ.metrics["roc_auc"]
    )


def test_regression_report_has_residual_plots_and_states_cold_start() -> None:
    y = RNG.normal(size=200)
    pred = y + RNG.normal(scale=0.3, size=200)
    cand = ModelScores("regression", pred, compute_metrics("regression", y, y_pred=pred))
    result = _result("regression", True, cand.metrics, None)
    html = render_evaluation_report(result, y, cand, None)
    assert len(re.findall(r"<img ", html)) == 1 and "residual" in html
    assert "none: no champion" in html
    assert result.to_dict()["champion"] is None and result.to_dict()["champion_version"] is None


def test_score_model_with_string_labels() -> None:
    from sklearn.linear_model import LogisticRegression

    x = RNG.normal(size=(200, 2))
    y = np.where(x[:, 0] + RNG.normal(scale=0.5, size=200) > 0, "yes", "no")
    frame = pd.DataFrame(x, columns=["a", "b"])
    model = LogisticRegression().fit(frame, y)
    scores = score_model(model, frame, y, "classification")
    assert scores.classes == ["no", "yes"] and scores.positive_score is not None
    assert scores.metrics["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y == "yes", model.predict_proba(frame)[:, 1])
    )


def test_result_has_the_common_shape_and_keeps_the_old_keys() -> None:
    rejected = _result("classification", False, {"roc_auc": 0.7}, {"roc_auc": 0.8})
    rejected.checks = [
        Check("roc_auc", "not_worse", False, "roc_auc: worse"),
        Check("log_loss", "max", True, "log_loss: fine"),
    ]
    out = rejected.to_dict()
    assert check_result(out) == []
    assert (out["status"], out["passed"], out["reasons"]) == ("rejected", False, ["roc_auc: worse"])
    assert out["model"] == {"name": None, "version": None, "run_id": "r1", "uri": "models:/m-1"}
    assert out["mlflow_run_id"] == "r1" and out["rows"] == out["n_rows"] == 400
    # keys earlier releases returned (PromoteModelOperator reads candidate / champion)
    assert out["candidate"]["model_uri"] == "models:/m-1" and out["candidate"]["model_id"] == "m-1"
    assert out["champion"]["version"] == "1" and out["champion"]["registered_model_name"] == "churn"
    assert (out["candidate_run_id"], out["champion_version"], out["reason"]) == (
        "r1",
        "1",
        "rejected: x",
    )
    accepted = _result("classification", True, {"roc_auc": 0.9}, None).to_dict()
    assert (accepted["status"], accepted["reasons"]) == ("accepted", ["roc_auc: <b>reason</b>"])
