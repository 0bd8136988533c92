"""The push sandbox: a JPush stand-in in the process that keeps what it was given instead of sending it.

It behaves as JPush does where our code depends on it: a `cid` already used answers the first push's
message id and sends nothing again; a registration id it does not know is refused as JPush refuses one
(error 1011, "cannot find user by this audience"). Every id is known but those starting with `gone-`
(an uninstalled app). A device whose id starts with `offline-` takes the message but never reports it
received (a phone switched off for good); every other device reports it received at once. Ids starting
with `busy-` answer as an overloaded JPush does (a retryable error) the
first two times they are pushed to, then take the message: what a retry test needs, deterministic.

Redis (so every worker and the test client see the same): list `sandbox:push:{registration_id}` of JSON
`{"registration_id", "title", "body", "extras", "msg_id", "cid", "sent_at"}`, newest last, the last 50 kept,
expiring a day after the latest; `sandbox:push:cid:{cid}` → msg_id; `sandbox:push:busy:{id}` → tries.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable
from typing import cast

import orjson
from redis.asyncio import Redis

from api.kit import clock
from integrations.push.base import PushMessage, PushRejected, PushRetryable
from integrations.sequence import next_id

KEEP = 50
TTL_SECONDS = 24 * 3600
GONE_PREFIX = "gone-"
BUSY_PREFIX = "busy-"
BUSY_TIMES = 2
OFFLINE_PREFIX = "offline-"
REPORT_MAX = 100


def sandbox_key(registration_id: str) -> str:
    return f"sandbox:push:{registration_id}"


class SandboxPush:
    """A PushGateway that records instead of sending."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def new_cid(self) -> str:
        return f"sandbox-{secrets.token_hex(8)}"

    async def new_cids(self, count: int) -> list[str]:
        return [await self.new_cid() for _ in range(count)]

    async def push(self, message: PushMessage, cid: str) -> str:
        if not message.registration_ids:
            raise ValueError("a push needs at least one registration id")
        earlier = await self._redis.get(f"sandbox:push:cid:{cid}")
        if earlier is not None:
            return earlier.decode() if isinstance(earlier, bytes) else str(earlier)
        for registration_id in message.registration_ids:
            if registration_id.startswith(BUSY_PREFIX):
                tries = await self._redis.incr(f"sandbox:push:busy:{registration_id}")
                await self._redis.expire(f"sandbox:push:busy:{registration_id}", TTL_SECONDS)
                if tries <= BUSY_TIMES:
                    raise PushRetryable("JPush 1000: server busy (sandbox)")
        live = tuple(r for r in message.registration_ids if not r.startswith(GONE_PREFIX))
        if not live:
            raise PushRejected("JPush 1011: cannot find user by this audience", gone=message.registration_ids)
        msg_id = await next_id(self._redis, "sandbox:push:msg_id_seq")
        moment = clock.now().isoformat(timespec="seconds")
        async with self._redis.pipeline(transaction=True) as pipe:
            for registration_id in live:
                key = sandbox_key(registration_id)
                record = {
                    "registration_id": registration_id,
                    "title": message.title,
                    "body": message.body,
                    "extras": message.extras,
                    "msg_id": msg_id,
                    "cid": cid,
                    "sent_at": moment,
                }
                pipe.rpush(key, orjson.dumps(record))
                pipe.ltrim(key, -KEEP, -1)
                pipe.expire(key, TTL_SECONDS)
            pipe.set(f"sandbox:push:cid:{cid}", msg_id, ex=TTL_SECONDS)
            received = sum(1 for r in live if not r.startswith(OFFLINE_PREFIX))
            pipe.set(f"sandbox:push:received:{msg_id}", received, ex=TTL_SECONDS)
            await pipe.execute()
        return msg_id

    async def received(self, msg_ids: list[str]) -> dict[str, int]:
        if len(msg_ids) > REPORT_MAX:
            raise ValueError(f"at most {REPORT_MAX} msg_ids a call")
        if not msg_ids:
            return {}
        counts = await self._redis.mget([f"sandbox:push:received:{m}" for m in msg_ids])
        return {m: int(c) for m, c in zip(msg_ids, counts, strict=True) if c is not None}

    async def sent_to(self, registration_id: str) -> list[dict]:
        """Pushes recorded for a device, oldest first."""
        items = await cast(Awaitable[list[bytes]], self._redis.lrange(sandbox_key(registration_id), 0, -1))
        return [orjson.loads(item) for item in items]

    async def aclose(self) -> None:
        return None
