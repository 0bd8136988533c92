"""Signing in (SMS code, password, WeChat, refresh), the account itself, real name, bindings, deletion.

This module is also the identity area's face to the other areas: what they may ask of identity is here
(decrypting and masking phones, the staff accounts of the demo sandbox), and nothing else of the area."""

from __future__ import annotations

import logging
import secrets

import orjson

from api.identity import sessions
from api.identity.channels import channel_allowed
from api.identity.deps import Identity
from api.identity.errors import (
    AccountDisabled,
    BindingNotFound,
    ChannelNotAllowed,
    IdNumberTaken,
    InvalidBindingTicket,
    InvalidCode,
    InvalidDeletionCode,
    InvalidGrant,
    InvalidIdNumber,
    InvalidWeChatCode,
    RealNameMismatch,
    WeChatAlreadyBound,
    WeChatBoundElsewhere,
    WeChatNotBound,
    WrongAccountPassword,
    WrongPassword,
)
from api.identity.principals import AccountDirectory
from api.identity.schemas import (
    AccountOut,
    BindingOut,
    DeleteAccountIn,
    PasswordGrant,
    PasswordIn,
    PasswordProof,
    RealNameIn,
    RefreshTokenGrant,
    SmsCodeGrant,
    SmsCodeProof,
    TokenIn,
    TokenOut,
    WeChatCodeGrant,
    WeChatTicketGrant,
)
from api.identity.sms_codes import check_code, code_key, forget_phone, send_code
from api.identity.staff import enrol_staff
from api.identity.views import account_view, binding_view, bindings, decrypt_phone, masked_phones
from api.kit import clock
from api.kit.auth import ROLE_ORDER, Account, Principal, Role
from api.kit.db import IntegrityError, in_transaction
from api.kit.errors import AppError, invalid
from api.kit.pii import mask_id_number, mask_phone
from integrations import wechat
from models import identity as db
from models.audit import audit

log = logging.getLogger("ywt.auth")

BINDING_TICKET_KEY = "wechat:binding:{}"
SIGNIN_TICKET_KEY = "wechat:signin:{}"

# what other areas may use (see the module's docstring); the rest of the area is its own business
__all__ = [
    "Identity",
    "account_view",
    "bind_wechat",
    "bindings",
    "change_password",
    "decrypt_phone",
    "delete_account",
    "enrol_staff",
    "grant",
    "has_account",
    "masked_phones",
    "request_sms_code",
    "unbind_wechat",
    "verify_real_name",
    "wechat_account_of",
    "wechat_binding_confirmed",
    "wechat_binding_keys",
    "wechat_openid_of",
    "wechat_web_sign_in",
]


async def token_answer(ident: Identity, issued: sessions.IssuedSession) -> TokenOut:
    return TokenOut(
        access_token=issued.access_token,
        refresh_token=issued.refresh_token,
        expires_in=issued.expires_in,
        account=await account_view(ident.cipher, issued.account),
    )


async def has_account(ident: Identity, phone: str) -> bool:
    """Whether the phone has an account (of any status)."""
    return await db.account_by_phone_index(ident.phone_index(phone)) is not None


# ---- SMS codes -----------------------------------------------------------------------------------------


async def request_sms_code(ident: Identity, phone: str, purpose: str, ip: str) -> tuple[int, int]:
    deliver = True
    if purpose in ("reset_password", "delete_account"):
        account = await db.account_by_phone_index(ident.phone_index(phone))
        deliver = account is not None and account.status == "active"
    return await send_code(ident, phone, purpose, ip, deliver=deliver)


# ---- sign-in -------------------------------------------------------------------------------------------

# refusals of a grant that go into the audit log (429s and malformed bodies do not: nothing was tried)
_SIGN_IN_FAILURES = (InvalidGrant, AccountDisabled, ChannelNotAllowed, InvalidBindingTicket)


