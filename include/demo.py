"""The lifecycle demo: a simulated churn business run through the reference DAGs.

``make demo`` runs ``python -m include.demo``. On embedded defaults only (SQLite Airflow
metadata DB, SQLite MLflow store, Feast file offline store + SQLite online store, a local data
lake under ``$AIRFLOW_HOME/mlops``) it

1. generates the simulated days (with a data-quality incident and, mid-way, a covariate +
   concept shift), as the daily raw exports and late labels would land;
2. applies the Feast feature repo and checks the MLflow and Feast hooks;
3. runs, day by day, the reference DAGs with ``dag.test()``: the feature pipeline, scoring
   with whichever model is champion that day, and monitoring. The first champion is trained by
   the training DAG's weekly schedule (that run sets ``cold_start``: no champion yet); later training runs happen only when the monitoring DAG
   emitted a retrain-request Asset event that queued the training DAG (the demo then runs the
   queued DAG, as the scheduler would);
4. prints a per-day summary and writes an HTML lifecycle report with a timeline plot; the
   closing lines state what retraining bought: the served champions' matured AUC against the
   first champion's on the same rows (the monitoring DAG scores both).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _configure_environment() -> Path:
    home = Path(os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".demo" / "airflow")))
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", f"sqlite:///{home / 'airflow.db'}")
    os.environ.setdefault(
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL", "http://localhost:8080/execution/"
    )
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLOPS_PROJECT_ROOT", str(ROOT))
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # small artifacts
    os.environ.setdefault("MLOPS_TASK_RETRIES", "0")
    os.environ.setdefault("AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION", "False")
    # the deployment's verification window (dags/mlops_common.py reads it when the DAGs are
    # imported, so it is set before): a few seconds under traffic show a swap without failed
    # requests; the production default (60 s) would be idle waiting here
    os.environ.setdefault("MLOPS_SERVING_VERIFY_SECONDS", "5")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    for path in (str(ROOT / "dags"), str(ROOT)):
        if path not in sys.path:
            sys.path.insert(0, path)
    _start_fresh(home)
    return home


DEMO_MARKER = ".mlops-demo"
"""The file that marks an Airflow home as the demo's own (wiped at the start of each run)."""


def _start_fresh(home: Path) -> None:
    """Each demo run simulates the same timeline from scratch: the previous run's metadata DB,
    MLflow store, Feast stores and lake go. Only a home the demo created is wiped; a directory
    with other files is refused."""
    import shutil

    if (home / DEMO_MARKER).exists():
        shutil.rmtree(home)
    elif home.exists() and any(home.iterdir()):
        raise SystemExit(
            f"AIRFLOW_HOME={home} holds files the demo did not write; the demo starts from "
            "scratch on each run, so point AIRFLOW_HOME at a new or empty directory (or run "
            "`make clean` to remove the demo's default home)"
        )
    home.mkdir(parents=True, exist_ok=True)
    (home / DEMO_MARKER).write_text("created by include/demo.py; removed with each demo run\n")


def say(message: str) -> None:
    print(message, flush=True)


def _migrate_db() -> None:
    airflow = Path(sys.executable).parent / "airflow"
    started = time.perf_counter()
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=os.environ)
    say(f"  airflow metadata DB ready ({time.perf_counter() - started:.0f} s)")


def add_timeline_arguments(parser: argparse.ArgumentParser, days: int = 22) -> None:
    """The simulated period's options, shared with ``make stack-demo`` (stack/lifecycle.py)."""
    parser.add_argument("--start", type=date.fromisoformat, default=date(2026, 1, 1))
    parser.add_argument("--days", type=int, default=days, help="simulated days (>= 14)")
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--label-delay", type=int, default=3)
    parser.add_argument("--incident-day", type=int, default=3, help="day with a null-column export")
    parser.add_argument("--first-training-day", type=int, default=5)
    parser.add_argument("--shift-day", type=int, default=9, help="first day of the shift")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    add_timeline_arguments(parser)
    parser.add_argument("--stage", choices=["setup", "lifecycle"], default="lifecycle")
    parser.add_argument(
        "--requests-per-day", type=int, default=100, help="realtime requests per simulated day"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    home = _configure_environment()
    started = time.perf_counter()
    say(f"MLOps lifecycle demo (AIRFLOW_HOME={home})")
    _migrate_db()

    from include.demo_lifecycle import Lifecycle

    lifecycle = Lifecycle(args)
    lifecycle.setup()
    if args.stage == "lifecycle":
        lifecycle.run()
    say(f"\nDemo finished in {time.perf_counter() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
