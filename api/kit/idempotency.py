"""Idempotency-Key on creating POSTs (IETF httpapi draft): the same key and body replay the first answer,
the same key with another body is 422, a concurrent duplicate waits for the first and replays it.
Keys are scoped per caller and route, kept for `applications.idempotency_ttl` seconds (24 h by default)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any, TypeVar, cast

import orjson
from sanic import Request
from sanic.response import HTTPResponse

from api.kit.answer import Answer
from api.kit.auth import Principal
from api.kit.errors import (
    IdempotencyInProgress,
    IdempotencyKeyReused,
    IdempotencyRetry,
    InvalidIdempotencyKey,
)
from api.kit.versions import Claim

H = TypeVar("H", bound=Callable[..., Awaitable[HTTPResponse]])
WAIT_STEPS = 50
WAIT_STEP = 0.1
# how long a claim lives while its request runs: longer than any request may take (Sanic's response timeout
# is 60 s), short enough that a worker killed mid-request does not block the key for the whole TTL
PENDING_TTL = 120


def _valid_key(key: str) -> bool:
    return 1 <= len(key) <= 128 and all(33 <= ord(c) <= 126 for c in key)


def _slot(request: Request, owner: int, key: str) -> str:
    return f"idem:{owner}:{request.method}:{request.path}:{hashlib.sha256(key.encode()).hexdigest()}"


def _fingerprint(request: Request) -> str:
    return hashlib.sha256(request.body or b"").hexdigest()


def claim_of(request: Request, principal: Principal) -> Claim | None:
    """The claim `@require` makes in its session check (one Redis round trip for both); None without a
    valid key (the handler then answers as without one, or 422)."""
    key = request.headers.get("idempotency-key")
    if key is None or not _valid_key(key):
        return None
    ttl = request.app.ctx.settings.applications.idempotency_ttl
    pending = orjson.dumps({"state": "pending", "body": _fingerprint(request)})
    return Claim(key=_slot(request, principal.account_id, key), value=pending, ttl=min(ttl, PENDING_TTL))


def idempotent(handler: H) -> H:
    @wraps(handler)
    async def wrapped(request: Request, *args: Any, **kwargs: Any) -> HTTPResponse:
        key = request.headers.get("idempotency-key")
        if key is None:
            return await handler(request, *args, **kwargs)
        if not _valid_key(key):
            raise InvalidIdempotencyKey()
        redis = request.app.ctx.services.kernel.redis
        ttl = request.app.ctx.settings.applications.idempotency_ttl
        fingerprint = _fingerprint(request)
        pre: tuple[Claim, bool] | None = getattr(request.ctx, "claim", None)
        if pre is not None:  # claimed (or not) by @require in its session check
            slot, claimed = pre[0].key, pre[1]
        else:
            slot = _slot(request, request.ctx.principal.account_id, key)
            pending = orjson.dumps({"state": "pending", "body": fingerprint})
            claimed = bool(await redis.set(slot, pending, nx=True, ex=min(ttl, PENDING_TTL)))
        if not claimed:
            return await _replay(redis, slot, fingerprint)
        try:
            response = await handler(request, *args, **kwargs)
        except BaseException:
            await redis.delete(slot)  # nothing was created: a retry with the same key runs again
            raise
        if 200 <= response.status < 300:
            record = {
                "state": "done",
                "body": fingerprint,
                "status": response.status,
                "content_type": response.content_type,
                "response": (response.body or b"").decode(),
            }
            await redis.set(slot, orjson.dumps(record), ex=ttl)
        else:
            await redis.delete(slot)
        return response

    marked: Any = wrapped  # Any: it carries the attribute below, read by kit.auth.require
    marked.__ywt_claim__ = claim_of
    return cast(H, marked)


async def _replay(redis: Any, slot: str, fingerprint: str) -> HTTPResponse:
    for _ in range(WAIT_STEPS):
        raw = await redis.get(slot)
        if raw is None:
            raise IdempotencyRetry()
        record = orjson.loads(raw)
        if record["body"] != fingerprint:
            raise IdempotencyKeyReused()
        if record["state"] == "done":
            return Answer(
                record["response"].encode(),
                status=record["status"],
                content_type=record["content_type"],
                headers={"Idempotent-Replayed": "true"},
            )
        await asyncio.sleep(WAIT_STEP)
    raise IdempotencyInProgress()
