"""The one clock: the city's time zone and `now()` in it. Tests replace the clock with `use(...)`.

Every aware datetime the service makes comes from here, in Asia/Shanghai (+08:00, no daylight saving)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

CITY_TZ = ZoneInfo("Asia/Shanghai")


def _system() -> datetime:
    return datetime.now(CITY_TZ)


_source: Callable[[], datetime] = _system


def now() -> datetime:
    """The current instant, aware, in the city's zone."""
    return _source()


def use(source: Callable[[], datetime] | None) -> None:
    """Replace the clock (a test's frozen or moving time); `use(None)` puts the system clock back."""
    global _source
    _source = source or _system
