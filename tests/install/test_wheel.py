"""What a user does with the built distribution, in a fresh virtualenv.

Build the sdist and the wheel with ``uv build``, install the wheel with exactly the locked
versions of its dependencies into a new venv (nothing of this source tree is importable
there), ``python -m mlops_provider init`` an Airflow project, ``airflow db migrate``, land one
simulated day in the default data lake and run the reference feature pipeline with ``airflow
dags test``. Also checks what the wheel and the sdist hold.

The venv's interpreter is this one, or ``$MLOPS_INSTALL_PYTHON`` (to check another Python
version of the classifiers, e.g. ``MLOPS_INSTALL_PYTHON=python3.12``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from mlops_provider.reference import PACKAGE_DATA_DIR, project_path, reference_files

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
DAY = date(2026, 1, 1)
DAG_ID = "mlops_feature_pipeline"
REFERENCE_DAGS = {
    "mlops_batch_scoring",
    DAG_ID,
    "mlops_monitoring",
    "mlops_training_pipeline",
    "mlops_deployment",
}
CI_TEMPLATES = (
    "ci/github-workflow.yml",
    "ci/mlops-ci.sh",
    "ci/test_mlops_ci.py",
    "sample_data/README.md",
)
pytestmark = pytest.mark.install


def _uv() -> str:
    """uv as the Makefile finds it: ``$UV``, on PATH, or the project's ``.tools/bin/uv``."""
    for candidate in (os.environ.get("UV"), shutil.which("uv"), str(ROOT / ".tools/bin/uv")):
        if candidate and Path(candidate).is_file():
            return candidate
    message = "uv not found (set UV, put it on PATH, or run `make setup`)"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: none of the test session's Airflow, MLOps and Python
    path settings (the session points PYTHONPATH at this source tree)."""
    dropped = ("AIRFLOW__", "MLOPS_", "MLFLOW_", "PYTHON", "VIRTUAL_ENV", "UV_PROJECT")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env.update(extra)
    return env


def _run(cmd: list[str], env: dict[str, str], cwd: Path = ROOT) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} exited {done.returncode}\n"
            f"stdout:\n{done.stdout[-4000:]}\nstderr:\n{done.stderr[-4000:]}"
        )
    return done.stdout


def _json_out(stdout: str) -> list[dict]:
    """The JSON document of an ``airflow ... -o json`` command (log lines may precede it)."""
    lines = [line for line in stdout.splitlines() if line.startswith("[")]
    assert lines, f"no JSON in output:\n{stdout[-2000:]}"
    return json.loads(lines[-1])


@dataclass
class Dists:
    wheel: Path
    sdist: Path


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    """The sdist and, built from it, the wheel (``uv build`` builds the wheel from the sdist,
    so a file missing from the sdist is missing from the wheel too)."""
    out = tmp_path_factory.mktemp("dist")
    _run([_uv(), "build", "--quiet", "--out-dir", str(out)], _clean_env())
    (wheel,) = out.glob("airflow_provider_mlops-*.whl")
    (sdist,) = out.glob("airflow_provider_mlops-*.tar.gz")
    return Dists(wheel=wheel, sdist=sdist)


def test_wheel_ships_the_reference_project_and_the_license(dists: Dists) -> None:
    names = set(zipfile.ZipFile(dists.wheel).namelist())
    data = {f"mlops_provider/{PACKAGE_DATA_DIR}/{rel.as_posix()}" for rel in reference_files(ROOT)}
    assert data <= names, f"package data missing from the wheel: {sorted(data - names)}"
    assert {f"mlops_provider/{PACKAGE_DATA_DIR}/dags/{d}.py" for d in REFERENCE_DAGS} <= names
    ci_templates = {f"mlops_provider/{PACKAGE_DATA_DIR}/include/{rel}" for rel in CI_TEMPLATES}
    assert ci_templates <= names, f"CI templates missing: {sorted(ci_templates - names)}"
    info = next(n for n in names if n.endswith(".dist-info/METADATA")).rsplit("/", 1)[0]
    assert {f"{info}/licenses/LICENSE", f"{info}/licenses/NOTICE"} <= names
    assert "mlops_provider/__main__.py" in names
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".db"))]
    assert not [n for n in names if n.startswith(("tests/", "include/", "dags/"))]

    metadata = zipfile.ZipFile(dists.wheel).read(f"{info}/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert "Classifier: License ::" not in metadata  # PEP 639: the expression alone
    for url in ("Homepage", "Documentation", "Source", "Issues"):
        assert f"Project-URL: {url}, https://github.com/airflow-provider-mlops/" in metadata
    requires = next(line for line in metadata.splitlines() if line.startswith("Requires-Python"))
    classified = [
        line.rsplit(" ", 1)[-1]
        for line in metadata.splitlines()
        if line.startswith("Classifier: Programming Language :: Python :: 3.")
    ]
    floor = requires.split(">=")[1].strip()
    assert classified and min(classified, key=lambda v: tuple(map(int, v.split(".")))) == floor


def test_sdist_holds_the_sources_and_no_local_state(dists: Dists) -> None:
    with tarfile.open(dists.sdist) as tar:
        names = [name.split("/", 1)[1] for name in tar.getnames() if "/" in name]
    tops = {name.split("/", 1)[0] for name in names}
    assert {"provider", "dags", "include", "docs", "README.md", "LICENSE", "NOTICE"} <= tops
    assert "pyproject.toml" in tops and "PKG-INFO" in tops
    assert tops <= {
        "provider", "dags", "include", "docs", "README.md", "LICENSE", "NOTICE",
        "pyproject.toml", "PKG-INFO", ".gitignore",
    }, f"unexpected top-level entries: {sorted(tops)}"  # fmt: skip
    local_state = (".venv", ".demo", ".stack", ".tools", ".pytest", ".mypy_cache", ".ruff_cache")
    assert not [n for n in names if n.startswith(local_state) or ("/." in n and "/.git" not in n)]
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".db"))]
    assert not [n for n in names if n.startswith("include/feature_repo/data")]
    assert {rel.as_posix() for rel in reference_files(ROOT)} <= set(names)


@pytest.mark.slow
def test_installed_wheel_runs_the_feature_pipeline(dists: Dists, tmp_path: Path) -> None:
    started = time.monotonic()
    uv, env = _uv(), _clean_env()
    requirements = tmp_path / "requirements.txt"
    locked = ("--frozen", "--no-dev", "--no-emit-project", "--no-hashes")
    _run([uv, "export", "--quiet", *locked, "--output-file", str(requirements)], env)
    venv = tmp_path / "venv"
    interpreter = os.environ.get("MLOPS_INSTALL_PYTHON") or sys.executable
    _run([uv, "venv", "--quiet", "--python", interpreter, str(venv)], env, cwd=tmp_path)
    python, airflow = venv / "bin" / "python", venv / "bin" / "airflow"
    install = ("-r", str(requirements), str(dists.wheel))
    _run([uv, "pip", "install", "--quiet", "--python", str(python), *install], env, tmp_path)

    project, home = tmp_path / "project", tmp_path / "airflow"
    user = _clean_env(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(project / "dags"),
    )
    located = _run(
        [str(python), "-c", "import mlops_provider; print(mlops_provider.__file__)"], user
    )
    assert Path(located.strip()).is_relative_to(venv), located  # the wheel, not this tree

    printed = _run([str(python), "-m", "mlops_provider", "init", str(project)], user, tmp_path)
    for rel in reference_files(ROOT):
        dest = project_path(rel)
        assert (project / dest).read_bytes() == (ROOT / rel).read_bytes(), rel
        assert f"wrote      {dest}" in printed
    assert os.access(project / "ci" / "mlops-ci.sh", os.X_OK)
    assert (project / ".github" / "workflows" / "mlops-ci.yml").is_file()
    assert f"MLOPS_PROJECT_ROOT={project}" in printed and "mlflow_default" in printed

    _run([str(airflow), "db", "migrate"], user, tmp_path)
    providers = _json_out(_run([str(airflow), "providers", "list", "-o", "json"], user, tmp_path))
    assert "airflow-provider-mlops" in {p["package_name"] for p in providers}

    # every reference DAG parses from the project with only the wheel installed (a DAG file
    # that fails to import is missing from the list)
    _run([str(airflow), "dags", "reserialize"], user, tmp_path)
    dags = _json_out(_run([str(airflow), "dags", "list", "-o", "json"], user, tmp_path))
    assert {d["dag_id"]: d["fileloc"] for d in dags} == {
        dag_id: str(project / "dags" / f"{dag_id}.py") for dag_id in REFERENCE_DAGS
    }

    # one simulated day in the default lake ($AIRFLOW_HOME/mlops/data), then the day's run;
    # no MLOPS_PROJECT_ROOT: the copied DAGs find include/ next to their dags/
    from include.simulator import ChurnSimulator

    lake = home / "mlops" / "data"
    sim = ChurnSimulator(seed=7, n_customers=200)
    sim.write_day(lake, DAY)
    logical_date = "2026-01-02"  # the run of the data interval [DAY, DAY + 1 day)
    _run([str(airflow), "dags", "test", DAG_ID, logical_date], user, tmp_path)
    runs = _json_out(_run([str(airflow), "dags", "list-runs", DAG_ID, "-o", "json"], user))
    assert [(r["state"], r["logical_date"][:10]) for r in runs] == [("success", logical_date)]
    run_id = runs[0]["run_id"]
    states = _json_out(
        _run([str(airflow), "tasks", "states-for-dag-run", DAG_ID, run_id, "-o", "json"], user)
    )
    by_task = {s["task_id"]: s["state"] for s in states}
    assert {"validate_raw", "publish", "materialize"} <= set(by_task), by_task
    assert set(by_task.values()) == {"success"}, by_task
    partition = lake / "features" / "customer_activity" / f"dt={DAY.isoformat()}"
    assert (partition / "_SUCCESS").exists() and list(partition.glob("*.parquet"))
    assert (lake / "reports" / "validation" / "raw" / f"dt={DAY.isoformat()}").is_dir()

    # the provider's default Feast repo is the project's, given MLOPS_PROJECT_ROOT; the store
    # it opens serves the day the run materialized
    row = sim.activity(DAY).iloc[0]
    probe = (
        "import json, sys\n"
        "from mlops_provider.hooks.feast import FeastHook\n"
        "hook = FeastHook()\n"
        "online = hook.store.get_online_features(\n"
        "    features=['customer_activity:monthly_charges'],\n"
        "    entity_rows=[{'customer_id': int(sys.argv[1])}]).to_dict()\n"
        "print(json.dumps({'repo': str(hook.repo_path),\n"
        "    'views': sorted(v.name for v in hook.store.list_feature_views()),\n"
        "    'monthly_charges': online['monthly_charges'][0]}))\n"
    )
    found = _run(
        [str(python), "-c", probe, str(int(row["customer_id"]))],
        {**user, "MLOPS_PROJECT_ROOT": str(project)},
        tmp_path,
    )
    answer = json.loads(found.strip().splitlines()[-1])
    assert answer["repo"] == str(project / "include" / "feature_repo")
    assert answer["views"] == ["customer_activity"]
    assert answer["monthly_charges"] == pytest.approx(float(row["monthly_charges"]))
    print(f"fresh-venv install and feature pipeline run: {time.monotonic() - started:.0f} s")
