"""The errors of evaluations and complaints, one class per code a client can get.

(`application_not_found` for a case that is not the caller's comes from the applications area.)"""

from __future__ import annotations

from api.kit.errors import Conflict, InvalidInput, NotFoundError


class NotDecided(Conflict):
    code = "not_decided"
    title = "办件作出决定(办结)后才能评价"


class AlreadyEvaluated(Conflict):
    code = "already_evaluated"
    title = "该办件已评价过，每个办件只能评价一次"


class ComplaintNotFound(NotFoundError):
    code = "complaint_not_found"
    title = "没有这条咨询投诉"


class AlreadyAnswered(Conflict):
    code = "already_answered"
    title = "该咨询投诉已答复"


class UnknownApplication(InvalidInput):
    """A complaint about a case that is not one of the caller's (a 422 about the field, not a 404)."""

    code = "unknown_application"
    title = "没有这个办件"

    def __init__(self) -> None:
        super().__init__(errors=[{"field": "application_id", "message": self.title}])


class UnknownPoint(InvalidInput):
    code = "unknown_point"
    title = "没有这个服务网点"

    def __init__(self) -> None:
        super().__init__(errors=[{"field": "point_code", "message": self.title}])
