"""Performance monitoring core: late-label joins, metrics, baselines, insufficient data."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from include.simulator import ChurnSimulator
from mlops_provider.core import io
from mlops_provider.core.errors import CoreError, ParameterError
from mlops_provider.core.metrics import baseline_from_run_metrics, compute_metrics, degradation
from mlops_provider.core.monitoring import (
    DAY_COLUMN,
    LabelColumns,
    MonitoringError,
    evaluate_performance,
    evaluation_days,
    join_predictions_with_labels,
    metric_plan,
    read_labels,
    read_predictions,
    run_performance_check,
)
from mlops_provider.core.results import check_result

D = date(2026, 1, 1)
UTC = timezone.utc
#: The demo's label and entity columns (the provider has no default for them).
CHURN = LabelColumns(target="churned", entity_columns=["customer_id"])
KEYS = {"entity_columns": ["customer_id"], "target": "churned"}


def _ts(day: date, hour: int = 12) -> pd.Timestamp:
    return pd.Timestamp(datetime(day.year, day.month, day.day, hour, tzinfo=UTC))


# --------------------------------------------------------------------------- metrics


def test_classification_metrics_equal_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    p = np.clip(0.3 * y + rng.random(400) * 0.7, 0, 1)
    pred = (p >= 0.5).astype(int)
    got = compute_metrics("classification", y, y_score=p)
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, p))
    assert got["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred))
    # An explicit prediction column wins over the threshold.
    flipped = 1 - pred
    assert compute_metrics("classification", y, y_score=p, y_pred=flipped, metrics=["accuracy"])[
        "accuracy"
    ] == pytest.approx(skm.accuracy_score(y, flipped))


def test_metrics_with_one_class_or_no_rows() -> None:
    got = compute_metrics(
        "classification", np.zeros(50, dtype=int), y_score=np.linspace(0, 0.4, 50)
    )
    assert got["roc_auc"] is None  # undefined with one class, not an error
    assert got["accuracy"] == 1.0
    assert got["log_loss"] is not None
    assert compute_metrics("classification", [], y_score=[]) == dict.fromkeys(
        ["roc_auc", "accuracy", "f1", "log_loss", "precision", "recall"]
    )
    with pytest.raises(ValueError, match="unknown classification metric"):
        compute_metrics("classification", [0, 1], y_score=[0.1, 0.9], metrics=["rmse"])


def test_regression_metrics_equal_sklearn() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(size=100)
    yp = y + rng.normal(scale=0.3, size=100)
    got = compute_metrics("regression", y, y_pred=yp)
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, yp)))
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, yp))
    assert got["r2"] == pytest.approx(skm.r2_score(y, yp))


def test_degradation_is_positive_when_worse() -> None:
    out = degradation(
        {"roc_auc": 0.70, "log_loss": 0.50, "f1": 0.6},
        {"roc_auc": 0.80, "log_loss": 0.40},
    )
    assert out["roc_auc"]["abs"] == pytest.approx(0.10)
    assert out["roc_auc"]["rel"] == pytest.approx(0.125)
    assert out["log_loss"]["abs"] == pytest.approx(0.10)  # a loss that grew is worse
    assert out["f1"] == {"current": 0.6, "baseline": None, "abs": None, "rel": None}
    better = degradation({"roc_auc": 0.9}, {"roc_auc": 0.8})
    assert better["roc_auc"]["abs"] == pytest.approx(-0.1)


def test_baseline_from_run_metrics_prefers_plain_names() -> None:
    run = {"roc_auc": 0.81, "holdout_roc_auc": 0.5, "test_f1": 0.4, "accuracy": float("nan")}
    assert baseline_from_run_metrics(run, ["roc_auc", "f1", "accuracy"]) == {
        "roc_auc": 0.81,
        "f1": 0.4,
    }


# --------------------------------------------------------------------------- joins


def test_evaluation_days() -> None:
    assert evaluation_days(date(2026, 1, 10), 7) == [date(2026, 1, 3)]
    assert evaluation_days(date(2026, 1, 10), 7, 3) == [
        date(2026, 1, 1),
        date(2026, 1, 2),
        date(2026, 1, 3),
    ]
    with pytest.raises(ParameterError, match="label_delay"):
        evaluation_days(D, -1)
    with pytest.raises(ParameterError, match="evaluation_window"):
        evaluation_days(D, 7, 0)


def test_join_uses_entity_and_event_day_and_only_available_labels() -> None:
    d1, d2 = D, D + timedelta(days=1)
    preds = pd.DataFrame(
        {
            "customer_id": [1, 2, 3, 1],
            "probability": [0.9, 0.2, 0.4, 0.7],
            "prediction": [1, 0, 0, 1],
            DAY_COLUMN: [d1, d1, d1, d2],
        }
    )
    labels = pd.DataFrame(
        {
            "customer_id": [1, 2, 3, 1, 2, 9],
            "event_timestamp": [_ts(d1), _ts(d1), _ts(d1), _ts(d2), _ts(d2, 3), _ts(d1)],
            "churned": [1, 0, 1, 0, 1, 1],
            "label_available_at": [
                _ts(d1 + timedelta(days=7), 0),
                _ts(d1 + timedelta(days=7), 0),
                _ts(d1 + timedelta(days=30), 0),  # not yet available on the run day
                _ts(d2 + timedelta(days=7), 0),
                _ts(d2 + timedelta(days=7), 0),  # no prediction for (2, d2)
                _ts(d1 + timedelta(days=7), 0),  # no prediction for customer 9
            ],
        }
    )
    as_of = datetime(2026, 1, 10, tzinfo=UTC)
    joined = join_predictions_with_labels(preds, labels, as_of=as_of, **KEYS)
    got = sorted(zip(joined.customer_id, joined[DAY_COLUMN], joined.churned))
    # Customer 1 has a label on each day: matched by event day, not only by entity.
    assert got == [(1, d1, 1), (1, d2, 0), (2, d1, 0)]


def test_join_keeps_the_latest_label_of_an_entity_day() -> None:
    preds = pd.DataFrame({"customer_id": [1], "probability": [0.5], DAY_COLUMN: [D]})
    labels = pd.DataFrame(
        {
            "customer_id": [1, 1],
            "event_timestamp": [_ts(D), _ts(D)],
            "churned": [0, 1],
            "label_available_at": [_ts(D + timedelta(days=8)), _ts(D + timedelta(days=7))],
        }
    )
    joined = join_predictions_with_labels(preds, labels, **KEYS)
    assert joined.churned.tolist() == [0]  # available last -> the correction wins


def test_join_needs_the_label_columns() -> None:
    preds = pd.DataFrame({"customer_id": [1], DAY_COLUMN: [D]})
    with pytest.raises(MonitoringError, match="churned"):
        join_predictions_with_labels(preds, pd.DataFrame({"customer_id": [1]}), **KEYS)


def _write_lake(
    root: Path,
    sim: ChurnSimulator,
    days: list[date],
    versions: dict[date, str],
    classes: dict[int, str] | None = None,
) -> None:
    """Simulator labels partitions + predictions scored with the true churn probability
    (``classes`` renames the labels and predicted classes, e.g. ``{0: "no", 1: "yes"}``)."""
    for day in days:
        written = sim.write_day(root, day)
        if classes:
            labels = pd.read_parquet(written["labels"])
            labels["churned"] = labels["churned"].map(classes).astype(object)
            labels.to_parquet(written["labels"])
        frame = sim.activity(day)
        prob = sim.churn_probability(day).to_numpy()
        predicted = pd.Series((prob >= 0.5).astype("int64"))
        preds = pd.DataFrame(
            {
                "customer_id": frame["customer_id"].to_numpy(),
                "prediction": predicted.map(classes) if classes else predicted,
                "probability": prob,
                "model_name": "churn",
                "model_version": versions[day],
                "model_run_id": f"run-{versions[day]}",
                "scored_at": pd.Timestamp(datetime(day.year, day.month, day.day, 1, tzinfo=UTC)),
            }
        )
        io.write_partition(preds, io.partition_uri(str(root / "predictions"), day))


def test_late_labels_from_simulator_partitions(tmp_path: Path) -> None:
    sim = ChurnSimulator(seed=3, n_customers=500, label_delay_days=7)
    days = sim.days(D, D + timedelta(days=9))
    _write_lake(tmp_path, sim, days, dict.fromkeys(days, "1"))
    run_day = D + timedelta(days=9)
    eval_days = evaluation_days(run_day, 7, 2)  # D+1, D+2
    preds, missing = read_predictions(str(tmp_path / "predictions"), eval_days)
    assert missing == []
    labels = read_labels(str(tmp_path / "labels"), eval_days[0], run_day)
    end_of_run_day = datetime(2026, 1, 11, tzinfo=UTC)
    joined = join_predictions_with_labels(preds, labels, as_of=end_of_run_day, **KEYS)
    expected = pd.concat([sim.labels(d) for d in eval_days], ignore_index=True)
    assert len(joined) == len(expected) == len(preds)
    assert joined.churned.sum() == expected.churned.sum()
    # Half a day before they arrive, the labels of D+2 are not used: only D+1 is labelled.
    earlier = join_predictions_with_labels(
        preds, labels, as_of=datetime(2026, 1, 9, 12, tzinfo=UTC), **KEYS
    )
    assert set(earlier[DAY_COLUMN]) == {eval_days[0]}


# --------------------------------------------------------------------------- evaluation


def _joined(n: int, version: str, day: date, auc_noise: float, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.clip(y * (1 - auc_noise) + rng.random(n) * auc_noise, 0, 1)
    return pd.DataFrame(
        {
            "customer_id": np.arange(n),
            "churned": y,
            "probability": p,
            "prediction": (p >= 0.5).astype(int),
            "model_version": version,
            "model_name": "churn",
            "model_run_id": f"run-{version}",
            "scored_at": pd.Timestamp(datetime(day.year, day.month, day.day, tzinfo=UTC)),
            DAY_COLUMN: day,
        }
    )


def test_insufficient_labels_is_not_a_degradation() -> None:
    joined = _joined(50, "1", D, auc_noise=1.0, seed=0)  # a coin-flip model
    result = evaluate_performance(
        joined, days=[D], baselines={"1": {"roc_auc": 0.95}}, columns=CHURN
    )
    assert result.status == "insufficient_data"
    assert result.summary()["labelled_rows"] == 50
    assert "min_labels 200" in " ".join(result.reasons)
    # The same data with enough labels is degraded.
    result = evaluate_performance(
        joined, days=[D], baselines={"1": {"roc_auc": 0.95}}, columns=CHURN, min_labels=20
    )
    assert result.status == "degraded"


def test_no_predictions_at_all_is_insufficient_data() -> None:
    empty = _joined(0, "1", D, 0.5, 0)
    result = evaluate_performance(empty, days=[D], baselines={}, columns=CHURN, missing_days=[D])
    summary = result.summary()
    assert summary["status"] == "insufficient_data"
    assert summary["model_version"] is None and summary["labelled_rows"] == 0
    assert "no predictions partition for 2026-01-01" in summary["reasons"][0]


def test_degradation_thresholds_absolute_and_relative() -> None:
    joined = _joined(400, "1", D, auc_noise=1.6, seed=1)
    auc = compute_metrics("classification", joined.churned, y_score=joined.probability)["roc_auc"]
    assert auc is not None
    ok = evaluate_performance(
        joined, days=[D], baselines={"1": {"roc_auc": auc + 0.04}}, columns=CHURN
    )
    assert ok.status == "ok"
    assert ok.summary()["degradation"]["roc_auc"]["abs"] == pytest.approx(0.04, abs=1e-6)
    bad = evaluate_performance(
        joined, days=[D], baselines={"1": {"roc_auc": auc + 0.06}}, columns=CHURN
    )
    assert bad.status == "degraded"
    assert "roc_auc" in bad.reasons[0] and "worse than the baseline" in bad.reasons[0]
    rel = evaluate_performance(
        joined,
        days=[D],
        baselines={"1": {"roc_auc": auc + 0.04, "log_loss": 0.1}},
        columns=CHURN,
        max_degradation=None,
        max_relative_degradation={"log_loss": 0.5},
    )
    assert rel.status == "degraded" and "log_loss" in rel.reasons[0]


def test_several_versions_each_compared_with_its_own_baseline() -> None:
    d1, d2, d3 = D, D + timedelta(days=1), D + timedelta(days=2)
    old = pd.concat([_joined(300, "1", d, 1.6, i) for i, d in enumerate((d1, d2))])
    new = _joined(300, "2", d3, 0.7, 7)
    joined = pd.concat([old, new], ignore_index=True)
    auc_old = compute_metrics("classification", old.churned, y_score=old.probability)["roc_auc"]
    auc_new = compute_metrics("classification", new.churned, y_score=new.probability)["roc_auc"]
    baselines = {"1": {"roc_auc": auc_old + 0.2}, "2": {"roc_auc": auc_new}}
    result = evaluate_performance(joined, days=[d1, d2, d3], baselines=baselines, columns=CHURN)
    summary = result.summary()
    assert summary["model_versions"] == ["1", "2"]
    assert summary["by_version"]["1"]["status"] == "degraded"
    assert summary["by_version"]["2"]["status"] == "ok"
    # The headline is the version of the most recent predictions (the current champion).
    assert summary["model_version"] == "2" and summary["status"] == "ok"
    assert summary["labelled_rows"] == 300 and summary["labelled_rows_total"] == 900
    assert any(r.startswith("(earlier version) v1") for r in summary["reasons"])
    assert [d["day"] for d in summary["by_day"]] == ["2026-01-01", "2026-01-02", "2026-01-03"]
    assert [len(v["by_day"]) for v in summary["by_version"].values()] == [2, 1]
    json.dumps(summary, allow_nan=False)


def test_run_performance_check_end_to_end_without_mlflow(tmp_path: Path) -> None:
    sim = ChurnSimulator(seed=5, n_customers=500, label_delay_days=7)
    days = sim.days(D, D + timedelta(days=9))
    versions = {d: ("1" if d < D + timedelta(days=2) else "2") for d in days}
    _write_lake(tmp_path, sim, days, versions)
    summary = run_performance_check(
        str(tmp_path / "predictions"),
        str(tmp_path / "labels"),
        run_day=D + timedelta(days=9),
        label_delay=7,
        evaluation_window=3,  # D .. D+2: v1 on two days, v2 on one
        plan={"min_labels": 100},
        columns=CHURN,
        baseline={"roc_auc": 0.99},
        report_uri=str(tmp_path / "reports" / "perf"),
    )
    assert check_result(summary) == []
    assert summary["passed"] is False and summary["rows"] == summary["labelled_rows"]
    assert summary["model"] == {
        "name": "churn",
        "version": "2",
        "run_id": "run-2",
        "uri": "models:/churn/2",
    }
    assert summary["evaluated_days"] == ["2026-01-01", "2026-01-02", "2026-01-03"]
    assert summary["model_versions"] == ["1", "2"] and summary["model_version"] == "2"
    assert summary["status"] == "degraded"  # nobody reaches an AUC of 0.99 on this data
    expected = len(sim.labels(D + timedelta(days=2)))
    assert summary["labelled_rows"] == expected
    html = Path(summary["report_uri"]).read_text()
    assert "<img" in html and "roc_auc" in html
    assert json.loads(Path(summary["report_json_uri"]).read_text())["status"] == "degraded"
    # Before any prediction matured: insufficient data, not an error.
    early = run_performance_check(
        str(tmp_path / "predictions"),
        str(tmp_path / "labels"),
        run_day=D + timedelta(days=3),
        label_delay=7,
        report_uri=str(tmp_path / "reports" / "early"),
    )
    assert early["status"] == "insufficient_data" and early["passed"] is True
    assert early["model"] is None and early["rows"] == 0 and check_result(early) == []
    assert early["missing_prediction_days"] == ["2025-12-28"]


# --------------------------------------------------------------------------- contracts


def test_string_labels_are_scored_like_integer_labels() -> None:
    """Training and evaluation accept string labels; performance monitoring crashed on them
    with "invalid literal for int()"."""
    joined = _joined(400, "1", D, auc_noise=1.2, seed=4)
    yes_no = {0: "no", 1: "yes"}
    as_text = joined.assign(
        churned=joined.churned.map(yes_no), prediction=joined.prediction.map(yes_no)
    )
    baselines = {"1": {"roc_auc": 0.9}}
    numbers = evaluate_performance(joined, days=[D], baselines=baselines, columns=CHURN)
    text = evaluate_performance(as_text, days=[D], baselines=baselines, columns=CHURN)
    assert text.summary()["metrics"] == numbers.summary()["metrics"]
    assert text.status == numbers.status == "degraded"
    truth, predicted = as_text.churned == "yes", as_text.prediction == "yes"
    metrics = text.summary()["metrics"]
    assert metrics["f1"] == pytest.approx(skm.f1_score(truth, predicted), abs=1e-6)
    assert metrics["roc_auc"] == pytest.approx(
        skm.roc_auc_score(truth, as_text.probability), abs=1e-6
    )


def test_run_performance_check_on_string_label_partitions(tmp_path: Path) -> None:
    sim = ChurnSimulator(seed=5, n_customers=500, label_delay_days=7)
    days = sim.days(D, D + timedelta(days=9))
    _write_lake(tmp_path / "text", sim, days, dict.fromkeys(days, "1"), {0: "no", 1: "yes"})
    _write_lake(tmp_path / "numbers", sim, days, dict.fromkeys(days, "1"))
    results = {
        kind: run_performance_check(
            str(tmp_path / kind / "predictions"),
            str(tmp_path / kind / "labels"),
            run_day=D + timedelta(days=9),
            evaluation_window=3,
            plan={"min_labels": 100},
            columns=CHURN,
            baseline={"roc_auc": 0.5},
            report_uri=str(tmp_path / kind / "report"),
        )
        for kind in ("text", "numbers")
    }
    assert results["text"]["status"] == "ok" and results["text"]["labelled_rows_total"] > 300
    assert results["text"]["metrics"] == results["numbers"]["metrics"]
    assert results["text"]["metrics"]["roc_auc"] > 0.6


def test_label_and_entity_columns_are_required_without_a_training_record(
    tmp_path: Path,
) -> None:
    """No churn defaults: without MLflow nothing is recorded, so both must be given."""
    sim = ChurnSimulator(seed=5, n_customers=200, label_delay_days=7)
    days = sim.days(D, D + timedelta(days=9))
    _write_lake(tmp_path, sim, days, dict.fromkeys(days, "1"))
    check = {
        "predictions_data": str(tmp_path / "predictions"),
        "labels_data": str(tmp_path / "labels"),
        "run_day": D + timedelta(days=9),
        "baseline": {"roc_auc": 0.5},
    }
    with pytest.raises(ParameterError, match=r"parameter target: not given.*mlops\.target"):
        run_performance_check(**check, columns={"entity_columns": ["customer_id"]})
    with pytest.raises(
        ParameterError, match=r"parameter entity_columns: not given.*mlops\.entity_columns"
    ):
        run_performance_check(**check, columns={"target": "churned"})


def test_bad_parameters_are_core_errors_naming_the_parameter(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="parameter metrics: unknown classification"):
        metric_plan(metrics=["rmse"])
    with pytest.raises(ParameterError, match="parameter primary_metric"):
        metric_plan(primary_metric="auc")
    with pytest.raises(ParameterError, match="parameter min_labels: must be >= 1"):
        metric_plan(min_labels=0)
    with pytest.raises(ParameterError, match="parameter max_degradation: limits for metrics"):
        metric_plan(metrics=["roc_auc"], max_degradation={"f1": 0.1})
    with pytest.raises(ParameterError, match=r"parameter max_degradation\['f1'\]"):
        metric_plan(max_degradation={"f1": "a lot"})
    with pytest.raises(CoreError, match="problem_type"):
        metric_plan(problem_type="ranking")
    # Templated text is read as the value it spells.
    plan = metric_plan(max_degradation='{"f1": 0.1}', max_relative_degradation="0.2")
    assert plan.max_abs == {"f1": 0.1} and plan.max_rel == {"roc_auc": 0.2}
    with pytest.raises(ParameterError, match="parameter baseline"):
        run_performance_check(
            str(tmp_path),
            str(tmp_path),
            run_day=D,
            baseline="yesterday",
            columns=CHURN,
            report_uri=str(tmp_path / "r"),
        )


def test_unknown_metrics_suggest_the_known_ones() -> None:
    with pytest.raises(ParameterError, match="parameter metrics") as raised:
        metric_plan(metrics=["auc"])
    assert "known: ['accuracy'" in str(raised.value)
    assert str(raised.value).endswith("did you mean 'roc_auc'?")
    with pytest.raises(ParameterError, match=r"parameter primary_metric.*did you mean 'accuracy'"):
        metric_plan(primary_metric="acuracy")
    with pytest.raises(ParameterError, match=r"computed: \['roc_auc'\]; did you mean 'roc_auc'"):
        metric_plan(metrics=["roc_auc"], max_degradation={"auc": 0.1})


def _unmatured(root: Path) -> dict[str, Any]:
    """Predictions of D and labels that arrive after the run day (none matured)."""
    ids = list(range(1, 21))
    event = pd.Timestamp(datetime(2026, 1, 1, 12, tzinfo=UTC))
    preds = pd.DataFrame(
        {"customer_id": ids, "prediction": 1, "probability": 0.7, "model_version": "1"}
    )
    io.write_partition(preds, io.partition_uri(str(root / "predictions"), D))
    labels = pd.DataFrame(
        {"customer_id": ids, "event_timestamp": event, "churned": 1, "label_available_at": event}
    )
    io.write_partition(labels, io.partition_uri(str(root / "labels"), D + timedelta(days=9)))
    return {
        "predictions_data": str(root / "predictions"),
        "labels_data": str(root / "labels"),
        "run_day": D + timedelta(days=7),
        "report_uri": str(root / "reports"),
    }


def test_wrong_columns_fail_before_the_data_is_found_insufficient(tmp_path: Path) -> None:
    check = _unmatured(tmp_path)
    label_file = io.partition_uri(str(tmp_path / "labels"), D + timedelta(days=9))
    with pytest.raises(ParameterError, match="parameter target: column 'churn'") as raised:
        run_performance_check(**check, columns={**KEYS, "target": "churn"})
    assert label_file in str(raised.value) and "did you mean 'churned'" in str(raised.value)
    assert "'label_available_at'" in str(raised.value)
    with pytest.raises(ParameterError, match="parameter entity_columns: column 'customer'"):
        run_performance_check(**check, columns={**KEYS, "entity_columns": ["customer"]})
    with pytest.raises(ParameterError, match="parameter label_time_column: column 'ts'"):
        run_performance_check(**check, columns={**KEYS, "label_time_column": "ts"})
    # the file's columns, not only those the check meant to read
    with pytest.raises(ParameterError, match="parameter score_column: column 'proba'") as raised:
        run_performance_check(**check, columns={**KEYS, "score_column": "proba"})
    assert "'probability', 'model_version']" in str(raised.value)
    assert not (tmp_path / "reports").exists()
    result = run_performance_check(**check, columns=KEYS)
    assert result["status"] == "insufficient_data" and result["rows"] == 0


def test_unusable_columns_are_input_errors_not_crashes() -> None:
    preds = pd.DataFrame({"customer_id": [1], "probability": [0.5], DAY_COLUMN: [D]})
    labels = pd.DataFrame({"customer_id": [1], "event_timestamp": ["not a time"], "churned": [1]})
    with pytest.raises(MonitoringError, match="label_time_column 'event_timestamp' does not"):
        join_predictions_with_labels(preds, labels, **KEYS)
    joined = _joined(300, "1", D, 0.5, 3).assign(probability="high")
    with pytest.raises(MonitoringError, match="cannot compute classification metrics"):
        evaluate_performance(joined, days=[D], baselines={}, columns=CHURN)


# --------------------------------------------------------------------------- earlier champions


def test_rows_digest_identifies_the_rows_not_their_order() -> None:
    from mlops_provider.core.monitoring.counterfactual import rows_digest

    rows = pd.DataFrame(
        {"customer_id": [3, 1, 2], DAY_COLUMN: [D, D, D + timedelta(days=1)], "x": [0.1, 0.2, 0.3]}
    )
    same = rows.iloc[::-1].assign(x=[9.0, 9.0, 9.0])  # other order, other values: same rows
    assert rows_digest(rows, ["customer_id"]) == rows_digest(same, ["customer_id"])
    other_day = rows.assign(**{DAY_COLUMN: [D, D, D]})
    assert rows_digest(rows, ["customer_id"]) != rows_digest(other_day, ["customer_id"])
    assert rows_digest(rows.iloc[:2], ["customer_id"]) != rows_digest(rows, ["customer_id"])
    # the documented recipe: "<keys>|<day>" lines, sorted, newline-joined, SHA-256
    import hashlib

    lines = sorted(["3|2026-01-01", "1|2026-01-01", "2|2026-01-02"])
    assert (
        rows_digest(rows, ["customer_id"]) == hashlib.sha256("\n".join(lines).encode()).hexdigest()
    )


def test_gain_is_positive_when_the_current_model_is_better() -> None:
    from mlops_provider.core.monitoring.counterfactual import gain

    out = gain(
        {"roc_auc": 0.81, "log_loss": 0.40, "rmse": None},
        {"roc_auc": 0.64, "log_loss": 0.55, "rmse": 1.0},
    )
    assert out["roc_auc"] == pytest.approx(0.17)
    assert out["log_loss"] == pytest.approx(0.15)  # lower is better: old - new
    assert out["rmse"] is None


def test_comparison_rows_join_the_scored_features(tmp_path: Path) -> None:
    from mlops_provider.core.monitoring.counterfactual import comparison_rows

    features = tmp_path / "features"
    for day in (D, D + timedelta(days=1)):
        frame = pd.DataFrame(
            {"customer_id": [1, 2, 3], "tenure": [day.day * 10.0 + i for i in (1, 2, 3)]}
        )
        io.write_partition(frame, io.partition_uri(str(features), day))
    labelled = pd.DataFrame(
        {
            "customer_id": [2, 3, 1],
            DAY_COLUMN: [D, D + timedelta(days=1), D + timedelta(days=1)],
            "churned": [1, 0, 1],
            "probability": [0.7, 0.2, 0.9],
        }
    )
    rows = comparison_rows(
        labelled, str(features), keys=["customer_id"], feature_columns=["tenure"]
    )
    assert len(rows) == 3
    by_key = dict(zip(zip(rows["customer_id"], rows[DAY_COLUMN]), rows["tenure"]))
    assert by_key == {
        (2, D): 12.0,
        (3, D + timedelta(days=1)): 23.0,
        (1, D + timedelta(days=1)): 21.0,
    }
    assert list(rows["probability"]) == [0.7, 0.2, 0.9]  # the predictions keep their values

    missing = labelled.assign(**{DAY_COLUMN: D + timedelta(days=5)})
    with pytest.raises(MonitoringError, match="no partition"):
        comparison_rows(missing, str(features), keys=["customer_id"])
    twice = tmp_path / "twice"
    io.write_partition(
        pd.DataFrame({"customer_id": [1, 1], "tenure": [1.0, 2.0]}), io.partition_uri(str(twice), D)
    )
    with pytest.raises(MonitoringError, match="repeat the keys"):
        comparison_rows(labelled.iloc[:1], str(twice), keys=["customer_id"])


def test_counterfactuals_are_off_unless_requested(tmp_path: Path) -> None:
    sim = ChurnSimulator(seed=3, n_customers=300, label_delay_days=2)
    sim.write_range(tmp_path, D, D + timedelta(days=4))
    preds = tmp_path / "predictions"
    for day in sim.days(D, D + timedelta(days=2)):
        activity = sim.activity(day)
        io.write_partition(
            pd.DataFrame(
                {
                    "customer_id": activity["customer_id"],
                    "probability": np.linspace(0, 1, len(activity)),
                    "model_version": "1",
                }
            ),
            io.partition_uri(str(preds), day),
        )
    out = run_performance_check(
        str(preds),
        str(tmp_path / "labels"),
        run_day=D + timedelta(days=4),
        label_delay=2,
        plan={"min_labels": 10},
        columns=CHURN,
        experiment_name=None,
        report_uri=str(tmp_path / "report"),
    )
    assert out["counterfactuals"] == [] and out["gain"] == {} and out["comparison"] is None
    assert out["counterfactual_notes"] == [
        "earlier champions not requested (counterfactuals=False)"
    ]
