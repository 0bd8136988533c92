"""The inbox: one row per notification, written by other areas in the same transaction as the change it tells
of, and read only by the account it belongs to (another account's notification is never found)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tortoise import connections, fields
from tortoise.expressions import F
from tortoise.functions import Count
from tortoise.models import Model
from tortoise.queryset import QuerySet

from models.sql import Placeholders, as_db, is_postgres

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
    # the announcement it is one copy of (kind "announcement")
    announcement: fields.ForeignKeyNullableRelation[Announcement] = fields.ForeignKeyField(
        "models.Announcement", related_name="notifications", null=True, on_delete=fields.CASCADE
    )
    created_at = fields.DatetimeField(auto_now_add=True)
    read_at = fields.DatetimeField(null=True)

    # the foreign-key columns tortoise adds, declared for the type checker
    account_id: int
    application_id: int | None
    announcement_id: int | None

    class Meta:
        table = "notification"
        indexes = (("account_id", "id"), ("announcement_id", "id"))


class Announcement(Model):
    """政务信息、公告: published by staff to an audience, fanned out by the workers in batches into one inbox
    entry (and its deliveries) per person, never in the request. `scheduled` until its `send_at`, then
    `sending` while the batches run (`cursor`: the last account id reached), then `sent`; `cancelled` when
    withdrawn before its fan-out began."""

    id = fields.IntField(primary_key=True)
    title = fields.CharField(max_length=64)
    body = fields.TextField()
    # {"kind": "everyone"} or {"kind": "district" | "community" | "role" | "item", "code": "..."}
    audience: fields.JSONField[dict[str, str]] = fields.JSONField()
    channels: fields.JSONField[list[str]] = fields.JSONField()
    send_at = fields.DatetimeField()
    status = fields.CharField(max_length=16)
    created_by: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.Account", related_name="announcements", null=True, on_delete=fields.SET_NULL
    )
    created_at = fields.DatetimeField()
    cancelled_at = fields.DatetimeField(null=True)
    started_at = fields.DatetimeField(null=True)
    finished_at = fields.DatetimeField(null=True)
    cursor = fields.IntField(default=0)
    recipients = fields.IntField(default=0)
    claimed_until = fields.DatetimeField(null=True)  # a worker is fanning it out until then

    created_by_id: int | None

    class Meta:
        table = "announcement"
        indexes = (("status", "send_at"),)


class Outbox(Model):
    """What must still leave the server, written in the same transaction as the change that causes it: a
    rolled-back change leaves none. A delivery worker expands it (into one delivery per channel the person
    takes) and marks it done."""

    id = fields.BigIntField(primary_key=True)
    # "notification": tell the account of `notification`; "application_submitted": that, and tell the
    # case's clerks it arrived; "complaint_routed": tell the clerks of complaint `subject_id`
    topic = fields.CharField(max_length=32)
    notification: fields.ForeignKeyNullableRelation[Notification] = fields.ForeignKeyField(
        "models.Notification", related_name="outbox", null=True, on_delete=fields.CASCADE
    )
    subject_id = fields.BigIntField(null=True)
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
        # claims; receipts found by the provider's message id; the receipt timeout and the operators' list
        indexes = (("status", "next_attempt_at"), ("provider_ref",), ("status", "updated_at"))


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


class Receipt(Model):
    """A provider's word on a message it took (delivered, or failed after all), kept as it arrived: applied to
    its delivery at once, or, when it came before the delivery was marked with the provider's message id
    (the provider answered the send, the receipt overtook our write), applied by a later pass."""

    id = fields.BigIntField(primary_key=True)
    channel = fields.CharField(max_length=16)
    provider_ref = fields.CharField(max_length=128)
    status = fields.CharField(max_length=24)  # delivered | permanent-failure | temporary-failure
    detail = fields.CharField(max_length=200, null=True)
    received_at = fields.DatetimeField()
    applied_at = fields.DatetimeField(null=True)

    class Meta:
        table = "delivery_receipt"
        indexes = (("applied_at", "id"), ("provider_ref",))


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
    topic: str = "notification",
) -> Notification:
    """One inbox entry and its outbox row (call it inside the transaction of the change it tells of); `at`
    defaults to the moment of writing. `topic` "application_submitted" also tells the case's clerks."""
    moment: dict[str, Any] = {"created_at": at} if at is not None else {}
    row = await Notification.create(
        account_id=account_id, kind=kind, title=title, body=body, application_id=application_id, **moment
    )
    await Outbox.create(topic=topic, notification_id=row.id, created_at=row.created_at)
    return row


