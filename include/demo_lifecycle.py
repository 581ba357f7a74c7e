"""The demo's steps (see include/demo.py): data, Feast, hooks, then the day-by-day lifecycle."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone
from typing import Any, Protocol

from include.demo import say


class Timeline:
    """The simulated period of the demo (``include/demo.py`` arguments): days, incident, shift."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.start: date = args.start
        self.days = [self.start + timedelta(days=i) for i in range(args.days)]
        self.incident_day = self.start + timedelta(days=args.incident_day - 1)
        self.shift_day = self.start + timedelta(days=args.shift_day - 1)
        self.first_training_day = self.start + timedelta(days=args.first_training_day - 1)

    def simulator(self) -> Any:
        """The churn simulator with the incident and the covariate + concept shift."""
        from include.simulator import SCENARIOS, ChurnSimulator

        scenarios = [
            *SCENARIOS["nulls"](self.incident_day, self.incident_day),
            *SCENARIOS["covariate_and_concept_shift"](self.shift_day),
        ]
        return ChurnSimulator(
            seed=self.args.seed,
            n_customers=self.args.customers,
            start_date=self.start,
            label_delay_days=self.args.label_delay,
            scenarios=scenarios,
        )


class Lifecycle:
    """Runs the reference DAGs over a simulated timeline and collects what happened."""

    def __init__(self, args: argparse.Namespace) -> None:
        from mlops_provider.core.config import data_root

        self.args = args
        timeline = Timeline(args)
        self.start: date = timeline.start
        self.days = timeline.days
        self.incident_day = timeline.incident_day
        self.shift_day = timeline.shift_day
        self.first_training_day = timeline.first_training_day
        self.simulator = timeline.simulator()
        self.lake = data_root()
        self.landing = self.lake  # raw/ and labels/ land directly in the lake
        self.records: dict[date, Any] = {}
        self.timings: dict[str, float] = {}
        self.service: Any = None

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        say("\n[1/3] Simulated data")
        started = time.perf_counter()
        for day in self.days:
            self.simulator.write_day(self.landing, day)
        self._timed("simulated data", started)
        say(
            f"  wrote {len(self.days)} daily raw exports and label drops under {self.landing} "
            f"({self.args.customers} customers, labels arrive {self.args.label_delay} days late)"
        )
        say(
            f"  data-quality incident (nulls) on {self.incident_day}; "
            f"covariate + concept shift from {self.shift_day}"
        )

        say("\n[2/3] Feast feature repo and connections")
        from mlops_common import FEATURE_REPO

        from mlops_provider.core.features import apply_repo
        from mlops_provider.hooks.feast import FeastHook
        from mlops_provider.hooks.mlflow import MlflowHook

        feast_hook = FeastHook(repo_path=FEATURE_REPO)
        applied = apply_repo(feast_hook.store)
        say(f"  feast apply: {json.dumps(applied, default=str)}")
        ok, message = feast_hook.test_connection()
        say(f"  FeastHook.test_connection(): {'ok' if ok else 'FAILED'} - {message}")
        mlflow_hook = MlflowHook()
        ok2, message2 = mlflow_hook.test_connection()
        say(f"  MlflowHook.test_connection(): {'ok' if ok2 else 'FAILED'} - {message2}")
        if not (ok and ok2):
            raise SystemExit("a hook check failed")

    # -------------------------------------------------------------- lifecycle
    def _dags(self) -> dict[str, Any]:
        import importlib

        names = (
            "mlops_feature_pipeline",
            "mlops_training_pipeline",
            "mlops_batch_scoring",
            "mlops_monitoring",
            "mlops_deployment",
        )
        return {name: importlib.import_module(name).dag for name in names}

    def _run(self, dag: Any, **kwargs: Any) -> Any:
        from include.dag_runner import run_dag

        started = time.perf_counter()
        dag_run = run_dag(dag, sync=False, **kwargs)
        self._timed(dag.dag_id, started)
        return dag_run

    def _timed(self, step: str, started: float) -> None:
        self.timings[step] = self.timings.get(step, 0.0) + time.perf_counter() - started

    def _queued_retrain(self) -> dict[str, Any] | None:
        """A training run queued by a retrain-request Asset event, as the scheduler sees it.

        Returns the event's extra and removes the queue entry (the scheduler does the same when
        it creates the asset-triggered run), or None when nothing is queued.
        """
        from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel
        from airflow.utils.session import create_session

        from mlops_provider.assets import RETRAIN_REQUEST_ASSET

        with create_session() as session:
            queued = (
                session.query(AssetDagRunQueue)
                .filter(AssetDagRunQueue.target_dag_id == "mlops_training_pipeline")
                .all()
            )
            if not queued:
                return None
            event = (
                session.query(AssetEvent)
                .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .filter(AssetModel.uri == RETRAIN_REQUEST_ASSET.uri)
                .order_by(AssetEvent.timestamp.desc())
                .first()
            )
            extra = dict(event.extra or {}) if event is not None else {}
            for row in queued:
                session.delete(row)
        return extra

    def _champion(self) -> str | None:
        from mlops_common import MODEL_NAME

        from mlops_provider.core.models import alias_holder
        from mlops_provider.hooks.mlflow import MlflowHook

        holder = alias_holder(MlflowHook().client, MODEL_NAME, "champion")
        return holder.version if holder is not None else None

    def _train(self, as_of: datetime, why: str, record: Any, *, first: bool = False) -> None:
        """One training run; ``first``: the first one, with no champion yet (``cold_start``)."""
        dag = self.dags["mlops_training_pipeline"]
        conf = {"as_of": as_of.isoformat(), "cold_start": first}
        run = LocalRun(self._run(dag, logical_date=as_of, conf=conf))
        outcome = record_training(record, run, why)
        if outcome.endswith("promoted"):
            self._deploy(record)

    # ------------------------------------------------------------- realtime service
    def _customers(self, day: date) -> list[int]:
        return [int(c) for c in self.simulator.activity(day)["customer_id"].unique()]

    def _start_service(self, day: date) -> None:
        """Start the serving app on the first champion (docs/serving.md) and name it in the
        ``mlops_serving_default`` connection the deployment DAG deploys to."""
        import os

        from mlops_common import FEATURE_REPO, MODEL_NAME, ONLINE_PREDICTIONS_URI

        from include.demo_serving import DemoService

        self.service = DemoService(MODEL_NAME, FEATURE_REPO, ONLINE_PREDICTIONS_URI)
        url = self.service.start()
        os.environ["AIRFLOW_CONN_MLOPS_SERVING_DEFAULT"] = self.service.connection()
        say(f"    service: serving {MODEL_NAME}@champion on {url} (prediction log: online)")

    def _deploy(self, record: Any) -> None:
        """Run the deployment DAG (the scheduler would, on the model asset) under traffic."""
        if self.service is None:
            self._start_service(date.fromisoformat(record.day))
            record.deployment = f"started with v{self._champion()}"
            return
        with self.service.background(self._customers(date.fromisoformat(record.day))) as seen:
            run = LocalRun(self._run(self.dags["mlops_deployment"]))
        record_deployment(record, run, seen)

    def _traffic(self, day: date, record: Any) -> None:
        if self.service is None:
            return
        started = time.perf_counter()
        stats = self.service.burst(day, self._customers(day), self.args.requests_per_day)
        self._timed("realtime traffic", started)
        stats.fill(record)
        say(
            f"    service: {stats.requests} requests, {stats.failed} failed, p99 "
            f"{record.service_p99_ms} ms, version(s) {record.served_versions}"
        )

    def _features(self, day: date, record: Any) -> bool:
        """The feature pipeline of ``day``; whether the day's features were published."""
        return record_features(
            record, LocalRun(self._run(self.dags["mlops_feature_pipeline"], day=day))
        )

    def _score_and_monitor(self, day: date, record: Any) -> None:
        """Batch scoring, then monitoring, of ``day`` (read through the common result keys)."""
        record_scoring(record, LocalRun(self._run(self.dags["mlops_batch_scoring"], day=day)))
        record_monitoring(record, LocalRun(self._run(self.dags["mlops_monitoring"], day=day)))

    def run(self) -> None:
        from include.lifecycle_report import DayRecord

        say("\n[3/3] Lifecycle through Airflow (one dag.test() run per DAG and day)")
        self.dags = self._dags()
        records: list[DayRecord] = []
        for day in self.days:
            record = DayRecord(day=day.isoformat())
            records.append(record)
            say(f"  {day}")
            published = self._features(day, record)
            end_of_day = datetime.combine(
                day + timedelta(days=1), datetime.min.time(), timezone.utc
            )
            if day == self.first_training_day:
                self._train(end_of_day, "weekly schedule", record, first=True)
            if published and self._champion() is not None:
                self._traffic(day, record)
                self._score_and_monitor(day, record)
                if self._queued_retrain() is not None:
                    self._train(
                        end_of_day + timedelta(hours=1), "retrain requested by monitoring", record
                    )
            record.champion_version = self._champion()
        if self.service is not None:
            self.service.stop()
        self._report(records)

    def _report(self, records: list[Any]) -> None:
        versions = [r.scored_with for r in records if r.scored_with]
        facts = {
            "days simulated": len(records),
            "shift injected from": self.shift_day.isoformat(),
            "models used for scoring": " -> ".join(dict.fromkeys(versions)) or "none",
            "final champion": records[-1].champion_version if records else None,
            "realtime requests (failed)": (
                f"{sum(r.service_requests or 0 for r in records)} "
                f"({sum(r.service_errors or 0 for r in records)})"
            ),
            "seconds per step": ", ".join(f"{k}: {v:.0f}" for k, v in self.timings.items()),
            **_gain_facts(records),
        }
        write_lifecycle_report(
            records, facts, str(self.lake / "reports"), extra_sections=[_champion_traces()]
        )
        self._governance_commands(records)

    def _governance_commands(self, records: list[Any]) -> None:
        """How to ask the demo's stores where a prediction came from and whether the champion
        can be rebuilt (docs/governance.md)."""
        import os
        import sys
        from pathlib import Path

        from mlops_common import MODEL_NAME, PREDICTIONS_URI

        scored = [r for r in records if r.scored_with]
        if not scored:
            return
        customer = self._customers(date.fromisoformat(scored[-1].day))[0]
        python = os.path.relpath(sys.executable, Path.cwd())
        env = f"AIRFLOW_HOME={os.environ['AIRFLOW_HOME']} MLOPS_PROJECT_ROOT={Path.cwd()}"
        say("\nWhere a prediction came from, and the champion rebuilt (docs/governance.md):")
        say(
            f"  {env} {python} -m mlops_provider trace {PREDICTIONS_URI} "
            f"--row customer_id={customer} --day {scored[-1].day}"
        )
        say(f"  {env} {python} -m mlops_provider reproduce {MODEL_NAME}@champion")


