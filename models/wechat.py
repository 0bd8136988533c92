"""The official account's followers as its callback tells of them, and their consents to subscribe messages.

A follower row is keyed by openid, bound to an account or not. It holds what following needs and nothing
more: whether he follows now, the service point of the last parameterised QR code he scanned (remembered for
his next application) and when. Unfollowing keeps the openid and the fact (so nothing more is sent to him)
and clears the rest, consents included (PIPL art. 47: the purpose is gone); following again starts afresh."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

from models.identity import ChannelBinding, changed

if TYPE_CHECKING:
    from models.catalog import ServicePoint


class Follower(Model):
    id = fields.IntField(primary_key=True)
    openid = fields.CharField(max_length=128, unique=True)
    subscribed = fields.BooleanField(default=True)
    subscribed_at = fields.DatetimeField(null=True)
    unsubscribed_at = fields.DatetimeField(null=True)
    # the point of the last parameterised QR code he scanned, and when
    scene_point: fields.ForeignKeyNullableRelation[ServicePoint] = fields.ForeignKeyField(
        "models.ServicePoint", related_name="followers", null=True, on_delete=fields.SET_NULL
    )
    scene_point_id: int | None
    scene_at = fields.DatetimeField(null=True)

    class Meta:
        table = "wechat_follower"
        table_description = "An openid that follows (or followed) the official account, as its callback said"


class Consent(Model):
    """A follower's yes to one subscribe-message template (subscribe_msg_popup_event / change_event)."""

    id = fields.IntField(primary_key=True)
    openid = fields.CharField(max_length=128)
    template_id = fields.CharField(max_length=128)
    accepted_at = fields.DatetimeField()

    class Meta:
        table = "wechat_consent"
        unique_together = (("openid", "template_id"),)
        table_description = "A follower's consent to one subscribe-message template"


async def _account_of(openid: str) -> int | None:
    row = await ChannelBinding.filter(channel="wechat", external_id=openid).first().values("account_id")
    return int(row["account_id"]) if row else None


async def followed(openid: str, at: datetime, point_id: int | None) -> None:
    """He follows (again); a scanned point, if any, remembered. In the caller's transaction."""
    updates: dict[str, Any] = {"subscribed": True, "unsubscribed_at": None}
    follower = await Follower.filter(openid=openid).select_for_update().first()
    if follower is None:
        await Follower.create(
            openid=openid,
            subscribed=True,
            subscribed_at=at,
            scene_point_id=point_id,
            scene_at=at if point_id else None,
        )
        was_following = False
    else:
        was_following = follower.subscribed
        if not was_following:
            updates["subscribed_at"] = at
        if point_id is not None:
            updates |= {"scene_point_id": point_id, "scene_at": at}
        await Follower.filter(id=follower.id).update(**updates)
    if not was_following:
        account_id = await _account_of(openid)
        if account_id is not None:
            await changed(account_id)


async def scanned(openid: str, at: datetime, point_id: int) -> None:
    """A follower scanned a point's code (SCAN): the point remembered."""
    if not await Follower.filter(openid=openid).update(scene_point_id=point_id, scene_at=at, subscribed=True):
        await Follower.create(
            openid=openid, subscribed=True, subscribed_at=at, scene_point_id=point_id, scene_at=at
        )


async def unfollowed(openid: str, at: datetime) -> None:
    """He unfollowed: nothing more is sent to him; what we held beyond the openid and the fact is removed."""
    cleared: dict[str, Any] = {
        "subscribed": False,
        "unsubscribed_at": at,
        "subscribed_at": None,
        "scene_point_id": None,
        "scene_at": None,
    }
    if not await Follower.filter(openid=openid).update(**cleared):
        await Follower.create(openid=openid, **cleared)
    await Consent.filter(openid=openid).delete()
    account_id = await _account_of(openid)
    if account_id is not None:
        await changed(account_id)


async def follower(openid: str) -> Follower | None:
    return await Follower.get_or_none(openid=openid).select_related("scene_point")


async def unfollowed_among(openids: list[str]) -> set[str]:
    """Which of these openids have unfollowed (an openid we never heard of is not among them)."""
    if not openids:
        return set()
    rows = await Follower.filter(openid__in=openids, subscribed=False).values_list("openid", flat=True)
    return {str(r) for r in rows}


async def followers_among(openids: list[str]) -> set[str]:
    """Which of these openids follow the official account now (as its callback told us)."""
    if not openids:
        return set()
    rows = await Follower.filter(openid__in=openids, subscribed=True).values_list("openid", flat=True)
    return {str(r) for r in rows}


async def consent(openid: str, template_id: str, accepted: bool, at: datetime) -> None:
    if not accepted:
        await Consent.filter(openid=openid, template_id=template_id).delete()
        return
    if not await Consent.filter(openid=openid, template_id=template_id).update(accepted_at=at):
        await Consent.create(openid=openid, template_id=template_id, accepted_at=at)


async def consents_of(openid: str) -> list[str]:
    return [
        str(t)
        for t in await Consent.filter(openid=openid)
        .order_by("template_id")
        .values_list("template_id", flat=True)
    ]


async def consented(openids: list[str], template_id: str) -> set[str]:
    if not openids:
        return set()
    rows = await Consent.filter(openid__in=openids, template_id=template_id).values_list("openid", flat=True)
    return {str(r) for r in rows}
