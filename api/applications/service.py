"""Cases from submission to delivery: one transaction per step, each step an event on the timeline and
a notification in the applicant's inbox, written together with the change itself."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from api.applications import actions, states
from api.applications.deps import Cases
from api.applications.errors import (
    ApplicationNotFound,
    DeliveryModeNotOffered,
    InvalidTransition,
    NotHandledAtPoint,
    NotHandledOnline,
    UnknownFilterValue,
    UnknownItem,
    UnknownPoint,
)
from api.applications.schemas import (
    ApplicationIn,
    ApplicationList,
    ApplicationOut,
    ApplicationSummary,
    ClerkAction,
    DeliveryOut,
    EventOut,
    LicenceMaterialOut,
    MaterialOut,
    MissingMaterial,
    Ref,
)
from api.catalog import service as catalog
from api.kit import clock
from api.kit.auth import Principal
from api.kit.clock import CITY_TZ
from api.kit.db import in_transaction
from api.kit.errors import Forbidden, InvalidCursor, invalid
from api.kit.http import cursor_id, decode_cursor, decode_id_cursor, page
from api.kit.pii import mask_address
from api.kit.scopes import WorkScope
from api.licences import service as licences
from models import applications as db
from models import catalog as catalog_db
from models import feedback as feedback_db
from models import notifications as notifications_db
from models.audit import audit


def _local(moment: datetime) -> datetime:
    """An instant in the city's zone; a datetime without an offset is read as Beijing time. SQLite keeps
    datetimes as ISO text with their offset and compares them as text, so every value we filter by carries
    the city's offset (+08:00, as kit.clock and the auto_now columns give), or ranges come out wrong."""
    return moment.replace(tzinfo=CITY_TZ) if moment.tzinfo is None else moment.astimezone(CITY_TZ)


# ---- views ---------------------------------------------------------------------------------------------


def _ref(obj: Any) -> Ref | None:
    return None if obj is None else Ref(code=obj.code, name=obj.name)


async def view(cases: Cases, app: db.Application, *, full_address: bool = False) -> ApplicationOut:
    events = await db.events_of(app.id)
    materials = await db.materials_of(app.id)
    attached = await db.licence_materials_of(app.id)
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
        licence_materials=[
            _attached_out(a.material_code, a.licence_id, a.licence_type, a.verified_at) for a in attached
        ],
        events=[EventOut.model_validate(e, from_attributes=True) for e in events],
        evaluated=await feedback_db.is_evaluated(app.id),
    )


def _attached_out(code: str, licence_id: int, kind: str, at: datetime) -> LicenceMaterialOut:
    return LicenceMaterialOut(
        material_code=code,
        licence_id=licence_id,
        licence_type=kind,
        licence_type_name=licences.type_name(kind),
        verified_at=at,
    )


async def _check_attached(
    cases: Cases, principal: Principal, item_id: int, body: ApplicationIn
) -> list[licences.Attached]:
    """The e-licences attached for materials, each checked (api.licences.service.check_attached)."""
    if not body.materials:
        return []
    takes = await catalog_db.licence_types_of(item_id)
    checked = []
    for index, material in enumerate(body.materials):
        field = f"materials.{index}.licence_id"
        if material.material_code not in takes:
            raise invalid(f"materials.{index}.material_code", "该事项没有这项材料")
        kind = takes[material.material_code]
        if kind is None:
            raise invalid(f"materials.{index}.material_code", "这项材料不能以电子证照代替，请上传")
        checked.append(
            await licences.check_attached(
                cases.licences, principal.account_id, material.licence_id, kind, field
            )
        )
    return checked


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


def summary_json(row: dict[str, Any]) -> dict[str, Any]:
    """The ApplicationSummary of a row, for orjson: the same keys in the same order, and the same text as
    the model's JSON (orjson writes an aware datetime as pydantic does; the queue tests compare each page
    with the schema's own serialisation of it)."""
    point_code = row["point__code"]
    return {
        "id": row["id"],
        "number": row["number"],
        "status": row["status"],
        "item": {"code": row["item__code"], "name": row["item__name"]},
        "point": None if point_code is None else {"code": point_code, "name": row["point__name"]},
        "created_at": row["created_at"],
        "due_at": row["due_at"],
        "deadline_status": row["deadline_status"],
    }


# ---- the applicant's side ------------------------------------------------------------------------------


