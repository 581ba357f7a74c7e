"""Human approval of a candidate model before promotion (Airflow's Human-in-the-loop)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import HITLBranchOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

__all__ = ["PromotionApprovalOperator"]


class PromotionApprovalOperator(HITLBranchOperator):
    """Ask a person to approve or reject a candidate, and branch on the answer.

    The task offers two options, ``Approve`` and ``Reject``, in Airflow's Required Actions
    view (the approver may add a comment). ``Approve`` follows ``promote_task_id``; ``Reject``
    follows ``reject_task_id``, so the rejection is recorded and whatever follows it (closing
    the retrain request, for example) still runs. When nobody answers within
    ``response_timeout``, the answer is ``Reject``: an unattended candidate is never promoted
    and the run does not stay open forever.

    On Airflow 3.3 and later the task waits in the ``awaiting_input`` state (no triggerer
    needed; the scheduler applies the timeout); on 3.1 and 3.2 it defers to the triggerer.

    :param subject: the title the approver sees (templated).
    :param body: what the approver reads: the evaluation's verdict, reasons, report (templated).
    :param promote_task_id: the task that promotes the candidate.
    :param reject_task_id: the task that records the rejection.
    :param response_timeout: how long to wait for an answer (default 3 days).

    XCom: ``{"status": "approved"|"rejected", "passed", "reasons", "responded_by",
    "timed_out", "comment", "branch"}`` (common result keys, docs/results.md).

    :raises ValueError: ``promote_task_id`` equals ``reject_task_id``.
    """

    APPROVE = "Approve"
    REJECT = "Reject"

    def __init__(
        self,
        *,
        promote_task_id: str = "promote",
        reject_task_id: str = "record_rejection",
        response_timeout: timedelta | None = timedelta(days=3),
        **kwargs: Any,
    ) -> None:
        if promote_task_id == reject_task_id:
            raise ValueError(
                f"promote_task_id and reject_task_id must differ, both are {promote_task_id!r}"
            )
        from airflow.sdk import Param

        kwargs.setdefault(
            "params",
            {"comment": Param("", type="string", description="why (optional)", source="task")},
        )
        super().__init__(
            options=[self.APPROVE, self.REJECT],
            options_mapping={self.APPROVE: promote_task_id, self.REJECT: reject_task_id},
            defaults=[self.REJECT],
            multiple=False,
            response_timeout=response_timeout,
            **kwargs,
        )
        self.promote_task_id = promote_task_id
        self.reject_task_id = reject_task_id

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        from airflow.providers.standard.operators.hitl import HITLOperator

        from mlops_provider.core.results import make_result

        answer = HITLOperator.execute_complete(self, context=context, event=event)  # validates
        chosen = list(answer["chosen_options"])
        approved = chosen == [self.APPROVE]
        timed_out = bool(event.get("timedout"))
        responded_by = _user_name(event.get("responded_by_user"))
        comment = str((answer.get("params_input") or {}).get("comment") or "")
        if approved:
            reasons = [f"approved by {responded_by or 'an approver'}"]
        elif timed_out:
            reasons = ["no answer before the approval's response timeout: rejected by default"]
        else:
            reasons = [f"rejected by {responded_by or 'an approver'} in the approval step"]
        if comment:
            reasons.append(f"comment: {comment}")
        branch = [self.options_mapping.get(option, option) for option in chosen]
        result = make_result(
            status="approved" if approved else "rejected",
            passed=approved,
            reasons=reasons,
            responded_by=responded_by,
            timed_out=timed_out,
            comment=comment,
            branch=branch,
        )
        self.log.info("Approval: %s (%s)", result["status"], "; ".join(reasons))
        # Skipping the other branch ends the task with an exception that bypasses the return
        # value, so the result is pushed first.
        context["ti"].xcom_push(key="return_value", value=result)
        self.hitl_summary_extra["branches_to_execute"] = branch
        self.do_branch(context=context, branches_to_execute=branch)
        return result


def _user_name(user: Any) -> str | None:
    """The name (else id) of a HITL responder given as a mapping or an object."""
    if not user:
        return None
    get = user.get if isinstance(user, dict) else (lambda key: getattr(user, key, None))
    return str(get("name") or get("id") or "") or None
