"""Our async client for WeChat's public official-account API (base URL configurable, https://api.weixin.qq.com).

Why not wechatpy's client: it is synchronous (`requests`), ignores its timeout on the token fetch and
refreshes the access token without a lock. WeChat allows only a few thousand token fetches a day per app and a
new token invalidates the old one after five minutes, so with N workers the token must be shared and
refreshed by one caller at a time.

Protocol used (WeChat's documentation):
- `GET /cgi-bin/token?grant_type=client_credential&appid=APPID&secret=APPSECRET`
  -> `{"access_token": "...", "expires_in": 7200}` or `{"errcode": 40013, "errmsg": "invalid appid"}`
- `GET /sns/oauth2/access_token?appid=APPID&secret=SECRET&code=CODE&grant_type=authorization_code`
  -> `{"access_token", "expires_in", "refresh_token", "openid", "scope", "unionid"?}`,
  errcode 40029 (invalid code) / 40163 (code been used) -> InvalidWeChatCode
- `POST /cgi-bin/message/template/send?access_token=TOKEN`
  `{"touser", "template_id", "url"?, "data": {key: {"value": ...}}}` -> `{"errcode": 0, "errmsg": "ok", "msgid": 1}`
  errcode 40001 / 42001 / 40014 (token invalid or expired): the cached token is dropped, a new one fetched and
  the message sent once more.

Access token in Redis: `wechat:access_token:{app_id}` (expiry = expires_in - 300 s). A refresh runs under
`wechat:access_token:{app_id}:lock` (SET NX PX with a random value, released by compare-and-delete in Lua);
every other caller polls the cache with short sleeps instead of fetching too, for at most the longest fetch (all
its tries, `wechat.attempts`) plus half a second. A failed refresh leaves `wechat:access_token:{app_id}:failed` =
"<lock value>:<kind>" for a second so the callers waiting on that very refresh fail at once instead of queueing up
to repeat it.

Every try honours `wechat.timeout` (UpstreamTimeout 504) and the rules of integrations.http (the GETs are tried
up to `wechat.attempts` times on a timeout, a lost connection or HTTP 502/503/504; the POST once); the app secret,
access tokens and URLs with their query never appear in a log line or an exception message.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis

from api.kit.config import WechatSection
from api.kit.errors import UpstreamError, UpstreamTimeout
from api.kit.kv import raw, text
from integrations.http import call_json, longest_call, make_client, validate_answer
from integrations.wechat.base import InvalidWeChatCode, WeChatError, WeChatIdentity

log = logging.getLogger("ywt.integrations.wechat")

NAME = "微信接口"
TOKEN_INVALID = frozenset({40001, 42001, 40014})
CODE_INVALID = frozenset({40029, 40163})
EARLY_REFRESH_SECONDS = 300
POLL_SECONDS = 0.025
FAILED_MARK_MS = 1000
_CODE = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")

# delete KEYS[1] only if it still holds ARGV[1]: a lock (or token) we no longer own is left alone
_COMPARE_AND_DELETE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


class _Token(BaseModel):
    model_config = ConfigDict(strict=True)

    access_token: str = Field(min_length=1, max_length=2048)
    expires_in: int = Field(gt=0)


class _OAuth(BaseModel):
    model_config = ConfigDict(strict=True)

    openid: str = Field(min_length=1, max_length=128)
    unionid: str | None = Field(default=None, min_length=1, max_length=128)


class _Sent(BaseModel):
    model_config = ConfigDict(strict=True)

    msgid: int | str = Field(union_mode="left_to_right")


def token_key(app_id: str) -> str:
    return f"wechat:access_token:{app_id}"


def _errcode(data: Any) -> int:
    """WeChat's errcode of an answer (0 when absent); UpstreamError when the answer is not an object."""
    if not isinstance(data, dict):
        raise UpstreamError(f"{NAME}返回了无法识别的结果")
    code = data.get("errcode", 0)
    if isinstance(code, bool) or not isinstance(code, int):
        raise UpstreamError(f"{NAME}返回了无法识别的结果")
    return code


