"""What a training pipeline knows about its inputs, gathered for the lineage document.

The reference training DAG (``dags/mlops_training_pipeline.py``) calls these from its tasks and
passes the result to ``TrainModelOperator(lineage=...)``, which records it in the run's
``lineage/training.json`` (:mod:`.record`):

- :func:`dataset_ref`: a dataset's URI, content digest (``io.table_digest`` of the table as read
  back from storage) and row count;
- :func:`source_partitions`: the feature partitions a label window read, each with its digest
  and the validation its publish recorded (:func:`~mlops_provider.core.features.publish.
  partition_validation`);
- :func:`training_trigger` / :func:`read_trigger`: what started the training (schedule, retrain
  request, manual run) and the reasons;
- :func:`pipeline_lineage`: the lineage fields of one training run from the results of the
  pipeline's tasks;
- :func:`file_digest`: the sha256 of a file (the DAG file that ran).

Imports nothing heavy at module level.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import date
from typing import TYPE_CHECKING, Any

from mlops_provider.core.governance.record import DatasetRef

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "TRIGGER_KINDS",
    "current_digest",
    "dataset_ref",
    "file_digest",
    "pipeline_lineage",
    "read_trigger",
    "source_partitions",
    "training_trigger",
]

log = logging.getLogger(__name__)

#: ``trigger.kind`` values: the run consumed retrain-request asset events, or handled the open
#: retrain request recorded on the registered model; a person (or a test) started it with a
#: configuration; the timetable started it.
TRIGGER_KINDS = ("retrain_request", "manual", "schedule")


def current_digest(uri: str, *, conn_id: str | None = None) -> tuple[str | None, int | None]:
    """``(digest, rows)`` of a dataset as it is now (``io.table_digest`` of the table read
    back), ``(None, None)`` when it cannot be read."""
    from mlops_provider.core import io

    try:
        table = io.read_table(uri, conn_id=conn_id)
    except (io.DatasetError, OSError) as err:
        log.info("cannot read %s for its digest: %s", uri, err)
        return None, None
    return io.table_digest(table), table.num_rows


def dataset_ref(uri: str, *, conn_id: str | None = None) -> DatasetRef:
    """The dataset at ``uri`` with its content digest and row count, as stored now (a dataset
    that cannot be read gets no digest)."""
    digest, rows = current_digest(str(uri), conn_id=conn_id)
    return DatasetRef(uri=str(uri), digest=digest, rows=rows)


def file_digest(path: str | None) -> str | None:
    """The sha256 (hex) of a file's bytes, or None when there is no such file."""
    if not path:
        return None
    try:
        with open(path, "rb") as handle:
            return hashlib.sha256(handle.read()).hexdigest()
    except OSError as err:
        log.info("cannot read %s for its digest: %s", path, err)
        return None


def source_partitions(
    features_uri: str,
    days: Mapping[str, Sequence[str | date]],
    *,
    conn_id: str | None = None,
) -> list[dict[str, Any]]:
    """The feature partitions ``<features_uri>/dt=<day>`` of ``days`` (by role, e.g.
    ``{"training": [...], "evaluation": [...]}``): ``uri``, ``day``, ``role``, ``digest``,
    ``rows``, and ``validation`` (what the publish recorded in the partition's ``_SUCCESS``
    marker: ``status``, ``passed``, ``suite``, ``report_uri``, ``result_uri``, ``rows``; None when
    the publish recorded none)."""
    from mlops_provider.core import io
    from mlops_provider.core.features.publish import partition_marker, partition_validation

    out = []
    for role, role_days in days.items():
        for day in role_days:
            day_text = day.isoformat() if isinstance(day, date) else str(day)[:10]
            uri = io.partition_uri(features_uri, day_text)
            digest, rows = current_digest(uri, conn_id=conn_id)
            marker = partition_marker(uri, conn_id=conn_id)
            out.append(
                {
                    "uri": uri,
                    "day": day_text,
                    "role": role,
                    "digest": digest,
                    "rows": rows,
                    "validation": partition_validation(marker),
                }
            )
    return out


