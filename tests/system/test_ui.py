"""The Airflow UI with the provider installed, driven by a real browser (Playwright + chromium).

Starts a throw-away api-server + dag-processor (see ``ui_server.py``), logs in through the login
form, and checks what a user sees: the reference DAGs, the provider's relabelled MLflow
connection form and its Feast form, and a DAG's graph. Screenshots go to ``.screenshots/ui/``
(git-ignored); ``MLOPS_UPDATE_DOC_IMAGES=1`` also copies the DAG list and graph to ``docs/images/``.

Debian's chromium is driven through ``executable_path``; no browser is ever downloaded. Without
``/usr/bin/chromium`` the tests skip loudly on a user's machine and fail under ``CI=true``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.system.ui_server import REFERENCE_DAGS, UiServer, airflow_env, airflow_ui

pytestmark = [pytest.mark.system, pytest.mark.ui]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("MLOPS_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = ROOT / ".screenshots" / "ui"
DOC_IMAGES = ROOT / "docs" / "images"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TIMEOUT_MS = 30_000


def _require_browser() -> None:
    """Skip loudly without chromium/Playwright on a user's machine; fail under CI."""
    problem = None
    if not CHROMIUM.exists():
        problem = f"{CHROMIUM} is missing (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is not installed"
    if problem is None:
        return
    if IN_CI:
        pytest.fail(f"browser test cannot run: {problem} (CI=true: a failure, not a skip)")
    pytest.skip(f"SKIPPED browser test of the Airflow UI: {problem}")


