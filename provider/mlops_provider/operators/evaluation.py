"""Compare a candidate model with the current alias holder on one evaluation dataset."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from mlops_provider.exceptions import MlopsError, ModelRejected
from mlops_provider.hooks.mlflow import MlflowHook
from mlops_provider.links.mlflow import MlflowRunLink, run_url
from mlops_provider.links.reports import ReportLink, report_url
from mlops_provider.operators.training import push_keys, task_identity

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["EvaluateModelOperator", "EvaluationError", "default_report_uri"]

EVALUATION_XCOM_KEYS = (
    "passed",
    "reason",
    "champion_version",
    "candidate_run_id",
    "candidate_model_uri",
    "report_uri",
)


class EvaluationError(MlopsError):
    """The evaluation could not run (bad thresholds, unknown model, unusable evaluation data)."""


def default_report_uri(registered_model_name: str, context: Context) -> str:
    """``<data_root>/reports/evaluation/<model>/dt=<interval start>/<task_id>[-<map>].html``."""
    from datetime import datetime, timezone

    from mlops_provider.core import config, io

    ident = task_identity(context)
    when = (
        context.get("data_interval_start")
        or context.get("logical_date")
        or datetime.now(timezone.utc)
    )
    base = io.join_uri(str(config.data_root()), "reports", "evaluation", registered_model_name)
    suffix = "" if ident["map_index"] < 0 else f"-{ident['map_index']}"
    return io.join_uri(io.partition_uri(base, when), f"{ident['task_id']}{suffix}.html")


class EvaluateModelOperator(BaseOperator):
    """Score a candidate and the holder of ``alias`` on the same data and apply a gate.

    Both models are loaded from MLflow and score ``evaluation_data`` (each on the columns its
    signature names). ``thresholds`` per metric::

        {"roc_auc": {"min": 0.8, "min_improvement": 0.0, "max_regression": 0.01},
         "log_loss": {"max": 0.5}}

    ``min`` / ``max`` are absolute bounds on the candidate; ``min_improvement`` (absolute),
    ``min_relative_improvement`` (fraction of the champion's value) and ``max_regression``
    compare with the champion, in the metric's good direction (lower is better for
    ``log_loss``, ``rmse``, ``mae``). Cold start (registered model or alias missing): only
    absolute bounds apply and the result says so. Without thresholds the default rule applies:
    the candidate must not be worse on the primary metric (``roc_auc`` for classification,
    ``rmse`` for regression); on a cold start it is accepted.

    The result is returned, written as ``evaluation/result.json`` and ``evaluation/report.html``
    on the candidate's MLflow run, and the HTML report (metrics table, ROC and PR curves of both
    models, or residual plots for regression) is written to ``report_uri``.

    :param model_uri: the candidate: ``models:/m-...``, ``runs:/<run_id>/model`` or
        ``models:/<name>/<version>`` (templated; e.g. ``train.output["model_uri"]``).
    :param registered_model_name: registered model whose alias holder is the champion
        (templated).
    :param evaluation_data: dataset URI with the features and the target (templated).
    :param alias: alias of the champion (default ``champion``) (templated).
    :param target: label column (default: the candidate run's ``mlops.target`` tag) (templated).
    :param thresholds: see above (templated).
    :param primary_metric: metric of the default rule (templated).
    :param report_uri: where the HTML report goes; default
        ``<data_root>/reports/evaluation/<model>/dt=<interval start>/<task_id>.html`` (templated).
    :param fail_on_rejection: raise :class:`ModelRejected` when the gate fails (default False:
        the DAG branches on ``passed``).
    :param mlflow_conn_id: MLflow connection (templated).
    :param aws_conn_id: connection for ``s3://`` datasets and reports (templated).

    XCom: ``passed``, ``reason``, ``rule``, ``cold_start``, ``cold_start_reason``, ``task``,
    ``primary_metric``, ``registered_model_name``, ``alias``, ``target``, ``candidate``
    (``model_uri``, ``run_id``, ``model_id``), ``champion`` (``version``, ``run_id``,
    ``model_uri``; None on cold start), ``candidate_model_uri``, ``candidate_run_id``,
    ``champion_version``, ``champion_run_id``, ``metrics`` (per metric: candidate, champion,
    delta, higher_is_better), ``checks`` (metric, check, passed, reason, values), ``thresholds``,
    ``evaluation_data``, ``evaluation_digest``, ``n_rows``, ``evaluated_at``, ``report_uri``.
    ``passed``, ``reason``, ``champion_version``, ``candidate_run_id``, ``candidate_model_uri``
    and ``report_uri`` are also pushed under their own keys (``evaluate.output["passed"]``).

    :raises EvaluationError: bad thresholds, unknown candidate, evaluation data lacking columns a
        model needs (named) or labels.
    :raises ModelRejected: only with ``fail_on_rejection=True``.
    """

    template_fields: Sequence[str] = (
        "model_uri",
        "registered_model_name",
        "evaluation_data",
        "alias",
        "target",
        "thresholds",
        "primary_metric",
        "report_uri",
        "mlflow_conn_id",
        "aws_conn_id",
    )
    template_fields_renderers = {"thresholds": "json"}
    operator_extra_links = (ReportLink(), MlflowRunLink())
    ui_color = "#e3d7f5"

    def __init__(
        self,
        *,
        model_uri: str,
        registered_model_name: str,
        evaluation_data: str,
        alias: str = "champion",
        target: str | None = None,
        thresholds: Mapping[str, Any] | None = None,
        primary_metric: str | None = None,
        report_uri: str | None = None,
        fail_on_rejection: bool = False,
        mlflow_conn_id: str = MlflowHook.default_conn_name,
        aws_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_uri = model_uri
        self.registered_model_name = registered_model_name
        self.evaluation_data = evaluation_data
        self.alias = alias
        self.target = target
        self.thresholds = thresholds
        self.primary_metric = primary_metric
        self.report_uri = report_uri
        self.fail_on_rejection = fail_on_rejection
        self.mlflow_conn_id = mlflow_conn_id
        self.aws_conn_id = aws_conn_id

    @cached_property
    def hook(self) -> MlflowHook:
        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core import evaluation

        thresholds = self.thresholds
        if isinstance(thresholds, str) and thresholds.strip():
            import json

            thresholds = json.loads(thresholds)
        report_uri = self.report_uri or default_report_uri(self.registered_model_name, context)
        ident = task_identity(context)
        target = self.hook.target
        try:
            result = evaluation.evaluate_candidate(
                target,
                model_uri=str(self.model_uri),
                registered_model_name=self.registered_model_name,
                evaluation_data=self.evaluation_data,
                alias=self.alias or "champion",
                target_column=self.target or None,
                thresholds=thresholds or None,
                primary_metric=self.primary_metric or None,
                report_uri=report_uri,
                conn_id=self.aws_conn_id,
                context={"evaluated_by": ident["key"]},
            )
        except evaluation.EvaluationError as err:
            raise EvaluationError(f"cannot evaluate {self.model_uri}: {err}") from err
        ReportLink.persist(context, report_url(report_uri))
        candidate = result.candidate
        if candidate.run_id:
            experiment_id = self.hook.client.get_run(candidate.run_id).info.experiment_id
            MlflowRunLink.persist(
                context, run_url(target.tracking_uri, experiment_id, candidate.run_id)
            )
        for check in result.checks:
            self.log.info("%s %s", "PASS" if check.passed else "FAIL", check.reason)
        self.log.info("%s (rule: %s); report: %s", result.reason, result.rule, report_uri)
        out = result.to_dict()
        push_keys(context, out, EVALUATION_XCOM_KEYS)
        if not result.passed and self.fail_on_rejection:
            raise ModelRejected(
                f"{self.registered_model_name} candidate {self.model_uri} {result.reason}. "
                f"Report: {report_uri}"
            )
        return out