async def grant(ident: Identity, body: TokenIn, ip: str, request_id: str = "") -> TokenOut:
    """A sign-in or a refresh. Each success and each refusal of the credentials is an audit row
    (`auth.signed_in` / `auth.refreshed`, `auth.sign_in_failed` with the reason's code)."""
    security = ident.settings.security
    await ident.limiter.hit("token-ip", ip or "unknown", security.token_max_per_ip_per_minute, 60)
    attempt = sessions.SignInAttempt(grant=body.root.grant_type, channel=getattr(body.root, "channel", None))
    phone = getattr(body.root, "phone", None)
    try:
        issued = await _grant(ident, body, attempt)
    except _SIGN_IN_FAILURES as exc:
        detail: dict[str, str | None] = {
            "grant": attempt.grant,
            "channel": attempt.channel,
            "reason": exc.code,
        }
        if phone:
            detail["phone"] = mask_phone(phone)
        await audit(
            None,
            "auth.sign_in_failed",
            subject=attempt.account_id,
            request_id=request_id,
            ip=ip,
            detail=detail,
            actor_role="",
        )
        raise
    account = issued.account
    await audit(
        None,
        "auth.refreshed" if attempt.grant == "refresh_token" else "auth.signed_in",
        subject=account.id,
        request_id=request_id,
        ip=ip,
        detail={"grant": attempt.grant, "channel": issued.channel},
        actor=account.id,
        actor_role=next((str(r) for r in ROLE_ORDER if r in account.role_set), ""),
    )
    return await token_answer(ident, issued)


async def _grant(ident: Identity, body: TokenIn, attempt: sessions.SignInAttempt) -> sessions.IssuedSession:
    security = ident.settings.security
    match body.root:
        case RefreshTokenGrant(refresh_token=refresh_token):
            return await sessions.refresh_session(ident, refresh_token, attempt)
        case WeChatCodeGrant(code=code):
            return await _wechat_sign_in(ident, code, attempt)
        case WeChatTicketGrant(ticket=ticket):
            return await _ticket_sign_in(ident, ticket, attempt)
        case SmsCodeGrant() | PasswordGrant() as by_phone:
            await ident.limiter.hit(
                "token-phone",
                ident.phone_index(by_phone.phone),
                security.token_max_per_phone_per_hour,
                3600,
            )
            if isinstance(by_phone, SmsCodeGrant):
                return await _sms_sign_in(ident, by_phone, attempt)
            return await _password_sign_in(ident, by_phone, attempt)


def _check_channel(roles: frozenset[str], channel: str) -> None:
    """403 when none of the account's roles may sign in on `channel` (api/identity/channels.py)."""
    if not channel_allowed(roles, channel):
        raise ChannelNotAllowed()


async def _sms_sign_in(
    ident: Identity, body: SmsCodeGrant, attempt: sessions.SignInAttempt
) -> sessions.IssuedSession:
    ticket = body.binding_ticket
    if ticket and not await ident.redis.exists(BINDING_TICKET_KEY.format(ticket)):
        # refused before the code is checked, so a stale ticket does not burn the resident's code
        raise InvalidBindingTicket()
    phone_index = ident.phone_index(body.phone)
    existing = await db.account_by_phone_index(phone_index)
    attempt.account_id = existing.id if existing is not None else None
    # binding takes the code sent for it (purpose bind); a login code still does, as it did before
    purpose = "bind" if ticket and await ident.redis.exists(code_key("bind", phone_index)) else "login"
    if not await check_code(ident, body.phone, purpose, body.code):
        raise InvalidGrant()
    # the channel is checked once the code is proven and before anything is made: a first sign-in on a
    # channel residents may not use creates no account
    if existing is not None:
        _check_active(existing)
    _check_channel(existing.role_set if existing is not None else frozenset({Role.RESIDENT}), body.channel)
    bound = await _take_ticket(ident, ticket) if ticket else None
    async with in_transaction():
        account = await db.account_by_phone_index(phone_index)
        if account is None:
            account = await db.create_account(
                phone_index=phone_index,
                phone_enc=ident.cipher.encrypt(body.phone, f"phone:{phone_index}"),
                roles=[Role.RESIDENT],
            )
            log.info("account.created", extra={"fields": {"event": "account.created", "account": account.id}})
        attempt.account_id = account.id
        _check_active(account)
        _check_channel(account.role_set, body.channel)
        if bound is not None:
            await _bind_wechat(account, bound)
    return await sessions.start_session(ident, account, body.channel)


