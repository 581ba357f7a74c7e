"""Run every benchmark in this directory (``make bench``); exit non-zero if any target is missed.

Usage: ``python benchmarks/run_all.py [--quick] [name ...]`` where a name selects
``bench_<name>.py`` (default: all of them).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke-sized runs")
    parser.add_argument("names", nargs="*", help="benchmarks to run (drift, scoring, ...)")
    args = parser.parse_args(argv)
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.names:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in args.names]
    results: list[tuple[str, int, float]] = []
    for script in scripts:
        print(f"\n=== {script.stem} ===", flush=True)
        started = time.perf_counter()
        cmd = [sys.executable, str(script), *(["--quick"] if args.quick else [])]
        code = subprocess.call(cmd, cwd=HERE.parent)
        results.append((script.stem, code, time.perf_counter() - started))
    print("\n=== summary ===")
    for name, code, seconds in results:
        print(
            f"{name:24s} {'met its targets' if code == 0 else 'MISSED a target'} ({seconds:.0f} s)"
        )
    return 0 if results and all(code == 0 for _, code, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
