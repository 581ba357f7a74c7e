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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import Asset, BaseOperator, BranchMixIn
from airflow.sdk.exceptions import AirflowSkipException

from mlops_provider.assets import RETRAIN_REQUEST_ASSET_URI, as_asset
from mlops_provider.exceptions import MlopsError
from mlops_provider.operators.monitoring import data_interval

if TYPE_CHECKING:
    from airflow.sdk import Context

    from mlops_provider.hooks.mlflow import MlflowHook

__all__ = ["RetrainDecisionError", "RetrainDecisionOperator", "RetrainRequestOperator"]


class RetrainDecisionError(MlopsError):
    """The retraining decision could not be made (invalid policy or inputs, unknown model)."""


def _request_id(context: Context) -> str:
    """Identity of the deciding run: ``<dag_id>/<data interval start>`` (or the run id)."""
    ti = context["ti"]
    start = context.get("data_interval_start")
    if isinstance(start, datetime):
        stamp = datetime.fromtimestamp(start.timestamp(), tz=timezone.utc).isoformat()
        return f"{ti.dag_id}/{stamp}"
    return f"{ti.dag_id}/{ti.run_id}"


def _decision_time(context: Context) -> datetime:
    """The end of the data interval (so backfills decide as live runs did), else now."""
    start, end = data_interval(context)
    return end or start or datetime.now(timezone.utc)


def request_extra(
    *,
    registered_model_name: str,
    reasons: Sequence[str],
    requested_at: datetime,
    request_id: str,
    champion_version: str | None,
    context: Context,
    triggered_policies: Sequence[str] = (),
) -> dict[str, Any]:
    """The ``extra`` of a retrain-request asset event (JSON-serializable).

    ``as_of`` (= ``requested_at``, the end of the deciding data interval) tells the training
    pipeline up to when it may use data, so a backfilled request trains as a live one would.
    """
    ti = context["ti"]
    at = requested_at.astimezone(timezone.utc).isoformat()
    return {
        "reasons": list(reasons),
        "registered_model_name": registered_model_name,
        "champion_version": champion_version,
        "requested_at": at,
        "as_of": at,
        "request_id": request_id,
        "policies": list(triggered_policies),
        "source": f"{ti.dag_id}.{ti.task_id}",
    }


