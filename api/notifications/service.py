"""The signed-in account's inbox: newest first, and read marks that keep the time of the first read."""

from __future__ import annotations

from api.kit import clock
from api.kit.auth import Principal
from api.kit.http import decode_id_cursor, page
from api.kit.ids import MAX_ID64
from api.notifications.errors import NotificationNotFound
from api.notifications.schemas import NotificationList, NotificationOut
from models import notifications as db


def view(row: db.Notification) -> NotificationOut:
    return NotificationOut(
        id=row.id,
        kind=row.kind,
        title=row.title,
        body=row.body,
        application_id=row.application_id,
        created_at=row.created_at,
        read_at=row.read_at,
    )


async def inbox(
    principal: Principal, unread: bool | None, cursor: str | None, limit: int
) -> NotificationList:
    before = decode_id_cursor(cursor, "before", MAX_ID64)
    rows, next_cursor = page(
        await db.inbox_page(principal.account_id, unread, before, limit + 1),
        limit,
        lambda last: {"before": last.id},
    )
    return NotificationList(items=[view(r) for r in rows], next_cursor=next_cursor)


async def read(principal: Principal, notification_id: int) -> NotificationOut:
    # marking touches only the caller's own row, so another's (or none) is a 404 after it, as before it
    await db.mark_read(notification_id, principal.account_id, clock.now())
    row = await db.notification_of(notification_id, principal.account_id)
    if row is None:
        raise NotificationNotFound()
    return view(row)
