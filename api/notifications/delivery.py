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
import contextlib
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
from models import applications as applications_db
from models import feedback as feedback_db
from models import identity as identity_db
from models import notifications as db
from models import wechat as wechat_db

log = logging.getLogger("ywt.delivery")

# WeChat: a template message's client_msg_id is de-duplicated for 10 minutes
WECHAT_DEDUP_WINDOW = timedelta(minutes=10)
MASS_DEDUP_WINDOW = timedelta(hours=24)
# WeChat's mass send names 2 to 10 000 followers (message/mass/send by openid list)
MASS_MIN, MASS_MAX = 2, 10_000
MASS_REF = "mass:"
# WeChat errcodes that say this message will never reach this person as it is
WECHAT_PERMANENT = frozenset({40003, 43004, 43101, 40037, 47003, 47001})
# a mass send WeChat will not take as it is: a text too long (45002) or an invalid openid list (40003,
# 40130: fewer than two), the month's mass-send quota used (45028), marked as spam (45009 is a rate: retried)
MASS_PERMANENT = frozenset({40003, 40130, 45002, 45028})
# what one try came to: (status, detail, provider ref), marked by `_mark`
Outcome = tuple[str, str | None, str | None]
# values over 20 characters are cut by WeChat without a word; we cut them ourselves (the inbox keeps all)
WECHAT_VALUE_MAX = 20
# a push shows the start of a long text (an announcement's); the inbox keeps all of it
PUSH_BODY_MAX = 200


@dataclass
class Holds:
    """The claims of this process's pass in flight (the `claimed_until` each was given): what stopping gives
    back when the pass cannot finish within the grace period. Cleared after each pass."""

    moments: set[datetime] = field(default_factory=set)

    def add(self, moment: datetime) -> datetime:
        self.moments.add(moment)
        return moment


@dataclass(frozen=True)
class Senders:
    """What the workers send through, and their settings."""

    push: PushGateway
    wechat: WeChatApi
    settings: NotificationsSection
    holds: Holds = field(default_factory=Holds)


@dataclass
class DeliveryReport:
    expanded: int = 0  # outbox rows expanded
    created: int = 0  # deliveries created
    tried: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0  # permanent-failure or technical-failure
    swept: int = 0  # lapsed `sending` rows taken back
    told: int = 0  # clerks told of a case or a complaint
    announced: int = 0  # inbox copies of announcements
    receipts: int = 0  # receipts applied
    timed_out: int = 0  # `sent` with no receipt in time
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def work(self) -> int:
        return self.expanded + self.tried + self.swept + self.announced + self.receipts + self.timed_out


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

# what a case arriving and a complaint routed tell the clerks (api/notifications/categories.py)
CASE_ARRIVED, COMPLAINT_ROUTED, ANNOUNCEMENT = "case_arrived", "complaint_routed", "announcement"


def plan(
    kind: str,
    settings_row: db.NotificationSettings | None,
    config: NotificationsSection,
    now: datetime,
    reach: dict[str, dict[str, Any] | None],
    allowed: frozenset[str] | None = None,
) -> list[tuple[str, dict[str, Any], datetime]]:
    """The deliveries a notification of `kind` gets for one person: (channel, target, first try) for each
    channel other than the inbox that he takes for the category (and `allowed`, an announcement's channels)
    and that reaches him (`reach`: where each channel gets to him now, None: it does not); held to the end
    of his quiet hours unless the category is urgent."""
    category = category_of(kind)
    channels = channels_for(kind, settings_row.choices if settings_row else {})
    if allowed is not None:
        channels &= allowed
    due = now
    if not category.urgent:
        due = quiet_until(now, quiet_hours_of(settings_row, config)) or now
    return [
        (channel, target, due)
        for channel in SENT_CHANNELS
        if channel in channels and (target := reach.get(channel)) is not None
    ]


def push_reach(devices: list[db.Device]) -> dict[str, Any] | None:
    if not devices:
        return None
    return {
        "registration_ids": [d.registration_id for d in devices],
        "platforms": sorted({d.platform for d in devices}),
    }