def screenshot(page: Any, name: str, doc_name: str | None = None) -> Path:
    """Save a screenshot to the ignored folder; copy it to docs/images/ when asked to."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    if doc_name and os.environ.get("MLOPS_UPDATE_DOC_IMAGES") == "1":
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOC_IMAGES / doc_name)
    return path


@pytest.fixture(scope="module")
def ui() -> Iterator[UiServer]:
    """A throw-away Airflow UI; every process it starts is stopped, also on failure."""
    _require_browser()
    home = Path(tempfile.mkdtemp(prefix="mlops-ui-"))
    try:
        with airflow_ui(home / "airflow") as server:
            yield server
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def browser(ui: UiServer) -> Iterator[Any]:
    """Debian's chromium with a fresh user-data dir (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    profile = Path(tempfile.mkdtemp(prefix="mlops-chromium-"))
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(profile),
                executable_path=str(CHROMIUM),
                args=CHROMIUM_ARGS,
                headless=True,
                viewport={"width": 1400, "height": 900},
            )
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def login(page: Any, ui: UiServer) -> None:
    """Log in through the UI's login form as the admin user."""
    from playwright.sync_api import expect

    page.goto(f"{ui.url}/")
    page.wait_for_url("**/auth/login**", timeout=TIMEOUT_MS)
    page.get_by_label("Username").fill(ui.username)
    page.get_by_label("Password").fill(ui.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{ui.url}/", timeout=TIMEOUT_MS)
    expect(page.get_by_role("button", name="Admin")).to_be_visible(timeout=TIMEOUT_MS)


@pytest.fixture
def page(browser: Any, ui: UiServer) -> Iterator[Any]:
    """A logged-in page; cookies are cleared first so every test logs in through the form."""
    browser.clear_cookies()
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        login(page, ui)
        yield page
    finally:
        page.close()


def _show_dag_list(page: Any, ui: UiServer) -> None:
    """Open the DAG list, reloading until the DAG processor has serialized all the DAGs."""
    from playwright.sync_api import expect

    for _ in range(30):
        page.goto(f"{ui.url}/dags")
        count = page.get_by_text(f"{len(REFERENCE_DAGS)} Dags", exact=True)
        try:
            expect(count).to_be_visible(timeout=4_000)
            return
        except AssertionError:
            page.wait_for_timeout(2_000)
    expect(page.get_by_text(f"{len(REFERENCE_DAGS)} Dags", exact=True)).to_be_visible()


def test_login_and_dag_list_shows_the_reference_dags(page: Any, ui: UiServer) -> None:
    from playwright.sync_api import expect

    _show_dag_list(page, ui)
    for dag_id in REFERENCE_DAGS:
        expect(page.get_by_role("link", name=dag_id, exact=True)).to_be_visible()
    expect(page.get_by_text("mlops.retrain-request")).to_be_visible()
    assert screenshot(page, "dag-list", doc_name="dag-list.png").stat().st_size > 10_000


def _add_connection_dialog(page: Any, ui: UiServer, conn_type: str) -> Any:
    """Admin > Connections > Add Connection, with ``conn_type`` picked in the type select."""
    from playwright.sync_api import expect

    page.get_by_role("button", name="Admin").click()
    page.get_by_role("menuitem", name="Connections").click()
    page.wait_for_url(f"{ui.url}/connections")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading", name="Add Connection")).to_be_visible()
    dialog.get_by_role("combobox", name="Connection Type").fill(conn_type)
    page.get_by_role("option", name=conn_type, exact=True).click()
    return dialog


MLFLOW_FIELDS = {
    "Tracking server host or URI": "mlflow.example.com, or a full URI like sqlite:////data/mlflow.db",
    "Username (basic auth)": "leave empty for token auth",
    "Password or token": "basic-auth password, or a bearer token if login is empty",
    "Port": "5000",
    "Scheme (http or https)": "http",
}

MLFLOW_EXTRA_FIELDS = (
    "Tracking URI",
    "Registry URI",
    "Artifact location",
    "UI URL",
    "Skip TLS verification",
)


def test_mlflow_connection_form_shows_the_relabelled_fields(page: Any, ui: UiServer) -> None:
    from playwright.sync_api import expect

    dialog = _add_connection_dialog(page, ui, "MLflow")
    for label, placeholder in MLFLOW_FIELDS.items():
        field = dialog.get_by_label(label, exact=True)
        expect(field).to_be_visible()
        expect(field).to_have_attribute("placeholder", placeholder)
    for default_label in ("Host", "Login", "Password", "Schema"):
        expect(dialog.get_by_label(default_label, exact=True)).to_have_count(0)
    screenshot(page, "connection-mlflow")
    dialog.get_by_role("button", name="Extra Fields", exact=True).click()
    for extra in MLFLOW_EXTRA_FIELDS:
        expect(dialog.get_by_text(extra, exact=True)).to_be_visible()
    screenshot(page, "connection-mlflow-extra")


def test_feast_connection_form_hides_the_standard_fields(page: Any, ui: UiServer) -> None:
    from playwright.sync_api import expect

    dialog = _add_connection_dialog(page, ui, "Feast")
    dialog.get_by_role("button", name="Extra Fields", exact=True).click()
    for extra in ("Feature repo path", "feature_store.yaml overrides (YAML/JSON)"):
        expect(dialog.get_by_text(extra, exact=True)).to_be_visible()
    for hidden in ("Host", "Login", "Password", "Port", "Schema"):
        expect(dialog.get_by_label(hidden, exact=True)).to_have_count(0)
    expect(dialog.locator("input[name='host']")).to_have_count(0)
    screenshot(page, "connection-feast")


def test_dag_graph_view_shows_the_training_pipeline(page: Any, ui: UiServer) -> None:
    from playwright.sync_api import expect

    _show_dag_list(page, ui)
    page.get_by_role("link", name="mlops_training_pipeline", exact=True).click()
    page.wait_for_url(f"{ui.url}/dags/mlops_training_pipeline**")
    page.get_by_role("button", name="Show Graph (Press g)").click()
    page.get_by_role("button", name="Collapse Details Panel").click()
    graph = page.locator(".react-flow")
    for task_id in ("as_of", "train", "evaluate", "gate", "promote", "close_retrain_request"):
        expect(graph.get_by_text(task_id, exact=True)).to_be_visible()
    page.get_by_role("button", name="Fit View").click()
    page.wait_for_timeout(1_000)
    screenshot(page, "dag-graph", doc_name="dag-graph.png")


def _run_report_task(ui: UiServer) -> dict[str, Any]:
    """One real validation task run into the UI's database (tests/system/ui_report_task.py)."""
    port = int(ui.url.rsplit(":", 1)[1])
    env = airflow_env(ui.home, port, ui.home / "simple_auth_manager_passwords.json")
    out = subprocess.run(
        [sys.executable, "-m", "tests.system.ui_report_task"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_report_extra_link_opens_the_report_through_the_api_server(page: Any, ui: UiServer) -> None:
    """The task's "Report" link leads to the provider's plugin on the API server, which serves
    the HTML report the task wrote to the (local) lake, behind the UI's login."""
    import requests
    from playwright.sync_api import expect

    task = _run_report_task(ui)
    link = str(task["link"])
    assert link.startswith("/mlops/reports/validation/") and link.endswith("/report.html"), link
    # without a session the plugin refuses (a browser would be sent to the login page)
    assert requests.get(f"{ui.url}{link}", timeout=30).status_code == 401
    page.goto(f"{ui.url}/dags/{task['dag_id']}/runs/{task['run_id']}/tasks/validate/details")
    report_link = page.get_by_role("link", name="Report", exact=True)
    expect(report_link).to_be_visible(timeout=TIMEOUT_MS)
    assert report_link.get_attribute("href") == link
    screenshot(page, "validation-task-report-link")
    # same origin: the UI opens it in the same tab; accept a new tab too
    pages_before = len(page.context.pages)
    report_link.click()
    page.wait_for_timeout(1_000)
    opened = page.context.pages[-1] if len(page.context.pages) > pages_before else page
    opened.wait_for_url(f"{ui.url}{link}", timeout=TIMEOUT_MS)
    expect(opened.get_by_role("heading", level=1)).to_contain_text("Validation")
    expect(opened.get_by_role("heading", name="All expectations")).to_be_visible()
    html = Path(task["report_uri"]).read_text()
    assert opened.title() and opened.title() in html
    screenshot(opened, "validation-report")