def training_trigger(
    *,
    events: Sequence[Mapping[str, Any]] = (),
    request: Mapping[str, Any] | None = None,
    run_type: str | None = None,
    conf_as_of: str | None = None,
) -> dict[str, Any]:
    """What started a training run (pure).

    :param events: the ``extra`` of each retrain-request asset event the run consumed.
    :param request: the retrain request recorded on the registered model when the run started
        (``RequestState.to_dict()`` plus ``request_id``), or None.
    :param run_type: the DAG run's type (``scheduled``, ``manual``, ``asset_triggered``, ...).
    :param conf_as_of: the ``as_of`` the run was started with, if any.
    :returns: ``kind`` (:data:`TRIGGER_KINDS`), ``reasons``, ``source`` (where the reasons were
        read: ``asset_events``, ``registry``, or None), ``request_ids``, ``events`` (the consumed
        events' ``extra``), ``request`` (the registry state), ``run_type``, ``conf_as_of``.
    """
    reasons: list[str] = []
    request_ids: list[str] = []
    for extra in events:
        reasons += [str(r) for r in extra.get("reasons") or []]
        if extra.get("request_id"):
            request_ids.append(str(extra["request_id"]))
    open_request = False
    if request is not None:
        open_request = bool(request.get("last_request_at")) and not request.get("handled")
    source = None
    if events:
        kind, source = "retrain_request", "asset_events"
    elif open_request and request is not None:
        # the run handles the open request (the pipeline closes it when it ends)
        kind, source = "retrain_request", "registry"
        reasons = [str(r) for r in request.get("reasons") or []]
        if request.get("request_id"):
            request_ids = [str(request["request_id"])]
    elif conf_as_of or run_type == "manual":
        kind = "manual"
    else:
        kind = "schedule"
    return {
        "kind": kind,
        "reasons": reasons,
        "source": source,
        "request_ids": request_ids,
        "events": [dict(e) for e in events],
        "request": dict(request) if request else None,
        "run_type": run_type,
        "conf_as_of": conf_as_of,
    }


def read_trigger(
    client: MlflowClient | None,
    model_name: str,
    *,
    events: Sequence[Mapping[str, Any]] = (),
    run_type: str | None = None,
    conf_as_of: str | None = None,
) -> dict[str, Any]:
    """:func:`training_trigger` with the retrain request read from the registered model's tags
    (``core.retraining.read_request_state``; none for a model not registered yet or a store
    that does not answer, noted under ``request_error``)."""
    request = None
    error = None
    if client is not None:
        from mlops_provider.core.retraining.state import read_request_state

        try:
            state = read_request_state(client, model_name)
            request = {**state.to_dict(), "registered_model_name": model_name}
        except Exception as err:  # no model yet, or the store is down: the trigger stays known
            error = f"{type(err).__name__}: {err}"
            log.info("no retrain request state for %s: %s", model_name, error)
    trigger = training_trigger(
        events=events, request=request, run_type=run_type, conf_as_of=conf_as_of
    )
    if error:
        trigger["request_error"] = error
    return trigger


def _as_dict(ref: DatasetRef) -> dict[str, Any]:
    return asdict(ref)


def pipeline_lineage(
    *,
    moment: Mapping[str, Any],
    window: Mapping[str, Any],
    training_set: Mapping[str, Any] | None,
    evaluation_set: Mapping[str, Any] | None = None,
    labels_uri: str,
    features_uri: str,
    window_days: int,
    conn_id: str | None = None,
) -> dict[str, Any]:
    """The lineage fields (:class:`~.record.TrainingLineage`) of one run of the reference
    training pipeline, from its tasks' results.

    :param moment: the ``as_of`` task's result (``as_of``, ``key``, ``reasons``, ``trigger``).
    :param window: the label window (``core.labels.LabelWindow.to_dict()``).
    :param training_set: the FeastTrainingDatasetOperator result of the training set
        (``feature_service``, ``feature_views``).
    :param evaluation_set: the FeastTrainingDatasetOperator result of the evaluation set the
        candidate is evaluated on (its ``uri``).
    :param labels_uri: base of the label partitions the window read.
    :param features_uri: base of the published feature partitions.
    :param window_days: the window length the pipeline asked for.
    :returns: ``evaluation_data``, ``entity_data``, ``label_window``, ``feature_service``,
        ``feature_views``, ``source_partitions``, ``trigger`` (JSON-able; datasets with the
        digests of their current content).
    """
    train_days = [str(d) for d in window.get("train_days") or []]
    eval_days = [str(d) for d in window.get("eval_days") or []]
    days = sorted(train_days + eval_days)
    label_window = {
        "as_of": moment.get("as_of"),
        "window_days": window_days,
        "start": days[0] if days else None,
        "end": days[-1] if days else None,
        "train_days": train_days,
        "eval_days": eval_days,
        "train_rows": window.get("train_rows"),
        "eval_rows": window.get("eval_rows"),
        "labels_uri": labels_uri,
        "features_uri": features_uri,
    }
    entity_data = {
        role: _as_dict(dataset_ref(str(window[key]), conn_id=conn_id))
        for role, key in (("training", "train_uri"), ("evaluation", "eval_uri"))
        if window.get(key)
    }
    trigger = dict(moment.get("trigger") or {})
    if not trigger:
        reasons = list(moment.get("reasons") or [])
        trigger = training_trigger(events=[{"reasons": reasons}] if reasons else [])
    training_set = training_set or {}
    evaluation_uri = (evaluation_set or {}).get("uri")
    return {
        "evaluation_data": (
            _as_dict(dataset_ref(str(evaluation_uri), conn_id=conn_id)) if evaluation_uri else None
        ),
        "entity_data": entity_data,
        "label_window": label_window,
        "feature_service": training_set.get("feature_service"),
        "feature_views": list(training_set.get("feature_views") or []),
        "source_partitions": source_partitions(
            features_uri, {"training": train_days, "evaluation": eval_days}, conn_id=conn_id
        ),
        "trigger": trigger,
    }
