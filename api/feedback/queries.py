"""Reads of evaluations and complaints, each scoped to the caller: the applicant's own, or the clerk's scope."""

from __future__ import annotations

from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from models.applications import Application, Complaint, Evaluation


async def application_of(application_id: int, applicant_id: int) -> Application | None:
    return await Application.get_or_none(id=application_id, applicant_id=applicant_id)


async def evaluated(application_id: int) -> bool:
    return await Evaluation.filter(application_id=application_id).exists()


def _with_refs(qs: QuerySet[Complaint]) -> QuerySet[Complaint]:
    return qs.select_related("point", "department")


async def complaint(complaint_id: int) -> Complaint:
    return await _with_refs(Complaint.filter(id=complaint_id)).get()


async def complaint_in_scope(complaint_id: int, scope: Q) -> Complaint | None:
    return await _with_refs(Complaint.filter(scope, id=complaint_id)).first()


async def complaints_of(
    account_id: int, status: str | None, before_id: int | None, limit: int
) -> list[Complaint]:
    """A resident's own, newest first."""
    qs = Complaint.filter(account_id=account_id)
    if status:
        qs = qs.filter(status=status)
    if before_id is not None:
        qs = qs.filter(id__lt=before_id)
    return await _with_refs(qs).order_by("-id").limit(limit)


async def complaints_in_scope(
    scope: Q, status: str | None, after_id: int | None, limit: int
) -> list[Complaint]:
    """A clerk's list, oldest first: the answer deadline is a fixed number of working days after filing,
    so the oldest is also the soonest due."""
    qs = Complaint.filter(scope)
    if status:
        qs = qs.filter(status=status)
    if after_id is not None:
        qs = qs.filter(id__gt=after_id)
    return await _with_refs(qs).order_by("id").limit(limit)
