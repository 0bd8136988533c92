"""Redis through redis.asyncio; "memory://" is fakeredis in this process (single worker only)."""

from __future__ import annotations

from redis.asyncio import Redis

from api.kit.config import Settings


def text(value: bytes | str) -> str:
    """A Redis reply as text (our clients answer bytes; redis-py's types allow either)."""
    return value.decode() if isinstance(value, bytes) else value


def raw(value: bytes | str) -> bytes:
    """A Redis reply as bytes."""
    return value if isinstance(value, bytes) else value.encode()


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
