"""Announcements (政务信息、公告) published by staff, and the operators' view of every delivery.

An announcement is written `scheduled` and nothing else happens in the request: the delivery workers fan
it out once its `send_at` has come (api/notifications/delivery.py `announce_once`), in batches, each
person's inbox copy and deliveries written with the batch. It can be withdrawn until a worker begins."""

from __future__ import annotations

from datetime import datetime

from api.kit import clock
from api.kit.auth import Principal, Role
from api.kit.errors import invalid
from api.kit.http import decode_id_cursor, page
from api.kit.ids import MAX_ID64
from api.notifications.errors import AnnouncementNotFound, AnnouncementStarted
from api.notifications.schemas import (
    AnnouncementIn,
    AnnouncementList,
    AnnouncementOut,
    AudienceIn,
    AudienceOut,
    DeliveryList,
    DeliveryRecord,
    DeliverySummary,
)
from models import catalog as catalog_db
from models import notifications as db

AUDIENCE_NAMES = {"district": "区县", "community": "社区", "item": "事项", "role": "角色"}
# a send_at this far in the past (the clocks of the client and ours) is taken as "now"
LEEWAY_SECONDS = 60


async def view(row: db.Announcement) -> AnnouncementOut:
    copies, deliveries = await db.announcement_counts(row.id)
    return AnnouncementOut(
        id=row.id,
        title=row.title,
        body=row.body,
        audience=AudienceOut.model_validate(row.audience),
        channels=list(row.channels),
        send_at=row.send_at,
        status=row.status,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        cancelled_at=row.cancelled_at,
        recipients=copies,
        deliveries=deliveries,
    )


async def _check_audience(audience: AudienceIn) -> dict[str, str]:
    """The audience as stored, after its code was found; 422 naming `audience.code` otherwise."""
    if audience.kind == "everyone":
        if audience.code is not None:
            raise invalid("audience.code", "发送给所有人时不填 code")
        return {"kind": "everyone"}
    code = audience.code
    if code is None:
        raise invalid("audience.code", f"发送范围 {audience.kind} 须填写 code")
    found: object | None
    if audience.kind == "district":
        found = await catalog_db.district_by_code(code)
    elif audience.kind == "community":
        found = await catalog_db.community_by_code(code)
    elif audience.kind == "item":
        found = await catalog_db.item_by_code(code)
    else:
        found = code if code in {r.value for r in Role} else None
    if found is None:
        raise invalid("audience.code", f"没有这个{AUDIENCE_NAMES[audience.kind]}：{code}")
    return {"kind": audience.kind, "code": code}


async def publish(principal: Principal, body: AnnouncementIn) -> AnnouncementOut:
    moment = clock.now()
    send_at = body.send_at or moment
    if (moment - send_at).total_seconds() > LEEWAY_SECONDS:
        raise invalid("send_at", "发送时间不能早于现在")
    audience = await _check_audience(body.audience)
    if not await db.audience_reaches_anyone(audience):
        raise invalid("audience", "该发送范围目前没有任何人")
    channels = sorted(set(body.channels) | {"inbox"})
    row = await db.create_announcement(
        body.title, body.body, audience, channels, max(send_at, moment), principal.account_id, moment
    )
    return await view(row)


async def announcements(status: str | None, cursor: str | None, limit: int) -> AnnouncementList:
    before = decode_id_cursor(cursor, "before")
    rows, next_cursor = page(
        await db.announcements_page(status, before, limit + 1), limit, lambda last: {"before": last.id}
    )
    return AnnouncementList(items=[await view(r) for r in rows], next_cursor=next_cursor)


async def announcement(announcement_id: int) -> AnnouncementOut:
    row = await db.announcement_by_id(announcement_id)
    if row is None:
        raise AnnouncementNotFound()
    return await view(row)


async def cancel(announcement_id: int) -> AnnouncementOut:
    """Withdrawn while still scheduled; 409 once a worker began sending it (or it was sent, or withdrawn)."""
    row = await db.announcement_by_id(announcement_id)
    if row is None:
        raise AnnouncementNotFound()
    if not await db.cancel_announcement(announcement_id, clock.now()):
        raise AnnouncementStarted()
    return await announcement(announcement_id)


# ---- the operators' view -----------------------------------------------------------------------------------


def _delivery(row: db.Delivery) -> DeliveryRecord:
    return DeliveryRecord(
        id=row.id,
        notification_id=row.notification_id,
        kind=row.notification.kind,
        channel=row.channel,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        provider_ref=row.provider_ref,
        last_error=row.last_error,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


async def deliveries(
    status: str | None,
    channel: str | None,
    since: datetime | None,
    until: datetime | None,
    cursor: str | None,
    limit: int,
) -> DeliveryList:
    """Every delivery, newest first (no personal data: who it went to is not shown, only what it is)."""
    before = decode_id_cursor(cursor, "before", MAX_ID64)
    rows, next_cursor = page(
        await db.deliveries_page(status, channel, since, until, before, limit + 1),
        limit,
        lambda last: {"before": last.id},
    )
    return DeliveryList(items=[_delivery(r) for r in rows], next_cursor=next_cursor)


async def summary(channel: str | None, since: datetime | None, until: datetime | None) -> DeliverySummary:
    counts = await db.delivery_summary(channel, since, until)
    return DeliverySummary(channels=counts, total=sum(n for c in counts.values() for n in c.values()))
