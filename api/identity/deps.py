"""The identity area's service object: the kernel it stands on, password hashing and the outside systems.

Built once per worker by the composition root (`api/app.py`); the kernel's pieces are read through it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from redis.asyncio import Redis

from api.identity.bound import BoundAccounts
from api.kit.auth import TokenService
from api.kit.config import Settings
from api.kit.container import Kernel
from api.kit.pii import BlindIndex, PiiCipher
from api.kit.ratelimit import RateLimiter
from integrations import Integrations


@dataclass
class Identity:
    kernel: Kernel
    integrations: Integrations
    hasher: PasswordHasher
    # verified against when a phone is unknown, so both paths cost one Argon2 verification
    dummy_hash: str
    # which account each WeChat openid is bound to, as this worker last read it (api/identity/bound.py)
    wechat_bound: BoundAccounts = field(default_factory=BoundAccounts)

    @property
    def settings(self) -> Settings:
        return self.kernel.settings

    @property
    def redis(self) -> Redis:
        return self.kernel.redis

    @property
    def tokens(self) -> TokenService:
        return self.kernel.tokens

    @property
    def cipher(self) -> PiiCipher:
        return self.kernel.cipher

    @property
    def index(self) -> BlindIndex:
        return self.kernel.index

    @property
    def limiter(self) -> RateLimiter:
        return self.kernel.limiter

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