async def enqueue(topic: str, subject_id: int, at: datetime) -> None:
    """An outbox row about something other than an inbox entry (a complaint to route to its clerks), inside
    the caller's transaction."""
    await Outbox.create(topic=topic, subject_id=subject_id, created_at=at)


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
) RETURNING "id", "topic", "notification_id", "subject_id"
"""


_CLAIM_DUE = """
UPDATE "delivery" SET "status" = 'sending', "claimed_until" = {p2}, "attempts" = "attempts" + 1,
    "updated_at" = {p1}
WHERE "id" IN (
    SELECT "id" FROM "delivery" WHERE "status" IN ('created', 'temporary-failure') AND "next_attempt_at" <= {p1}
        AND "provider_ref" IS NULL{only}
    ORDER BY "next_attempt_at", "id" LIMIT {p3}{lock}
) RETURNING "id"
"""


def _claim_due(only: str = "") -> str:
    """The statement that claims deliveries due for a try; `only`: a further condition on which."""
    return _CLAIM_DUE.replace("{only}", only)


_CLAIM_DELIVERIES = _claim_due()
# one announcement's WeChat deliveries ({p4}: the announcement)
_CLAIM_MASS = _claim_due(
    " AND \"channel\" = 'wechat'"
    ' AND "notification_id" IN (SELECT "id" FROM "notification" WHERE "announcement_id" = {p4})'
)


def _claim_sql(template: str) -> tuple[str, bool]:
    """The claim statement for this database: on PostgreSQL the rows are locked as they are picked and rows
    another worker holds are skipped (`FOR UPDATE SKIP LOCKED`); SQLite runs one writer at a time, so the
    single UPDATE is already atomic."""
    postgres = connections.get("default").capabilities.dialect == "postgres"
    if postgres:
        return template.format(p1="$1", p2="$2", p3="$3", p4="$4", lock=" FOR UPDATE SKIP LOCKED"), True
    return template.format(p1="?", p2="?", p3="?", p4="?", lock=""), False


async def claim_outbox(now: datetime, until: datetime, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` outbox rows not done and not held by another worker, now held by the caller until
    `until` (a worker that dies lets them go when that passes)."""
    sql, postgres = _claim_sql(_CLAIM_OUTBOX)
    conn = connections.get("default")
    params = [as_db(Outbox, "created_at", now), as_db(Outbox, "created_at", until), limit]
    if not postgres:
        params = [params[1], params[0], params[2]]  # SQLite's ? are positional: until comes first
    return list(await conn.execute_query_dict(sql, params))


async def claim_deliveries(now: datetime, until: datetime, limit: int) -> list[int]:
    """Up to `limit` deliveries due for a try, now `sending` and held by the caller until `until`, each
    with one more attempt counted."""
    return await _claim_deliveries(_CLAIM_DELIVERIES, now, until, limit)


async def claim_announcement_wechat(
    announcement_id: int, now: datetime, until: datetime, limit: int
) -> list[int]:
    """Up to `limit` more WeChat deliveries of one announcement due for a try, claimed as
    `claim_deliveries` claims (a mass send names up to 10 000 followers: an announcement goes in as few
    sends as can be, since WeChat counts each against a follower's monthly mass messages)."""
    return await _claim_deliveries(_CLAIM_MASS, now, until, limit, announcement_id)


async def _claim_deliveries(
    template: str, now: datetime, until: datetime, limit: int, *also: int
) -> list[int]:
    sql, postgres = _claim_sql(template)
    moment, held = as_db(Delivery, "updated_at", now), as_db(Delivery, "updated_at", until)
    # SQLite's ? are positional: the hold, the two moments, `also` ({p4}), the limit
    params = [moment, held, limit, *also] if postgres else [held, moment, moment, *also, limit]
    ids = [int(row["id"]) for row in await connections.get("default").execute_query_dict(sql, params)]
    if ids:
        await DeliveryEvent.bulk_create([DeliveryEvent(delivery_id=i, status="sending", at=now) for i in ids])
    return ids


