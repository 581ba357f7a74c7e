"""The shared vocabulary of core: model URIs, metrics, parameters, times, results, report
locations. Each has one implementation that every stage uses."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from mlops_provider.core import metrics, models, params, reports, results, times
from mlops_provider.core.errors import InputError, ParameterError


@pytest.mark.parametrize(
    ("uri", "kind", "fields"),
    [
        ("models:/churn/3", "version", {"name": "churn", "version": "3"}),
        ("models:/churn@champion", "alias", {"name": "churn", "alias": "champion"}),
        ("models:/m-0123456789abcdef", "logged_model", {"model_id": "m-0123456789abcdef"}),
        ("runs:/0123456789abcdef/model", "run", {"run_id": "0123456789abcdef"}),
        ("models:/my model/07", "version", {"name": "my model", "version": "7"}),
    ],
)
def test_every_model_uri_form_parses(uri: str, kind: str, fields: dict[str, str]) -> None:
    ref = models.parse_model_uri(uri)
    assert ref.kind == kind
    for key, value in fields.items():
        assert getattr(ref, key) == value


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("models:/churn/Production", "registry stages are not supported"),
        ("models:/churn", "expected models:/<name>@<alias>"),
        ("s3://bucket/model", "malformed model URI"),
        ("", "non-empty string"),
        (None, "non-empty string"),
    ],
)
def test_bad_model_uris_name_the_accepted_forms(uri: object, message: str) -> None:
    with pytest.raises(models.ModelUriError, match=message):
        models.parse_model_uri(uri)


def test_model_version_result_entry() -> None:
    mv = models.ModelVersion(
        uri="models:/churn/3", name="churn", version="3", run_id="r1", alias="champion"
    )
    assert mv.to_dict() == {
        "name": "churn",
        "version": "3",
        "run_id": "r1",
        "uri": "models:/churn/3",
        "alias": "champion",
    }
    assert results.model_dict(mv) == mv.to_dict()


def test_string_and_integer_labels_give_the_same_metrics() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 400)
    score = np.clip(y * 0.3 + rng.random(400) * 0.7, 0, 1)
    as_int = metrics.compute_metrics("classification", y, y_score=score)
    as_str = metrics.compute_metrics("classification", np.where(y == 1, "yes", "no"), y_score=score)
    as_bool = metrics.compute_metrics("classification", y == 1, y_score=score)
    assert as_str == pytest.approx(as_int)
    assert as_bool == pytest.approx(as_int)
    assert 0.5 < as_int["roc_auc"] <= 1.0  # type: ignore[operator]


def test_metric_directions_are_one_set() -> None:
    for lower in ("log_loss", "rmse", "mae", "mse", "brier"):
        assert not metrics.higher_is_better(lower)
    assert metrics.higher_is_better("roc_auc")
    assert metrics.improvement("rmse", 1.0, 2.0) == 1.0
    assert metrics.improvement("roc_auc", 0.7, 0.8) == pytest.approx(-0.1)
    deg = metrics.degradation({"roc_auc": 0.7, "rmse": 3.0}, {"roc_auc": 0.8, "rmse": 2.0})
    assert deg["roc_auc"]["abs"] == pytest.approx(0.1) and deg["rmse"]["abs"] == 1.0


def test_undefined_metrics_are_none_and_unknown_ones_an_error() -> None:
    one_class = metrics.compute_metrics("classification", [1, 1, 1], y_score=[0.9, 0.2, 0.4])
    assert one_class["roc_auc"] is None and one_class["accuracy"] == pytest.approx(1 / 3)
    with pytest.raises(InputError, match="unknown classification metric"):
        metrics.compute_metrics("classification", [1, 0], y_pred=[1, 0], metrics=["rmse"])
    with pytest.raises(InputError, match="problem_type must be"):
        metrics.compute_metrics("ranking", [1], y_pred=[1])


def test_parameters_coerce_template_text_and_name_themselves() -> None:
    assert params.as_float("0.25", "drift_share") == 0.25
    assert params.as_int("7", "label_delay") == 7
    assert params.as_bool("false", "insecure") is False
    assert params.as_list('["a", "b"]', "columns") == ["a", "b"]
    assert params.as_names("a, b", "columns") == ["a", "b"]
    assert params.as_mapping('{"roc_auc": {"min": 0.7}}', "thresholds") == {"roc_auc": {"min": 0.7}}
    assert params.as_uri(Path("/tmp/x"), "input_data") == "/tmp/x"
    assert params.as_str("  ", "alias") is None
    with pytest.raises(ParameterError, match="parameter label_delay: expected a whole number"):
        params.as_int("7.5", "label_delay")
    with pytest.raises(ParameterError, match="parameter drift_share: must be <= 1"):
        params.as_float(2, "drift_share", maximum=1)
    with pytest.raises(ParameterError, match="parameter thresholds: expected a mapping"):
        params.as_mapping("[1, 2]", "thresholds")
    with pytest.raises(ParameterError, match="parameter target: a value is required"):
        params.required(None, "target")


def test_times_are_aware_utc() -> None:
    expected = datetime(2026, 1, 5, tzinfo=timezone.utc)
    for value in ("2026-01-05", "2026-01-05T00:00:00Z", date(2026, 1, 5), expected):
        assert times.to_utc(value) == expected
    assert times.parse_time(int(expected.timestamp() * 1000)) == expected
    assert times.iso(datetime(2026, 1, 5)) == "2026-01-05T00:00:00+00:00"
    with pytest.raises(InputError, match="start 'yesterday' is not a date"):
        times.to_utc("yesterday", what="start")


def test_results_have_the_common_shape() -> None:
    out = results.make_result(status="ok", passed=True, rows=3, extra=1)
    assert list(out)[:7] == list(results.COMMON_KEYS)
    assert results.check_result(out) == [] and out["extra"] == 1
    problems = results.check_result({"status": "ok", "passed": "yes", "reasons": "x"})
    assert "'passed' is 'yes', expected bool" in problems
    assert "missing key 'model'" in problems


def test_one_report_location_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_DATA_ROOT", str(tmp_path))
    default = reports.report_location(
        None, kind="drift", name="churn model", day=date(2026, 1, 5), json_name="drift.json"
    )
    assert default.html_uri == f"{tmp_path}/reports/drift/churn_model/dt=2026-01-05/report.html"
    assert default.json_uri.endswith("dt=2026-01-05/drift.json")
    as_file = reports.report_location(
        "s3://b/r/day.html", kind="drift", name="x", day=None, json_name="drift.json"
    )
    assert (as_file.html_uri, as_file.json_uri) == ("s3://b/r/day.html", "s3://b/r/day.json")
    per_task = reports.report_location(
        None, kind="evaluation", name="churn", day=date(2026, 1, 5), task="evaluate"
    )
    assert per_task.html_uri.endswith("/evaluation/churn/dt=2026-01-05/evaluate/report.html")
