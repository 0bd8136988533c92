"""The push sandbox: a JPush stand-in in the process that keeps what it was given instead of sending it.

It behaves as JPush does where our code depends on it: a `cid` already used answers the first push's
message id and sends nothing again; a registration id it does not know is refused as JPush refuses one
(error 1011, "cannot find user by this audience"). Every id is known but those starting with `gone-`
(an uninstalled app). Ids starting with `busy-` answer as an overloaded JPush does (a retryable error) the
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

KEEP = 50
TTL_SECONDS = 24 * 3600
GONE_PREFIX = "gone-"
BUSY_PREFIX = "busy-"
BUSY_TIMES = 2


def sandbox_key(registration_id: str) -> str:
    return f"sandbox:push:{registration_id}"


class SandboxPush:
    """A PushGateway that records instead of sending."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def new_cid(self) -> str:
        return f"sandbox-{secrets.token_hex(8)}"

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
        msg_id = str(await self._redis.incr("sandbox:push:msg_id_seq"))
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
            await pipe.execute()
        return msg_id

    async def sent_to(self, registration_id: str) -> list[dict]:
        """Pushes recorded for a device, oldest first."""
        items = await cast(Awaitable[list[bytes]], self._redis.lrange(sandbox_key(registration_id), 0, -1))
        return [orjson.loads(item) for item in items]

    async def aclose(self) -> None:
        return None
