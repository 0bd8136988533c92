"""Fixed-window counters in Redis, shared by every worker. Redis down means the limiter fails closed (503)."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from api.kit.errors import TooManyRequests

# INCR the window's counter, set its expiry on first hit; answer the count and the seconds left
_HIT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('TTL', KEYS[1])
return {n, ttl}
"""


class RateLimiter:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._hit = redis.register_script(_HIT)

    async def hit(self, name: str, subject: str, limit: int, window: int) -> None:
        """Count one attempt; raise 429 with Retry-After when `limit` is passed within `window` seconds."""
        bucket = int(time.time() // window)
        key = f"rl:{name}:{subject}:{bucket}"
        count, ttl = await self._hit(keys=[key], args=[window])
        if int(count) > limit:
            raise TooManyRequests(retry_after=int(ttl) if int(ttl) > 0 else window)

    async def reset(self, name: str, subject: str, window: int) -> None:
        bucket = int(time.time() // window)
        await self.redis.delete(f"rl:{name}:{subject}:{bucket}")