async def _password_sign_in(
    ident: Identity, body: PasswordGrant, attempt: sessions.SignInAttempt
) -> sessions.IssuedSession:
    account = await db.account_by_phone_index(ident.phone_index(body.phone))
    stored = account.password_hash if account is not None and account.password_hash else None
    attempt.account_id = account.id if account is not None else None
    ok = await ident.password_matches(stored, body.password)
    if not ok or account is None:
        raise InvalidGrant()
    _check_active(account)
    _check_channel(account.role_set, body.channel)
    return await sessions.start_session(ident, account, body.channel)


async def _wechat_sign_in(
    ident: Identity, code: str, attempt: sessions.SignInAttempt
) -> sessions.IssuedSession:
    try:
        found = await ident.integrations.wechat.oauth_identity(code)
    except wechat.InvalidWeChatCode:
        raise InvalidGrant("微信授权码无效或已使用") from None
    binding = await db.binding_of("wechat", found.openid)
    if binding is not None:
        attempt.account_id = binding.account.id
        _check_active(binding.account)
        _check_channel(binding.account.role_set, "wechat")
        return await sessions.start_session(ident, binding.account, "wechat")
    ttl = ident.settings.security.binding_ticket_ttl
    raise WeChatNotBound(await _binding_ticket(ident, found, ttl), ttl)


async def wechat_web_sign_in(ident: Identity, code: str) -> tuple[str, str, int]:
    """The web authorisation's return: WeChat's code exchanged for the openid; ("signin", ticket, ttl) with a
    one-time sign-in ticket when it is bound to an account that may sign in on WeChat, ("bind", binding
    ticket, ttl) when it is bound to none. The page turns the first into tokens (grant `wechat_ticket`) and
    the second into a binding (an SMS code of purpose `bind`, then grant `sms_code` with the ticket)."""
    try:
        found = await ident.integrations.wechat.oauth_identity(code)
    except wechat.InvalidWeChatCode:
        raise InvalidGrant("微信授权码无效或已使用") from None
    binding = await db.binding_of("wechat", found.openid)
    if binding is None:
        ttl = ident.settings.security.binding_ticket_ttl
        ticket = await _binding_ticket(ident, found, ttl)
        return "bind", ticket, ttl
    _check_active(binding.account)
    _check_channel(binding.account.role_set, "wechat")
    ticket = secrets.token_urlsafe(24)
    ttl = ident.settings.wechat.signin_ticket_ttl
    await ident.redis.set(SIGNIN_TICKET_KEY.format(ticket), str(binding.account.id), ex=ttl)
    return "signin", ticket, ttl


async def _ticket_sign_in(
    ident: Identity, ticket: str, attempt: sessions.SignInAttempt
) -> sessions.IssuedSession:
    raw = await ident.redis.getdel(SIGNIN_TICKET_KEY.format(ticket))
    if raw is None:
        raise InvalidGrant("登录票据无效、已过期或已使用")
    account = await db.account_by_id(int(raw))
    if account is None:
        raise InvalidGrant("登录票据无效、已过期或已使用")
    attempt.account_id = account.id
    _check_active(account)
    _check_channel(account.role_set, "wechat")
    return await sessions.start_session(ident, account, "wechat")


async def wechat_account_of(ident: Identity, openid: str) -> int | None:
    """The account bound to this openid, if any (for the official account's replies): this worker's copy
    when the callback's round trip confirmed it (`wechat_binding_keys`, `wechat_binding_confirmed`), else
    the database."""
    return await ident.wechat_bound.account_of(openid)


def wechat_binding_keys(ident: Identity, openid: str) -> tuple[str, str | None]:
    """The Redis keys whose values confirm this worker's copy of the openid's binding (the second is None
    when there is no copy of a bound account): read them in the callback's round trip."""
    return ident.wechat_bound.keys(openid)


def wechat_binding_confirmed(
    ident: Identity, openid: str, generation: bytes | None, version: bytes | None
) -> None:
    """What Redis holds under `wechat_binding_keys`, read before the message is answered."""
    ident.wechat_bound.confirm(openid, generation, version)


