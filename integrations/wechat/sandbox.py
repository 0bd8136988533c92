"""The WeChat sandbox: an in-process official account with its own state in Redis.

Embedded mode, demos and tests need the WeChat sign-in and messages without WeChat. The sandbox mints one-time
OAuth codes the way WeChat's authorisation page would (`issue_oauth_code`, used by the sandbox endpoints to play
the resident's phone), exchanges them once, hands out an access token and a JS-SDK ticket, keeps the last menu
(`menu`), makes deterministic QR tickets, and keeps every template, customer-service, mass and subscribe
message for `messages_to`, `custom_messages_to`, `mass_messages` and `subscribe_messages_to` to show. It
refuses what WeChat would refuse before any call the same way the HTTP client does (ValueError: a scene over
64 characters, a mass send to fewer than 2 openids ...); it does not play WeChat's refusals of a user (45015,
43004, 43101).

Redis (all per app unless noted):
- `sandbox:wechat:oauth_code:{app_id}:{code}` -> JSON {"openid", "unionid"}, 5 minutes, deleted on use (GETDEL)
- `sandbox:wechat:openid_seq:{app_id}` counter behind the deterministic openids
- `sandbox:wechat:access_token:{app_id}` the sandbox access token (expires like a real one)
- `sandbox:wechat:msgid_seq:{app_id}` counter behind msgids (integrations.sequence: never repeated across restarts)
- `sandbox:wechat:messages:{openid}` list of JSON {"openid", "template_id", "data", "url", "msgid", "sent_at"},
  newest last, the last 50 kept, 24 h expiry
- `sandbox:wechat:jsapi_ticket:{app_id}` the sandbox JS-SDK ticket (expires like a real one)
- `sandbox:wechat:menu:{app_id}` JSON of the last menu created, no expiry
- `sandbox:wechat:custom:{openid}` list of JSON {"openid", "message", "sent_at"}, kept like template messages
- `sandbox:wechat:subscribe:{openid}` list of JSON {"openid", "template_id", "data", "page", "sent_at"}, the same
- `sandbox:wechat:mass:{app_id}` list of JSON {"msg_id", "openids", "content", "clientmsgid", "sent_at"}, the same
- `sandbox:wechat:mass_clientmsgid:{app_id}:{clientmsgid}` -> msg_id, 24 h (WeChat sends a clientmsgid once a day)
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Awaitable
from typing import Any, cast
from urllib.parse import quote

import orjson
from redis.asyncio import Redis

from api.kit import clock
from api.kit.kv import text
from integrations.sequence import next_id
from integrations.wechat.base import (
    InvalidWeChatCode,
    QrTicket,
    WeChatError,
    WeChatIdentity,
    check_custom_message,
    check_mass_send,
    check_qr_scene,
)

CODE_TTL_SECONDS = 300
TOKEN_TTL_SECONDS = 7200 - 300
KEEP = 50
MESSAGES_TTL_SECONDS = 24 * 3600
CLIENT_MSG_ID_SECONDS = 600  # WeChat de-duplicates a client_msg_id for 10 minutes
CLIENTMSGID_SECONDS = 24 * 3600  # and a mass send's clientmsgid for 24 hours
MENU_MAX_BUTTONS, MENU_MAX_SUB_BUTTONS = 3, 5
_CODE = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")


def sandbox_openid(app_id: str, n: int) -> str:
    """The n-th sandbox openid of an app: "o" + 27 URL-safe characters, the same on every run."""
    digest = hashlib.sha256(f"{app_id}:{n}".encode()).digest()
    return "o" + base64.urlsafe_b64encode(digest).decode()[:27]


def messages_key(openid: str) -> str:
    return f"sandbox:wechat:messages:{openid}"


def custom_key(openid: str) -> str:
    return f"sandbox:wechat:custom:{openid}"


def subscribe_key(openid: str) -> str:
    return f"sandbox:wechat:subscribe:{openid}"


def sandbox_qr_ticket(app_id: str, scene: str) -> str:
    """The sandbox ticket of an app's permanent code for `scene`: "gQ" + 40 URL-safe characters, always the same
    (WeChat too answers one scene_str with one permanent code)."""
    digest = hashlib.sha256(f"qr:{app_id}:{scene}".encode()).digest()
    return "gQ" + base64.urlsafe_b64encode(digest).decode()[:40]


class SandboxWeChat:
    """A WeChatApi that plays WeChat in this process."""

    def __init__(self, redis: Redis, app_id: str) -> None:
        self._redis = redis
        self._app_id = app_id

    def _code_key(self, code: str) -> str:
        return f"sandbox:wechat:oauth_code:{self._app_id}:{code}"

    async def issue_oauth_code(
        self, openid: str | None = None, unionid: str | None = None
    ) -> tuple[str, str]:
        """Mint a one-time code valid 5 minutes for `openid` (a new deterministic one when None)."""
        if openid is None:
            n = await self._redis.incr(f"sandbox:wechat:openid_seq:{self._app_id}")
            openid = sandbox_openid(self._app_id, n)
        code = secrets.token_urlsafe(24)
        record = orjson.dumps({"openid": openid, "unionid": unionid})
        await self._redis.set(self._code_key(code), record, ex=CODE_TTL_SECONDS)
        return code, openid

    async def oauth_identity(self, code: str) -> WeChatIdentity:
        if not _CODE.match(code):
            raise InvalidWeChatCode("微信授权码无效")
        raw = await self._redis.getdel(self._code_key(code))
        if raw is None:
            raise InvalidWeChatCode("微信授权码无效或已使用")
        record = orjson.loads(raw)
        return WeChatIdentity(openid=record["openid"], unionid=record.get("unionid"))

    async def access_token(self) -> str:
        key = f"sandbox:wechat:access_token:{self._app_id}"
        token = await self._redis.get(key)
        if token:
            return text(token)
        fresh = "sandbox-" + secrets.token_urlsafe(32)
        if await self._redis.set(key, fresh, nx=True, ex=TOKEN_TTL_SECONDS):
            return fresh
        token = await self._redis.get(key)  # another caller minted one first
        return text(token) if token else fresh

    async def send_template(
        self,
        openid: str,
        template_id: str,
        data: dict[str, str],
        url: str | None = None,
        client_msg_id: str | None = None,
    ) -> str:
        if not openid or not template_id:
            raise ValueError("openid and template_id are required")
        seen_key = f"sandbox:wechat:client_msg_id:{self._app_id}:{client_msg_id}"
        if client_msg_id:
            earlier = await self._redis.get(seen_key)
            if earlier is not None:  # as WeChat: the same client_msg_id within 10 minutes is not sent again
                return earlier.decode() if isinstance(earlier, bytes) else str(earlier)
        msgid = await next_id(self._redis, f"sandbox:wechat:msgid_seq:{self._app_id}")
        if client_msg_id:
            await self._redis.set(seen_key, msgid, ex=CLIENT_MSG_ID_SECONDS)
        record = {
            "openid": openid,
            "template_id": template_id,
            "data": dict(data),
            "url": url,
            "msgid": msgid,
            "client_msg_id": client_msg_id,
            "sent_at": clock.now().isoformat(timespec="seconds"),
        }
        await self._record(messages_key(openid), record)
        return msgid

    async def messages_to(self, openid: str) -> list[dict]:
        """Template messages recorded for an openid, oldest first."""
        return await self._records(messages_key(openid))

    async def _record(self, key: str, record: dict[str, Any]) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, orjson.dumps(record))
            pipe.ltrim(key, -KEEP, -1)
            pipe.expire(key, MESSAGES_TTL_SECONDS)
            await pipe.execute()

    async def _records(self, key: str) -> list[dict]:
        return [
            orjson.loads(item) for item in await cast(Awaitable[list[bytes]], self._redis.lrange(key, 0, -1))
        ]

    # ---- JS-SDK ticket, menu, QR codes ---------------------------------------------------------------

    async def jsapi_ticket(self) -> str:
        """The sandbox JS-SDK ticket: "sandbox-ticket-" + 43 URL-safe characters, shared and expiring like a
        real one."""
        key = f"sandbox:wechat:jsapi_ticket:{self._app_id}"
        ticket = await self._redis.get(key)
        if ticket:
            return text(ticket)
        fresh = "sandbox-ticket-" + secrets.token_urlsafe(32)
        if await self._redis.set(key, fresh, nx=True, ex=TOKEN_TTL_SECONDS):
            return fresh
        ticket = await self._redis.get(key)  # another caller minted one first
        return text(ticket) if ticket else fresh

    async def create_menu(self, menu: dict[str, Any]) -> None:
        """Keep `menu` as the account's menu; WeChatError 40016 / 40023 for as many buttons as WeChat refuses."""
        buttons = menu.get("button")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= MENU_MAX_BUTTONS:
            raise WeChatError(40016, "微信菜单的一级按钮须为 1 到 3 个（errcode=40016）")
        for button in buttons:
            subs = button.get("sub_button", []) if isinstance(button, dict) else None
            if not isinstance(subs, list) or len(subs) > MENU_MAX_SUB_BUTTONS:
                raise WeChatError(40023, "微信菜单的二级按钮至多 5 个（errcode=40023）")
        await self._redis.set(f"sandbox:wechat:menu:{self._app_id}", orjson.dumps(menu))

    async def menu(self) -> dict | None:
        """The last menu created, or None."""
        stored = await self._redis.get(f"sandbox:wechat:menu:{self._app_id}")
        return orjson.loads(stored) if stored else None

    async def create_qr(self, scene: str) -> QrTicket:
        check_qr_scene(scene)
        ticket = sandbox_qr_ticket(self._app_id, scene)
        return QrTicket.of(ticket, "http://weixin.qq.com/q/sandbox-" + quote(ticket, safe=""))

    # ---- customer-service, mass and subscribe messages -----------------------------------------------

    async def send_custom(self, openid: str, message: dict[str, Any]) -> None:
        if not openid:
            raise ValueError("openid is required")
        check_custom_message(message)
        record = {"openid": openid, "message": message, "sent_at": clock.now().isoformat(timespec="seconds")}
        await self._record(custom_key(openid), record)

    async def custom_messages_to(self, openid: str) -> list[dict]:
        """Customer-service messages recorded for an openid, oldest first: {"openid", "message", "sent_at"}."""
        return await self._records(custom_key(openid))

    async def mass_send_text(self, openids: list[str], content: str, clientmsgid: str) -> str:
        check_mass_send(openids, content, clientmsgid)
        seen_key = f"sandbox:wechat:mass_clientmsgid:{self._app_id}:{clientmsgid}"
        earlier = await self._redis.get(seen_key)
        if earlier is not None:  # as WeChat: the same clientmsgid within 24 h is not sent again
            return text(earlier)
        msg_id = await next_id(self._redis, f"sandbox:wechat:msgid_seq:{self._app_id}")
        if not await self._redis.set(seen_key, msg_id, nx=True, ex=CLIENTMSGID_SECONDS):
            earlier = await self._redis.get(seen_key)  # a concurrent send of the same clientmsgid won
            if earlier is not None:
                return text(earlier)
        record = {
            "msg_id": msg_id,
            "openids": list(openids),
            "content": content,
            "clientmsgid": clientmsgid,
            "sent_at": clock.now().isoformat(timespec="seconds"),
        }
        await self._record(f"sandbox:wechat:mass:{self._app_id}", record)
        return msg_id

    async def mass_messages(self) -> list[dict]:
        """Mass sends recorded, oldest first: {"msg_id", "openids", "content", "clientmsgid", "sent_at"}."""
        return await self._records(f"sandbox:wechat:mass:{self._app_id}")

    async def send_subscribe(
        self, openid: str, template_id: str, data: dict[str, str], page: str | None = None
    ) -> None:
        if not openid or not template_id:
            raise ValueError("openid and template_id are required")
        record = {
            "openid": openid,
            "template_id": template_id,
            "data": dict(data),
            "page": page,
            "sent_at": clock.now().isoformat(timespec="seconds"),
        }
        await self._record(subscribe_key(openid), record)

    async def subscribe_messages_to(self, openid: str) -> list[dict]:
        """Subscribe messages recorded for an openid, oldest first."""
        return await self._records(subscribe_key(openid))

    async def aclose(self) -> None:
        return None
