"""Cases from submission to delivery: one transaction per step, each step an event on the timeline and
a notification in the applicant's inbox, written together with the change itself."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from tortoise.transactions import in_transaction

from api.applications import states
from api.applications.deps import Cases
from api.applications.files import sniff
from api.applications.schemas import (
    ActionIn,
    ApplicationIn,
    ApplicationList,
    ApplicationOut,
    ApplicationSummary,
    DeliveryOut,
    EventOut,
    MaterialOut,
    MissingMaterial,
    Ref,
)
from api.kit.auth import Principal
from api.kit.errors import Conflict, Forbidden, NotFoundError, invalid
from api.kit.http import decode_cursor, decode_id_cursor, page
from api.kit.pii import mask_address
from api.kit.scopes import WorkScope
from api.kit.workdays import SHANGHAI
from models import applications as db
from models import catalog as catalog_db
from models import feedback as feedback_db
from models.audit import audit
from models.scopes import scope_filter


def now() -> datetime:
    """The current time in the city's zone, the zone the ORM is configured with and reads back in. SQLite keeps
    datetimes as ISO text with their offset and compares them as text, so every value we write or filter by
    carries the same offset (+08:00, as the auto_now columns do), or order and ranges come out wrong."""
    return datetime.now(SHANGHAI)


def _local(moment: datetime) -> datetime:
    """An instant in the city's zone; a datetime without an offset is read as Beijing time."""
    return moment.replace(tzinfo=SHANGHAI) if moment.tzinfo is None else moment.astimezone(SHANGHAI)


# ---- views ---------------------------------------------------------------------------------------------


def _ref(obj: Any) -> Ref | None:
    return None if obj is None else Ref(code=obj.code, name=obj.name)


async def view(cases: Cases, app: db.Application, *, full_address: bool = False) -> ApplicationOut:
    events = await db.events_of(app.id)
    materials = await db.materials_of(app.id)
    missing: list[MissingMaterial] = []
    for event in reversed(events):
        if event.action == "return":
            missing = [MissingMaterial(**m) for m in event.note.get("missing_materials", [])]
            break
    address = None
    if app.delivery_address_enc:
        plain = cases.cipher.decrypt(app.delivery_address_enc, f"application:{app.number}:address")
        address = plain if full_address else mask_address(plain)

    return ApplicationOut(
        id=app.id,
        number=app.number,
        status=app.status,
        item=_ref(app.item),
        point=_ref(app.point),
        department=_ref(app.department),
        channel=app.channel,
        delivery=DeliveryOut(mode=app.delivery_mode, address=address),
        form=app.form,
        created_at=app.created_at,
        accepted_at=app.accepted_at,
        due_at=app.due_at,
        deadline_status=app.deadline_status,
        decided_at=app.decided_at,
        decision=app.decision,
        missing_materials=missing,
        materials=[MaterialOut.model_validate(m, from_attributes=True) for m in materials],
        events=[EventOut.model_validate(e, from_attributes=True) for e in events],
        evaluated=await feedback_db.is_evaluated(app.id),
    )


def summary_of_row(row: dict[str, Any]) -> ApplicationSummary:
    point = None if row["point__code"] is None else Ref(code=row["point__code"], name=row["point__name"])
    return ApplicationSummary(
        id=row["id"],
        number=row["number"],
        status=row["status"],
        item=Ref(code=row["item__code"], name=row["item__name"]),
        point=point,
        created_at=row["created_at"],
        due_at=row["due_at"],
        deadline_status=row["deadline_status"],
    )


# ---- the applicant's side ------------------------------------------------------------------------------


async def submit(cases: Cases, principal: Principal, body: ApplicationIn) -> ApplicationOut:
    item = await catalog_db.item_with_guide(body.item_code)
    if item is None:
        raise invalid("item_code", "没有这个事项", "unknown_item")
    point = None
    if body.point_code is None:
        if "online" not in item.channels:
            raise invalid("point_code", "该事项不能网上办理，请选择服务网点", "not_handled_online")
    else:
        point = await catalog_db.point_by_code(body.point_code)
        if point is None:
            raise invalid("point_code", "没有这个服务网点", "unknown_point")
        allowed = "community" if point.level == "community" else "counter"
        if allowed not in item.channels:
            raise invalid("point_code", "该事项不能在这个网点办理", "not_handled_at_point")
    if body.delivery.mode not in item.delivery_modes:
        raise invalid("delivery.mode", "该事项不支持这种送达方式", "delivery_mode_not_offered")
    if body.delivery.mode == "grid_worker" and point is None:
        raise invalid("delivery.mode", "网格员送达须选择一个社区网点", "delivery_mode_not_offered")
    moment = now()
    day = moment.strftime("%Y%m%d")  # the day in the city, whatever the server's zone
    async with in_transaction():
        sequence = await db.next_sequence(day)
        number = f"{cases.settings.applications.number_prefix}{day}{sequence:06d}"
        app = await db.Application.create(
            number=number,
            created_at=moment,  # the same day as the number's, even a hair before midnight
            applicant_id=principal.account_id,
            item_id=item.id,
            department_id=item.department_id,
            point_id=point.id if point else None,
            channel=principal.channel or "app",
            status="submitted",
            form=body.form,
            delivery_mode=body.delivery.mode,
            delivery_address_enc=cases.cipher.encrypt(body.delivery.address, f"application:{number}:address")
            if body.delivery.address
            else None,
        )
        await _record(app, "submit", None, "submitted", principal, {}, "您的申请已提交，等待受理")
    return await view(cases, await _reload(app.id))


