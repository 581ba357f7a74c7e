"""Daily batch scoring with the champion model.

wait until the day's features are materialized -> resolve ``<model>@champion`` once to a concrete
version -> score the day's active customers (streamed, atomic partition write, every row carries
model name, version and run id) -> validate the predictions (schema, probability range, no nulls,
row count equals input) -> emit the predictions Asset.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, CronDataIntervalTimetable, task
from mlops_common import (
    AWS_CONN_ID,
    DAY,
    DEFAULT_ARGS,
    DEFERRABLE_SENSORS,
    END_DATE,
    ENTITY_COLUMNS,
    EXPECTATIONS_DIR,
    FEATURE_REPO,
    FEATURE_VIEW,
    FEATURES_URI,
    MLFLOW_CONN_ID,
    MODEL_NAME,
    PREDICTIONS_ASSET,
    PREDICTIONS_URI,
    REPORTS_URI,
    SENSOR_POKE_INTERVAL,
    START_DATE,
)

from mlops_provider.operators.scoring import BatchScoringOperator
from mlops_provider.operators.validation import DataValidationOperator
from mlops_provider.sensors.feast import FeatureFreshnessSensor

with DAG(
    dag_id="mlops_batch_scoring",
    description="Score the day's active customers with the champion churn model",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=START_DATE,
    end_date=END_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["mlops", "scoring"],
) as dag:
    features_ready = FeatureFreshnessSensor(
        task_id="features_ready",
        feature_view=FEATURE_VIEW,
        repo_path=FEATURE_REPO,
        poke_interval=SENSOR_POKE_INTERVAL,
        timeout=12 * 3600,
        deferrable=DEFERRABLE_SENSORS,
        mode="poke" if DEFERRABLE_SENSORS else "reschedule",
    )

    @task
    def resolve_champion() -> dict[str, Any]:
        """Resolve the alias once; every batch and every row uses this exact version.

        Returns the ``model`` entry of docs/results.md: ``{name, version, run_id, uri, alias}``
        with ``uri`` = ``models:/<name>/<version>``.
        """
        from mlops_provider.core.models import resolve
        from mlops_provider.hooks.mlflow import MlflowHook

        return resolve(
            MlflowHook(MLFLOW_CONN_ID).client, f"models:/{MODEL_NAME}@champion"
        ).to_dict()

    @task
    def input_rows(partition: str) -> int:
        """Rows to score (from parquet metadata): the predictions must have exactly as many."""
        from mlops_provider.core import io

        return io.count_rows(partition, conn_id=AWS_CONN_ID)

    champion = resolve_champion()
    expected = input_rows(f"{FEATURES_URI}/dt={DAY}")
    score = BatchScoringOperator(
        task_id="score",
        model_uri="{{ ti.xcom_pull(task_ids='resolve_champion')['uri'] }}",
        input_data=f"{FEATURES_URI}/dt={DAY}",
        output_uri=PREDICTIONS_URI,
        entity_columns=ENTITY_COLUMNS,
        aws_conn_id=AWS_CONN_ID,
    )
    validate = DataValidationOperator(
        task_id="validate_predictions",
        dataset="{{ ti.xcom_pull(task_ids='score')['output_uri'] }}",
        expectation_suite=f"{EXPECTATIONS_DIR}/churn_predictions.json",
        suite_parameters={"expected_rows": "{{ ti.xcom_pull(task_ids='input_rows') }}"},
        on_failure="fail",
        report_uri=f"{REPORTS_URI}/validation/predictions/dt={DAY}",
        aws_conn_id=AWS_CONN_ID,
        outlets=[PREDICTIONS_ASSET],
        retries=0,
    )
    features_ready >> [champion, expected] >> score >> validate
