"""The realtime service of the test stack (``mlops-serving``) after the lifecycle: deployed by the
asset-triggered ``mlops_deployment`` runs, answering with the registry's champion, its features
read from the Redis online store, and its metrics (and the API server's ``/mlops/metrics``)
agreeing with the MLflow registry and the monitoring runs.

Reuses the session's lifecycle (conftest.py): no run of its own beyond a few requests.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests

pytestmark = pytest.mark.system

DEPLOYMENT = "mlops_deployment"
MODEL = "churn"


def _champion(stack: Any) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=stack.mlflow_url).get_model_version_by_alias(MODEL, "champion")


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    from prometheus_client.parser import text_string_to_metric_families

    return [
        (s.name, dict(s.labels), float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def _value(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(v for n, lab, v in samples if n == name and labels.items() <= lab.items())


def _scrape(stack: Any) -> list[tuple[str, dict[str, str], float]]:
    resp = requests.get(f"{stack.serving_url}/metrics", timeout=30)
    assert resp.status_code == 200, resp.text
    return _samples(resp.text)


def _customers(lifecycle: Any, count: int) -> list[int]:
    day = lifecycle.timeline.days[-1]
    return [int(c) for c in lifecycle._simulator.activity(day)["customer_id"].unique()[:count]]


def test_the_model_asset_started_deployments_that_validated_and_deployed(lifecycle: Any) -> None:
    assert lifecycle.deployments, "no promotion started a deployment run"
    promoted = [r for r in lifecycle.result if r.training and r.training.endswith("promoted")]
    assert len(lifecycle.deployments) == len(promoted)
    assert set(lifecycle.deployed) == set(lifecycle.deployments), "a deployment was not awaited"
    first_id = next(iter(lifecycle.deployments))
    first_day = lifecycle.deployments[first_id].isoformat()
    assert first_day == lifecycle.timeline.first_training_day.isoformat()
    run = lifecycle.api.run(DEPLOYMENT, first_id)
    assert run["run_type"] == "asset_triggered" and run["triggered_by"] == "asset", run
    for run_id, outcome in lifecycle.deployed.items():
        assert outcome["state"] == "success", (run_id, outcome)
        tasks = outcome["tasks"]
        assert tasks["service_configured"] == "success" and tasks["deploy"] == "success", tasks
        validated, deployed = outcome["validate_serving"], outcome["deploy"]
        assert validated["status"] == "valid" and validated["passed"], validated
        assert validated["rows"] > 0 and validated["mismatches"] == 0, validated
        # the poll is off (stack.py): only a deployment moves the service, so the first one
        # finds nothing served and deploys; a later one may find its version already deployed
        # by an earlier run that resolved the same champion
        assert deployed["status"] in ("deployed", "unchanged"), deployed
        assert deployed["version"] == validated["version"], (deployed, validated)
    first = lifecycle.deployed[first_id]["deploy"]
    assert first["status"] == "deployed" and first["previous_version"] is None, first


def test_the_service_serves_the_registry_champion(lifecycle: Any, stack: Any) -> None:
    champion = _champion(stack)
    resp = requests.get(f"{stack.serving_url}/readyz", timeout=30)
    assert resp.status_code == 200, resp.text
    ready = resp.json()
    assert ready["ready"] and ready["feature_store"] == "ok", ready
    assert ready["model"]["name"] == MODEL and ready["model"]["version"] == champion.version
    assert ready["model"]["run_id"] == champion.run_id
    last = lifecycle.deployed[list(lifecycle.deployments)[-1]]
    assert last["deploy"]["version"] == champion.version
    served = [r.served_versions for r in lifecycle.result if r.served_versions]
    assert served, "the lifecycle sent the service no request"
    assert all(r.service_errors == 0 for r in lifecycle.result if r.service_requests)


def test_predict_reads_the_entities_features_from_the_redis_online_store(
    lifecycle: Any, stack: Any, monkeypatch: Any
) -> None:
    """An ``entities`` request answers like a ``rows`` request with the features this test reads
    itself from the stack's Feast online store (Redis, S3 registry)."""
    import json

    from mlflow import MlflowClient

    from mlops_provider.core.feast_config import make_feature_store
    from stack import stack as native

    champion = _champion(stack)
    customers = _customers(lifecycle, 5)
    body = {"entities": [{"customer_id": c} for c in customers], "request_id": "systest-entities"}
    resp = requests.post(f"{stack.serving_url}/predict", json=body, timeout=30)
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["model"]["version"] == champion.version and answer["variant"] == "primary"
    assert [p["customer_id"] for p in answer["predictions"]] == customers

    env = native.stack_environment(stack)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                 "AWS_ENDPOINT_URL_S3", "FEAST_S3_ENDPOINT_URL", "MLOPS_HOME"):  # fmt: skip
        monkeypatch.setenv(name, env[name])
    tags = MlflowClient(tracking_uri=stack.mlflow_url).get_run(champion.run_id).data.tags
    refs = json.loads(tags["mlops.feature_refs"])
    store = make_feature_store(str(native.FEATURE_REPO), native.feast_overrides(stack))
    online = store.get_online_features(
        features=refs, entity_rows=[{"customer_id": c} for c in customers]
    ).to_dict()
    names = [r.split(":", 1)[1] for r in refs]
    rows = [{"customer_id": c, **{n: online[n][i] for n in names}} for i, c in enumerate(customers)]
    assert all(v is not None for row in rows for v in row.values()), rows
    by_rows = requests.post(f"{stack.serving_url}/predict", json={"rows": rows}, timeout=30)
    assert by_rows.status_code == 200, by_rows.text
    assert by_rows.json()["predictions"] == answer["predictions"]