async def wechat_pending_of_announcement(announcement_id: int) -> int:
    """WeChat deliveries of the announcement not sent yet (waiting, or held by a worker)."""
    return await Delivery.filter(
        channel="wechat",
        notification__announcement_id=announcement_id,
        status__in=("created", "temporary-failure", "sending"),
        provider_ref=None,
    ).count()


async def outbox_done(outbox_id: int, at: datetime) -> None:
    await Outbox.filter(id=outbox_id).update(done_at=at, claimed_until=None)


async def notification_by_id(notification_id: int) -> Notification | None:
    return await Notification.get_or_none(id=notification_id)


async def devices_of(account_id: int) -> list[Device]:
    return await Device.filter(account_id=account_id).order_by("id")


async def settings_of(account_id: int) -> NotificationSettings | None:
    return await NotificationSettings.get_or_none(account_id=account_id)


async def create_delivery(
    notification_id: int,
    channel: str,
    target: dict[str, Any],
    status: str,
    at: datetime,
    detail: str | None,
    *,
    due: datetime | None = None,
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
        next_attempt_at=due or at,
        created_at=at,
        updated_at=at,
        last_error=detail,
    )
    await DeliveryEvent.create(delivery_id=row.id, status=status, at=at, detail=detail)
    return row


async def delivery_with_notification(delivery_id: int) -> Delivery | None:
    return await Delivery.filter(id=delivery_id).select_related("notification").first()


async def deliveries_with_notifications(ids: list[int]) -> list[Delivery]:
    """These deliveries with their notifications, in id order (a claimed batch)."""
    return await Delivery.filter(id__in=ids).select_related("notification").order_by("id")


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


async def devices_for(account_ids: list[int]) -> dict[int, list[Device]]:
    """The devices of each of these accounts (an announcement's batch)."""
    out: dict[int, list[Device]] = {}
    for device in await Device.filter(account_id__in=account_ids).order_by("id"):
        out.setdefault(device.account_id, []).append(device)
    return out


async def settings_for(account_ids: list[int]) -> dict[int, NotificationSettings]:
    rows = await NotificationSettings.filter(account_id__in=account_ids)
    return {row.account_id: row for row in rows}


# ---- announcements ----------------------------------------------------------------------------------------


async def create_announcement(
    title: str,
    body: str,
    audience: dict[str, str],
    channels: list[str],
    send_at: datetime,
    created_by: int | None,
    at: datetime,
) -> Announcement:
    return await Announcement.create(
        title=title,
        body=body,
        audience=audience,
        channels=channels,
        send_at=send_at,
        status="scheduled",
        created_by_id=created_by,
        created_at=at,
    )


async def announcement_by_id(announcement_id: int) -> Announcement | None:
    return await Announcement.get_or_none(id=announcement_id)


async def announcements_page(status: str | None, before_id: int | None, limit: int) -> list[Announcement]:
    qs = Announcement.all()
    if status is not None:
        qs = qs.filter(status=status)
    if before_id is not None:
        qs = qs.filter(id__lt=before_id)
    return await qs.order_by("-id").limit(limit)


async def cancel_announcement(announcement_id: int, at: datetime) -> bool:
    """Withdrawn only while no worker has begun its fan-out (one UPDATE: a claim and a cancel at the same
    moment cannot both win)."""
    return bool(
        await Announcement.filter(id=announcement_id, status="scheduled").update(
            status="cancelled", cancelled_at=at
        )
    )


async def claim_announcement(now: datetime, until: datetime) -> Announcement | None:
    """One announcement due (its `send_at` passed) whose fan-out is not done and that no other worker holds,
    now held by the caller until `until` and `sending`."""
    postgres = is_postgres()
    arg = Placeholders(postgres)
    moment, held = as_db(Announcement, "send_at", now), as_db(Announcement, "send_at", until)
    lock = " FOR UPDATE SKIP LOCKED" if postgres else ""
    # the placeholders are numbered in the order they are called, as the text reads them
    set_held, set_start = arg(held), arg(moment)
    where_due, where_lapsed = arg(moment), arg(moment)
    sql = (
        f'UPDATE "announcement" SET "status" = \'sending\', "claimed_until" = {set_held}, '  # noqa: S608
        f'"started_at" = COALESCE("started_at", {set_start}) WHERE "id" IN ('
        f'SELECT "id" FROM "announcement" WHERE "status" IN (\'scheduled\', \'sending\') '
        f'AND "send_at" <= {where_due} AND ("claimed_until" IS NULL OR "claimed_until" < {where_lapsed}) '
        f'ORDER BY "send_at", "id" LIMIT 1{lock}) RETURNING "id"'
    )
    rows = await connections.get("default").execute_query_dict(sql, arg.values)
    return await Announcement.get(id=rows[0]["id"]) if rows else None


