"""Run one real DataValidationOperator task into the throw-away UI's database (``dag.test()``),
for the browser test of the "Report" extra link; prints what the test needs as one JSON line.

Run as ``python -m tests.system.ui_report_task`` with the UI's environment (its AIRFLOW_HOME,
database and MLOPS_HOME), so the API server serves the report the task wrote.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "ui_report_link"
DAY = date(2026, 1, 5)


def main() -> None:
    from airflow.sdk import DAG
    from airflow.timetables.interval import CronDataIntervalTimetable

    from include.dag_runner import run_dag, task_states, xcom
    from include.simulator import ChurnSimulator
    from mlops_provider.core.config import data_root
    from mlops_provider.operators.validation import DataValidationOperator

    lake = data_root()
    ChurnSimulator(seed=3, n_customers=200).write_day(lake, DAY)
    with DAG(
        DAG_ID,
        schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
    ) as dag:
        DataValidationOperator(
            task_id="validate",
            dataset=f"{lake}/raw/dt={DAY}/activity.parquet",
            expectation_suite=str(ROOT / "include" / "expectations" / "churn_raw.json"),
        )
    run = run_dag(dag, DAY)
    assert task_states(run) == {"validate": "success"}, task_states(run)
    result = xcom(run, "validate")
    print(
        json.dumps(
            {
                "dag_id": DAG_ID,
                "run_id": run.run_id,
                "report_uri": result["report_uri"],
                "link": xcom(run, "validate", key="_link_ReportLink"),
            }
        )
    )


if __name__ == "__main__":
    main()
