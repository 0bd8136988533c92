"""The inbox: one row per notification, written by other areas in the same transaction as the change it tells
of, and read only by the account it belongs to (another account's notification is never found)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tortoise import connections, fields
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


class Outbox(Model):
    """What must still leave the server, written in the same transaction as the change that causes it: a
    rolled-back change leaves none. A delivery worker expands it (into one delivery per channel the person
    takes) and marks it done."""

    id = fields.BigIntField(primary_key=True)
    topic = fields.CharField(max_length=32)  # "notification": tell the account of `notification`
    notification: fields.ForeignKeyNullableRelation[Notification] = fields.ForeignKeyField(
        "models.Notification", related_name="outbox", null=True, on_delete=fields.CASCADE
    )
    created_at = fields.DatetimeField()
    claimed_until = fields.DatetimeField(null=True)  # a worker is expanding it until then
    done_at = fields.DatetimeField(null=True)

    notification_id: int | None

    class Meta:
        table = "outbox"
        indexes = (("done_at", "id"),)


class Delivery(Model):
    """One notification on one channel other than the inbox (app push, WeChat), with GOV.UK Notify's
    statuses: created → sending → sent → delivered, or temporary-failure (retried until the horizon, then
    technical-failure), permanent-failure."""

    id = fields.BigIntField(primary_key=True)
    notification: fields.ForeignKeyRelation[Notification] = fields.ForeignKeyField(
        "models.Notification", related_name="deliveries", on_delete=fields.CASCADE
    )
    channel = fields.CharField(max_length=16)
    status = fields.CharField(max_length=24)
    # where it goes, read when it was created: {"registration_ids": [...]} or {"openid": "..."}
    target: fields.JSONField[dict[str, Any]] = fields.JSONField()
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField()
    claimed_until = fields.DatetimeField(null=True)  # a worker is sending it until then
    provider_ref = fields.CharField(max_length=128, null=True)  # the provider's message id, once accepted
    last_error = fields.CharField(max_length=200, null=True)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    notification_id: int
    events: fields.ReverseRelation[DeliveryEvent]

    class Meta:
        table = "delivery"
        unique_together = (("notification", "channel"),)
        indexes = (("status", "next_attempt_at"),)


class DeliveryEvent(Model):
    """Each status a delivery took, with its time: what the resident and the operator see."""

    id = fields.BigIntField(primary_key=True)
    delivery: fields.ForeignKeyRelation[Delivery] = fields.ForeignKeyField(
        "models.Delivery", related_name="events", on_delete=fields.CASCADE
    )
    status = fields.CharField(max_length=24)
    at = fields.DatetimeField()
    detail = fields.CharField(max_length=200, null=True)

    delivery_id: int

    class Meta:
        table = "delivery_event"
        indexes = (("delivery_id", "id"),)


class Device(Model):
    """An app install that takes push messages: its JPush registration id, on one account at a time (a phone
    that changes hands moves to the account that registers it last)."""

    id = fields.IntField(primary_key=True)
    account: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Account", related_name="devices", on_delete=fields.CASCADE
    )
    registration_id = fields.CharField(max_length=64, unique=True)
    platform = fields.CharField(max_length=16)
    app_version = fields.CharField(max_length=32)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    account_id: int

    class Meta:
        table = "device"


class NotificationSettings(Model):
    """An account's choices: per category, the channels it takes (what is not listed takes the category's
    default), and its quiet hours (minutes after midnight, city time; None: the configured default; a start
    equal to its end: none)."""

    id = fields.IntField(primary_key=True)
    account: fields.OneToOneRelation = fields.OneToOneField(
        "models.Account", related_name="notification_settings", on_delete=fields.CASCADE
    )
    choices: fields.JSONField[dict[str, dict[str, bool]]] = fields.JSONField(default=dict)
    quiet_start = fields.IntField(null=True)
    quiet_end = fields.IntField(null=True)
    updated_at = fields.DatetimeField()

    account_id: int

    class Meta:
        table = "notification_settings"


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
    """One inbox entry and its outbox row (call it inside the transaction of the change it tells of); `at`
    defaults to the moment of writing."""
    moment: dict[str, Any] = {"created_at": at} if at is not None else {}
    row = await Notification.create(
        account_id=account_id, kind=kind, title=title, body=body, application_id=application_id, **moment
    )
    await Outbox.create(topic="notification", notification_id=row.id, created_at=row.created_at)
    return row


async def notify_each(
    account_ids: Iterable[int], kind: str, title: str, body: str, *, application_id: int | None = None
) -> None:
    """The same entry in the inbox of each of these accounts, each with its outbox row (inside the caller's
    transaction)."""
    for account_id in account_ids:
        await notify(account_id, kind, title, body, application_id=application_id)


async def inbox_page(
    account_id: int,
    unread: bool | None,
    before_id: int | None,
    limit: int,
    *,
    hidden_kinds: Iterable[str] = (),
) -> list[Notification]:
    """One account's inbox, newest first, from before `before_id` (keyset), without the kinds it hid."""
    qs = Notification.filter(account_id=account_id)
    hidden = list(hidden_kinds)
    if hidden:
        qs = qs.filter(kind__not_in=hidden)
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