async def expand_once(senders: Senders, report: DeliveryReport, now: datetime) -> None:
    config = senders.settings
    until = senders.holds.add(now + timedelta(seconds=config.hold_seconds))
    rows = await db.claim_outbox(now, until, config.batch)
    for row in rows:
        try:
            async with in_transaction():
                notification = (
                    await db.notification_by_id(row["notification_id"]) if row["notification_id"] else None
                )
                if notification is not None:
                    report.created += await _expand(senders, notification, now)
                if row["topic"] == "application_submitted" and notification is not None:
                    report.told += await _tell_case_arrived(notification)
                elif row["topic"] == "complaint_routed" and row["subject_id"] is not None:
                    report.told += await _tell_complaint_routed(int(row["subject_id"]))
                await db.outbox_done(int(row["id"]), now)
        except Exception:
            # one row that cannot be expanded (a bug, a row it names in a state we did not foresee) must not
            # hold up the rows after it: it rolls back whole and is tried again when its hold lapses
            log.exception("outbox row %s could not be expanded", row["id"])
            continue
        report.expanded += 1


async def _expand(senders: Senders, notification: db.Notification, now: datetime) -> int:
    settings_row = await db.settings_of(notification.account_id)
    reach = {channel: await _target(senders, channel, notification) for channel in SENT_CHANNELS}
    created = 0
    for channel, target, due in plan(notification.kind, settings_row, senders.settings, now, reach):
        if await db.create_delivery(notification.id, channel, target, "created", now, None, due=due):
            created += 1
    return created


async def _tell_case_arrived(notification: db.Notification) -> int:
    """A case submitted at a point: its grid workers are told; one with no point (online): the staff of
    its department. Their inbox entries and outbox rows, in the expansion's transaction."""
    if notification.application_id is None:
        return 0
    case = await applications_db.application_with_refs_or_none(notification.application_id)
    if case is None:
        return 0
    if case.point is not None:
        clerks = await identity_db.active_grid_workers_of(case.point.id)
        where = case.point.name
    else:
        clerks = await identity_db.active_staff_of(case.department_id)
        where = case.department.name
    if clerks:
        await db.notify_each(
            clerks,
            CASE_ARRIVED,
            f"新办件：{case.item.name}"[:64],
            f"办件编号 {case.number}：{case.item.name}，已提交至{where}，请及时受理",
            application_id=case.id,
        )
    return len(clerks)


async def _tell_complaint_routed(complaint_id: int) -> int:
    """A complaint filed: the staff of its department and the grid workers of its point are told (one with
    neither is the admins', who read the whole list)."""
    complaint = await feedback_db.complaint_or_none(complaint_id)
    if complaint is None:  # gone with its account (deleted before the workers came to it)
        return 0
    clerks: list[int] = []
    if complaint.department_id is not None:
        clerks.extend(await identity_db.active_staff_of(complaint.department_id))
    if complaint.point_id is not None:
        clerks.extend(
            i for i in await identity_db.active_grid_workers_of(complaint.point_id) if i not in clerks
        )
    if clerks:
        due = complaint.due_at.astimezone(CITY_TZ).strftime("%Y-%m-%d")
        await db.notify_each(
            clerks,
            COMPLAINT_ROUTED,
            "新的咨询投诉待答复",
            f"咨询投诉编号 {complaint.id} 已转至你处，请于 {due} 前答复",
            application_id=complaint.application_id,
        )
    return len(clerks)


async def _target(senders: Senders, channel: str, notification: db.Notification) -> dict[str, Any] | None:
    """Where a channel reaches this person now; None when it does not (no device, no WeChat, no template)."""
    if channel == PUSH:
        return push_reach(await db.devices_of(notification.account_id))
    if channel == WECHAT:
        config = senders.settings
        template = config.wechat_templates.get(notification.kind)
        subscribe = None if template is not None else config.wechat_subscribe.get(notification.kind)
        if template is None and subscribe is None:
            return None
        binding = next(
            (b for b in await identity_db.bindings_of(notification.account_id) if b.channel == "wechat"), None
        )
        if binding is None or await wechat_db.unfollowed_among([binding.external_id]):
            return None  # an unfollowed account gets nothing by WeChat until he follows again
        if subscribe is None:
            return {"openid": binding.external_id}
        # a subscribe notification only where he accepted its template (and has not withdrawn it since)
        template_id = str(subscribe["template_id"])
        if binding.external_id not in await wechat_db.consented([binding.external_id], template_id):
            return None
        return {"openid": binding.external_id, "subscribe": template_id}
    return None


