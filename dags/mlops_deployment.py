"""Continuous delivery of the champion to the realtime serving app.

Scheduled by the model Asset that promotion emits (``mlops.models.churn``): resolve the new
champion to a concrete version and find the rows it was evaluated on -> validate it in the
serving app (started on a free port for that version: every answer must equal batch scoring for
the same rows, single-row p99 within budget) -> if a service is configured (connection
``mlops_serving_default``), deploy it there: reload, wait until ready, watch readiness and the
error rate for a window, roll back to the previous version on failure. Without a service
connection the validation still runs and the deployment is skipped, saying so.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, task
from mlops_common import (
    AWS_CONN_ID,
    DEFAULT_ARGS,
    END_DATE,
    MLFLOW_CONN_ID,
    MODEL_ASSET,
    MODEL_NAME,
    SERVING_CONN_ID,
    SERVING_MAX_P99_MS,
    SERVING_VERIFY_SECONDS,
    START_DATE,
)

from mlops_provider.operators.deployment import DeployModelOperator, ValidateServingOperator

with DAG(
    dag_id="mlops_deployment",
    description="Validate the new champion in the serving app, deploy it, roll back on failure",
    schedule=[MODEL_ASSET],
    start_date=START_DATE,
    end_date=END_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["mlops", "deployment"],
) as dag:

    @task
    def candidate() -> dict[str, Any]:
        """The champion as a concrete version, and the evaluation rows of its training run (the
        training pipeline writes ``evaluation_set.parquet`` beside ``training_set.parquet``;
        the training set itself when there is none)."""
        from mlops_provider.core import io, models
        from mlops_provider.hooks.mlflow import MlflowHook

        client = MlflowHook(MLFLOW_CONN_ID).client
        model = models.resolve(client, f"models:/{MODEL_NAME}@champion")
        training_data = client.get_run(model.run_id).data.tags.get("mlops.training_data")
        if not training_data:
            raise ValueError(f"{model.describe()}: its run records no mlops.training_data")
        evaluation = training_data.rsplit("/", 1)[0] + "/evaluation_set.parquet"
        if not io.exists(evaluation, conn_id=AWS_CONN_ID):
            evaluation = training_data
        return {"version": model.version, "evaluation_data": evaluation}

    picked = candidate()
    validate = ValidateServingOperator(
        task_id="validate_serving",
        registered_model_name=MODEL_NAME,
        model_uri=f"models:/{MODEL_NAME}/{{{{ ti.xcom_pull(task_ids='candidate')['version'] }}}}",
        evaluation_data="{{ ti.xcom_pull(task_ids='candidate')['evaluation_data'] }}",
        max_p99_latency_ms=SERVING_MAX_P99_MS,
        aws_conn_id=AWS_CONN_ID,
    )

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def service_configured() -> bool:
        """Whether a serving app is configured (connection ``SERVING_CONN_ID``)."""
        import logging

        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            BaseHook.get_connection(SERVING_CONN_ID)
        except AirflowNotFoundException:
            logging.getLogger("airflow.task").warning(
                "no connection %s: the champion was validated, there is no service to deploy "
                "it to (see docs/deployment.md)",
                SERVING_CONN_ID,
            )
            return False
        return True

    deploy = DeployModelOperator(
        task_id="deploy",
        registered_model_name=MODEL_NAME,
        version="{{ ti.xcom_pull(task_ids='validate_serving')['version'] }}",
        verify_seconds=SERVING_VERIFY_SECONDS,
        serving_conn_id=SERVING_CONN_ID,
    )

    picked >> validate >> service_configured() >> deploy
