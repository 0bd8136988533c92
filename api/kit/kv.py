"""Redis through redis.asyncio; "memory://" is fakeredis in this process (single worker only).

The server's client times every command and pipeline (api.kit.metrics): `execute_command`, where every
command and script call of redis-py passes, and a pipeline's `execute`, one observation per round trip."""

from __future__ import annotations

import time
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from api.kit import metrics
from api.kit.config import Settings


def text(value: bytes | str) -> str:
    """A Redis reply as text (our clients answer bytes; redis-py's types allow either)."""
    return value.decode() if isinstance(value, bytes) else value


def raw(value: bytes | str) -> bytes:
    """A Redis reply as bytes."""
    return value if isinstance(value, bytes) else value.encode()


class TimedPipeline(Pipeline):
    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        started = time.perf_counter()
        try:
            return await super().execute(raise_on_error)
        finally:
            name = "MULTI" if self.is_transaction or self.explicit_transaction else "PIPELINE"
            metrics.observe_redis(name, time.perf_counter() - started)


class TimedRedis(Redis):
    """redis-py's client, each command and pipeline round trip observed by command name."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        started = time.perf_counter()
        try:
            return await super().execute_command(*args, **options)
        finally:
            metrics.observe_redis(str(args[0]), time.perf_counter() - started)

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> Pipeline:
        return TimedPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


def make_redis(settings: Settings, *, timed: bool = False) -> Redis:
    """The Redis client of `settings`; `timed`: the server's, whose calls are metrics (a TimedRedis on the
    same connection pool, which it then owns)."""
    client: Redis
    if settings.memory_redis:
        from fakeredis import FakeAsyncRedis, FakeServer

        client = FakeAsyncRedis(server=FakeServer(), decode_responses=False)
    else:
        timeout = settings.redis.timeout
        client = Redis.from_url(
            settings.redis.url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=30,
            retry_on_timeout=False,
        )
    return TimedRedis.from_pool(client.connection_pool) if timed else client
