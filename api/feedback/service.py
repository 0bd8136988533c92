"""Evaluations and complaints. A case is read through the applications area's service; a reply reaches the
resident's inbox in the same transaction that records it."""

from __future__ import annotations

from datetime import datetime
from typing import get_args

from api.applications import service as applications
from api.feedback.errors import (
    AlreadyAnswered,
    AlreadyEvaluated,
    ComplaintNotFound,
    NotDecided,
    UnknownApplication,
    UnknownPoint,
)
from api.feedback.schemas import (
    PAD_LEVELS,
    ComplaintIn,
    ComplaintList,
    ComplaintOut,
    ComplaintReplyIn,
    EvaluationChannel,
    EvaluationIn,
    EvaluationOut,
    Ref,
)
from api.kit import clock
from api.kit.auth import Principal
from api.kit.config import Settings
from api.kit.db import in_transaction
from api.kit.errors import NotFoundError, invalid
from api.kit.http import decode_id_cursor, page
from api.kit.scopes import WorkScope
from api.kit.workdays import WorkCalendar, local_date
from models import catalog as catalog_db
from models import feedback as db
from models import notifications as notifications_db

EVALUATION_CHANNELS = get_args(EvaluationChannel)
KIND_NAMES = {"consultation": "咨询", "complaint": "投诉", "suggestion": "建议"}


# ---- 好差评 --------------------------------------------------------------------------------------------


def _level_and_channel(body: EvaluationIn, principal: Principal) -> tuple[int, str]:
    """The level from `level` or the pad's key; the channel from the sign-in, never from the client (a
    resident's app cannot pass its rating off as the hall pad's: `pad` is recorded only for a sign-in whose
    channel is the pad's, which no grant issues yet)."""
    if body.level is None and body.pad_key is None:
        raise invalid("level", "须填写评价等级 level(1–5)或评价器按键 pad_key")
    if body.level is not None and body.pad_key is not None:
        raise invalid("pad_key", "level 与 pad_key 只能填写一个")
    level = PAD_LEVELS[body.pad_key] if body.pad_key is not None else body.level
    assert level is not None
    # the channel the resident signed in through, when it is one an evaluation can come from
    return level, principal.channel if principal.channel in EVALUATION_CHANNELS else "app"


async def evaluate(principal: Principal, application_id: int, body: EvaluationIn) -> EvaluationOut:
    level, channel = _level_and_channel(body, principal)
    app = await applications.own(principal, application_id)  # someone else's case: 404 application_not_found
    if not applications.is_decided(app):
        raise NotDecided()
    if await db.is_evaluated(app.id):
        raise AlreadyEvaluated()
    row = await db.record_evaluation(app, level, body.comment or "", channel)
    if row is None:  # a concurrent evaluation of the same case came first
        raise AlreadyEvaluated()
    return EvaluationOut(
        id=row.id,
        application_id=app.id,
        level=row.level,
        comment=row.comment,
        channel=row.channel,
        created_at=row.created_at,
    )


# ---- 咨询投诉建议 ---------------------------------------------------------------------------------------


def _ref(obj: catalog_db.ServicePoint | catalog_db.Department | None) -> Ref | None:
    return None if obj is None else Ref(code=obj.code, name=obj.name)


def view(row: db.Complaint, moment: datetime | None = None) -> ComplaintOut:
    moment = moment or clock.now()
    return ComplaintOut(
        id=row.id,
        kind=row.kind,
        content=row.content,
        status=row.status,
        application_id=row.application_id,
        point=_ref(row.point),
        department=_ref(row.department),
        due_at=row.due_at,
        overdue=row.status == "open" and row.due_at < moment,
        reply=row.reply,
        replied_at=row.replied_at,
        created_at=row.created_at,
    )


async def file_complaint(
    settings: Settings, calendar: WorkCalendar, principal: Principal, body: ComplaintIn
) -> ComplaintOut:
    app = None
    if body.application_id is not None:
        try:
            app = await applications.own(principal, body.application_id)
        except NotFoundError:
            raise UnknownApplication() from None
    point_id = None
    if body.point_code is not None:
        point = await catalog_db.point_by_code(body.point_code)
        if point is None:
            raise UnknownPoint()
        point_id = point.id
    moment = clock.now()
    days = settings.applications.complaint_answer_days
    due_at = calendar.end_of(calendar.add_workdays(local_date(moment), days))
    async with in_transaction():
        row = await db.file_complaint(
            principal.account_id, body.kind, body.content, app=app, point_id=point_id, due_at=due_at
        )
        # the workers tell its clerks (the request fans out to no one)
        await notifications_db.enqueue("complaint_routed", row.id, moment)
    return view(await db.complaint(row.id), moment)


async def my_complaints(
    principal: Principal, status: str | None, cursor: str | None, limit: int
) -> ComplaintList:
    before = decode_id_cursor(cursor, "before")
    rows, next_cursor = page(
        await db.complaints_of(principal.account_id, status, before, limit + 1),
        limit,
        lambda last: {"before": last.id},
    )
    moment = clock.now()
    return ComplaintList(items=[view(r, moment) for r in rows], next_cursor=next_cursor)


async def work_complaints(
    scope: WorkScope, status: str | None, cursor: str | None, limit: int
) -> ComplaintList:
    after = decode_id_cursor(cursor, "after")
    rows, next_cursor = page(
        await db.complaints_in_scope(scope, status, after, limit + 1),
        limit,
        lambda last: {"after": last.id},
    )
    moment = clock.now()
    return ComplaintList(items=[view(r, moment) for r in rows], next_cursor=next_cursor)


async def reply(
    principal: Principal, scope: WorkScope, complaint_id: int, body: ComplaintReplyIn
) -> ComplaintOut:
    row = await db.complaint_in_scope(complaint_id, scope)
    if row is None:
        raise ComplaintNotFound()
    if row.status != "open":
        raise AlreadyAnswered()
    moment = clock.now()
    kind = KIND_NAMES.get(row.kind, "咨询投诉")
    async with in_transaction():
        # only the first of two clerks answering at once gets past this line
        if not await db.answer(row.id, body.reply, principal.account_id, moment):
            raise AlreadyAnswered()
        await notifications_db.notify(
            row.account_id,
            "complaint_reply",
            f"您的{kind}已答复",
            body.reply,
            application_id=row.application_id,
        )
    return view(await db.complaint(row.id), moment)