def _champion_traces() -> tuple[str, str]:
    """The lineage of every champion (docs/lineage.md), as the report's last section."""
    from mlops_common import MODEL_NAME

    from mlops_provider.core.governance.trace import champion_traces_html
    from mlops_provider.hooks.mlflow import MlflowHook

    return ("", champion_traces_html(MODEL_NAME, MlflowHook().client))  # carries its heading


def _gain_facts(records: list[Any]) -> dict[str, str]:
    """The closing lines: the gain per retrained champion, then overall."""
    from include.lifecycle_report import retraining_gain

    measured = retraining_gain(records)
    if measured is None:
        why = "not measured (no retrained champion's predictions matured in the timeline)"
        return {"retraining gain": why}
    return {
        "matured AUC gain over the first champion, per served version": measured.per_version(),
        "retraining gain": measured.sentence(),
    }


def write_lifecycle_report(
    records: list[Any],
    facts: dict[str, Any],
    directory: str,
    *,
    extra_sections: Sequence[tuple[str, str]] = (),
) -> str:
    """Print the per-day table and the facts; write ``lifecycle.html`` (with the
    ``extra_sections``, ``(title, html)`` pairs, at its end) and ``lifecycle.json`` into
    ``directory`` (a local path or a URI). Returns the HTML report's location."""
    from include.lifecycle_report import format_table, render_lifecycle_report
    from mlops_provider.core import io

    say("\nPer-day summary")
    say(format_table(records))
    path = io.join_uri(directory, "lifecycle.html")
    io.write_text(
        render_lifecycle_report(records, facts=facts, extra_sections=extra_sections), path
    )
    summary = [r.to_dict() for r in records]
    io.write_text(
        json.dumps(summary, indent=2, default=str), io.join_uri(directory, "lifecycle.json")
    )
    say(f"\nLifecycle report: {path}")
    for key, value in facts.items():
        say(f"  {key}: {value}")
    return path


