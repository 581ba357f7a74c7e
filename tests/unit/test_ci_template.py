"""The CI templates ``init`` writes into an Airflow project: the GitHub Actions workflow is
valid against GitHub's workflow schema and runs every stage of ``ci/mlops-ci.sh``; the script
parses, passes shellcheck, refuses unknown stages, says what to do without a uv.lock, and its
stages run in a project made by ``python -m mlops_provider init``."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "include" / "ci" / "github-workflow.yml"
SCRIPT = ROOT / "include" / "ci" / "mlops-ci.sh"
SCHEMA = ROOT / "tests" / "data" / "github-workflow.schema.json"
STAGES = ("lint", "integrity", "data", "training", "run")


def _schema_errors(document: Any) -> list[str]:
    """Every error of the workflow schema, with the alternatives of ``oneOf``/``anyOf``."""
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    messages: list[str] = []
    for error in validator.iter_errors(document):
        messages.append(error.message)
        messages.extend(sub.message for sub in error.context or ())
    return messages


def _workflow(text: str | None = None) -> dict[Any, Any]:
    loaded = yaml.safe_load(WORKFLOW.read_text() if text is None else text)
    assert isinstance(loaded, dict)
    return loaded


def test_workflow_is_valid_against_the_github_actions_schema() -> None:
    jsonschema.Draft7Validator.check_schema(json.loads(SCHEMA.read_text()))
    assert _schema_errors(_workflow()) == []


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("    runs-on: ubuntu-latest\n", "", "'runs-on' is a required property"),
        ("    steps:\n", "    step:\n", "'step' was unexpected"),
        # YAML 1.1 reads a bare `on` as the boolean true: the key must be quoted
        ('"on":\n', "on:\n", "'on' is a required property"),
    ],
    ids=["without-runs-on", "misspelled-steps", "unquoted-on"],
)
def test_schema_rejects_a_broken_workflow(old: str, new: str, expected: str) -> None:
    text = WORKFLOW.read_text()
    assert text.count(old) == 1
    errors = _schema_errors(_workflow(text.replace(old, new)))
    assert any(expected in message for message in errors), errors


def _step(steps: list[dict[str, Any]], uses: str) -> tuple[int, dict[str, Any]]:
    found = [(i, s) for i, s in enumerate(steps) if str(s.get("uses", "")).startswith(uses)]
    assert len(found) == 1, f"expected one step using {uses}, got {found}"
    return found[0]


def test_workflow_installs_the_locked_environment_and_runs_each_stage() -> None:
    workflow = _workflow()
    assert set(workflow["on"]) == {"push", "pull_request"}
    (job,) = workflow["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    steps = job["steps"]

    checkout, _ = _step(steps, "actions/checkout@")
    assert steps[checkout]["uses"] == "actions/checkout@v4"
    setup, uv = _step(steps, "astral-sh/setup-uv@")
    assert uv["uses"].rsplit("@", 1)[1].lstrip("v").isdigit()  # a pinned major version
    assert uv["with"]["enable-cache"] is True
    assert uv["with"]["cache-dependency-glob"] == "uv.lock"
    assert str(uv["with"]["python-version"]) == "3.11"

    runs = [step.get("run", "").strip() for step in steps]
    install = runs.index("uv sync --frozen")
    stage_steps = [runs.index(f"ci/mlops-ci.sh {stage}") for stage in STAGES]
    assert checkout < setup < install < stage_steps[0]
    assert stage_steps == sorted(stage_steps)  # lint, integrity, data, training, run
    assert all(step.get("name") for step in steps)

    upload_at, upload = _step(steps, "actions/upload-artifact@")
    assert upload_at == len(steps) - 1 and upload["uses"] == "actions/upload-artifact@v4"
    assert upload["if"] == "always()"
    assert upload["with"]["name"] == "mlops-reports"
    reports = job["env"]["MLOPS_CI_REPORTS"]
    assert upload["with"]["path"].rstrip("/") == reports == "reports"


def test_script_parses() -> None:
    done = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert SCRIPT.read_text().startswith("#!/usr/bin/env bash\n")
    assert SCRIPT.stat().st_mode & stat.S_IXUSR, "the reference script is not executable"


def test_script_passes_shellcheck() -> None:
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("shellcheck is not installed (.ci/run installs it; CI=true: no skip)")
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    done = subprocess.run([shellcheck, str(SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def _env(**settings: str) -> dict[str, str]:
    """This environment without the script's settings, plus ``settings``."""
    dropped = ("PYTHON", "MLOPS_CI_REPORTS", "MLOPS_CI_TESTS", "UV_PROJECT_ENVIRONMENT")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(settings)
    return env


