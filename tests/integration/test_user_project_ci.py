"""A user's Airflow project made by ``python -m mlops_provider init`` runs its CI as a user
would: the plain script ``ci/mlops-ci.sh`` (the workflow's steps), pytest with the provider's
plugin, in a subprocess, in a throw-away directory. Every check passes on the reference
project; three broken variants each fail, naming the problem:

- a DAG that imports a heavy library at parse time (integrity);
- a sample whose schema broke (data);
- a training whose metric falls under the floor (training).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("lint", "integrity", "data", "training", "run")
RAW_SAMPLE = Path("include/sample_data/raw/dt=2026-01-01/activity.parquet")
TRAINING_SAMPLE = Path("include/sample_data/training_set.parquet")

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _user_env() -> dict[str, str]:
    """A user's shell: none of this test session's Airflow, provider or MLflow settings."""
    prefixes = ("AIRFLOW", "MLOPS_", "MLFLOW_", "PYTEST_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.pop("PYTHONPATH", None)
    return env


def _init(target: Path) -> Path:
    run = subprocess.run(
        [sys.executable, "-m", "mlops_provider", "init", str(target)],
        env=_user_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    for rel in ("tests/test_mlops_ci.py", "ci/mlops-ci.sh", ".github/workflows/mlops-ci.yml"):
        assert (target / rel).is_file(), rel
    return target


def _ci(project: Path, *stages: str) -> subprocess.CompletedProcess[str]:
    env = _user_env()
    env["PYTHON"] = sys.executable  # the environment this suite runs in, as installed
    env["HOME"] = str(project / ".home")  # nothing of the machine's ~/airflow either
    return subprocess.run(
        ["bash", "ci/mlops-ci.sh", *stages],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )


def _output(run: subprocess.CompletedProcess[str]) -> str:
    return run.stdout + run.stderr


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("user-projects")


def test_every_check_passes_on_the_reference_project(workspace: Path) -> None:
    project = _init(workspace / "clean")
    run = _ci(project)
    out = _output(run)
    assert run.returncode == 0, out[-6000:]
    for stage in STAGES:
        assert f"{stage}: passed" in out, f"stage {stage} did not pass:\n{out[-6000:]}"
    reports = project / "reports"
    assert (reports / "integrity.html").is_file()
    for suite in ("churn_raw", "churn_training_set", "churn_predictions"):
        assert (reports / "data" / suite / "report.html").is_file(), suite
    assert (reports / "training" / "mlops_training_pipeline.train.html").is_file()
    assert not (project / ".home" / "airflow").exists()


def _fails(project: Path, stage: str) -> str:
    """Run one stage, which must fail; its output."""
    run = _ci(project, stage)
    out = _output(run)
    assert run.returncode != 0, out[-4000:]
    assert f"{stage}: failed" in out, out[-4000:]
    return out


def _edit_sample(path: Path, column: str, edit: Callable[[Any], Any]) -> None:
    """Replace one column of a parquet sample with ``edit(column)``."""
    import pandas as pd

    frame = pd.read_parquet(path)
    frame[column] = edit(frame[column])
    frame.to_parquet(path, index=False)


def test_a_heavy_import_at_parse_time_fails_the_integrity_check(workspace: Path) -> None:
    project = _init(workspace / "heavy-import")
    dag = project / "dags" / "mlops_batch_scoring.py"
    marker = "from __future__ import annotations\n"
    dag.write_text(dag.read_text().replace(marker, marker + "\nimport pandas  # noqa: F401\n", 1))
    out = _fails(project, "integrity")
    assert "[heavy_import] mlops_batch_scoring.py" in out and "pandas" in out, out[-4000:]


def test_a_schema_break_in_the_sample_fails_the_data_check(workspace: Path) -> None:
    project = _init(workspace / "schema-break")
    _edit_sample(project / RAW_SAMPLE, "monthly_charges", lambda c: c.map(lambda v: f"${v:.2f}"))
    out = _fails(project, "data")
    assert "fails suite 'churn_raw'" in out, out[-4000:]
    assert "expect_column_values_to_be_in_type_list(monthly_charges)" in out, out[-4000:]


def test_a_training_under_the_floor_fails_the_training_check(workspace: Path) -> None:
    project = _init(workspace / "under-the-floor")
    shuffled = lambda c: c.sample(frac=1.0, random_state=5).to_numpy()  # noqa: E731
    _edit_sample(project / TRAINING_SAMPLE, "churned", shuffled)
    out = _fails(project, "training")
    assert "the small training run of mlops_training_pipeline.train" in out, out[-4000:]
    assert re.search(r"roc_auc = 0\.\d+ is under the floor 0\.7", out), out[-4000:]
