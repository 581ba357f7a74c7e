"""The provider registers with Airflow and every module it lists exists."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_provider.get_provider_info import get_provider_info

ROOT = Path(__file__).resolve().parents[2]


def test_provider_info_lists_importable_modules_and_classes() -> None:
    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-mlops"
    for kind in ("hooks", "operators", "sensors", "triggers"):
        modules = [m for entry in info[kind] for m in entry["python-modules"]]
        assert modules, kind
        for module in modules:
            importlib.import_module(module)
    for dotted in info["extra-links"] + [c["hook-class-name"] for c in info["connection-types"]]:
        module, _, name = dotted.rpartition(".")
        assert hasattr(importlib.import_module(module), name), dotted
    conn_types = {c["connection-type"] for c in info["connection-types"]}
    assert conn_types == {"mlflow", "feast"}


def test_provider_info_lists_every_public_module() -> None:
    """A module added under hooks/, operators/, sensors/ or triggers/ is registered too."""
    info = get_provider_info()
    package = ROOT / "provider" / "mlops_provider"
    for kind in ("hooks", "operators", "sensors", "triggers"):
        listed = {m for entry in info[kind] for m in entry["python-modules"]}
        on_disk = {
            f"mlops_provider.{kind}.{path.stem}"
            for path in (package / kind).glob("*.py")
            if not path.stem.startswith("_")
        }
        assert listed == on_disk, kind


def test_entry_point_points_at_provider_info() -> None:
    from importlib.metadata import entry_points

    eps = [ep for ep in entry_points(group="apache_airflow_provider") if "mlops" in ep.value]
    assert len(eps) == 1
    assert eps[0].load()() == get_provider_info()


def _airflow(*args: str) -> str:
    airflow = Path(sys.executable).parent / "airflow"
    out = subprocess.run(
        [str(airflow), *args, "--output", "json"],
        check=True,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=300,
    )
    return out.stdout


@pytest.mark.integration
def test_airflow_cli_lists_provider_and_connection_types() -> None:
    providers = json.loads(_airflow("providers", "list"))
    assert "airflow-provider-mlops" in {p["package_name"] for p in providers}
    hooks = json.loads(_airflow("providers", "hooks"))
    conn_types = {h["connection_type"]: h["class"] for h in hooks}
    assert conn_types["mlflow"] == "mlops_provider.hooks.mlflow.MlflowHook"
    assert conn_types["feast"] == "mlops_provider.hooks.feast.FeastHook"
