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


async def test_what_was_loaded_while_the_catalogue_changed_is_not_kept():
    """A submission's item read from the database while a catalogue change lands must not stay in the
    worker's memory under the new version: the next lookup reads again."""
    redis = SlowRedis(b"1")
    cache = CatalogCache(redis, ttl=300, recheck=0.0)  # type: ignore[arg-type]
    loads: list[str] = []

    async def old_then_changed() -> str:
        loads.append("read")
        redis.version = b"2"  # the change commits and bumps the version while this read is under way
        await cache._version_now()  # another request's recheck sees it
        return "before the change"

    assert await cache.remembered("facts:item:X", old_then_changed) == "before the change"

    async def after() -> str:
        loads.append("read")
        return "after the change"

    assert await cache.remembered("facts:item:X", after) == "after the change"
    assert await cache.remembered("facts:item:X", after) == "after the change"  # now kept
    assert loads == ["read", "read"]


async def test_facts_are_kept_no_longer_than_facts_ttl():
    redis = SlowRedis(b"1")
    cache = CatalogCache(redis, ttl=300, recheck=60.0, facts_ttl=0.05)  # type: ignore[arg-type]
    loads = 0

    async def load() -> int:
        nonlocal loads
        loads += 1
        return loads

    assert await cache.remembered("k", load) == 1
    assert await cache.remembered("k", load) == 1
    await asyncio.sleep(0.06)
    assert await cache.remembered("k", load) == 2


async def test_a_load_runs_to_its_end_when_the_request_waiting_for_it_is_cancelled():
    """The catalogue's routes are not shielded as a whole (`public_read`): what they may do with the
    database, the cache's loads, is. A client that goes away mid-load cancels its request, not the load."""
    from fakeredis import FakeAsyncRedis

    cache = CatalogCache(FakeAsyncRedis(), ttl=60)
    started, release, finished = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def build() -> bytes:
        started.set()
        await release.wait()  # e.g. a database read under way
        finished.set()
        return b"{}"

    request = asyncio.ensure_future(cache.get_or_build("item:x", build))
    await started.wait()
    request.cancel()  # what Sanic does when the client disconnects
    await asyncio.sleep(0)
    release.set()
    await asyncio.wait_for(finished.wait(), 1)
    assert request.cancelled()
