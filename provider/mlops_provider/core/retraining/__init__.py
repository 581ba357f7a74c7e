"""Retraining policy: should the champion be retrained, and why (or why not now)?

Four policies can be combined in one decision; each one that triggers adds a reason
(:mod:`.evaluations`): drift, performance, data volume and age. A triggered decision is then
*suppressed* when a request was made less than ``cooldown`` ago (``"cooldown"``) or while the
previous request is still open (``"open_request"``) (:mod:`.decision`).

The request state lives on the registered model as tags (``mlops.retrain.*``, :mod:`.state`).
"Open" is derived, never stored: a request is closed by a promotion after it (another champion
version, or the same version promoted again), by the training pipeline marking it handled
(:func:`mark_request_handled`), or by its age (``request_expiry``). None of these compares a
registry time with a decision time.

Times: the decision's ``now`` is injectable (the operator passes the end of the data interval,
so backfills and simulated days behave like live runs). :mod:`.policy`, :mod:`.evaluations`
and :mod:`.decision` are pure; :mod:`.state` and :mod:`.run` read and write MLflow.
"""

from __future__ import annotations

from mlops_provider.core.retraining.decision import RetrainDecision, decide
from mlops_provider.core.retraining.evaluations import (
    PolicyEvaluation,
    evaluate_age,
    evaluate_data_volume,
    evaluate_drift,
    evaluate_performance,
)
from mlops_provider.core.retraining.policy import (
    DEFAULT_POLICY,
    POLICY_SECTIONS,
    RetrainPolicy,
    RetrainPolicyError,
    format_duration,
    parse_duration,
)
from mlops_provider.core.retraining.run import (
    count_new_labels,
    record_retrain_request,
    request_extra,
    request_result,
    run_retrain_decision,
)
from mlops_provider.core.retraining.state import (
    PROMOTED_AT_TAG,
    TARGET_TAG,
    TRAINING_END_TAGS,
    ChampionInfo,
    RequestState,
    champion_from,
    is_request_open,
    mark_request_handled,
    read_champion,
    read_request_state,
    record_request,
    request_count,
    request_id_for,
)

__all__ = [
    "DEFAULT_POLICY",
    "POLICY_SECTIONS",
    "PROMOTED_AT_TAG",
    "TARGET_TAG",
    "TRAINING_END_TAGS",
    "ChampionInfo",
    "PolicyEvaluation",
    "RequestState",
    "RetrainDecision",
    "RetrainPolicy",
    "RetrainPolicyError",
    "champion_from",
    "count_new_labels",
    "decide",
    "evaluate_age",
    "evaluate_data_volume",
    "evaluate_drift",
    "evaluate_performance",
    "format_duration",
    "is_request_open",
    "mark_request_handled",
    "parse_duration",
    "read_champion",
    "read_request_state",
    "record_request",
    "record_retrain_request",
    "request_count",
    "request_extra",
    "request_id_for",
    "request_result",
    "run_retrain_decision",
]
