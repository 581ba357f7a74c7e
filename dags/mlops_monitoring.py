"""Daily monitoring: data drift, prediction drift, performance on matured labels -> retrain?

Data drift compares the day's features with the champion's training profile (stored with the
model version), prediction drift compares today's scores with those of the previous week, and
performance joins predictions with the labels that have arrived since (and scores the same
labelled rows with the earlier champions: the gain retraining bought). The retrain decision
combines the policies (drift, performance, new labelled data, model age) with a cooldown and one
open request at a time; when it decides to retrain it emits the retrain-request Asset, which
schedules mlops_training_pipeline.

Training-serving skew compares the features the serving app logged with each online request
with the offline features of the same customers at the same times. It runs only on days with
logged online traffic (a short-circuit skips it otherwise, e.g. in the batch-only demo); it is
not an input of the retrain decision, since retraining does not fix a serving defect.

Every storage access goes through ``MLOPS_AWS_CONN_ID`` (for an ``s3://`` lake).
"""

from __future__ import annotations

from airflow.sdk import DAG, CronDataIntervalTimetable, task
from mlops_common import (
    AWS_CONN_ID,
    DAY,
    DEFAULT_ARGS,
    END_DATE,
    ENTITY_COLUMNS,
    FEATURE_REPO,
    FEATURES_URI,
    LABEL_DELAY_DAYS,
    LABELS_URI,
    MODEL_NAME,
    ONLINE_PREDICTIONS_URI,
    PREDICTIONS_URI,
    REPORTS_URI,
    SCORE_COLUMN,
    START_DATE,
    TARGET,
    TIMESTAMP_COLUMN,
)

from mlops_provider.assets import RETRAIN_REQUEST_ASSET
from mlops_provider.operators.monitoring import (
    DriftDetectionOperator,
    ModelPerformanceOperator,
    TrainingServingSkewOperator,
)
from mlops_provider.operators.retraining import RetrainDecisionOperator

with DAG(
    dag_id="mlops_monitoring",
    description="Drift and performance monitoring of the churn model; requests retraining",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=START_DATE,
    end_date=END_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["mlops", "monitoring"],
) as dag:
    data_drift = DriftDetectionOperator(
        task_id="data_drift",
        registered_model_name=MODEL_NAME,
        current_data=f"{FEATURES_URI}/dt={DAY}",
        report_uri=f"{REPORTS_URI}/drift/features/dt={DAY}",
        aws_conn_id=AWS_CONN_ID,
    )

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def earlier_predictions(day: str) -> list[str]:
        """The previous week's prediction partitions (the reference for prediction drift);
        prediction drift is skipped until at least one exists."""
        from datetime import date, timedelta

        from mlops_provider.core import io

        current = date.fromisoformat(day)
        earlier = [
            io.partition_uri(PREDICTIONS_URI, current - timedelta(days=n)) for n in range(1, 8)
        ]
        return [uri for uri in earlier if io.exists(uri, conn_id=AWS_CONN_ID)]

    reference_predictions = earlier_predictions(DAY)
    prediction_drift = DriftDetectionOperator(
        task_id="prediction_drift",
        reference_data=reference_predictions,
        current_data=f"{PREDICTIONS_URI}/dt={DAY}",
        columns=[SCORE_COLUMN],
        report_uri=f"{REPORTS_URI}/drift/predictions/dt={DAY}",
        aws_conn_id=AWS_CONN_ID,
    )
    performance = ModelPerformanceOperator(
        task_id="performance",
        predictions_data=PREDICTIONS_URI,
        labels_data=LABELS_URI,
        label_delay=LABEL_DELAY_DAYS,
        registered_model_name=MODEL_NAME,
        target=TARGET,
        entity_columns=ENTITY_COLUMNS,
        label_time_column=TIMESTAMP_COLUMN,
        score_column=SCORE_COLUMN,
        report_uri=f"{REPORTS_URI}/performance/dt={DAY}",
        # what retraining bought: the same matured rows scored by the earlier champions
        counterfactuals=True,
        input_data=FEATURES_URI,
        aws_conn_id=AWS_CONN_ID,
    )
    decide = RetrainDecisionOperator(
        task_id="retrain_decision",
        registered_model_name=MODEL_NAME,
        drift=data_drift.output,
        performance=performance.output,
        policy={
            "drift": {"dataset_drift": True},
            "performance": {"metric": "roc_auc", "max_degradation": 0.05},
            "cooldown": "P2D",
        },
        retrain_asset=RETRAIN_REQUEST_ASSET,
        aws_conn_id=AWS_CONN_ID,
        trigger_rule="all_done",
    )
    [data_drift, prediction_drift, performance] >> decide

    @task.short_circuit
    def online_traffic(day: str) -> bool:
        """Whether the serving app logged online predictions that day (a partition with files);
        the skew check is skipped otherwise."""
        from mlops_provider.core import io

        partition = io.partition_uri(ONLINE_PREDICTIONS_URI, day)
        return io.exists(partition, conn_id=AWS_CONN_ID) and bool(
            io.list_files(partition, conn_id=AWS_CONN_ID)
        )

    skew = TrainingServingSkewOperator(
        task_id="training_serving_skew",
        predictions_data=ONLINE_PREDICTIONS_URI,
        registered_model_name=MODEL_NAME,
        report_uri=f"{REPORTS_URI}/skew/dt={DAY}",
        repo_path=FEATURE_REPO,
        aws_conn_id=AWS_CONN_ID,
    )
    online_traffic(DAY) >> skew
