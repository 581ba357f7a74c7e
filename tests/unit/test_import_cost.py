"""Importing the provider or a DAG file must not import heavy libraries (DAG parsing stays cheap).

The rule (README, DESIGN.md): mlflow, feast, great_expectations, sklearn, pandas, pyarrow and
scipy are imported inside functions everywhere a DAG file can reach: every module of the
provider except ``core/`` (operators, sensors, triggers, hooks, links, assets, exceptions,
get_provider_info, the package itself, and any module added later) and every DAG file. Ruff's
TID253 bans module-level heavy imports in those files; this test also catches a heavy library
arriving *transitively* (an operator importing a core module at module level).

Each check runs in a fresh interpreter so nothing already imported by the test session counts.

Import rules are not enough: an ``Asset`` whose URI has a scheme Airflow does not know makes it
load every installed provider's asset URI handlers, and the Amazon provider's imports boto3. So
each reference DAG file's parse time is measured too, against an empty DAG's, and must stay
within ``PARSE_BUDGET`` seconds, without importing any of ``PARSE_FORBIDDEN``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "provider" / "mlops_provider"
HEAVY = ("mlflow", "feast", "great_expectations", "sklearn", "pandas", "pyarrow", "scipy")
#: Where heavy libraries may be imported at module level (never reached by DAG parsing).
HEAVY_ALLOWED = ("provider/mlops_provider/core", "tests", "benchmarks", "include")
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))
#: What parsing a DAG file may cost over parsing an empty DAG, in seconds (best of runs).
PARSE_BUDGET = 0.3
PARSE_RUNS = 5
#: Never imported by parsing a DAG file: the heavy libraries and the AWS SDK.
PARSE_FORBIDDEN = (*HEAVY, "boto3", "botocore", "aiobotocore", "s3fs")
EMPTY_DAG = """\
from airflow.sdk import DAG

with DAG("empty", schedule=None):
    pass
"""
#: Runs in a fresh interpreter: the setup every DAG file shares (the DAGs folder importable,
#: the task SDK imported), then, per file and run, a fork of that interpreter parses the file
#: once (a fork starts from exactly the setup, as the DAG processor's parsing processes do)
#: and reports the seconds and the forbidden modules it imported. Prints JSON.
_PARSE_PROBE = """\
import json, os, runpy, sys, time

sys.path.insert(0, {dags!r})
import airflow.sdk
from airflow.sdk import DAG

FORBIDDEN = {forbidden!r}


def parse(path):
    started = time.perf_counter()
    runpy.run_path(path, run_name="dag_module")
    seconds = time.perf_counter() - started
    loaded = {{m.split(".")[0] for m in sys.modules}}
    return {{"seconds": seconds, "forbidden": sorted(loaded & set(FORBIDDEN))}}


out = {{}}
for path in {paths!r}:
    for _ in range({runs}):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            try:
                data = {{"result": parse(path)}}
            except BaseException as error:
                data = {{"error": repr(error)}}
            with os.fdopen(write, "w") as pipe:
                pipe.write(json.dumps(data))
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            data = json.loads(pipe.read())
        os.waitpid(pid, 0)
        if "error" in data:
            raise SystemExit(path + ": " + data["error"])
        out.setdefault(path, []).append(data["result"])
print(json.dumps(out))
"""


def _provider_modules() -> list[str]:
    """Every module of the provider outside ``core/``, found on disk (so a new module or
    subpackage is checked without editing this test), packages before their modules."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        if rel.parts[1:2] == ("core",):
            continue
        parts = list(rel.parts[:-1]) if rel.name == "__init__" else list(rel.parts)
        names.append(".".join(parts))
    return sorted(names, key=lambda n: (n.count("."), n))


def _heavy_after(code: str) -> list[str]:
    return _heavy_by_step([("code", code)])["code"]


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
        check=False,
        cwd=ROOT,
        env=os.environ.copy(),
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def _culprits(result: dict[str, list[str]]) -> dict[str, list[str]]:
    """Per step, the heavy libraries that step added (the first importer is to blame)."""
    seen: set[str] = set()
    out = {}
    for label, heavy in result.items():
        new = sorted(set(heavy) - seen)
        if new:
            out[label] = new
        seen |= set(heavy)
    return out


def test_every_module_outside_core_is_checked() -> None:
    modules = _provider_modules()
    for expected in (
        "mlops_provider",
        "mlops_provider.assets",
        "mlops_provider.exceptions",
        "mlops_provider.get_provider_info",
        "mlops_provider.operators._base",
        "mlops_provider.hooks._connection",
        "mlops_provider.links.reports",
        "mlops_provider.sensors.feast",
        "mlops_provider.triggers.mlflow",
    ):
        assert expected in modules
    assert not any(m.startswith("mlops_provider.core") for m in modules)
    on_disk = {p for p in PACKAGE.rglob("*.py") if "core" not in p.relative_to(PACKAGE).parts}
    assert len(modules) == len(on_disk)


