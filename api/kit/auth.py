"""Access tokens (EdDSA JWT, ≤ 15 min, kid from our own keyring) and @require(roles, real_name_level).

Verification pins the algorithm, requires iss aud sub iat exp jti typ, and takes the key only by `kid` from
our ring: `jku`, `x5u`, `jwk`, `x5c` and `crit` headers are refused, never followed.

Tokens are issued with PyJWT and verified with `cryptography` directly: one parse of header and claims, the
public key object built once per kid, ~40 % less time than PyJWT's two parses (measured in the issue 9 note).
A token this worker has verified is remembered (by its SHA-256) until its `exp`; revocation, the account's
status, roles and level are still checked on every request (`authenticate`)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import wraps
from typing import Any, Protocol, TypeVar, cast

import jwt
import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sanic import Request

from api.kit import metrics
from api.kit.errors import Forbidden, InvalidToken, RealNameRequired, Unauthorized
from api.kit.keys import SigningKeys
from api.kit.versions import REVOKED_SESSION_KEY, AccountVersions, Claim

log = logging.getLogger("ywt.auth")

ALGORITHM = "EdDSA"
REQUIRED_CLAIMS = ("iss", "aud", "sub", "iat", "exp", "jti", "typ")
FORBIDDEN_HEADERS = ("jku", "x5u", "jwk", "x5c", "crit")
VERIFIED_TOKENS = 10_000  # how many verified tokens a worker remembers
_B64URL = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")

__all__ = ["REVOKED_SESSION_KEY"]

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

    @property
    def id(self) -> int: ...

    @property
    def real_name_level(self) -> int: ...

    @property
    def role_set(self) -> frozenset[str]: ...


@dataclass(frozen=True)
class KeyCaller:
    """Another city system, by the API key it sent (X-API-Key)."""

    id: int
    name: str
    scopes: frozenset[str]
    rate_limit: int  # requests per minute


class KeySource(Protocol):
    """Implemented by the API-keys area, wired in by the composition root."""

    async def caller_of(self, key: str) -> KeyCaller | None:
        """The system behind a key, or None for a key unknown or revoked."""
        ...


class PrincipalSource(Protocol):
    """Implemented by the identity area, wired in by the composition root: kit never imports identity."""

    async def active_account(self, account_id: int, version: int | None) -> Account | None:
        """The account if active, as of `version` (what Redis holds now; None when it holds none)."""
        ...


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
    def __init__(
        self,
        keys: SigningKeys,
        issuer: str,
        audience: str,
        access_ttl: int,
        *,
        remember: int = VERIFIED_TOKENS,
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.access_ttl = access_ttl
        self.remember = remember
        self._public: dict[str, Ed25519PublicKey] = {}
        # sha256(token) -> (the principal, exp, kid): tokens this worker has verified, until they expire
        self._verified: OrderedDict[bytes, tuple[Principal, float, str]] = OrderedDict()

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

    def forget_local(self) -> None:
        """Forget the tokens verified so far (tests change the keyring or the clock between them)."""
        self._verified.clear()

    def verify_access(self, token: str) -> Principal:
        """The principal of a valid access token, or `InvalidToken` (401) with the reason logged."""
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        known = self._verified.get(digest)
        if known is not None:
            if time.time() < known[1] and known[2] in self.keys.private:  # not expired, key not retired
                metrics.cache_hit("token")
                return known[0]
            del self._verified[digest]
        metrics.cache_miss("token")
        principal, exp, kid = self._verify(token)
        self._verified[digest] = (principal, exp, kid)
        if len(self._verified) > self.remember:
            self._verified.popitem(last=False)
        return principal

    def _key(self, kid: object) -> Ed25519PublicKey | None:
        if not isinstance(kid, str) or kid not in self.keys.private:
            return None
        key = self._public.get(kid)
        if key is None:
            key = self._public[kid] = self.keys.private[kid].public_key()
        return key

    def _verify(self, token: str) -> tuple[Principal, float, str]:
        parts = token.split(".")
        if len(parts) != 3 or not all(parts):
            raise _denied("malformed_token")
        header_b64, claims_b64, signature_b64 = parts
        header = _json_part(header_b64)
        if header.get("alg") != ALGORITHM:
            raise _denied("wrong_algorithm")
        if any(name in header for name in FORBIDDEN_HEADERS):
            raise _denied("foreign_key_header")
        key = self._key(header.get("kid"))
        if key is None:
            raise _denied("unknown_kid")
        signature = _b64decode(signature_b64)
        try:
            key.verify(signature, f"{header_b64}.{claims_b64}".encode("ascii"))
        except InvalidSignature:
            raise _denied("InvalidSignatureError") from None
        principal, exp = self._principal(_json_part(claims_b64))
        return principal, exp, header["kid"]

    def _principal(self, claims: dict[str, Any]) -> tuple[Principal, float]:
        missing = [name for name in REQUIRED_CLAIMS if name not in claims]
        if missing:
            raise _denied("MissingRequiredClaimError")
        now = time.time()
        exp, iat, nbf = claims["exp"], claims["iat"], claims.get("nbf", 0)
        if not all(_is_number(value) for value in (exp, iat, nbf)):
            raise _denied("bad_claims")
        if now >= exp:
            raise _denied("expired")
        if nbf > now or iat > now:
            raise _denied("ImmatureSignatureError")
        if claims["iss"] != self.issuer:
            raise _denied("InvalidIssuerError")
        audience = claims["aud"]
        if not (audience == self.audience or (isinstance(audience, list) and self.audience in audience)):
            raise _denied("InvalidAudienceError")
        if claims["typ"] != "access":
            raise _denied("wrong_token_type")
        try:
            principal = Principal(
                account_id=int(claims["sub"]),
                roles=frozenset(str(role) for role in claims.get("roles") or ()),
                real_name_level=int(claims.get("rnl") or 0),
                channel=str(claims.get("ch") or ""),
                session=str(claims.get("sid") or ""),
                jti=str(claims["jti"]),
            )
        except (TypeError, ValueError):
            raise _denied("bad_claims") from None
        return principal, float(exp)


def _b64decode(part: str) -> bytes:
    """Base64url without padding (RFC 7515 §2), nothing else accepted."""
    data = part.encode("ascii", "replace")
    if not _B64URL.issuperset(data) or len(data) % 4 == 1:
        raise _denied("malformed_token")
    try:
        return base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        raise _denied("malformed_token") from None


def _json_part(part: str) -> dict[str, Any]:
    try:
        value = orjson.loads(_b64decode(part))
    except orjson.JSONDecodeError:
        raise _denied("malformed_token") from None
    if not isinstance(value, dict):
        raise _denied("malformed_token")
    return value


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


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


ClaimOf = Callable[[Request, Principal], Claim | None]


async def authenticate(request: Request, claim_of: ClaimOf | None = None) -> Principal:
    """The caller behind the bearer token: a valid token of a live session of an active account.

    One Redis round trip checks the session's revocation, reads the account's version (so the identity
    area's cached copy is used only while current) and makes the handler's claim, if it has one (an
    Idempotency-Key's slot): its outcome is left on `request.ctx.claim` as (claim, claimed)."""
    services = request.app.ctx.services
    versions: AccountVersions = services.kernel.versions
    try:
        principal = services.kernel.tokens.verify_access(bearer_token(request))
        claim = claim_of(request, principal) if claim_of is not None else None
        checked = await versions.check(principal.session, principal.account_id, claim)
        if checked.revoked:
            raise _denied("session_revoked")
        if claim is not None:
            request.ctx.claim = (claim, checked.claimed)
        account = await services.principals.active_account(principal.account_id, checked.version)
        if account is None:
            raise _denied("account_inactive")
    except Unauthorized as exc:
        log_auth_event(request, "auth.denied", status=401, reason=getattr(exc, "reason", exc.code))
        await release_claim(request)
        raise
    request.ctx.principal = principal
    request.ctx.account = account
    return principal


async def release_claim(request: Request) -> None:
    """Give back a claim made with the session check when the handler will not run (refused caller)."""
    claim, claimed = getattr(request.ctx, "claim", (None, False))
    if claim is not None and claimed:
        request.ctx.claim = (claim, False)
        await request.app.ctx.services.kernel.redis.delete(claim.key)


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


API_KEY_HEADER = "x-api-key"


async def authenticate_key(request: Request, scope: str) -> KeyCaller:
    """The city system behind X-API-Key, holding `scope`: 401 for a key unknown or revoked, 403 without it."""
    caller = await request.app.ctx.services.api_keys.caller_of(request.headers.get(API_KEY_HEADER, ""))
    if caller is None:
        log_auth_event(request, "auth.denied", status=401, reason="api_key")
        raise Unauthorized("API Key 无效或已吊销", headers={"WWW-Authenticate": 'ApiKey realm="ywt"'})
    if scope not in caller.scopes:
        log_auth_event(request, "authz.denied", status=403, reason="scope", api_key=caller.id)
        raise Forbidden(f"该 API Key 没有 {scope} 权限")
    request.ctx.principal = None
    request.ctx.api_key = caller
    return caller


def require(*roles: Role, real_name_level: int = 0, api_key_scope: str | None = None) -> Callable[[H], H]:
    """Only a signed-in caller holding one of `roles` (any role when none given) and the real-name level, or,
    with `api_key_scope`, a city system whose X-API-Key holds that scope (`request.ctx.api_key`; the
    principal is then None).

    The roles, level and scope are kept on the handler, where `kit.docs.documented` reads them for OpenAPI."""

    def decorate(handler: H) -> H:
        claim_of: ClaimOf | None = getattr(handler, "__ywt_claim__", None)

        @wraps(handler)
        async def guarded(request: Request, *args: Any, **kwargs: Any) -> Any:
            if api_key_scope is not None and API_KEY_HEADER in request.headers:
                await authenticate_key(request, api_key_scope)
                return await handler(request, *args, **kwargs)
            request.ctx.api_key = None
            principal = await authenticate(request, claim_of)
            # roles and level as the account has them now, not as the (up to 15 minutes old) token says
            if roles and not request.ctx.account.role_set.intersection(roles):
                log_auth_event(
                    request, "authz.denied", status=403, reason="role", account=principal.account_id
                )
                await release_claim(request)
                raise Forbidden("当前角色无权进行此操作")
            if request.ctx.account.real_name_level < real_name_level:
                log_auth_event(
                    request, "authz.denied", status=403, reason="real_name", account=principal.account_id
                )
                await release_claim(request)
                raise RealNameRequired()
            return await handler(request, *args, **kwargs)

        completed: Any = to_completion(guarded)  # Any: it carries the two attributes below
        completed.__ywt_roles__ = tuple(str(role) for role in roles) or ("*",)
        completed.__ywt_real_name_level__ = real_name_level
        completed.__ywt_api_key_scope__ = api_key_scope
        return cast(H, completed)

    return decorate


def public(handler: H) -> H:
    """A route that needs no sign-in (the security matrix test checks every route is one or the other)."""
    completed: Any = to_completion(handler)  # Any: it carries the attribute below
    completed.__ywt_roles__ = ()
    return cast(H, completed)


def public_read(handler: H) -> H:
    """A public route that writes nothing and whose every database call is shielded where it is made (the
    catalogue's reads go through `CatalogCache`, which shields its loads): a request whose client went away
    may then simply be cancelled, and the task `to_completion` would make for each request (a tenth of the
    cost of a catalogue read answered from memory) is saved."""
    marked: Any = handler
    marked.__ywt_roles__ = ()
    return handler


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