async def submit(cases: Cases, principal: Principal, body: ApplicationIn) -> ApplicationOut:
    """A new case. The item and the point come from this worker's memory of the catalogue (the database is
    read only when the catalogue changed); the day's number, then the case with its first event and the
    applicant's notification, are written in one transaction of as few statements as the database allows
    (models.applications.submit_case); the answer is built from what was written, not read back."""
    item = await catalog.item_facts(cases.catalog, body.item_code)
    if item is None:
        raise UnknownItem()
    point = None
    if body.point_code is None:
        if "online" not in item.channels:
            raise NotHandledOnline()
    else:
        point = await catalog.point_facts(cases.catalog, body.point_code)
        if point is None:
            raise UnknownPoint()
        allowed = "community" if point.level == "community" else "counter"
        if allowed not in item.channels:
            raise NotHandledAtPoint()
    if body.delivery.mode not in item.delivery_modes:
        raise DeliveryModeNotOffered()
    if body.delivery.mode == "grid_worker" and point is None:
        raise DeliveryModeNotOffered("网格员送达须选择一个社区网点")
    attached = await _check_attached(cases, principal, item.id, body)
    moment = clock.now()
    day = moment.strftime("%Y%m%d")  # the day in the city, whatever the server's zone
    title = "您的申请已提交，等待受理"
    channel = principal.channel or "app"
    address = body.delivery.address

    async def write(sequence: int) -> db.Submitted:
        number = f"{cases.settings.applications.number_prefix}{day}{sequence:06d}"
        return await db.submit_case(
            number=number,
            at=moment,  # the same day as the number's, even a hair before midnight
            applicant_id=principal.account_id,
            item_id=item.id,
            department_id=item.department_id,
            point_id=point.id if point else None,
            channel=channel,
            form=body.form,
            delivery_mode=body.delivery.mode,
            delivery_address_enc=cases.cipher.encrypt(address, f"application:{number}:address")
            if address
            else None,
            actor_role=principal.role,
            event_channel=principal.channel,
            title=title,
            body=f"办件编号 {number}：{title}",
        )

    if attached:
        # the case and the e-licences it holds, whole or not at all
        async with in_transaction():
            written = await write(await db.next_sequence(day))
            await db.add_licence_materials(
                written.id,
                [
                    (m.material_code, a.licence_id, a.licence_type, a.verified_at)
                    for m, a in zip(body.materials, attached, strict=True)
                ],
            )
    elif db.case_written_in_one_statement():
        # The day's number in a statement of its own, committed at once: the day's counter row is locked
        # for that statement only, not across a transaction's round trips, which every submission of the
        # day would queue behind. The case with its event and notification is one statement, whole or not
        # at all; if it fails, that number is skipped (never given twice).
        written = await write(await db.next_sequence(day))
    else:
        async with in_transaction():
            written = await write(await db.next_sequence(day))
    return ApplicationOut(
        id=written.id,
        number=written.number,
        status="submitted",
        item=Ref(code=item.code, name=item.name),
        point=None if point is None else Ref(code=point.code, name=point.name),
        department=Ref(code=item.department_code, name=item.department_name),
        channel=channel,
        delivery=DeliveryOut(mode=body.delivery.mode, address=mask_address(address) if address else None),
        form=body.form,
        created_at=written.at,
        accepted_at=None,
        due_at=None,
        deadline_status="normal",
        decided_at=None,
        decision=None,
        missing_materials=[],
        materials=[],
        licence_materials=[
            _attached_out(m.material_code, a.licence_id, a.licence_type, a.verified_at)
            for m, a in zip(body.materials, attached, strict=True)
        ],
        events=[
            EventOut(
                action="submit",
                from_status=None,
                to_status="submitted",
                actor_role=principal.role,
                channel=principal.channel,
                at=written.at,
                note={},
            )
        ],
        evaluated=False,
    )


async def mine(principal: Principal, status: str | None, cursor: str | None, limit: int) -> ApplicationList:
    before = decode_id_cursor(cursor, "before")
    rows, next_cursor = page(
        await db.applications_of_applicant(principal.account_id, status, before, limit + 1),
        limit,
        lambda last: {"before": last["id"]},
    )
    return ApplicationList(items=[summary_of_row(r) for r in rows], next_cursor=next_cursor)


async def latest_of(account_id: int) -> ApplicationSummary | None:
    """His newest case as the case list shows it (the official account's "进度" answer); None: he has none."""
    rows = await db.applications_of_applicant(account_id, None, None, 1)
    return summary_of_row(rows[0]) if rows else None


