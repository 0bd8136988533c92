"""What every area may use, built once per worker in `before_server_start`, and how kit finds it.

`Kernel` holds the shared, area-free pieces (settings, Redis, token keys, the personal-data cipher and blind
index, the rate limiter, the working-day calendar). The composition root (`api/app.py`) builds it, builds
each area's service on it, and puts the one container on `app.ctx.services`. Kit code reaches the container
only through the `Wiring` protocol, so it never imports an area."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from redis.asyncio import Redis
from sanic import Request

from api.kit.auth import KeySource, PrincipalSource, TokenService
from api.kit.config import Settings
from api.kit.keys import PII_FILE, load_signing_keys
from api.kit.pii import BlindIndex, PiiCipher, ensure_keyring, load_keyring
from api.kit.ratelimit import RateLimiter
from api.kit.versions import AccountVersions
from api.kit.workdays import WorkCalendar

if TYPE_CHECKING:
    from api.kit.scopes import ScopeSource


@dataclass
class Kernel:
    settings: Settings
    redis: Redis
    tokens: TokenService
    cipher: PiiCipher
    index: BlindIndex
    limiter: RateLimiter
    calendar: WorkCalendar
    versions: AccountVersions


def build_kernel(settings: Settings, redis: Redis) -> Kernel:
    keys_dir = settings.keys_dir
    # embedded mode makes its keys on first start; production reads the files it was given
    signing = load_signing_keys(keys_dir, create=settings.embedded)
    pii_path = keys_dir / PII_FILE
    keys, current, blind_key = ensure_keyring(pii_path) if settings.embedded else load_keyring(pii_path)
    security = settings.security
    return Kernel(
        settings=settings,
        redis=redis,
        tokens=TokenService(signing, security.issuer, security.audience, security.access_ttl),
        cipher=PiiCipher(keys, current),
        index=BlindIndex(blind_key),
        limiter=RateLimiter(redis),
        calendar=WorkCalendar.from_settings(settings.calendar),
        versions=AccountVersions(redis),
    )


class Wiring(Protocol):
    """What kit needs of the container the composition root builds."""

    @property
    def kernel(self) -> Kernel: ...

    @property
    def principals(self) -> PrincipalSource: ...

    @property
    def scopes(self) -> ScopeSource: ...

    @property
    def api_keys(self) -> KeySource: ...


def wiring(request: Request) -> Wiring:
    services: Wiring = request.app.ctx.services
    return services


def kernel(request: Request) -> Kernel:
    return wiring(request).kernel