def _audience_where(audience: dict[str, str], arg: Placeholders) -> str:
    """The accounts an audience names, as a condition on account `a`. Residents have no address of record:
    a district or a community reaches the residents with a case at one of its points and the grid workers
    serving one; an item, the residents with a case of it."""
    kind = audience["kind"]
    if kind == "everyone":
        return "1 = 1"
    if kind == "role":
        return f"(',' || a.\"roles\" || ',') LIKE {arg('%,' + audience['code'] + ',%')}"
    if kind == "item":
        return (
            'EXISTS (SELECT 1 FROM "application" ap JOIN "service_item" i ON i."id" = ap."item_id" '  # noqa: S608
            f'WHERE ap."applicant_id" = a."id" AND i."code" = {arg(audience["code"])})'
        )
    if kind in ("district", "community"):
        table = "district" if kind == "district" else "community"
        code = audience["code"]
        return (
            '(EXISTS (SELECT 1 FROM "application" ap JOIN "service_point" p ON p."id" = ap."point_id" '  # noqa: S608
            f'JOIN "{table}" t ON t."id" = p."{table}_id" WHERE ap."applicant_id" = a."id" '
            f'AND t."code" = {arg(code)}) '
            'OR EXISTS (SELECT 1 FROM "account_point" ak JOIN "service_point" p ON p."id" = ak."point_id" '
            f'JOIN "{table}" t ON t."id" = p."{table}_id" WHERE ak."account_id" = a."id" '
            f'AND t."code" = {arg(code)}))'
        )
    raise ValueError(f"unknown audience {kind!r}")


async def audience_reaches_anyone(audience: dict[str, str]) -> bool:
    """Whether the audience names at least one active account now (the first found, not a count)."""
    arg = Placeholders(is_postgres())
    where = _audience_where(audience, arg)
    sql = f'SELECT 1 AS "one" FROM "account" a WHERE a."status" = \'active\' AND {where} LIMIT 1'  # noqa: S608
    return bool(await connections.get("default").execute_query_dict(sql, arg.values))


async def fan_out_batch(
    announcement: Announcement, kind: str, at: datetime, limit: int
) -> list[tuple[int, int]]:
    """The next `limit` accounts of the announcement's audience after its cursor each get their inbox copy
    (inside the caller's transaction); (notification id, account id) of each, in account order."""
    postgres = is_postgres()
    arg = Placeholders(postgres)
    head = (
        'INSERT INTO "notification" ("account_id", "kind", "title", "body", "announcement_id", "created_at") '  # noqa: S608
        f'SELECT a."id", {arg(kind)}, {arg(announcement.title)}, {arg(announcement.body)}, '
        f'{arg(announcement.id)}, {arg(as_db(Notification, "created_at", at))} FROM "account" a '
    )
    where = (
        f'WHERE a."status" = \'active\' AND a."id" > {arg(announcement.cursor)} '
        f"AND {_audience_where(announcement.audience, arg)} "
    )
    sql = head + where + f'ORDER BY a."id" LIMIT {arg(limit)} RETURNING "id", "account_id"'
    rows = await connections.get("default").execute_query_dict(sql, arg.values)
    return sorted(((int(r["id"]), int(r["account_id"])) for r in rows), key=lambda pair: pair[1])


async def advance_announcement(
    announcement_id: int, held_until: datetime, cursor: int, added: int, until: datetime
) -> bool:
    """Move the fan-out's cursor past a batch (and hold it for another `hold`), only while the caller's
    claim holds; False when another worker took it over (the caller rolls the batch back)."""
    rows = await Announcement.filter(id=announcement_id, status="sending", claimed_until=held_until).update(
        cursor=cursor, recipients=F("recipients") + added, claimed_until=until
    )
    return bool(rows)