# ---- delivery: the outbox, deliveries and their events --------------------------------------------------

_CLAIM_OUTBOX = """
UPDATE "outbox" SET "claimed_until" = {p2} WHERE "id" IN (
    SELECT "id" FROM "outbox" WHERE "done_at" IS NULL AND ("claimed_until" IS NULL OR "claimed_until" < {p1})
    ORDER BY "id" LIMIT {p3}{lock}
) RETURNING "id", "topic", "notification_id"
"""

_CLAIM_DELIVERIES = """
UPDATE "delivery" SET "status" = 'sending', "claimed_until" = {p2}, "attempts" = "attempts" + 1,
    "updated_at" = {p1}
WHERE "id" IN (
    SELECT "id" FROM "delivery" WHERE "status" IN ('created', 'temporary-failure') AND "next_attempt_at" <= {p1}
    ORDER BY "next_attempt_at", "id" LIMIT {p3}{lock}
) RETURNING "id"
"""


def _claim_sql(template: str) -> tuple[str, bool]:
    """The claim statement for this database: on PostgreSQL the rows are locked as they are picked and rows
    another worker holds are skipped (`FOR UPDATE SKIP LOCKED`); SQLite runs one writer at a time, so the
    single UPDATE is already atomic."""
    postgres = connections.get("default").capabilities.dialect == "postgres"
    if postgres:
        return template.format(p1="$1", p2="$2", p3="$3", lock=" FOR UPDATE SKIP LOCKED"), True
    return template.format(p1="?", p2="?", p3="?", lock=""), False


def _as_db(model: type[Model], field: str, value: Any) -> Any:
    return model._meta.fields_map[field].to_db_value(value, model)


