"""The lifecycle of ``make stack-demo`` on the test stack, driven by Airflow (not ``dag.test()``),
then checked from Airflow's REST API, the MLflow server, S3 and a browser.

Runs after test_stack.py (same stack; its feature and scoring runs of the first days are simply
rerun by the lifecycle's backfills). 14 simulated days: features by one parallel backfill, the
first training triggered, scoring and monitoring day by day, retraining started by the scheduler
from the monitoring DAG's retrain-request Asset event, and the last day's scoring waiting in the
triggerer for its features.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, cast

import pytest
import requests

from stack.api import ApiRun

pytestmark = pytest.mark.system

FEATURES = "mlops_feature_pipeline"
TRAINING = "mlops_training_pipeline"
SCORING = "mlops_batch_scoring"
MONITORING = "mlops_monitoring"


def _period_runs(driver: Any, dag_id: str) -> list[dict[str, Any]]:
    days = {d.isoformat() for d in driver.timeline.days}
    runs = driver.api.runs(dag_id, run_type="backfill")
    latest: dict[str, dict[str, Any]] = {}
    for run in sorted(runs, key=lambda r: r["queued_at"] or ""):
        day = run["data_interval_start"][:10]
        if day in days:
            latest[day] = run  # a rerun of a day replaces its earlier run
    return [latest[d] for d in sorted(latest)]


def _worker_host(stack: Any) -> str:
    from stack.stack import log_file

    found = re.search(r"celery@(\S+) ready\.", log_file(stack, "celery-worker").read_text())
    assert found, "the Celery worker never reported ready"
    return found.group(1)


def test_the_per_day_table_tells_the_lifecycle(lifecycle: Any) -> None:
    records = {r.day: r for r in lifecycle.result}
    timeline = lifecycle.timeline
    assert records[timeline.incident_day.isoformat()].validation == "quarantined"
    first = records[timeline.first_training_day.isoformat()]
    assert first.training == "weekly schedule: v1 promoted", first
    scored = [r for r in lifecycle.result if r.scored_rows]
    assert scored and scored[0].day == first.day and scored[0].scored_with == "1"
    assert all(r.scored_rows and r.scored_rows > 0 for r in scored)
    assert all(r.drift_share is not None for r in scored)
    after_shift = [r for r in scored if r.day >= timeline.shift_day.isoformat()]
    assert any(r.dataset_drift for r in after_shift), "the shift was not seen as drift"
    retrains = [r for r in lifecycle.result if r.retrain_decision]
    assert retrains, "monitoring never asked for a retrain"
    assert all(r.training and r.training.startswith("retrain requested") for r in retrains)
    assert lifecycle.result[-1].champion_version == lifecycle.champion()


def test_every_run_of_the_period_finished_as_expected(lifecycle: Any) -> None:
    features = _period_runs(lifecycle, FEATURES)
    assert len(features) == len(lifecycle.timeline.days)
    incident = lifecycle.timeline.incident_day.isoformat()
    for run in features:
        expected = "failed" if run["data_interval_start"].startswith(incident) else "success"
        assert run["state"] == expected, run
    failed = ApiRun(lifecycle.api, FEATURES, next(r for r in features if r["state"] == "failed"))
    states = failed.task_states()
    assert states["validate_raw"] == "failed" and states["materialize"] == "upstream_failed"
    scored_days = [r.day for r in lifecycle.result if r.scored_rows]
    for dag_id in (SCORING, MONITORING):
        runs = _period_runs(lifecycle, dag_id)
        finished = {r["data_interval_start"][:10]: r["state"] for r in runs}
        assert [d for d in scored_days if finished.get(d) != "success"] == [], (dag_id, finished)
    for run_id in lifecycle.trainings:
        assert lifecycle.api.run(TRAINING, run_id)["state"] == "success", run_id


def test_retraining_was_started_by_the_asset_event(lifecycle: Any, stack: Any) -> None:
    api = lifecycle.api
    triggered = [api.run(TRAINING, r) for r in lifecycle.trainings]
    by_asset = [r for r in triggered if r["run_type"] == "asset_triggered"]
    assert by_asset, [r["run_type"] for r in triggered]
    run = by_asset[0]
    assert run["state"] == "success" and run["triggered_by"] == "asset", run
    moment = api.xcom(TRAINING, run["dag_run_id"], "as_of")
    assert moment["reasons"], f"the training run did not read the request's reasons: {moment}"
    worker = _worker_host(stack)
    for ti in api.task_instances(TRAINING, run["dag_run_id"]):
        if ti["state"] == "success":
            assert ti["hostname"] == worker and ti["queue"] == "default", ti


def test_the_mlflow_server_holds_the_versions_and_the_champion(lifecycle: Any, stack: Any) -> None:
    from mlflow import MlflowClient
    from mlops_common import MODEL_NAME

    from stack.stack import s3_client

    client = MlflowClient(tracking_uri=stack.mlflow_url)
    versions = client.search_model_versions(f"name = '{MODEL_NAME}'")
    promoted = [r for r in lifecycle.result if r.training and "promoted" in r.training]
    assert len(versions) >= len(promoted) >= 1
    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert champion.version == lifecycle.result[-1].champion_version
    listed = s3_client(stack).list_objects_v2(Bucket=stack.mlflow_bucket, Prefix="artifacts/")
    assert listed.get("KeyCount", 0) > 0, "no MLflow artifact in the S3 bucket"


def test_prediction_partitions_are_in_the_s3_lake(lifecycle: Any, stack: Any) -> None:
    from stack.stack import s3_client

    client = s3_client(stack)
    for record in lifecycle.result:
        if not record.scored_rows:
            continue
        prefix = f"lake/predictions/churn/dt={record.day}/"
        listed = client.list_objects_v2(Bucket=stack.lake_bucket, Prefix=prefix)
        keys = [o["Key"] for o in listed.get("Contents", [])]
        assert any(k.endswith(".parquet") for k in keys), (record.day, keys)
        assert not [k for k in keys if "/." in k], f"staging files left in {prefix}: {keys}"


def _scoring_link(lifecycle: Any) -> tuple[str, str]:
    """The last scored day's scoring run and its 'MLflow model version' extra link."""
    day = next(r.day for r in reversed(lifecycle.result) if r.scored_rows)
    run = next(r for r in _period_runs(lifecycle, SCORING) if r["data_interval_start"][:10] == day)
    path = f"/dags/{SCORING}/dagRuns/{run['dag_run_id']}/taskInstances/score/links"
    links = lifecycle.api.get(path)
    return run["dag_run_id"], str(links["extra_links"].get("MLflow model version") or "")


