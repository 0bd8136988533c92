"""What each clerk action checks against the case and what it changes on it, worked out before anything is
written. Which fields an action's body needs is its schema's business (`schemas.ActionIn`); what is left here
depends on the case: the one-time notice, the item's materials, the delivery mode, the calendar."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from api.applications.deps import Cases
from api.applications.errors import AlreadyReturned
from api.applications.files import sniff
from api.applications.schemas import (
    AcceptIn,
    ApproveIn,
    ClerkAction,
    DeliverIn,
    RefuseIn,
    RejectIn,
    ResumeIn,
    ReturnIn,
    SuspendIn,
)
from api.kit.auth import Principal
from api.kit.errors import invalid
from models import applications as db
from models import catalog as catalog_db

PHOTO_TYPES = ("image/jpeg", "image/png")


@dataclass
class Step:
    """The columns an action sets besides the status, and what its event's note tells."""

    changes: dict[str, Any] = field(default_factory=dict)
    note: dict[str, Any] = field(default_factory=dict)


async def prepare(
    cases: Cases, principal: Principal, app: db.Application, body: ClerkAction, moment: datetime
) -> Step:
    """The side effects of `body` on `app` at `moment`; a 409 or 422 when the case does not allow them."""
    step = Step()
    calendar = cases.calendar
    match body:
        case AcceptIn():
            item = app.item
            step.changes.update(
                accepted_at=moment,
                accepted_by_id=principal.account_id,
                due_at=calendar.due_at(moment, item.kind, item.promised_days),
                deadline_status="normal",
            )
        case ReturnIn():
            await _return(app, body, step)
        case RefuseIn() | RejectIn():
            step.note.update(reason=body.reason, legal_basis=body.legal_basis)
        case SuspendIn():
            step.changes["suspended_at"] = moment
            step.note.update(reason=body.reason, expected_days=body.expected_days)
        case ResumeIn():
            paused = calendar.paused_workdays(app.suspended_at or moment, moment)
            step.changes.update(
                suspended_at=None,
                paused_workdays=app.paused_workdays + paused,
                due_at=calendar.extend(app.due_at, paused) if app.due_at else None,
            )
            step.note["paused_workdays"] = paused
        case DeliverIn():
            await _deliver(cases, app, body, step)
            step.changes["delivered_at"] = moment
    if isinstance(body, ApproveIn | RejectIn):
        on_time = app.due_at is None or moment <= app.due_at
        step.changes.update(
            decided_at=moment,
            decision="approved" if isinstance(body, ApproveIn) else "rejected",
            decided_on_time=on_time,
        )
    if isinstance(body, ApproveIn | RejectIn | RefuseIn):
        step.changes["deadline_status"] = "normal"  # the clock has stopped for good
    return step


async def _return(app: db.Application, body: ReturnIn, step: Step) -> None:
    """退回补正 happens once: the notice must list everything at the first return, in the item's codes."""
    if app.returned_count >= 1:
        raise AlreadyReturned()
    known = set(await catalog_db.material_codes_of(app.item_id))
    unknown = sorted({m.material_code for m in body.missing_materials} - known)
    if unknown:
        raise invalid("missing_materials", f"不是该事项的材料编码：{', '.join(c[:32] for c in unknown)}")
    step.changes["returned_count"] = app.returned_count + 1
    step.note["missing_materials"] = [m.model_dump() for m in body.missing_materials]


async def _deliver(cases: Cases, app: db.Application, body: DeliverIn, step: Step) -> None:
    """What the case's delivery mode needs: a tracking number for mail; for a grid worker at the door the
    recipient and a photo of the signed receipt (stored once, by its sha256)."""
    mode = app.delivery_mode
    step.note["mode"] = mode
    if mode == "mail":
        if not body.tracking_no:
            raise invalid("tracking_no", "邮寄送达须填写快递单号")
        step.note["tracking_no"] = body.tracking_no
    elif mode == "grid_worker":
        if not body.recipient or not body.photo:
            raise invalid("photo" if body.recipient else "recipient", "网格员送达须填写签收人并上传签收照片")
        try:
            data = base64.b64decode(body.photo, validate=True)
        except (binascii.Error, ValueError):
            raise invalid("photo", "照片应为 base64 编码") from None
        content_type = sniff(data)
        if content_type not in PHOTO_TYPES or len(data) > cases.settings.uploads.max_file_bytes:
            raise invalid("photo", "照片应为不超过大小限制的 JPEG 或 PNG")
        stored = await cases.files.put(data, content_type)
        step.note.update(recipient=body.recipient, photo_sha256=stored.sha256)
    elif body.recipient:
        step.note["recipient"] = body.recipient