# ---- announcements -----------------------------------------------------------------------------------------


class _TakenOver(Exception):
    """Another worker took the announcement over (this one's hold lapsed): the batch in hand rolls back."""


async def announce_once(senders: Senders, report: DeliveryReport, now: datetime) -> None:
    """One announcement due is fanned out, a batch of its audience per transaction: each account gets its
    inbox copy and the deliveries it takes, and the announcement's cursor moves past them in the same
    transaction, so a worker that dies mid-way leaves whole batches behind it and the next one goes on
    from there without a second copy to anyone."""
    config = senders.settings
    hold = timedelta(seconds=config.hold_seconds)
    held = senders.holds.add(now + hold)
    announcement = await db.claim_announcement(now, held)
    if announcement is None:
        return
    allowed = frozenset(announcement.channels)
    started = clock.now()
    try:
        while True:
            # the pass's time moved on by what the batches took (a test's `now` may be any moment)
            moment = now + (clock.now() - started)
            until = senders.holds.add(moment + hold)
            async with in_transaction():
                pairs = await db.fan_out_batch(announcement, ANNOUNCEMENT, moment, config.fanout_batch)
                accounts = [account for _, account in pairs]
                settings_rows = await db.settings_for(accounts)
                devices = await db.devices_for(accounts) if PUSH in allowed else {}
                followers = await _following(accounts) if WECHAT in allowed else {}
                rows = [
                    (notification_id, channel, target, due)
                    for notification_id, account in pairs
                    for channel, target, due in plan(
                        ANNOUNCEMENT,
                        settings_rows.get(account),
                        config,
                        now,  # due from the pass's start: the sending step of this pass takes them
                        {
                            PUSH: push_reach(devices.get(account, [])),
                            WECHAT: {"openid": followers[account]} if account in followers else None,
                        },
                        allowed,
                    )
                ]
                report.created += await db.create_deliveries(rows, moment)
                cursor = accounts[-1] if accounts else announcement.cursor
                if not await db.advance_announcement(announcement.id, held, cursor, len(pairs), until):
                    raise _TakenOver()
                if len(pairs) < config.fanout_batch and not await db.finish_announcement(
                    announcement.id, until, moment
                ):
                    raise _TakenOver()
            held, announcement.cursor = until, cursor
            report.announced += len(pairs)
            if len(pairs) < config.fanout_batch:
                break
    except _TakenOver:
        log.warning("announcement %s was taken over by another worker", announcement.id)


async def _following(accounts: list[int]) -> dict[int, str]:
    """The openid of each of these accounts whose WeChat is bound and follows the official account (a mass
    send reaches followers only; an account that never followed, or unfollowed, gets none)."""
    openids = await identity_db.wechat_openids_of(accounts)
    following = await wechat_db.followers_among(list(openids.values()))
    return {account: openid for account, openid in openids.items() if openid in following}


# ---- 2. sweep ----------------------------------------------------------------------------------------------


async def sweep_once(report: DeliveryReport, now: datetime) -> None:
    for delivery_id in await db.lapsed_deliveries(now):
        delivery = await db.delivery_with_notification(delivery_id)
        if delivery is None or delivery.claimed_until is None:
            continue
        first = _first_try(delivery)
        if delivery.channel == WECHAT and first is not None and now - first > _dedup_window(delivery):
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


def _dedup_window(delivery: db.Delivery) -> timedelta:
    """How long WeChat sends this delivery's message once whatever we do: a template's client_msg_id for 10
    minutes, a mass send's clientmsgid for 24 hours; a subscribe notification has no such key, so a try
    whose outcome is unknown is never made again (it could reach him twice)."""
    target = delivery.target or {}
    if "subscribe" in target:
        return timedelta(0)
    return MASS_DEDUP_WINDOW if "clientmsgid" in target else WECHAT_DEDUP_WINDOW


def _first_try(delivery: db.Delivery) -> datetime | None:
    text = (delivery.target or {}).get("first_try_at")
    return datetime.fromisoformat(text) if isinstance(text, str) else None


# ---- 3. send -----------------------------------------------------------------------------------------------


