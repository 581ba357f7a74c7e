"""The demo's final champion, reproduced from its training records with the command a user runs.

The ``lifecycle`` fixture (tests/dags/conftest.py) runs the demo once per session. The command
runs in its own process with the demo's environment (its AIRFLOW_HOME: the embedded MLflow
store, the Feast registry and the data lake under ``$AIRFLOW_HOME/mlops``). What it reports is
checked against the MLflow store itself: the champion's recorded metrics.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.dags, pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _reproduce(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_", "AIRFLOW__"))}
    for name in ("MLOPS_HOME", "MLOPS_DATA_ROOT", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(name, None)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "MLOPS_PROJECT_ROOT": str(ROOT),
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "provider")]),
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "mlops_provider", "reproduce", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_final_champion_of_the_demo_is_reproduced(lifecycle: dict) -> None:
    from mlops_provider.core.mlflow_target import MlflowTarget, make_client

    home: Path = lifecycle["home"]
    champion = lifecycle["records"][-1]["champion_version"]
    proc = _reproduce(home, "churn@champion", "--json")
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["verdict"] == "reproduced" and report["reasons"] == []
    assert report["model"]["name"] == "churn" and report["model"]["version"] == champion

    client = make_client(MlflowTarget(f"sqlite:///{home / 'mlops' / 'mlflow' / 'mlflow.db'}"))
    recorded = client.get_run(report["model"]["run_id"]).data.metrics
    metrics = {m["name"]: m for m in report["metrics"]}
    assert {"roc_auc", "log_loss", "train_roc_auc"} <= set(metrics)
    for name, value in recorded.items():
        if name in metrics:
            assert metrics[name]["recorded"] == value
            assert abs(metrics[name]["reproduced"] - value) <= report["tolerance"], name
    assert all(m["matches"] for m in report["metrics"])
    assert report["predictions"] and all(p["matches"] for p in report["predictions"])
    assert report["predictions"][-1]["against"] == f"model models:/churn/{champion}"
    assert all(lib["same"] for lib in report["libraries"])

    inputs = {i["role"]: i for i in report["inputs"]}
    assert inputs["training set"]["status"] == "same"
    assert all(i["status"] in ("same", "unrecorded") for i in report["inputs"])
    if "entity data (training)" in inputs:  # the training DAG records its entity data
        assert report["rebuild"]["status"] == "reproduced", report["rebuild"]
        assert report["refit_on"].startswith("the rebuilt training set")
    else:
        assert report["rebuild"]["status"] == "skipped"

    text = _reproduce(home, f"churn/{champion}", "--no-rebuild")
    assert text.returncode == 0, text.stdout[-3000:] + text.stderr[-3000:]
    assert text.stdout.startswith(f"Reproduce churn version {champion} (run ")
    assert "REPRODUCED" in text.stdout.splitlines()[0]
