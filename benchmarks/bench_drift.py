"""Benchmark: mlops_provider.core.drift.detect_drift against Evidently 0.7's DataDriftPreset.

Usage::

    python benchmarks/bench_drift.py            # 1M rows x (20 numeric + 5 categorical)
    python benchmarks/bench_drift.py --quick    # 100k rows smoke run
    python benchmarks/bench_drift.py --rows 250000 --keep-data /tmp/drift-data

The script

1. generates a seeded reference and current dataset (some columns shifted, most not) and
   writes them to parquet in a temporary directory;
2. creates (once) a separate virtual environment for Evidently under
   ``benchmarks/.venv-evidently`` with ``uv``;
3. runs each side in its own fresh subprocess (Evidently in its venv, ours in the project
   interpreter). Each worker loads both parquet files into pandas DataFrames, then measures
   only the drift computation: wall time with ``time.perf_counter`` and memory as the peak
   resident set size during the computation (``VmHWM``, reset right before it) minus the
   resident set size after loading;
4. prints both sides, the speed and memory ratios against the targets (>= 50x faster,
   <= 1/3 of the peak memory) and a per-column verdict comparison.

It exits with status 1 if a target is missed or a verdict disagrees on a column where both
sides used the same method.

Two more runs of ours are reported for information (no targets): on pyarrow Tables instead
of DataFrames, and against a ReferenceProfile of the reference (the monitoring path).

Worker mode (``--worker ...``) is internal: it imports only the standard library at
module level so the same file runs under either interpreter.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EVIDENTLY_VENV = HERE / ".venv-evidently"
EVIDENTLY_REQUIREMENTS = ["evidently>=0.7,<0.8", "pandas<3", "pyarrow"]
SPEED_TARGET = 50.0
MEMORY_TARGET = 1.0 / 3.0

N_NUMERIC = 20
N_CATEGORICAL = 5


# ----------------------------------------------------------------------------- data


def column_lists() -> tuple[list[str], list[str]]:
    """Names of the numeric and categorical columns of the benchmark data."""
    return (
        [f"num_{i:02d}" for i in range(N_NUMERIC)],
        [f"cat_{i}" for i in range(N_CATEGORICAL)],
    )


def generate(rows: int, seed: int, out_dir: Path) -> tuple[Path, Path]:
    """Write ``reference.parquet`` and ``current.parquet`` with ``rows`` rows each.

    Numeric columns: a mix of normal, log-normal, uniform, exponential, Poisson and
    low-cardinality integer columns, some with nulls. Drifted on purpose: num_00 (mean shift),
    num_01 (scale), num_02 (log-normal location), num_07 (low-cardinality proportions),
    cat_1 (proportions) and cat_3 (a new category). Everything else is drawn from the same
    distribution on both sides, so the expected verdict is unambiguous on every column.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    num_cols, cat_cols = column_lists()

    def frame(rng: np.random.Generator, current: bool) -> pa.Table:
        n = rows
        cols: dict[str, Any] = {}
        for i, name in enumerate(num_cols):
            kind = i % 10
            if i == 0:
                x = rng.normal(0.5 if current else 0.0, 1.0, n)
            elif i == 1:
                x = rng.normal(10.0, 3.0 if current else 2.0, n)
            elif i == 2:
                x = rng.lognormal(0.3 if current else 0.0, 0.75, n)
            elif i == 7:
                p = [0.25, 0.25, 0.25, 0.25] if current else [0.4, 0.3, 0.2, 0.1]
                x = rng.choice(4, size=n, p=p).astype(np.int64)
            elif i == 8:
                x = rng.normal(0.02 if current else 0.0, 1.0, n)  # tiny shift: not drift
            elif kind == 3:
                x = rng.uniform(0, 100, n)
            elif kind == 4:
                x = rng.exponential(1.0, n)
            elif kind == 6:
                x = rng.poisson(30, n).astype(np.int64)
            elif kind == 9:
                x = rng.gamma(2.0, 2.0, n)
            else:
                x = rng.normal(float(i), 1.0 + i / 10, n)
            if i in (5, 15):  # 2% nulls
                mask = rng.random(n) < 0.02
                cols[name] = pa.array(x, mask=mask)
            else:
                cols[name] = pa.array(x)
        cats = {
            "cat_0": (["a", "b", "c"], [0.5, 0.3, 0.2], [0.5, 0.3, 0.2]),
            "cat_1": (
                [f"k{j}" for j in range(8)],
                [0.3, 0.2, 0.15, 0.1, 0.1, 0.05, 0.05, 0.05],
                [0.05, 0.05, 0.1, 0.1, 0.15, 0.15, 0.2, 0.2],
            ),
            "cat_2": (["yes", "no"], [0.7, 0.3], [0.7, 0.3]),
            "cat_3": (
                ["red", "green", "blue", "black", "white", "new"],
                [0.3, 0.3, 0.2, 0.1, 0.1, 0.0],
                [0.2, 0.2, 0.2, 0.1, 0.1, 0.2],
            ),
            "cat_4": (
                [f"city_{j:02d}" for j in range(20)],
                [1 / 20] * 20,
                [1 / 20] * 20,
            ),
        }
        for name in cat_cols:
            values, p_ref, p_cur = cats[name]
            codes = rng.choice(len(values), size=n, p=p_cur if current else p_ref)
            arr = np.asarray(values, dtype=object)[codes]
            if name == "cat_4":  # 1% nulls
                arr[rng.random(n) < 0.01] = None
            cols[name] = pa.array(arr, type=pa.string())
        return pa.table(cols)

    out_dir.mkdir(parents=True, exist_ok=True)
    ref_path, cur_path = out_dir / "reference.parquet", out_dir / "current.parquet"
    pq.write_table(frame(np.random.default_rng(seed), False), ref_path)
    pq.write_table(frame(np.random.default_rng(seed + 1), True), cur_path)
    return ref_path, cur_path


