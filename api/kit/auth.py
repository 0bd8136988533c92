"""Access tokens (EdDSA JWT, ≤ 15 min, kid from our own keyring) and @require(roles, real_name_level).

Verification pins the algorithm, requires iss aud sub iat exp jti typ, and takes the key only by `kid` from
our ring: `jku`, `x5u`, `jwk` and `x5c` headers are refused, never followed."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import wraps
from typing import Any, Protocol, TypeVar, cast

import jwt
from redis.asyncio import Redis
from sanic import Request

from api.kit.errors import Forbidden, InvalidToken, RealNameRequired, Unauthorized
from api.kit.keys import SigningKeys

log = logging.getLogger("ywt.auth")

ALGORITHM = "EdDSA"
REQUIRED_CLAIMS = ["iss", "aud", "sub", "iat", "exp", "jti", "typ"]
FORBIDDEN_HEADERS = ("jku", "x5u", "jwk", "x5c")
REVOKED_SESSION_KEY = "session:revoked:{}"

H = TypeVar("H", bound=Callable[..., Awaitable[Any]])


class Role(StrEnum):
    """The roles an account can hold; a StrEnum, so a role compares equal to its stored string."""

    RESIDENT = "resident"
    GRID_WORKER = "grid_worker"
    STAFF = "staff"
    ADMIN = "admin"


# the strongest first: the role that acts is the first one held
ROLE_ORDER = (Role.ADMIN, Role.STAFF, Role.GRID_WORKER, Role.RESIDENT)
# who works cases: grid workers at their points, window staff of their department, admins everywhere
WORK_ROLES = (Role.GRID_WORKER, Role.STAFF, Role.ADMIN)
# back office: window staff and admins (complaints, statistics)
CLERKS = (Role.STAFF, Role.ADMIN)
ADMINS = (Role.ADMIN,)


class Account(Protocol):
    """The live account behind a token, as `require()` needs it."""

    id: int
    real_name_level: int

    @property
    def role_set(self) -> frozenset[str]: ...


class PrincipalSource(Protocol):
    """Implemented by the identity area, wired in by the composition root: kit never imports identity."""

    async def active_account(self, account_id: int) -> Account | None: ...


@dataclass(frozen=True)
class Principal:
    account_id: int
    roles: frozenset[str]
    real_name_level: int
    channel: str
    session: str
    jti: str

    @property
    def role(self) -> str:
        """The role that acts (the strongest one held), written into events and audit rows."""
        for role in ROLE_ORDER:
            if role in self.roles:
                return str(role)
        return ""


class TokenService:
    def __init__(self, keys: SigningKeys, issuer: str, audience: str, access_ttl: int) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.access_ttl = access_ttl

    def issue_access(
        self, *, account_id: int, roles: frozenset[str], real_name_level: int, channel: str, session: str
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(account_id),
            "iat": now,
            "nbf": now,
            "exp": now + self.access_ttl,
            "jti": uuid.uuid4().hex,
            "typ": "access",
            "roles": sorted(roles),
            "rnl": real_name_level,
            "ch": channel,
            "sid": session,
        }
        return jwt.encode(
            claims,
            self.keys.private[self.keys.current],
            algorithm=ALGORITHM,
            headers={"kid": self.keys.current},
        )

    def verify_access(self, token: str) -> Principal:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _denied("malformed_token") from None
        if header.get("alg") != ALGORITHM:
            raise _denied("wrong_algorithm")
        if any(name in header for name in FORBIDDEN_HEADERS):
            raise _denied("foreign_key_header")
        key = self.keys.public.get(str(header.get("kid")))
        if key is None:
            raise _denied("unknown_kid")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise _denied("expired") from None
        except jwt.PyJWTError as exc:
            raise _denied(type(exc).__name__) from None
        if claims.get("typ") != "access":
            raise _denied("wrong_token_type")
        try:
            return Principal(
                account_id=int(claims["sub"]),
                roles=frozenset(claims.get("roles") or ()),
                real_name_level=int(claims.get("rnl") or 0),
                channel=str(claims.get("ch") or ""),
                session=str(claims.get("sid") or ""),
                jti=str(claims["jti"]),
            )
        except (TypeError, ValueError):
            raise _denied("bad_claims") from None


def _denied(reason: str) -> Unauthorized:
    err = InvalidToken(headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    err.reason = reason
    return err


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("需要登录", headers={"WWW-Authenticate": "Bearer"})
    return token.strip()


async def session_revoked(redis: Redis, session: str) -> bool:
    return bool(session) and await redis.exists(REVOKED_SESSION_KEY.format(session)) == 1


async def authenticate(request: Request) -> Principal:
    """The caller behind the bearer token: a valid token of a live session of an active account."""
    services = request.app.ctx.services
    try:
        principal = services.kernel.tokens.verify_access(bearer_token(request))
        if await session_revoked(services.kernel.redis, principal.session):
            raise _denied("session_revoked")
        account = await services.principals.active_account(principal.account_id)
        if account is None:
            raise _denied("account_inactive")
    except Unauthorized as exc:
        log_auth_event(request, "auth.denied", status=401, reason=getattr(exc, "reason", exc.code))
        raise
    request.ctx.principal = principal
    request.ctx.account = account
    return principal


def to_completion(handler: H) -> H:
    """Run the handler to its end even when the client goes away.

    Sanic cancels a request's task when its connection drops. Work cut in the middle of a transaction can
    leave a database connection locked (tortoise's SQLite client keeps its lock when BEGIN is cancelled) and
    a case half done; finishing it instead keeps every step whole, and a client that retries with its
    Idempotency-Key gets the answer it missed."""

    @wraps(handler)
    async def shielded(request: Request, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.shield(handler(request, *args, **kwargs))

    return cast(H, shielded)


def require(*roles: Role, real_name_level: int = 0) -> Callable[[H], H]:
    """Only a signed-in caller holding one of `roles` (any role when none given) and the real-name level.

    The roles and level are kept on the handler, where `kit.docs.documented` reads them for OpenAPI."""

    def decorate(handler: H) -> H:
        @wraps(handler)
        async def guarded(request: Request, *args: Any, **kwargs: Any) -> Any:
            principal = await authenticate(request)
            # roles and level as the account has them now, not as the (up to 15 minutes old) token says
            if roles and not request.ctx.account.role_set.intersection(roles):
                log_auth_event(
                    request, "authz.denied", status=403, reason="role", account=principal.account_id
                )
                raise Forbidden("当前角色无权进行此操作")
            if request.ctx.account.real_name_level < real_name_level:
                log_auth_event(
                    request, "authz.denied", status=403, reason="real_name", account=principal.account_id
                )
                raise RealNameRequired()
            return await handler(request, *args, **kwargs)

        completed: Any = to_completion(guarded)  # Any: it carries the two attributes below
        completed.__ywt_roles__ = tuple(str(role) for role in roles) or ("*",)
        completed.__ywt_real_name_level__ = real_name_level
        return cast(H, completed)

    return decorate


def public(handler: H) -> H:
    """A route that needs no sign-in (the security matrix test checks every route is one or the other)."""
    completed: Any = to_completion(handler)  # Any: it carries the attribute below
    completed.__ywt_roles__ = ()
    return cast(H, completed)


def log_auth_event(request: Request, event: str, **fields: Any) -> None:
    log.warning(
        event,
        extra={
            "fields": {
                "event": event,
                "request_id": getattr(request.ctx, "request_id", None),
                "path": request.path,
                "ip": client_ip(request),
                **fields,
            }
        },
    )


def client_ip(request: Request) -> str:
    """The caller's address; X-Forwarded-For is believed only when the peer is a configured proxy."""
    peer = request.ip
    proxies = request.app.ctx.settings.server.trusted_proxies
    if peer and peer in proxies:
        forwarded = [
            part.strip() for part in request.headers.get("x-forwarded-for", "").split(",") if part.strip()
        ]
        # walk from the nearest hop outwards, skipping our own proxies
        for hop in reversed(forwarded):
            if hop not in proxies:
                return hop
    return peer or ""
