"""Sessions: a family of refresh tokens, each used once. Reusing a used one revokes the whole family
(someone holds a copy), and so do logout, password change, disabling and deletion.

One exception (SECURITY row 4): a replay of the token the family rotated last, within
`security.refresh_reuse_window` seconds of its use, is a client that fired one refresh twice (two tabs, a
retry after a lost answer). It is answered 409 `refresh_in_progress` and revokes nothing, so the first
answer's tokens keep working. After the window, or for an older token of the family, reuse revokes."""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn

from api.identity.channels import channel_allowed
from api.identity.deps import Identity
from api.identity.errors import ChannelNotAllowed, InvalidGrant, RefreshInProgress
from api.kit import clock
from api.kit.auth import REVOKED_SESSION_KEY
from api.kit.db import in_transaction
from models import identity as db

log = logging.getLogger("ywt.auth")


@dataclass
class IssuedSession:
    access_token: str
    refresh_token: str
    expires_in: int
    account: db.Account
    channel: str


@dataclass
class SignInAttempt:
    """What the audit row of a sign-in (or refresh) says: the grant, the channel and, once known, the
    account (also when the attempt then fails)."""

    grant: str
    channel: str | None = None
    account_id: int | None = None


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def _new_refresh(ident: Identity, account: db.Account, family: str, channel: str) -> str:
    token = secrets.token_urlsafe(32)
    issued = clock.now()
    await db.add_refresh_token(
        family=family,
        account_id=account.id,
        token_hash=_hash(token),
        channel=channel,
        issued_at=issued,
        expires_at=issued + timedelta(days=ident.settings.security.refresh_ttl_days),
    )
    return token


def _access(ident: Identity, account: db.Account, channel: str, family: str) -> str:
    return ident.tokens.issue_access(
        account_id=account.id,
        roles=account.role_set,
        real_name_level=account.real_name_level,
        channel=channel,
        session=family,
    )


async def start_session(ident: Identity, account: db.Account, channel: str) -> IssuedSession:
    family = uuid.uuid4().hex
    refresh = await _new_refresh(ident, account, family, channel)
    return IssuedSession(
        _access(ident, account, channel, family), refresh, ident.tokens.access_ttl, account, channel
    )


async def refresh_session(
    ident: Identity, refresh_token: str, attempt: SignInAttempt | None = None
) -> IssuedSession:
    row = await db.refresh_by_hash(_hash(refresh_token))
    if row is None:
        raise InvalidGrant()
    if attempt is not None:
        attempt.account_id, attempt.channel = row.account_id, row.channel
    moment = clock.now()
    # both aware (the database gives times back with their offset), so the comparison is of instants
    if row.revoked_at is not None or row.expires_at <= moment:
        raise InvalidGrant()
    # the claim and its successor in one transaction: a failure between them (the database gone) leaves the
    # token unused, so the app's retry gets its tokens instead of a 409 and then a revoked session
    try:
        async with in_transaction():
            if not await db.claim_refresh(row.id, moment):
                raise _Lost()
            account = await db.active_account(row.account_id)
            if account is None:
                raise _Refused(InvalidGrant())
            if not channel_allowed(account.role_set, row.channel):
                # the roles changed since the sign-in: this session's channel is no longer the account's
                raise _Refused(ChannelNotAllowed())
            refresh = await _new_refresh(ident, account, row.family, row.channel)
    except _Lost:
        await _reused(ident, row.id, moment)
    except _Refused as refused:
        # outside the rolled-back transaction: the revocation itself must stay
        await revoke_families(ident, [row.family])
        raise refused.error from None
    return IssuedSession(
        _access(ident, account, row.channel, row.family),
        refresh,
        ident.tokens.access_ttl,
        account,
        row.channel,
    )


class _Lost(Exception):
    """Another request claimed the refresh token first."""


class _Refused(Exception):
    """The session must end: rolled back, then revoked."""

    def __init__(self, error: Exception) -> None:
        self.error = error


async def _reused(ident: Identity, token_id: int, moment: datetime) -> NoReturn:
    """A refresh token somebody used before: 409 when it is the family's last rotated one, used within the
    reuse window (a double-fired refresh); otherwise a copy is in someone else's hands — end the session."""
    row = await db.refresh_by_id(token_id)  # read again: the concurrent winner has just set used_at
    if row is None or row.revoked_at is not None:
        raise InvalidGrant()
    window = ident.settings.security.refresh_reuse_window
    if (
        window > 0
        and row.used_at is not None
        and moment - row.used_at <= timedelta(seconds=window)
        and not await db.rotated_after(row)
    ):
        log.info(
            "auth.refresh_in_progress",
            extra={"fields": {"event": "auth.refresh_in_progress", "account": row.account_id}},
        )
        raise RefreshInProgress()
    await revoke_families(ident, [row.family])
    log.warning(
        "auth.refresh_reuse", extra={"fields": {"event": "auth.refresh_reuse", "account": row.account_id}}
    )
    raise InvalidGrant("刷新令牌已被使用，会话已注销，请重新登录")


async def revoke_families(ident: Identity, families: list[str]) -> None:
    """Revoke refresh tokens in the database and the families' live access tokens through Redis."""
    moment = clock.now()
    for family in families:
        await db.revoke_family(family, moment)
    if families:
        ttl = ident.tokens.access_ttl
        async with ident.redis.pipeline(transaction=False) as pipe:
            for family in families:
                pipe.set(REVOKED_SESSION_KEY.format(family), b"1", ex=ttl)
            await pipe.execute()


async def logout(ident: Identity, refresh_token: str) -> None:
    row = await db.refresh_by_hash(_hash(refresh_token))
    if row is not None:
        await revoke_families(ident, [row.family])


async def revoke_all(ident: Identity, account_id: int) -> None:
    families = await db.live_families_of(account_id)
    await revoke_families(ident, families)