class RetrainDecisionOperator(BaseOperator, BranchMixIn):
    """Decide whether to retrain the champion from drift, performance, data volume and age.

    Policies (see ``docs/monitoring.md`` for every key and its default) are combined: each one
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
    :param target: label column counted by the data-volume policy (default ``churned``).
        (templated)
    :param mode: ``"asset"`` (default: emit the retrain-request asset event when retraining,
        skip otherwise) or ``"branch"`` (follow ``retrain_task_ids`` / ``no_retrain_task_ids``).
    :param retrain_asset: the retrain-request ``Asset`` or its URI (default
        ``mlops://retrain-request``); mode ``"asset"`` adds it to the outlets. Not templated:
        outlets are fixed when the DAG is parsed.
    :param retrain_task_ids: task id(s) to follow when retraining (mode ``"branch"``).
    :param no_retrain_task_ids: task id(s) to follow otherwise (mode ``"branch"``; default
        none: every downstream task is skipped).
    :param record_request: store the request in the registry when retraining is decided
        (default: True in mode ``"asset"``, False in mode ``"branch"``, where
        :class:`RetrainRequestOperator` records it when it emits).
    :param mlflow_conn_id: MLflow connection (default ``mlflow_default``). (templated)
    :param aws_conn_id: connection for an ``s3://`` ``labels_data`` (default ``aws_default``).
        (templated)

    XCom (return value, pushed in both outcomes and both modes): ``retrain`` (bool),
    ``reasons`` (list of strings), ``suppressed_by`` (``"cooldown"`` | ``"open_request"`` |
    ``None``), ``suppression`` (why), ``triggered``, ``evaluations`` (per policy: ``evaluated``,
    ``triggered``, ``reasons``, ``note``, ``details``), ``decided_at``, ``request_open``,
    ``retry_of_request``, ``request_id``, ``champion``, ``last_request``, ``policy``, ``mode``,
    ``retrain_asset`` (mode asset), ``branch`` (mode branch: the followed task ids).

    :raises RetrainDecisionError: invalid policy or inputs (e.g. a drift input that is not a
        drift result), or the registered model does not exist.
    """

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
        target: str = "churned",
        mode: Literal["asset", "branch"] = "asset",
        retrain_asset: Asset | str | None = None,
        retrain_task_ids: str | Iterable[str] | None = None,
        no_retrain_task_ids: str | Iterable[str] | None = None,
        record_request: bool | None = None,
        mlflow_conn_id: str = "mlflow_default",
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        if mode not in ("asset", "branch"):
            raise ValueError(f"mode must be 'asset' or 'branch', got {mode!r}")
        if mode == "branch" and not retrain_task_ids:
            raise ValueError("mode='branch' needs retrain_task_ids (the task(s) to follow)")
        self.retrain_asset = as_asset(retrain_asset or RETRAIN_REQUEST_ASSET_URI)
        if mode == "asset":
            outlets = list(kwargs.pop("outlets", None) or [])
            if self.retrain_asset not in outlets:
                outlets.append(self.retrain_asset)
            kwargs["outlets"] = outlets
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

    @cached_property
    def hook(self) -> MlflowHook:
        """The MLflow hook of ``mlflow_conn_id``."""
        from mlops_provider.hooks.mlflow import MlflowHook

        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)

    def execute(self, context: Context) -> dict[str, Any] | None:
        from mlops_provider.core.io import DatasetError
        from mlops_provider.core.retraining import RetrainPolicyError, run_retrain_decision

        now = _decision_time(context)
        request_id = _request_id(context)
        record = self.record_request if self.record_request is not None else self.mode == "asset"
        try:
            decision = run_retrain_decision(
                self.hook.client,
                self.registered_model_name,
                alias=self.alias,
                policy=self.policy,
                drift=self.drift,
                performance=self.performance,
                labels_data=self.labels_data or None,
                target=self.target,
                now=now,
                request_id=request_id,
                record=record,
                conn_id=self.aws_conn_id,
            )
        except (RetrainPolicyError, DatasetError) as err:
            raise RetrainDecisionError(
                f"retrain decision for {self.registered_model_name!r} failed: {err}"
            ) from err
        result = decision.to_dict()
        result["mode"] = self.mode
        ti = context["ti"]
        if self.mode == "branch":
            follow = self.retrain_task_ids if decision.retrain else self.no_retrain_task_ids
            follow_list = [follow] if isinstance(follow, str) else list(follow or [])
            result["branch"] = follow_list
            # Push first: skipping downstream tasks ends execute() by an exception.
            ti.xcom_push(key="return_value", value=result)
            self.do_branch(context, follow_list or None)
            return result

        result["retrain_asset"] = self.retrain_asset.uri
        if decision.retrain:
            extra = request_extra(
                registered_model_name=self.registered_model_name,
                reasons=decision.reasons,
                requested_at=now,
                request_id=request_id,
                champion_version=decision.champion.version if decision.champion else None,
                context=context,
                triggered_policies=[e.policy for e in decision.evaluations if e.triggered],
            )
            context["outlet_events"][self.retrain_asset].extra.update(extra)
            self.log.info(
                "Retraining requested (%s): %s", self.retrain_asset.uri, "; ".join(decision.reasons)
            )
            return result
        ti.xcom_push(key="return_value", value=result)
        if decision.triggered:
            why = f"retraining suppressed by {decision.suppressed_by}: {decision.suppression}"
        else:
            notes = [e.note for e in decision.evaluations if e.note]
            why = "no policy triggered" + (f" ({'; '.join(notes)})" if notes else "")
        raise AirflowSkipException(f"no retrain request emitted: {why}")


