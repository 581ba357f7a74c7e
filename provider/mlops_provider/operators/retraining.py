"""Retraining operators: decide from monitoring results, and emit the retrain-request asset event.

How the asset event is emitted only when retraining is decided (Airflow 3 Task SDK): when a task
*succeeds*, the task runner reports every asset in its ``outlets`` to the API server, which
records one asset event per outlet (with the ``extra`` set through
``context["outlet_events"][asset].extra``). A task that raises ``AirflowSkipException`` ends in
the ``skipped`` state and reports no outlets, so no event is recorded. Hence:

* ``mode="asset"``: the decision operator has the retrain-request asset in its outlets; it
  succeeds (one event, the reasons in its ``extra``) when retraining is decided and skips itself
  otherwise (no event). Its decision is pushed to XCom in both cases.
* ``mode="branch"``: the operator follows ``retrain_task_ids`` or ``no_retrain_task_ids``; put
  a :class:`RetrainRequestOperator` (which owns the asset outlet) on the retrain branch,
  optionally behind ``airflow.providers.standard.operators.hitl.ApprovalOperator`` for a human
  approval before the request is emitted.

The operators are thin shells over :mod:`mlops_provider.core.retraining`; core errors become
:class:`~mlops_provider.exceptions.RetrainDecisionError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import Asset, BranchMixIn
from airflow.sdk.exceptions import AirflowSkipException

from mlops_provider.assets import RETRAIN_REQUEST_ASSET_URI, as_asset
from mlops_provider.exceptions import RetrainDecisionError
from mlops_provider.operators._base import AWS_CONN_ID, MLFLOW_CONN_ID, MlopsBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_provider.core.retraining import RetrainDecision

__all__ = ["RetrainDecisionError", "RetrainDecisionOperator", "RetrainRequestOperator"]


def _with_outlet(kwargs: dict[str, Any], asset: Asset) -> None:
    """Add ``asset`` to the ``outlets`` in ``kwargs`` (once)."""
    outlets = list(kwargs.pop("outlets", None) or [])
    if asset not in outlets:
        outlets.append(asset)
    kwargs["outlets"] = outlets


def _decision_time(op: MlopsBaseOperator, context: Context) -> datetime:
    """The end of the data interval (so backfills decide as live runs did), else its start."""
    start, end = op.data_interval(context)
    return end or start


def _source(context: Context) -> str:
    ti = context["ti"]
    return f"{ti.dag_id}.{ti.task_id}"


class RetrainDecisionOperator(MlopsBaseOperator, BranchMixIn):
    """Decide whether to retrain the champion from drift, performance, data volume and age.

    Policies (see ``docs/retraining.md`` for every key and its default) are combined: each one
    that triggers adds a reason. A triggered decision is suppressed within ``cooldown`` of the
    last request (``suppressed_by="cooldown"``) and while the last request is still open
    (``suppressed_by="open_request"``): until a new champion is promoted after it, the
    training pipeline marks it handled (``core.retraining.mark_request_handled``) or it is
    older than ``request_expiry``. The request state is kept as tags of the registered model
    (``mlops.retrain.last_request_at``, ``mlops.retrain.last_request_reasons``,
    ``mlops.retrain.last_request_champion_version``, ``mlops.retrain.last_request_id`` ...).
    Decision time is the end of the data interval.

    A retry or rerun for the same data interval recognizes its own recorded request and decides
    (and emits) again instead of suppressing itself, so a failed try never loses a request; a
    manual re-run of a *successful* decision therefore emits the request once more.

    :param registered_model_name: the registered model to retrain. (templated)
    :param alias: alias of the champion (default ``champion``). (templated)
    :param drift: DriftDetectionOperator result(s), e.g. ``drift_task.output`` or a list of
        them (data and prediction drift). (templated)
    :param performance: ModelPerformanceOperator result(s), e.g. ``perf_task.output``.
        (templated)
    :param policy: policy dict (or its JSON text), flat or grouped in sections ``drift``,
        ``performance``, ``data_volume``, ``age``; missing keys take the defaults:
        ``dataset_drift=True``, ``critical_features=[]``, ``metric=None`` (the performance
        result's primary metric), ``min_metric=None``, ``max_metric=None``,
        ``max_degradation=0.05``, ``max_relative_degradation=None``, ``min_new_labels=None``,
        ``max_model_age=None``, ``cooldown="1d"``, ``deduplicate=True``,
        ``request_expiry="14d"``. (templated)
    :param labels_data: base URI of label partitions, for ``min_new_labels``. (templated)
    :param target: label column counted by the data-volume policy (default: the label the
        champion's training run recorded, tag ``mlops.target``; only needed when counting new
        labels). (templated)
    :param mode: ``"asset"`` (default: emit the retrain-request asset event when retraining,
        skip otherwise) or ``"branch"`` (follow ``retrain_task_ids`` / ``no_retrain_task_ids``).
    :param retrain_asset: the retrain-request ``Asset`` or its name (default
        ``mlops.retrain-request``; a former ``mlops://`` URI is translated); mode ``"asset"``
        adds it to the outlets. Not templated: outlets are fixed when the DAG is parsed.
    :param retrain_task_ids: task id(s) to follow when retraining (mode ``"branch"``).
    :param no_retrain_task_ids: task id(s) to follow otherwise (mode ``"branch"``; default
        none: every downstream task is skipped).
    :param record_request: store the request in the registry when retraining is decided
        (default: True in mode ``"asset"``, False in mode ``"branch"``, where
        :class:`RetrainRequestOperator` records it when it emits).
    :param mlflow_conn_id: MLflow connection (default ``mlflow_default``). (templated)
    :param aws_conn_id: connection for an ``s3://`` ``labels_data`` (default ``aws_default``).
        (templated)

    XCom (return value, docs/results.md; pushed in both outcomes and both modes): ``status``
    ``retrain`` or ``no_retrain``; ``passed`` = no retraining needed; ``reasons`` the reasons
    of the policies that triggered (also when a cooldown suppressed them); ``model``
    ``{name, version, run_id, uri, alias}`` of the alias holder (``None`` without one);
    ``mlflow_run_id``, ``report_uri``, ``rows`` None. Then ``retrain`` (bool),
    ``suppressed_by`` (``"cooldown"`` | ``"open_request"`` | ``None``), ``suppression`` (why),
    ``triggered``, ``evaluations`` (per policy: ``evaluated``, ``triggered``, ``reasons``,
    ``note``, ``details``), ``decided_at``, ``request_open``, ``retry_of_request``,
    ``request_id``, ``retraining_gain`` (sentences: the monitored champion's gain over the
    earlier champions on the same matured rows, from the performance results; empty when not
    measured), ``champion`` (``name``, ``version``, ``promoted_at``, ``created_at``,
    ``training_data_end``, ``run_id``, ``target``), ``last_request``, ``policy``, ``mode``,
    ``retrain_asset`` (mode asset), ``branch`` (mode branch: the followed task ids).

    Deprecated keys (kept for one release): ``retrain`` (use ``status``/``passed``),
    ``champion`` (``model``; it keeps the policy's times).

    :raises RetrainDecisionError: invalid policy or inputs (e.g. a drift input that is not a
        drift result), the registered model does not exist, or new labels are to be counted
        and the label column is unknown (``target``).
    """

    error_class = RetrainDecisionError
    template_fields: Sequence[str] = (
        "registered_model_name",
        "alias",
        "drift",
        "performance",
        "policy",
        "labels_data",
        "target",
        "mlflow_conn_id",
        "aws_conn_id",
    )
    template_fields_renderers = {"policy": "json"}
    inherits_from_skipmixin = True
    ui_color = "#fff4d6"

    def __init__(
        self,
        *,
        registered_model_name: str,
        alias: str = "champion",
        drift: Any = None,
        performance: Any = None,
        policy: dict[str, Any] | str | None = None,
        labels_data: str | None = None,
        target: str | None = None,
        mode: Literal["asset", "branch"] = "asset",
        retrain_asset: Asset | str | None = None,
        retrain_task_ids: str | Iterable[str] | None = None,
        no_retrain_task_ids: str | Iterable[str] | None = None,
        record_request: bool | None = None,
        mlflow_conn_id: str = MLFLOW_CONN_ID,
        aws_conn_id: str | None = AWS_CONN_ID,
        **kwargs: Any,
    ) -> None:
        if mode not in ("asset", "branch"):
            raise ValueError(f"mode must be 'asset' or 'branch', got {mode!r}")
        if mode == "branch" and not retrain_task_ids:
            raise ValueError("mode='branch' needs retrain_task_ids (the task(s) to follow)")
        self.retrain_asset = as_asset(retrain_asset or RETRAIN_REQUEST_ASSET_URI)
        if mode == "asset":
            _with_outlet(kwargs, self.retrain_asset)
        super().__init__(**kwargs)
        self.registered_model_name = registered_model_name
        self.alias = alias
        self.drift = drift
        self.performance = performance
        self.policy = policy
        self.labels_data = labels_data
        self.target = target
        self.mode = mode
        self.retrain_task_ids = retrain_task_ids
        self.no_retrain_task_ids = no_retrain_task_ids
        self.record_request = record_request
        self.mlflow_conn_id = mlflow_conn_id
        self.aws_conn_id = aws_conn_id

    def error_message(self, err: Exception) -> str:
        return f"retrain decision for {self.registered_model_name!r} failed: {err}"

    def _decide(self, context: Context) -> RetrainDecision:
        from mlops_provider.core import params
        from mlops_provider.core.retraining import request_id_for, run_retrain_decision

        record = params.as_bool(self.record_request, "record_request")
        return run_retrain_decision(
            self.mlflow_hook.client,
            params.as_str(self.registered_model_name, "registered_model_name") or "",
            alias=params.as_str(self.alias, "alias", default="champion") or "champion",
            policy=params.as_mapping(self.policy, "policy", default={}),
            drift=self.drift,
            performance=self.performance,
            labels_data=params.as_str(self.labels_data, "labels_data"),
            target=params.as_str(self.target, "target"),
            now=_decision_time(self, context),
            request_id=request_id_for(self.identity(context)),
            record=self.mode == "asset" if record is None else record,
            conn_id=params.as_str(self.aws_conn_id, "aws_conn_id"),
        )

    def run(self, context: Context) -> dict[str, Any]:
        decision = self._decide(context)
        if self.mode == "branch":
            return self._branch(context, decision)
        result = decision.to_result(mode=self.mode, retrain_asset=self.retrain_asset.uri)
        if decision.retrain:
            self._emit(context, decision)
            return result
        context["ti"].xcom_push(key="return_value", value=result)
        if decision.triggered:
            why = f"retraining suppressed by {decision.suppressed_by}: {decision.suppression}"
        else:
            notes = [e.note for e in decision.evaluations if e.note]
            why = "no policy triggered" + (f" ({'; '.join(notes)})" if notes else "")
        raise AirflowSkipException(f"no retrain request emitted: {why}")

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (docs/openlineage.md): the champion the decision is about and the
        labels counted for ``min_new_labels``, as inputs."""
        from mlops_provider.lineage import Lineage, operator_result

        result = operator_result(self)
        return Lineage.of(self).model(result.get("model")).dataset(self.labels_data).build()

    def _branch(self, context: Context, decision: RetrainDecision) -> dict[str, Any]:
        follow = self.retrain_task_ids if decision.retrain else self.no_retrain_task_ids
        follow_list = [follow] if isinstance(follow, str) else list(follow or [])
        result = decision.to_result(mode=self.mode, branch=follow_list)
        # Push first: skipping downstream tasks ends run() by an exception.
        context["ti"].xcom_push(key="return_value", value=result)
        self.do_branch(context, follow_list or None)
        return result

    def _emit(self, context: Context, decision: RetrainDecision) -> None:
        from mlops_provider.core.retraining import request_extra

        extra = request_extra(
            registered_model_name=str(self.registered_model_name),
            reasons=decision.reasons,
            requested_at=decision.decided_at,
            request_id=str(decision.request_id),
            champion_version=decision.champion.version if decision.champion else None,
            source=_source(context),
            triggered_policies=decision.triggered_policies,
            retraining_gain=decision.gain,
        )
        context["outlet_events"][self.retrain_asset].extra.update(extra)
        self.log.info(
            "Retraining requested (%s): %s", self.retrain_asset.uri, "; ".join(decision.reasons)
        )


class RetrainRequestOperator(MlopsBaseOperator):
    """Emit the retrain-request asset event (and record the request for cooldown/de-duplication).

    Put it on the retrain branch of a ``RetrainDecisionOperator(mode="branch")``, optionally
    behind an ``ApprovalOperator``. It succeeds (one asset event whose ``extra`` holds the
    reasons) unless the decision it is given says not to retrain, in which case it pushes a
    ``skipped`` result and skips itself (no event).

    :param registered_model_name: the registered model to retrain. (templated)
    :param decision: the decision's XCom (e.g. ``decide.output``); its ``reasons`` are used.
        (templated)
    :param reasons: reasons to send instead (e.g. a manual request). (templated)
    :param alias: alias of the champion (default ``champion``). (templated)
    :param retrain_asset: the retrain-request ``Asset`` or its name (default
        ``mlops.retrain-request``; a former ``mlops://`` URI is translated), added to the
        outlets.
    :param record_request: store the request as registered-model tags (default True).
    :param mlflow_conn_id: MLflow connection (default ``mlflow_default``). (templated)

    XCom (return value, docs/results.md): ``status`` ``requested`` or ``skipped`` (the decision
    said not to retrain); ``passed`` True; ``reasons`` the reasons sent (or why it skipped);
    ``model`` the alias holder; ``mlflow_run_id``, ``report_uri``, ``rows`` None. Then
    ``requested`` (bool), ``retrain_asset``, ``requested_at``, ``request_id``,
    ``champion_version``, ``recorded``.

    Deprecated keys (kept for one release): ``requested`` (use ``status``),
    ``champion_version`` (``model["version"]``).

    :raises RetrainDecisionError: no reasons at all, or the registered model does not exist.
    """

    error_class = RetrainDecisionError
    template_fields: Sequence[str] = (
        "registered_model_name",
        "decision",
        "reasons",
        "alias",
        "mlflow_conn_id",
    )
    ui_color = "#fff4d6"

    def __init__(
        self,
        *,
        registered_model_name: str,
        decision: Any = None,
        reasons: list[str] | None = None,
        alias: str = "champion",
        retrain_asset: Asset | str | None = None,
        record_request: bool = True,
        mlflow_conn_id: str = MLFLOW_CONN_ID,
        **kwargs: Any,
    ) -> None:
        self.retrain_asset = as_asset(retrain_asset or RETRAIN_REQUEST_ASSET_URI)
        _with_outlet(kwargs, self.retrain_asset)
        super().__init__(**kwargs)
        self.registered_model_name = registered_model_name
        self.decision = decision
        self.reasons = reasons
        self.alias = alias
        self.record_request = record_request
        self.mlflow_conn_id = mlflow_conn_id

    def run(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core import params
        from mlops_provider.core.retraining import (
            record_retrain_request,
            request_extra,
            request_id_for,
            request_result,
        )

        decision = params.as_mapping(self.decision, "decision")
        if decision is not None and not decision.get("retrain", False):
            why = "the decision says not to retrain: no request emitted"
            skipped = request_result(
                status="skipped",
                reasons=[why],
                model=decision.get("model"),
                retrain_asset=self.retrain_asset.uri,
            )
            context["ti"].xcom_push(key="return_value", value=skipped)
            raise AirflowSkipException(why)
        name = params.as_str(self.registered_model_name, "registered_model_name") or ""
        reasons = [str(r) for r in params.as_list(self.reasons, "reasons") or []]
        reasons = reasons or [str(r) for r in (decision or {}).get("reasons") or []]
        now, request_id = _decision_time(self, context), request_id_for(self.identity(context))
        record = bool(params.as_bool(self.record_request, "record_request", default=True))
        state, champion = record_retrain_request(
            self.mlflow_hook.client,
            name,
            alias=params.as_str(self.alias, "alias", default="champion") or "champion",
            reasons=reasons,
            at=now,
            request_id=request_id,
            record=record,
        )
        extra = request_extra(
            registered_model_name=name,
            reasons=reasons,
            requested_at=now,
            request_id=request_id,
            champion_version=champion.version if champion else None,
            source=_source(context),
            triggered_policies=_triggered(decision),
        )
        context["outlet_events"][self.retrain_asset].extra.update(extra)
        self.log.info("Retraining requested (%s): %s", self.retrain_asset.uri, "; ".join(reasons))
        return request_result(
            status="requested",
            reasons=reasons,
            model=champion.model if champion else None,
            retrain_asset=self.retrain_asset.uri,
            extra=extra,
            recorded=state is not None,
        )

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage (docs/openlineage.md): the champion to retrain, as the input."""
        from mlops_provider.lineage import Lineage, operator_result

        return Lineage.of(self).model(operator_result(self).get("model")).build()


def _triggered(decision: Mapping[str, Any] | None) -> list[str]:
    """The policies that triggered, from a decision's XCom."""
    evaluations = (decision or {}).get("evaluations") or {}
    return [
        name for name, ev in evaluations.items() if isinstance(ev, Mapping) and ev.get("triggered")
    ]
