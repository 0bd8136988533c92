"""What the applications area needs, built once per worker."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from api.applications.files import FileStore
from api.config import Settings
from api.pii import PiiCipher
from api.ratelimit import RateLimiter
from api.workdays import WorkCalendar


@dataclass
class Cases:
    settings: Settings
    redis: Redis
    cipher: PiiCipher
    calendar: WorkCalendar
    files: FileStore
    limiter: RateLimiter
