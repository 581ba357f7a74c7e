"""The pure parts of deployment: reading /metrics traffic, reload payloads, sampling, the
serving connection."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from mlops_provider.core.deployment import Traffic, sample_rows, traffic
from mlops_provider.core.deployment.infra import _compare, _percentiles
from mlops_provider.core.deployment.rollout import _reload_payload, _slot, _undo_payload

METRICS = """\
# HELP mlops_serving_requests_total Requests answered.
# TYPE mlops_serving_requests_total counter
mlops_serving_requests_total{route="/predict",status="200"} 90.0
mlops_serving_requests_total{route="/predict",status="422"} 4.0
mlops_serving_requests_total{route="/predict",status="500"} 6.0
mlops_serving_requests_total{route="/readyz",status="503"} 7.0
"""


def test_traffic_counts_predict_requests_and_only_server_errors() -> None:
    seen = traffic(METRICS)
    assert seen == Traffic(requests=100, errors=6)
    assert seen.error_rate == pytest.approx(0.06)
    assert traffic("") == Traffic(0, 0) and traffic("").error_rate is None


def test_traffic_between_two_readings_survives_a_restart() -> None:
    assert Traffic(150, 7).since(Traffic(100, 6)) == Traffic(50, 1)
    # the service restarted between the readings: the counters began again
    assert Traffic(20, 0).since(Traffic(100, 6)) == Traffic(20, 0)


def test_reload_and_undo_payloads_per_mode() -> None:
    assert _reload_payload("replace", "5", 0.1) == {"version": "5", "canary": None, "shadow": None}
    assert _reload_payload("canary", "5", 0.25) == {"canary": {"version": "5", "share": 0.25}}
    assert _reload_payload("shadow", "5", 0.1) == {"shadow": {"version": "5"}}
    assert _undo_payload("replace", "4") == {"version": "4", "canary": None, "shadow": None}
    assert _undo_payload("replace", None) is None
    assert _undo_payload("canary", "4") == {"canary": None}
    state = {"model": {"version": 4}, "canary": {"version": "5", "share": 0.1}, "shadow": None}
    assert (_slot(state, "replace"), _slot(state, "canary"), _slot(state, "shadow")) == (
        "4",
        "5",
        None,
    )


def test_compare_counts_rows_whose_label_or_probability_differs() -> None:
    expected = pa.table(
        {"customer_id": [1, 2, 3], "prediction": [0, 1, 1], "probability": [0.1, 0.7, 0.9]}
    )
    served = [
        {"prediction": 0, "probability": 0.1},
        {"prediction": 1, "probability": 0.700001},  # beyond 1e-9 relative
        {"prediction": 0, "probability": 0.9},
    ]
    bad, examples = _compare(
        expected, served, ["prediction", "probability"], ["customer_id"], 1e-9, 10
    )
    assert bad == 2
    assert examples[0] == {
        "row": 11,
        "customer_id": 2,
        "probability_batch": 0.7,
        "probability_served": 0.700001,
    }
    assert examples[1]["prediction_batch"] == 1 and examples[1]["prediction_served"] == 0
    assert _compare(expected, served, ["prediction"], [], 1e-6, 0)[0] == 1


def test_percentiles_in_milliseconds_and_seeded_sampling() -> None:
    assert _percentiles([0.001] * 99 + [0.1]) == {
        "p50": 1.0,
        "p95": 1.0,
        "p99": pytest.approx(1.99, abs=0.01),
        "max": 100.0,
    }
    table = pa.table({"x": list(range(100))})
    picked = sample_rows(table, 10, seed=3)
    assert picked.num_rows == 10 and picked["x"].to_pylist() == sorted(picked["x"].to_pylist())
    assert picked.equals(sample_rows(table, 10, seed=3))
    assert sample_rows(table, 500) is table


def test_serving_connection_gives_url_and_token(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_provider.hooks.serving import ServingHook

    monkeypatch.setenv(
        "AIRFLOW_CONN_MLOPS_SERVING_DEFAULT",
        json.dumps({"conn_type": "mlops_serving", "host": "http://svc:8000/", "password": "t0k"}),
    )
    assert ServingHook().url_and_token() == ("http://svc:8000", "t0k")
    monkeypatch.setenv(
        "AIRFLOW_CONN_SVC2",
        json.dumps({"conn_type": "mlops_serving", "host": "svc", "port": 9000, "schema": "https"}),
    )
    assert ServingHook("svc2").url_and_token() == ("https://svc:9000", None)
    assert ServingHook("absent", url="http://x:1").url_and_token() == ("http://x:1", None)
    monkeypatch.setenv("AIRFLOW_CONN_EMPTY", json.dumps({"conn_type": "mlops_serving"}))
    with pytest.raises(ValueError, match=r"Connection empty .* has no host"):
        ServingHook("empty").url_and_token()
    ok, message = ServingHook("absent", url="http://127.0.0.1:9").test_connection()
    assert not ok and "not reachable" in message