async def verified_person(ident: Identity, account_id: int) -> tuple[str, str] | None:
    """The name and ID number the account's real-name check verified (level 2 or more), or None. For the
    areas that ask other systems about the person (the e-licence library); never put in an answer as is."""
    record = await db.real_name_of(account_id)
    if record is None:
        return None
    name = ident.cipher.decrypt(record.name_enc, f"realname:{account_id}:name")
    id_number = ident.cipher.decrypt(record.id_number_enc, f"realname:{account_id}:id_number")
    return name, id_number


async def real_named_after(after_account_id: int, limit: int) -> list[int]:
    """Up to `limit` active real-name-verified accounts after the given id, by id (for a sweep over them)."""
    return await db.real_named_after(after_account_id, limit)


async def wechat_openid_of(account_id: int) -> str | None:
    """The openid of the WeChat bound to this account, if any."""
    return (await db.wechat_openids_of([account_id])).get(account_id)


async def _binding_ticket(ident: Identity, found: wechat.WeChatIdentity, ttl: int) -> str:
    ticket = secrets.token_urlsafe(24)
    await ident.redis.set(
        BINDING_TICKET_KEY.format(ticket),
        orjson.dumps({"openid": found.openid, "unionid": found.unionid}),
        ex=ttl,
    )
    return ticket


async def _take_ticket(ident: Identity, ticket: str) -> wechat.WeChatIdentity:
    raw = await ident.redis.getdel(BINDING_TICKET_KEY.format(ticket))
    if raw is None:
        raise InvalidBindingTicket()
    data = orjson.loads(raw)
    return wechat.WeChatIdentity(openid=data["openid"], unionid=data.get("unionid"))


async def _bind_wechat(account: Account, found: wechat.WeChatIdentity) -> None:
    existing = await db.binding_of("wechat", found.openid)
    if existing is not None:
        if existing.account_id == account.id:
            return
        raise WeChatBoundElsewhere()
    if await db.has_binding(account.id, "wechat"):
        raise WeChatAlreadyBound()
    try:
        await db.add_binding(account.id, "wechat", found.openid, found.unionid)
    except IntegrityError:
        raise WeChatBoundElsewhere() from None


def _check_active(account: db.Account) -> None:
    if account.status != "active":
        raise AccountDisabled()


# ---- the account itself --------------------------------------------------------------------------------


async def me(ident: Identity, directory: AccountDirectory, account: db.AccountSnapshot) -> bytes:
    """The `/me` answer, kept by the directory with the account's cached copy (and gone with it)."""

    async def build() -> bytes:
        view = await account_view(ident.cipher, await db.get_account(account.id))
        return orjson.dumps(view.model_dump(mode="json"))

    return await directory.me(account, build)


async def change_password(ident: Identity, signed_in: Account, body: PasswordIn, session: str) -> None:
    """With the old password, or a fresh reset_password code; an SMS-only account sets its first one freely."""
    account = await db.get_account(signed_in.id)
    if body.sms_code:
        phone = decrypt_phone(ident.cipher, account)
        if phone is None or not await check_code(ident, phone, "reset_password", body.sms_code):
            raise InvalidCode()
    elif account.password_hash:
        if not body.old_password:
            raise invalid("old_password", "请提供原密码或重置验证码")
        if account.phone_index:
            # guesses of the old password count against the phone's sign-in limit: a stolen access token is
            # no way round it (as for DELETE /me)
            await ident.limiter.hit(
                "token-phone", account.phone_index, ident.settings.security.token_max_per_phone_per_hour, 3600
            )
        if not await ident.password_matches(account.password_hash, body.old_password):
            raise WrongPassword()
    await db.set_password_hash(account.id, await ident.hash_password(body.new_password))
    # every other session ends; the one that changed the password stays
    families = [f for f in await db.live_families_of(account.id) if f != session]
    await sessions.revoke_families(ident, families)