async def own(principal: Principal, application_id: int) -> db.Application:
    """The applicant's own case (404 for anyone else's: its existence is not revealed)."""
    app = await db.application_of_applicant(application_id, principal.account_id)
    if app is None:
        raise ApplicationNotFound()
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
        raise InvalidTransition.of(action, app.status)
    changes: dict[str, Any] = {"status": transition.target}
    if action == "withdraw":
        changes["deadline_status"] = "normal"
    async with in_transaction():
        if not await db.move(app.id, app.version, **changes):
            raise InvalidTransition.raced()
        await _record(app, action, app.status, transition.target, principal, note, transition.title)
    return await view(cases, await _reload(app.id))


# ---- the clerks' side ----------------------------------------------------------------------------------


async def in_scope(scope: WorkScope, application_id: int) -> db.Application:
    """A case of the clerk's scope (404 outside it, as for a case that does not exist)."""
    app = await db.application_in_scope(application_id, scope)
    if app is None:
        raise ApplicationNotFound()
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
) -> bytes:
    """A page of the clerk's queue as the JSON of an ApplicationList, serialised once from plain rows (one
    round trip for a page; the point code is looked up inside the page's query, and only an empty page asks
    whether the point exists at all)."""
    try:
        after = _queue_position(cursor)
    except InvalidCursor:
        if point_code:  # a bad point is named first, as when it was looked up before the cursor was read
            await _known_point(point_code)
        raise
    rows = await db.work_queue(
        scope,
        point_code=point_code or None,
        status=status,
        due_before=_local(due_before) if due_before is not None else None,
        overdue=overdue,
        after=after,
        limit=limit + 1,
    )
    if not rows and point_code:
        await _known_point(point_code)
    rows, next_cursor = page(
        rows,
        limit,
        lambda last: {"after": [last["due_at"].isoformat() if last["due_at"] else None, last["id"]]},
    )
    return orjson.dumps({"items": [summary_json(r) for r in rows], "next_cursor": next_cursor})


def _queue_position(cursor: str | None) -> tuple[datetime | None, int] | None:
    position = decode_cursor(cursor, "after")
    if position is None:
        return None
    try:
        due_text, last_id = position
        return (_local(datetime.fromisoformat(due_text)) if due_text else None, cursor_id(last_id))
    except (TypeError, ValueError):
        raise InvalidCursor() from None


async def _known_point(point_code: str) -> None:
    if await catalog_db.point_by_code(point_code) is None:
        raise UnknownFilterValue("没有这个服务网点", field="point_code")


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
    cases: Cases, principal: Principal, scope: WorkScope, application_id: int, body: ClerkAction
) -> ApplicationOut:
    """One clerk action on a case of his scope: the role may take it (403), the state machine allows it now
    (409), what it needs of the case holds (actions.prepare); then the change, its event and the applicant's
    notification in one transaction, on the version that was read (a concurrent clerk's step wins or loses
    whole)."""
    app = await in_scope(scope, application_id)
    transition = states.TRANSITIONS[body.action]
    # a role that may never take this action hears so (403), whatever the case's status
    if not principal.roles.intersection(transition.roles):
        raise Forbidden("当前角色不能进行该操作")
    if app.status not in transition.sources:
        raise InvalidTransition.of(body.action, app.status)
    moment = clock.now()
    step = await actions.prepare(cases, principal, app, body, moment)
    changes: dict[str, Any] = {"status": transition.target, **step.changes}
    note: dict[str, Any] = {"note": body.note} if body.note else {}
    note.update(step.note)
    async with in_transaction():
        if not await db.move(app.id, app.version, **changes):
            raise InvalidTransition.raced()
        await _record(
            app, body.action, app.status, transition.target, principal, note, transition.title, when=moment
        )
    # the answer shows the address masked; the full one is read (and audited) through work_case
    return await view(cases, await _reload(app.id))


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
    await db.add_event(
        app.id,
        action=action,
        from_status=from_status,
        to_status=to_status,
        actor_id=principal.account_id,
        actor_role=principal.role,
        channel=principal.channel,
        note=note,
        # the step's own moment, so the timeline agrees with accepted_at, decided_at, delivered_at
        at=when,
    )
    await notifications_db.notify(
        app.applicant_id,
        # "materials missing" has a category of its own: its inbox entry cannot be turned off
        "application_returned" if to_status == "returned" else "application_status",
        title,
        f"办件编号 {app.number}：{title}",
        application_id=app.id,
    )


async def _reload(application_id: int) -> db.Application:
    return await db.application_with_refs(application_id)