def _mlflow_ui_url(stack: Any, link: str) -> str:
    """Where the plugin sends the browser for an MLflow model-version link (the stack's MLflow
    server has a UI: the ``ui_url`` extra of ``mlflow_default``)."""
    from mlops_common import MODEL_NAME

    version = link.rsplit("/", 1)[1]
    return f"{stack.mlflow_url}/#/models/{MODEL_NAME}/versions/{version}"


def test_the_scoring_extra_link_opens_the_mlflow_model_version(lifecycle: Any, stack: Any) -> None:
    from mlops_common import MODEL_NAME

    _, url = _scoring_link(lifecycle)
    # the link leads to the provider's plugin on the API server ...
    assert re.fullmatch(rf"/mlops/mlflow/models/{MODEL_NAME}/versions/\d+", url), url
    version = url.rsplit("/", 1)[1]
    assert requests.get(f"{stack.api_url}{url}", timeout=30).status_code == 401
    # ... which, for a signed-in user, redirects to the MLflow UI
    resp = lifecycle.api.session.get(f"{stack.api_url}{url}", timeout=30, allow_redirects=False)
    assert resp.status_code == 302, resp.text
    assert resp.headers["location"] == _mlflow_ui_url(stack, url)
    assert requests.get(resp.headers["location"], timeout=30).status_code == 200
    api = f"{stack.mlflow_url}/api/2.0/mlflow/model-versions/get"
    got = requests.get(api, params={"name": MODEL_NAME, "version": version}, timeout=30)
    assert got.ok and got.json()["model_version"]["version"] == version, got.text


