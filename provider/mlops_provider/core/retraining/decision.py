"""The decision: evaluate every policy, combine the reasons, then apply cooldown and
de-duplication (pure; the time is injectable)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mlops_provider.core.results import make_result
from mlops_provider.core.retraining.evaluations import (
    PolicyEvaluation,
    evaluate_age,
    evaluate_data_volume,
    evaluate_drift,
    evaluate_performance,
)
from mlops_provider.core.retraining.policy import RetrainPolicy, days_text, format_duration
from mlops_provider.core.retraining.state import ChampionInfo, RequestState, is_request_open
from mlops_provider.core.times import iso, to_utc, utcnow

__all__ = ["RetrainDecision", "decide"]


@dataclass
class RetrainDecision:
    """The decision and everything that led to it."""

    retrain: bool
    triggered: bool
    reasons: list[str]
    suppressed_by: str | None
    suppression: str | None
    evaluations: list[PolicyEvaluation]
    decided_at: datetime
    request_open: bool
    policy: RetrainPolicy
    champion: ChampionInfo | None = None
    state: RequestState | None = None
    request_id: str | None = None
    retry_of_request: bool = False

    @property
    def triggered_policies(self) -> list[str]:
        return [e.policy for e in self.evaluations if e.triggered]

    @property
    def gain(self) -> list[str]:
        """What retraining bought so far, in sentences: the monitored champion's gain over the
        earlier champions on the same matured rows (from the performance results)."""
        return [g for e in self.evaluations for g in e.details.get("gain", [])]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable form (the keys the decision operator always returned)."""
        return {
            "retrain": self.retrain,
            "triggered": self.triggered,
            "reasons": list(self.reasons),
            "suppressed_by": self.suppressed_by,
            "suppression": self.suppression,
            "evaluations": {e.policy: e.to_dict() for e in self.evaluations},
            "decided_at": iso(self.decided_at),
            "request_open": self.request_open,
            "retry_of_request": self.retry_of_request,
            "retraining_gain": self.gain,
            "request_id": self.request_id,
            "champion": self.champion.to_dict() if self.champion else None,
            "last_request": self.state.to_dict() if self.state else None,
            "policy": self.policy.to_dict(),
        }

    def to_result(self, **details: Any) -> dict[str, Any]:
        """The common result (docs/results.md): ``retrain`` / ``no_retrain``, ``passed`` = no
        retraining needed, ``model`` = the alias holder; then :meth:`to_dict` and ``details``.
        ``reasons`` are the policies' reasons (also when a cooldown suppressed them)."""
        own = {k: v for k, v in self.to_dict().items() if k != "reasons"}
        return make_result(
            status="retrain" if self.retrain else "no_retrain",
            passed=not self.retrain,
            reasons=self.reasons,
            model=self.champion.model if self.champion else None,
            **own,
            **details,
        )


def _suppression(
    policy: RetrainPolicy,
    state: RequestState | None,
    champion: ChampionInfo | None,
    now: datetime,
    request_open: bool,
) -> tuple[str | None, str | None]:
    """``(suppressed_by, why)`` of a triggered decision: ``cooldown``, ``open_request`` or none."""
    if state is None or state.last_request_at is None:
        return None, None
    since_last = now - state.last_request_at
    if policy.cooldown is not None and since_last < policy.cooldown:
        return "cooldown", (
            f"the last request was {days_text(since_last)} ago "
            f"({iso(state.last_request_at)}), within the cooldown of "
            f"{format_duration(policy.cooldown)}"
        )
    if policy.deduplicate and request_open:
        return "open_request", (
            f"the request of {iso(state.last_request_at)} is still open: no new champion "
            f"has been promoted since (champion v{champion.version if champion else '-'})"
        )
    return None, None


def decide(
    policy: RetrainPolicy | Mapping[str, Any] | None = None,
    *,
    drift: Any = None,
    performance: Any = None,
    new_labels: int | None = None,
    champion: ChampionInfo | None = None,
    state: RequestState | None = None,
    now: datetime | None = None,
    clock: Callable[[], datetime] = utcnow,
    request_id: str | None = None,
) -> RetrainDecision:
    """Evaluate every policy, combine the reasons, then apply cooldown and de-duplication.

    :param policy: a :class:`RetrainPolicy` or a policy dict.
    :param drift: DriftDetectionOperator result(s).
    :param performance: ModelPerformanceOperator result(s).
    :param new_labels: labelled rows since the champion's training data (``None``: not counted).
    :param champion: the current alias holder (``None``: no champion yet).
    :param state: the last request (from the registered model's tags).
    :param now: the decision time (default ``clock()``; naive = UTC).
    :param clock: the time source when ``now`` is not given.
    :param request_id: identity of this decision's run; a recorded request with the same id is
        a retry of this very request and is not suppressed by itself.
    :raises RetrainPolicyError: invalid policy or inputs.
    """
    if not isinstance(policy, RetrainPolicy):
        policy = RetrainPolicy.from_dict(policy)
    now = to_utc(now or clock(), what="now")
    evaluations = [
        evaluate_drift(policy, drift),
        evaluate_performance(policy, performance),
        evaluate_data_volume(policy, new_labels, champion),
        evaluate_age(policy, champion, now),
    ]
    reasons = [r for e in evaluations for r in e.reasons]
    request_open = is_request_open(state, champion, now=now, expiry=policy.request_expiry)
    retry = bool(
        request_id and state is not None and state.request_id == request_id and request_open
    )
    suppressed_by, suppression = (
        _suppression(policy, state, champion, now, request_open)
        if reasons and not retry
        else (None, None)
    )
    return RetrainDecision(
        retrain=bool(reasons) and suppressed_by is None,
        triggered=bool(reasons),
        reasons=reasons,
        suppressed_by=suppressed_by,
        suppression=suppression,
        evaluations=evaluations,
        decided_at=now,
        request_open=request_open,
        policy=policy,
        champion=champion,
        state=state,
        request_id=request_id,
        retry_of_request=retry,
    )
