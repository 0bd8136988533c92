"""The catalogue cache's version recheck: once a second, one request asks Redis; the requests that arrive
while it waits take the version known instead of all asking at once."""

from __future__ import annotations

import asyncio

from api.catalog.service import CatalogCache


class SlowRedis:
    def __init__(self, version: bytes) -> None:
        self.version = version
        self.gets = 0

    async def get(self, key: str) -> bytes:
        self.gets += 1
        await asyncio.sleep(0.01)
        return self.version


async def test_concurrent_requests_at_a_recheck_ask_redis_once():
    redis = SlowRedis(b"1")
    cache = CatalogCache(redis, ttl=60, recheck=1.0)  # type: ignore[arg-type]
    assert await cache._version_now() == b"1"
    assert redis.gets == 1
    cache._checked -= 2  # the recheck interval has passed
    redis.version = b"2"
    versions = await asyncio.gather(*(cache._version_now() for _ in range(64)))
    assert redis.gets == 2
    assert versions[0] == b"2"  # the one that asked sees the new version
    assert set(versions[1:]) == {b"1"}  # the others, the one known a moment ago
    assert await cache._version_now() == b"2"
    assert redis.gets == 2


async def test_a_failed_recheck_is_tried_again_by_the_next_request():
    from redis.exceptions import ConnectionError as RedisConnectionError

    class Down(SlowRedis):
        async def get(self, key: str) -> bytes:
            self.gets += 1
            raise RedisConnectionError("down")

    redis = Down(b"1")
    cache = CatalogCache(redis, ttl=60, recheck=1.0)  # type: ignore[arg-type]
    assert await cache._version_now() is None
    assert await cache._version_now() is None
    assert redis.gets == 2