async def finish_announcement(announcement_id: int, held_until: datetime, at: datetime) -> bool:
    return bool(
        await Announcement.filter(id=announcement_id, status="sending", claimed_until=held_until).update(
            status="sent", finished_at=at, claimed_until=None
        )
    )


# rows per INSERT: six values a row stays far below the drivers' limits (asyncpg 32 767, SQLite 32 766)
_ROWS_PER_INSERT = 1000


async def create_deliveries(rows: list[tuple[int, str, dict[str, Any], datetime]], at: datetime) -> int:
    """Many deliveries at once (notification id, channel, target, first try), each with its `created`
    event: an announcement's batch, in the caller's transaction."""
    made = 0
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        made += await _insert_deliveries(rows[start : start + _ROWS_PER_INSERT], at)
    return made


async def _insert_deliveries(rows: list[tuple[int, str, dict[str, Any], datetime]], at: datetime) -> int:
    if not rows:
        return 0
    postgres = is_postgres()
    arg = Placeholders(postgres)
    when = as_db(Delivery, "created_at", at)
    values = ", ".join(
        f"({arg(n)}, {arg(channel)}, 'created', {arg(as_db(Delivery, 'target', target))}, 0, "
        f"{arg(as_db(Delivery, 'next_attempt_at', due))}, {arg(when)}, {arg(when)})"
        for n, channel, target, due in rows
    )
    sql = (
        'INSERT INTO "delivery" ("notification_id", "channel", "status", "target", "attempts", '  # noqa: S608
        f'"next_attempt_at", "created_at", "updated_at") VALUES {values} RETURNING "id"'
    )
    conn = connections.get("default")
    ids = [int(r["id"]) for r in await conn.execute_query_dict(sql, arg.values)]
    # their `created` events in one statement too (no model objects: a batch is thousands of rows)
    events = Placeholders(postgres)
    rows_sql = ", ".join(f"({events(i)}, 'created', {events(when)})" for i in ids)
    await conn.execute_query(
        f'INSERT INTO "delivery_event" ("delivery_id", "status", "at") VALUES {rows_sql}',  # noqa: S608
        events.values,
    )
    return len(ids)


async def announcement_counts(announcement_id: int) -> tuple[int, dict[str, dict[str, int]]]:
    """How many inbox copies an announcement has, and its deliveries per channel and status."""
    copies = await Notification.filter(announcement_id=announcement_id).count()
    arg = Placeholders(is_postgres())
    sql = (
        'SELECT d."channel" AS "channel", d."status" AS "status", COUNT(*) AS "n" FROM "delivery" d '  # noqa: S608
        'JOIN "notification" n ON n."id" = d."notification_id" '
        f'WHERE n."announcement_id" = {arg(announcement_id)} GROUP BY d."channel", d."status"'
    )
    out: dict[str, dict[str, int]] = {}
    for row in await connections.get("default").execute_query_dict(sql, arg.values):
        out.setdefault(str(row["channel"]), {})[str(row["status"])] = int(row["n"])
    return copies, out


# ---- receipts and the operators' view --------------------------------------------------------------------


async def sent_awaiting_receipt(channel: str, since: datetime, after_id: int, limit: int) -> list[Delivery]:
    """Deliveries on `channel` the provider took since `since` and of which no receipt came yet, in id
    order after `after_id`."""
    return (
        await Delivery.filter(
            channel=channel, status="sent", updated_at__gte=since, id__gt=after_id, provider_ref__isnull=False
        )
        .order_by("id")
        .limit(limit)
    )


async def keep_receipt(channel: str, provider_ref: str, status: str, detail: str | None, at: datetime) -> int:
    row = await Receipt.create(
        channel=channel, provider_ref=provider_ref, status=status, detail=detail, received_at=at
    )
    return int(row.id)


async def pending_receipts(limit: int) -> list[Receipt]:
    return await Receipt.filter(applied_at__isnull=True).order_by("id").limit(limit)


async def receipt_applied(receipt_id: int, at: datetime) -> None:
    await Receipt.filter(id=receipt_id).update(applied_at=at)


