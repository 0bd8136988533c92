"""Message ids the sandboxes hand out: numeric, as JPush's and WeChat's are, and never handed out twice for
one database, though the embedded Redis (in-process) begins empty at every start. A counter in Redis that
starts, the first time it is used, from the current time in microseconds: a restart begins past every id the
last run gave (unless that run gave out more ids than the microseconds it ran), and a Redis that outlives
restarts keeps counting. Receipts are matched to deliveries by these ids, so a repeat would settle the wrong message."""

from __future__ import annotations

import time

from redis.asyncio import Redis


async def next_id(redis: Redis, key: str) -> str:
    async with redis.pipeline(transaction=False) as pipe:  # one round trip for both
        pipe.set(key, time.time_ns() // 1000, nx=True)
        pipe.incr(key)
        _, value = await pipe.execute()
    return str(value)
