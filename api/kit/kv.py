"""Redis through redis.asyncio; "memory://" is fakeredis in this process (single worker only)."""

from __future__ import annotations

from redis.asyncio import Redis

from api.kit.config import Settings


def make_redis(settings: Settings) -> Redis:
    if settings.memory_redis:
        from fakeredis import FakeAsyncRedis, FakeServer

        return FakeAsyncRedis(server=FakeServer(), decode_responses=False)
    timeout = settings.redis.timeout
    return Redis.from_url(
        settings.redis.url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
        retry_on_timeout=False,
    )