# ----------------------------------------------------------------------------- workers


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> None:
    # Writing 5 to clear_refs resets VmHWM (Linux >= 4.0) so the peak covers only what follows.
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


# Evidently's display names -> the method names used by detect_drift.
EVIDENTLY_METHODS = {
    "K-S p_value": "ks",
    "chi-square p_value": "chisquare",
    "Z-test p_value": "z",
    "Wasserstein distance (normed)": "wasserstein",
    "Jensen-Shannon distance": "jensenshannon",
    "PSI": "psi",
    "Kullback-Leibler divergence": "kl_div",
    "Hellinger distance": "hellinger",
    "Anderson-Darling": "anderson",
}
# How each of Evidently's tests turns its score into a verdict (see its stattests package).
P_VALUE_STRICT = {"chisquare", "z", "anderson"}  # drifted when p < threshold
P_VALUE_LE = {"ks"}  # drifted when p <= threshold


def _evidently_verdict(method: str, score: float, threshold: float) -> bool:
    if method in P_VALUE_STRICT:
        return score < threshold
    if method in P_VALUE_LE:
        return score <= threshold
    return score >= threshold


def _load(data_dir: Path, arrow: bool) -> tuple[Any, Any]:
    if arrow:
        import pyarrow.parquet as pq

        return pq.read_table(data_dir / "reference.parquet"), pq.read_table(
            data_dir / "current.parquet"
        )
    import pandas as pd

    return pd.read_parquet(data_dir / "reference.parquet"), pd.read_parquet(
        data_dir / "current.parquet"
    )


def _run_evidently(reference: Any, current: Any) -> dict[str, Any]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    num_cols, cat_cols = column_lists()
    definition = DataDefinition(numerical_columns=num_cols, categorical_columns=cat_cols)
    snapshot = Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
    )
    raw = snapshot.dict()
    columns = {}
    share = None
    for metric in raw["metrics"]:
        config = metric["config"]
        if config["type"].endswith("ValueDrift"):
            method = EVIDENTLY_METHODS.get(config["method"], config["method"])
            score = float(metric["value"])
            threshold = float(config["threshold"])
            columns[config["column"]] = {
                "method": method,
                "score": score,
                "threshold": threshold,
                "drifted": _evidently_verdict(method, score, threshold),
            }
        elif config["type"].endswith("DriftedColumnsCount"):
            share = float(metric["value"]["share"])
    return {
        "columns": columns,
        "drift_share": share,
        "dataset_drift": share is not None and share >= 0.5,
    }