async def delivery_by_ref(channel: str, provider_ref: str) -> Delivery | None:
    """The delivery the provider's message id is of; should a provider ever give one id twice, the latest
    (a receipt comes for the message just sent), never an error that would stop every receipt after it."""
    return await Delivery.filter(channel=channel, provider_ref=provider_ref).order_by("-id").first()


async def deliveries_by_ref(channel: str, provider_ref: str) -> list[Delivery]:
    """Every delivery sent as one provider message (a WeChat mass send's)."""
    return await Delivery.filter(channel=channel, provider_ref=provider_ref).order_by("id")


async def settle_delivery(
    delivery_id: int, from_status: str, status: str, at: datetime, detail: str | None
) -> bool:
    """A receipt's status on a delivery that is still `from_status` (one UPDATE: a duplicate receipt, or
    the receipt timeout at the same moment, changes nothing the second time), and its event."""
    changed = await Delivery.filter(id=delivery_id, status=from_status).update(
        status=status, updated_at=at, last_error=detail if status != "delivered" else None
    )
    if not changed:
        return False
    await DeliveryEvent.create(delivery_id=delivery_id, status=status, at=at, detail=detail)
    return True


async def unreceipted_before(before: datetime, limit: int) -> list[tuple[int, str]]:
    """Deliveries `sent` before `before` with no receipt since (id, channel): the receipt timeout's. Those the
    provider gave no id for (WeChat's subscribe notifications) expect no receipt: `sent` is their end."""
    rows = (
        await Delivery.filter(status="sent", updated_at__lt=before, provider_ref__isnull=False)
        .order_by("updated_at")
        .limit(limit)
        .values("id", "channel")
    )
    return [(int(r["id"]), str(r["channel"])) for r in rows]


def _deliveries(channel: str | None, since: datetime | None, until: datetime | None) -> QuerySet[Delivery]:
    qs = Delivery.all()
    if channel is not None:
        qs = qs.filter(channel=channel)
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    if until is not None:
        qs = qs.filter(created_at__lt=until)
    return qs


async def deliveries_page(
    status: str | None,
    channel: str | None,
    since: datetime | None,
    until: datetime | None,
    before_id: int | None,
    limit: int,
) -> list[Delivery]:
    """Deliveries for the operators, newest first, filtered by status, channel and time of creation."""
    qs = _deliveries(channel, since, until)
    if status is not None:
        qs = qs.filter(status=status)
    if before_id is not None:
        qs = qs.filter(id__lt=before_id)
    return await qs.order_by("-id").limit(limit).select_related("notification")


async def delivery_summary(
    channel: str | None, since: datetime | None, until: datetime | None
) -> dict[str, dict[str, int]]:
    """How many deliveries there are per channel and status."""
    rows = (
        await _deliveries(channel, since, until)
        .annotate(n=Count("id"))
        .group_by("channel", "status")
        .values("channel", "status", "n")
    )
    out: dict[str, dict[str, int]] = {}
    for row in rows:
        out.setdefault(str(row["channel"]), {})[str(row["status"])] = int(row["n"])
    return out


async def release_claims(moments: list[datetime], now: datetime) -> int:
    """Claims given back by a worker that stops mid-pass (each claim is known by the `claimed_until` it
    set): deliveries still `sending` become due at once as a temporary failure, outbox rows and an
    announcement claimable at once. Inside one transaction of the caller's or its own."""
    given = 0
    sending = await Delivery.filter(status="sending", claimed_until__in=moments).values_list("id", flat=True)
    if sending:
        given += await Delivery.filter(id__in=list(sending), status="sending").update(
            status="temporary-failure",
            claimed_until=None,
            next_attempt_at=now,
            updated_at=now,
            last_error="the worker stopped mid-send; tried again",
        )
        await DeliveryEvent.bulk_create(
            [
                DeliveryEvent(
                    delivery_id=i, status="temporary-failure", at=now, detail="the worker stopped mid-send"
                )
                for i in sending
            ]
        )
    given += await Outbox.filter(done_at__isnull=True, claimed_until__in=moments).update(claimed_until=None)
    given += await Announcement.filter(status="sending", claimed_until__in=moments).update(claimed_until=None)
    return int(given)
