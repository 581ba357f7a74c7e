"""``make stack-demo``: the lifecycle of ``make demo`` on the native stack, driven by Airflow.

No ``dag.test()``: every run is created through the API server's REST API and executed by the
scheduler, the Celery worker and the triggerer of ``make stack`` (stack/stack.py):

1. the simulated days (same simulator, incident and shift as ``make demo``) land in the S3 lake;
2. one backfill of ``mlops_feature_pipeline`` covers the whole period (several days at once);
3. on the first training day the training pipeline is triggered (as its weekly schedule would);
4. from then on, day by day: a backfill run of ``mlops_batch_scoring`` (its ``features_ready``
   sensor waits in the triggerer until the feature backfill has materialized that day), then one
   of ``mlops_monitoring``; when monitoring decides to retrain, its retrain-request Asset event
   makes the scheduler start an asset-triggered ``mlops_training_pipeline`` run, which the
   driver waits for before scoring the next day with whatever is champion then;
5. the same per-day table as ``make demo``, read from XComs through the REST API, and the HTML
   lifecycle report under ``<stack home>/reports/``.

By default the stack is restarted from empty databases, Redis dbs and lake (``--keep`` reuses a
running stack as it is), with the DAGs' schedule ending on the last simulated day
(``MLOPS_DAG_END_DATE``) so unpausing them starts no run of "today", deferrable sensors and a
10 s sensor poke interval. The stack keeps running afterwards: look at the runs in the UI, then
``make stack-down``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from stack.api import AirflowApi, ApiRun, wait_until
from stack.stack import ROOT, Settings, s3_client, say

FEATURES = "mlops_feature_pipeline"
TRAINING = "mlops_training_pipeline"
SCORING = "mlops_batch_scoring"
MONITORING = "mlops_monitoring"
RUN_TIMEOUT = 900.0
"""Seconds one DAG run may take before the driver gives up (it waits in the queue too)."""


def _midnight(day: date) -> str:
    return datetime.combine(day, datetime.min.time(), timezone.utc).isoformat()


def demo_environment(args: argparse.Namespace) -> dict[str, str]:
    """What ``make stack-demo`` sets for the stack it starts (see the module docstring)."""
    last = args.start + timedelta(days=args.days - 1)
    return {
        "MLOPS_DAG_END_DATE": last.isoformat(),
        "MLOPS_STACK_DEFERRABLE": "true",
        "MLOPS_SENSOR_POKE_INTERVAL": os.environ.get("MLOPS_SENSOR_POKE_INTERVAL", "10"),
        # tasks mostly wait on the MLflow server and S3: four at a time keep 2 cores busy
        "MLOPS_STACK_WORKER_CONCURRENCY": os.environ.get("MLOPS_STACK_WORKER_CONCURRENCY", "4"),
    }


class StackLifecycle:
    """Drives the reference DAGs over the simulated period through Airflow's REST API.

    :param settings: the running stack.
    :param args: the period (include/demo.py's options: --days, --customers, ...).
    :param feature_runs: feature pipeline days processed at the same time by the backfill.
    """

    def __init__(self, settings: Settings, args: argparse.Namespace, feature_runs: int = 3) -> None:
        from include.demo_lifecycle import Timeline
        from include.lifecycle_report import DayRecord

        self.settings = settings
        self.args = args
        self.timeline = Timeline(args)
        self.feature_runs = feature_runs
        self.api = AirflowApi(settings.api_url, settings.admin_user, settings.admin_password)
        self.records = {day: DayRecord(day=day.isoformat()) for day in self.timeline.days}
        self.seconds: dict[str, float] = {}
        self.deferred: list[dict[str, Any]] = []
        """Scoring runs whose sensor waited in the triggerer: run id, day, the deferred TI."""
        self.trainings: list[str] = []

    # ------------------------------------------------------------------ data
    def land_data(self) -> int:
        """Simulate every day and upload its raw export and label drop to the S3 lake."""
        client = s3_client(self.settings)
        simulator = self.timeline.simulator()
        count = 0
        with tempfile.TemporaryDirectory() as tmp:
            for day in self.timeline.days:
                for path in simulator.write_day(tmp, day).values():
                    key = f"lake/{Path(path).relative_to(tmp).as_posix()}"
                    client.upload_file(path, self.settings.lake_bucket, key)
                    count += 1
        say(
            f"  {count} files for {len(self.timeline.days)} days in "
            f"{self.settings.lake_uri} ({self.args.customers} customers); incident on "
            f"{self.timeline.incident_day}, shift from {self.timeline.shift_day}"
        )
        return count

    # ------------------------------------------------------------------ runs
    def _timed_wait(self, dag_id: str, run_id: str) -> ApiRun:
        started = time.monotonic()
        run = self.api.wait_finished(dag_id, run_id, RUN_TIMEOUT)
        self.seconds[dag_id] = self.seconds.get(dag_id, 0.0) + time.monotonic() - started
        return ApiRun(self.api, dag_id, run)

    def _backfill_run(self, dag_id: str, day: date) -> str:
        """The id of the backfill run of ``dag_id`` for ``day`` (waits for its creation)."""

        def created() -> str | None:
            for run in self.api.runs(dag_id, run_type="backfill"):
                if run["data_interval_start"].startswith(day.isoformat()):
                    return str(run["dag_run_id"])
            return None

        return wait_until(f"the backfill run of {dag_id} for {day}", created, 180, every=1)

    def _backfill_day(self, dag_id: str, day: date) -> ApiRun:
        self.api.backfill(dag_id, _midnight(day), _midnight(day))
        return self._timed_wait(dag_id, self._backfill_run(dag_id, day))

    def _features(self, day: date) -> bool:
        from include.demo_lifecycle import record_features

        run = self._timed_wait(FEATURES, self._backfill_run(FEATURES, day))
        return record_features(self.records[day], run)

    def _first_training(self, day: date) -> None:
        from include.demo_lifecycle import record_training

        as_of = _midnight(day + timedelta(days=1))
        run_id = self.api.trigger(TRAINING, logical_date=as_of, conf={"as_of": as_of})
        self.trainings.append(run_id)
        record_training(self.records[day], self._timed_wait(TRAINING, run_id), "weekly schedule")

    def _scoring(self, day: date) -> None:
        from include.demo_lifecycle import record_scoring

        run = self._backfill_day(SCORING, day)
        record_scoring(self.records[day], run)

    def _late_day(self, day: date) -> None:
        """The last day's features arrive after its scoring started: the ``features_ready``
        sensor waits in the triggerer (deferred) and resumes when they are materialized."""
        from include.demo_lifecycle import record_scoring

        self.api.backfill(SCORING, _midnight(day), _midnight(day))
        scoring_id = self._backfill_run(SCORING, day)
        path = f"/dags/{SCORING}/dagRuns/{scoring_id}/taskInstances/features_ready"

        def deferred() -> dict[str, Any] | None:
            ti = self.api.get(path)
            trigger = ti.get("trigger") or {}
            return ti if ti["state"] == "deferred" and trigger.get("triggerer_id") else None

        ti = wait_until(f"features_ready of {day} to defer", deferred, 300, every=1)
        self.deferred.append({"run_id": scoring_id, "day": day, "ti": ti})
        say(f"    scoring of {day} waits in the triggerer (deferred) for the day's features")
        self.api.backfill(FEATURES, _midnight(day), _midnight(day))
        published = self._features(day)
        run = self._timed_wait(SCORING, scoring_id)
        if published:
            record_scoring(self.records[day], run)
            self._monitoring(day)

    def _asset_triggered_training(self, seen: set[str]) -> str:
        def created() -> str | None:
            for run in self.api.runs(TRAINING, run_type="asset_triggered"):
                if run["dag_run_id"] not in seen:
                    return str(run["dag_run_id"])
            return None

        return wait_until("the asset-triggered training run", created, 180, every=1)

    def _monitoring(self, day: date) -> None:
        from include.demo_lifecycle import record_monitoring, record_training

        seen = {r["dag_run_id"] for r in self.api.runs(TRAINING, run_type="asset_triggered")}
        record = self.records[day]
        record_monitoring(record, self._backfill_day(MONITORING, day))
        if record.retrain_decision:
            run_id = self._asset_triggered_training(seen)
            self.trainings.append(run_id)
            run = self._timed_wait(TRAINING, run_id)
            record_training(record, run, "retrain requested by monitoring")

    def champion(self) -> str | None:
        """The version holding the champion alias on the stack's MLflow server."""
        from mlflow import MlflowClient
        from mlops_common import MODEL_NAME

        from mlops_provider.core.models import alias_holder

        client = MlflowClient(tracking_uri=self.settings.mlflow_url)
        holder = alias_holder(client, MODEL_NAME, "champion")
        return holder.version if holder is not None else None

    def run(self) -> list[Any]:
        """The whole period; the per-day records."""
        days = self.timeline.days
        for dag_id in (FEATURES, TRAINING, SCORING, MONITORING):
            self.api.set_paused(dag_id, False)
        say(f"  backfill of {FEATURES}: {days[0]} .. {days[-2]}, {self.feature_runs} at a time")
        self.api.backfill(
            FEATURES, _midnight(days[0]), _midnight(days[-2]), max_active_runs=self.feature_runs
        )
        for day in days:
            say(f"  {day}")
            if day == days[-1] and self.champion():
                self._late_day(day)
            else:
                self._day(day)
            self.records[day].champion_version = self.champion()
        return list(self.records.values())

    def _day(self, day: date) -> None:
        published = self._features(day)
        if day == self.timeline.first_training_day:
            self._first_training(day)
        if published and self.champion():
            self._scoring(day)
            self._monitoring(day)

    def facts(self, records: list[Any], seconds: float) -> dict[str, Any]:
        versions = [r.scored_with for r in records if r.scored_with]
        return {
            "days simulated": len(records),
            "shift injected from": self.timeline.shift_day.isoformat(),
            "models used for scoring": " -> ".join(dict.fromkeys(versions)) or "none",
            "final champion": records[-1].champion_version if records else None,
            "training runs": ", ".join(self.trainings),
            "scoring runs whose sensor deferred": len(self.deferred),
            "seconds waited per DAG": ", ".join(f"{k}: {v:.0f}" for k, v in self.seconds.items()),
            "lifecycle seconds": f"{seconds:.0f}",
        }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from include.demo import add_timeline_arguments

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_timeline_arguments(parser, days=14)
    parser.add_argument(
        "--keep", action="store_true", help="use the running stack as it is (no restart, no reset)"
    )
    parser.add_argument("--feature-runs", type=int, default=3, help="feature days at a time")
    return parser.parse_args(argv)


def _fresh_stack(args: argparse.Namespace) -> Settings:
    from stack import stack

    os.environ.update(demo_environment(args))
    settings = Settings()
    say("Restarting the stack from empty state (make stack-demo --keep reuses it)")
    stack.stop_all(settings)
    stack.reset(settings)
    if stack.up(settings) != 0:
        raise SystemExit("the stack did not start: see the logs above")
    return settings


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.days < 14:
        raise SystemExit(f"--days {args.days}: the lifecycle needs at least 14 days")
    for path in (str(ROOT / "dags"), str(ROOT)):
        if path not in sys.path:
            sys.path.insert(0, path)
    settings = Settings() if args.keep else _fresh_stack(args)
    started = time.monotonic()
    say(f"\nMLOps lifecycle on the stack ({settings.api_url}), driven by Airflow")
    lifecycle = StackLifecycle(settings, args, feature_runs=args.feature_runs)
    lifecycle.land_data()
    records = lifecycle.run()
    from include.demo_lifecycle import write_lifecycle_report

    facts = lifecycle.facts(records, time.monotonic() - started)
    write_lifecycle_report(records, facts, str(settings.home / "reports"))
    say(f"\nRuns in the UI: {settings.api_url}/dags (login {settings.admin_user})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
