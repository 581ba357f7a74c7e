"""The realtime serving app over HTTP against real components: registered churn models in an
embedded MLflow store, the demo Feast repo with SQLite (and Redis) online stores materialized
from simulator data, the batch scorer as the reference for every prediction."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pyarrow as pa
import pytest

from include.simulator import ENTITY_COLUMN, FEATURE_COLUMNS, ChurnSimulator
from mlops_provider.core import features as feat
from mlops_provider.core.feast_config import make_feature_store
from mlops_provider.core.mlflow_target import MlflowTarget, activated
from mlops_provider.serving import ServingSettings, serve_in_thread
from tests.conftest import ROOT, free_port
from tests.integration.test_scoring_operator import HGB_TREE, make_pipeline

pytestmark = pytest.mark.integration

DAYS = [date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3)]
VIEW = "customer_activity"
REFS = [f"{VIEW}:{c}" for c in FEATURE_COLUMNS]
SIM = ChurnSimulator(seed=5, n_customers=300, daily_active_fraction=0.5)
REPO = str(ROOT / "include" / "feature_repo")
TOKEN = "s3cret-token"
#: Redis database of these tests (the stack uses 1 and 3, the Feast tests the default 0).
REDIS_DB = 13


def utc(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """This module's MLOPS_HOME: published feature partitions of three simulated days."""
    root = tmp_path_factory.mktemp("serving-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_HOME", str(root))
        lake = root / "data"
        for day in DAYS:
            raw = SIM.write_day(lake, day)["raw"]
            feat.publish_partition(
                str(Path(raw).parent),
                str(lake / "features" / VIEW),
                day,
                entity_columns=["customer_id"],
            )
        yield root


@pytest.fixture(scope="module")
def store(home: Path) -> Any:
    """The demo repo applied and materialized into its SQLite online store."""
    fs = make_feature_store(REPO)
    feat.apply_repo(fs)
    feat.materialize(fs, utc(DAYS[0]), utc(DAYS[-1]) + timedelta(days=1))
    return fs


@pytest.fixture(scope="module")
def online(store: Any) -> pd.DataFrame:
    """The online rows of the customers active on the days (what the service should read)."""
    ids = sorted({int(i) for d in DAYS for i in SIM.activity(d)[ENTITY_COLUMN]})
    values = store.get_online_features(
        features=REFS, entity_rows=[{ENTITY_COLUMN: i} for i in ids]
    ).to_dict()
    frame = pd.DataFrame(values)
    frame = frame.dropna()
    assert len(frame) > 50
    return frame.reset_index(drop=True)


