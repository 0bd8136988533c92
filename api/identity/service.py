"""Signing in (SMS code, password, WeChat, refresh), the account itself, real name, bindings, deletion.

This module is also the identity area's face to the other areas: what they may ask of identity is here
(decrypting and masking phones, the staff accounts of the demo sandbox), and nothing else of the area."""

from __future__ import annotations

import logging
import secrets

import orjson

from api.identity import sessions
from api.identity.deps import Identity
from api.identity.errors import (
    AccountDisabled,
    BindingNotFound,
    IdNumberTaken,
    InvalidBindingTicket,
    InvalidCode,
    InvalidGrant,
    InvalidIdNumber,
    InvalidWeChatCode,
    RealNameMismatch,
    WeChatAlreadyBound,
    WeChatBoundElsewhere,
    WeChatNotBound,
    WrongPassword,
)
from api.identity.schemas import (
    AccountOut,
    BindingOut,
    PasswordGrant,
    PasswordIn,
    RealNameIn,
    RefreshTokenGrant,
    SmsCodeGrant,
    TokenIn,
    TokenOut,
    WeChatCodeGrant,
)
from api.identity.sms_codes import check_code, forget_phone, send_code
from api.identity.staff import enrol_staff
from api.identity.views import account_view, binding_view, bindings, decrypt_phone, masked_phones
from api.kit import clock
from api.kit.auth import Principal, Role
from api.kit.db import IntegrityError, in_transaction
from api.kit.errors import invalid
from integrations import wechat
from models import identity as db
from models.audit import audit

log = logging.getLogger("ywt.auth")

BINDING_TICKET_KEY = "wechat:binding:{}"

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
    if purpose == "reset_password":
        account = await db.account_by_phone_index(ident.phone_index(phone))
        deliver = account is not None and account.status == "active"
    return await send_code(ident, phone, purpose, ip, deliver=deliver)


# ---- sign-in -------------------------------------------------------------------------------------------


async def grant(ident: Identity, body: TokenIn, ip: str) -> TokenOut:
    security = ident.settings.security
    await ident.limiter.hit("token-ip", ip or "unknown", security.token_max_per_ip_per_minute, 60)
    match body.root:
        case RefreshTokenGrant(refresh_token=refresh_token):
            return await token_answer(ident, await sessions.refresh_session(ident, refresh_token))
        case WeChatCodeGrant(code=code):
            return await _wechat_sign_in(ident, code)
        case SmsCodeGrant() | PasswordGrant() as by_phone:
            await ident.limiter.hit(
                "token-phone",
                ident.phone_index(by_phone.phone),
                security.token_max_per_phone_per_hour,
                3600,
            )
            if isinstance(by_phone, SmsCodeGrant):
                return await _sms_sign_in(ident, by_phone)
            return await _password_sign_in(ident, by_phone)


async def _sms_sign_in(ident: Identity, body: SmsCodeGrant) -> TokenOut:
    ticket = body.binding_ticket
    if ticket and not await ident.redis.exists(BINDING_TICKET_KEY.format(ticket)):
        # refused before the code is checked, so a stale ticket does not burn the resident's code
        raise InvalidBindingTicket()
    if not await check_code(ident, body.phone, "login", body.code):
        raise InvalidGrant()
    bound = await _take_ticket(ident, ticket) if ticket else None
    phone_index = ident.phone_index(body.phone)
    async with in_transaction():
        account = await db.account_by_phone_index(phone_index)
        if account is None:
            account = await db.create_account(
                phone_index=phone_index,
                phone_enc=ident.cipher.encrypt(body.phone, f"phone:{phone_index}"),
                roles=[Role.RESIDENT],
            )
            log.info("account.created", extra={"fields": {"event": "account.created", "account": account.id}})
        _check_active(account)
        if bound is not None:
            await _bind_wechat(account, bound)
    return await token_answer(ident, await sessions.start_session(ident, account, body.channel))


async def _password_sign_in(ident: Identity, body: PasswordGrant) -> TokenOut:
    account = await db.account_by_phone_index(ident.phone_index(body.phone))
    stored = account.password_hash if account is not None and account.password_hash else None
    ok = await ident.password_matches(stored, body.password)
    if not ok or account is None:
        raise InvalidGrant()
    _check_active(account)
    return await token_answer(ident, await sessions.start_session(ident, account, body.channel))


