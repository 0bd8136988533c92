"""好差评 (one evaluation per decided case) and 咨询投诉建议 (consultations, complaints, suggestions), and
every query on them, each scoped to the caller: the applicant's own, or what a clerk's scope covers."""

from __future__ import annotations

from datetime import datetime

from tortoise import fields
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.models import Model
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from api.kit.scopes import WorkScope
from models.applications import Application


class Evaluation(Model):
    """好差评: one per application, on the national 5-level scale."""

    id = fields.IntField(primary_key=True)
    application: fields.OneToOneRelation[Application] = fields.OneToOneField(
        "models.Application", related_name="evaluation", on_delete=fields.CASCADE
    )
    level = fields.SmallIntField()
    comment = fields.TextField(default="")
    channel = fields.CharField(max_length=16)  # app | wechat | pad | sms
    # who and what is rated, copied from the case so statistics group without joins
    point: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.ServicePoint", related_name="evaluations", null=True, on_delete=fields.RESTRICT
    )
    staff: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.Account", related_name="evaluations", null=True, on_delete=fields.SET_NULL
    )
    item: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.ServiceItem", related_name="evaluations", on_delete=fields.RESTRICT
    )
    department: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Department", related_name="evaluations", on_delete=fields.RESTRICT
    )
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    # the foreign-key columns tortoise adds, declared for the type checker
    application_id: int
    point_id: int | None
    staff_id: int | None
    item_id: int
    department_id: int

    class Meta:
        table = "evaluation"


class Complaint(Model):
    """咨询投诉建议: a resident asks, complains or suggests, and staff answer within a deadline."""

    id = fields.IntField(primary_key=True)
    account: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Account", related_name="complaints", on_delete=fields.CASCADE
    )
    kind = fields.CharField(max_length=16)  # consultation | complaint | suggestion
    content = fields.TextField()
    application: fields.ForeignKeyNullableRelation[Application] = fields.ForeignKeyField(
        "models.Application", related_name="complaints", null=True, on_delete=fields.SET_NULL
    )
    point: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.ServicePoint", related_name="complaints", null=True, on_delete=fields.SET_NULL
    )
    department: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.Department", related_name="complaints", null=True, on_delete=fields.SET_NULL
    )
    status = fields.CharField(max_length=16, default="open")  # open | answered
    due_at = fields.DatetimeField()
    reply = fields.TextField(null=True)
    replied_by: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.Account", related_name="complaint_replies", null=True, on_delete=fields.SET_NULL
    )
    replied_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    # the foreign-key columns tortoise adds, declared for the type checker
    account_id: int
    application_id: int | None
    point_id: int | None
    department_id: int | None
    replied_by_id: int | None

    class Meta:
        table = "complaint"


# ---- evaluations ---------------------------------------------------------------------------------------


async def is_evaluated(application_id: int) -> bool:
    return await Evaluation.filter(application_id=application_id).exists()


async def record_evaluation(app: Application, level: int, comment: str, channel: str) -> Evaluation | None:
    """The evaluation of a case, with who and what is rated copied from it: its point, item and department,
    and the window clerk or grid worker who received the resident (the one rated). None when the case has
    one already: of two at once, the one-to-one constraint lets only the first in."""
    case = {
        "point_id": app.point_id,
        "accepted_by_id": app.accepted_by_id,
        "item_id": app.item_id,
        "department_id": app.department_id,
    }
    try:
        # a transaction of its own (a savepoint inside another), so a refused insert leaves nothing behind
        async with in_transaction():
            return await Evaluation.create(
                application_id=app.id,
                level=level,
                comment=comment,
                channel=channel,
                point_id=case["point_id"],
                staff_id=case["accepted_by_id"],
                item_id=case["item_id"],
                department_id=case["department_id"],
            )
    except IntegrityError:
        return None


# ---- complaints ----------------------------------------------------------------------------------------


def _complaint_filter(scope: WorkScope) -> Q:
    """Admin: all. Staff: their department's only. One about no department is the admins' until the
    casework routing assigns it (SECURITY row 1: another department's clerk must not answer and close it)."""
    if scope.everything:
        return Q()
    if not scope.department_ids:
        return Q(id__isnull=True)  # matches nothing: a primary key is never null
    return Q(department_id__in=sorted(scope.department_ids))


def _with_refs(qs: QuerySet[Complaint]) -> QuerySet[Complaint]:
    return qs.select_related("point", "department")


async def file_complaint(
    account_id: int,
    kind: str,
    content: str,
    *,
    app: Application | None,
    point_id: int | None,
    due_at: datetime,
) -> Complaint:
    """An open complaint. About a case, it goes to the case's department, and to the case's point unless
    `point_id` names one."""
    case = (
        {"point_id": app.point_id, "department_id": app.department_id}
        if app is not None
        else {"point_id": None, "department_id": None}
    )
    return await Complaint.create(
        account_id=account_id,
        kind=kind,
        content=content,
        application_id=app.id if app is not None else None,
        point_id=point_id if point_id is not None else case["point_id"],
        department_id=case["department_id"],
        status="open",
        due_at=due_at,
    )


async def complaint(complaint_id: int) -> Complaint:
    return await _with_refs(Complaint.filter(id=complaint_id)).get()


async def complaint_or_none(complaint_id: int) -> Complaint | None:
    return await _with_refs(Complaint.filter(id=complaint_id)).first()


async def complaint_in_scope(complaint_id: int, scope: WorkScope) -> Complaint | None:
    return await _with_refs(Complaint.filter(_complaint_filter(scope), id=complaint_id)).first()


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
    scope: WorkScope, status: str | None, after_id: int | None, limit: int
) -> list[Complaint]:
    """A clerk's list, oldest first: the answer deadline is a fixed number of working days after filing,
    so the oldest is also the soonest due."""
    qs = Complaint.filter(_complaint_filter(scope))
    if status:
        qs = qs.filter(status=status)
    if after_id is not None:
        qs = qs.filter(id__gt=after_id)
    return await _with_refs(qs).order_by("id").limit(limit)


async def answer(complaint_id: int, reply: str, replied_by: int, moment: datetime) -> bool:
    """Record the answer of an open complaint; False when it was no longer open (only the first of two clerks
    answering at once gets True)."""
    updated = await Complaint.filter(id=complaint_id, status="open").update(
        status="answered", reply=reply, replied_by_id=replied_by, replied_at=moment
    )
    return updated == 1