async def send_once(senders: Senders, report: DeliveryReport, now: datetime) -> None:
    """Claim what is due and send it: the batch is read at once (its deliveries with their notifications,
    the devices and WeChat bindings of their people, one query each), new JPush cids are fetched in one
    call and kept with their deliveries in one transaction before any push, the sends run side by side,
    and their marks are written in one transaction after them (a worker that dies before it leaves them
    `sending`, taken back by the sweep: push with the same cid, WeChat within its 10 minutes)."""
    config = senders.settings
    held_until = senders.holds.add(now + timedelta(seconds=config.hold_seconds))
    ids = await db.claim_deliveries(now, held_until, config.batch)
    if not ids:
        return
    deliveries = await db.deliveries_with_notifications(ids)
    masses: list[db.Delivery] = []
    singles: list[db.Delivery] = []
    for delivery in deliveries:  # an announcement's WeChat deliveries go together, as mass sends
        is_mass = delivery.channel == WECHAT and delivery.notification.announcement_id is not None
        (masses if is_mass else singles).append(delivery)
    if masses:
        await _mass_sends(senders, report, masses, now, held_until)
    deliveries = singles
    if not deliveries:
        return
    accounts = sorted({d.notification.account_id for d in deliveries})
    pushes = [d for d in deliveries if d.channel == PUSH]
    devices = await db.devices_for(accounts) if pushes else {}
    wechats = (
        await identity_db.wechat_openids_of(accounts) if any(d.channel == WECHAT for d in deliveries) else {}
    )
    unfollowed = await wechat_db.unfollowed_among(list(wechats.values()))
    await _first_tries(senders, pushes, deliveries, devices)
    outcomes = await asyncio.gather(
        *(
            _send(senders, d, devices.get(d.notification.account_id, []), wechats, unfollowed)
            for d in deliveries
        )
    )
    report.tried += len(deliveries)
    async with in_transaction():
        for delivery, outcome in zip(deliveries, outcomes, strict=True):
            await _mark(senders, report, delivery, outcome, held_until)


async def _first_tries(
    senders: Senders,
    pushes: list[db.Delivery],
    deliveries: list[db.Delivery],
    devices: dict[int, list[db.Device]],
) -> None:
    """The key of each push for good, and the time of each first try, kept before anything is sent so
    that every retry reuses them (a push that goes nowhere any more needs no cid)."""
    moment = clock.now().isoformat()
    fresh = [
        d
        for d in pushes
        if "cid" not in d.target and _still_theirs(d, devices.get(d.notification.account_id, []))
    ]
    cids: list[str] = []
    if fresh:
        try:
            cids = await senders.push.new_cids(len(fresh))
        except PushRetryable as exc:
            log.info("push: no cids now", extra={"fields": {"error": str(exc)}})
    changed: dict[int, dict[str, Any]] = {}
    for delivery, cid in zip(fresh, cids, strict=False):
        delivery.target = {**delivery.target, "cid": cid, "first_try_at": moment}
        changed[delivery.id] = delivery.target
    for delivery in deliveries:
        if delivery.channel == WECHAT and "first_try_at" not in delivery.target:
            delivery.target = {**delivery.target, "first_try_at": moment}
            changed[delivery.id] = delivery.target
    if changed:
        async with in_transaction():
            for delivery_id, target in changed.items():
                await db.set_target(delivery_id, target)


def _still_theirs(delivery: db.Delivery, devices: list[db.Device]) -> bool:
    current = {d.registration_id for d in devices}
    return any(r in current for r in delivery.target["registration_ids"])


async def _send(
    senders: Senders,
    delivery: db.Delivery,
    devices: list[db.Device],
    wechats: dict[int, str],
    unfollowed: set[str],
) -> Outcome:
    """One try; its outcome (status, detail, provider ref), marked by the caller."""
    notification = delivery.notification
    ref: str | None
    try:
        if delivery.channel == PUSH:
            ref = await _push(senders, delivery, notification, devices)
        else:
            openid = wechats.get(notification.account_id)
            if openid is not None and openid in unfollowed:
                raise NoLongerThere("he no longer follows the official account")
            ref = await _wechat(senders, delivery, notification, openid)
        return ("sent", None, ref)
    except NoLongerThere as exc:
        return ("permanent-failure", str(exc), None)
    except PushRejected as exc:
        if exc.gone:
            removed = await db.remove_devices(exc.gone)
            log.info("push: devices gone", extra={"fields": {"delivery_id": delivery.id, "removed": removed}})
        return ("permanent-failure", str(exc)[:200], None)
    except PushRetryable as exc:
        return ("retry", str(exc)[:200], None)
    except Exception as exc:
        return _failed(exc, WECHAT_PERMANENT, f"delivery {delivery.id}")


