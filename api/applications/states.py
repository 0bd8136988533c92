"""The one state machine of a case (办件). Every transition is an action with the roles that may take it;
anything not listed here is refused with 409 invalid_transition."""

from __future__ import annotations

from dataclasses import dataclass

from api.kit.auth import CLERKS, WORK_ROLES, Role

# the statuses in which the deadline clock runs, is paused, or has stopped for good
CLOCK_RUNNING = frozenset({"accepted", "in_review"})
DECIDED = frozenset({"approved", "rejected", "ready", "delivered", "closed"})
# a resident may withdraw until a decision is made
WITHDRAWABLE = frozenset({"submitted", "returned", "accepted", "in_review", "suspended"})
# the statuses a case can only have before (or instead of) being accepted
NEVER_ACCEPTED = frozenset({"submitted", "returned", "refused"})

INTAKE = WORK_ROLES  # grid workers take cases in at their points, staff and admins at the counter
BACK_OFFICE = CLERKS
APPLICANT = (Role.RESIDENT,)


@dataclass(frozen=True)
class Transition:
    action: str
    sources: frozenset[str]
    target: str
    roles: tuple[Role, ...]
    title: str  # what the resident reads in his inbox


TRANSITIONS: dict[str, Transition] = {
    t.action: t
    for t in (
        Transition("accept", frozenset({"submitted"}), "accepted", INTAKE, "您的申请已受理"),
        Transition("return", frozenset({"submitted"}), "returned", INTAKE, "您的申请需要补正材料"),
        Transition("refuse", frozenset({"submitted"}), "refused", INTAKE, "您的申请不予受理"),
        Transition("resubmit", frozenset({"returned"}), "submitted", APPLICANT, "补正材料已提交"),
        Transition("withdraw", WITHDRAWABLE, "withdrawn", APPLICANT, "您的申请已撤回"),
        Transition("start_review", frozenset({"accepted"}), "in_review", BACK_OFFICE, "您的申请正在审查"),
        Transition(
            "suspend",
            frozenset({"accepted", "in_review"}),
            "suspended",
            BACK_OFFICE,
            "您的申请进入特别程序，办理时限暂停计算",
        ),
        Transition("resume", frozenset({"suspended"}), "in_review", BACK_OFFICE, "特别程序结束，恢复办理"),
        Transition(
            "approve", frozenset({"accepted", "in_review"}), "approved", BACK_OFFICE, "您的申请已办结：准予"
        ),
        Transition(
            "reject",
            frozenset({"accepted", "in_review"}),
            "rejected",
            BACK_OFFICE,
            "您的申请已办结：不予批准",
        ),
        Transition(
            "mark_ready", frozenset({"approved"}), "ready", BACK_OFFICE, "办理结果已制作完成，等待送达"
        ),
        Transition("deliver", frozenset({"ready"}), "delivered", INTAKE, "办理结果已送达"),
        Transition("close", frozenset({"delivered", "rejected"}), "closed", BACK_OFFICE, "办件已归档"),
    )
}

# what clerks may ask through POST /work/applications/{id}/actions (the applicant's own actions have routes)
WORK_ACTIONS = tuple(a for a, t in TRANSITIONS.items() if t.roles != APPLICANT)


def transition_for(action: str, status: str) -> Transition | None:
    """The transition, or None when the state machine does not allow `action` from `status`."""
    transition = TRANSITIONS.get(action)
    if transition is None or status not in transition.sources:
        return None
    return transition
