"""Our async client for WeChat's public official-account API (base URL configurable, https://api.weixin.qq.com).

Why not wechatpy's client: it is synchronous (`requests`), ignores its timeout on the token fetch and
refreshes the access token without a lock. WeChat limits token fetches per app, so with N workers the token must
be shared and fetched by one caller at a time.

Protocol used (WeChat's documentation):
- `POST /cgi-bin/stable_token` `{"grant_type": "client_credential", "appid", "secret", "force_refresh": false}`
  -> `{"access_token": "...", "expires_in": 7200}` or `{"errcode": 40013, "errmsg": "invalid appid"}`.
  The stable token: a normal call answers the current token while it is valid, the same one to every caller, so
  it is safe to repeat (tried `wechat.attempts` times like a GET). We do not use `GET /cgi-bin/token`: every
  call of it invalidates the previous token, and other holders then fail with 40001.
  `force_refresh: true` invalidates the current token and issues a new one; WeChat allows it 20 times a day, at
  least 30 s apart (closer calls do not refresh), and recommends it only for a token that leaked. We force only
  when WeChat refused a token (40001 / 42001 / 40014) and a normal call hands that very token back, and at most
  once per 30 s per app across processes (`SET wechat:access_token:{app_id}:forced 1 NX EX 30`); otherwise the
  normal answer is used (a refused token someone else replaced is answered with the replacement). A forced call
  WeChat refuses (45009: the 20 a day are spent) leaves the normal answer in place.
- `GET /sns/oauth2/access_token?appid=APPID&secret=SECRET&code=CODE&grant_type=authorization_code`
  -> `{"access_token", "expires_in", "refresh_token", "openid", "scope", "unionid"?}`,
  errcode 40029 (invalid code) / 40163 (code been used) -> InvalidWeChatCode
- `GET /cgi-bin/ticket/getticket?access_token=TOKEN&type=jsapi`
  -> `{"errcode": 0, "errmsg": "ok", "ticket": "...", "expires_in": 7200}`
- `POST /cgi-bin/message/template/send?access_token=TOKEN`
  `{"touser", "template_id", "url"?, "client_msg_id"?, "data": {key: {"value": ...}}}`
  -> `{"errcode": 0, "errmsg": "ok", "msgid": 1}`
- `POST /cgi-bin/menu/create?access_token=TOKEN` `{"button": [...]}` -> `{"errcode": 0, "errmsg": "ok"}`
  (replaces the whole menu, so it is tried `wechat.attempts` times)
- `POST /cgi-bin/qrcode/create?access_token=TOKEN`
  `{"action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": SCENE}}}`
  -> `{"ticket": "...", "url": "http://weixin.qq.com/q/..."}` (a permanent code has no expire_seconds); the
  image is `https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=<ticket, URL-quoted>`
- `POST /cgi-bin/message/custom/send?access_token=TOKEN` `{"touser", "msgtype": "text", "text": {"content"}}`
  (or `"news": {"articles": [{"title", "description", "url", "picurl"?}]}`) -> `{"errcode": 0}`; 45015 (more
  than 48 h since the user's last message), 45047 (too many custom messages), 43004 (not subscribed), 40003
  (bad openid) -> WeChatError for the caller to classify
- `POST /cgi-bin/message/mass/send?access_token=TOKEN`
  `{"touser": [2 to 10 000 openids], "msgtype": "text", "text": {"content"}, "clientmsgid"}`
  -> `{"errcode": 0, "errmsg": "send job submission success", "msg_id": 34182, "msg_data_id": 206227730}`;
  the same clientmsgid within 24 h answers `{"errcode": 45065, "errmsg": "clientmsgid exist", "msg_id": N}`
  with the earlier job's msg_id: that is success (N). WeChat de-duplicates by clientmsgid, so the POST is
  tried `wechat.attempts` times.
- `POST /cgi-bin/message/subscribe/bizsend?access_token=TOKEN`
  `{"touser", "template_id", "page"?, "data": {key: {"value": ...}}}` -> `{"errcode": 0}`; 43101 (the user
  refused or gave no consent) -> WeChatError
Every call with an access token: errcode 40001 / 42001 / 40014 (token invalid or expired) drops the cached
token (unless another caller already replaced it), gets a new one as above and makes the call once more.
JSON bodies are sent as UTF-8 (`orjson`: Chinese as it is, no \\u escapes, which WeChat shows literally in
menus).

Shared values in Redis, each fetched by one caller at a time across all processes:
- access token: `wechat:access_token:{app_id}` (expiry = expires_in - 300 s)
- JS-SDK ticket: `wechat:jsapi_ticket:{app_id}` (expiry = expires_in - 300 s)
A fetch of KEY runs under `KEY:lock` (SET NX PX with a random value, released by compare-and-delete in Lua);
every other caller polls the cache with short sleeps instead of fetching too, for at most the longest fetch
plus half a second. A failed fetch leaves `KEY:failed` = "<lock value>:<kind>" for a second so the callers
waiting on that very fetch fail at once instead of queueing up to repeat it.

Every try honours `wechat.timeout` (UpstreamTimeout 504) and the rules of integrations.http (GETs and the calls
above said to be safe to repeat are tried up to `wechat.attempts` times on a timeout, a lost connection or HTTP
502/503/504; the other POSTs once); the app secret, access tokens and URLs with their query never appear in a
log line or an exception message.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field
from redis.asyncio import Redis

from api.kit.config import WechatSection
from api.kit.errors import UpstreamError, UpstreamTimeout
from api.kit.kv import raw, text
from integrations.http import call_json, longest_call, make_client, validate_answer
from integrations.wechat.base import (
    InvalidWeChatCode,
    QrTicket,
    WeChatError,
    WeChatIdentity,
    check_custom_message,
    check_mass_send,
    check_qr_scene,
)

log = logging.getLogger("ywt.integrations.wechat")

NAME = "微信接口"
TOKEN_INVALID = frozenset({40001, 42001, 40014})
CODE_INVALID = frozenset({40029, 40163})
CLIENTMSGID_EXISTS = 45065
EARLY_REFRESH_SECONDS = 300
FORCE_SPACING_SECONDS = 30  # WeChat refreshes a forced stable token at most once per 30 s
POLL_SECONDS = 0.025
FAILED_MARK_MS = 1000
_CODE = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")
_JSON = {"Content-Type": "application/json; charset=utf-8"}

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


class _Ticket(BaseModel):
    model_config = ConfigDict(strict=True)

    ticket: str = Field(min_length=1, max_length=2048)
    expires_in: int = Field(gt=0)


class _OAuth(BaseModel):
    model_config = ConfigDict(strict=True)

    openid: str = Field(min_length=1, max_length=128)
    unionid: str | None = Field(default=None, min_length=1, max_length=128)


class _Sent(BaseModel):
    model_config = ConfigDict(strict=True)

    msgid: int | str = Field(union_mode="left_to_right")


class _MassSent(BaseModel):
    model_config = ConfigDict(strict=True)

    msg_id: int | str = Field(union_mode="left_to_right")


class _Qr(BaseModel):
    model_config = ConfigDict(strict=True)

    ticket: str = Field(min_length=1, max_length=1024)
    url: str = Field(min_length=1, max_length=2048)


@dataclass(frozen=True, slots=True)
class _Shared:
    """A value in Redis that one caller at a time fetches for all processes (the token, the ticket)."""

    what: str  # for people: "access_token", "jsapi_ticket"
    key: str
    lock_ms: int  # the lock outlives the holder's longest fetch with a margin
    wait_seconds: float  # how long the others poll for the holder's value

    @property
    def lock_key(self) -> str:
        return self.key + ":lock"

    @property
    def failed_key(self) -> str:
        return self.key + ":failed"


def token_key(app_id: str) -> str:
    return f"wechat:access_token:{app_id}"


def ticket_key(app_id: str) -> str:
    return f"wechat:jsapi_ticket:{app_id}"


def _errcode(data: Any) -> int:
    """WeChat's errcode of an answer (0 when absent); UpstreamError when the answer is not an object."""
    if not isinstance(data, dict):
        raise UpstreamError(f"{NAME}返回了无法识别的结果")
    code = data.get("errcode", 0)
    if isinstance(code, bool) or not isinstance(code, int):
        raise UpstreamError(f"{NAME}返回了无法识别的结果")
    return code


