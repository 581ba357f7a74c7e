"""Compare a candidate model with the current alias holder on one evaluation dataset."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mlops_provider.exceptions import (
    EvaluationError,
    MlopsProviderDeprecationWarning,
    ModelRejected,
)
from mlops_provider.links.mlflow import MlflowRunLink
from mlops_provider.links.reports import ReportLink
from mlops_provider.operators._base import (
    AWS_CONN_ID,
    MLFLOW_CONN_ID,
    MlopsBaseOperator,
    data_interval,
    run_identity,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = [
    "EVALUATION_XCOM_KEYS",
    "EvaluateModelOperator",
    "EvaluationError",
    "default_report_uri",
]

EVALUATION_XCOM_KEYS = (
    "passed",
    "reason",
    "champion_version",
    "candidate_run_id",
    "candidate_model_uri",
    "report_uri",
)
#: Deprecated threshold key -> its name now (docs/vocabulary.md).
RENAMED_THRESHOLD_KEYS = {"max_regression": "max_degradation"}


def _renamed_thresholds(thresholds: Any, owner: str) -> Any:
    """``thresholds`` with deprecated keys renamed, warning once for each place."""
    if not isinstance(thresholds, Mapping):
        return thresholds
    out: dict[str, Any] = {}
    for metric, spec in thresholds.items():
        if isinstance(spec, Mapping) and set(spec) & set(RENAMED_THRESHOLD_KEYS):
            spec = dict(spec)
            for old, new in RENAMED_THRESHOLD_KEYS.items():
                if old in spec:
                    warnings.warn(
                        f"{owner}: threshold key {old!r} (thresholds[{metric!r}]) is deprecated "
                        f"and will be removed in the next release; use {new!r}",
                        MlopsProviderDeprecationWarning,
                        stacklevel=4,
                    )
                    spec.setdefault(new, spec.pop(old))
        out[metric] = spec
    return out


def _report_task(context: Context) -> str:
    """``<task_id>`` (``-<map_index>`` for a mapped task): the report's folder of this task."""
    ident = run_identity(context)
    return ident.task_id if ident.map_index < 0 else f"{ident.task_id}-{ident.map_index}"


def _report_location(report_uri: str | None, registered_model_name: str, context: Context) -> Any:
    """Where the report and its JSON go (:func:`mlops_provider.core.reports.report_location`)."""
    from mlops_provider.core.reports import report_location

    start, _ = data_interval(context)
    return report_location(
        report_uri,
        kind="evaluation",
        name=registered_model_name,
        day=start,
        task=_report_task(context),
    )


def default_report_uri(registered_model_name: str, context: Context) -> str:
    """The default HTML report of an evaluation:
    ``<reports root>/evaluation/<model>/dt=<interval start>/<task_id>/report.html``."""
    return str(_report_location(None, registered_model_name, context).html_uri)


