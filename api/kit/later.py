"""Work gathered up and done once, a little later, on the running event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class OnceLater:
    """`callback` run once, `delay` seconds after the first `ask` since it last ran, on the loop running at
    that `ask`. A loop closed before its timer fired (as between two `asyncio.run` calls) is not waited for:
    the next `ask` schedules on the loop running then. Used by the access log's held lines
    (api/kit/logs.py) and the metrics' tally (api/kit/metrics.py)."""

    def __init__(self, callback: Callable[[], None]) -> None:
        self._callback = callback
        self._due: asyncio.AbstractEventLoop | None = None  # the loop whose timer will run the callback

    def ask(self, delay: float) -> bool:
        """Have the callback run within `delay` seconds; False outside a running loop (nothing scheduled:
        the caller does the work now)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        if self._due is not loop:
            self._due = loop
            loop.call_later(delay, self._run)
        return True

    def _run(self) -> None:
        self._due = None
        self._callback()


async def stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    """Wait up to `seconds` for `stop`; whether it was set (the background loops' pause between passes)."""
    if seconds <= 0:
        return stop.is_set()
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True
