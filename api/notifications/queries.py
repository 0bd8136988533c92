"""Reads of the inbox, always of one account: another account's notification is never found."""

from __future__ import annotations

from datetime import datetime

from models.applications import Notification


async def inbox_page(
    account_id: int, unread: bool | None, before_id: int | None, limit: int
) -> list[Notification]:
    qs = Notification.filter(account_id=account_id)
    if unread is True:
        qs = qs.filter(read_at__isnull=True)
    elif unread is False:
        qs = qs.filter(read_at__isnull=False)
    if before_id is not None:
        qs = qs.filter(id__lt=before_id)
    return await qs.order_by("-id").limit(limit)


async def notification_of(notification_id: int, account_id: int) -> Notification | None:
    return await Notification.get_or_none(id=notification_id, account_id=account_id)


async def mark_read(notification_id: int, account_id: int, moment: datetime) -> None:
    """Set read_at once: a second read keeps the first time."""
    await Notification.filter(id=notification_id, account_id=account_id, read_at__isnull=True).update(
        read_at=moment
    )
