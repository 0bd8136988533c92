"""Rate limits through the `limits` library: a moving window in Redis, shared by every worker.

A moving window keeps the time of each of a subject's last `limit` hits, so no `window` seconds ever hold more
than `limit` of them. (A fixed window, counting per clock-aligned bucket, lets 2× the limit through around a
bucket's boundary.) Refused hits are not stored: a client that keeps knocking is let in again `window` seconds
after the hits that filled its window, not after its last refusal.

limits' redis-py storage runs on our own client's connection pool: the same Redis (fakeredis in embedded
mode), the same timeouts, no second pool. Redis down means the limiter fails closed: redis-py's
ConnectionError or TimeoutError reaches the error handler, which answers 503.

A hot route that needs several limits and a few keys in one round trip uses `hit_together`: each hit is sent
as a command (`hit_command`: limits' own script by its SHA, on limits' own key) with the route's other commands
through the round trip it is given (`AccountVersions.together`), and each reply is judged by `settle`. The
count is the one `hit` keeps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast
from urllib.parse import quote

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.storage.redis.redispy import RedispyBridge
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import ConnectionPool, Redis
from redis.exceptions import NoScriptError, ResponseError

from api.kit.errors import TooManyRequests

KEY_PREFIX = "rl"
NAMESPACE = "ywt"


def _part(value: str) -> str:
    # percent-encoded: no "/" (limits' separator), no glob character: a subject's keys match one pattern
    return quote(value, safe="")


class RateLimiter:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._pool: ConnectionPool | None = None
        self._strategy: MovingWindowRateLimiter | None = None

    @property
    def _window(self) -> MovingWindowRateLimiter:
        """limits' moving window on the pool our client has now: whatever replaces the client's pool (a test
        pointing it at a dead port) reaches the limiter too, as it reaches every other user of the client."""
        pool = self.redis.connection_pool
        if self._strategy is None or pool is not self._pool:
            storage = RedisStorage(
                "async+redis://",
                implementation="redispy",
                key_prefix=KEY_PREFIX,
                # limits types its **options as scalars, yet hands them to redis-py, which takes a pool here
                connection_pool=pool,  # type: ignore[arg-type]
            )
            self._pool, self._strategy = pool, MovingWindowRateLimiter(storage)
        return self._strategy

    @staticmethod
    def _item(limit: int, window: int) -> RateLimitItem:
        return RateLimitItemPerSecond(limit, window, namespace=NAMESPACE)

    @staticmethod
    def _who(name: str, subject: str) -> tuple[str, str]:
        # keys are rl:ywt/<subject>/<name>/<limit>/<window>/second: the subject first, for forget()
        return _part(subject), _part(name)

    async def hit(self, name: str, subject: str, limit: int, window: int) -> None:
        """Count one attempt; raise 429 with Retry-After when `limit` attempts already passed in the last
        `window` seconds. Retry-After is when the oldest of them leaves the window."""
        counted = await self._window.hit(self._item(limit, window), *self._who(name, subject))
        await self.settle(name, subject, limit, window, counted)

    def hit_command(self, name: str, subject: str, limit: int, window: int) -> tuple[Any, ...]:
        """The command that counts one attempt as `hit` does (limits' moving-window script, called by its SHA,
        with limits' own key and arguments), for a caller sending it together with others; its reply goes to
        `settle`. A Redis that does not hold the script yet answers NOSCRIPT (`hit` loads it)."""
        bridge = cast(RedisStorage, self._window.storage).bridge
        script = cast(RedispyBridge, bridge).lua_acquire_moving_window  # implementation="redispy" above
        item = self._item(limit, window)
        key = bridge.prefixed_key(item.key_for(*self._who(name, subject)))
        return ("EVALSHA", script.sha, 1, key, time.time(), item.amount, item.get_expiry(), 1)

    async def hit_together(
        self,
        together: Callable[..., Awaitable[list[Any]]],
        hits: Sequence[tuple[str, str, int, int]],
        *commands: tuple[Any, ...],
    ) -> list[Any]:
        """Count each of `hits` (`hit`'s arguments; 429 when one is over its limit) and run `commands`, in the
        one round trip `together` makes (AccountVersions.together); the commands' replies, in order. Every hit
        is counted, even after one is refused. When Redis does not hold limits' script yet, one call each
        (the first `hit` loads it)."""
        try:
            replies = await together(*(self.hit_command(*hit) for hit in hits), *commands)
        except ResponseError as exc:
            if not (isinstance(exc, NoScriptError) or "NOSCRIPT" in str(exc)):
                raise
        else:
            for hit, reply in zip(hits, replies, strict=False):
                await self.settle(*hit, reply)
            return replies[len(hits) :]
        for hit in hits:
            await self.hit(*hit)
        return [await self.redis.execute_command(*command) for command in commands]

    async def settle(self, name: str, subject: str, limit: int, window: int, reply: Any) -> None:
        """The answer of a `hit_command`'s reply: nothing when the attempt was counted, else 429 as `hit`."""
        if reply:  # the script's true is 1, its false is nil
            return
        stats = await self._window.get_window_stats(self._item(limit, window), *self._who(name, subject))
        raise TooManyRequests(retry_after=max(1, math.ceil(stats.reset_time - time.time())))

    async def reset(self, name: str, subject: str, limit: int, window: int) -> None:
        """Forget the attempts counted by `hit` with the same arguments."""
        await self._window.clear(self._item(limit, window), *self._who(name, subject))

    async def forget(self, subject: str) -> None:
        """Forget every attempt of `subject` under any name, limit and window (a deleted account's phone)."""
        pattern = f"{KEY_PREFIX}:{NAMESPACE}/{_part(subject)}/*"
        keys = [key async for key in self.redis.scan_iter(match=pattern, count=1000)]
        if keys:
            await self.redis.delete(*keys)
