"""Training pipeline: point-in-time training set -> validate -> train -> evaluate -> promote.

Scheduled weekly and by the retrain-request Asset that the monitoring DAG emits when drift or
performance says so. The candidate is compared with the current champion on the newest labelled
day; it is promoted (alias ``champion`` moves, the old one keeps ``previous_champion``) only if
the evaluation passed, otherwise the rejection and its reasons are recorded. An optional human
approval (Airflow's HITL ApprovalOperator) sits before promotion when ``require_approval`` is set.
The first training, with no champion yet, is triggered with ``cold_start`` set; without it a
missing champion fails the evaluation (a misspelt model name never passes unchallenged).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable, Param, task
from mlops_common import (
    APPROVAL_TIMEOUT,
    AWS_CONN_ID,
    DEFAULT_ARGS,
    END_DATE,
    ENTITY_COLUMNS,
    EXPECTATIONS_DIR,
    FEATURE_REPO,
    FEATURE_SERVICE,
    FEATURES_URI,
    LABELS_URI,
    MLFLOW_CONN_ID,
    MODEL_ASSET,
    MODEL_NAME,
    REPORTS_URI,
    START_DATE,
    TARGET,
    TIMESTAMP_COLUMN,
    TRAINING_URI,
    TRAINING_WINDOW_DAYS,
)

from mlops_provider.assets import RETRAIN_REQUEST_ASSET
from mlops_provider.operators.approval import PromotionApprovalOperator
from mlops_provider.operators.evaluation import EvaluateModelOperator
from mlops_provider.operators.feast import FeastTrainingDatasetOperator
from mlops_provider.operators.registry import PromoteModelOperator
from mlops_provider.operators.training import TrainModelOperator
from mlops_provider.operators.validation import DataValidationOperator

RUN_KEY = "{{ ti.xcom_pull(task_ids='as_of')['key'] }}"
RUN_DIR = f"{TRAINING_URI}/{RUN_KEY}"
TRAINING_SET_URI = f"{RUN_DIR}/training_set.parquet"
EVALUATION_SET_URI = f"{RUN_DIR}/evaluation_set.parquet"

APPROVAL_BODY = """\
Candidate {{ ti.xcom_pull(task_ids='evaluate')['model']['uri'] }} \
(run {{ ti.xcom_pull(task_ids='evaluate')['model']['run_id'] }}): \
{{ ti.xcom_pull(task_ids='evaluate')['status'] }} by the evaluation against the champion \
on {{ ti.xcom_pull(task_ids='evaluate')['rows'] }} held-out rows.

