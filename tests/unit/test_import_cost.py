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
within the parse budget without importing a heavy library or the AWS SDK: the probe of
:mod:`mlops_provider.testing.integrity` (the one users' CI runs on their DAGs) measures both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_provider.testing.integrity import (
    AWS_SDK,
    DEFAULT_PARSE_BUDGET,
    HEAVY_MODULES,
    FileFacts,
    measure_parse_costs,
)

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "provider" / "mlops_provider"
HEAVY = HEAVY_MODULES
#: Where heavy libraries may be imported at module level (never reached by DAG parsing).
HEAVY_ALLOWED = ("provider/mlops_provider/core", "tests", "benchmarks", "include")
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))


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


@pytest.fixture(scope="module")
def reference_costs() -> tuple[float, dict[str, FileFacts]]:
    """The empty DAG's parse seconds, and per reference DAG file what parsing it costs."""
    dags = [p.name for p in DAG_FILES if p.stem != "mlops_common"]
    baseline, facts = measure_parse_costs(ROOT / "dags", dags)
    return baseline, {f.file: f for f in facts}


def test_dag_files_parse_light(reference_costs: tuple[float, dict[str, FileFacts]]) -> None:
    """Parsing a reference DAG file (with everything it imports) imports no heavy library and
    not the AWS SDK."""
    _, facts = reference_costs
    assert {Path(name).stem for name in facts} >= {
        "mlops_feature_pipeline",
        "mlops_training_pipeline",
        "mlops_batch_scoring",
        "mlops_monitoring",
    }
    assert {f.file: f.parse_error for f in facts.values() if f.parse_error} == {}
    assert {f.file: f.forbidden_imports for f in facts.values() if f.forbidden_imports} == {}


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


def test_dag_files_parse_fast_over_an_empty_dag(
    reference_costs: tuple[float, dict[str, FileFacts]],
) -> None:
    """Each reference DAG file parses within the budget over an empty DAG (best of the runs, so
    a loaded machine's slow run does not count)."""
    baseline, facts = reference_costs
    over = {name: f.parse_seconds for name, f in facts.items()}
    assert all(seconds is not None for seconds in over.values()), over
    assert max(s for s in over.values() if s is not None) <= DEFAULT_PARSE_BUDGET, (
        over,
        f"empty DAG: {baseline:.3f} s",
    )


def test_the_parse_probe_can_fail(tmp_path: Path) -> None:
    """An Asset with an unknown URI scheme (what the lifecycle assets used to be) makes Airflow
    load the providers' asset URI handlers: the probe sees boto3 and the extra time."""
    pytest.importorskip("airflow.providers.amazon")
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
    _, measured = measure_parse_costs(tmp_path, [schemed.name, named.name], runs=2)
    costs = {f.file: f for f in measured}
    assert {"boto3", "botocore"} <= set(costs[schemed.name].forbidden_imports)
    assert set(costs[schemed.name].forbidden_imports) <= set(HEAVY + AWS_SDK)
    assert costs[named.name].forbidden_imports == []
    assert (costs[schemed.name].parse_seconds or 0) > (costs[named.name].parse_seconds or 0)
