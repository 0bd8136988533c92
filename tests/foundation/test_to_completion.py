"""A request whose client went away still runs to its end (Sanic cancels the task of a dropped connection)."""

from __future__ import annotations

import asyncio

from api.kit.auth import public


async def test_a_handler_finishes_its_work_when_the_request_task_is_cancelled():
    started, release, finished = asyncio.Event(), asyncio.Event(), asyncio.Event()

    @public
    async def handler(request):
        started.set()
        await release.wait()  # e.g. in the middle of a transaction
        finished.set()
        return "done"

    task = asyncio.ensure_future(handler(object()))
    await started.wait()
    task.cancel()  # what Sanic does when the client disconnects
    await asyncio.sleep(0)
    release.set()
    await asyncio.wait_for(finished.wait(), 1)
    assert finished.is_set()
    assert task.cancelled()