def test_the_validation_report_link_serves_the_report_from_the_s3_lake(
    lifecycle: Any, stack: Any
) -> None:
    from stack.stack import s3_client

    run = _period_runs(lifecycle, FEATURES)[-1]
    path = f"/dags/{FEATURES}/dagRuns/{run['dag_run_id']}/taskInstances/validate_raw/links"
    link = str(lifecycle.api.get(path)["extra_links"].get("Report") or "")
    day = run["data_interval_start"][:10]
    assert link == f"/mlops/reports/validation/raw/dt={day}/report.html", link
    assert requests.get(f"{stack.api_url}{link}", timeout=30).status_code == 401
    resp = lifecycle.api.session.get(f"{stack.api_url}{link}", timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "text/html; charset=utf-8"
    key = f"lake/reports/validation/raw/dt={day}/report.html"
    stored = s3_client(stack).get_object(Bucket=stack.lake_bucket, Key=key)["Body"].read()
    assert resp.content == stored


def test_the_connection_secret_is_in_no_log_or_xcom_of_the_lifecycle(
    lifecycle: Any, stack: Any
) -> None:
    import psycopg2

    from .conftest import SECRET_SENTINEL

    files = [p for p in (stack.airflow_home / "logs").rglob("*") if p.is_file()]
    assert len(files) > 100, "the lifecycle left (nearly) no task log"
    assert not [p for p in files if SECRET_SENTINEL.encode() in p.read_bytes()]
    conn = psycopg2.connect(stack.pg_uri(stack.airflow_db, "postgresql"))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*), count(*) FILTER (WHERE value::text LIKE %s) FROM xcom",
                        (f"%{SECRET_SENTINEL}%",))  # fmt: skip
            total, leaked = cast(tuple[int, int], cur.fetchone())
    finally:
        conn.close()
    assert total > 100 and leaked == 0, (total, leaked)


# ---------------------------------------------------------------- in a browser


@pytest.fixture
def stack_page(stack: Any, lifecycle: Any) -> Iterator[Any]:
    """Chromium logged in to the test stack's UI (not the throw-away UI of test_ui.py)."""
    from playwright.sync_api import sync_playwright

    from .test_ui import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS, _require_browser, login
    from .ui_server import UiServer

    _require_browser()
    server = UiServer(stack.api_url, stack.admin_user, stack.admin_password, stack.home)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            login(page, server)
            yield page
        finally:
            browser.close()


def test_browser_follows_the_model_version_link_of_a_finished_scoring_task(
    stack_page: Any, lifecycle: Any, stack: Any
) -> None:
    from playwright.sync_api import expect

    from .test_ui import TIMEOUT_MS, screenshot

    run_id, url = _scoring_link(lifecycle)
    page = stack_page
    page.goto(f"{stack.api_url}/dags/{SCORING}/runs/{run_id}/tasks/score/details")
    link = page.get_by_role("link", name="MLflow model version", exact=True)
    expect(link).to_be_visible(timeout=TIMEOUT_MS)
    assert link.get_attribute("href") == url
    screenshot(page, "scoring-task-links")
    # a same-origin link: the UI opens it in the same tab (accept a new tab too); the plugin
    # redirects the signed-in browser to the MLflow UI
    pages_before = len(page.context.pages)
    link.click()
    page.wait_for_timeout(1_000)
    mlflow_page = page.context.pages[-1] if len(page.context.pages) > pages_before else page
    target = _mlflow_ui_url(stack, url)
    mlflow_page.wait_for_url(f"{stack.mlflow_url}/**", timeout=TIMEOUT_MS)
    mlflow_page.wait_for_load_state()
    assert mlflow_page.url == target
    version = url.rsplit("/", 1)[1]
    expect(mlflow_page.get_by_text(f"Version {version}").first).to_be_visible(timeout=60_000)
    screenshot(mlflow_page, "mlflow-model-version")


def test_browser_shows_the_graph_of_a_finished_training_run(
    stack_page: Any, lifecycle: Any, stack: Any
) -> None:
    from playwright.sync_api import expect

    from .test_ui import TIMEOUT_MS, screenshot

    run_id = lifecycle.trainings[-1]
    page = stack_page
    page.goto(f"{stack.api_url}/dags/{TRAINING}/runs/{run_id}")
    show_graph = page.get_by_role("button", name="Show Graph (Press g)")
    expect(show_graph).to_be_visible(timeout=TIMEOUT_MS)
    show_graph.click()
    graph = page.locator(".react-flow")
    for task_id in ("as_of", "train", "evaluate", "promote"):
        expect(graph.get_by_text(task_id, exact=True)).to_be_visible(timeout=TIMEOUT_MS)
    page.get_by_role("button", name="Collapse Details Panel").click()
    page.get_by_role("button", name="Fit View").click()
    page.wait_for_timeout(1_000)
    shot = screenshot(page, "lifecycle-run-graph", doc_name="lifecycle-run-graph.png")
    assert shot.stat().st_size > 10_000
    assert lifecycle.api.run(TRAINING, run_id)["state"] == "success"
