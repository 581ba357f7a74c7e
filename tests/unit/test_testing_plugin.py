"""The pytest plugin (entry point ``pytest11``) is inert unless a test opts in, and Airflow
never loads it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import os, sys
import pytest

ENV_BEFORE = dict(os.environ)


def test_untouched():
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    assert env == ENV_BEFORE
    loaded = sorted(m for m in sys.modules if m.startswith("mlops_provider"))
    assert loaded == ["mlops_provider", "mlops_provider.testing", "mlops_provider.testing.plugin"]


def test_fixture_without_opting_in(mlops):
    pass


@pytest.mark.mlops
def test_fixture_with_the_marker(mlops):
    from pathlib import Path

    assert mlops.project_root == Path(__file__).resolve().parents[1]
    assert mlops.dags_folder == mlops.project_root / "dags"
    assert mlops.path("include/x.json") == mlops.project_root / "include" / "x.json"


@pytest.mark.mlops_data
def test_a_stage_marker_opts_in_too(mlops):
    assert mlops.reports_dir.is_dir()
"""


def _pytest(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "PYTEST_"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "dags").mkdir()
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_probe.py").write_text(PROBE)
    return tmp_path


def test_opt_in_by_marker_only(project: Path) -> None:
    run = _pytest(project, "tests/test_probe.py")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "3 passed, 1 error" in run.stdout, run.stdout
    assert "test_fixture_without_opting_in" in run.stdout
    assert "without opting in: mark it @pytest.mark.mlops" in run.stdout
    # (the project was found from pytest's rootdir, tests/ without a configuration file, up)


def test_opt_in_for_the_whole_run(project: Path, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    run = _pytest(
        project, "tests/test_probe.py", "--mlops", "--mlops-reports", str(reports),
        "-k", "not untouched",
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert reports.is_dir()


def test_markers_are_registered_for_strict_markers(project: Path) -> None:
    run = _pytest(project, "--markers")
    for marker in ("mlops:", "mlops_integrity:", "mlops_data:", "mlops_training:", "mlops_run:"):
        assert f"@pytest.mark.{marker}" in run.stdout


def test_airflow_never_loads_the_plugin() -> None:
    code = (
        "import sys\n"
        "from airflow.providers_manager import ProvidersManager\n"
        "from airflow import plugins_manager\n"
        "ProvidersManager().initialize_providers_list()\n"
        "plugins_manager.ensure_plugins_loaded()\n"
        "loaded = [m for m in sys.modules if m.startswith('mlops_provider.testing')]\n"
        "assert 'mlops_provider' in sys.modules and not loaded, loaded\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
