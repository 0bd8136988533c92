"""The delivery workers: what the outbox holds goes out by app push and WeChat, and every try is marked.

A pass (`deliver_once`) does three things, each on rows the worker claims for `hold_seconds` so that any
number of workers (server processes in embedded mode, `python -m api.worker` processes in production) share
the work without doing any of it twice (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: one writer):

1. **expand** — each outbox row becomes one delivery per channel the person takes for that category
   (their choices, their devices and WeChat binding, read now, not in the request), in one transaction with
   marking the row done; a row expanded again after a crash finds its deliveries there and adds none;
2. **sweep** — a delivery left `sending` by a worker whose hold lapsed (it died mid-try) is tried again:
   at once for push (the same JPush `cid`: JPush sends nothing twice), for WeChat only within the 10 minutes
   its `client_msg_id` de-duplicates, else `technical-failure` (we cannot know whether it went);
3. **send** — deliveries due are tried: `sent` when the provider takes it (its message id kept),
   `temporary-failure` and a next try (`api/notifications/retry.py`) when the failure may pass,
   `permanent-failure` when it cannot (an uninstalled app: the device is removed; an unfollowed WeChat),
   `technical-failure` once the retry horizon has passed. Each status is an event with its time.

Quiet hours hold push and WeChat (never the inbox, never an urgent category) until they end."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

from api.kit import clock
from api.kit.clock import CITY_TZ
from api.kit.config import NotificationsSection
from api.kit.db import in_transaction
from api.kit.errors import UpstreamError, UpstreamTimeout
from api.kit.later import stopped_within
from api.notifications.categories import PUSH, SENT_CHANNELS, WECHAT, category_of, channels_for
from api.notifications.retry import next_try
from integrations.push import PushGateway, PushMessage, PushRejected, PushRetryable
from integrations.wechat import WeChatApi
from integrations.wechat.base import WeChatError
from models import identity as identity_db
from models import notifications as db

log = logging.getLogger("ywt.delivery")

# WeChat: a template message's client_msg_id is de-duplicated for 10 minutes
WECHAT_DEDUP_WINDOW = timedelta(minutes=10)
# WeChat errcodes that say this message will never reach this person as it is
WECHAT_PERMANENT = frozenset({40003, 43004, 43101, 40037, 47003, 47001})
# values over 20 characters are cut by WeChat without a word; we cut them ourselves (the inbox keeps all)
WECHAT_VALUE_MAX = 20


@dataclass(frozen=True)
class Senders:
    """What the workers send through, and their settings."""

    push: PushGateway
    wechat: WeChatApi
    settings: NotificationsSection


@dataclass
class DeliveryReport:
    expanded: int = 0  # outbox rows expanded
    created: int = 0  # deliveries created
    tried: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0  # permanent-failure or technical-failure
    swept: int = 0  # lapsed `sending` rows taken back
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def work(self) -> int:
        return self.expanded + self.tried + self.swept


# ---- quiet hours ------------------------------------------------------------------------------------------


def minutes_of(text: str) -> int:
    """ "HH:MM" as minutes after midnight."""
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def quiet_until(now: datetime, quiet: tuple[int, int] | None) -> datetime | None:
    """When the quiet hours `quiet` (start, end: minutes after midnight, city time; end before start: over
    midnight) that `now` falls in end; None when `now` is outside them or there are none."""
    if quiet is None or quiet[0] == quiet[1]:
        return None
    start, end = quiet
    local = now.astimezone(CITY_TZ)
    minute = local.hour * 60 + local.minute
    inside = start <= minute < end if start < end else (minute >= start or minute < end)
    if not inside:
        return None
    day = local.date() if (start < end or minute < end) else local.date() + timedelta(days=1)
    ends = datetime.combine(day, time(end // 60, end % 60), CITY_TZ)
    return ends


def quiet_hours_of(
    settings_row: db.NotificationSettings | None, config: NotificationsSection
) -> tuple[int, int] | None:
    """An account's quiet hours (start, end in minutes after midnight), None when it has none: what it
    chose, or the configured default when it chose nothing (a start equal to its end means none)."""
    if settings_row is None or settings_row.quiet_start is None or settings_row.quiet_end is None:
        quiet = (minutes_of(config.quiet_start), minutes_of(config.quiet_end))
    else:
        quiet = (settings_row.quiet_start, settings_row.quiet_end)
    return None if quiet[0] == quiet[1] else quiet


# ---- 1. expand ---------------------------------------------------------------------------------------------


async def expand_once(senders: Senders, report: DeliveryReport, now: datetime) -> None:
    config = senders.settings
    rows = await db.claim_outbox(now, now + timedelta(seconds=config.hold_seconds), config.batch)
    for row in rows:
        async with in_transaction():
            notification = (
                await db.notification_by_id(row["notification_id"]) if row["notification_id"] else None
            )
            if notification is not None:
                report.created += await _expand(senders, notification, now)
            await db.outbox_done(int(row["id"]), now)
        report.expanded += 1


async def _expand(senders: Senders, notification: db.Notification, now: datetime) -> int:
    config = senders.settings
    category = category_of(notification.kind)
    settings_row = await db.settings_of(notification.account_id)
    channels = channels_for(notification.kind, settings_row.choices if settings_row else {})
    due = now
    if not category.urgent:
        due = quiet_until(now, quiet_hours_of(settings_row, config)) or now
    created = 0
    for channel in SENT_CHANNELS:
        if channel not in channels:
            continue
        target = await _target(senders, channel, notification)
        if target is None:
            continue
        row = await db.create_delivery(notification.id, channel, target, "created", now, None)
        if row is not None:
            if due > now:
                await db.hold_delivery(row.id, due)
            created += 1
    return created


async def _target(senders: Senders, channel: str, notification: db.Notification) -> dict[str, Any] | None:
    """Where a channel reaches this person now; None when it does not (no device, no WeChat, no template)."""
    if channel == PUSH:
        devices = await db.devices_of(notification.account_id)
        if not devices:
            return None
        return {
            "registration_ids": [d.registration_id for d in devices],
            "platforms": sorted({d.platform for d in devices}),
        }
    if channel == WECHAT:
        if notification.kind not in senders.settings.wechat_templates:
            return None
        binding = next(
            (b for b in await identity_db.bindings_of(notification.account_id) if b.channel == "wechat"), None
        )
        if binding is None:
            return None
        return {"openid": binding.external_id}
    return None


# ---- 2. sweep ----------------------------------------------------------------------------------------------


async def sweep_once(report: DeliveryReport, now: datetime) -> None:
    for delivery_id in await db.lapsed_deliveries(now):
        delivery = await db.delivery_with_notification(delivery_id)
        if delivery is None or delivery.claimed_until is None:
            continue
        first = _first_try(delivery)
        if delivery.channel == WECHAT and first is not None and now - first > WECHAT_DEDUP_WINDOW:
            status, detail, at = (
                "technical-failure",
                "a worker stopped mid-send; whether it went is unknown",
                None,
            )
        else:
            status, detail, at = "temporary-failure", "a worker stopped mid-send; tried again", now
        if await db.mark_delivery(
            delivery_id, status, now, held_until=delivery.claimed_until, detail=detail, next_attempt_at=at
        ):
            report.swept += 1


def _first_try(delivery: db.Delivery) -> datetime | None:
    text = (delivery.target or {}).get("first_try_at")
    return datetime.fromisoformat(text) if isinstance(text, str) else None


# ---- 3. send -----------------------------------------------------------------------------------------------


async def send_once(senders: Senders, report: DeliveryReport, now: datetime) -> None:
    config = senders.settings
    held_until = now + timedelta(seconds=config.hold_seconds)
    ids = await db.claim_deliveries(now, held_until, config.batch)
    await asyncio.gather(*(_send(senders, report, i, held_until) for i in ids))


async def _send(senders: Senders, report: DeliveryReport, delivery_id: int, held_until: datetime) -> None:
    delivery = await db.delivery_with_notification(delivery_id)
    if delivery is None:
        return
    report.tried += 1
    notification = delivery.notification
    outcome: tuple[str, str | None, str | None]  # status, detail, provider ref
    try:
        if delivery.channel == PUSH:
            ref = await _push(senders, delivery, notification)
        else:
            ref = await _wechat(senders, delivery, notification)
        outcome = ("sent", None, ref)
    except NoLongerThere as exc:
        outcome = ("permanent-failure", str(exc), None)
    except PushRejected as exc:
        if exc.gone:
            removed = await db.remove_devices(exc.gone)
            log.info("push: devices gone", extra={"fields": {"delivery_id": delivery.id, "removed": removed}})
        outcome = ("permanent-failure", str(exc)[:200], None)
    except PushRetryable as exc:
        outcome = ("retry", str(exc)[:200], None)
    except WeChatError as exc:
        kind = "permanent-failure" if exc.errcode in WECHAT_PERMANENT else "retry"
        outcome = (kind, f"WeChat errcode {exc.errcode}", None)
    except UpstreamTimeout:
        outcome = ("unknown", "timed out", None)
    except UpstreamError as exc:
        outcome = ("unknown", str(exc.detail)[:200], None)
    except Exception:  # a bug must not stop the loop, nor retry for ever: the horizon bounds it
        log.exception("delivery %s failed", delivery.id)
        outcome = ("retry", "internal error", None)
    await _mark(senders, report, delivery, outcome, held_until)


async def _mark(
    senders: Senders,
    report: DeliveryReport,
    delivery: db.Delivery,
    outcome: tuple[str, str | None, str | None],
    held_until: datetime,
) -> None:
    status, detail, ref = outcome
    now = clock.now()
    next_at: datetime | None = None
    first = _first_try(delivery) or now
    uncertain = status == "unknown"
    if uncertain:
        # the provider may have it: push again with the same cid (JPush sends it once); WeChat only while
        # its client_msg_id still de-duplicates
        status = (
            "technical-failure"
            if delivery.channel == WECHAT and now - first > WECHAT_DEDUP_WINDOW
            else "retry"
        )
    if status == "retry":
        config = senders.settings
        next_at = next_try(
            delivery.attempts,
            now,
            # the horizon runs from the first try, not from creation: quiet hours may have held it for hours
            first,
            first=config.retry_first,
            longest=config.retry_max,
            horizon=config.retry_horizon,
        )
        if (
            uncertain
            and delivery.channel == WECHAT
            and next_at is not None
            and next_at - first > WECHAT_DEDUP_WINDOW
        ):
            next_at = None  # the next try would come after WeChat stopped de-duplicating: it could go twice
        status = "temporary-failure" if next_at is not None else "technical-failure"
    marked = await db.mark_delivery(
        delivery.id,
        status,
        now,
        held_until=held_until,
        detail=detail,
        provider_ref=ref,
        next_attempt_at=next_at,
    )
    if not marked:
        log.warning("delivery %s was taken over before its try was marked", delivery.id)
        return
    report.statuses[status] = report.statuses.get(status, 0) + 1
    if status == "sent":
        report.sent += 1
    elif status == "temporary-failure":
        report.retrying += 1
    else:
        report.failed += 1


class NoLongerThere(Exception):
    """The device or WeChat binding the delivery was made for is no longer the person's (logged out,
    moved to another account, unbound, account deleted): it goes nowhere else."""


async def _push(senders: Senders, delivery: db.Delivery, notification: db.Notification) -> str:
    target = dict(delivery.target)
    # only devices that are still this person's: a phone that moved to another account gets nothing of his
    current = {d.registration_id for d in await db.devices_of(notification.account_id)}
    target["registration_ids"] = [r for r in target["registration_ids"] if r in current]
    if not target["registration_ids"]:
        raise NoLongerThere("no device of this account any more")
    if "cid" not in target:
        # the key of this delivery for good: kept before the first push, so every retry reuses it
        target["cid"] = await senders.push.new_cid()
        target["first_try_at"] = clock.now().isoformat()
        await db.set_target(delivery.id, target)
    message = PushMessage(
        registration_ids=tuple(target["registration_ids"]),
        platforms=tuple(target["platforms"]),
        title=notification.title,
        body=notification.body,
        extras={"notification_id": str(notification.id)}
        | ({"application_id": str(notification.application_id)} if notification.application_id else {}),
        service_notice=category_of(notification.kind).service_notice,
    )
    return await senders.push.push(message, target["cid"])


def template_data(fields: dict[str, str], notification: db.Notification) -> dict[str, str]:
    """A template's keys filled from the notification, each value cut to WeChat's 20 characters."""
    number = ""
    if notification.application_id is not None and notification.body.startswith("办件编号 "):
        # a case's notifications begin "办件编号 <number>：" (api/applications/service.py `_record`)
        number = notification.body.split("：", 1)[0].removeprefix("办件编号 ").strip()
    ours = {
        "title": notification.title,
        "body": notification.body,
        "number": number,
        "time": notification.created_at.astimezone(CITY_TZ).strftime("%Y-%m-%d %H:%M"),
    }
    return {key: ours.get(source, "")[:WECHAT_VALUE_MAX] for key, source in fields.items()}


async def _wechat(senders: Senders, delivery: db.Delivery, notification: db.Notification) -> str:
    template = senders.settings.wechat_templates[notification.kind]
    target = dict(delivery.target)
    bound = {
        b.external_id for b in await identity_db.bindings_of(notification.account_id) if b.channel == "wechat"
    }
    if target["openid"] not in bound:
        raise NoLongerThere("this WeChat is no longer bound to the account")
    if "first_try_at" not in target:
        target["first_try_at"] = clock.now().isoformat()
        await db.set_target(delivery.id, target)
    url = senders.settings.wechat_url.replace("{id}", str(notification.id)) or None
    return await senders.wechat.send_template(
        target["openid"],
        str(template["template_id"]),
        template_data(dict(template.get("fields", {})), notification),
        url,
        client_msg_id=f"ywt-d{delivery.id}",
    )


# ---- the loop ----------------------------------------------------------------------------------------------


async def deliver_once(senders: Senders, now: datetime | None = None) -> DeliveryReport:
    """One pass: expand the outbox, take back lapsed tries, send what is due."""
    report = DeliveryReport()
    moment = now or clock.now()
    await expand_once(senders, report, moment)
    await sweep_once(report, moment)
    await send_once(senders, report, moment)
    return report


async def deliver_forever(senders: Senders, stop: asyncio.Event, *, first_after: float = 0.0) -> None:
    """Passes until `stop` is set: the next at once while there was work, else after `interval` seconds. A
    failing pass (database or Redis down) is logged and the loop goes on."""
    interval = senders.settings.interval
    log.info("delivery loop started", extra={"fields": {"interval": interval}})
    if await stopped_within(stop, first_after):
        return
    while not stop.is_set():
        work = 0
        try:
            report = await deliver_once(senders)
            work = report.work
            if work:
                log.info("delivery pass", extra={"fields": {"expanded": report.expanded, **report.statuses}})
        except Exception:
            log.exception("delivery pass failed")
        if not work and await stopped_within(stop, interval):
            break
    log.info("delivery loop stopped")
