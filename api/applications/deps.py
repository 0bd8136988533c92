"""What the applications area needs, built once per worker."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from api.applications.files import FileStore
from api.kit.config import Settings
from api.kit.pii import PiiCipher
from api.kit.ratelimit import RateLimiter
from api.kit.workdays import WorkCalendar


@dataclass
class Cases:
    settings: Settings
    redis: Redis
    cipher: PiiCipher
    calendar: WorkCalendar
    files: FileStore
    limiter: RateLimiter