def test_provider_modules_import_light() -> None:
    steps = [(m, f"import {m}") for m in _provider_modules()]
    result = _heavy_by_step(steps)
    assert set(result) == {m for m, _ in steps}
    assert _culprits(result) == {}


def test_dag_files_parse_light() -> None:
    assert {p.stem for p in DAG_FILES} >= {
        "mlops_feature_pipeline",
        "mlops_training_pipeline",
        "mlops_batch_scoring",
        "mlops_monitoring",
    }
    steps = [("path", f"sys.path.insert(0, {str(ROOT / 'dags')!r})")]
    steps += [
        (p.name, f"import runpy; runpy.run_path({str(p)!r}, run_name='dag_module')")
        for p in DAG_FILES
    ]
    result = _heavy_by_step(steps)
    assert _culprits(result) == {}


def test_the_probe_can_fail() -> None:
    assert "pandas" in _heavy_after("import pandas")
    result = _heavy_by_step([("light", "import json"), ("heavy", "import pandas")])
    assert result["light"] == [] and "pandas" in result["heavy"]
    assert _culprits(result) == {"heavy": result["heavy"]}


def test_ruff_bans_heavy_imports_everywhere_else() -> None:
    """TID253 bans exactly these libraries, and is switched off only where README allows."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]
    banned = config["flake8-tidy-imports"]["banned-module-level-imports"]
    assert sorted(banned) == sorted(HEAVY)
    assert "TID" in config["select"] and "TID253" not in config.get("ignore", [])
    exempt = {
        glob.split("/**")[0].split("/*.py")[0]
        for glob, rules in config["per-file-ignores"].items()
        if "TID253" in rules
    }
    assert exempt == set(HEAVY_ALLOWED)


def _parse_costs(paths: list[Path], runs: int = PARSE_RUNS) -> dict[str, list[dict[str, Any]]]:
    """Per file: ``runs`` measurements of parsing it after the shared setup (``_PARSE_PROBE``)."""
    code = _PARSE_PROBE.format(
        dags=str(ROOT / "dags"),
        forbidden=PARSE_FORBIDDEN,
        paths=[str(p) for p in paths],
        runs=runs,
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=os.environ.copy(),
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_dag_files_parse_fast_over_an_empty_dag(tmp_path: Path) -> None:
    """Each reference DAG file parses within PARSE_BUDGET seconds over an empty DAG (best of
    PARSE_RUNS, so a loaded machine's slow run does not count) and imports nothing forbidden."""
    empty = tmp_path / "empty_dag.py"
    empty.write_text(EMPTY_DAG)
    dags = [p for p in DAG_FILES if p.stem != "mlops_common"]
    assert len(dags) >= 4
    costs = _parse_costs([empty, *dags])
    baseline = min(r["seconds"] for r in costs[str(empty)])
    over = {}
    for path in dags:
        runs = costs[str(path)]
        assert all(r["forbidden"] == [] for r in runs), (path.name, runs[0]["forbidden"])
        over[path.name] = round(min(r["seconds"] for r in runs) - baseline, 3)
    assert max(over.values()) <= PARSE_BUDGET, (over, f"empty DAG: {baseline:.3f} s")


def test_the_parse_probe_can_fail(tmp_path: Path) -> None:
    """An Asset with an unknown URI scheme (what the lifecycle assets used to be) makes Airflow
    load the providers' asset URI handlers: the probe sees boto3 and the extra time."""
    pytest.importorskip("airflow.providers.amazon")
    empty = tmp_path / "empty_dag.py"
    empty.write_text(EMPTY_DAG)
    schemed = tmp_path / "schemed_asset_dag.py"
    schemed.write_text(
        "from airflow.sdk import DAG, Asset\n\n"
        'with DAG("schemed", schedule=Asset("mlops://models/churn")):\n    pass\n'
    )
    named = tmp_path / "named_asset_dag.py"
    named.write_text(
        "from airflow.sdk import DAG, Asset\n\n"
        'with DAG("named", schedule=Asset(name="mlops.models.churn")):\n    pass\n'
    )
    costs = _parse_costs([empty, schemed, named], runs=2)
    assert {"boto3", "botocore"} <= set(costs[str(schemed)][0]["forbidden"])
    assert costs[str(named)][0]["forbidden"] == []
    best = {path: min(r["seconds"] for r in runs) for path, runs in costs.items()}
    assert best[str(schemed)] > best[str(named)]