async def claim_outbox(now: datetime, until: datetime, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` outbox rows not done and not held by another worker, now held by the caller until
    `until` (a worker that dies lets them go when that passes)."""
    sql, postgres = _claim_sql(_CLAIM_OUTBOX)
    conn = connections.get("default")
    params = [_as_db(Outbox, "created_at", now), _as_db(Outbox, "created_at", until), limit]
    if not postgres:
        params = [params[1], params[0], params[2]]  # SQLite's ? are positional: until comes first
    return list(await conn.execute_query_dict(sql, params))


async def claim_deliveries(now: datetime, until: datetime, limit: int) -> list[int]:
    """Up to `limit` deliveries due for a try, now `sending` and held by the caller until `until`, each
    with one more attempt counted."""
    sql, postgres = _claim_sql(_CLAIM_DELIVERIES)
    conn = connections.get("default")
    moment, held = _as_db(Delivery, "updated_at", now), _as_db(Delivery, "updated_at", until)
    params = [moment, held, limit] if postgres else [held, moment, moment, limit]
    ids = [int(row["id"]) for row in await conn.execute_query_dict(sql, params)]
    if ids:
        await DeliveryEvent.bulk_create([DeliveryEvent(delivery_id=i, status="sending", at=now) for i in ids])
    return ids


async def outbox_done(outbox_id: int, at: datetime) -> None:
    await Outbox.filter(id=outbox_id).update(done_at=at, claimed_until=None)


async def notification_by_id(notification_id: int) -> Notification | None:
    return await Notification.get_or_none(id=notification_id)


async def devices_of(account_id: int) -> list[Device]:
    return await Device.filter(account_id=account_id).order_by("id")


async def settings_of(account_id: int) -> NotificationSettings | None:
    return await NotificationSettings.get_or_none(account_id=account_id)


async def create_delivery(
    notification_id: int, channel: str, target: dict[str, Any], status: str, at: datetime, detail: str | None
) -> Delivery | None:
    """The delivery of a notification on a channel, with its first event; None when it exists already (an
    outbox row expanded again after a worker died between writing deliveries and marking the row done)."""
    if await Delivery.filter(notification_id=notification_id, channel=channel).exists():
        return None
    row = await Delivery.create(
        notification_id=notification_id,
        channel=channel,
        status=status,
        target=target,
        next_attempt_at=at,
        created_at=at,
        updated_at=at,
        last_error=detail,
    )
    await DeliveryEvent.create(delivery_id=row.id, status=status, at=at, detail=detail)
    return row


async def delivery_with_notification(delivery_id: int) -> Delivery | None:
    return await Delivery.filter(id=delivery_id).select_related("notification").first()


async def mark_delivery(
    delivery_id: int,
    status: str,
    at: datetime,
    *,
    held_until: datetime,
    detail: str | None = None,
    provider_ref: str | None = None,
    next_attempt_at: datetime | None = None,
) -> bool:
    """Set the status a try ended in (and its event), only while the caller's claim holds: the delivery is
    `sending` and held until `held_until`, the moment the caller's claim gave it. A worker whose hold lapsed
    and was taken over (a new claim, a sweep) marks nothing."""
    changes: dict[str, Any] = {
        "status": status,
        "updated_at": at,
        "claimed_until": None,
        "last_error": detail,
    }
    if provider_ref is not None:
        changes["provider_ref"] = provider_ref
    if next_attempt_at is not None:
        changes["next_attempt_at"] = next_attempt_at
    if not await Delivery.filter(id=delivery_id, status="sending", claimed_until=held_until).update(
        **changes
    ):
        return False
    await DeliveryEvent.create(delivery_id=delivery_id, status=status, at=at, detail=detail)
    return True


async def hold_delivery(delivery_id: int, until: datetime) -> None:
    """Not tried before `until` (quiet hours)."""
    await Delivery.filter(id=delivery_id).update(next_attempt_at=until)


async def set_target(delivery_id: int, target: dict[str, Any]) -> None:
    await Delivery.filter(id=delivery_id).update(target=target)


async def lapsed_deliveries(now: datetime) -> list[int]:
    """Deliveries left `sending` by a worker whose hold has lapsed (it died or stalled mid-try)."""
    rows = await Delivery.filter(status="sending", claimed_until__lt=now).values("id")
    return [int(r["id"]) for r in rows]


async def deliveries_of_notification(notification_id: int) -> list[Delivery]:
    return await Delivery.filter(notification_id=notification_id).prefetch_related("events").order_by("id")


async def register_device(
    account_id: int, registration_id: str, platform: str, app_version: str, at: datetime
) -> Device:
    """The device on this account: a registration id another account had moves to this one (a phone that
    changed hands), never duplicated."""
    device = await Device.get_or_none(registration_id=registration_id)
    if device is None:
        return await Device.create(
            account_id=account_id,
            registration_id=registration_id,
            platform=platform,
            app_version=app_version,
            created_at=at,
            updated_at=at,
        )
    await Device.filter(id=device.id).update(
        account_id=account_id, platform=platform, app_version=app_version, updated_at=at
    )
    return await Device.get(id=device.id)


async def remove_device(account_id: int, registration_id: str) -> bool:
    return bool(await Device.filter(account_id=account_id, registration_id=registration_id).delete())


async def remove_devices(registration_ids: Iterable[str]) -> int:
    """Devices the push provider says are gone (an uninstalled app's registration id)."""
    return int(await Device.filter(registration_id__in=list(registration_ids)).delete())


async def save_settings(
    account_id: int, choices: dict[str, dict[str, bool]], quiet: tuple[int, int] | None, at: datetime
) -> None:
    start, end = quiet if quiet is not None else (None, None)
    updated = await NotificationSettings.filter(account_id=account_id).update(
        choices=choices, quiet_start=start, quiet_end=end, updated_at=at
    )
    if not updated:
        await NotificationSettings.create(
            account_id=account_id, choices=choices, quiet_start=start, quiet_end=end, updated_at=at
        )
