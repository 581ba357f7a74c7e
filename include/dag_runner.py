"""Run a DAG for one data interval with ``dag.test()`` in this process: used by the demo and
the tests.

The implementation is the provider's (:mod:`mlops_provider.testing.environment`, whose isolated
environments run these helpers in a subprocess); this module keeps the names the demo and the
tests use. ``dag.test()`` in Airflow 3 needs the DAG serialized in the metadata database; DAGs
built outside the DAGs folder (tests) are synced first. The reference DAGs use data-interval
timetables, so the run for day D has ``data_interval_start = D`` and ``data_interval_end =
D + 1 day``; ``dag.test`` infers that interval from ``logical_date = D + 1 day``.
"""

from __future__ import annotations

from mlops_provider.testing.environment import (
    interval_logical_date,
    sync_dag,
    task_states,
    xcom,
)
from mlops_provider.testing.environment import run_dag_in_process as run_dag

__all__ = ["interval_logical_date", "run_dag", "sync_dag", "task_states", "xcom"]
