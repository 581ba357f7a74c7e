"""Retraining against the registry: read the state, decide, record the request.

:func:`run_retrain_decision` resolves (the request state, the champion, the new labels),
calls the pure :func:`~mlops_provider.core.retraining.decision.decide` and publishes (records
the request). :func:`record_retrain_request` records a request decided elsewhere (e.g. after a
human approval); :func:`request_extra` and :func:`request_result` shape what is sent.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from mlops_provider.core import io
from mlops_provider.core.errors import ParameterError
from mlops_provider.core.models import DEFAULT_ALIAS
from mlops_provider.core.results import make_result, model_dict
from mlops_provider.core.retraining.decision import RetrainDecision, decide
from mlops_provider.core.retraining.policy import RetrainPolicy, RetrainPolicyError
from mlops_provider.core.retraining.state import (
    ChampionInfo,
    RequestState,
    read_champion,
    read_request_state,
    record_request,
)
from mlops_provider.core.times import iso, utcnow

if TYPE_CHECKING:
    import pyarrow as pa
    from mlflow import MlflowClient

__all__ = [
    "count_new_labels",
    "record_retrain_request",
    "request_extra",
    "request_result",
    "run_retrain_decision",
]

log = logging.getLogger(__name__)


def _label_uris(
    labels_data: str, since: datetime, until: datetime, conn_id: str | None
) -> list[str]:
    """The label partitions ``dt`` in ``[since's day, until's day]`` (or the one dataset)."""
    partitions = io.list_partitions(labels_data, conn_id=conn_id)
    if partitions:
        return [u for d, u in partitions.items() if since.date() <= d <= until.date()]
    if io.exists(labels_data, conn_id=conn_id):
        return [labels_data]
    raise RetrainPolicyError(f"labels_data {labels_data} does not exist")


def _labelled_rows(
    table: pa.Table,
    target: str,
    time_column: str,
    available_column: str,
    since: datetime,
    until: datetime,
) -> int:
    """Rows with a label for events at or after ``since``, available by ``until`` (pure)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    utc = pa.timestamp("us", tz="UTC")
    mask = pc.is_valid(table[target])
    event = pc.cast(table[time_column], utc)
    mask = pc.and_(mask, pc.greater_equal(event, pa.scalar(since.astimezone(timezone.utc), utc)))
    if available_column in table.column_names:
        available = pc.cast(table[available_column], utc)
        until_ts = pa.scalar(until.astimezone(timezone.utc), utc)
        mask = pc.and_(mask, pc.less_equal(available, until_ts))
    return int(pc.sum(pc.cast(pc.fill_null(mask, False), pa.int64())).as_py() or 0)


def count_new_labels(
    labels_data: str,
    *,
    since: datetime,
    until: datetime,
    target: str,
    label_time_column: str = "event_timestamp",
    label_available_column: str = "label_available_at",
    conn_id: str | None = None,
) -> int:
    """Labelled rows for events at or after ``since`` that were available by ``until``.

    Reads only the label partitions ``dt`` in ``[since's day, until's day]`` (partitions are
    keyed by arrival day, which is never before the event) and only the needed columns.

    :raises RetrainPolicyError: ``labels_data`` does not exist, or lacks ``target`` or
        ``label_time_column``.
    """
    total = 0
    for uri in _label_uris(labels_data, since, until, conn_id):
        try:
            names = io.open_dataset(uri, conn_id=conn_id).schema.names
        except io.DatasetEmpty:
            continue
        cols = [c for c in (target, label_time_column, label_available_column) if c in names]
        if target not in cols or label_time_column not in cols:
            raise RetrainPolicyError(
                f"labels {uri} need columns {target!r} and {label_time_column!r} (columns: {names})"
            )
        table = io.read_table(uri, columns=cols, conn_id=conn_id)
        if table.num_rows:
            total += _labelled_rows(
                table, target, label_time_column, label_available_column, since, until
            )
    return total


def _new_labels(
    policy: RetrainPolicy,
    champion: ChampionInfo | None,
    labels_data: str | None,
    target: str | None,
    now: datetime,
    conn_id: str | None,
) -> int | None:
    """New labels since the champion's training data, when the data-volume policy needs them."""
    if policy.min_new_labels is None or not labels_data or champion is None:
        return None
    cutoff = champion.training_cutoff
    if cutoff is None:
        return None
    label = target or champion.target
    if not label:
        raise ParameterError(
            "target",
            f"the label column to count in {labels_data} is unknown: the training run "
            f"{champion.run_id} of {champion.name} version {champion.version} has no "
            "'mlops.target' tag; pass target=",
        )
    return count_new_labels(labels_data, since=cutoff, until=now, target=label, conn_id=conn_id)


