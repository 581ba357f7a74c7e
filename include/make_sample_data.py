"""Write the reference project's sample datasets (``include/sample_data/``) from the simulator.

The CI checks of a project created by ``python -m mlops_provider init`` run on these files
(docs/ci.md): small, deterministic extracts shaped exactly like what the reference DAGs read
and write, one per Great Expectations suite the DAGs use:

- ``raw/dt=2026-01-01/activity.parquet``: one day's raw activity export, as it lands in the
  lake (suite ``churn_raw``; the feature pipeline's sample run reads it);
- ``training_set.parquet``: a point-in-time training set (features at each activity row's
  time and its churn label) over four days (suite ``churn_training_set``; the small training
  run trains on it);
- ``predictions.parquet``: batch predictions with their lineage columns (suite
  ``churn_predictions``).

Usage: ``python -m include.make_sample_data [--out include/sample_data]``. A test checks that
the committed files are what this writes.
"""

from __future__ import annotations

import argparse
from datetime import date, datetime, timezone
from pathlib import Path

import pandas as pd

from include.simulator import ChurnSimulator

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "include" / "sample_data"
SEED = 2026
CUSTOMERS = 1500
RAW_DAY = date(2026, 1, 1)
TRAINING_DAYS = [date(2026, 1, d) for d in (1, 2, 3, 4)]
SCORED_AT = datetime(2026, 1, 5, 1, 0, tzinfo=timezone.utc)

FILES = {
    "raw": f"raw/dt={RAW_DAY.isoformat()}/activity.parquet",
    "training_set": "training_set.parquet",
    "predictions": "predictions.parquet",
}
"""Sample name -> path relative to the sample directory."""


def _simulator() -> ChurnSimulator:
    return ChurnSimulator(seed=SEED, n_customers=CUSTOMERS, label_delay_days=3)


def training_set(sim: ChurnSimulator) -> pd.DataFrame:
    """Activity rows joined with their labels: what the point-in-time join returns."""
    frames = []
    for day in TRAINING_DAYS:
        labels = sim.labels(day)[["customer_id", "event_timestamp", "churned"]]
        frames.append(sim.activity(day).merge(labels, on=["customer_id", "event_timestamp"]))
    return pd.concat(frames, ignore_index=True)


def predictions(sim: ChurnSimulator) -> pd.DataFrame:
    """The scoring output's shape, with the simulator's own churn probability as the score."""
    day = TRAINING_DAYS[-1]
    probability = sim.churn_probability(day)
    return pd.DataFrame(
        {
            "customer_id": probability.index.to_numpy(),
            "prediction": (probability.to_numpy() >= 0.5).astype("int64"),
            "probability": probability.to_numpy(),
            "model_name": "churn",
            "model_version": "1",
            "model_run_id": "0" * 32,
            "scored_at": pd.Timestamp(SCORED_AT),
        }
    )


def write(out: Path = DEFAULT_OUT) -> dict[str, Path]:
    """Write every sample under ``out``; returns sample name -> file."""
    sim = _simulator()
    frames = {
        "raw": sim.activity(RAW_DAY),
        "training_set": training_set(sim),
        "predictions": predictions(sim),
    }
    written = {}
    for name, frame in frames.items():
        path = out / FILES[name]
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(path, index=False)
        written[name] = path
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    for name, path in write(args.out).items():
        print(f"{name:13s} {path} ({len(pd.read_parquet(path)):,} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