def _register(target: MlflowTarget, pipe: Any, X: pd.DataFrame) -> str:  # noqa: N803
    import mlflow
    from mlflow.models import infer_signature

    with activated(target):
        mlflow.set_experiment("serving-tests")
        with mlflow.start_run():
            mlflow.set_tag("mlops.entity_columns", json.dumps([ENTITY_COLUMN]))
            mlflow.set_tag("mlops.feature_refs", json.dumps(REFS))
            info = mlflow.sklearn.log_model(
                pipe,
                name="model",
                signature=infer_signature(X, pipe.predict(X)),
                pip_requirements=["scikit-learn"],
                skops_trusted_types=[HGB_TREE],
            )
        return str(mlflow.register_model(info.model_uri, "churn").version)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite MLflow store: ``churn`` v1 (logistic), v2 (boosting), both recording their Feast
    references; ``champion`` -> v1."""
    from mlops_provider.core.mlflow_target import make_client

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    target = MlflowTarget(uri)
    client = make_client(target)
    client.create_experiment("serving-tests", artifact_location=(root / "artifacts").as_uri())
    X = pd.concat([SIM.activity(d) for d in DAYS], ignore_index=True)[FEATURE_COLUMNS]
    y = pd.concat([SIM.labels(d) for d in DAYS], ignore_index=True)["churned"]
    assert _register(target, make_pipeline("logreg").fit(X, y), X) == "1"
    assert _register(target, make_pipeline("hgb").fit(X, y), X) == "2"
    client.set_registered_model_alias("churn", "champion", "1")
    return uri


def _settings(registry: str, **changes: Any) -> ServingSettings:
    base: dict[str, Any] = {
        "model_name": "churn",
        "tracking_uri": registry,
        "feature_repo": REPO,
        "admin_token": TOKEN,
        "alias_poll_seconds": 0,
    }
    base.update(changes)
    return ServingSettings(**base)


@pytest.fixture
def champion(registry: str) -> Iterator[None]:
    """``champion`` back on v1 after a test that moves it."""
    yield
    from mlops_provider.core.mlflow_target import make_client

    make_client(MlflowTarget(registry)).set_registered_model_alias("churn", "champion", "1")


def _rows(online: pd.DataFrame, n: int) -> list[dict[str, Any]]:
    records = online.head(n).to_dict(orient="records")
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in records]


def _batch(registry: str, version: str, rows: list[dict[str, Any]], out: Path) -> pd.DataFrame:
    from mlops_provider.core.scoring.batch import score

    table = pa.Table.from_pylist(rows)
    result = score(
        f"models:/churn/{version}",
        target=MlflowTarget(registry),
        output_uri=str(out),
        input_table=table,
        entity_columns=[ENTITY_COLUMN],
    )
    assert result.rows == len(rows)
    return pd.read_parquet(out).set_index(ENTITY_COLUMN)


def _post(client: httpx.Client, body: Any, **kw: Any) -> httpx.Response:
    return client.post("/predict", content=json.dumps(body), **kw)


# ----------------------------------------------------------------------------- predictions
def test_predictions_equal_batch_scoring_in_rows_and_entities_mode(
    registry: str, store: Any, online: pd.DataFrame, tmp_path: Path
) -> None:
    rows = _rows(online, 25)
    expected = _batch(registry, "1", rows, tmp_path / "batch")
    with (
        serve_in_thread(_settings(registry)) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["feature_store"] == "ok"
        assert ready.json()["model"]["version"] == "1"
        by_rows = _post(client, {"rows": rows, "request_id": "r-1"})
        ids = [{ENTITY_COLUMN: r[ENTITY_COLUMN]} for r in rows]
        by_entities = _post(client, {"entities": ids})
    assert by_rows.status_code == 200, by_rows.text
    assert by_entities.status_code == 200, by_entities.text
    body = by_rows.json()
    assert body["model"] == {
        "name": "churn",
        "version": "1",
        "run_id": body["model"]["run_id"],
        "alias": "champion",
    }
    assert body["variant"] == "primary" and body["request_id"] == "r-1"
    assert by_entities.json()["predictions"] == body["predictions"]
    for item in body["predictions"]:
        want = expected.loc[item[ENTITY_COLUMN]]
        assert item["prediction"] == want["prediction"]
        assert item["probability"] == pytest.approx(want["probability"], abs=1e-12)
    assert body["model"]["run_id"] == expected["model_run_id"].iloc[0]


def test_bad_requests_are_refused_naming_the_field(
    registry: str, store: Any, online: pd.DataFrame
) -> None:
    row = _rows(online, 1)[0]
    settings = _settings(registry, max_rows=5, max_body_bytes=4000)
    with (
        serve_in_thread(settings) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        cases = {
            "unknown entity": (
                _post(client, {"entities": [{ENTITY_COLUMN: 999_999_999}]}),
                404,
                "customer_id=999999999",
            ),
            "missing key": (_post(client, {"entities": [{"nope": 1}]}), 422, "customer_id"),
            "missing column": (
                _post(client, {"rows": [{k: v for k, v in row.items() if k != "tenure_months"}]}),
                422,
                "tenure_months",
            ),
            "wrong type": (
                _post(client, {"rows": [row, {**row, "monthly_charges": "a lot"}]}),
                422,
                "rows[1]: field 'monthly_charges'",
            ),
            "null": (_post(client, {"rows": [{**row, "plan": None}]}), 422, "'plan' is null"),
            "too many rows": (_post(client, {"rows": [row] * 6}), 413, "max_rows=5"),
            "oversize": (_post(client, {"rows": [row], "pad": "x" * 5000}), 413, "exceeds 4,000"),
            "malformed": (client.post("/predict", content=b"{not json"), 400, "not valid JSON"),
            "both keys": (_post(client, {"rows": [row], "entities": []}), 400, "exactly one of"),
            "bad token": (
                client.post("/admin/reload", headers={"Authorization": "Bearer wrong"}),
                401,
                "bearer token",
            ),
            "no token": (client.post("/admin/reload"), 401, "bearer token"),
        }
        metrics = client.get("/metrics").text
    for name, (response, status, text) in cases.items():
        assert response.status_code == status, (name, response.text)
        assert text in response.json()["detail"], (name, response.json())
    assert 'mlops_serving_errors_total{kind="unknown_entity",route="/predict"} 1.0' in metrics
    assert 'mlops_serving_missing_features_total{feature="tenure_months"} 1.0' in metrics
    assert 'mlops_serving_requests_total{route="/predict",status="422"} 4.0' in metrics


def test_reload_disabled_without_a_token(registry: str) -> None:
    with (
        serve_in_thread(_settings(registry, admin_token=None, feature_repo=None)) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        response = client.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        ready = client.get("/readyz").json()
        entities = _post(client, {"entities": [{ENTITY_COLUMN: 1}]})
    assert response.status_code == 403 and "disabled" in response.json()["detail"]
    assert ready["feature_store"] == "not configured" and ready["ready"] is True
    assert entities.status_code == 400 and "feature repo" in entities.json()["detail"]


# ----------------------------------------------------------------------------- reload
def _hammer(
    url: str, body: dict[str, Any], stop: threading.Event, seen: list[tuple[int, str]]
) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        while not stop.is_set():
            response = _post(client, body)
            version = (
                response.json().get("model", {}).get("version")
                if response.status_code == 200
                else ""
            )
            seen.append((response.status_code, version))


def test_reload_under_load_switches_versions_and_fails_no_request(
    registry: str, store: Any, online: pd.DataFrame
) -> None:
    body = {"rows": _rows(online, 3)}
    seen: list[tuple[int, str]] = []
    stop = threading.Event()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with (
        serve_in_thread(_settings(registry)) as server,
        httpx.Client(base_url=server.url, timeout=60) as admin,
    ):
        workers = [
            threading.Thread(target=_hammer, args=(server.url, body, stop, seen)) for _ in range(16)
        ]
        for w in workers:
            w.start()
        time.sleep(0.5)
        first = admin.post("/admin/reload", json={"version": "2"}, headers=auth)
        time.sleep(0.5)
        second = admin.post("/admin/reload", json={}, headers=auth)
        time.sleep(0.5)
        failed = admin.post("/admin/reload", json={"version": "99"}, headers=auth)
        time.sleep(0.3)
        stop.set()
        for w in workers:
            w.join()
        after = _post(admin, body).json()
        metrics = admin.get("/metrics").text
    assert first.status_code == 200 and first.json()["model"]["version"] == "2", first.text
    assert second.status_code == 200 and second.json()["model"]["version"] == "1", second.text
    assert failed.status_code == 409 and "99" in failed.json()["detail"]
    assert after["model"]["version"] == "1"
    statuses = {status for status, _ in seen}
    assert statuses == {200}, statuses
    versions = [v for _, v in seen]
    assert "2" in versions and versions[-1] == "1" and versions[0] == "1"
    assert 'mlops_serving_reloads_total{outcome="ok"} 2.0' in metrics
    assert 'mlops_serving_reloads_total{outcome="failed"} 1.0' in metrics
    total = sum(1 for _ in seen) + 1
    assert (
        f'mlops_serving_requests_total{{route="/predict",status="200"}} {float(total)}' in metrics
    )


def test_canary_and_shadow(registry: str, store: Any, online: pd.DataFrame, tmp_path: Path) -> None:
    rows = _rows(online, 2)
    log_uri = str(tmp_path / "log")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with (
        serve_in_thread(_settings(registry, prediction_log_uri=log_uri)) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        ready = client.post(
            "/admin/reload",
            json={"canary": {"version": "2", "share": 0.5}, "shadow": {"version": "2"}},
            headers=auth,
        ).json()
        assert ready["canary"] == {"version": "2", "share": 0.5} and ready["shadow"] == {
            "version": "2"
        }
        variants = {}
        for i in range(40):
            answer = _post(client, {"rows": rows, "request_id": f"req-{i}"}).json()
            variants[f"req-{i}"] = (answer["variant"], answer["model"]["version"])
        again = _post(client, {"rows": rows, "request_id": "req-7"}).json()
        bad = client.post(
            "/admin/reload", json={"canary": {"version": "2", "share": 2}}, headers=auth
        )
        cleared = client.post(
            "/admin/reload", json={"canary": None, "shadow": None}, headers=auth
        ).json()
        metrics = client.get("/metrics").text
    assert set(variants.values()) == {("primary", "1"), ("canary", "2")}
    assert (again["variant"], again["model"]["version"]) == variants["req-7"]
    assert bad.status_code == 400 and "canary.share" in bad.json()["detail"]
    assert cleared["canary"] is None and cleared["shadow"] is None
    assert 'variant="shadow"' in metrics and 'variant="canary"' in metrics
    from mlops_provider.core.monitoring.performance_check import read_predictions

    frame, missing = read_predictions(log_uri, [datetime.now(timezone.utc).date()])
    assert not missing
    assert set(frame["variant"]) == {"primary", "canary", "shadow"}
    shadow = frame[frame["variant"] == "shadow"]
    assert set(shadow["model_version"]) == {"2"} and len(shadow) == 2 * 41


def test_alias_poll_follows_the_alias(registry: str, online: pd.DataFrame, champion: None) -> None:
    from mlops_provider.core.mlflow_target import make_client

    body = {"rows": _rows(online, 1)}
    with (
        serve_in_thread(_settings(registry, feature_repo=None, alias_poll_seconds=0.3)) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        assert _post(client, body).json()["model"]["version"] == "1"
        make_client(MlflowTarget(registry)).set_registered_model_alias("churn", "champion", "2")
        deadline = time.monotonic() + 20
        version = "1"
        while version != "2" and time.monotonic() < deadline:
            time.sleep(0.2)
            version = _post(client, body).json()["model"]["version"]
        info = client.get("/metrics").text
    assert version == "2"
    assert 'mlops_serving_model_info{alias="champion",model="churn"' in info
    assert 'variant="primary",version="2"} 1.0' in info
    served = [line for line in info.splitlines() if line.startswith("mlops_serving_model_info{")]
    assert len(served) == 1


def test_pinned_model_uri_is_not_polled(registry: str, online: pd.DataFrame) -> None:
    settings = _settings(
        registry, feature_repo=None, model_uri="models:/churn/2", alias_poll_seconds=0.2
    )
    with (
        serve_in_thread(settings) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        time.sleep(0.6)
        answer = _post(client, {"rows": _rows(online, 1)}).json()
    assert answer["model"]["version"] == "2" and answer["model"]["alias"] is None


# ----------------------------------------------------------------------------- prediction log
def test_prediction_log_reads_like_batch_predictions(
    registry: str, store: Any, online: pd.DataFrame, tmp_path: Path
) -> None:
    from mlops_provider.core.monitoring.performance_check import read_predictions

    log_uri = str(tmp_path / "predictions-online" / "churn")
    rows = _rows(online, 4)
    with (
        serve_in_thread(
            _settings(registry, prediction_log_uri=log_uri, log_flush_rows=6)
        ) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        for i in range(3):
            assert _post(client, {"rows": rows, "request_id": f"q{i}"}).status_code == 200
        assert (
            _post(
                client, {"entities": [{ENTITY_COLUMN: r[ENTITY_COLUMN]} for r in rows]}
            ).status_code
            == 200
        )
    today = datetime.now(timezone.utc).date()
    parts = sorted((Path(log_uri) / f"dt={today.isoformat()}").glob("part-*.parquet"))
    assert len(parts) >= 2 and all(len(p.stem.split("-")[2]) == 8 for p in parts)
    frame, missing = read_predictions(log_uri, [today])
    assert not missing and len(frame) == 16
    expected = [
        ENTITY_COLUMN,
        *FEATURE_COLUMNS,
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
    assert set(expected) <= set(frame.columns)
    # two flushes in one second sort by their random suffix: count, do not rely on order
    ids = frame["request_id"].value_counts().to_dict()
    assert {k: ids.pop(k) for k in ("q0", "q1", "q2")} == {"q0": 4, "q1": 4, "q2": 4}
    assert list(ids.values()) == [4]  # the entities request, under a generated id
    assert (frame["scored_at"] == frame["event_timestamp"]).all()
    assert str(frame["scored_at"].dt.tz) == "UTC"


# ----------------------------------------------------------------------------- CLI
def test_cli_starts_and_answers_readyz(registry: str) -> None:
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": registry, "MLOPS_SERVING_ADMIN_TOKEN": TOKEN}
    cmd = [
        sys.executable,
        "-m",
        "mlops_provider.serving",
        "--model",
        "churn",
        "--port",
        str(port),
        "--poll-seconds",
        "0",
    ]
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 90
        ready = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        assert ready is not None and ready.status_code == 200, ready
        assert ready.json()["model"]["version"] == "1"
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
    assert f"serving churn version 1 on http://127.0.0.1:{port}" in output


# ----------------------------------------------------------------------------- Redis
@pytest.mark.redis
def test_entities_from_the_redis_online_store(
    registry: str, home: Path, online: pd.DataFrame, redis_url: str
) -> None:
    import redis

    project = f"churn_serving_{uuid.uuid4().hex[:8]}"
    overrides = {
        "project": project,
        "online_store": {
            "type": "redis",
            "connection_string": f"{redis_url.split('://', 1)[1]},db={REDIS_DB}",
        },
    }
    fs = make_feature_store(REPO, overrides)
    feat.apply_repo(fs)
    feat.materialize(fs, utc(DAYS[0]), utc(DAYS[-1]) + timedelta(days=1))
    rows = _rows(online, 10)
    try:
        with (
            serve_in_thread(_settings(registry, feature_store_overrides=overrides)) as server,
            httpx.Client(base_url=server.url, timeout=30) as client,
        ):
            assert client.get("/readyz").json()["feature_store"] == "ok"
            by_entities = _post(
                client, {"entities": [{ENTITY_COLUMN: r[ENTITY_COLUMN]} for r in rows]}
            )
            by_rows = _post(client, {"rows": rows})
            unknown = _post(client, {"entities": [{ENTITY_COLUMN: 1}]})
        assert by_entities.status_code == 200, by_entities.text
        assert by_entities.json()["predictions"] == by_rows.json()["predictions"]
        assert unknown.status_code == 404 and "customer_id=1" in unknown.json()["detail"]
    finally:
        fs.teardown()
        redis.Redis.from_url(f"{redis_url}/{REDIS_DB}").close()