def test_service_metrics_agree_with_the_registry_and_the_traffic(
    lifecycle: Any, stack: Any
) -> None:
    champion = _champion(stack)
    before = _scrape(stack)
    info = [lab for n, lab, v in before if n == "mlops_serving_model_info" and v == 1]
    assert info == [
        {
            "model": MODEL,
            "version": champion.version,
            "run_id": champion.run_id,
            "alias": "",  # the deployment's reload names the version: no alias is served
            "variant": "primary",
        }
    ], info
    # every reload was a deployment (the poll is off, no rollback happened)
    deployed = [d for d in lifecycle.deployed.values() if d["deploy"]["status"] == "deployed"]
    assert _value(before, "mlops_serving_reloads_total", outcome="ok") == len(deployed)
    assert _value(before, "mlops_serving_reloads_total", outcome="failed") == 0
    answered = sum((r.service_requests or 0) for r in lifecycle.result)
    assert (
        _value(before, "mlops_serving_requests_total", route="/predict", status="200") >= answered
    )
    assert _value(before, "mlops_serving_errors_total", route="/predict") == 0

    customers = _customers(lifecycle, 3)
    for c in customers:
        resp = requests.post(
            f"{stack.serving_url}/predict", json={"entities": [{"customer_id": c}]}, timeout=30
        )
        assert resp.status_code == 200, resp.text
    unknown = requests.post(
        f"{stack.serving_url}/predict", json={"entities": [{"customer_id": -1}]}, timeout=30
    )
    assert unknown.status_code == 404, unknown.text
    after = _scrape(stack)

    def grew(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert grew("mlops_serving_requests_total", route="/predict", status="200") == 3
    assert grew("mlops_serving_requests_total", route="/predict", status="404") == 1
    assert grew("mlops_serving_errors_total", route="/predict", kind="unknown_entity") == 1
    served = {"model": MODEL, "version": champion.version, "variant": "primary"}
    assert grew("mlops_serving_predictions_total", **served) == 3
    assert grew("mlops_serving_prediction_probability_count", **served) == 3
    assert grew("mlops_serving_request_duration_seconds_count", route="/predict") == 4


def test_the_api_server_exports_the_champion_and_the_latest_drift(
    lifecycle: Any, stack: Any
) -> None:
    from mlflow import MlflowClient

    from stack import stack as native

    token = native.stack_environment(stack)["MLOPS_METRICS_TOKEN"]
    url = f"{stack.api_url}/mlops/metrics"
    assert requests.get(url, timeout=60).status_code == 401
    resp = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert resp.status_code == 200, resp.text
    samples = _samples(resp.text)
    champion = _champion(stack)
    info = [lab for n, lab, v in samples if n == "mlops_champion_version_info" and v == 1]
    assert info == [
        {
            "model": MODEL,
            "alias": "champion",
            "version": champion.version,
            "run_id": champion.run_id,
        }
    ], info
    served = requests.get(f"{stack.serving_url}/readyz", timeout=30).json()["model"] or {}
    assert served.get("version") == info[0]["version"]
    # the newest finished drift run of the monitoring DAG, read from MLflow
    client = MlflowClient(tracking_uri=stack.mlflow_url)
    experiment = client.get_experiment_by_name("mlops-monitoring")
    assert experiment is not None
    (run,) = client.search_runs(
        [experiment.experiment_id],
        filter_string=(
            "tags.`mlops.monitoring_kind` = 'drift' and tags.`mlops.dag_id` = 'mlops_monitoring'"
            f" and tags.`mlops.reference_model_name` = '{MODEL}' and attributes.status = 'FINISHED'"
        ),
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    check = f"mlops_monitoring.{run.data.tags['mlops.task_id']}"
    exported = [(lab, v) for n, lab, v in samples if n == "mlops_drift_share"]
    assert [lab for lab, _ in exported if lab.get("check") == check] == [
        {"model": MODEL, "check": check}
    ], exported
    assert _value(samples, "mlops_drift_share", model=MODEL, check=check) == pytest.approx(
        run.data.metrics["drift_share"]
    )
    last_monitored = [r for r in lifecycle.result if r.drift_share is not None][-1]
    assert run.data.metrics["drift_share"] == pytest.approx(last_monitored.drift_share, abs=1e-4)


def test_the_serving_token_is_in_no_task_log_or_xcom(lifecycle: Any, stack: Any) -> None:
    import psycopg2

    from stack import stack as native

    token = native.connections(stack)["mlops_serving_default"]["password"]
    assert token and not token.startswith("<"), "the stack generated no serving token"
    logs = [p for p in (stack.airflow_home / "logs").rglob("*") if p.is_file()]
    deploy_logs = [p for p in logs if f"dag_id={DEPLOYMENT}" in str(p)]
    assert deploy_logs, "the deployment runs left no task log"
    assert not [p for p in logs if token.encode() in p.read_bytes()]
    conn = psycopg2.connect(stack.pg_uri(stack.airflow_db, "postgresql"))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM xcom WHERE value::text LIKE %s", (f"%{token}%",))
            row = cur.fetchone()
    finally:
        conn.close()
    assert row is not None and row[0] == 0