def _summarize_ours(result: Any) -> dict[str, Any]:
    return {
        "columns": {
            name: {
                "method": col.method,
                "score": col.score,
                "threshold": col.threshold,
                "drifted": col.drifted,
            }
            for name, col in result.columns.items()
        },
        "drift_share": result.drift_share,
        "dataset_drift": result.dataset_drift,
    }


def run_worker(side: str, data_dir: Path, out: Path) -> None:
    """Load the data, run one side's drift computation, write timing/memory/verdicts as JSON.

    Sides: ``evidently`` and ``ours`` take pandas DataFrames (identical input);
    ``ours-arrow`` takes pyarrow Tables; ``ours-profile`` builds a ReferenceProfile of the
    reference (timed separately) and compares the current data against it.
    """
    num_cols, cat_cols = column_lists()
    # Import the library before the baseline: module import is not part of the computation.
    extra: dict[str, Any] = {}
    if side != "evidently":
        sys.path.insert(0, str(ROOT / "provider"))
        from mlops_provider.core.drift import ReferenceProfile, detect_drift
    else:
        import evidently

        extra["version"] = evidently.__version__
    reference, current = _load(data_dir, arrow=side in ("ours-arrow", "ours-profile"))
    if side == "ours-profile":
        start = time.perf_counter()
        reference = ReferenceProfile.from_data(
            reference, numeric_columns=num_cols, categorical_columns=cat_cols
        )
        extra["profile_seconds"] = time.perf_counter() - start
        extra["profile_json_kb"] = len(reference.to_json()) / 1024
    gc.collect()
    baseline_kb = _rss_kb("VmRSS")
    _reset_peak_rss()
    start = time.perf_counter()
    if side == "evidently":
        outcome = _run_evidently(reference, current)
    else:
        outcome = _summarize_ours(
            detect_drift(reference, current, numeric_columns=num_cols, categorical_columns=cat_cols)
        )
    seconds = time.perf_counter() - start
    peak_kb = _rss_kb("VmHWM")
    outcome.update(
        side=side,
        seconds=seconds,
        peak_mb=max(peak_kb - baseline_kb, 0) / 1024,
        baseline_mb=baseline_kb / 1024,
        **extra,
    )
    out.write_text(json.dumps(outcome))


# ----------------------------------------------------------------------------- driver


def _uv() -> str | None:
    """The uv executable: on PATH, or the project's bootstrap copy under ``.tools``."""
    found = shutil.which("uv")
    if found:
        return found
    local = ROOT / ".tools" / "bin" / "uv"
    return str(local) if local.exists() else None


def ensure_evidently_venv() -> Path:
    """Create ``benchmarks/.venv-evidently`` with Evidently 0.7 if it is not there yet."""
    python = EVIDENTLY_VENV / "bin" / "python"
    check = [
        str(python),
        "-c",
        "import evidently, sys; sys.exit(evidently.__version__[:4] != '0.7.')",
    ]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"creating {EVIDENTLY_VENV} ...", flush=True)
    uv = _uv()
    if uv:
        subprocess.run([uv, "venv", "--python", "3.11", str(EVIDENTLY_VENV)], check=True)
        install = [uv, "pip", "install", "--python", str(python)]
    else:
        subprocess.run([sys.executable, "-m", "venv", str(EVIDENTLY_VENV)], check=True)
        install = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run([*install, *EVIDENTLY_REQUIREMENTS], check=True)
    return python