def _failed(exc: Exception, permanent: frozenset[int], what: str) -> Outcome:
    """A provider call's failure as an outcome: a WeChat errcode in `permanent` for good, another retried;
    a timeout or a broken answer unknown (it may have gone: `_mark` decides); anything else is a bug, logged
    and retried (it must not stop the loop, nor retry for ever: the horizon bounds it)."""
    if isinstance(exc, WeChatError):
        kind = "permanent-failure" if exc.errcode in permanent else "retry"
        return (kind, f"WeChat errcode {exc.errcode}", None)
    if isinstance(exc, UpstreamTimeout):
        return ("unknown", "timed out", None)
    if isinstance(exc, UpstreamError):
        return ("unknown", str(exc.detail)[:200], None)
    log.error("%s failed", what, exc_info=exc)
    return ("retry", "internal error", None)


async def _mark(
    senders: Senders,
    report: DeliveryReport,
    delivery: db.Delivery,
    outcome: Outcome,
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
            if delivery.channel == WECHAT and now - first > _dedup_window(delivery)
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
            and next_at - first > _dedup_window(delivery)
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


async def _push(
    senders: Senders, delivery: db.Delivery, notification: db.Notification, devices: list[db.Device]
) -> str:
    target = dict(delivery.target)
    # only devices that are still this person's: a phone that moved to another account gets nothing of his
    current = {d.registration_id for d in devices}
    target["registration_ids"] = [r for r in target["registration_ids"] if r in current]
    if not target["registration_ids"]:
        raise NoLongerThere("no device of this account any more")
    if "cid" not in target:
        raise PushRetryable("JPush gave no cid for this try")  # kept before any push: see _first_tries
    message = PushMessage(
        registration_ids=tuple(target["registration_ids"]),
        platforms=tuple(target["platforms"]),
        title=notification.title,
        body=notification.body[:PUSH_BODY_MAX],
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


async def _wechat(
    senders: Senders, delivery: db.Delivery, notification: db.Notification, bound: str | None
) -> str | None:
    openid = delivery.target["openid"]
    if openid != bound:
        raise NoLongerThere("this WeChat is no longer bound to the account")
    url = senders.settings.wechat_url.replace("{id}", str(notification.id)) or None
    if "subscribe" in delivery.target:
        # WeChat answers a subscribe notification with no message id and sends no receipt we could match:
        # `sent` is where it ends (as Notify's messages with no receipt); 43101 (consent gone) is permanent
        config = senders.settings.wechat_subscribe.get(notification.kind, {})
        await senders.wechat.send_subscribe(
            openid,
            str(delivery.target["subscribe"]),
            template_data(dict(config.get("fields", {})), notification),
            url,
        )
        return None
    template = senders.settings.wechat_templates[notification.kind]
    return await senders.wechat.send_template(
        openid,
        str(template["template_id"]),
        template_data(dict(template.get("fields", {})), notification),
        url,
        client_msg_id=f"ywt-d{delivery.id}",
    )


# ---- announcements to followers: WeChat mass sends ------------------------------------------------------


async def _mass_sends(
    senders: Senders, report: DeliveryReport, claimed: list[db.Delivery], now: datetime, held_until: datetime
) -> None:
    """An announcement's WeChat deliveries go as mass sends (群发) of up to 10 000 followers each: those of
    the claimed batch, with every other one of that announcement due now claimed to them. Each group's
    clientmsgid is kept on its deliveries before anything is sent, so a retry (a worker died, WeChat
    timed out) sends the same clientmsgid and WeChat, within 24 hours, answers the first job's msg_id
    instead of sending twice. One follower alone cannot be mass-sent to (WeChat wants two): he waits while
    others of the announcement are still on their way, and is given up once none is."""
    by_announcement: dict[int, list[db.Delivery]] = {}
    for delivery in claimed:
        by_announcement.setdefault(delivery.notification.announcement_id or 0, []).append(delivery)
    for announcement_id, group in by_announcement.items():
        more = await db.claim_announcement_wechat(
            announcement_id, now, held_until, max(0, MASS_MAX - len(group))
        )
        if more:
            group += await db.deliveries_with_notifications(more)
        report.tried += len(group)
        group = await _still_following(senders, report, group, held_until)
        for batch in await _mass_batches(announcement_id, group):
            outcome = await _mass_send(senders, batch)
            async with in_transaction():
                for delivery in batch:
                    await _mark(senders, report, delivery, outcome, held_until)


async def _still_following(
    senders: Senders, report: DeliveryReport, group: list[db.Delivery], held_until: datetime
) -> list[db.Delivery]:
    """The deliveries whose openid is still bound to their account and follows the official account; the
    others (he unbound, unfollowed, his WeChat went to another account since the fan-out) are marked
    `permanent-failure` and sent nothing."""
    following = await _following(sorted({d.notification.account_id for d in group}))
    kept: list[db.Delivery] = []
    gone: list[db.Delivery] = []
    for delivery in group:
        still = following.get(delivery.notification.account_id) == delivery.target.get("openid")
        (kept if still else gone).append(delivery)
    if gone:
        outcome = (
            "permanent-failure",
            "this WeChat no longer follows the official account or is unbound",
            None,
        )
        async with in_transaction():
            for delivery in gone:
                await _mark(senders, report, delivery, outcome, held_until)
    return kept


async def _mass_batches(announcement_id: int, group: list[db.Delivery]) -> list[list[db.Delivery]]:
    """The group in sends: deliveries already tried keep their clientmsgid's send; the others are cut in
    sends of at most `MASS_MAX`, each clientmsgid written to its deliveries (one transaction) before any
    send. A lone one left over takes a companion from the send before it."""
    kept: dict[str, list[db.Delivery]] = {}
    fresh: list[db.Delivery] = []
    for delivery in group:
        clientmsgid = (delivery.target or {}).get("clientmsgid")
        if isinstance(clientmsgid, str):
            kept.setdefault(clientmsgid, []).append(delivery)
        else:
            fresh.append(delivery)
    cuts = [fresh[i : i + MASS_MAX] for i in range(0, len(fresh), MASS_MAX)]
    if len(cuts) > 1 and len(cuts[-1]) < MASS_MIN:
        cuts[-1].insert(0, cuts[-2].pop())
    moment = clock.now().isoformat()
    async with in_transaction():
        for cut in cuts:
            clientmsgid = f"ywt-a{announcement_id}-d{cut[0].id}"
            for delivery in cut:
                delivery.target = {**delivery.target, "clientmsgid": clientmsgid, "first_try_at": moment}
                await db.set_target(delivery.id, delivery.target)
            kept.setdefault(clientmsgid, []).extend(cut)
    return list(kept.values())


async def _mass_send(senders: Senders, batch: list[db.Delivery]) -> Outcome:
    """One mass send's outcome, the same for every delivery in it (marked by the caller)."""
    notification = batch[0].notification
    openids = [str(d.target["openid"]) for d in batch]
    if len(set(openids)) < MASS_MIN:
        if await db.wechat_pending_of_announcement(notification.announcement_id or 0) > len(batch):
            return ("retry", "waiting for another follower of the announcement (a mass send names two)", None)
        return ("permanent-failure", "WeChat mass sends need at least two followers; only one is left", None)
    try:
        msg_id = await senders.wechat.mass_send_text(
            openids, mass_text(notification.title, notification.body), str(batch[0].target["clientmsgid"])
        )
        return ("sent", None, MASS_REF + msg_id)
    except Exception as exc:
        return _failed(exc, MASS_PERMANENT, f"mass send of announcement {notification.announcement_id}")


def mass_text(title: str, body: str) -> str:
    """An announcement as one mass text: its title in 【】, then its body."""
    return f"【{title}】\n{body}"


# ---- 4. receipts and their timeout ----------------------------------------------------------------------

# the channels whose provider tells us what became of a message: JPush's report API, and WeChat's
# TEMPLATESENDJOBFINISH event at the official account's callback (api/wechat)
RECEIPTED = frozenset({PUSH, WECHAT})
RECEIPT_STATUSES = frozenset({"delivered", "permanent-failure", "temporary-failure"})
# a receipt for a message we have not marked yet (it overtook our write) is tried again this long
RECEIPT_PATIENCE = timedelta(days=1)


async def apply_receipt(
    channel: str, provider_ref: str, status: str, detail: str | None, at: datetime
) -> str:
    """A provider's receipt, kept as it came and applied as GOV.UK Notify applies one: to a delivery that
    is `sent` (or was given up for want of one) it sets `status`; a second receipt for the same message
    changes nothing; one for a message not marked yet waits for a later pass. "applied", "duplicate" or
    "pending"."""
    if status not in RECEIPT_STATUSES:
        raise ValueError(f"not a receipt status: {status!r}")
    async with in_transaction():
        receipt_id = await db.keep_receipt(channel, provider_ref, status, detail, at)
        outcome = await _apply(channel, provider_ref, status, detail, at)
        if outcome != "pending":
            await db.receipt_applied(receipt_id, at)
    return outcome


async def _apply(channel: str, provider_ref: str, status: str, detail: str | None, at: datetime) -> str:
    if channel == WECHAT and provider_ref.startswith(MASS_REF):
        # one job's outcome for every follower it named (WeChat's MASSSENDJOBFINISH counts, it names no one)
        outcomes = [
            await _settle(delivery, status, detail, at)
            for delivery in await db.deliveries_by_ref(channel, provider_ref)
        ]
        if not outcomes:
            return "pending"
        return "applied" if "applied" in outcomes else "duplicate"
    delivery = await db.delivery_by_ref(channel, provider_ref)
    if delivery is None:
        return "pending"
    return await _settle(delivery, status, detail, at)


async def _settle(delivery: db.Delivery, status: str, detail: str | None, at: datetime) -> str:
    # a delivery given up with no receipt (temporary-failure, the provider's id kept) takes a late one
    settles = delivery.status == "sent" or (delivery.status == "temporary-failure" and status == "delivered")
    if settles and await db.settle_delivery(delivery.id, delivery.status, status, at, detail):
        return "applied"
    return "duplicate"


async def receipts_once(senders: Senders, report: DeliveryReport, now: datetime) -> None:
    """Receipts that came early, applied now that their delivery is marked; JPush asked what became of the
    pushes it took (the report API counts devices per message: one or more received is `delivered`)."""
    for receipt in await db.pending_receipts(senders.settings.batch):
        if now - receipt.received_at > RECEIPT_PATIENCE:
            await db.receipt_applied(receipt.id, now)  # no delivery of ours ever had this message id
            continue
        async with in_transaction():
            outcome = await _apply(receipt.channel, receipt.provider_ref, receipt.status, receipt.detail, now)
            if outcome != "pending":
                await db.receipt_applied(receipt.id, now)
                report.receipts += outcome == "applied"
    since = now - timedelta(seconds=senders.settings.receipt_window)
    after = 0
    while True:
        waiting = await db.sent_awaiting_receipt(PUSH, since, after, 100)
        if not waiting:
            break
        after = waiting[-1].id
        try:
            counts = await senders.push.received([str(d.provider_ref) for d in waiting])
        except PushRetryable as exc:
            log.info("push receipts: JPush cannot be asked now", extra={"fields": {"error": str(exc)}})
            break
        for delivery in waiting:
            if counts.get(str(delivery.provider_ref), 0) > 0:
                outcome = await apply_receipt(PUSH, str(delivery.provider_ref), "delivered", None, now)
                report.receipts += outcome == "applied"
        if len(waiting) < 100:
            break


async def timeout_once(senders: Senders, report: DeliveryReport, now: datetime) -> None:
    """A delivery `sent` on a channel with receipts that got none within `receipt_timeout` is given up:
    temporary-failure (Notify's timeout-sending-notifications), never sent again (the provider took it)."""
    before = now - timedelta(seconds=senders.settings.receipt_timeout)
    for delivery_id, channel in await db.unreceipted_before(before, senders.settings.batch):
        if channel in RECEIPTED and await db.settle_delivery(
            delivery_id, "sent", "temporary-failure", now, "no receipt from the provider in time"
        ):
            report.timed_out += 1


# ---- the loop ----------------------------------------------------------------------------------------------


async def deliver_once(
    senders: Senders, now: datetime | None = None, *, receipts: bool = True
) -> DeliveryReport:
    """One pass: expand the outbox, fan out an announcement due, take back lapsed tries, send what is due;
    with `receipts`, apply the providers' receipts and time out what got none."""
    report = DeliveryReport()
    moment = now or clock.now()
    await expand_once(senders, report, moment)
    await announce_once(senders, report, moment)
    await sweep_once(report, moment)
    await send_once(senders, report, moment)
    if receipts:
        await receipts_once(senders, report, moment)
        await timeout_once(senders, report, moment)
    senders.holds.moments.clear()  # everything claimed was marked, done or left by its own rules
    return report


async def release(senders: Senders) -> int:
    """Give back what the pass in flight holds (it was cancelled at the end of the grace period): its
    deliveries `sending` become due at once (push goes again with the same cid, WeChat within its 10
    minutes), its outbox rows and announcement claimable by another worker at once. How many rows."""
    moments = sorted(senders.holds.moments)
    if not moments:
        return 0
    # forgotten only once given back: a release cut short itself (the server's shutdown cancelling the loop)
    # leaves them for the next call
    given = await db.release_claims(moments, clock.now())
    senders.holds.moments.difference_update(moments)
    return given


async def _give_back_after_failure(senders: Senders) -> None:
    """A pass that failed (the database or Redis went away, a write refused) gives back what it held at once
    rather than leaving it `sending` until the claims lapse; if that fails too, the claims lapse
    (`hold_seconds`) and the sweep takes them back."""
    try:
        given = await release(senders)
    except Exception as exc:  # noqa: BLE001 — the lapse is the fallback, logged
        log.warning("claims of a failed pass not given back", extra={"fields": {"error": str(exc)}})
        return
    if given:
        log.info("claims of a failed pass given back", extra={"fields": {"released": given}})


async def _cut_short(senders: Senders, one_pass: asyncio.Future[DeliveryReport]) -> int:
    """Cancel the pass in flight, wait for it to unwind, give back what it held; how many rows."""
    one_pass.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await one_pass
    return await release(senders)


async def deliver_forever(senders: Senders, stop: asyncio.Event, *, first_after: float = 0.0) -> None:
    """Passes until `stop` is set: the next at once while there was work, else after `interval` seconds. A
    failing pass (database or Redis down) is logged and the loop goes on. Once `stop` is set, the pass in
    flight has `stop_grace` seconds to finish; then it is cancelled and what it held is given back."""
    interval = senders.settings.interval
    log.info("delivery loop started", extra={"fields": {"interval": interval}})
    if await stopped_within(stop, first_after):
        log.info("delivery loop stopped")
        return
    loop = asyncio.get_running_loop()
    last_receipts = -senders.settings.receipt_poll
    while not stop.is_set():
        work = 0
        receipts = loop.time() - last_receipts >= senders.settings.receipt_poll
        if receipts:
            last_receipts = loop.time()
        one_pass = asyncio.ensure_future(deliver_once(senders, receipts=receipts))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({one_pass, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not one_pass.done():
                # asked to stop mid-pass: it may finish within the grace period
                await asyncio.wait({one_pass}, timeout=senders.settings.stop_grace)
            if not one_pass.done():
                given = await _cut_short(senders, one_pass)
                log.warning("delivery pass cut short by the stop", extra={"fields": {"released": given}})
                break
            report = one_pass.result()
            work = report.work
            if work:
                fields = {
                    "expanded": report.expanded,
                    "announced": report.announced,
                    "receipts": report.receipts,
                    "timed_out": report.timed_out,
                    **report.statuses,
                }
                log.info("delivery pass", extra={"fields": fields})
        except asyncio.CancelledError:
            # cancelled from outside (the server's shutdown cancels its tasks): what the pass held goes back
            given = await _cut_short(senders, one_pass)
            log.warning("delivery loop cancelled mid-pass", extra={"fields": {"released": given}})
            raise
        except Exception:
            log.exception("delivery pass failed")
            await _give_back_after_failure(senders)
        finally:
            stopping.cancel()
        if not work and await stopped_within(stop, interval):
            break
    log.info("delivery loop stopped")
