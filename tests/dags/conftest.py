"""The simulated lifecycle, run once per session and shared by the tests that read what it left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

LIFECYCLE_ARGS = ["--days", "22", "--shift-day", "9", "--first-training-day", "5"]
"""The demo runner's timeline in the tests (include/demo.py arguments): long enough for the
predictions of the last champion promoted after the shift to mature (the retraining gain)."""


@pytest.fixture(scope="session")
def lifecycle(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("lifecycle") / "airflow"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__"))}
    env.pop("MLOPS_HOME", None)
    # this checkout's provider first (an installed one may be another checkout's)
    path = os.pathsep.join([str(ROOT), str(ROOT / "provider")])
    env.update({"AIRFLOW_HOME": str(home), "PYTHONPATH": path})
    args = LIFECYCLE_ARGS
    proc = subprocess.run(
        [sys.executable, "-m", "include.demo", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    lake = home / "mlops" / "data"
    records = json.loads((lake / "reports" / "lifecycle.json").read_text())
    return {"records": records, "lake": lake, "home": home, "stdout": proc.stdout}