def run_side(python: Path, side: str, data_dir: Path) -> dict[str, Any]:
    """Run one worker in a fresh subprocess and return its JSON report."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = Path(fh.name)
    try:
        cmd = [str(python), str(Path(__file__).resolve()), "--worker", side]
        cmd += ["--data", str(data_dir), "--out", str(out)]
        subprocess.run(cmd, check=True)
        return dict(json.loads(out.read_text()))
    finally:
        out.unlink(missing_ok=True)


def _fmt_score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def report(ev: dict[str, Any], ours: dict[str, Any], extras: list[dict[str, Any]]) -> bool:
    """Print the comparison; return True when every target is met."""
    speed = ev["seconds"] / ours["seconds"]
    memory = ours["peak_mb"] / max(ev["peak_mb"], 1e-9)
    print()
    print(f"{'side':<14}{'seconds':>10}{'peak MB':>10}{'dataset drift':>15}{'share':>8}")
    for side in (ev, ours, *extras):
        print(
            f"{side['side']:<14}{side['seconds']:>10.2f}{side['peak_mb']:>10.1f}"
            f"{side['dataset_drift']!s:>15}{side['drift_share']:>8.2f}"
        )
    for side in extras:
        if "profile_seconds" in side:
            print(
                f"  (profile built in {side['profile_seconds']:.2f} s, "
                f"{side['profile_json_kb']:.0f} kB as JSON; not included above)"
            )
    speed_ok = speed >= SPEED_TARGET
    memory_ok = memory <= MEMORY_TARGET
    print()
    print(
        f"speed-up   {speed:8.1f}x   target >= {SPEED_TARGET:.0f}x   {'OK' if speed_ok else 'MISSED'}"
    )
    print(
        f"memory     {memory:8.3f}    target <= {MEMORY_TARGET:.3f}   "
        f"{'OK' if memory_ok else 'MISSED'}   (ours / Evidently peak increase)"
    )
    print()
    print(
        f"{'column':<8}{'evidently':>15}{'score':>11}{'drift':>7}   "
        f"{'ours':>15}{'score':>11}{'drift':>7}   agree"
    )
    disagreements = 0
    for name, e in ev["columns"].items():
        o = ours["columns"].get(name)
        if o is None:
            print(f"{name:<8} missing on our side")
            disagreements += 1
            continue
        same_method = e["method"] == o["method"]
        agree = e["drifted"] == o["drifted"]
        if same_method and not agree:
            disagreements += 1
        mark = ("yes" if agree else "NO") if same_method else "n/a (methods differ)"
        print(
            f"{name:<8}{e['method']:>15}{_fmt_score(e['score']):>11}{e['drifted']!s:>7}   "
            f"{o['method']:>15}{_fmt_score(o['score']):>11}{o['drifted']!s:>7}   {mark}"
        )
    print()
    print(f"verdict disagreements on same-method columns: {disagreements}")
    for side in extras:
        differ = [
            n for n, c in side["columns"].items() if c["drifted"] != ours["columns"][n]["drifted"]
        ]
        print(f"{side['side']}: verdicts differing from 'ours': {differ or 'none'}")
        disagreements += len(differ)
    return speed_ok and memory_ok and disagreements == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per dataset")
    parser.add_argument("--quick", action="store_true", help="smoke run with 100k rows")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep-data", type=Path, help="write the parquet files here")
    parser.add_argument("--json", type=Path, help="also write the measurements here as JSON")
    parser.add_argument(
        "--skip-extras",
        action="store_true",
        help="only Evidently vs detect_drift on pandas (skip pyarrow and profile runs)",
    )
    parser.add_argument(
        "--worker",
        choices=["evidently", "ours", "ours-arrow", "ours-profile"],
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        run_worker(args.worker, args.data, args.out)
        return 0

    rows = 100_000 if args.quick else args.rows
    evidently_python = ensure_evidently_venv()
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as tmp:
        data_dir = args.keep_data or Path(tmp)
        print(f"generating {rows:,} rows x {N_NUMERIC + N_CATEGORICAL} columns in {data_dir}")
        generate(rows, args.seed, data_dir)
        print("running Evidently DataDriftPreset ...", flush=True)
        ev = run_side(evidently_python, "evidently", data_dir)
        print("running detect_drift ...", flush=True)
        ours = run_side(Path(sys.executable), "ours", data_dir)
        extras = []
        if not args.skip_extras:
            print("running detect_drift on pyarrow input and against a reference profile ...")
            extras = [
                run_side(Path(sys.executable), side, data_dir)
                for side in ("ours-arrow", "ours-profile")
            ]
    print(f"\nrows per dataset: {rows:,}; Evidently {ev.get('version', '0.7')}")
    ok = report(ev, ours, extras)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        summary = {"rows": rows, "ok": ok, "runs": [ev, ours, *extras]}
        args.json.write_text(json.dumps(summary, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
