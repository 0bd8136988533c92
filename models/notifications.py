"""The inbox: one row per notification, written by other areas in the same transaction as the change it tells
of, and read only by the account it belongs to (another account's notification is never found)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from models.applications import Application


class Notification(Model):
    """An inbox entry, written in the same transaction as the change it tells of."""

    id = fields.BigIntField(primary_key=True)
    account: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Account", related_name="notifications", on_delete=fields.CASCADE
    )
    kind = fields.CharField(max_length=32)
    title = fields.CharField(max_length=128)
    body = fields.TextField()
    application: fields.ForeignKeyNullableRelation[Application] = fields.ForeignKeyField(
        "models.Application", related_name="notifications", null=True, on_delete=fields.CASCADE
    )
    created_at = fields.DatetimeField(auto_now_add=True)
    read_at = fields.DatetimeField(null=True)

    # the foreign-key columns tortoise adds, declared for the type checker
    account_id: int
    application_id: int | None

    class Meta:
        table = "notification"
        indexes = (("account_id", "id"),)


# ---- queries -------------------------------------------------------------------------------------------


async def notify(
    account_id: int,
    kind: str,
    title: str,
    body: str,
    *,
    application_id: int | None = None,
    at: datetime | None = None,
) -> Notification:
    """One inbox entry (call it inside the transaction of the change it tells of); `at` defaults to the
    moment of writing."""
    moment: dict[str, Any] = {"created_at": at} if at is not None else {}
    return await Notification.create(
        account_id=account_id, kind=kind, title=title, body=body, application_id=application_id, **moment
    )


async def notify_each(
    account_ids: Iterable[int], kind: str, title: str, body: str, *, application_id: int | None = None
) -> None:
    """The same entry in the inbox of each of these accounts, in one insert."""
    await Notification.bulk_create(
        [
            Notification(
                account_id=account_id, kind=kind, title=title, body=body, application_id=application_id
            )
            for account_id in account_ids
        ]
    )


async def inbox_page(
    account_id: int, unread: bool | None, before_id: int | None, limit: int
) -> list[Notification]:
    """One account's inbox, newest first, from before `before_id` (keyset)."""
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
