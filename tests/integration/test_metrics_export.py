"""The monitoring metrics export against a store filled by the provider's own checks.

A module fixture trains a churn model with the provider's training (helpers of
test_monitoring_operators), promotes it, then runs the real core checks on simulator data: a
drift check on covariate-shifted data, a performance check on matured labels, a retrain decision
(recorded on the registered model) and a data validation. The exporter's text and the plugin's
``/mlops/metrics`` endpoint are then compared with what the MLflow store and the reports hold.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from include.simulator import SCENARIOS, ChurnSimulator
from mlops_provider.core import io
from mlops_provider.core.runs import RunIdentity
from mlops_provider.hooks.mlflow import MlflowHook
from tests.integration.test_monitoring_operators import (
    Trained,
    _promote,
    _train,
    _write_predictions,
)

pytestmark = pytest.mark.integration

UTC = timezone.utc
ROOT = Path(__file__).resolve().parents[2]
MODEL = "churn-export"
START = date(2026, 1, 1)
SHIFT = date(2026, 1, 8)
RAW_SUITE = str(ROOT / "include" / "expectations" / "churn_raw.json")
TOKEN = "scrape-" + "x" * 32


@dataclass
class Store:
    home: Path
    trained: Trained
    drift: dict[str, Any]
    performance: dict[str, Any]
    retrain: Any
    validation: dict[str, Any]


def _identity(task: str, day: date) -> RunIdentity:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return RunIdentity("mlops_monitoring", task, start, start + timedelta(days=1))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, airflow_db: Path) -> Iterator[Store]:
    from mlops_provider.core.monitoring import run_drift_check, run_performance_check
    from mlops_provider.core.retraining import run_retrain_decision
    from mlops_provider.core.validation import check_dataset

    home = tmp_path_factory.mktemp("export") / "mlops"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(home))
        for name in ("MLOPS_REPORTS_URI", "MLOPS_LAKE_URI", "MLOPS_METRICS_TOKEN"):
            mp.delenv(name, raising=False)
        root = home / "data" / "lake"
        sim = ChurnSimulator(seed=3, n_customers=400, label_delay_days=7)
        shifted = ChurnSimulator(
            seed=3,
            n_customers=400,
            label_delay_days=7,
            scenarios=SCENARIOS["covariate_shift"](SHIFT, strength=1.5),
        )
        sim.write_range(root, START, date(2026, 1, 14))
        io.write_partition(shifted.activity(SHIFT), io.partition_uri(str(root / "shifted"), SHIFT))
        one = _train(root, sim, sim.days(START, date(2026, 1, 3)), date(2026, 1, 4), name=MODEL)
        _promote(MODEL, one, date(2026, 1, 4))
        for day in sim.days(date(2026, 1, 4), date(2026, 1, 6)):
            _write_predictions(root / "predictions", day, sim.activity(day), one, name=MODEL)
        client = MlflowHook().client
        drift = run_drift_check(
            str(root / "shifted" / f"dt={SHIFT}"),
            client=client,
            registered_model_name=MODEL,
            identity=_identity("data_drift", SHIFT),
            data_interval_start=datetime(2026, 1, 8, tzinfo=UTC),
        )
        performance = run_performance_check(
            str(root / "predictions"),
            str(root / "labels"),
            run_day=date(2026, 1, 13),
            evaluation_window=3,
            plan={"min_labels": 50},
            columns={"target": "churned", "entity_columns": ["customer_id"]},
            client=client,
            registered_model_name=MODEL,
            identity=_identity("performance", date(2026, 1, 13)),
        )
        retrain = run_retrain_decision(
            client,
            MODEL,
            drift=drift,
            performance=performance,
            now=datetime(2026, 1, 9, tzinfo=UTC),
            request_id="mlops_monitoring/2026-01-08T00:00:00+00:00",
        )
        validation = check_dataset(
            str(root / "raw" / "dt=2026-01-06"),
            RAW_SUITE,
            on_failure="warn",
            suite_parameters={
                "data_interval_start": "2026-01-06T00:00:00+00:00",
                "data_interval_end": "2026-01-07T00:00:00+00:00",
            },
            day=date(2026, 1, 6),
            task="validate_raw",
        ).result
        yield Store(home, one, drift, performance, retrain, validation)


def _parse(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """``{sample name: {sorted labels: value}}`` of a Prometheus text."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def _one(samples: dict[str, Any], name: str, **labels: str) -> float:
    found = [
        v for k, v in samples.get(name, {}).items() if set(labels.items()) <= set(dict(k).items())
    ]
    assert len(found) == 1, (name, labels, samples.get(name))
    return float(found[0])


