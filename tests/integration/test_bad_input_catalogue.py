"""The bad-input catalogue (tests/integration/bad_input): every case in a real DAG run.

One parametrized test: each case's task must end in its expected state, its error (or warning)
must name what is at fault, and the world must hold nothing the case did not allow afterwards
(no registered model, version, alias or lock; no MLflow run left RUNNING; no file in the lake).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from include.dag_runner import run_dag, task_states, xcom
from include.simulator import ChurnSimulator
from mlops_provider.core import io
from tests.conftest import task_log_records
from tests.integration.bad_input import (
    START,
    UNDER_TEST,
    BadInput,
    World,
    all_cases,
    leftovers,
    snapshot,
)

pytestmark = pytest.mark.integration

CASES = all_cases()


def _champion(world: World) -> None:
    """Train, evaluate (cold start) and promote the world's first champion through a DAG."""
    from airflow.sdk import DAG

    from mlops_provider.operators.evaluation import EvaluateModelOperator
    from mlops_provider.operators.registry import PromoteModelOperator
    from mlops_provider.operators.training import TrainModelOperator

    with DAG("bad_input_world", schedule=None, start_date=START) as dag:
        train = TrainModelOperator(
            task_id="train",
            training_data=world.train_uri,
            target="churned",
            entity_columns=["customer_id"],
            estimator="sklearn.linear_model.LogisticRegression",
            estimator_params={"max_iter": 300},
            experiment_name="bad-input-world",
        )
        evaluate = EvaluateModelOperator(
            task_id="evaluate",
            model_uri="{{ ti.xcom_pull(task_ids='train')['model']['uri'] }}",
            registered_model_name=world.model,
            evaluation_data=world.eval_uri,
            target="churned",
            cold_start=True,  # the world's first champion
        )
        promote = PromoteModelOperator(
            task_id="promote", registered_model_name=world.model, evaluation=evaluate.output
        )
        train >> evaluate >> promote
    run = run_dag(dag, logical_date=START)
    assert set(task_states(run).values()) == {"success"}, task_states(run)
    promoted = xcom(run, "promote")
    world.champion_version = str(promoted["version"])
    world.champion_run_id = str(xcom(run, "train")["run_id"])


@pytest.fixture(scope="module")
def world(airflow_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("bad-input") / "mlops"
    saved = os.environ.get("MLOPS_HOME")
    os.environ["MLOPS_HOME"] = str(home)
    lake = home / "data"
    sim = ChurnSimulator(seed=21, n_customers=600)
    world = World(
        home=home,
        lake=lake,
        train_uri=str(lake / "train.parquet"),
        eval_uri=str(lake / "eval.parquet"),
        score_uri=str(lake / "score" / "dt=2026-01-09" / "rows.parquet"),
        raw_uri=sim.write_day(lake, date(2026, 1, 9))["raw"],
        tracking_uri=f"sqlite:///{home / 'mlflow' / 'mlflow.db'}",
    )
    io.write_table(sim.labelled(date(2026, 1, 1), 4), world.train_uri)
    io.write_table(sim.labelled(date(2026, 1, 5), 2), world.eval_uri)
    score = sim.activity(date(2026, 1, 9)).drop(columns=["event_timestamp"])
    io.write_table(score, world.score_uri)
    _champion(world)
    yield world
    if saved is None:
        os.environ.pop("MLOPS_HOME", None)
    else:
        os.environ["MLOPS_HOME"] = saved


def _task_text(records: list[logging.LogRecord]) -> str:
    """The task's log: messages and formatted exceptions."""
    formatter = logging.Formatter()
    lines = []
    for record in records:
        lines.append(record.getMessage())
        if record.exc_info:
            lines.append(formatter.formatException(record.exc_info))
    return "\n".join(lines)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(
    case: BadInput, world: World, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture
) -> None:
    from airflow.sdk import DAG

    if case.setup is not None:
        case.setup(world)
    before = snapshot(world)
    with DAG(
        f"bad_input_{case.id.replace('-', '_')}", schedule=case.schedule, start_date=START
    ) as dag:
        case.build(world)
    assert UNDER_TEST in dag.task_dict, f"case {case.id} built no task {UNDER_TEST!r}"
    capfd.readouterr()
    started = time.monotonic()
    with caplog.at_level(logging.INFO):
        run = run_dag(dag, logical_date=START, conf=dict(case.conf or {}))
    seconds = time.monotonic() - started
    # the task's log: what reached logging, and what Airflow's structlog printed (the error)
    printed = capfd.readouterr()
    text = "\n".join(
        [_task_text(task_log_records(caplog.records, UNDER_TEST)), printed.out, printed.err]
    )
    state = task_states(run)[UNDER_TEST]
    assert state == case.state, (
        f"{case.id}: task ended {state}, expected {case.state}:\n{text[-3000:]}"
    )
    if case.state == "success":
        text += "\n" + json.dumps(xcom(run, UNDER_TEST), default=str)
    missing = [word for word in case.expect if word not in text]
    assert not missing, f"{case.id}: the task's output does not name {missing}:\n{text[-3000:]}"
    left = leftovers(before, snapshot(world), case)
    assert not left, f"{case.id} left behind: {left}"
    assert seconds < case.timeout, f"{case.id} took {seconds:.0f} s (limit {case.timeout:g} s)"
