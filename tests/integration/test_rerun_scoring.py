"""Reruns of batch scoring for one data interval (``dag.test()``, embedded MLflow store): a new
DAG run replaces the partition; a run killed mid-write (``MLOPS_KILL_AT``) leaves staging areas
that the next run removes, and the next run's partition equals a clean run's."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from include.dag_runner import run_dag, task_states
from mlops_provider.core import io
from tests.integration.test_scoring_operator import (  # noqa: F401 - fixtures
    DAY,
    churn,
    pipelines,
    raw,
    registry,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "rerun_scoring"


def build_dag(raw_dir: str, output_uri: str) -> Any:
    """The scoring DAG: one ``BatchScoringOperator`` for the day's raw partition."""
    from datetime import datetime, timezone

    from airflow.sdk import DAG
    from airflow.timetables.interval import CronDataIntervalTimetable

    from mlops_provider.operators.scoring import BatchScoringOperator

    with DAG(
        dag_id=DAG_ID,
        schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
    ) as dag:
        BatchScoringOperator(
            task_id="score",
            model_uri="models:/churn@champion",
            input_data=raw_dir + "/dt={{ data_interval_start | ds }}",
            output_uri=output_uri,
        )
    return dag


def _run_killed_at(point: str, raw_dir: str, output_uri: str) -> int:
    """Run the DAG for DAY in a subprocess with ``MLOPS_KILL_AT=point``; its exit code (the
    subprocess imports no test module: the test configuration would reset its environment)."""
    code = "\n".join(
        [
            "from datetime import date",
            "from typing import Any",
            "from include.dag_runner import run_dag",
            f"DAG_ID = {DAG_ID!r}",
            inspect.getsource(build_dag),
            f"run_dag(build_dag({raw_dir!r}, {output_uri!r}), date.fromisoformat({str(DAY)!r}))",
        ]
    )
    path = os.pathsep.join([str(ROOT / "provider"), str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "MLOPS_KILL_AT": point, "PYTHONPATH": path}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, timeout=600
    )
    if done.returncode != -9:  # show what happened instead
        print(done.stdout.decode()[-5000:], done.stderr.decode()[-5000:])
    return done.returncode


def _leftovers(lake: Path) -> list[str]:
    return sorted(
        str(p.relative_to(lake))
        for p in lake.rglob("*")
        if p.name.startswith((".staging-", ".trash-"))
    )


def _frame(partition: Path) -> pd.DataFrame:
    """The partition's rows without the scoring time, sorted."""
    frame = io.read_pandas(str(partition)).drop(columns=["scored_at"])
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def _run(dag: Any) -> Any:
    run = run_dag(dag, DAY)
    assert task_states(run) == {"score": "success"}
    return run


def _raw(mlops_home: Path) -> Path:
    """The day's raw partition (the ``raw`` fixture)."""
    return mlops_home / "data" / "raw" / f"dt={DAY.isoformat()}"


@pytest.mark.usefixtures("airflow_db", "churn", "raw")
def test_a_new_dag_run_replaces_the_partition(mlops_home: Path) -> None:
    raw_dir = _raw(mlops_home)
    base = mlops_home / "data" / "predictions"
    partition = base / f"dt={DAY.isoformat()}"
    dag = build_dag(str(raw_dir.parent), str(base))
    first = _run(dag)
    before = _frame(partition)
    rows = len(pd.read_parquet(raw_dir))
    assert len(before) == rows

    again = _run(dag)
    assert again.run_id != first.run_id  # a new DAG run for the same interval
    after = _frame(partition)
    assert len(after) == rows
    assert not after.duplicated(subset=["customer_id"]).any()
    pd.testing.assert_frame_equal(after, before)
    assert sorted(p.name for p in base.iterdir()) == [partition.name]
    assert _leftovers(mlops_home / "data") == []


@pytest.mark.usefixtures("airflow_db", "churn", "raw")
@pytest.mark.parametrize("point", io.POINTS)
def test_a_run_killed_mid_write_is_cleaned_by_the_next_run(mlops_home: Path, point: str) -> None:
    raw_dir = _raw(mlops_home)
    lake = mlops_home / "data"
    base = lake / "predictions"
    partition = base / f"dt={DAY.isoformat()}"
    dag = build_dag(str(raw_dir.parent), str(base))
    _run(dag)
    clean = _frame(partition)

    assert _run_killed_at(point, str(raw_dir.parent), str(base)) == -9
    left = _leftovers(lake)
    assert len(left) == 1 and left[0].startswith(f".staging-predictions-dt={DAY.isoformat()}-")
    pd.testing.assert_frame_equal(_frame(partition), clean)  # the killed run changed nothing

    _run(dag)
    assert _leftovers(lake) == []
    after = _frame(partition)
    assert not after.duplicated(subset=["customer_id"]).any()
    pd.testing.assert_frame_equal(after, clean)
    assert sorted(p.name for p in base.iterdir()) == [partition.name]