def run_retrain_decision(
    client: MlflowClient,
    registered_model_name: str,
    *,
    alias: str = DEFAULT_ALIAS,
    policy: RetrainPolicy | Mapping[str, Any] | str | None = None,
    drift: Any = None,
    performance: Any = None,
    labels_data: str | None = None,
    target: str | None = None,
    now: datetime | None = None,
    request_id: str | None = None,
    record: bool = True,
    conn_id: str | None = None,
) -> RetrainDecision:
    """Read the champion and the request state, decide, and record the request if retraining.

    :param client: MLflow client of the registry holding the model.
    :param registered_model_name: the model whose champion (``alias``) may be retrained.
    :param policy: policy dict (see :data:`~mlops_provider.core.retraining.DEFAULT_POLICY`).
    :param drift: DriftDetectionOperator result(s).
    :param performance: ModelPerformanceOperator result(s).
    :param labels_data: base URI of label partitions, for the data-volume policy.
    :param target: label column counted there (default: the champion's ``mlops.target``).
    :param now: decision time (default: now, UTC).
    :param request_id: identity of the deciding run (see ``decide``).
    :param record: store the request in the registry when retraining is decided.
    :param conn_id: connection for a remote ``labels_data``.
    :raises RetrainPolicyError: invalid policy or inputs.
    :raises ModelNotFoundError: the registered model does not exist.
    :raises ParameterError: labels are to be counted but the label column is unknown.
    """
    if not isinstance(policy, RetrainPolicy):
        policy = RetrainPolicy.from_dict(policy)
    now = now or utcnow()
    state = read_request_state(client, registered_model_name)
    champion = read_champion(client, registered_model_name, alias)
    new_labels = _new_labels(policy, champion, labels_data, target, now, conn_id)
    decision = decide(
        policy,
        drift=drift,
        performance=performance,
        new_labels=new_labels,
        champion=champion,
        state=state,
        now=now,
        request_id=request_id,
    )
    if decision.retrain and record:
        record_request(
            client,
            registered_model_name,
            reasons=decision.reasons,
            at=now,
            champion=champion,
            request_id=request_id,
        )
    log.info(
        "Retrain decision for %s: retrain=%s triggered=%s suppressed_by=%s reasons=%s; "
        "retraining gain: %s",
        registered_model_name,
        decision.retrain,
        decision.triggered,
        decision.suppressed_by,
        decision.reasons,
        "; ".join(decision.gain) or "not measured",
    )
    return decision


def record_retrain_request(
    client: MlflowClient,
    name: str,
    *,
    alias: str = DEFAULT_ALIAS,
    reasons: Sequence[str],
    at: datetime,
    request_id: str | None,
    record: bool = True,
) -> tuple[RequestState | None, ChampionInfo | None]:
    """Record a request against the current champion; returns ``(state, champion)``.

    :raises ParameterError: no reasons.
    :raises ModelNotFoundError: the registered model does not exist.
    """
    if not reasons:
        raise ParameterError(
            "reasons", "no reasons to send with the retrain request: give decision= or reasons="
        )
    champion = read_champion(client, name, alias)
    state = None
    if record:
        state = record_request(
            client, name, reasons=reasons, at=at, champion=champion, request_id=request_id
        )
    return state, champion


def request_extra(
    *,
    registered_model_name: str,
    reasons: Sequence[str],
    requested_at: datetime,
    request_id: str,
    champion_version: str | None,
    source: str,
    triggered_policies: Sequence[str] = (),
    retraining_gain: Sequence[str] = (),
) -> dict[str, Any]:
    """The ``extra`` of a retrain-request asset event (JSON-serializable).

    ``as_of`` (= ``requested_at``, the end of the deciding data interval) tells the training
    pipeline up to when it may use data, so a backfilled request trains as a live one would.
    ``source`` is ``<dag_id>.<task_id>`` of the requesting task; ``retraining_gain`` what the
    earlier retraining bought, as measured when the request was made (sentences).
    """
    at = iso(requested_at)
    return {
        "reasons": list(reasons),
        "registered_model_name": registered_model_name,
        "champion_version": champion_version,
        "requested_at": at,
        "as_of": at,
        "request_id": request_id,
        "policies": list(triggered_policies),
        "source": source,
        "retraining_gain": list(retraining_gain),
    }


def request_result(
    *,
    status: str,
    reasons: Sequence[str],
    model: Any,
    retrain_asset: str,
    extra: Mapping[str, Any] | None = None,
    recorded: bool = False,
) -> dict[str, Any]:
    """The RetrainRequestOperator's result: ``requested`` or ``skipped``; ``model`` = the alias
    holder (a ``ModelVersion`` or a result's ``model`` dict)."""
    extra = extra or {}
    holder = model_dict(model) or {}
    return make_result(
        status=status,
        passed=True,
        reasons=reasons,
        model=model,
        requested=status == "requested",
        retrain_asset=retrain_asset,
        requested_at=extra.get("requested_at"),
        request_id=extra.get("request_id"),
        champion_version=extra.get("champion_version", holder.get("version")),
        recorded=recorded,
    )