@pytest.fixture
def scraped(store: Store, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from mlops_provider.core.monitoring import ExportSettings, MetricsExporter

    monkeypatch.setenv("MLOPS_HOME", str(store.home))
    exporter = MetricsExporter(lambda: MlflowHook().client, ExportSettings(), cache_seconds=0)
    return _parse(exporter.render().decode())


def test_drift_metrics_are_the_drift_run(store: Store, scraped: dict[str, Any]) -> None:
    run = MlflowHook().client.get_run(store.drift["mlflow_run_id"])
    check = "mlops_monitoring.data_drift"
    assert store.drift["dataset_drift"] is True
    assert _one(scraped, "mlops_drift_share", model=MODEL, check=check) == pytest.approx(
        run.data.metrics["drift_share"]
    )
    assert _one(scraped, "mlops_dataset_drift", model=MODEL, check=check) == 1.0
    assert _one(scraped, "mlops_drift_columns_drifted", model=MODEL, check=check) == float(
        store.drift["n_drifted"]
    )
    for feature, column in store.drift["columns"].items():
        drifted = _one(scraped, "mlops_feature_drifted", model=MODEL, feature=feature)
        assert drifted == float(column["drifted"])
        if column["score"] is not None:
            score = _one(
                scraped,
                "mlops_feature_drift_score",
                model=MODEL,
                feature=feature,
                method=column["method"],
            )
            assert score == pytest.approx(run.data.metrics[f"drift_score.{feature}"])
    assert _one(
        scraped, "mlops_result_timestamp_seconds", model=MODEL, kind="drift"
    ) == pytest.approx(run.info.end_time / 1000)


def test_performance_metrics_are_the_performance_run(store: Store, scraped: dict[str, Any]) -> None:
    perf = store.performance
    check = "mlops_monitoring.performance"
    assert perf["model_version"] == "1" and perf["labelled_rows"] >= 50
    auc = _one(
        scraped, "mlops_performance_metric", model=MODEL, check=check, version="1", metric="roc_auc"
    )
    assert auc == pytest.approx(perf["metrics"]["roc_auc"], abs=1e-6)
    baseline = _one(scraped, "mlops_performance_baseline", model=MODEL, metric="roc_auc")
    assert baseline == pytest.approx(store.trained.metrics["roc_auc"], abs=1e-6)
    degradation = _one(
        scraped, "mlops_performance_degradation_absolute", model=MODEL, metric="roc_auc"
    )
    assert degradation == pytest.approx(perf["degradation"]["roc_auc"]["abs"], abs=1e-6)
    assert (
        _one(scraped, "mlops_performance_status", model=MODEL, status=perf["status"], version="1")
        == 1.0
    )
    degraded = _one(scraped, "mlops_performance_degraded", model=MODEL, version="1")
    assert degraded == float(perf["status"] == "degraded")
    rows = _one(scraped, "mlops_performance_labelled_rows", model=MODEL, version="1")
    assert rows == perf["labelled_rows"]


def test_retraining_champion_and_data_quality(store: Store, scraped: dict[str, Any]) -> None:
    assert store.retrain.retrain is True
    assert _one(scraped, "mlops_retrain_requested", model=MODEL) == 1.0
    assert _one(scraped, "mlops_retrain_requests_total", model=MODEL) == 1.0
    reasons = {dict(k)["reason"] for k in scraped["mlops_retrain_reason_info"]}
    assert reasons == {r[:120] for r in store.retrain.reasons}
    assert (
        _one(scraped, "mlops_retrain_last_request_timestamp_seconds", model=MODEL)
        == datetime(2026, 1, 9, tzinfo=UTC).timestamp()
    )
    assert (
        _one(scraped, "mlops_champion_version_info", model=MODEL, alias="champion", version="1")
        == 1.0
    )
    v = store.validation
    labels = {"task": "validate_raw", "suite": v["suite"]}
    assert _one(scraped, "mlops_data_quality_success", **labels) == float(v["success"])
    assert _one(scraped, "mlops_data_quality_failed_expectations", **labels) == float(
        v["failed_expectations"]
    )
    assert _one(scraped, "mlops_data_quality_evaluated_expectations", **labels) == float(
        v["evaluated_expectations"]
    )
    assert _one(scraped, "mlops_export_collect_errors") == 0.0


def test_a_second_request_counts_and_a_retry_does_not(store: Store) -> None:
    from mlops_provider.core.retraining import read_request_state, record_request, request_count

    client = MlflowHook().client
    at = datetime(2026, 1, 20, tzinfo=UTC)
    before = request_count(dict(client.get_registered_model(MODEL).tags))
    record_request(client, MODEL, reasons=["age"], at=at, champion=None, request_id="r-2")
    record_request(client, MODEL, reasons=["age"], at=at, champion=None, request_id="r-2")
    after = dict(client.get_registered_model(MODEL).tags)
    assert request_count(after) == before + 1
    assert read_request_state(client, MODEL).request_id == "r-2"


# ------------------------------------------------------------------------------ the plugin


@pytest.fixture
def plugin(store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from mlops_provider.plugins import app as plugin_app

    monkeypatch.setenv("MLOPS_HOME", str(store.home))
    monkeypatch.setattr(plugin_app, "_EXPORTER", None)
    with TestClient(plugin_app.create_app()) as client:
        yield client


def test_the_plugin_serves_the_metrics_to_the_token(
    plugin: Any, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_METRICS_TOKEN", TOKEN)
    response = plugin.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples = _parse(response.text)
    share = _one(samples, "mlops_drift_share", model=MODEL)
    assert share == pytest.approx(store.drift["drift_share"], abs=1e-6)
    assert _one(samples, "mlops_retrain_requested", model=MODEL) in (0.0, 1.0)
    missing = plugin.get("/metrics")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert plugin.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert plugin.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401


def test_without_a_token_setting_the_metrics_want_an_airflow_login(plugin: Any) -> None:
    assert plugin.get("/metrics").status_code == 401


def test_every_exported_family_is_documented() -> None:
    from mlops_provider.core.monitoring.export import METRICS

    text = (ROOT / "docs" / "metrics.md").read_text()
    assert [name for name in METRICS if f"`{name}" not in text] == []
    assert json.dumps(sorted(METRICS))  # names are plain strings
