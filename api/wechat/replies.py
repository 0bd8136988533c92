"""What the official account says and does for each message and event WeChat passes on.

`answer(official, message)` takes the message's fields (as xmltodict gave them) and returns the reply (text or
one article) or None. It does what the event means first (a follower remembered, an unfollower's data removed,
a consent kept, a template message's receipt applied), each of them safe to do twice: a message the callback
could not answer in time is answered again, from the start, by the workers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from wechatpy.replies import ArticlesReply, TextReply

from api.applications import service as applications
from api.catalog import service as catalog
from api.identity import service as identity
from api.kit import clock
from api.kit.db import in_transaction
from api.notifications import service as notifications
from api.wechat.deps import Official
from models import wechat as db

log = logging.getLogger("ywt.wechat")

STATUS_NAMES = {
    "submitted": "已提交，待受理",
    "returned": "已退回，请补正材料",
    "refused": "不予受理",
    "accepted": "已受理",
    "in_review": "审核中",
    "suspended": "已中止",
    "approved": "已批准",
    "rejected": "未予批准",
    "ready": "已办结，待送达",
    "delivered": "已送达",
    "closed": "已办结",
    "withdrawn": "已撤回",
}
DEADLINE_NAMES = {"warning": "（即将到期）", "overdue": "（已超期）", "normal": ""}
# the convenience pages a keyword or a menu key points to (the conveniences issue brings the services)
CONVENIENCES = {
    "bills": ("水电气缴费", ("缴费", "水费", "电费", "燃气", "气费")),
    "fines": ("交通违章查询", ("违章", "罚款", "驾照", "扣分")),
    "fund": ("公积金查询", ("公积金",)),
    "social-security": ("社保查询", ("社保", "医保", "养老金")),
    "hospital": ("预约挂号", ("挂号", "医院")),
}
MENU_KEYS = {
    "MY_CASES": "progress",
    "MY_LICENCES": "licences",
    "HELP": "help",
    "BIND": "bind",
    "CONVENIENCE_BILLS": "convenience:bills",
    "CONVENIENCE_FINES": "convenience:fines",
    "CONVENIENCE_FUND": "convenience:fund",
}


@dataclass(frozen=True, slots=True)
class Reply:
    """A text, or one article (title, description, the page it opens)."""

    text: str = ""
    title: str = ""
    description: str = ""
    url: str = ""

    @property
    def is_article(self) -> bool:
        return bool(self.title)

    def passive(self, message: dict[str, Any]) -> str:
        """The XML answer to the message itself (from our account to its sender)."""
        ours, theirs = str(message.get("ToUserName", "")), str(message.get("FromUserName", ""))
        reply: TextReply | ArticlesReply
        if self.is_article:
            reply = ArticlesReply(source=ours, target=theirs)
            reply.add_article(
                {"title": self.title, "description": self.description, "url": self.url, "image": ""}
            )
        else:
            reply = TextReply(source=ours, target=theirs, content=self.text)
        return str(reply.render())

    def custom(self) -> dict[str, Any]:
        """The same reply as a customer-service message (`message/custom/send`), when it could not wait."""
        if self.is_article:
            article = {"title": self.title, "description": self.description, "url": self.url}
            return {"msgtype": "news", "news": {"articles": [article]}}
        return {"msgtype": "text", "text": {"content": self.text}}


@dataclass
class Said:
    """The reply, and what the event did (for the log and the tests)."""

    reply: Reply | None = None
    did: list[str] = field(default_factory=list)


def _page(official: Official, path: str) -> str:
    return official.settings.h5_base.rstrip("/") + path


def bind_url(official: Official, next_path: str = "/h5/bind") -> str:
    start = official.settings.oauth_redirect_uri.rsplit("/", 1)[0] + "/start"
    return f"{start}?next={quote(next_path, safe='/')}"


def moment(message: dict[str, Any]) -> datetime:
    """When WeChat says the message was sent (CreateTime, seconds), or now if it says nothing usable."""
    raw = str(message.get("CreateTime", ""))
    if raw.isdigit() and len(raw) <= 12:
        return datetime.fromtimestamp(int(raw), tz=clock.CITY_TZ)
    return clock.now()


def _float(value: Any) -> float | None:
    try:
        return float(str(value))
    except (TypeError, ValueError):
        return None


async def answer(official: Official, message: dict[str, Any]) -> Said:
    kind = str(message.get("MsgType", "")).lower()
    openid = str(message.get("FromUserName", ""))
    if not openid:
        return Said()
    if kind == "event":
        return await _event(official, message, openid)
    if kind == "text":
        return Said(await _keyword(official, openid, str(message.get("Content", ""))))
    if kind == "location":
        return Said(
            await _nearest(official, _float(message.get("Location_X")), _float(message.get("Location_Y")))
        )
    return Said(_help(official))  # image, voice, video, link …: the menu's help


async def _event(official: Official, message: dict[str, Any], openid: str) -> Said:
    event = str(message.get("Event", "")).lower()
    at = moment(message)
    key = str(message.get("EventKey") or "")
    if event == "subscribe":
        scene = key.removeprefix("qrscene_") if key.startswith("qrscene_") else ""
        point = await catalog.point_facts(official.catalog, scene) if scene else None
        async with in_transaction():
            await db.followed(openid, at, point.id if point else None)
        if point is not None:
            return Said(_point_article(official, point.code, point.name, welcome=True), ["followed", "scene"])
        return Said(await _welcome(official, openid), ["followed"])
    if event == "unsubscribe":
        async with in_transaction():
            await db.unfollowed(openid, at)
        return Said(None, ["unfollowed"])
    if event == "scan":
        point = await catalog.point_facts(official.catalog, key) if key else None
        if point is None:
            return Said(_help(official))
        async with in_transaction():
            await db.scanned(openid, at, point.id)
        return Said(_point_article(official, point.code, point.name, welcome=False), ["scene"])
    if event == "click":
        return Said(await _intent(official, openid, MENU_KEYS.get(key, "help")))
    if event == "view":
        return Said(None, ["viewed"])
    if event == "location":
        return Said(
            await _nearest(official, _float(message.get("Latitude")), _float(message.get("Longitude")))
        )
    if event == "templatesendjobfinish":
        return Said(None, [await _template_receipt(message, at)])
    if event == "masssendjobfinish":
        return Said(None, [await _mass_receipt(message, at)])
    if event in ("subscribe_msg_popup_event", "subscribe_msg_change_event"):
        return Said(None, [await _consents(message, openid, at)])
    log.info("wechat: an event we do not handle", extra={"fields": {"event": event[:40]}})
    return Said(None, ["unknown"])


async def _template_receipt(message: dict[str, Any], at: datetime) -> str:
    """TEMPLATESENDJOBFINISH: `success`, `failed:user block` (he blocks the account's messages) or
    `failed: system failed` (WeChat's own failure)."""
    msgid = str(message.get("MsgID") or message.get("MsgId") or "")
    status = str(message.get("Status", ""))
    if not msgid:
        return "receipt:none"
    if status == "success":
        outcome = await notifications.wechat_receipt(msgid, "delivered", None, at)
    elif "block" in status:
        outcome = await notifications.wechat_receipt(msgid, "permanent-failure", status[:200], at)
    else:
        outcome = await notifications.wechat_receipt(msgid, "temporary-failure", status[:200], at)
    return "receipt:" + outcome


async def _mass_receipt(message: dict[str, Any], at: datetime) -> str:
    """MASSSENDJOBFINISH: `send success`, `send fail` or `err(num)` for the whole job, with its counts
    (TotalCount, FilterCount, SentCount, ErrorCount); it names no follower, so it settles every delivery of
    the job alike."""
    msgid = str(message.get("MsgID") or message.get("MsgId") or "")
    status = str(message.get("Status", ""))
    if not msgid:
        return "receipt:none"
    counts = ", ".join(
        f"{name}={message.get(name)}"
        for name in ("TotalCount", "SentCount", "ErrorCount")
        if message.get(name)
    )
    if status == "send success":
        outcome = await notifications.wechat_mass_receipt(msgid, "delivered", None, at)
    else:
        detail = f"{status} {counts}".strip()[:200]
        outcome = await notifications.wechat_mass_receipt(msgid, "permanent-failure", detail, at)
    return "receipt:" + outcome


async def _consents(message: dict[str, Any], openid: str, at: datetime) -> str:
    """subscribe_msg_popup_event / subscribe_msg_change_event: each template's accept or reject."""
    holder = message.get("SubscribeMsgPopupEvent") or message.get("SubscribeMsgChangeEvent") or {}
    items = holder.get("List") if isinstance(holder, dict) else None
    if isinstance(items, dict):
        items = [items]
    kept = 0
    async with in_transaction():
        for item in items if isinstance(items, list) else []:
            if not isinstance(item, dict):
                continue
            template = str(item.get("TemplateId") or "")[:128]
            if template:
                await db.consent(openid, template, str(item.get("SubscribeStatusString")) == "accept", at)
                kept += 1
    return f"consents:{kept}"


async def _keyword(official: Official, openid: str, content: str) -> Reply:
    text = content.strip()
    if any(word in text for word in ("进度", "办件", "我的申请")):
        return await _intent(official, openid, "progress")
    if "证照" in text or "证件" in text:
        return await _intent(official, openid, "licences")
    if "绑定" in text:
        return await _intent(official, openid, "bind")
    if "网点" in text or "附近" in text:
        return Reply(text="请点击输入框旁的“+”，发送您的位置，我们告诉您最近的社区服务网点。")
    for code, (_, words) in CONVENIENCES.items():
        if any(word in text for word in words):
            return await _intent(official, openid, "convenience:" + code)
    return _help(official)


async def _intent(official: Official, openid: str, intent: str) -> Reply:
    if intent == "progress":
        return await _progress(official, openid)
    if intent == "licences":
        return Reply(
            title="我的电子证照",
            description="身份证、户口簿、驾驶证等电子证照，亮证核验，办事免提交。",
            url=_page(official, "/licences"),
        )
    if intent == "bind":
        if await identity.wechat_account_of(official.identity, openid) is not None:
            return Reply(text="您的微信已绑定一网通账号。发送“进度”查看最近的办件。")
        return Reply(
            title="绑定一网通账号",
            description="用手机验证码绑定后，可在微信查办件、收通知。",
            url=bind_url(official),
        )
    if intent.startswith("convenience:"):
        code = intent.split(":", 1)[1]
        name = CONVENIENCES.get(code, ("便民服务", ()))[0]
        return Reply(
            title=name, description="点击进入便民服务。", url=_page(official, f"/conveniences/{code}")
        )
    return _help(official)


async def _progress(official: Official, openid: str) -> Reply:
    account_id = await identity.wechat_account_of(official.identity, openid)
    if account_id is None:
        return Reply(
            title="请先绑定一网通账号",
            description="绑定后发送“进度”即可查看您的办件进度。",
            url=bind_url(official, "/h5/cases"),
        )
    latest = await applications.latest_of(account_id)
    if latest is None:
        return Reply(text=f"您还没有办件。办事指南：{_page(official, '/items')}")
    lines = [
        f"您最近的办件：{latest.item.name}",
        f"编号：{latest.number}",
        f"状态：{STATUS_NAMES.get(latest.status, latest.status)}",
    ]
    if latest.due_at is not None:
        due = latest.due_at.astimezone(clock.CITY_TZ).strftime("%Y-%m-%d")
        lines.append(f"办结期限：{due}{DEADLINE_NAMES.get(latest.deadline_status, '')}")
    lines.append(f"详情：{_page(official, f'/cases/{latest.id}')}")
    return Reply(text="\n".join(lines))


async def _welcome(official: Official, openid: str) -> Reply:
    if await identity.wechat_account_of(official.identity, openid) is not None:
        return Reply(text="欢迎回来！您的微信已绑定一网通账号，发送“进度”查看办件，“证照”查看电子证照。")
    return Reply(
        title="欢迎关注新余一网通",
        description="绑定账号后，办件进度、通知提醒都在微信里。点击绑定。",
        url=bind_url(official),
    )


def _point_article(official: Official, code: str, name: str, *, welcome: bool) -> Reply:
    return Reply(
        title=("欢迎关注新余一网通：" if welcome else "") + name,
        description="您的下一次申请将默认在本网点办理。点击查看网点的办事指南与开放时间。",
        url=_page(official, f"/points/{quote(code)}"),
    )


async def _nearest(official: Official, lat: float | None, lng: float | None) -> Reply:
    point = None if lat is None or lng is None else await catalog.nearest_point(official.catalog, lat, lng)
    if point is None:
        return Reply(text="没有找到附近的服务网点。")
    distance = f"{point.distance_m} 米" if point.distance_m is not None else ""
    return Reply(
        title=f"离您最近：{point.name}",
        description=f"{distance} · {point.address} · {point.opening_hours}".strip(" ·"),
        url=_page(official, f"/points/{quote(point.code)}"),
    )


def _help(official: Official) -> Reply:
    return Reply(
        text=(
            "您好，这里是新余一网通。您可以发送：\n"
            "“进度”查看最近的办件；\n“证照”查看电子证照；\n“缴费”“违章”“公积金”进入便民服务；\n"
            "“绑定”绑定一网通账号；或发送位置查找最近的服务网点。\n也可以使用下方菜单。"
        )
    )


def remembered_point_since(official: Official, now: datetime) -> datetime:
    return now - timedelta(days=official.settings.scene_days)