def _cache_seconds(expires_in: int) -> int:
    """How long to keep a token or ticket WeChat says lives `expires_in` s: 300 s less, so it is replaced
    before WeChat stops taking it (WeChat's live 2 h at most; a larger claim is not trusted)."""
    expires = min(expires_in, 7200)
    return expires - EARLY_REFRESH_SECONDS if expires > 2 * EARLY_REFRESH_SECONDS else max(1, expires // 2)


def _utf8_json(body: Any) -> bytes:
    """The body as UTF-8 JSON, Chinese as it is (WeChat shows \\u escapes literally in some places)."""
    return orjson.dumps(body)


class HttpWeChat:
    """A WeChatApi over WeChat's public HTTP API, sharing the access token and JS-SDK ticket through Redis."""

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
        one_call = longest_call(self._timeout, self._attempts)
        # a token fetch is one call, or two when a refused token comes back and is forced
        token_fetch = 2 * one_call
        self._token = _Shared(
            "access_token", token_key(self._app_id), int((token_fetch + 2.0) * 1000), token_fetch + 0.5
        )
        # a ticket fetch: the token (perhaps waiting for another caller's fetch, then fetching it), the ticket,
        # and once more both when WeChat refused the token
        token_at_worst = self._token.wait_seconds + token_fetch
        ticket_fetch = 2 * (token_at_worst + one_call)
        self._ticket = _Shared(
            "jsapi_ticket", ticket_key(self._app_id), int((ticket_fetch + 2.0) * 1000), ticket_fetch + 0.5
        )
        self._key = self._token.key
        self._forced_key = self._key + ":forced"
        self._delete_if = redis.register_script(_COMPARE_AND_DELETE)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    # ---- values shared through Redis, fetched single-flight -------------------------------------------

    async def _shared(self, shared: _Shared, fetch: Callable[[], Awaitable[tuple[str, int]]]) -> str:
        """The cached value, or `fetch()`'s (value, seconds to cache) by one caller across all processes."""
        cached = await self._redis.get(shared.key)
        if cached:
            return text(cached)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + shared.wait_seconds
        while True:
            if loop.time() >= deadline:
                raise UpstreamTimeout(f"{NAME}响应超时（等待 {shared.what} 刷新）")
            mine = secrets.token_hex(16)
            if await self._redis.set(shared.lock_key, mine, nx=True, px=shared.lock_ms):
                return await self._fetch_holding_lock(shared, mine, fetch)
            holder = await self._redis.get(shared.lock_key)
            if holder is None:  # the holder finished between our SET and GET
                cached = await self._redis.get(shared.key)
                if cached:
                    return text(cached)
                continue
            value = await self._wait_for(shared, raw(holder), deadline)
            if value is not None:
                return value
            # the holder went away without a value (it crashed and its lock expired): try to take over

    async def _fetch_holding_lock(
        self, shared: _Shared, mine: str, fetch: Callable[[], Awaitable[tuple[str, int]]]
    ) -> str:
        try:
            cached = await self._redis.get(shared.key)  # another holder may have just finished
            if cached:
                return text(cached)
            try:
                value, ttl = await fetch()
            except UpstreamTimeout:
                await self._redis.set(shared.failed_key, f"{mine}:timeout", px=FAILED_MARK_MS)
                raise
            except UpstreamError:
                await self._redis.set(shared.failed_key, f"{mine}:error", px=FAILED_MARK_MS)
                raise
            await self._redis.set(shared.key, value, ex=ttl)
            return value
        finally:
            await self._delete_if(keys=[shared.lock_key], args=[mine])

    async def _wait_for(self, shared: _Shared, holder: bytes, deadline: float) -> str | None:
        """Poll until the holder's value is cached (-> value), its fetch failed (-> raise) or it is gone."""
        loop = asyncio.get_running_loop()
        while True:
            if loop.time() >= deadline:
                log.warning("gave up waiting for another caller's WeChat %s refresh", shared.what)
                raise UpstreamTimeout(f"{NAME}响应超时（等待 {shared.what} 刷新）")
            await asyncio.sleep(POLL_SECONDS)
            cached, failed, current = await self._redis.mget(shared.key, shared.failed_key, shared.lock_key)
            if cached:
                return text(cached)
            if failed and raw(failed).startswith(holder + b":"):
                if raw(failed).endswith(b":timeout"):
                    raise UpstreamTimeout(f"{NAME}响应超时")
                raise UpstreamError(f"{NAME}暂时无法获取 {shared.what}")
            if current != holder:
                return None

    # ---- access token -------------------------------------------------------------------------------

    async def access_token(self) -> str:
        """The shared access token, fetched by one caller across all processes when the cache is cold."""
        return await self._shared(self._token, self._fetch_token)

    async def _replace_token(self, refused: str) -> str:
        """A token for a call WeChat answered 40001 / 42001 / 40014 with `refused`: another caller's
        replacement if there is one, else a fetch that may force a refresh (see the module docstring)."""
        await self._drop_token(refused)
        return await self._shared(self._token, lambda: self._fetch_token(refused))

    async def _fetch_token(self, refused: str | None = None) -> tuple[str, int]:
        token, ttl = await self._stable_token(force=False)
        if refused is None or token != refused:
            return token, ttl
        if not await self._redis.set(self._forced_key, b"1", nx=True, ex=FORCE_SPACING_SECONDS):
            log.warning("WeChat hands out the access token it refused; a refresh was forced under 30 s ago")
            return token, ttl
        log.warning("WeChat hands out the access token it refused: forcing a refresh")
        try:
            return await self._stable_token(force=True)
        except WeChatError as refusal:
            log.warning("WeChat refused to force a token refresh: errcode=%s", refusal.errcode)
            return token, ttl

    async def _stable_token(self, *, force: bool) -> tuple[str, int]:
        body = {
            "grant_type": "client_credential",
            "appid": self._app_id,
            "secret": self._secret,
            "force_refresh": force,
        }
        data = await call_json(
            self._client,
            "POST",
            "/cgi-bin/stable_token",
            name=NAME,
            attempts=self._attempts,
            idempotent=True,  # a normal call answers the current token; a forced one 30 s apart at most
            content=_utf8_json(body),
            headers=_JSON,
        )
        code = _errcode(data)
        if code != 0:
            log.warning("WeChat token fetch refused: errcode=%s", code)
            raise WeChatError(code, f"{NAME}拒绝发放 access_token（errcode={code}）")
        answer = validate_answer(_Token, data, name=NAME)
        ttl = _cache_seconds(answer.expires_in)
        log.info("WeChat access token %s, cached for %s s", "forced" if force else "fetched", ttl)
        return answer.access_token, ttl

    async def _drop_token(self, token: str) -> None:
        """Forget a token WeChat refused, unless another caller has already replaced it."""
        await self._delete_if(keys=[self._key], args=[token])

    async def _with_token(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> tuple[Any, int]:
        """Call `path` with the access token; once more with a new token when WeChat refused it.
        The answer and its errcode."""
        kwargs: dict[str, Any] = {}
        if body is not None:
            kwargs = {"content": _utf8_json(body), "headers": _JSON}

        async def call(token: str) -> tuple[Any, int]:
            answer = await call_json(
                self._client,
                method,
                path,
                name=NAME,
                attempts=self._attempts,
                idempotent=idempotent,
                params={"access_token": token, **(params or {})},
                **kwargs,
            )
            return answer, _errcode(answer)

        token = await self.access_token()
        answer, errcode = await call(token)
        if errcode in TOKEN_INVALID:
            log.info("WeChat refused the access token (errcode=%s), replacing it once", errcode)
            token = await self._replace_token(token)
            answer, errcode = await call(token)
        return answer, errcode

    # ---- JS-SDK ticket ------------------------------------------------------------------------------

    async def jsapi_ticket(self) -> str:
        """The shared JS-SDK ticket, fetched by one caller across all processes when the cache is cold."""
        return await self._shared(self._ticket, self._fetch_ticket)

    async def _fetch_ticket(self) -> tuple[str, int]:
        answer, errcode = await self._with_token("GET", "/cgi-bin/ticket/getticket", params={"type": "jsapi"})
        if errcode != 0:
            log.warning("WeChat jsapi_ticket fetch refused: errcode=%s", errcode)
            raise WeChatError(errcode, f"{NAME}拒绝发放 jsapi_ticket（errcode={errcode}）")
        ticket = validate_answer(_Ticket, answer, name=NAME)
        ttl = _cache_seconds(ticket.expires_in)
        log.info("WeChat jsapi_ticket fetched, cached for %s s", ttl)
        return ticket.ticket, ttl

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
        answer, errcode = await self._with_token("POST", "/cgi-bin/message/template/send", body=body)
        if errcode != 0:
            log.warning("WeChat template message refused: errcode=%s", errcode)
            raise WeChatError(errcode)
        return str(validate_answer(_Sent, answer, name=NAME).msgid)

    # ---- menu, QR codes ------------------------------------------------------------------------------

    async def create_menu(self, menu: dict[str, Any]) -> None:
        """Replace the custom menu with `menu` ({"button": [...]}); WeChatError when WeChat refuses it."""
        _, errcode = await self._with_token("POST", "/cgi-bin/menu/create", body=menu, idempotent=True)
        if errcode != 0:
            log.warning("WeChat menu refused: errcode=%s", errcode)
            raise WeChatError(errcode, f"{NAME}拒绝了菜单（errcode={errcode}）")

    async def create_qr(self, scene: str) -> QrTicket:
        """A permanent QR code whose scans carry `scene` (1 to 64 characters, ValueError otherwise)."""
        check_qr_scene(scene)
        body = {"action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": scene}}}
        answer, errcode = await self._with_token("POST", "/cgi-bin/qrcode/create", body=body)
        if errcode != 0:
            log.warning("WeChat QR code refused: errcode=%s", errcode)
            raise WeChatError(errcode)
        qr = validate_answer(_Qr, answer, name=NAME)
        return QrTicket.of(qr.ticket, qr.url)

    # ---- customer-service, mass and subscribe messages -----------------------------------------------

    async def send_custom(self, openid: str, message: dict[str, Any]) -> None:
        """Send a customer-service message; WeChatError with WeChat's errcode (45015, 45047, 43004, 40003 ...)."""
        check_custom_message(message)
        body = {"touser": openid, **message}
        _, errcode = await self._with_token("POST", "/cgi-bin/message/custom/send", body=body)
        if errcode != 0:
            log.warning("WeChat custom message refused: errcode=%s", errcode)
            raise WeChatError(errcode)

    async def mass_send_text(self, openids: list[str], content: str, clientmsgid: str) -> str:
        """Mass-send a text to 2 to 10 000 openids; WeChat's msg_id (the earlier job's for a clientmsgid
        WeChat has seen within 24 h)."""
        check_mass_send(openids, content, clientmsgid)
        body = {
            "touser": list(openids),
            "msgtype": "text",
            "text": {"content": content},
            "clientmsgid": clientmsgid,
        }
        answer, errcode = await self._with_token(
            "POST",
            "/cgi-bin/message/mass/send",
            body=body,
            idempotent=True,  # WeChat sends one clientmsgid once within 24 h
        )
        if errcode == CLIENTMSGID_EXISTS and isinstance(answer.get("msg_id"), int | str):
            log.info("WeChat had this mass send's clientmsgid already: the earlier job stands")
        elif errcode != 0:
            log.warning("WeChat mass send refused: errcode=%s", errcode)
            raise WeChatError(errcode)
        return str(validate_answer(_MassSent, answer, name=NAME).msg_id)

    async def send_subscribe(
        self, openid: str, template_id: str, data: dict[str, str], page: str | None = None
    ) -> None:
        """Send a subscribe message (订阅通知); WeChatError(43101) when the user gave no consent."""
        body: dict[str, Any] = {
            "touser": openid,
            "template_id": template_id,
            "data": {key: {"value": value} for key, value in data.items()},
        }
        if page:
            body["page"] = page
        _, errcode = await self._with_token("POST", "/cgi-bin/message/subscribe/bizsend", body=body)
        if errcode != 0:
            log.warning("WeChat subscribe message refused: errcode=%s", errcode)
            raise WeChatError(errcode)
