"""The WeChat sandbox: an in-process official account with its own state in Redis.

Embedded mode, demos and tests need the WeChat sign-in and template messages without WeChat. The sandbox
mints one-time OAuth codes the way WeChat's authorisation page would (`issue_oauth_code`, used by the sandbox
endpoints to play the resident's phone), exchanges them once, hands out an access token and keeps every
template message for `messages_to` to show.

Redis (all per app unless noted):
- `sandbox:wechat:oauth_code:{app_id}:{code}` -> JSON {"openid", "unionid"}, 5 minutes, deleted on use (GETDEL)
- `sandbox:wechat:openid_seq:{app_id}` counter behind the deterministic openids
- `sandbox:wechat:access_token:{app_id}` the sandbox access token (expires like a real one)
- `sandbox:wechat:msgid_seq:{app_id}` counter behind msgids
- `sandbox:wechat:messages:{openid}` list of JSON {"openid", "template_id", "data", "url", "msgid", "sent_at"},
  newest last, the last 50 kept, 24 h expiry
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Awaitable
from typing import cast

import orjson
from redis.asyncio import Redis

from api.kit import clock
from api.kit.kv import text
from integrations.wechat.base import InvalidWeChatCode, WeChatIdentity

CODE_TTL_SECONDS = 300
TOKEN_TTL_SECONDS = 7200 - 300
KEEP = 50
MESSAGES_TTL_SECONDS = 24 * 3600
CLIENT_MSG_ID_SECONDS = 600  # WeChat de-duplicates a client_msg_id for 10 minutes
_CODE = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")


def sandbox_openid(app_id: str, n: int) -> str:
    """The n-th sandbox openid of an app: "o" + 27 URL-safe characters, the same on every run."""
    digest = hashlib.sha256(f"{app_id}:{n}".encode()).digest()
    return "o" + base64.urlsafe_b64encode(digest).decode()[:27]


def messages_key(openid: str) -> str:
    return f"sandbox:wechat:messages:{openid}"


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
        msgid = str(await self._redis.incr(f"sandbox:wechat:msgid_seq:{self._app_id}"))
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
        key = messages_key(openid)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, orjson.dumps(record))
            pipe.ltrim(key, -KEEP, -1)
            pipe.expire(key, MESSAGES_TTL_SECONDS)
            await pipe.execute()
        return msgid

    async def messages_to(self, openid: str) -> list[dict]:
        """Template messages recorded for an openid, oldest first."""
        return [
            orjson.loads(item)
            for item in await cast(Awaitable[list[bytes]], self._redis.lrange(messages_key(openid), 0, -1))
        ]

    async def aclose(self) -> None:
        return None
