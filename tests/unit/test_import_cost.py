"""Importing the provider or a DAG file must not import heavy libraries (DAG parsing stays cheap).

Each check runs in a fresh interpreter so nothing already imported by the test session counts.
"""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("mlflow", "feast", "great_expectations", "sklearn", "pandas", "pyarrow", "scipy")
LIGHT_PACKAGES = ("hooks", "operators", "sensors", "triggers", "links")


def _provider_modules() -> list[str]:
    import mlops_provider

    names = ["mlops_provider", "mlops_provider.get_provider_info"]
    for pkg in LIGHT_PACKAGES:
        path = Path(mlops_provider.__file__).parent / pkg
        names.append(f"mlops_provider.{pkg}")
        names += [f"mlops_provider.{pkg}.{m.name}" for m in pkgutil.iter_modules([str(path)])]
    return names


def _heavy_after(code: str) -> list[str]:
    probe = (
        f"{code}\nimport sys, json\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=os.environ.copy(),
        timeout=300,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_there_are_modules_to_check() -> None:
    modules = _provider_modules()
    assert any(".operators." in m for m in modules)
    assert any(".hooks." in m for m in modules)


@pytest.mark.parametrize("module", _provider_modules())
def test_provider_module_import_is_light(module: str) -> None:
    assert _heavy_after(f"import {module}") == []


DAG_FILES = sorted((ROOT / "dags").glob("*.py"))


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=[p.name for p in DAG_FILES])
def test_dag_file_parse_is_light(dag_file: Path) -> None:
    code = (
        "import runpy, sys\n"
        f"sys.path.insert(0, {str(dag_file.parent)!r})\n"
        f"runpy.run_path({str(dag_file)!r}, run_name='dag_module')"
    )
    assert _heavy_after(code) == []


def test_the_probe_can_fail() -> None:
    assert "pandas" in _heavy_after("import pandas")
