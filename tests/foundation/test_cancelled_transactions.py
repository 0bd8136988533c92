"""A transaction cancelled while it begins (a request cut off, a worker's pass cut short at shutdown) leaves
the database usable: on SQLite the connection's one lock is given back (tortoise 1.1.9 kept it, and the
embedded server answered nothing more), on PostgreSQL its connection goes back to the pool (tortoise kept it,
one connection fewer each time). api/kit/db.py `_cancel_safe`."""

from __future__ import annotations

import asyncio

from tortoise import connections

from api.kit.db import in_transaction, ping_database


async def _held_for_ever(inside: asyncio.Event) -> None:
    async with in_transaction():
        inside.set()
        await asyncio.sleep(60)


async def _a_short_transaction(n: int) -> None:
    async with in_transaction() as connection:
        await connection.execute_query("SELECT 1")
        await asyncio.sleep(0.01 * (n % 3))


async def test_transactions_cancelled_at_every_step_of_their_start_leave_the_database_answering(client):
    pool = getattr(connections.get("default"), "_pool", None)
    cut_while_starting = 0
    for steps in range(40):  # cancelled after 0, 1, 2 … turns of the loop: in the lock, BEGIN, or inside
        inside = asyncio.Event()
        task = asyncio.create_task(_held_for_ever(inside))
        for _ in range(steps):
            await asyncio.sleep(0)
        cut_while_starting += not inside.is_set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        # the next query and the next transaction are answered (with tortoise's own start: never)
        await asyncio.wait_for(ping_database(), 5)
        await asyncio.wait_for(_a_short_transaction(0), 5)
    assert cut_while_starting, "no cancellation fell inside a transaction's start: the test proved nothing"
    if pool is not None:  # PostgreSQL: every connection is back in the pool, none kept by a cancelled start
        assert pool.get_idle_size() == pool.get_size(), (pool.get_idle_size(), pool.get_size())
    # as many transactions at once as the pool has connections: none was kept by a cancelled start
    size = pool.get_max_size() if pool is not None else 4
    await asyncio.wait_for(asyncio.gather(*(_a_short_transaction(n) for n in range(size))), 10)
