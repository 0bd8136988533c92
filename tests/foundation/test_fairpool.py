"""The database pool serves waiting requests first come first served (api/kit/fairpool.py): a connection given
back goes to the request that has waited longest, not to one that arrived after it; a waiter cancelled
after being handed one passes it on. On PostgreSQL, the pool the app opens is such a pool."""

from __future__ import annotations

import asyncio

import pytest
from tortoise import connections

from api.kit.fairpool import HandoffQueue
from tests.conftest import PG_URL


class Held(str):
    """A stand-in for asyncpg's connection holder: a name, always connected."""

    def is_connected(self) -> bool:
        return True


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_connection_given_back_goes_to_the_longest_waiter_not_to_a_newcomer():
    queue = HandoffQueue(maxsize=2)
    served: list[str] = []

    async def request(name: str) -> None:
        served.append(f"{name}:{await queue.get()}")

    first = asyncio.create_task(request("first"))
    second = asyncio.create_task(request("second"))
    await _settle()  # both wait on the empty pool
    queue.put_nowait(Held("conn-a"))
    # before the woken one runs, a request arrives and asks: with asyncio's queue it would take conn-a
    newcomer = asyncio.create_task(request("newcomer"))
    await _settle()
    assert served == ["first:conn-a"]
    queue.put_nowait(Held("conn-b"))
    queue.put_nowait(Held("conn-c"))
    await asyncio.gather(first, second, newcomer)
    assert served == ["first:conn-a", "second:conn-b", "newcomer:conn-c"]
    assert queue.empty()


async def test_with_nobody_waiting_a_connection_is_kept_and_taken_at_once():
    queue = HandoffQueue(maxsize=2)
    queue.put_nowait(Held("conn-a"))
    assert queue.qsize() == 1
    assert await asyncio.wait_for(queue.get(), 1) == Held("conn-a")


async def test_a_waiter_cancelled_after_being_handed_a_connection_passes_it_to_the_next():
    queue = HandoffQueue(maxsize=2)
    first = asyncio.create_task(queue.get())
    second = asyncio.create_task(queue.get())
    await _settle()
    queue.put_nowait(Held("conn-a"))  # handed to first, which has not run since
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await asyncio.wait_for(second, 1) == Held("conn-a")
    assert queue.empty()


async def test_a_waiter_cancelled_before_anything_came_leaves_the_line():
    queue = HandoffQueue(maxsize=2)
    gone = asyncio.create_task(queue.get())
    await _settle()
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    queue.put_nowait(Held("conn-a"))  # nobody waits now: kept for the next to ask
    assert queue.qsize() == 1
    assert await asyncio.wait_for(queue.get(), 1) == Held("conn-a")


async def test_taking_over_keeps_every_idle_connection():
    old: asyncio.LifoQueue[Held] = asyncio.LifoQueue(maxsize=3)
    for name in ("a", "b", "c"):
        old.put_nowait(Held(name))
    fair = HandoffQueue.taking_over(old)
    assert fair.maxsize == 3
    assert sorted([fair.get_nowait() for _ in range(3)]) == ["a", "b", "c"]


@pytest.mark.skipif(not PG_URL, reason="the pool is asyncpg's, on PostgreSQL only; SQLite has one connection")
async def test_the_app_s_postgresql_pool_is_first_come_first_served(client):
    pool = connections.get("default")._pool
    assert isinstance(pool._queue, HandoffQueue)
    # and it serves: more concurrent statements than connections all complete
    size = pool.get_max_size()
    results = await asyncio.gather(
        *(connections.get("default").execute_query_dict("SELECT $1::int AS n", [n]) for n in range(size * 3))
    )
    assert [r[0]["n"] for r in results] == list(range(size * 3))
