"""The one clock: the city's time zone and `now()` in it. Tests replace the clock with `use(...)`.

Every aware datetime the service makes comes from here, in Asia/Shanghai (+08:00, no daylight saving)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BeforeValidator

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


# ---- instants a client asks for (query parameters) --------------------------------------------------------

_ISO_DATE = re.compile(r"\s*\d{4}-\d{2}-\d{2}")
FIRST_YEAR, LAST_YEAR = 2000, 2199


def _iso_only(value: Any) -> Any:
    # pydantic would read "0.5" or "99999999999999" as a Unix timestamp; the document says ISO 8601
    if isinstance(value, str) and not _ISO_DATE.match(value):
        raise ValueError("应为 ISO 8601 时间，如 2026-05-01T00:00:00+08:00")
    return value


def _plausible(value: datetime) -> datetime:
    # 0001-01-01+14:00 or 9999-12-31-14:00 overflows when moved to the city's zone (a 500 instead of a 422)
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"时间应在 {FIRST_YEAR} 至 {LAST_YEAR} 年之间")
    return value


# a datetime in a query: ISO 8601 text only, within years 2000 … 2199
Instant = Annotated[datetime, BeforeValidator(_iso_only), AfterValidator(_plausible)]
