"""What the identity services need, built once per worker in before_server_start."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from redis.asyncio import Redis

from api.kit.auth import TokenService
from api.kit.config import Settings
from api.kit.pii import BlindIndex, PiiCipher
from api.kit.ratelimit import RateLimiter
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

    # Argon2 is slow on purpose (~0.1–0.5 s): run it in a thread so one sign-in never stalls the worker
    async def hash_password(self, password: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, password)

    async def password_matches(self, stored: str | None, password: str) -> bool:
        """Always one verification, against a dummy hash when there is no password, so timing says nothing."""

        def verify() -> bool:
            try:
                self.hasher.verify(stored or self.dummy_hash, password)
            except (VerificationError, InvalidHashError):
                return False
            return stored is not None

        return await asyncio.to_thread(verify)

    def phone_index(self, phone: str) -> str:
        return self.index.digest(phone, "phone")

    def id_number_index(self, id_number: str) -> str:
        return self.index.digest(id_number, "id_number")
