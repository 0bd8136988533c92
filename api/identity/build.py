"""Assemble the identity area's dependencies for one worker: keys, cipher, blind index, limiter."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from redis.asyncio import Redis

from api.identity.deps import Identity
from api.kit.auth import TokenService
from api.kit.config import Settings
from api.kit.keys import PII_FILE, load_signing_keys
from api.kit.pii import BlindIndex, PiiCipher, ensure_keyring, load_keyring
from api.kit.ratelimit import RateLimiter
from integrations import Integrations


def build_identity(settings: Settings, redis: Redis, integrations: Integrations) -> Identity:
    keys_dir = settings.keys_dir
    # embedded mode makes its keys on first start; production reads the files it was given
    signing = load_signing_keys(keys_dir, create=settings.embedded)
    pii_path = keys_dir / PII_FILE
    keys, current, blind_key = ensure_keyring(pii_path) if settings.embedded else load_keyring(pii_path)
    security = settings.security
    hasher = PasswordHasher()
    return Identity(
        settings=settings,
        redis=redis,
        tokens=TokenService(signing, security.issuer, security.audience, security.access_ttl),
        cipher=PiiCipher(keys, current),
        index=BlindIndex(blind_key),
        limiter=RateLimiter(redis),
        integrations=integrations,
        hasher=hasher,
        dummy_hash=hasher.hash(secrets.token_urlsafe(16)),
    )
