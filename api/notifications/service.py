"""The signed-in account's inbox: newest first, and read marks that keep the time of the first read."""

from __future__ import annotations

from datetime import UTC, datetime

from api.auth import Principal
from api.errors import InvalidInput, NotFoundError
from api.http import decode_cursor, encode_cursor
from api.notifications import queries
from api.notifications.schemas import NotificationList, NotificationOut
from models.applications import Notification


def view(row: Notification) -> NotificationOut:
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
    before = decode_cursor(cursor, "before")
    if before is not None and (not isinstance(before, int) or isinstance(before, bool)):
        raise InvalidInput(
            "分页游标无效", code="invalid_cursor", errors=[{"field": "cursor", "message": "无效的分页游标"}]
        )
    rows = await queries.inbox_page(principal.account_id, unread, before, limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return NotificationList(
        items=[view(r) for r in rows], next_cursor=encode_cursor({"before": rows[-1].id}) if more else None
    )


async def read(principal: Principal, notification_id: int) -> NotificationOut:
    if await queries.notification_of(notification_id, principal.account_id) is None:
        raise NotFoundError("没有这条消息", code="notification_not_found")
    await queries.mark_read(notification_id, principal.account_id, datetime.now(UTC))
    row = await queries.notification_of(notification_id, principal.account_id)
    if row is None:  # deleted in between (account removed)
        raise NotFoundError("没有这条消息", code="notification_not_found")
    return view(row)
