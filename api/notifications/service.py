"""The signed-in account's inbox (newest first, read marks that keep the time of the first read), each
message's status per channel, its devices for app push and its choices of channels and quiet hours."""

from __future__ import annotations

import re
from datetime import datetime

from api.kit import clock
from api.kit.auth import Principal
from api.kit.config import NotificationsSection
from api.kit.http import decode_id_cursor, page
from api.kit.ids import MAX_ID64
from api.notifications.categories import CATEGORIES, CHANNELS, INBOX, channels_for
from api.notifications.delivery import MASS_REF, apply_receipt, minutes_of, quiet_hours_of
from api.notifications.errors import DeviceNotFound, NotificationNotFound
from api.notifications.schemas import (
    CategoryPreference,
    ChannelStatus,
    DeviceIn,
    DeviceOut,
    NotificationDetail,
    NotificationList,
    NotificationOut,
    PreferencesIn,
    PreferencesOut,
    QuietHours,
    StatusChange,
)
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
    hidden = await _hidden_kinds(principal.account_id)
    rows, next_cursor = page(
        await db.inbox_page(principal.account_id, unread, before, limit + 1, hidden_kinds=hidden),
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


async def _hidden_kinds(account_id: int) -> list[str]:
    """The categories whose inbox entries the account turned off (never a mandatory one)."""
    row = await db.settings_of(account_id)
    if row is None:
        return []
    return sorted(kind for kind in row.choices if INBOX not in channels_for(kind, row.choices))


async def detail(principal: Principal, notification_id: int) -> NotificationDetail:
    """One of the caller's notifications with its status on every channel it went by (the inbox: delivered
    when written), each with the history of its statuses."""
    row = await db.notification_of(notification_id, principal.account_id)
    if row is None:
        raise NotificationNotFound()
    inbox = ChannelStatus(
        channel="inbox",
        status="delivered",
        updated_at=row.created_at,
        attempts=1,
        history=[StatusChange(status="delivered", at=row.created_at)],
    )
    channels = [inbox]
    for delivery in await db.deliveries_of_notification(row.id):
        channels.append(
            ChannelStatus(
                channel=delivery.channel,
                status=delivery.status,
                updated_at=delivery.updated_at,
                attempts=delivery.attempts,
                history=[
                    StatusChange(status=e.status, at=e.at, detail=e.detail)
                    for e in sorted(delivery.events, key=lambda e: e.id)
                ],
            )
        )
    return NotificationDetail(**view(row).model_dump(), channels=channels)


# ---- devices ----------------------------------------------------------------------------------------------


# as DeviceIn takes them
_REGISTRATION_ID = re.compile(r"[A-Za-z0-9_\-]{1,64}")


def _device(row: db.Device) -> DeviceOut:
    return DeviceOut(
        registration_id=row.registration_id,
        platform=row.platform,
        app_version=row.app_version,
        updated_at=row.updated_at,
    )


async def register_device(principal: Principal, body: DeviceIn) -> DeviceOut:
    """This app install takes the caller's pushes from now on (moved from another account if it had it)."""
    row = await db.register_device(
        principal.account_id, body.registration_id, body.platform, body.app_version, clock.now()
    )
    return _device(row)


async def devices(principal: Principal) -> list[DeviceOut]:
    return [_device(d) for d in await db.devices_of(principal.account_id)]


async def remove_device(principal: Principal, registration_id: str) -> None:
    """404 for one the caller does not have, and for anything no registration id can be (never a query)."""
    if not _REGISTRATION_ID.fullmatch(registration_id):
        raise DeviceNotFound()
    if not await db.remove_device(principal.account_id, registration_id):
        raise DeviceNotFound()


# ---- preferences ------------------------------------------------------------------------------------------


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


async def preferences(principal: Principal, config: NotificationsSection) -> PreferencesOut:
    row = await db.settings_of(principal.account_id)
    choices = row.choices if row else {}
    quiet = quiet_hours_of(row, config)
    return PreferencesOut(
        categories=[
            CategoryPreference(
                category=kind,
                label=category.label,
                mandatory=category.mandatory,
                urgent=category.urgent,
                channels={c: c in channels_for(kind, choices) for c in CHANNELS},
            )
            for kind, category in CATEGORIES.items()
        ],
        quiet_hours=QuietHours(start=_hhmm(quiet[0]), end=_hhmm(quiet[1])) if quiet else None,
    )


async def set_preferences(
    principal: Principal, body: PreferencesIn, config: NotificationsSection
) -> PreferencesOut:
    """Merge the caller's choices (the schema answers 422 naming the field for an unknown category or
    channel, or the inbox of a mandatory category turned off, before anything is saved)."""
    # unknown categories and channels, and a mandatory inbox turned off, were refused by its schema
    given = body.categories.given()
    row = await db.settings_of(principal.account_id)
    choices: dict[str, dict[str, bool]] = {k: dict(v) for k, v in (row.choices if row else {}).items()}
    for kind, chosen in given.items():
        choices.setdefault(kind, {}).update(chosen)
    quiet: tuple[int, int] | None = None  # the configured default
    if "quiet_hours" in body.model_fields_set:
        hours = body.quiet_hours
        # none: stored as a start equal to its end
        quiet = (minutes_of(hours.start), minutes_of(hours.end)) if hours else (0, 0)
    elif row is not None and row.quiet_start is not None and row.quiet_end is not None:
        quiet = (row.quiet_start, row.quiet_end)
    await db.save_settings(principal.account_id, choices, quiet, clock.now())
    return await preferences(principal, config)


async def wechat_receipt(msgid: str, status: str, detail: str | None, at: datetime) -> str:
    """WeChat's word on a template message it took (the official account's TEMPLATESENDJOBFINISH event):
    kept and applied to its delivery as any receipt is ("applied", "duplicate" or "pending")."""
    return await apply_receipt("wechat", msgid, status, detail, at)


async def wechat_mass_receipt(msgid: str, status: str, detail: str | None, at: datetime) -> str:
    """WeChat's word on a mass send (MASSSENDJOBFINISH): applied to every delivery that send named."""
    return await apply_receipt("wechat", MASS_REF + msgid, status, detail, at)
