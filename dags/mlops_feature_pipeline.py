"""Daily feature pipeline: validate the day's raw export, publish it, materialize it to Feast.

wait for the raw partition -> validate with Great Expectations (bad data is quarantined, never
deleted, and the run fails clearly) -> publish the validated partition to the feature source
(atomic, idempotent per day) -> apply the feature repo (idempotent) -> materialize the data
interval into the online store. (No asset: batch scoring waits for the day with a freshness
sensor; docs/lifecycle.md.)

Every storage access goes through ``MLOPS_AWS_CONN_ID`` (for an ``s3://`` lake) and every Feast
task uses the project's feature repo (``FEATURE_REPO``).
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, CronDataIntervalTimetable, task
from mlops_common import (
    AWS_CONN_ID,
    DAY,
    DEFAULT_ARGS,
    END_DATE,
    ENTITY_COLUMNS,
    EXPECTATIONS_DIR,
    FEATURE_REPO,
    FEATURE_VIEW,
    FEATURES_URI,
    QUARANTINE_URI,
    RAW_URI,
    REPORTS_URI,
    START_DATE,
    TIMESTAMP_COLUMN,
)

from mlops_provider.operators.feast import FeastApplyOperator, FeastMaterializeOperator
from mlops_provider.operators.validation import DataValidationOperator

RAW_PARTITION = f"{RAW_URI}/dt={DAY}"

with DAG(
    dag_id="mlops_feature_pipeline",
    description="Validate, publish and materialize the day's customer activity features",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=START_DATE,
    end_date=END_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["mlops", "features"],
) as dag:

    @task.sensor(
        poke_interval=300, timeout=int(timedelta(hours=12).total_seconds()), mode="reschedule"
    )
    def wait_for_raw_partition(partition: str) -> bool:
        """The day's export has landed when its partition holds at least one data file."""
        from mlops_provider.core import io

        try:
            return bool(io.list_files(partition, conn_id=AWS_CONN_ID))
        except io.DatasetNotFound:
            return False

    validate = DataValidationOperator(
        task_id="validate_raw",
        dataset=RAW_PARTITION,
        expectation_suite=f"{EXPECTATIONS_DIR}/churn_raw.json",
        on_failure="quarantine",
        quarantine_uri=f"{QUARANTINE_URI}/raw/dt={DAY}",
        report_uri=f"{REPORTS_URI}/validation/raw/dt={DAY}",
        aws_conn_id=AWS_CONN_ID,
        retries=0,  # a data failure does not heal by retrying
    )

    @task
    def publish(partition: str, day: str, validation: dict) -> dict:
        """Copy the validated partition into the Feast source; a rerun replaces the day. The
        validation's status and report are recorded in the partition's ``_SUCCESS`` marker
        (what a lineage trace reads back)."""
        from mlops_provider.core.features import publish_partition

        return publish_partition(
            partition,
            FEATURES_URI,
            day,
            entity_columns=ENTITY_COLUMNS,
            timestamp_column=TIMESTAMP_COLUMN,
            conn_id=AWS_CONN_ID,
            validation=validation,
        )

    materialize = FeastMaterializeOperator(
        task_id="materialize",
        feature_views=[FEATURE_VIEW],
        repo_path=FEATURE_REPO,
        aws_conn_id=AWS_CONN_ID,
    )

    apply = FeastApplyOperator(
        task_id="apply_feature_repo", repo_path=FEATURE_REPO, aws_conn_id=AWS_CONN_ID
    )
    published = publish(RAW_PARTITION, DAY, validate.output)
    wait_for_raw_partition(RAW_PARTITION) >> validate >> published >> apply >> materialize