async def verify_real_name(
    ident: Identity, account: Account, body: RealNameIn, principal: Principal, request_id: str, ip: str
) -> AccountOut:
    """Check the name and ID number with the population database. Every check is an audit row:
    `real_name.verified`, or `real_name.failed` with the reason's code (the number masked, when valid)."""
    await ident.limiter.hit(
        "real-name", str(account.id), ident.settings.security.real_name_max_per_day, 86400
    )
    masked: str | None = None
    try:
        id_number = InvalidIdNumber.check(body.id_number)
        masked = mask_id_number(id_number)
        await _verify_real_name(ident, account, body.name, id_number)
    except AppError as exc:
        await audit(
            principal,
            "real_name.failed",
            subject=account.id,
            request_id=request_id,
            ip=ip,
            detail={"reason": exc.code, "id_number": masked},
        )
        raise
    await audit(
        principal,
        "real_name.verified",
        subject=account.id,
        request_id=request_id,
        ip=ip,
        detail={"id_number": masked},
    )
    log.info("real_name.verified", extra={"fields": {"event": "real_name.verified", "account": account.id}})
    return await account_view(ident.cipher, await db.get_account(account.id))


async def _verify_real_name(ident: Identity, account: Account, name: str, id_number: str) -> None:
    index = ident.id_number_index(id_number)
    holder = await db.real_name_by_id_index(index)
    if holder is not None and holder.account_id != account.id:
        raise IdNumberTaken()
    result = await ident.integrations.population.verify(name, id_number)
    if result != "match":
        raise RealNameMismatch()
    sealed = db.SealedRealName(
        name_enc=ident.cipher.encrypt(name, f"realname:{account.id}:name"),
        id_number_enc=ident.cipher.encrypt(id_number, f"realname:{account.id}:id_number"),
        id_number_index=index,
        verified_at=clock.now(),
    )
    try:
        async with in_transaction():
            record = await db.real_name_of(account.id)
            if record is None:
                await db.create_real_name(account.id, sealed)
            elif record.id_number_index != index:
                await db.replace_real_name(account.id, sealed)
            # the same person again keeps what he had (level 3 once seen in person)
            same = record is not None and record.id_number_index == index
            await db.set_real_name_level(account.id, max(2, account.real_name_level) if same else 2)
    except IntegrityError:
        raise IdNumberTaken() from None


async def bind_wechat(ident: Identity, account: Account, code: str) -> BindingOut:
    # a signed-in caller: a bad WeChat code is bad input (422), not a 401 that would end the app's session
    try:
        found = await ident.integrations.wechat.oauth_identity(code)
    except wechat.InvalidWeChatCode:
        raise InvalidWeChatCode() from None
    async with in_transaction():
        await _bind_wechat(account, found)
    binding = await db.binding_of("wechat", found.openid)
    assert binding is not None  # bound just above, or already bound to this account
    return binding_view(binding)


async def unbind_wechat(account: Account) -> None:
    if not await db.remove_binding(account.id, "wechat"):
        raise BindingNotFound()


async def delete_account(
    ident: Identity,
    signed_in: Account,
    proof: DeleteAccountIn,
    principal: Principal,
    request_id: str,
    ip: str,
) -> None:
    """Anonymise: personal data gone, sessions revoked, Redis keys about the phone removed; the row stays
    so that cases and audit entries keep pointing at something. Only with fresh proof given in the same
    request (the password or a delete_account code): a stolen access token alone deletes nothing. Proofs
    count against the phone's sign-in limit, so a token is no way round it to guess the password."""
    account = await db.get_account(signed_in.id)
    if account.phone_index:
        await ident.limiter.hit(
            "token-phone", account.phone_index, ident.settings.security.token_max_per_phone_per_hour, 3600
        )
    match proof.root:
        case PasswordProof(password=password):
            # one Argon2 verification also for an account without a password, which then always fails
            if not await ident.password_matches(account.password_hash, password):
                raise WrongAccountPassword()
        case SmsCodeProof(sms_code=code):
            phone = decrypt_phone(ident.cipher, account)
            if phone is None or not await check_code(ident, phone, "delete_account", code):
                raise InvalidDeletionCode()
    phone_index = account.phone_index
    async with in_transaction():
        await db.anonymise_account(account.id, clock.now())
        await audit(
            principal,
            "account.deleted",
            subject=account.id,
            request_id=request_id,
            ip=ip,
        )
    await sessions.revoke_all(ident, account.id)
    if phone_index:
        await forget_phone(ident, phone_index)
