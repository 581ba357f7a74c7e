"""``make stack-demo``: the lifecycle of ``make demo`` on the native stack, driven by Airflow.

No ``dag.test()``: every run is created through the API server's REST API and executed by the
scheduler, the Celery worker and the triggerer of ``make stack`` (stack/stack.py):

1. the simulated days (same simulator, incident and shift as ``make demo``) land in the S3 lake;
2. one backfill of ``mlops_feature_pipeline`` covers the whole period (several days at once);
3. on the first training day the training pipeline is triggered (as its weekly schedule would,
   with ``cold_start``: there is no champion yet);
4. from then on, day by day: a backfill run of ``mlops_batch_scoring`` (its ``features_ready``
   sensor waits in the triggerer until the feature backfill has materialized that day), then one
   of ``mlops_monitoring``; when monitoring decides to retrain, its retrain-request Asset event
   makes the scheduler start an asset-triggered ``mlops_training_pipeline`` run, which the
   driver waits for before scoring the next day with whatever is champion then;
5. every promotion emits the model asset, on which the scheduler starts ``mlops_deployment``:
   the new champion is validated in the serving app and deployed to the stack's running
   service (``mlops-serving``, connection ``mlops_serving_default``); the driver records each
   deployment run's outcome (without waiting for it before the next day; all are awaited at the
   end) and, each scored day, sends the service a few entity requests (the service's version
   and request stats go into the per-day table);
6. the same per-day table as ``make demo``, read from XComs through the REST API, and the HTML
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
DEPLOYMENT = "mlops_deployment"
RUN_TIMEOUT = 900.0
"""Seconds one DAG run may take before the driver gives up (it waits in the queue too)."""


def _p99(validated: dict[str, Any]) -> Any:
    return (validated.get("latency_ms") or {}).get("p99")


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
        # the deployment's verification window: the driver's requests are the only traffic
        "MLOPS_SERVING_VERIFY_SECONDS": os.environ.get("MLOPS_SERVING_VERIFY_SECONDS", "10"),
        # validate_serving's single-row p99 budget: on this machine the serving app shares the
        # cores with the lifecycle's other tasks (p99 near 2 s seen on 2 cores, 250 ms alone)
        "MLOPS_SERVING_MAX_P99_MS": os.environ.get("MLOPS_SERVING_MAX_P99_MS", "5000"),
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
        self.deployments: dict[str, date] = {}
        """``mlops_deployment`` runs the promotions started: run id -> the promotion's day."""
        self.deployed: dict[str, dict[str, Any]] = {}
        """Finished deployment runs: run id -> state, validation and deploy XComs."""
        self._simulator: Any = None

    # ------------------------------------------------------------------ data
    def land_data(self) -> int:
        """Simulate every day and upload its raw export and label drop to the S3 lake."""
        client = s3_client(self.settings)
        simulator = self._simulator = self.timeline.simulator()
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
        seen = self._deployment_runs()
        conf = {"as_of": as_of, "cold_start": True}  # no champion yet
        run_id = self.api.trigger(TRAINING, logical_date=as_of, conf=conf)
        self.trainings.append(run_id)
        outcome = record_training(
            self.records[day], self._timed_wait(TRAINING, run_id), "weekly schedule"
        )
        self._deployment_started(day, outcome, seen)

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
            self._traffic(day)
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
        deployments = self._deployment_runs()
        record = self.records[day]
        record_monitoring(record, self._backfill_day(MONITORING, day))
        if record.retrain_decision:
            run_id = self._asset_triggered_training(seen)
            self.trainings.append(run_id)
            run = self._timed_wait(TRAINING, run_id)
            outcome = record_training(record, run, "retrain requested by monitoring")
            self._deployment_started(day, outcome, deployments)

    # ------------------------------------------------------------------ realtime service
    def _deployment_runs(self) -> set[str]:
        return {r["dag_run_id"] for r in self.api.runs(DEPLOYMENT, run_type="asset_triggered")}

    def _deployment_started(self, day: date, outcome: str, seen: set[str]) -> None:
        """After a promotion: the ``mlops_deployment`` run the scheduler started on the model
        asset (not awaited here: it validates and deploys while the next days run)."""
        if not outcome.endswith("promoted"):
            return

        def created() -> str | None:
            new = self._deployment_runs() - seen - set(self.deployments)
            return min(new) if new else None

        run_id = wait_until("the asset-triggered deployment run", created, 180, every=1)
        self.deployments[run_id] = day
        say(f"    deployment: {DEPLOYMENT} run {run_id} started by the model asset")

    def collect_deployments(self, wait: bool = False) -> None:
        """Record the deployment runs that finished (``wait``: all of them, awaited)."""
        for run_id, day in self.deployments.items():
            if run_id in self.deployed:
                continue
            if wait:
                run = self._timed_wait(DEPLOYMENT, run_id)
            else:
                current = self.api.run(DEPLOYMENT, run_id)
                if current["state"] not in ("success", "failed"):
                    continue
                run = ApiRun(self.api, DEPLOYMENT, current)
            self._record_deployment(day, run)

    def _record_deployment(self, day: date, run: ApiRun) -> None:
        validated = run.xcom("validate_serving") or {}
        deployed = run.xcom("deploy") or {}
        states = run.task_states()
        self.deployed[run.run_id] = {
            "state": run.state,
            "tasks": states,
            "validate_serving": validated,
            "deploy": deployed,
        }
        if states.get("deploy") == "success":
            outcome = f"v{deployed.get('version')} {deployed.get('status')}"
        elif states.get("deploy") == "skipped":
            outcome = f"v{validated.get('version')} {validated.get('status')}, not deployed"
        else:
            failed = [t for t, s in states.items() if s == "failed"]
            outcome = f"failed ({', '.join(failed) or run.state})"
        record = self.records[day]
        record.deployment = f"{outcome} (validation p99 {_p99(validated)} ms)"
        say(f"    deployment of {day}: {record.deployment}")

    def serving_state(self) -> dict[str, Any]:
        """The service's ``/readyz`` body (``{}`` when it does not answer)."""
        import requests

        try:
            return dict(requests.get(f"{self.settings.serving_url}/readyz", timeout=10).json())
        except (requests.RequestException, ValueError):
            return {}

    def _traffic(self, day: date) -> None:
        """A few entity requests to the service (features from the Redis online store): its
        answers' versions and latencies go into the day's record."""
        import httpx

        from include.demo_serving import DayTraffic

        if not self.args.requests_per_day or not self.serving_state().get("ready"):
            return
        activity = self._simulator.activity(day) if self._simulator is not None else None
        if activity is None:
            return
        customers = [int(c) for c in activity["customer_id"].unique()]
        stats = DayTraffic()
        with httpx.Client(base_url=self.settings.serving_url, timeout=30) as client:
            for i in range(self.args.requests_per_day):
                size = 20 if i % 5 == 4 else 1
                entities = [{"customer_id": c} for c in customers[i * 7 % len(customers) :][:size]]
                started = time.perf_counter()
                resp = client.post("/predict", json={"entities": entities, "request_id": f"{i}"})
                version = resp.json()["model"]["version"] if resp.status_code == 200 else None
                stats.add(resp.status_code, time.perf_counter() - started, version)
        stats.fill(self.records[day])
        record = self.records[day]
        say(
            f"    service: {stats.requests} requests, {stats.failed} failed, p99 "
            f"{record.service_p99_ms} ms, version(s) {record.served_versions}"
        )

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
        for dag_id in (FEATURES, TRAINING, SCORING, MONITORING, DEPLOYMENT):
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
            self.collect_deployments()
        self.collect_deployments(wait=True)
        served = (self.serving_state().get("model") or {}).get("version")
        say(f"  service: serving version {served} (champion {self.champion()})")
        return list(self.records.values())

    def _day(self, day: date) -> None:
        published = self._features(day)
        if day == self.timeline.first_training_day:
            self._first_training(day)
        if published and self.champion():
            self._traffic(day)
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
            "deployment runs": ", ".join(
                f"{run_id}: {d['state']}" for run_id, d in self.deployed.items()
            ),
            "served version at the end": (self.serving_state().get("model") or {}).get("version"),
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
    parser.add_argument(
        "--requests-per-day",
        type=int,
        default=50,
        help="entity requests to the serving app per scored day (0: none)",
    )
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
