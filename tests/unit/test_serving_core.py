"""Pure parts of the serving app: body parsing, input checks, canary routing, settings, the
prediction log's failure handling."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mlops_provider.core.scoring.model import InputColumn
from mlops_provider.serving.payload import (
    PredictRequest,
    ServingError,
    canary_hit,
    check_entities,
    columns_from_rows,
    frame_from_columns,
    parse_predict_body,
)
from mlops_provider.serving.prediction_log import LoggedCall, PredictionLog
from mlops_provider.serving.settings import ServingSettings, ServingSettingsError

INPUTS = [
    InputColumn("tenure", "long"),
    InputColumn("charges", "double"),
    InputColumn("plan", "string"),
]
ROW = {"customer_id": 7, "tenure": 3, "charges": 9.5, "plan": "basic"}


def _parse(body: bytes, max_rows: int = 10, max_body_bytes: int = 1000) -> object:
    return parse_predict_body(body, max_body_bytes=max_body_bytes, max_rows=max_rows)


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        (b"{nope", 400, "not valid JSON"),
        (b"[1]", 400, "must be a JSON object"),
        (b"{}", 400, "exactly one of"),
        (b'{"rows": [], "entities": []}', 400, "got both"),
        (b'{"rows": {}}', 400, "'rows' must be a list"),
        (b'{"rows": []}', 400, "'rows' is empty"),
        (b'{"rows": [1]}', 400, "rows[0] must be an object"),
        (b'{"rows": [{}], "request_id": 5}', 400, "request_id"),
        (json.dumps({"rows": [{}] * 11}).encode(), 413, "max_rows=10"),
        (b"x" * 1001, 413, "exceeds 1,000"),
    ],
)
def test_bad_bodies(body: bytes, status: int, text: str) -> None:
    with pytest.raises(ServingError) as err:
        _parse(body)
    assert err.value.status == status and text in err.value.detail


def test_rows_become_typed_columns_and_echo_the_entity() -> None:
    req = parse_predict_body(
        json.dumps({"rows": [ROW, {**ROW, "tenure": 4.0}], "request_id": "a"}).encode(),
        max_body_bytes=10**6,
        max_rows=5,
    )
    features, echo = columns_from_rows(req.items, INPUTS, echo=["customer_id"])
    assert features == {"tenure": [3, 4.0], "charges": [9.5, 9.5], "plan": ["basic", "basic"]}
    assert echo == {"customer_id": [7, 7]}
    frame = frame_from_columns(features, INPUTS)
    assert [str(t) for t in frame.dtypes] == ["float64", "float64", "object"]
    assert str(frame_from_columns({"tenure": [1, 2]}, INPUTS)["tenure"].dtype) == "int64"


@pytest.mark.parametrize(
    ("row", "text"),
    [
        ({k: v for k, v in ROW.items() if k != "plan"}, "rows[1]: missing feature column 'plan'"),
        ({**ROW, "tenure": "3"}, "rows[1]: field 'tenure' expects long, got string \"3\""),
        ({**ROW, "charges": True}, "field 'charges' expects double, got boolean"),
        ({**ROW, "plan": 1}, "field 'plan' expects string, got integer 1"),
        ({**ROW, "charges": None}, "field 'charges' is null"),
    ],
)
def test_wrong_rows_name_the_row_and_field(row: dict[str, object], text: str) -> None:
    with pytest.raises(ServingError) as err:
        columns_from_rows([ROW, row], INPUTS)
    assert err.value.status == 422 and text in err.value.detail


def test_entities_need_their_keys() -> None:
    check_entities([{"customer_id": 1}, {"customer_id": "x"}], ["customer_id"])
    for bad, text in [
        ({}, "missing entity key 'customer_id'"),
        ({"customer_id": 1.5}, "got number 1.5"),
    ]:
        with pytest.raises(ServingError, match="entities\\[1\\]") as err:
            check_entities([{"customer_id": 1}, bad], ["customer_id"])
        assert err.value.status == 422 and text in err.value.detail


def test_canary_routing_is_deterministic_per_request_id() -> None:
    hits = [canary_hit(0.3, f"req-{i}", 0.99) for i in range(2000)]
    assert hits == [canary_hit(0.3, f"req-{i}", 0.0) for i in range(2000)]
    assert 0.25 < sum(hits) / len(hits) < 0.35
    assert canary_hit(0.3, None, 0.1) and not canary_hit(0.3, None, 0.5)
    assert not canary_hit(0.0, "x", 0.0) and canary_hit(1.0, "x", 0.99)


def test_settings_from_env() -> None:
    env = {
        "MLOPS_SERVING_MODEL_NAME": "churn",
        "MLOPS_SERVING_LOG_SAMPLE_RATE": "0.25",
        "MLOPS_SERVING_MAX_ROWS": "50",
        "MLOPS_SERVING_FEATURE_REFS": "v:a, v:b",
        "MLOPS_SERVING_ADMIN_TOKEN": "tok-123",
    }
    s = ServingSettings.from_env(env, alias="challenger")
    assert (s.model_name, s.alias, s.log_sample_rate, s.max_rows) == (
        "churn",
        "challenger",
        0.25,
        50,
    )
    assert (
        s.feature_refs == ("v:a", "v:b") and s.admin_token == "tok-123" and "tok-123" not in repr(s)
    )
    assert s.requested_uri == "models:/churn@challenger" and not s.pinned
    assert ServingSettings("churn", model_uri="models:/churn/3").pinned
    with pytest.raises(ServingSettingsError, match="MLOPS_SERVING_MAX_ROWS"):
        ServingSettings.from_env({**env, "MLOPS_SERVING_MAX_ROWS": "many"})
    with pytest.raises(ServingSettingsError, match="log_sample_rate"):
        ServingSettings("churn", log_sample_rate=2)
    with pytest.raises(ServingSettingsError, match="model_name"):
        ServingSettings.from_env({})


def test_mlflow_target_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://env:5000")
    assert (
        ServingSettings("m", tracking_uri="http://x:1").mlflow_target().tracking_uri == "http://x:1"
    )
    assert ServingSettings("m").mlflow_target().tracking_uri == "http://env:5000"


def _call(day: datetime) -> LoggedCall:
    return LoggedCall(
        {"id": [1, 2]},
        {"f": [0.5, 1.5]},
        {"prediction": [0, 1], "probability": [0.2, 0.7]},
        "m",
        "3",
        "run",
        day,
        "primary",
        "r1",
    )


def test_prediction_log_flush_failure_keeps_rows(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    errors: list[Exception] = []
    log = PredictionLog(str(blocker / "log"), flush_seconds=3600, on_error=errors.append)
    log.add(_call(datetime(2026, 1, 5, 10, tzinfo=timezone.utc)))
    assert log.flush() == [] and log.failures == 1 and len(errors) == 1 and log.buffered_rows == 2
    log.uri = str(tmp_path / "log")
    written = log.close()
    assert len(written) == 1 and "/dt=2026-01-05/part-" in written[0]
    import pandas as pd

    frame = pd.read_parquet(written[0])
    assert list(frame.columns) == [
        "id",
        "f",
        "prediction",
        "probability",
        "model_name",
        "model_version",
        "model_run_id",
        "scored_at",
        "event_timestamp",
        "variant",
        "request_id",
    ]
    assert str(frame["scored_at"].dt.tz) == "UTC"


@pytest.mark.parametrize(
    ("max_rows", "batching", "calls"), [(4, True, [4, 2]), (10, False, [1] * 6)]
)
def test_model_thread_batches_concurrent_requests_and_keeps_errors_apart(
    max_rows: int, batching: bool, calls: list[int]
) -> None:
    import asyncio

    from mlops_provider.serving.batching import ModelThread

    seen: list[int] = []

    def call(slot: object, requests: list[PredictRequest]) -> list[object]:
        seen.append(len(requests))
        return [
            ServingError(422, "invalid_input", "bad row") if r.request_id == "bad" else r.request_id
            for r in requests
        ]

    thread = ModelThread(call, max_rows=max_rows, model_threads=0, batching=batching)  # type: ignore[arg-type]
    requests = [PredictRequest("rows", [{"x": i}], str(i)) for i in range(5)]
    requests.append(PredictRequest("rows", [{"x": 5}], "bad"))

    slot = object()

    async def send() -> list[object]:
        return await asyncio.gather(
            *(thread.predict(slot, r) for r in requests),  # type: ignore[arg-type]
            return_exceptions=True,
        )

    try:
        results = asyncio.run(send())
    finally:
        thread.close()
    assert results[:5] == ["0", "1", "2", "3", "4"]
    assert isinstance(results[5], ServingError) and results[5].status == 422
    assert seen == calls  # queued while the thread was busy: one call per batch of max_rows
