"""The official account: its callback's messages answered within WeChat's 5 seconds (or later, by the
workers, as a customer-service message), the H5 pages' web authorisation and JS-SDK signature, and what the
account remembers of a follower.

De-duplication: WeChat tries a callback three times when it gets no answer within 5 s, so each message is
handled once: `SET wechat:seen:{app_id}:{MsgId} NX EX seen_ttl` (events have no MsgId: sender + CreateTime +
event). A message that is not answered within `reply_budget` seconds (a slow database, say) is handed to the
workers through a Redis stream `wechat:deferred:{app_id}` (consumer group `workers`) and the callback answers
`success` at once; a worker answers it from the start and sends the reply as a customer-service message
(WeChat allows one within 48 h of the user's message). An entry a worker took and did not finish (it
crashed, WeChat failed) is taken again by any worker after `DEFERRED_RETRY_MS`; after `DEFERRED_TRIES` tries it
is given up and logged."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import os
import random
import secrets
import socket
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlencode, urlsplit, urlunsplit

import orjson
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api.identity import service as identity
from api.kit import clock
from api.kit.errors import UpstreamError
from api.wechat.deps import Official
from api.wechat.errors import OAuthStateInvalid, PageNotAllowed
from api.wechat.replies import Reply, Said, answer, moment
from api.wechat.schemas import JssdkConfig, WeChatMe
from integrations.wechat import WeChatError
from models import wechat as db

log = logging.getLogger("ywt.wechat")

GROUP = "workers"
DEFERRED_RETRY_MS = 30_000
DEFERRED_TRIES = 5
DEFERRED_KEEP = 100_000  # the stream is trimmed to about this many entries
# errcodes after which a customer-service message will never go: 48 h passed, not following, bad openid
CUSTOM_GIVE_UP = frozenset({45015, 43004, 40003, 45047})
STATE_COOKIE = "ywt_wx_oauth"

__all__ = [
    "Official",
    "Reply",
    "jssdk_config",
    "me",
    "oauth_finish",
    "oauth_start",
    "receive",
    "replies_forever",
    "replies_once",
]


def stream_key(official: Official) -> str:
    return f"wechat:deferred:{official.settings.app_id}"


def seen_key(official: Official, message: dict[str, Any]) -> str:
    app = official.settings.app_id
    msgid = str(message.get("MsgId") or "")
    if msgid:
        return f"wechat:seen:{app}:{msgid[:64]}"
    sender = str(message.get("FromUserName", ""))[:128]
    return f"wechat:seen:{app}:{sender}:{str(message.get('CreateTime', ''))[:16]}:{str(message.get('Event', ''))[:40]}"


# ---- the callback ----------------------------------------------------------------------------------------


async def receive(official: Official, message: dict[str, Any]) -> Reply | None:
    """The passive reply to a message (None: "success", nothing to say now). A message seen before is not
    handled again; one that takes longer than `reply_budget` is handed to the workers."""
    key = seen_key(official, message)
    if not await _first_time(official, message, key):
        log.info("wechat: a message seen before", extra={"fields": {"event": "wechat.duplicate"}})
        return None
    try:
        # past the budget the answer is cancelled where it stands (a transaction in flight rolls back):
        # the workers answer it again from the start, and every step of an answer may be done twice
        async with asyncio.timeout(official.settings.reply_budget):
            said = await answer(official, message)
    except TimeoutError:
        await _defer_or_forget(official, message, key, "slow")
        return None
    except Exception:
        log.exception("wechat: a message could not be answered now; the workers will")
        await _defer_or_forget(official, message, key, "failed")
        return None
    _log_said(said)
    return said.reply


async def _first_time(official: Official, message: dict[str, Any], key: str) -> bool:
    """`SET key NX EX seen_ttl`, and in the same round trip what confirms this worker's copy of the
    sender's binding (api/identity/bound.py): most messages then need no SELECT to know who wrote."""
    openid = str(message.get("FromUserName", ""))[:128]
    seen = ("SET", key, b"1", "NX", "EX", official.settings.seen_ttl)
    if not openid:
        (fresh,) = await official.kernel.versions.together(seen)
        return bool(fresh)
    generation_key, version_key = identity.wechat_binding_keys(official.identity, openid)
    # a generation Redis does not hold yet (never bumped, Redis restarted) starts at a random number, so a
    # copy read under an earlier one is not confirmed by chance; INCR goes on from it
    start = ("SET", generation_key, random.getrandbits(62), "NX")  # noqa: S311 — must not repeat, need not be secret
    if version_key is None:
        fresh, _, generation = await official.kernel.versions.together(seen, start, ("GET", generation_key))
        version = None
    else:
        fresh, _, generation, version = await official.kernel.versions.together(
            seen, start, ("GET", generation_key), ("GET", version_key)
        )
    if fresh:
        identity.wechat_binding_confirmed(official.identity, openid, generation, version)
    return bool(fresh)


def _log_said(said: Said) -> None:
    if said.did:
        log.info("wechat: handled", extra={"fields": {"event": "wechat.handled", "did": ",".join(said.did)}})