async def _wechat_sign_in(ident: Identity, code: str) -> TokenOut:
    try:
        found = await ident.integrations.wechat.oauth_identity(code)
    except wechat.InvalidWeChatCode:
        raise InvalidGrant("微信授权码无效或已使用") from None
    binding = await db.binding_of("wechat", found.openid)
    if binding is not None:
        _check_active(binding.account)
        return await token_answer(ident, await sessions.start_session(ident, binding.account, "wechat"))
    ticket = secrets.token_urlsafe(24)
    ttl = ident.settings.security.binding_ticket_ttl
    await ident.redis.set(
        BINDING_TICKET_KEY.format(ticket),
        orjson.dumps({"openid": found.openid, "unionid": found.unionid}),
        ex=ttl,
    )
    raise WeChatNotBound(ticket, ttl)


async def _take_ticket(ident: Identity, ticket: str) -> wechat.WeChatIdentity:
    raw = await ident.redis.getdel(BINDING_TICKET_KEY.format(ticket))
    if raw is None:
        raise InvalidBindingTicket()
    data = orjson.loads(raw)
    return wechat.WeChatIdentity(openid=data["openid"], unionid=data.get("unionid"))


async def _bind_wechat(account: db.Account, found: wechat.WeChatIdentity) -> None:
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


async def change_password(ident: Identity, account: db.Account, body: PasswordIn, session: str) -> None:
    """With the old password, or a fresh reset_password code; an SMS-only account sets its first one freely."""
    if body.sms_code:
        phone = decrypt_phone(ident.cipher, account)
        if phone is None or not await check_code(ident, phone, "reset_password", body.sms_code):
            raise InvalidCode()
    elif account.password_hash:
        if not body.old_password:
            raise invalid("old_password", "请提供原密码或重置验证码")
        if not await ident.password_matches(account.password_hash, body.old_password):
            raise WrongPassword()
    await db.set_password_hash(account.id, await ident.hash_password(body.new_password))
    # every other session ends; the one that changed the password stays
    families = [f for f in await db.live_families_of(account.id) if f != session]
    await sessions.revoke_families(ident, families)


async def verify_real_name(ident: Identity, account: db.Account, body: RealNameIn) -> AccountOut:
    await ident.limiter.hit(
        "real-name", str(account.id), ident.settings.security.real_name_max_per_day, 86400
    )
    id_number = InvalidIdNumber.check(body.id_number)
    index = ident.id_number_index(id_number)
    holder = await db.real_name_by_id_index(index)
    if holder is not None and holder.account_id != account.id:
        raise IdNumberTaken()
    result = await ident.integrations.population.verify(body.name, id_number)
    if result != "match":
        raise RealNameMismatch()
    sealed = db.SealedRealName(
        name_enc=ident.cipher.encrypt(body.name, f"realname:{account.id}:name"),
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
                await db.replace_real_name(record.id, sealed)
            # the same person again keeps what he had (level 3 once seen in person)
            same = record is not None and record.id_number_index == index
            await db.set_real_name_level(account.id, max(2, account.real_name_level) if same else 2)
    except IntegrityError:
        raise IdNumberTaken() from None
    log.info("real_name.verified", extra={"fields": {"event": "real_name.verified", "account": account.id}})
    return await account_view(ident.cipher, await db.get_account(account.id))


async def bind_wechat(ident: Identity, account: db.Account, code: str) -> BindingOut:
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


async def unbind_wechat(account: db.Account) -> None:
    if not await db.remove_binding(account.id, "wechat"):
        raise BindingNotFound()


async def delete_account(
    ident: Identity, account: db.Account, principal: Principal, request_id: str, ip: str
) -> None:
    """Anonymise: personal data gone, sessions revoked, Redis keys about the phone removed; the row stays
    so that cases and audit entries keep pointing at something."""
    phone_index = account.phone_index
    async with in_transaction():
        await db.anonymise_account(account.id, clock.now())
        await audit(
            principal,
            "account.deleted",
            subject=account.id,
            request_id=request_id,
            ip=ip,
            actor_role=str(Role.RESIDENT),
        )
    await sessions.revoke_all(ident, account.id)
    if phone_index:
        await forget_phone(ident, phone_index)