class RunView(Protocol):
    """A finished DAG run as the lifecycle reads it: task states and XComs."""

    state: str

    def task_states(self) -> dict[str, str]: ...

    def xcom(self, task_id: str) -> Any: ...


class LocalRun:
    """A ``dag.test()`` run (metadata DB read in-process)."""

    def __init__(self, dag_run: Any) -> None:
        self.dag_run = dag_run
        self.state = str(dag_run.state)

    def task_states(self) -> dict[str, str]:
        from include.dag_runner import task_states

        return task_states(self.dag_run)

    def xcom(self, task_id: str) -> Any:
        from include.dag_runner import xcom

        return xcom(self.dag_run, task_id)


def record_features(record: Any, run: RunView) -> bool:
    """Fill ``record`` from a feature pipeline run; whether the day's features were published."""
    validation = run.xcom("validate_raw") or {}
    record.rows = validation.get("rows")
    published = run.task_states().get("materialize") == "success"
    record.validation = "passed" if published else "quarantined"
    if not published:
        reasons = "; ".join(validation.get("reasons") or [])
        record.notes.append(f"raw export quarantined: {reasons}")
    say(f"    features: {record.validation} ({record.rows} rows)")
    return published


def record_training(record: Any, run: RunView, why: str) -> str:
    """Fill ``record`` from a training run: promoted, rejected or failed (and the reasons)."""
    states = run.task_states()
    evaluation = run.xcom("evaluate") or {}
    promoted = run.xcom("promote") or {}
    if states.get("promote") == "success" and promoted.get("status") == "promoted":
        outcome = f"{why}: v{_model(promoted).get('version')} promoted"
    elif states.get("record_rejection") == "success":
        outcome = f"{why}: candidate rejected"
    else:
        failed = [t for t, s in states.items() if s == "failed"]
        outcome = f"{why}: failed ({', '.join(failed) or run.state})"
    record.training = outcome
    record.notes += list(evaluation.get("reasons") or [])
    say(f"    training ({why}) -> {outcome}")
    return outcome


