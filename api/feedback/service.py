"""Evaluations and complaints: one transaction per use case; a reply reaches the resident's inbox in the
same transaction that records it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from api.applications import states
from api.applications.schemas import Ref
from api.feedback import queries
from api.feedback.schemas import (
    PAD_LEVELS,
    ComplaintIn,
    ComplaintList,
    ComplaintOut,
    ComplaintReplyIn,
    EvaluationIn,
    EvaluationOut,
)
from api.kit.auth import Principal
from api.kit.config import Settings
from api.kit.errors import Conflict, NotFoundError, invalid
from api.kit.http import decode_id_cursor, page
from api.kit.scopes import WorkScope
from api.kit.workdays import WorkCalendar, local_date
from models import catalog as catalog_db
from models.applications import Complaint, Evaluation, Notification

EVALUATION_CHANNELS = ("app", "wechat", "pad", "sms")
KIND_NAMES = {"consultation": "咨询", "complaint": "投诉", "suggestion": "建议"}


def now() -> datetime:
    return datetime.now(UTC)


# ---- 好差评 --------------------------------------------------------------------------------------------


def _level_and_channel(body: EvaluationIn, principal: Principal) -> tuple[int, str]:
    if body.level is None and body.pad_key is None:
        raise invalid("level", "须填写评价等级 level(1–5)或评价器按键 pad_key")
    if body.level is not None and body.pad_key is not None:
        raise invalid("pad_key", "level 与 pad_key 只能填写一个")
    if body.pad_key is not None:
        if body.channel not in (None, "pad"):
            raise invalid("channel", "评价器按键 pad_key 只用于大厅评价器(channel=pad)")
        return PAD_LEVELS[body.pad_key], "pad"
    assert body.level is not None
    if body.channel is not None:
        return body.level, body.channel
    # the channel the resident signed in through, when it is one an evaluation can come from
    return body.level, principal.channel if principal.channel in EVALUATION_CHANNELS else "app"


def _already_evaluated() -> Conflict:
    return Conflict("该办件已评价过，每个办件只能评价一次", code="already_evaluated")


async def evaluate(principal: Principal, application_id: int, body: EvaluationIn) -> EvaluationOut:
    level, channel = _level_and_channel(body, principal)
    app = await queries.application_of(application_id, principal.account_id)
    if app is None:
        raise NotFoundError("没有这个办件", code="application_not_found")
    if app.status not in states.DECIDED:
        raise Conflict("办件作出决定(办结)后才能评价", code="not_decided")
    if await queries.evaluated(app.id):
        raise _already_evaluated()
    try:
        async with in_transaction():
            row = await Evaluation.create(
                application_id=app.id,
                level=level,
                comment=body.comment or "",
                channel=channel,
                point_id=app.point_id,
                # the window clerk or grid worker who received the resident is the one rated
                staff_id=app.accepted_by_id,
                item_id=app.item_id,
                department_id=app.department_id,
            )
    except IntegrityError:
        # a concurrent evaluation of the same case won the one-to-one constraint
        raise _already_evaluated() from None
    return EvaluationOut(
        id=row.id,
        application_id=app.id,
        level=row.level,
        comment=row.comment,
        channel=row.channel,  # type: ignore[arg-type]
        created_at=row.created_at,
    )


# ---- 咨询投诉建议 ---------------------------------------------------------------------------------------


def _ref(obj: Any) -> Ref | None:
    return None if obj is None else Ref(code=obj.code, name=obj.name)


def view(row: Complaint, moment: datetime | None = None) -> ComplaintOut:
    moment = moment or now()
    return ComplaintOut(
        id=row.id,
        kind=row.kind,  # type: ignore[arg-type]
        content=row.content,
        status=row.status,  # type: ignore[arg-type]
        application_id=row.application_id,
        point=_ref(row.point),
        department=_ref(row.department),
        due_at=row.due_at,
        overdue=row.status == "open" and row.due_at < moment,
        reply=row.reply,
        replied_at=row.replied_at,
        created_at=row.created_at,
    )


def complaint_scope(scope: WorkScope) -> Q:
    """Admin: all. Staff: their department's, and those about no department (any clerk may take them)."""
    if scope.everything:
        return Q()
    condition = Q(department_id__isnull=True)
    if scope.department_ids:
        condition |= Q(department_id__in=sorted(scope.department_ids))
    return condition


async def file_complaint(
    settings: Settings, calendar: WorkCalendar, principal: Principal, body: ComplaintIn
) -> ComplaintOut:
    app = None
    if body.application_id is not None:
        app = await queries.application_of(body.application_id, principal.account_id)
        if app is None:
            raise invalid("application_id", "没有这个办件", "unknown_application")
    point_id = app.point_id if app is not None else None
    if body.point_code is not None:
        point = await catalog_db.point_by_code(body.point_code)
        if point is None:
            raise invalid("point_code", "没有这个服务网点", "unknown_point")
        point_id = point.id
    moment = now()
    today = local_date(moment)
    due_at = calendar.end_of(calendar.add_workdays(today, settings.applications.complaint_answer_days))
    async with in_transaction():
        row = await Complaint.create(
            account_id=principal.account_id,
            kind=body.kind,
            content=body.content,
            application_id=app.id if app is not None else None,
            point_id=point_id,
            department_id=app.department_id if app is not None else None,
            status="open",
            due_at=due_at,
        )
    return view(await queries.complaint(row.id), moment)


async def my_complaints(
    principal: Principal, status: str | None, cursor: str | None, limit: int
) -> ComplaintList:
    before = decode_id_cursor(cursor, "before")
    rows, next_cursor = page(
        await queries.complaints_of(principal.account_id, status, before, limit + 1),
        limit,
        lambda last: {"before": last.id},
    )
    moment = now()
    return ComplaintList(items=[view(r, moment) for r in rows], next_cursor=next_cursor)


async def work_complaints(
    scope: WorkScope, status: str | None, cursor: str | None, limit: int
) -> ComplaintList:
    after = decode_id_cursor(cursor, "after")
    rows, next_cursor = page(
        await queries.complaints_in_scope(complaint_scope(scope), status, after, limit + 1),
        limit,
        lambda last: {"after": last.id},
    )
    moment = now()
    return ComplaintList(items=[view(r, moment) for r in rows], next_cursor=next_cursor)


async def reply(
    principal: Principal, scope: WorkScope, complaint_id: int, body: ComplaintReplyIn
) -> ComplaintOut:
    row = await queries.complaint_in_scope(complaint_id, complaint_scope(scope))
    if row is None:
        raise NotFoundError("没有这条咨询投诉", code="complaint_not_found")
    if row.status != "open":
        raise _answered()
    moment = now()
    kind = KIND_NAMES.get(row.kind, "咨询投诉")
    async with in_transaction():
        # only the first of two clerks answering at once gets past this line
        updated = await Complaint.filter(id=row.id, status="open").update(
            status="answered", reply=body.reply, replied_by_id=principal.account_id, replied_at=moment
        )
        if updated != 1:
            raise _answered()
        await Notification.create(
            account_id=row.account_id,
            kind="complaint_reply",
            title=f"您的{kind}已答复",
            body=body.reply,
            application_id=row.application_id,
        )
    return view(await queries.complaint(row.id), moment)


def _answered() -> Conflict:
    return Conflict("该咨询投诉已答复", code="already_answered")
