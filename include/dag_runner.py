"""Run a DAG for one data interval with ``dag.test()``: used by the demo and the tests.

``dag.test()`` in Airflow 3 needs the DAG serialized in the metadata database; DAGs built
outside the DAGs folder (tests) are synced first. The reference DAGs use data-interval
timetables, so the run for day D has ``data_interval_start = D`` and ``data_interval_end =
D + 1 day``; ``dag.test`` infers that interval from ``logical_date = D + 1 day``.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Any


def sync_dag(dag: Any) -> None:
    """Serialize ``dag`` into the metadata DB (bundle ``dags-folder``) so ``dag.test`` can run."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder="/nonexistent", collect_dags=False)
    bag.bag_dag(dag)
    sync_bag_to_db(bag, "dags-folder", None)


def interval_logical_date(day: date) -> datetime:
    """The ``logical_date`` to pass to ``dag.test`` so that the data interval is [day, day+1)."""
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=timezone.utc)


def run_dag(
    dag: Any,
    day: date | None = None,
    *,
    conf: dict[str, Any] | None = None,
    logical_date: datetime | None = None,
    sync: bool = True,
) -> Any:
    """Run ``dag`` once with ``dag.test()``; ``day`` selects the data interval [day, day+1).

    :param logical_date: explicit logical date (for DAGs without data intervals); wins over day.
    :param sync: serialize the DAG first (needed for DAGs defined outside the DAGs folder).
    :returns: the finished ``DagRun``.
    """
    if sync:
        sync_dag(dag)
    kwargs: dict[str, Any] = {"run_conf": conf or {}}
    if logical_date is not None:
        kwargs["logical_date"] = logical_date
    elif day is not None:
        kwargs["logical_date"] = interval_logical_date(day)
    return dag.test(**kwargs)


def task_states(dag_run: Any) -> dict[str, str]:
    """``{task_id[map_index]: state}`` of a finished run."""
    out = {}
    for ti in dag_run.get_task_instances():
        key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
        out[key] = str(ti.state)
    return out


def xcom(dag_run: Any, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
    """An XCom value of a finished run."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = (
            session.query(XComModel)
            .filter_by(
                dag_id=dag_run.dag_id,
                run_id=dag_run.run_id,
                task_id=task_id,
                key=key,
                map_index=map_index,
            )
            .one_or_none()
        )
        return None if row is None else XComModel.deserialize_value(row)
