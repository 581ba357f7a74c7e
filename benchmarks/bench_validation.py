"""Benchmark: mlops_provider.core.validation.validate_dataset against a plain GX 1.x run.

Usage::

    python benchmarks/bench_validation.py                 # 1M rows, best of 2 x 2 runs
    python benchmarks/bench_validation.py --quick         # 100k rows smoke run
    python benchmarks/bench_validation.py --rows 250000 --rounds 5 --scenario nulls

The script

1. generates ``--rows`` activity rows with the churn simulator's schema in one call
   (``ChurnSimulator(n_customers=rows, daily_active_fraction=1.0).activity(day)``: every
   customer is active, so the day has exactly ``rows`` rows) and writes them to one parquet
   file; ``--scenario`` applies a simulator data-quality preset (nulls, wrong_dtype,
   renamed_column) so that failing expectations are measured too;
2. runs each side in its own fresh subprocess, alternating plain / ours for ``--rounds``
   rounds so that load changes on a shared machine hit both sides alike. Each worker imports
   great_expectations, pandas, pyarrow and ``mlops_provider.core.validation`` first (both
   sides, not timed), then runs the validation ``--repeat`` times, each timed with
   ``time.perf_counter()`` and ``time.process_time()``:

   * plain: ``pd.read_parquet`` + ephemeral context (progress bars off, as ours) + pandas data
     source / dataframe asset / whole-dataframe batch definition + ``ExpectationSuite`` built
     from the same JSON + ``batch.validate(suite, expectation_parameters=...)``;
   * ours: ``validate_dataset(uri, suite_file, suite_parameters=..., result_dir=...)``: the
     suite checks, reading through ``core.io``, the same GX run, the summary, ``result.json``
     and the HTML report with its plots;

3. prints every run (wall-clock and CPU seconds of the worker process), the best of each side
   (and, for information, the best first run in a process, which includes GX's one-off lazy
   initialisation on both sides), both ratios and the target: ours <= 1.2x plain, on CPU time
   by default (``--metric wall`` for wall-clock time; on a quiet machine both agree, on a
   shared one wall-clock time mostly measures the neighbours), and checks that both sides
   agree on success and on the number of failed expectations.

It exits with status 1 if the target is missed or the sides disagree.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SUITE = ROOT / "include" / "expectations" / "churn_raw.json"
TARGET = 1.2
DAY = "2026-01-05"
PARAMS = {
    "data_interval_start": "2026-01-05T00:00:00+00:00",
    "data_interval_end": "2026-01-06T00:00:00+00:00",
    "now": "2026-01-06T00:30:00+00:00",
}


def generate(rows: int, out: Path, scenario: str | None) -> Path:
    """Write ``rows`` simulator activity rows of one day to ``out/activity.parquet``."""
    from datetime import date

    sys.path.insert(0, str(ROOT))
    from include.simulator import SCENARIOS, ChurnSimulator

    day = date.fromisoformat(DAY)
    scenarios = SCENARIOS[scenario](day, day) if scenario else []
    started = time.perf_counter()
    frame = ChurnSimulator(
        seed=3, n_customers=rows, daily_active_fraction=1.0, scenarios=scenarios
    ).activity(day)
    path = out / "raw" / f"dt={DAY}" / "activity.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    print(
        f"generated {len(frame):,} rows x {frame.shape[1]} columns in "
        f"{time.perf_counter() - started:.1f} s -> {path} ({path.stat().st_size / 1e6:.1f} MB)",
        flush=True,
    )
    return path


# ----------------------------------------------------------------------------- workers


def _plain(data: Path) -> dict[str, Any]:
    import great_expectations as gx
    import pandas as pd
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    started, cpu = time.perf_counter(), time.process_time()
    frame = pd.read_parquet(data)
    context = gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        ),
    )
    batch_definition = (
        context.data_sources.add_pandas("plain")
        .add_dataframe_asset("activity")
        .add_batch_definition_whole_dataframe("whole")
    )
    spec = json.loads(SUITE.read_text())
    suite = gx.ExpectationSuite(
        name=spec["name"],
        expectations=[ExpectationConfiguration(**e) for e in spec["expectations"]],
    )
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    result = batch.validate(suite, expectation_parameters=dict(PARAMS))
    return {
        "seconds": time.perf_counter() - started,
        "cpu": time.process_time() - cpu,
        "success": bool(result.success),
        "failed": int(result.statistics["unsuccessful_expectations"]),
        "rows": len(frame),
    }


def _ours(data: Path, out: Path) -> dict[str, Any]:
    from mlops_provider.core.validation import validate_dataset

    started, cpu = time.perf_counter(), time.process_time()
    outcome = validate_dataset(
        str(data), SUITE, suite_parameters=PARAMS, result_dir=str(out / "report")
    )
    return {
        "seconds": time.perf_counter() - started,
        "cpu": time.process_time() - cpu,
        "success": outcome.success,
        "failed": len(outcome.failed),
        "rows": outcome.row_count,
    }


def run_worker(side: str, data: Path, out: Path, repeat: int) -> None:
    # Both sides import the same modules before timing, so that neither pays imports inside
    # the measurement and both processes hold the same objects (which garbage collection,
    # frequent under GX, has to walk).
    import great_expectations  # noqa: F401
    import pandas  # noqa: F401

    sys.path.insert(0, str(ROOT / "provider"))
    import mlops_provider.core.validation  # noqa: F401

    runs = [_plain(data) if side == "plain" else _ours(data, out) for _ in range(repeat)]
    report = dict(runs[0])
    report["times"] = [r["seconds"] for r in runs]
    report["cpu_times"] = [r["cpu"] for r in runs]
    report["verdicts"] = sorted({(r["success"], r["failed"]) for r in runs})
    print("RESULT " + json.dumps(report), flush=True)


def _spawn(side: str, data: Path, out: Path, repeat: int) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), str(ROOT / "provider"), env.get("PYTHONPATH", "")]
    ).rstrip(os.pathsep)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", side]
    cmd += ["--data", str(data), "--out", str(out), "--repeat", str(repeat)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
        raise SystemExit(f"{side} worker failed with status {proc.returncode}")
    return dict(json.loads(lines[-1][len("RESULT ") :]))


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="smoke run with 100k rows")
    parser.add_argument("--rounds", type=int, default=2, help="fresh processes per side")
    parser.add_argument(
        "--repeat", type=int, default=None, help="validations per process (default 2, quick 5)"
    )
    parser.add_argument(
        "--metric",
        choices=["cpu", "wall"],
        default="cpu",
        help="time the target applies to (default: CPU time of the worker process, which other "
        "load on a shared machine distorts much less than wall time)",
    )
    parser.add_argument(
        "--scenario", choices=["nulls", "wrong_dtype", "renamed_column"], default=None
    )
    parser.add_argument("--keep-data", type=Path, default=None, help="directory to keep data in")
    parser.add_argument("--worker", choices=["plain", "ours"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        run_worker(args.worker, args.data, args.out, args.repeat or 1)
        return 0
    rows = 100_000 if args.quick else args.rows
    repeat = args.repeat or (5 if args.quick else 2)
    with tempfile.TemporaryDirectory(prefix="bench-validation-") as tmp:
        base = args.keep_data or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        data = generate(rows, base, args.scenario)
        wall: dict[str, list[float]] = {"plain": [], "ours": []}
        cpu: dict[str, list[float]] = {"plain": [], "ours": []}
        cold: dict[str, list[float]] = {"plain": [], "ours": []}
        verdicts: dict[str, set[tuple[bool, int]]] = {"plain": set(), "ours": set()}
        for round_no in range(1, args.rounds + 1):
            for side in ("plain", "ours"):
                report = _spawn(side, data, base, repeat)
                wall[side] += report["times"]
                cpu[side] += report["cpu_times"]
                cold[side].append(report["cpu_times"][0])
                verdicts[side].update((bool(s), int(f)) for s, f in report["verdicts"])
                shown = " ".join(
                    f"{w:.2f}/{c:.2f}" for w, c in zip(report["times"], report["cpu_times"])
                )
                print(
                    f"round {round_no} {side:5s} wall/cpu seconds: {shown}  "
                    f"rows={report['rows']:,} success={report['success']} "
                    f"failed={report['failed']}",
                    flush=True,
                )
    best = {side: (min(wall[side]), min(cpu[side]), min(cold[side])) for side in wall}
    ratio_wall = best["ours"][0] / best["plain"][0]
    ratio_cpu = best["ours"][1] / best["plain"][1]
    ratio = ratio_cpu if args.metric == "cpu" else ratio_wall
    agree = verdicts["plain"] == verdicts["ours"] and len(verdicts["plain"]) == 1
    print()
    print(f"rows              {rows:,}  (suite {SUITE.name}, scenario {args.scenario or 'none'})")
    print("                  best wall   best cpu   best first-run cpu")
    for side, label in (("plain", "plain GX"), ("ours", "validate_dataset")):
        w, c, f = best[side]
        print(f"{label:17s} {w:8.2f} s {c:8.2f} s {f:10.2f} s")
    print("(validate_dataset includes the suite checks, result.json and report.html)")
    print(f"ratio wall        {ratio_wall:7.3f}")
    print(f"ratio cpu         {ratio_cpu:7.3f}")
    verdict = "MET" if ratio <= TARGET else "MISSED"
    print(f"target            {args.metric} ratio <= {TARGET}: {verdict}")
    print(f"verdicts          {'agree' if agree else 'DISAGREE'}: {verdicts}")
    return 0 if ratio <= TARGET and agree else 1


if __name__ == "__main__":
    sys.exit(main())