class RetrainRequestOperator(BaseOperator):
    """Emit the retrain-request asset event (and record the request for cooldown/de-duplication).

    Put it on the retrain branch of a ``RetrainDecisionOperator(mode="branch")``, optionally
    behind an ``ApprovalOperator``. It succeeds (one asset event whose ``extra`` holds the
    reasons) unless the decision it is given says not to retrain, in which case it skips itself
    (no event).

    :param registered_model_name: the registered model to retrain. (templated)
    :param decision: the decision's XCom (e.g. ``decide.output``); its ``reasons`` are used.
        (templated)
    :param reasons: reasons to send instead (e.g. a manual request). (templated)
    :param alias: alias of the champion (default ``champion``). (templated)
    :param retrain_asset: the retrain-request ``Asset`` or URI (default
        ``mlops://retrain-request``), added to the outlets.
    :param record_request: store the request as registered-model tags (default True).
    :param mlflow_conn_id: MLflow connection (default ``mlflow_default``). (templated)

    XCom (return value): ``requested`` (True), ``reasons``, ``retrain_asset``,
    ``requested_at``, ``request_id``, ``champion_version``.

    :raises RetrainDecisionError: no reasons at all, or the registered model does not exist.
    """

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
        mlflow_conn_id: str = "mlflow_default",
        **kwargs: Any,
    ) -> None:
        self.retrain_asset = as_asset(retrain_asset or RETRAIN_REQUEST_ASSET_URI)
        outlets = list(kwargs.pop("outlets", None) or [])
        if self.retrain_asset not in outlets:
            outlets.append(self.retrain_asset)
        kwargs["outlets"] = outlets
        super().__init__(**kwargs)
        self.registered_model_name = registered_model_name
        self.decision = decision
        self.reasons = reasons
        self.alias = alias
        self.record_request = record_request
        self.mlflow_conn_id = mlflow_conn_id

    @cached_property
    def hook(self) -> MlflowHook:
        """The MLflow hook of ``mlflow_conn_id``."""
        from mlops_provider.hooks.mlflow import MlflowHook

        return MlflowHook(mlflow_conn_id=self.mlflow_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_provider.core.retraining import RetrainPolicyError, record_retrain_request

        decision = self.decision if isinstance(self.decision, Mapping) else None
        if decision is not None and not decision.get("retrain", False):
            raise AirflowSkipException("the decision says not to retrain: no request emitted")
        reasons = list(self.reasons or (decision or {}).get("reasons") or [])
        if not reasons:
            raise RetrainDecisionError(
                "no reasons to send with the retrain request: give decision= or reasons="
            )
        now = _decision_time(context)
        request_id = _request_id(context)
        try:
            state, champion_version = record_retrain_request(
                self.hook.client,
                self.registered_model_name,
                alias=self.alias,
                reasons=reasons,
                at=now,
                request_id=request_id,
                record=self.record_request,
            )
        except RetrainPolicyError as err:
            raise RetrainDecisionError(str(err)) from err
        policies = [
            name
            for name, ev in ((decision or {}).get("evaluations") or {}).items()
            if isinstance(ev, Mapping) and ev.get("triggered")
        ]
        extra = request_extra(
            registered_model_name=self.registered_model_name,
            reasons=reasons,
            requested_at=now,
            request_id=request_id,
            champion_version=champion_version,
            context=context,
            triggered_policies=policies,
        )
        context["outlet_events"][self.retrain_asset].extra.update(extra)
        self.log.info("Retraining requested (%s): %s", self.retrain_asset.uri, "; ".join(reasons))
        return {
            "requested": True,
            "reasons": reasons,
            "retrain_asset": self.retrain_asset.uri,
            "requested_at": extra["requested_at"],
            "request_id": request_id,
            "champion_version": champion_version,
            "recorded": bool(self.record_request and state is not None),
        }