def _script(
    script: Path, *stages: str, cwd: Path, **settings: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(script), *stages],
        cwd=cwd,
        env=_env(**settings),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_an_unknown_stage_is_a_usage_error(tmp_path: Path) -> None:
    done = _script(SCRIPT, "lint", "deploy", cwd=tmp_path)
    assert done.returncode == 2
    assert "unknown stage 'deploy'" in done.stderr and "usage:" in done.stderr
    assert "install lint integrity data training run" in done.stderr
    assert "==> lint" not in done.stdout  # nothing ran


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An Airflow project made by ``python -m mlops_provider init``."""
    target = tmp_path / "project"
    done = subprocess.run(
        [sys.executable, "-m", "mlops_provider", "init", str(target)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return target


def test_install_without_uv_lock_fails_saying_what_to_do(project: Path, tmp_path: Path) -> None:
    script = project / "ci" / "mlops-ci.sh"
    done = _script(script, "install", cwd=tmp_path)
    assert done.returncode == 1
    assert f"no uv.lock in {project}" in done.stderr and "`uv lock`" in done.stderr
    assert "set PYTHON" in done.stderr
    assert "==> install: started" in done.stdout and "==> install: failed" in done.stdout

    everything = _script(script, cwd=tmp_path)  # no stage: all, the rest skipped
    assert everything.returncode == 1
    for stage in STAGES:
        assert f"{stage} " in everything.stdout and "skipped (install failed)" in everything.stdout
    assert "1 stage(s) failed: install (0 passed, 5 skipped)" in everything.stdout
    assert not (project / ".venv").exists()

    system_path = "/usr/bin:/bin"
    if shutil.which("uv", path=system_path) is None:  # a locked project on a machine without uv
        (project / "uv.lock").write_text("version = 1\n")
        no_uv = _script(script, "install", cwd=tmp_path, PATH=system_path)
        assert no_uv.returncode == 1
        assert "uv is not on PATH" in no_uv.stderr and "set PYTHON" in no_uv.stderr


def test_lint_stage_passes_in_an_initialized_project_and_names_a_broken_dag(
    project: Path, tmp_path: Path
) -> None:
    script = project / "ci" / "mlops-ci.sh"
    python = {"PYTHON": sys.executable}
    done = _script(script, "install", "lint", cwd=tmp_path, **python)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nothing to install" in done.stdout
    assert "==> install: passed" in done.stdout and "==> lint: passed" in done.stdout
    assert "baseline rules E4,E7,E9,F" in done.stdout  # the project has no ruff configuration
    assert "all 2 stage(s) passed" in done.stdout

    dag = project / "dags" / "mlops_feature_pipeline.py"
    future = "from __future__ import annotations\n"
    dag.write_text(dag.read_text().replace(future, f"{future}\nimport json\n", 1))
    broken = _script(script, "lint", cwd=tmp_path, **python)
    assert broken.returncode == 1
    assert "dags/mlops_feature_pipeline.py" in broken.stdout and "F401" in broken.stdout
    assert "==> lint: failed" in broken.stdout and "1 stage(s) failed: lint" in broken.stdout

    # the project's own ruff configuration wins over the baseline
    ruff = '[tool.ruff.lint]\nselect = ["F"]\nignore = ["F401"]\n'
    (project / "pyproject.toml").write_text(ruff)
    configured = _script(script, "lint", cwd=tmp_path, **python)
    assert configured.returncode == 0, configured.stdout + configured.stderr
    assert "baseline" not in configured.stdout


# Registers the plugin's options when the provider's pytest plugin is not installed (with it,
# they exist already): the stages' pytest command line is the plugin's.
STAND_IN_CONFTEST = """
def pytest_addoption(parser):
    try:
        parser.addoption("--mlops", action="store_true")
        parser.addoption("--mlops-reports")
    except ValueError:
        pass


def pytest_configure(config):
    for stage in ("integrity", "data", "training", "run"):
        config.addinivalue_line("markers", f"mlops_{stage}: stage {stage}")
"""

CHECKS = """
from pathlib import Path

import pytest


@pytest.mark.mlops_data
def test_data(request):
    reports = Path(request.config.getoption("--mlops-reports"))
    (reports / "data.html").write_text("<p>data checked</p>")


@pytest.mark.mlops_training
def test_training():
    assert 1 + 1 == 3, "the training check failed"


def test_unmarked():
    pass
"""


def test_check_stages_run_the_tests_of_their_marker(project: Path, tmp_path: Path) -> None:
    (project / "tests" / "conftest.py").write_text(STAND_IN_CONFTEST)
    (project / "tests" / "test_mlops_ci.py").write_text(CHECKS)
    script = project / "ci" / "mlops-ci.sh"
    settings = {"PYTHON": sys.executable, "MLOPS_CI_REPORTS": "out/reports"}

    done = _script(script, "integrity", "data", "training", cwd=tmp_path, **settings)
    assert done.returncode == 1, done.stdout + done.stderr
    # no test marked mlops_integrity: pytest's exit status 5 is a failure of the stage
    assert "no test marked mlops_integrity was collected from tests/test_mlops_ci.py" in (
        done.stderr
    )
    assert "==> integrity: failed" in done.stdout
    assert "==> data: passed" in done.stdout
    assert "==> training: failed" in done.stdout and "the training check failed" in done.stdout
    assert "2 stage(s) failed: integrity training (1 passed, 0 skipped)" in done.stdout
    # relative settings are relative to the project root, not to the current directory
    assert (project / "out" / "reports" / "data.html").is_file()
    assert not (tmp_path / "out").exists()

    missing = _script(script, "run", cwd=tmp_path, MLOPS_CI_TESTS="tests/nope.py", **settings)
    assert missing.returncode == 1
    assert "the test file tests/nope.py is missing" in missing.stderr


def test_docs_show_the_workflow_as_init_writes_it() -> None:
    docs = (ROOT / "docs" / "ci.md").read_text()
    shown = docs.split("```yaml\n", 1)[1].split("```", 1)[0]
    template = WORKFLOW.read_text()
    assert shown.strip() == template[template.index("name: mlops-ci") :].strip()