{% for reason in ti.xcom_pull(task_ids='evaluate')['reasons'] %}- {{ reason }}
{% endfor %}
Evaluation report: {{ ti.xcom_pull(task_ids='evaluate')['report_uri'] }}
"""
"""What the approver reads: the evaluation's verdict, its reasons and its report (common
result keys, docs/results.md)."""

with DAG(
    dag_id="mlops_training_pipeline",
    description="Train a churn model, compare it with the champion, promote it if better",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable("0 3 * * 1", timezone="UTC"),
        assets=RETRAIN_REQUEST_ASSET,
    ),
    start_date=START_DATE,
    end_date=END_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    render_template_as_native_obj=True,  # XCom lists/dicts reach operators as Python objects
    params={
        "as_of": Param(None, type=["null", "string"], description="train as of (ISO time)"),
        "require_approval": Param(False, type="boolean", description="human approval step"),
        "cold_start": Param(
            False,
            type="boolean",
            description="the first training: no champion to compare with yet (a missing "
            "registered model or champion alias is otherwise an error)",
        ),
    },
    tags=["mlops", "training"],
) as dag:

    @task
    def as_of(**context: Any) -> dict[str, Any]:
        """When this training happens: run conf, the retrain request that triggered it, or the
        run's own time. Also returns the reasons of the triggering retrain request, and the
        ``trigger`` recorded in the run's lineage (schedule, retrain request, manual run; with
        the retrain request state read from the registry)."""
        from datetime import datetime, timezone

        from mlops_provider.core.governance.collect import read_trigger
        from mlops_provider.hooks.mlflow import MlflowHook

        params = context["params"]
        reasons: list[str] = []
        extras: list[dict[str, Any]] = []
        when = params.get("as_of")
        for events in (context.get("triggering_asset_events") or {}).values():
            for event in events:
                extra = event.extra or {}
                when = when or extra.get("as_of")
                reasons += list(extra.get("reasons", []))
                extras.append(dict(extra))
        if not when:
            moment = context.get("data_interval_end") or context.get("logical_date")
            when = (moment or datetime.now(timezone.utc)).isoformat()
        stamp = datetime.fromisoformat(str(when).replace("Z", "+00:00"))
        run_type = getattr(context.get("dag_run"), "run_type", None)
        trigger = read_trigger(
            MlflowHook(MLFLOW_CONN_ID).client,
            MODEL_NAME,
            events=extras,
            run_type=None if run_type is None else str(getattr(run_type, "value", run_type)),
            conf_as_of=params.get("as_of"),
        )
        return {
            "as_of": stamp.isoformat(),
            "key": stamp.strftime("%Y%m%dT%H%M%S"),
            "reasons": reasons,
            "trigger": trigger,
        }

    @task
    def label_window(moment: dict[str, Any]) -> dict[str, Any]:
        """Entity + label datasets: train on the labelled window, hold out the newest day."""
        from datetime import datetime

        from mlops_provider.core.labels import build_label_window

        window = build_label_window(
            LABELS_URI,
            FEATURES_URI,
            f"{TRAINING_URI}/{moment['key']}/entities",
            as_of=datetime.fromisoformat(moment["as_of"]),
            window_days=TRAINING_WINDOW_DAYS,
            label_column=TARGET,
            entity_columns=ENTITY_COLUMNS,
            timestamp_column=TIMESTAMP_COLUMN,
            conn_id=AWS_CONN_ID,
        )
        return window.to_dict()

    @task
    def training_lineage(
        moment: dict[str, Any],
        window: dict[str, Any],
        training_set: dict[str, Any],
        evaluation_set: dict[str, Any],
    ) -> dict[str, Any]:
        """What the training run records of its inputs (docs/lineage.md): the evaluation set
        and entity datasets with content digests, the label window, the feature service and
        views as applied, the source feature partitions with their validation, the trigger."""
        from mlops_provider.core.governance.collect import pipeline_lineage

        return pipeline_lineage(
            moment=moment,
            window=window,
            training_set=training_set,
            evaluation_set=evaluation_set,
            labels_uri=LABELS_URI,
            features_uri=FEATURES_URI,
            window_days=TRAINING_WINDOW_DAYS,
            conn_id=AWS_CONN_ID,
        )

    moment = as_of()
    window = label_window(moment)

    training_set = FeastTrainingDatasetOperator(
        task_id="training_set",
        entity_data="{{ ti.xcom_pull(task_ids='label_window')['train_uri'] }}",
        feature_service=FEATURE_SERVICE,
        label_columns=[TARGET],
        output_uri=TRAINING_SET_URI,
        repo_path=FEATURE_REPO,
        aws_conn_id=AWS_CONN_ID,
    )
    evaluation_set = FeastTrainingDatasetOperator(
        task_id="evaluation_set",
        entity_data="{{ ti.xcom_pull(task_ids='label_window')['eval_uri'] }}",
        feature_service=FEATURE_SERVICE,
        label_columns=[TARGET],
        output_uri=EVALUATION_SET_URI,
        repo_path=FEATURE_REPO,
        aws_conn_id=AWS_CONN_ID,
    )
    validate = DataValidationOperator(
        task_id="validate_training_set",
        dataset=TRAINING_SET_URI,
        expectation_suite=f"{EXPECTATIONS_DIR}/churn_training_set.json",
        on_failure="fail",
        report_uri=f"{REPORTS_URI}/validation/training/{RUN_KEY}",
        aws_conn_id=AWS_CONN_ID,
        retries=0,
    )
    train = TrainModelOperator(
        task_id="train",
        training_data=TRAINING_SET_URI,
        target=TARGET,
        entity_columns=ENTITY_COLUMNS,
        estimator="sklearn.ensemble.HistGradientBoostingClassifier",
        estimator_params={"max_iter": 150, "learning_rate": 0.08, "random_state": 7},
        feature_refs="{{ ti.xcom_pull(task_ids='training_set')['feature_refs'] }}",
        lineage="{{ ti.xcom_pull(task_ids='training_lineage') }}",
        experiment_name="mlops-churn-training",
        aws_conn_id=AWS_CONN_ID,
    )
    evaluate = EvaluateModelOperator(
        task_id="evaluate",
        model_uri="{{ ti.xcom_pull(task_ids='train')['model']['uri'] }}",
        registered_model_name=MODEL_NAME,
        evaluation_data=EVALUATION_SET_URI,
        target=TARGET,
        thresholds={"roc_auc": {"min": 0.6, "min_improvement": 0.005}},
        cold_start="{{ params.cold_start }}",
        aws_conn_id=AWS_CONN_ID,
    )

    @task.branch
    def gate(result: dict[str, Any], **context: Any) -> str:
        """Route on the evaluation: approval (if asked), promotion, or recording the rejection."""
        if not result["passed"]:
            return "record_rejection"
        return "approve" if context["params"]["require_approval"] else "promote"

    approve = PromotionApprovalOperator(
        task_id="approve",
        subject=f"Promote the new {MODEL_NAME} model?",
        body=APPROVAL_BODY,
        promote_task_id="promote",
        reject_task_id="record_rejection",
        response_timeout=APPROVAL_TIMEOUT,
    )
    promote = PromoteModelOperator(
        task_id="promote",
        registered_model_name=MODEL_NAME,
        evaluation=evaluate.output,
        outlets=[MODEL_ASSET],
        trigger_rule="none_failed_min_one_success",
    )

    @task(trigger_rule="none_failed_min_one_success")
    def record_rejection(
        result: dict[str, Any], moment: dict[str, Any], **context: Any
    ) -> dict[str, Any]:
        """Log why the candidate stays a candidate: the evaluation's reasons, and the approval
        step's answer when a person (or its timeout) rejected a passing candidate."""
        import logging

        from mlops_provider.core.results import make_result

        reasons = list(result["reasons"])
        approval = context["ti"].xcom_pull(task_ids="approve") if result["passed"] else None
        if isinstance(approval, dict):
            reasons += list(approval.get("reasons") or [])
        log = logging.getLogger("airflow.task")
        for reason in reasons:
            log.info("rejected: %s", reason)
        return make_result(
            status="rejected",
            passed=False,
            reasons=reasons,
            model=result["model"],
            report_uri=result["report_uri"],
            as_of=moment["as_of"],
        )

    @task(trigger_rule="none_failed_min_one_success")
    def close_retrain_request(moment: dict[str, Any], **context: Any) -> dict[str, Any]:
        """Mark the retrain request handled (promoted or rejected) so monitoring may ask again."""
        from mlops_provider.core.retraining import mark_request_handled
        from mlops_provider.hooks.mlflow import MlflowHook

        return mark_request_handled(
            MlflowHook(MLFLOW_CONN_ID).client, MODEL_NAME, handled_at=moment["as_of"]
        )

    decision = gate(evaluate.output)
    rejected = record_rejection(evaluate.output, moment)
    window >> [training_set, evaluation_set]
    recorded = training_lineage(moment, window, training_set.output, evaluation_set.output)
    [validate, recorded] >> train
    training_set >> validate >> train >> evaluate >> decision
    evaluation_set >> evaluate
    decision >> approve >> [promote, rejected]
    decision >> promote
    decision >> rejected
    [promote, rejected] >> close_retrain_request(moment)
