"""Benchmark: what a task pays to import the provider's libraries on a Celery worker, with
``mlops_provider.worker`` preloading them (warm) against Airflow's default worker (cold).

Usage::

    python benchmarks/bench_worker_preload.py            # 3 task forks per side
    python benchmarks/bench_worker_preload.py --quick    # 1 task fork per side

An Airflow 3 Celery worker runs each task in a process forked (``os.fork``) from a pool
process. Both sides build such a parent in a fresh interpreter, then fork "tasks" from it the
way Airflow's supervisor does; each task imports what the provider's operators import
(``mlops_provider.worker.PRELOAD_MODULES``: MLflow, Feast, GX, scikit-learn, skops, ...) and
exits. Timed: fork to exit of each task, in the parent (``time.perf_counter``).

- ``cold`` (baseline: Airflow's default Celery configuration): the parent has imported what
  Airflow's own ``celery_import_modules`` hook preloads (the standard operators, numpy);
- ``warm``: the parent has also run ``mlops_provider.worker.preload()`` (what
  ``AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS=mlops_provider.worker.CELERY_CONFIG`` does at worker
  start); its one-time cost and resident memory are printed too.

Target: a warm task's import time is at most 1/10 of a cold task's (exit 1 otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 10.0

PARENT = r"""
import gc, json, os, sys, time, warnings
warnings.simplefilter("ignore")
started = time.perf_counter()
import numpy  # what Airflow's celery_import_modules hook preloads
import airflow.providers.standard.operators.python, airflow.providers.standard.operators.bash
from mlops_provider import worker
if sys.argv[1] == "warm":
    worker.preload()
setup = time.perf_counter() - started
gc.freeze()
rss_kb = int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1])
tasks = []
for _ in range(int(sys.argv[2])):
    began = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # the task: import what the provider's operators import, then exit
        for name in worker.PRELOAD_MODULES:
            worker._import_quietly(name)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert status == 0, status
    tasks.append(time.perf_counter() - began)
print(json.dumps({"setup_s": setup, "rss_mb": rss_kb / 1024, "tasks_s": tasks}))
"""


def side(mode: str, forks: int) -> dict[str, float | list[float]]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", PARENT, mode, str(forks)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    if out.returncode:
        raise SystemExit(f"{mode} side failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one task fork per side")
    parser.add_argument("--forks", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    forks = 1 if args.quick else args.forks
    results = {}
    for mode in ("cold", "warm"):
        started = time.perf_counter()
        results[mode] = side(mode, forks)
        print(f"{mode}: {json.dumps(results[mode])} ({time.perf_counter() - started:.0f} s)")
    cold = min(results["cold"]["tasks_s"])  # type: ignore[type-var]
    warm = min(results["warm"]["tasks_s"])  # type: ignore[type-var]
    ratio = cold / max(warm, 1e-9)
    print(f"\nper task, importing {len(__import__('mlops_provider.worker').worker.PRELOAD_MODULES)}"
          f" modules: cold {cold:.2f} s (Airflow's default worker), warm {warm:.3f} s "
          f"(preloaded): {ratio:.0f}x faster")  # fmt: skip
    print(
        f"warm worker start: {results['warm']['setup_s']:.1f} s once "
        f"(cold {results['cold']['setup_s']:.1f} s), resident {results['warm']['rss_mb']:.0f} MB "
        f"(cold {results['cold']['rss_mb']:.0f} MB), shared copy-on-write with its tasks"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"cold": results["cold"], "warm": results["warm"]}))
    met = ratio >= TARGET_RATIO
    print(f"target: warm >= {TARGET_RATIO:.0f}x faster per task: {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