async def mine(principal: Principal, status: str | None, cursor: str | None, limit: int) -> ApplicationList:
    before = decode_id_cursor(cursor, "before")
    rows, next_cursor = page(
        await db.applications_of_applicant(principal.account_id, status, before, limit + 1),
        limit,
        lambda last: {"before": last["id"]},
    )
    return ApplicationList(items=[summary_of_row(r) for r in rows], next_cursor=next_cursor)


async def own(principal: Principal, application_id: int) -> db.Application:
    app = await db.application_of_applicant(application_id, principal.account_id)
    if app is None:
        raise NotFoundError("没有这个办件", code="application_not_found")
    return app


def is_decided(app: db.Application) -> bool:
    """Whether a decision was made on the case (what a resident may evaluate)."""
    return app.status in states.DECIDED


async def applicant_action(
    cases: Cases, principal: Principal, application_id: int, action: str, note: dict
) -> ApplicationOut:
    app = await own(principal, application_id)
    transition = states.transition_for(action, app.status)
    if transition is None:
        raise _invalid(action, app.status)
    changes: dict[str, Any] = {"status": transition.target}
    if action == "withdraw":
        changes["deadline_status"] = "normal"
    async with in_transaction():
        if not await db.move(app.id, app.version, **changes):
            raise _raced()
        await _record(app, action, app.status, transition.target, principal, note, transition.title)
    return await view(cases, await _reload(app.id))


# ---- the clerks' side ----------------------------------------------------------------------------------


async def in_scope(scope: WorkScope, application_id: int) -> db.Application:
    app = await db.application_in_scope(application_id, scope_filter(scope))
    if app is None:
        raise NotFoundError("没有这个办件", code="application_not_found")
    return app


async def queue(
    scope: WorkScope,
    *,
    point_code: str | None,
    status: str | None,
    due_before: datetime | None,
    overdue: bool | None,
    cursor: str | None,
    limit: int,
) -> ApplicationList:
    point_id = None
    if point_code:
        point = await catalog_db.point_by_code(point_code)
        if point is None:
            raise invalid("point_code", "没有这个服务网点", "unknown_filter_value")
        point_id = point.id
    position = decode_cursor(cursor, "after")
    after = None
    if position is not None:
        try:
            due_text, last_id = position
            after = (_local(datetime.fromisoformat(due_text)) if due_text else None, int(last_id))
        except (TypeError, ValueError):
            raise invalid("cursor", "无效的分页游标", "invalid_cursor") from None
    rows = await db.work_queue(
        scope_filter(scope),
        point_id=point_id,
        status=status,
        due_before=_local(due_before) if due_before is not None else None,
        overdue=overdue,
        after=after,
        limit=limit + 1,
    )
    rows, next_cursor = page(
        rows,
        limit,
        lambda last: {"after": [last["due_at"].isoformat() if last["due_at"] else None, last["id"]]},
    )
    return ApplicationList(items=[summary_of_row(r) for r in rows], next_cursor=next_cursor)


async def work_case(
    cases: Cases, principal: Principal, scope: WorkScope, application_id: int, *, request_id: str, ip: str
) -> ApplicationOut:
    """A case of the clerk's scope, with the delivery address in full (to post or bring the result): reading
    a resident's personal data as staff goes into the audit log."""
    app = await in_scope(scope, application_id)
    if app.delivery_address_enc:
        await audit(
            principal,
            "application.address_read",
            subject=app.applicant_id,
            request_id=request_id,
            ip=ip,
            detail={"application": app.number},
        )
    return await view(cases, app, full_address=True)


async def act(
    cases: Cases, principal: Principal, scope: WorkScope, application_id: int, body: ActionIn
) -> ApplicationOut:
    app = await in_scope(scope, application_id)
    # a role that may never take this action hears so (403), whatever the case's status
    if not principal.roles.intersection(states.TRANSITIONS[body.action].roles):
        raise Forbidden("当前角色不能进行该操作", code="forbidden")
    transition = states.transition_for(body.action, app.status)
    if transition is None:
        raise _invalid(body.action, app.status)
    moment = now()
    changes: dict[str, Any] = {"status": transition.target}
    note: dict[str, Any] = {"note": body.note} if body.note else {}
    await _prepare(cases, app, body, moment, changes, note)
    if body.action == "accept":
        changes["accepted_by_id"] = principal.account_id
    async with in_transaction():
        if not await db.move(app.id, app.version, **changes):
            raise _raced()
        await _record(
            app, body.action, app.status, transition.target, principal, note, transition.title, when=moment
        )
    # the answer shows the address masked; the full one is read (and audited) through work_case
    return await view(cases, await _reload(app.id))