def record_deployment(record: Any, run: RunView, traffic: Any) -> None:
    """Fill ``record`` from a deployment run and the traffic that ran during it."""
    deployed = run.xcom("deploy") or {}
    validated = run.xcom("validate_serving") or {}
    states = run.task_states()
    if states.get("deploy") == "success":
        outcome = f"v{deployed.get('version')} {deployed.get('status')}"
    else:
        failed = [t for t, s in states.items() if s == "failed"]
        outcome = f"failed ({', '.join(failed) or run.state})"
        record.notes += list(validated.get("reasons") or [])
    record.deployment = f"{outcome}; {traffic.failed} of {traffic.requests} requests failed"
    traffic.fill(record)
    say(
        f"    deployment: {outcome} (validation p99 "
        f"{(validated.get('latency_ms') or {}).get('p99')} ms); during the swap "
        f"{traffic.requests} requests, {traffic.failed} failed"
    )


def record_scoring(record: Any, run: RunView) -> None:
    scored = run.xcom("score") or {}
    record.scored_rows = scored.get("rows")
    record.scored_with = _model(scored).get("version")
    say(f"    scoring: {record.scored_rows} rows with v{record.scored_with}")


def record_monitoring(record: Any, run: RunView) -> None:
    drift = run.xcom("data_drift") or {}
    performance = run.xcom("performance") or {}
    decision = run.xcom("retrain_decision") or {}
    record.drift_share = drift.get("drift_share")
    record.dataset_drift = _verdict(drift, "drift")
    record.performance_status = performance.get("status")
    record.roc_auc = (performance.get("metrics") or {}).get("roc_auc")
    record.baseline_roc_auc = (performance.get("baseline") or {}).get("roc_auc")
    skew = run.xcom("training_serving_skew") or {}
    record.skew = skew.get("status")
    record.retrain_decision = _verdict(decision, "retrain")
    record.decision_reasons = list(decision.get("reasons") or [])
    record_gain(record, performance)
    say(
        f"    monitoring: drift share {record.drift_share}, performance "
        f"{record.performance_status} (AUC {record.roc_auc}), retrain: "
        f"{record.retrain_decision} {record.decision_reasons}"
    )
    for line in decision.get("retraining_gain") or []:
        say(f"    gain: {line}")


def record_gain(record: Any, performance: dict[str, Any]) -> None:
    """The matured rows' AUC of the first champion ("never retrained") on the same rows: its
    counterfactual score, or the served AUC itself when the first champion served them."""
    comparison = performance.get("comparison") or {}
    record.matured_version = _model(performance).get("version")
    first = next(
        (c for c in performance.get("counterfactuals") or [] if c["role"] == "first_champion"),
        None,
    )
    if first is not None:
        record.first_champion_version = first["version"]
        record.first_champion_roc_auc = (first.get("metrics") or {}).get("roc_auc")
        record.roc_auc = (comparison.get("metrics") or {}).get("roc_auc", record.roc_auc)
    elif comparison and any(
        "never retrained" in n for n in performance.get("counterfactual_notes") or []
    ):
        record.first_champion_version = record.matured_version
        record.first_champion_roc_auc = (comparison.get("metrics") or {}).get("roc_auc")
    previous = next(
        (c for c in performance.get("counterfactuals") or [] if c["role"] == "previous_champion"),
        None,
    )
    if previous is not None:
        record.previous_champion_roc_auc = (previous.get("metrics") or {}).get("roc_auc")
    record.compared_rows = comparison.get("rows")
    record.compared_days = list(comparison.get("days") or [])
    record.rows_digest = comparison.get("rows_digest")


def _model(result: dict[str, Any]) -> dict[str, Any]:
    """The ``model`` entry of a result (docs/results.md), ``{}`` when there is none."""
    return result.get("model") or {}


def _verdict(result: dict[str, Any], status: str) -> bool | None:
    """Whether a result's ``status`` is ``status``; ``None`` when the task left no result."""
    return result["status"] == status if result.get("status") else None
