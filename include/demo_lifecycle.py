"""The demo's steps (see include/demo.py): data, Feast, hooks, then the day-by-day lifecycle."""

from __future__ import annotations

import argparse
import json
from datetime import date, timedelta
from typing import Any

from include.demo import say


class Lifecycle:
    """Runs the reference DAGs over a simulated timeline and collects what happened."""

    def __init__(self, args: argparse.Namespace) -> None:
        from include.simulator import SCENARIOS, ChurnSimulator
        from mlops_provider.core.config import data_root

        self.args = args
        self.start: date = args.start
        self.days = [self.start + timedelta(days=i) for i in range(args.days)]
        self.incident_day = self.start + timedelta(days=args.incident_day - 1)
        self.shift_day = self.start + timedelta(days=args.shift_day - 1)
        self.first_training_day = self.start + timedelta(days=args.first_training_day - 1)
        scenarios = [
            *SCENARIOS["nulls"](self.incident_day, self.incident_day),
            *SCENARIOS["covariate_and_concept_shift"](self.shift_day),
        ]
        self.simulator = ChurnSimulator(
            seed=args.seed,
            n_customers=args.customers,
            start_date=self.start,
            label_delay_days=args.label_delay,
            scenarios=scenarios,
        )
        self.lake = data_root()
        self.landing = self.lake  # raw/ and labels/ land directly in the lake
        self.records: dict[date, Any] = {}
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        say("\n[1/3] Simulated data")
        for day in self.days:
            self.simulator.write_day(self.landing, day)
        say(
            f"  wrote {len(self.days)} daily raw exports and label drops under {self.landing} "
            f"({self.args.customers} customers, labels arrive {self.args.label_delay} days late)"
        )
        say(
            f"  data-quality incident (nulls) on {self.incident_day}; "
            f"covariate + concept shift from {self.shift_day}"
        )

        say("\n[2/3] Feast feature repo and connections")
        from mlops_provider.core.features import apply_repo
        from mlops_provider.hooks.feast import FeastHook
        from mlops_provider.hooks.mlflow import MlflowHook

        feast_hook = FeastHook()
        applied = apply_repo(feast_hook.store)
        say(f"  feast apply: {json.dumps(applied, default=str)}")
        ok, message = feast_hook.test_connection()
        say(f"  FeastHook.test_connection(): {'ok' if ok else 'FAILED'} - {message}")
        mlflow_hook = MlflowHook()
        ok2, message2 = mlflow_hook.test_connection()
        say(f"  MlflowHook.test_connection(): {'ok' if ok2 else 'FAILED'} - {message2}")
        if not (ok and ok2):
            raise SystemExit("a hook check failed")