async def _prepare(
    cases: Cases, app: db.Application, body: ActionIn, moment: datetime, changes: dict, note: dict
) -> None:
    """Check what the action needs and work out its side effects, before anything is written."""
    action = body.action
    calendar = cases.calendar
    if action == "accept":
        item = app.item
        changes.update(
            accepted_at=moment,
            due_at=calendar.due_at(moment, item.kind, item.promised_days),
            deadline_status="normal",
        )
    elif action == "return":
        if app.returned_count >= 1:
            raise Conflict("一次性告知：该申请已退回补正过一次，请受理或不予受理", code="already_returned")
        if not body.missing_materials:
            raise invalid("missing_materials", "退回补正须列出全部缺少或有误的材料")
        known = set(await catalog_db.material_codes_of(app.item_id))
        listed = [m.material_code for m in body.missing_materials]
        unknown = sorted(set(listed) - known)
        if unknown:
            raise invalid("missing_materials", f"不是该事项的材料编码：{', '.join(c[:32] for c in unknown)}")
        if len(set(listed)) != len(listed):
            # one notice, each material once with everything wrong about it in its reason
            raise invalid("missing_materials", "同一材料只能列一次，请把问题合并写在一条理由里")
        changes["returned_count"] = app.returned_count + 1
        note["missing_materials"] = [m.model_dump() for m in body.missing_materials]
    elif action in ("refuse", "reject"):
        if not body.reason:
            raise invalid("reason", "须写明理由")
        if action == "reject" and not body.legal_basis:
            raise invalid("legal_basis", "不予批准须写明法律依据")
        note.update(reason=body.reason, legal_basis=body.legal_basis)
    elif action == "suspend":
        if not body.reason or not body.expected_days:
            raise invalid(
                "reason" if not body.reason else "expected_days", "特别程序须写明理由和预计工作日数"
            )
        changes["suspended_at"] = moment
        note.update(reason=body.reason, expected_days=body.expected_days)
    elif action == "resume":
        paused = calendar.paused_workdays(app.suspended_at or moment, moment)
        changes.update(
            suspended_at=None,
            paused_workdays=app.paused_workdays + paused,
            due_at=calendar.extend(app.due_at, paused) if app.due_at else None,
        )
        note["paused_workdays"] = paused
    elif action == "deliver":
        await _prepare_delivery(cases, app, body, note)
        changes["delivered_at"] = moment
    if action in ("approve", "reject"):
        decision = "approved" if action == "approve" else "rejected"
        on_time = app.due_at is None or moment <= app.due_at
        changes.update(decided_at=moment, decision=decision, decided_on_time=on_time)
    if action in ("approve", "reject", "refuse"):
        changes["deadline_status"] = "normal"


async def _prepare_delivery(cases: Cases, app: db.Application, body: ActionIn, note: dict) -> None:
    mode = app.delivery_mode
    note["mode"] = mode
    if mode == "mail":
        if not body.tracking_no:
            raise invalid("tracking_no", "邮寄送达须填写快递单号")
        note["tracking_no"] = body.tracking_no
    elif mode == "grid_worker":
        if not body.recipient or not body.photo:
            raise invalid("photo" if body.recipient else "recipient", "网格员送达须填写签收人并上传签收照片")
        try:
            data = base64.b64decode(body.photo, validate=True)
        except (binascii.Error, ValueError):
            raise invalid("photo", "照片应为 base64 编码") from None
        content_type = sniff(data)
        if (
            content_type not in ("image/jpeg", "image/png")
            or len(data) > cases.settings.uploads.max_file_bytes
        ):
            raise invalid("photo", "照片应为不超过大小限制的 JPEG 或 PNG")
        stored = await cases.files.put(data, content_type)
        note.update(recipient=body.recipient, photo_sha256=stored.sha256)
    else:
        if body.recipient:
            note["recipient"] = body.recipient


# ---- shared --------------------------------------------------------------------------------------------


async def _record(
    app: db.Application,
    action: str,
    from_status: str | None,
    to_status: str,
    principal: Principal,
    note: dict,
    title: str,
    when: datetime | None = None,
) -> None:
    """The event and the applicant's notification, inside the caller's transaction."""
    await db.ApplicationEvent.create(
        application_id=app.id,
        action=action,
        from_status=from_status,
        to_status=to_status,
        actor_id=principal.account_id,
        actor_role=principal.role,
        channel=principal.channel,
        note=note,
        # the step's own moment, so the timeline agrees with accepted_at, decided_at, delivered_at
        **({"at": when} if when is not None else {}),
    )
    await db.Notification.create(
        account_id=app.applicant_id,
        kind="application_status",
        title=title,
        body=f"办件编号 {app.number}：{title}",
        application_id=app.id,
    )


async def _reload(application_id: int) -> db.Application:
    return await db.application_with_refs(application_id)


def _invalid(action: str, status: str) -> Conflict:
    return Conflict(f"当前状态({status})不能进行该操作({action})", code="invalid_transition")


def _raced() -> Conflict:
    return Conflict("该办件刚被他人处理，请刷新后再试", code="invalid_transition")