async def _defer_or_forget(official: Official, message: dict[str, Any], key: str, why: str) -> None:
    """Hand the message to the workers; if even that fails, forget that it was seen (WeChat's retry is
    then handled) and let the error through (the callback answers 5xx, so WeChat tries again)."""
    try:
        await official.redis.xadd(
            stream_key(official),
            {"message": orjson.dumps(message), "why": why},
            maxlen=DEFERRED_KEEP,
            approximate=True,
        )
    except Exception:
        with contextlib.suppress(Exception):
            await official.redis.delete(key)
        raise
    log.info(
        "wechat: reply deferred to the workers", extra={"fields": {"event": "wechat.deferred", "why": why}}
    )


# ---- the workers' side --------------------------------------------------------------------------------


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


async def _ensure_group(official: Official) -> None:
    try:
        await official.redis.xgroup_create(stream_key(official), GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


@dataclass
class RepliesReport:
    answered: int = 0
    sent: int = 0
    retried: int = 0
    given_up: int = 0


async def replies_once(official: Official, consumer: str, count: int = 20) -> RepliesReport:
    """One pass: entries another worker left unfinished for `DEFERRED_RETRY_MS`, then new ones."""
    report = RepliesReport()
    await _ensure_group(official)
    stream = stream_key(official)
    entries: list[tuple[bytes, dict[bytes, bytes]]] = []
    claimed = await official.redis.xautoclaim(
        stream, GROUP, consumer, min_idle_time=DEFERRED_RETRY_MS, start_id="0-0", count=count
    )
    entries.extend(e for e in claimed[1] if e and e[1])
    fresh = await official.redis.xreadgroup(GROUP, consumer, {stream: ">"}, count=count)
    for _, items in fresh or []:
        entries.extend(items)
    for entry_id, fields in entries:
        await _one(official, stream, entry_id, fields, report)
    return report


async def _one(
    official: Official, stream: str, entry_id: bytes, fields: dict[bytes, bytes], report: RepliesReport
) -> None:
    tries_key = stream + ":tries"
    try:
        message = orjson.loads(fields[b"message"])
        said = await answer(official, message)
        _log_said(said)
        report.answered += 1
        if said.reply is not None:
            await _send_custom(official, message, said.reply)
            report.sent += 1
    except WeChatError as exc:
        if exc.errcode in CUSTOM_GIVE_UP:
            log.info("wechat: deferred reply not sent", extra={"fields": {"errcode": exc.errcode}})
        else:
            await _try_again(official, stream, tries_key, entry_id, report, f"errcode {exc.errcode}")
            return
    except (UpstreamError, OSError, ConnectionError) as exc:
        await _try_again(official, stream, tries_key, entry_id, report, type(exc).__name__)
        return
    except Exception as exc:  # noqa: BLE001 — a database down, a bug: tried again, then given up, logged
        log.exception("wechat: a deferred message failed")
        await _try_again(official, stream, tries_key, entry_id, report, type(exc).__name__)
        return
    await _done(official, stream, tries_key, entry_id)


async def _try_again(
    official: Official, stream: str, tries_key: str, entry_id: bytes, report: RepliesReport, why: str
) -> None:
    tries = int(await cast(Awaitable[int], official.redis.hincrby(tries_key, entry_id.decode(), 1)))
    if tries >= DEFERRED_TRIES:
        log.warning("wechat: a deferred message given up", extra={"fields": {"tries": tries, "why": why}})
        report.given_up += 1
        await _done(official, stream, tries_key, entry_id)
        return
    report.retried += 1  # left pending: taken again after DEFERRED_RETRY_MS


async def _done(official: Official, stream: str, tries_key: str, entry_id: bytes) -> None:
    async with official.redis.pipeline(transaction=True) as pipe:
        pipe.xack(stream, GROUP, entry_id)
        pipe.xdel(stream, entry_id)
        pipe.hdel(tries_key, entry_id.decode())
        await pipe.execute()


async def _send_custom(official: Official, message: dict[str, Any], reply: Reply) -> None:
    age = (clock.now() - moment(message)).total_seconds()
    if age > official.settings.custom_window:
        log.info("wechat: too late for a customer-service message", extra={"fields": {"age_s": int(age)}})
        return
    await official.wechat.send_custom(str(message["FromUserName"]), reply.custom())


async def replies_forever(official: Official, stop: asyncio.Event, interval: float = 0.5) -> None:
    """The deferred replies, until `stop`: embedded mode runs this in the server, production in api.worker."""
    consumer = consumer_name()
    while not stop.is_set():
        busy = False
        try:
            report = await replies_once(official, consumer)
            busy = report.answered + report.retried + report.given_up > 0
        except asyncio.CancelledError:
            raise
        except (RedisConnectionError, RedisTimeoutError) as exc:  # Redis down for a moment: the loop goes on
            log.warning("wechat: deferred replies pass failed, Redis unavailable: %s", type(exc).__name__)
        except Exception:  # noqa: BLE001 — a bug on one message: logged whole, the loop goes on
            log.exception("wechat: deferred replies pass failed")
        if busy:
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


# ---- web authorisation (snsapi_base) -------------------------------------------------------------------


def _allowed_page(official: Official, value: str, field: str) -> str:
    """A path of ours ("/h5/…") or an http(s) URL on one of `h5_domains`; anything else is refused."""
    if not value or len(value) > 400 or any(c in value for c in "\r\n\t\\") or value.startswith("//"):
        raise PageNotAllowed(field)
    if value.startswith("/"):
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or (parts.hostname or "") not in official.settings.h5_domains:
        raise PageNotAllowed(field)
    if parts.username or parts.password:
        raise PageNotAllowed(field)
    return value


def _sign(official: Official, payload: bytes) -> str:
    return official.kernel.index.digest(base64.urlsafe_b64encode(payload).decode(), "wechat_oauth_state")[:32]


def oauth_start(official: Official, next_page: str) -> tuple[str, str]:
    """WeChat's authorisation page to send the browser to, and the value of the cookie that binds the
    returning `state` to this browser."""
    target = _allowed_page(official, next_page, "next")
    nonce = secrets.token_urlsafe(18)
    expires = int(time.time()) + official.settings.oauth_state_ttl
    payload = orjson.dumps({"n": hashlib.sha256(nonce.encode()).hexdigest()[:32], "x": target, "e": expires})
    state = base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + _sign(official, payload)
    query = urlencode(
        {
            "appid": official.settings.app_id,
            "redirect_uri": official.settings.oauth_redirect_uri,
            "response_type": "code",
            "scope": "snsapi_base",
            "state": state,
        }
    )
    return f"{official.settings.oauth_authorize_url}?{query}#wechat_redirect", nonce


def _read_state(official: Official, state: str, cookie: str | None) -> str:
    """The page to return to, when the state is ours, fresh and this browser's; else 403."""
    if not cookie or "." not in state or len(state) > 400:
        raise OAuthStateInvalid()
    encoded, signature = state.rsplit(".", 1)
    try:
        payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        data = orjson.loads(payload)
    except (ValueError, orjson.JSONDecodeError):
        raise OAuthStateInvalid() from None
    if not hmac.compare_digest(_sign(official, payload), signature):
        raise OAuthStateInvalid()
    if not isinstance(data, dict) or not isinstance(data.get("e"), int) or data["e"] < time.time():
        raise OAuthStateInvalid()
    if not hmac.compare_digest(str(data.get("n", "")), hashlib.sha256(cookie.encode()).hexdigest()[:32]):
        raise OAuthStateInvalid()
    return str(data.get("x", "/"))


async def oauth_finish(official: Official, code: str, state: str, cookie: str | None) -> str:
    """Where the browser goes after WeChat's page: its `next`, with a one-time sign-in ticket (bound) or a
    binding ticket (not bound yet) in the `#` fragment, never in the query (it would reach servers' logs)."""
    target = _read_state(official, state, cookie)
    kind, ticket, ttl = await identity.wechat_web_sign_in(official.identity, code)
    name = "signin_ticket" if kind == "signin" else "binding_ticket"
    parts = urlsplit(target)
    fragment = urlencode({name: ticket, "expires_in": ttl})
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", parts.query, fragment))


# ---- JS-SDK ---------------------------------------------------------------------------------------------


async def jssdk_config(official: Official, url: str) -> JssdkConfig:
    """`wx.config` for a page of ours: sha1 over jsapi_ticket, noncestr, timestamp and the URL without its
    `#…` (WeChat's JS-SDK signature, appendix 1; written here: wechatpy has it only on its sync client)."""
    page = _allowed_page(official, url.split("#", 1)[0], "url")
    if page.startswith("/"):
        raise PageNotAllowed("url", "需要完整的页面地址(https://…)")
    ticket = await official.wechat.jsapi_ticket()
    nonce = secrets.token_hex(8)
    timestamp = int(time.time())
    plain = f"jsapi_ticket={ticket}&noncestr={nonce}&timestamp={timestamp}&url={page}"
    return JssdkConfig(
        appId=official.settings.app_id,
        timestamp=timestamp,
        nonceStr=nonce,
        signature=hashlib.sha1(plain.encode()).hexdigest(),  # noqa: S324 — WeChat's algorithm
    )


# ---- what the account remembers of him ----------------------------------------------------------------


async def me(official: Official, account_id: int) -> WeChatMe:
    """Whether his bound WeChat follows, and the point he last scanned (for his next application, while it
    is recent)."""
    openid = await identity.wechat_openid_of(account_id)
    follower = await db.follower(openid) if openid else None
    if follower is None:
        return WeChatMe(bound=openid is not None, follows=None, point=None, point_since=None)
    point = follower.scene_point
    fresh = (
        follower.scene_at is not None
        and (clock.now() - follower.scene_at).days < official.settings.scene_days
    )
    return WeChatMe(
        bound=True,
        follows=follower.subscribed,
        point={"code": point.code, "name": point.name} if point is not None and fresh else None,
        point_since=follower.scene_at if point is not None and fresh else None,
    )