class HttpWeChat:
    """A WeChatApi over WeChat's public HTTP API, sharing the access token through Redis."""

    def __init__(
        self, settings: WechatSection, redis: Redis, client: httpx.AsyncClient | None = None
    ) -> None:
        self._app_id = settings.app_id
        self._secret = settings.app_secret
        self._timeout = settings.timeout
        self._attempts = settings.attempts
        self._redis = redis
        self._owns_client = client is None
        self._client = client or make_client(settings.base_url, settings.timeout)
        self._key = token_key(self._app_id)
        self._lock_key = self._key + ":lock"
        self._failed_key = self._key + ":failed"
        # the lock outlives the longest refresh (one call, all its tries) with a margin
        longest = longest_call(self._timeout, self._attempts)
        self._lock_ms = int((longest + 2.0) * 1000)
        self._wait_seconds = longest + 0.5
        self._delete_if = redis.register_script(_COMPARE_AND_DELETE)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    # ---- access token -------------------------------------------------------------------------------

    async def access_token(self) -> str:
        """The shared access token, fetched by one caller across all processes when the cache is cold."""
        cached = await self._redis.get(self._key)
        if cached:
            return text(cached)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_seconds
        while True:
            if loop.time() >= deadline:
                raise UpstreamTimeout(f"{NAME}响应超时（等待 access_token 刷新）")
            mine = secrets.token_hex(16)
            if await self._redis.set(self._lock_key, mine, nx=True, px=self._lock_ms):
                return await self._refresh_holding_lock(mine)
            holder = await self._redis.get(self._lock_key)
            if holder is None:  # the holder finished between our SET and GET
                cached = await self._redis.get(self._key)
                if cached:
                    return text(cached)
                continue
            token = await self._wait_for(raw(holder), deadline)
            if token is not None:
                return token
            # the holder went away without a token (it crashed and its lock expired): try to take over

    async def _refresh_holding_lock(self, mine: str) -> str:
        try:
            cached = await self._redis.get(self._key)  # another holder may have just finished
            if cached:
                return text(cached)
            try:
                token, ttl = await self._fetch_token()
            except UpstreamTimeout:
                await self._redis.set(self._failed_key, f"{mine}:timeout", px=FAILED_MARK_MS)
                raise
            except UpstreamError:
                await self._redis.set(self._failed_key, f"{mine}:error", px=FAILED_MARK_MS)
                raise
            await self._redis.set(self._key, token, ex=ttl)
            return token
        finally:
            await self._delete_if(keys=[self._lock_key], args=[mine])

    async def _wait_for(self, holder: bytes, deadline: float) -> str | None:
        """Poll until the holder's token is cached (-> token), its refresh failed (-> raise) or it is gone."""
        loop = asyncio.get_running_loop()
        while True:
            if loop.time() >= deadline:
                log.warning("gave up waiting for another caller's WeChat token refresh")
                raise UpstreamTimeout(f"{NAME}响应超时（等待 access_token 刷新）")
            await asyncio.sleep(POLL_SECONDS)
            cached, failed, current = await self._redis.mget(self._key, self._failed_key, self._lock_key)
            if cached:
                return text(cached)
            if failed and raw(failed).startswith(holder + b":"):
                if raw(failed).endswith(b":timeout"):
                    raise UpstreamTimeout(f"{NAME}响应超时")
                raise UpstreamError(f"{NAME}暂时无法获取 access_token")
            if current != holder:
                return None

    async def _fetch_token(self) -> tuple[str, int]:
        data = await call_json(
            self._client,
            "GET",
            "/cgi-bin/token",
            name=NAME,
            attempts=self._attempts,
            params={"grant_type": "client_credential", "appid": self._app_id, "secret": self._secret},
        )
        code = _errcode(data)
        if code != 0:
            log.warning("WeChat token fetch refused: errcode=%s", code)
            raise WeChatError(code, f"{NAME}拒绝发放 access_token（errcode={code}）")
        answer = validate_answer(_Token, data, name=NAME)
        expires = min(answer.expires_in, 7200)  # WeChat's tokens live 2 h; a larger claim is not trusted
        ttl = expires - EARLY_REFRESH_SECONDS if expires > 2 * EARLY_REFRESH_SECONDS else max(1, expires // 2)
        log.info("WeChat access token refreshed, cached for %s s", ttl)
        return answer.access_token, ttl

    async def _drop_token(self, token: str) -> None:
        """Forget a token WeChat refused, unless another caller has already replaced it."""
        await self._delete_if(keys=[self._key], args=[token])

    # ---- OAuth (web authorisation) -------------------------------------------------------------------

    async def oauth_identity(self, code: str) -> WeChatIdentity:
        """Exchange a web-authorisation code for the user's openid (and unionid when the app has one)."""
        if not _CODE.match(code):
            raise InvalidWeChatCode("微信授权码无效")
        data = await call_json(
            self._client,
            "GET",
            "/sns/oauth2/access_token",
            name=NAME,
            attempts=self._attempts,
            params={
                "appid": self._app_id,
                "secret": self._secret,
                "code": code,
                "grant_type": "authorization_code",
            },
        )
        errcode = _errcode(data)
        if errcode in CODE_INVALID:
            raise InvalidWeChatCode("微信授权码无效或已使用")
        if errcode != 0:
            log.warning("WeChat OAuth exchange refused: errcode=%s", errcode)
            raise WeChatError(errcode)
        answer = validate_answer(_OAuth, data, name=NAME)
        return WeChatIdentity(openid=answer.openid, unionid=answer.unionid)

    # ---- template messages ---------------------------------------------------------------------------

    async def send_template(
        self,
        openid: str,
        template_id: str,
        data: dict[str, str],
        url: str | None = None,
        client_msg_id: str | None = None,
    ) -> str:
        """Send a template message; returns WeChat's msgid. A refused token is replaced and the send retried once."""
        body: dict[str, Any] = {
            "touser": openid,
            "template_id": template_id,
            "data": {key: {"value": value} for key, value in data.items()},
        }
        if url:
            body["url"] = url
        if client_msg_id:
            body["client_msg_id"] = client_msg_id
        token = await self.access_token()
        answer = await self._post_template(token, body)
        errcode = _errcode(answer)
        if errcode in TOKEN_INVALID:
            log.info("WeChat refused the access token (errcode=%s), refreshing once", errcode)
            await self._drop_token(token)
            token = await self.access_token()
            answer = await self._post_template(token, body)
            errcode = _errcode(answer)
        if errcode != 0:
            log.warning("WeChat template message refused: errcode=%s", errcode)
            raise WeChatError(errcode)
        return str(validate_answer(_Sent, answer, name=NAME).msgid)

    async def _post_template(self, token: str, body: dict[str, Any]) -> Any:
        return await call_json(
            self._client,
            "POST",
            "/cgi-bin/message/template/send",
            name=NAME,
            params={"access_token": token},
            json=body,
        )
