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


def _heavy_by_step(steps: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Run each ``(label, code)`` step in order in ONE fresh interpreter; report, per step, the
    heavy libraries present after it. The first step that shows one is the culprit."""
    lines = ["import sys, json", "out = {}"]
    for label, code in steps:
        lines.append(f"exec({code!r})")
        lines.append(
            f"out[{label!r}] = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))"
        )
    lines.append("print(json.dumps(out))")
    out = subprocess.run(
        [sys.executable, "-c", "\n".join(lines)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env=os.environ.copy(),
        timeout=600,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


DAG_FILES = sorted((ROOT / "dags").glob("*.py"))


def test_provider_modules_import_light() -> None:
    steps = [(m, f"import {m}") for m in _provider_modules()]
    result = _heavy_by_step(steps)
    assert set(result) == {m for m, _ in steps}
    assert {m: heavy for m, heavy in result.items() if heavy} == {}


def test_dag_files_parse_light() -> None:
    assert DAG_FILES
    steps = [("path", f"sys.path.insert(0, {str(ROOT / 'dags')!r})")]
    steps += [
        (p.name, f"import runpy; runpy.run_path({str(p)!r}, run_name='dag_module')")
        for p in DAG_FILES
    ]
    result = _heavy_by_step(steps)
    assert {name: heavy for name, heavy in result.items() if heavy} == {}


def test_the_probe_can_fail() -> None:
    assert "pandas" in _heavy_after("import pandas")
    result = _heavy_by_step([("light", "import json"), ("heavy", "import pandas")])
    assert result["light"] == [] and "pandas" in result["heavy"]
