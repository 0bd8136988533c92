"""Moving the service's clock (`api.kit.clock.use`) instead of sleeping: past the refresh reuse window."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from api.kit import clock

WINDOW = 10  # security.refresh_reuse_window in config.toml


@contextmanager
def later(seconds: float) -> Iterator[None]:
    """The clock runs `seconds` ahead of the real one inside the block."""
    ahead = timedelta(seconds=seconds)
    clock.use(lambda: datetime.now(clock.CITY_TZ) + ahead)
    try:
        yield
    finally:
        clock.use(None)


@contextmanager
def past_the_window() -> Iterator[None]:
    """Just past the reuse window: a replay of a rotated refresh token is reuse again."""
    with later(WINDOW + 1):
        yield
