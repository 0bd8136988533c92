"""What the identity services need, built once per worker in before_server_start."""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from redis.asyncio import Redis

from api.auth import TokenService
from api.config import Settings
from api.pii import BlindIndex, PiiCipher
from api.ratelimit import RateLimiter
from integrations import Integrations


@dataclass
class Identity:
    settings: Settings
    redis: Redis
    tokens: TokenService
    cipher: PiiCipher
    index: BlindIndex
    limiter: RateLimiter
    integrations: Integrations
    hasher: PasswordHasher
    # verified against when a phone is unknown, so both paths cost one Argon2 verification
    dummy_hash: str

    def phone_index(self, phone: str) -> str:
        return self.index.digest(phone, "phone")

    def id_number_index(self, id_number: str) -> str:
        return self.index.digest(id_number, "id_number")