class EvaluateModelOperator(MlopsBaseOperator):
    """Score a candidate and the holder of ``alias`` on the same data and apply a gate.

    Both models are loaded from MLflow and score ``evaluation_data`` (each on the columns its
    signature names). ``thresholds`` per metric::

        {"roc_auc": {"min": 0.8, "min_improvement": 0.0, "max_degradation": 0.01},
         "log_loss": {"max": 0.5}}

    ``min`` / ``max`` are absolute bounds on the candidate; ``min_improvement`` (absolute),
    ``min_relative_improvement`` (fraction of the champion's value) and ``max_degradation``
    compare with the champion, in the metric's good direction (lower is better for
    ``log_loss``, ``rmse``, ``mae``). A registered model or alias that does not exist fails the
    task, naming the registered models (or the model's aliases) and the closest one: a typo
    never passes a candidate unchallenged. The first model of a registered model is an explicit
    cold start (``cold_start=True``): only absolute bounds apply and the result says so
    (``cold_start``: True); PromoteModelOperator creates a registered model or a first alias
    only for such an evaluation. Without thresholds the default rule applies: the candidate
    must not be worse on the primary metric (``roc_auc`` for classification, ``rmse`` for
    regression); on a cold start it is accepted. The old key ``max_regression`` is
    accepted for one release with a :class:`MlopsProviderDeprecationWarning`.

    The result is returned, written as ``evaluation/result.json`` and ``evaluation/report.html``
    on the candidate's MLflow run, and the HTML report (metrics table, ROC and PR curves of both
    models, or residual plots for regression) is written to ``report_uri`` with the JSON result
    next to it.

    :param model_uri: the candidate, any form: ``models:/<name>/<version>``,
        ``models:/<name>@<alias>``, ``models:/m-<id>``, ``runs:/<run_id>/<path>`` (templated;
        e.g. ``train.output["model_uri"]``).
    :param registered_model_name: registered model whose alias holder is the champion
        (templated).
    :param evaluation_data: dataset URI with the features and the target (templated).
    :param alias: alias of the champion (default ``champion``) (templated).
    :param target: label column (default: the candidate run's ``mlops.target`` tag) (templated).
    :param thresholds: see above; a mapping or its JSON text (templated).
    :param primary_metric: metric of the default rule (templated).
    :param report_uri: the HTML report, an ``.html`` file or a directory; default
        ``<reports root>/evaluation/<model>/dt=<interval start>/<task_id>/report.html``
        (templated).
    :param fail_on_rejection: raise :class:`ModelRejected` when the gate fails (default False:
        the DAG branches on ``passed``).
    :param cold_start: allow the registered model or the alias not to exist yet (the first
        model; default False: that is an error). When the alias has a holder the candidate is
        compared with it as usual (templated, e.g. ``"{{ params.cold_start }}"``).
    :param mlflow_conn_id: MLflow connection (default ``mlflow_default``) (templated).
    :param aws_conn_id: connection for ``s3://`` datasets and reports (default
        ``aws_default``) (templated).

    XCom (docs/results.md): ``status`` ``accepted`` or ``rejected``, ``passed`` (the gate
    passed), ``reasons`` (the failed checks' reasons when rejected, every check's when
    accepted), ``model`` (the candidate: ``name``, ``version``, ``run_id``, ``uri``; ``name`` and
    ``version`` None for a logged model that is not registered), ``mlflow_run_id`` (the
    candidate's run, which holds the result), ``report_uri``, ``rows`` (evaluation rows); then
    ``mlflow_experiment_id``, ``reason``, ``rule``, ``cold_start``, ``cold_start_reason``,
    ``problem_type``, ``primary_metric``, ``registered_model_name``, ``alias``, ``target``,
    ``candidate`` and ``champion`` (``name``, ``version``, ``run_id``, ``uri``, ``model_uri``,
    ``model_id``, ``registered_model_name``; the champion None on a cold start),
    ``champion_version``, ``champion_run_id``, ``metrics`` (per metric: candidate, champion,
    delta, higher_is_better), ``checks`` (metric, check, passed, reason, values),
    ``thresholds``, ``evaluation_data``, ``evaluation_digest``, ``evaluated_at``,
    ``evaluated_by`` (the task key). The keys of :data:`EVALUATION_XCOM_KEYS` are also pushed
    under their own keys (``evaluate.output["passed"]``).

    Deprecated keys (kept for one release): ``reason`` (use ``reasons``), ``n_rows`` (use
    ``rows``), ``candidate_model_uri`` / ``candidate_run_id`` (use ``model``), ``task`` (use
    ``problem_type``).

    :raises EvaluationError: bad thresholds, malformed or unknown candidate URI, evaluation data
        lacking columns a model needs (named) or labels, a registered model or alias that does
        not exist (without ``cold_start``).
    :raises ModelRejected: only with ``fail_on_rejection=True`` (after the report is written).
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
        "cold_start",
        "mlflow_conn_id",
        "aws_conn_id",
    )
    template_fields_renderers = {"thresholds": "json"}
    operator_extra_links = (ReportLink(), MlflowRunLink())
    ui_color = "#e3d7f5"
    error_class = EvaluationError
    push_keys = EVALUATION_XCOM_KEYS

    def __init__(
        self,
        *,
        model_uri: str,
        registered_model_name: str,
        evaluation_data: str,
        alias: str = "champion",
        target: str | None = None,
        thresholds: Mapping[str, Any] | str | None = None,
        primary_metric: str | None = None,
        report_uri: str | None = None,
        fail_on_rejection: bool = False,
        cold_start: bool | str = False,
        mlflow_conn_id: str = MLFLOW_CONN_ID,
        aws_conn_id: str | None = AWS_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_uri = model_uri
        self.registered_model_name = registered_model_name
        self.evaluation_data = evaluation_data
        self.alias = alias
        self.target = target
        self.thresholds = _renamed_thresholds(thresholds, type(self).__name__)
        self.primary_metric = primary_metric
        self.report_uri = report_uri
        self.fail_on_rejection = fail_on_rejection
        self.cold_start = cold_start
        self.mlflow_conn_id = mlflow_conn_id
        self.aws_conn_id = aws_conn_id

    def run(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core import params
        from mlops_provider.core.evaluation import evaluate_candidate
        from mlops_provider.core.params import as_bool, as_mapping, as_str

        name = params.required(
            params.as_str(self.registered_model_name, "registered_model_name"),
            "registered_model_name",
        )
        thresholds = as_mapping(self.thresholds, "thresholds")
        report = _report_location(as_str(self.report_uri, "report_uri"), name, context)
        result = evaluate_candidate(
            self.hook.target,
            model_uri=params.required(
                params.as_str(self.model_uri, "model_uri"), "model_uri", "a model URI"
            ),
            registered_model_name=name,
            evaluation_data=params.required(
                params.as_uri(self.evaluation_data, "evaluation_data"),
                "evaluation_data",
                "a dataset URI",
            ),
            alias=str(as_str(self.alias, "alias", default="champion")),
            target_column=as_str(self.target, "target"),
            thresholds=_renamed_thresholds(thresholds, type(self).__name__),
            primary_metric=as_str(self.primary_metric, "primary_metric"),
            report_uri=report,
            conn_id=as_str(self.aws_conn_id, "aws_conn_id"),
            context={"evaluated_by": self.identity(context).key},
            cold_start=bool(as_bool(self.cold_start, "cold_start", default=False)),
        )
        for check in result.checks:
            self.log.info("%s %s", "PASS" if check.passed else "FAIL", check.reason)
        self.log.info("%s (rule: %s); report: %s", result.reason, result.rule, result.report_uri)
        out = result.to_dict()
        if not result.passed and as_bool(self.fail_on_rejection, "fail_on_rejection"):
            self._mlops_result = out  # the failure event reports the evaluation too
            self.persist_links(context, out)
            self.push_result_keys(context, out)
            raise ModelRejected(
                f"{name} candidate {self.model_uri} {result.reason}. Report: {result.report_uri}"
            )
        return out

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (docs/openlineage.md): the evaluation data (rows), the candidate model,
        with one assertion per gate check, and the champion (when there is one) as inputs."""
        from mlops_provider.lineage import Lineage, operator_result

        result = operator_result(self)
        candidate = result.get("candidate") or result.get("model")
        checks = [
            {
                "assertion": str(check.get("check")),
                "name": f"{check.get('metric')}.{check.get('check')}",
                "success": bool(check.get("passed")),
                "description": check.get("reason"),
                "actual": check.get("candidate"),
                "expected": check.get("threshold"),
                "params": {"champion": check.get("champion")},
            }
            for check in result.get("checks") or []
            if isinstance(check, Mapping)
        ]
        return (
            Lineage.of(self)
            .dataset(result.get("evaluation_data") or self.evaluation_data, rows=result.get("rows"))
            .model(candidate, assertions=checks)
            .model(result.get("champion"))
            .build()
        )

    def error_message(self, err: Exception) -> str:
        return f"cannot evaluate {self.model_uri}: {err}"
