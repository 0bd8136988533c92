"""Signing in (SMS code, password, WeChat, refresh), the account itself, real name, bindings, deletion."""

from __future__ import annotations

import logging
import secrets

import orjson
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from api.identity import sessions
from api.identity.deps import Identity
from api.identity.schemas import AccountOut, BindingOut, PasswordIn, RealNameIn, TokenIn, TokenOut
from api.identity.sms_codes import check_code, forget_phone, send_code
from api.kit.errors import Conflict, Forbidden, InvalidInput, NotFoundError, Unauthorized
from api.kit.pii import id_number_problem, mask_id_number, mask_name, mask_phone, normalize_id_number
from integrations.wechat import InvalidWeChatCode, WeChatIdentity
from models import identity as db

log = logging.getLogger("ywt.auth")

BINDING_TICKET_KEY = "wechat:binding:{}"


# ---- views ---------------------------------------------------------------------------------------------


async def account_view(ident: Identity, account: db.Account) -> AccountOut:
    record = await db.real_name_of(account.id)
    bindings = await db.bindings_of(account.id)
    name = id_number = None
    if record is not None:
        name = mask_name(ident.cipher.decrypt(record.name_enc, f"realname:{account.id}:name"))
        id_number = mask_id_number(
            ident.cipher.decrypt(record.id_number_enc, f"realname:{account.id}:id_number")
        )
    department = None
    if account.department_id is not None:
        await account.fetch_related("department")
        department = account.department.code
    points: list[str] = []
    if "grid_worker" in account.role_set:
        await account.fetch_related("points__point")
        points = sorted(p.point.code for p in account.points)
    return AccountOut(
        id=account.id,
        phone=mask_phone(decrypt_phone(ident, account)),
        roles=sorted(account.role_set),
        real_name_level=account.real_name_level,
        name=name,
        id_number=id_number,
        bindings=[binding_view(b) for b in bindings],
        department=department,
        points=points,
    )


async def bindings(account: db.Account) -> list[BindingOut]:
    return [binding_view(b) for b in await db.bindings_of(account.id)]


def binding_view(binding: db.ChannelBinding) -> BindingOut:
    openid = binding.external_id
    return BindingOut(
        channel=binding.channel,
        external_id=openid[:4] + "****" + openid[-4:] if len(openid) > 8 else "****",
        has_unionid=binding.unionid is not None,
        created_at=binding.created_at,
    )


def decrypt_phone(ident: Identity, account: db.Account) -> str | None:
    if account.phone_enc is None or account.phone_index is None:
        return None
    return ident.cipher.decrypt(account.phone_enc, f"phone:{account.phone_index}")


async def token_answer(ident: Identity, issued: sessions.IssuedSession) -> TokenOut:
    return TokenOut(
        access_token=issued.access_token,
        refresh_token=issued.refresh_token,
        expires_in=issued.expires_in,
        account=await account_view(ident, issued.account),
    )


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
    if body.grant_type == "refresh_token":
        _need(body, "refresh_token")
        return await token_answer(ident, await sessions.refresh_session(ident, body.refresh_token or ""))
    if body.grant_type == "wechat_code":
        _need(body, "code")
        if body.channel != "wechat":
            raise InvalidInput(errors=[{"field": "channel", "message": "微信授权登录的 channel 应为 wechat"}])
        return await _wechat_sign_in(ident, body.code or "")
    _need(body, "phone", "channel")
    phone = body.phone or ""
    await ident.limiter.hit(
        "token-phone", ident.phone_index(phone), security.token_max_per_phone_per_hour, 3600
    )
    if body.grant_type == "sms_code":
        _need(body, "code")
        return await _sms_sign_in(ident, phone, body.code or "", body.channel or "app", body.binding_ticket)
    _need(body, "password")
    return await _password_sign_in(ident, phone, body.password or "", body.channel or "app")


def _need(body: TokenIn, *fields: str) -> None:
    missing = [f for f in fields if getattr(body, f) in (None, "")]
    if missing:
        raise InvalidInput(errors=[{"field": f, "message": f"{body.grant_type} 方式必填"} for f in missing])


async def _sms_sign_in(ident: Identity, phone: str, code: str, channel: str, ticket: str | None) -> TokenOut:
    if ticket and not await ident.redis.exists(BINDING_TICKET_KEY.format(ticket)):
        # refused before the code is checked, so a stale ticket does not burn the resident's code
        raise _bad_ticket()
    if not await check_code(ident, phone, "login", code):
        raise sessions.invalid_grant()
    wechat = await _take_ticket(ident, ticket) if ticket else None
    phone_index = ident.phone_index(phone)
    async with in_transaction():
        account = await db.account_by_phone_index(phone_index)
        if account is None:
            account = await db.Account.create(
                phone_index=phone_index,
                phone_enc=ident.cipher.encrypt(phone, f"phone:{phone_index}"),
                roles="resident",
                real_name_level=1,
            )
            log.info("account.created", extra={"fields": {"event": "account.created", "account": account.id}})
        _check_active(account)
        if wechat is not None:
            await _bind_wechat(account, wechat)
    return await token_answer(ident, await sessions.start_session(ident, account, channel))


async def _password_sign_in(ident: Identity, phone: str, password: str, channel: str) -> TokenOut:
    account = await db.account_by_phone_index(ident.phone_index(phone))
    stored = account.password_hash if account is not None and account.password_hash else None
    ok = await ident.password_matches(stored, password)
    if not ok or account is None:
        raise sessions.invalid_grant()
    _check_active(account)
    return await token_answer(ident, await sessions.start_session(ident, account, channel))


async def _wechat_sign_in(ident: Identity, code: str) -> TokenOut:
    identity = await _exchange(ident, code)
    binding = await db.binding_of("wechat", identity.openid)
    if binding is not None:
        _check_active(binding.account)
        return await token_answer(ident, await sessions.start_session(ident, binding.account, "wechat"))
    ticket = secrets.token_urlsafe(24)
    await ident.redis.set(
        BINDING_TICKET_KEY.format(ticket),
        orjson.dumps({"openid": identity.openid, "unionid": identity.unionid}),
        ex=ident.settings.security.binding_ticket_ttl,
    )
    raise Unauthorized(
        "该微信尚未绑定账号，请用手机验证码登录以完成绑定",
        code="wechat_not_bound",
        binding_ticket=ticket,
        binding_ticket_expires_in=ident.settings.security.binding_ticket_ttl,
    )


async def _exchange(ident: Identity, code: str) -> WeChatIdentity:
    try:
        return await ident.integrations.wechat.oauth_identity(code)
    except InvalidWeChatCode:
        raise sessions.invalid_grant("微信授权码无效或已使用") from None


async def _take_ticket(ident: Identity, ticket: str) -> WeChatIdentity:
    raw = await ident.redis.getdel(BINDING_TICKET_KEY.format(ticket))
    if raw is None:
        raise _bad_ticket()
    data = orjson.loads(raw)
    return WeChatIdentity(openid=data["openid"], unionid=data.get("unionid"))


def _bad_ticket() -> InvalidInput:
    return InvalidInput(
        "绑定凭证无效或已过期",
        code="invalid_binding_ticket",
        errors=[{"field": "binding_ticket", "message": "无效或已过期"}],
    )


async def _bind_wechat(account: db.Account, wechat: WeChatIdentity) -> None:
    existing = await db.binding_of("wechat", wechat.openid)
    if existing is not None:
        if existing.account_id == account.id:
            return
        raise Conflict("该微信已绑定其他账号", code="wechat_bound_elsewhere")
    if await db.ChannelBinding.filter(account_id=account.id, channel="wechat").exists():
        raise Conflict("账号已绑定其他微信，请先解绑", code="wechat_already_bound")
    try:
        await db.ChannelBinding.create(
            account_id=account.id, channel="wechat", external_id=wechat.openid, unionid=wechat.unionid
        )
    except IntegrityError:
        raise Conflict("该微信已绑定其他账号", code="wechat_bound_elsewhere") from None


def _check_active(account: db.Account) -> None:
    if account.status != "active":
        raise Forbidden("账号已停用", code="account_disabled")


# ---- the account itself --------------------------------------------------------------------------------


async def change_password(ident: Identity, account: db.Account, body: PasswordIn, session: str) -> None:
    """With the old password, or a fresh reset_password code; an SMS-only account sets its first one freely."""
    if body.sms_code:
        phone = decrypt_phone(ident, account)
        if phone is None or not await check_code(ident, phone, "reset_password", body.sms_code):
            raise InvalidInput(
                "验证码不正确或已过期",
                code="invalid_code",
                errors=[{"field": "sms_code", "message": "不正确或已过期"}],
            )
    elif account.password_hash:
        if not body.old_password:
            raise InvalidInput(errors=[{"field": "old_password", "message": "请提供原密码或重置验证码"}])
        if not await ident.password_matches(account.password_hash, body.old_password):
            raise InvalidInput(
                "原密码不正确", code="wrong_password", errors=[{"field": "old_password", "message": "不正确"}]
            )
    await db.Account.filter(id=account.id).update(password_hash=await ident.hash_password(body.new_password))
    # every other session ends; the one that changed the password stays
    families = [f for f in await db.live_families_of(account.id) if f != session]
    await sessions.revoke_families(ident, families)


async def verify_real_name(ident: Identity, account: db.Account, body: RealNameIn) -> AccountOut:
    await ident.limiter.hit(
        "real-name", str(account.id), ident.settings.security.real_name_max_per_day, 86400
    )
    id_number = normalize_id_number(body.id_number)
    problem = id_number_problem(id_number)
    if problem is not None:
        raise InvalidInput(
            f"身份证号码无效：{problem}",
            code="invalid_id_number",
            errors=[{"field": "id_number", "message": problem}],
        )
    index = ident.id_number_index(id_number)
    holder = await db.real_name_by_id_index(index)
    if holder is not None and holder.account_id != account.id:
        raise Conflict("该身份证号码已在其他账号完成实名认证", code="id_number_taken")
    result = await ident.integrations.population.verify(body.name, id_number)
    if result != "match":
        raise InvalidInput(
            "姓名与身份证号码不匹配",
            code="real_name_mismatch",
            errors=[{"field": "name", "message": "与人口库不一致"}],
        )
    moment = sessions.now()
    try:
        async with in_transaction():
            values = {
                "name_enc": ident.cipher.encrypt(body.name, f"realname:{account.id}:name"),
                "id_number_enc": ident.cipher.encrypt(id_number, f"realname:{account.id}:id_number"),
                "id_number_index": index,
                "verified_at": moment,
            }
            record = await db.real_name_of(account.id)
            if record is None:
                await db.RealNameRecord.create(account_id=account.id, level=2, **values)
            elif record.id_number_index != index:
                await db.RealNameRecord.filter(id=record.id).update(
                    level=2, in_person_by_id=None, in_person_at=None, **values
                )
            level = (
                2 if record is None or record.id_number_index != index else max(2, account.real_name_level)
            )
            await db.Account.filter(id=account.id).update(real_name_level=level)
    except IntegrityError:
        raise Conflict("该身份证号码已在其他账号完成实名认证", code="id_number_taken") from None
    log.info("real_name.verified", extra={"fields": {"event": "real_name.verified", "account": account.id}})
    return await account_view(ident, await db.Account.get(id=account.id))


async def bind_wechat(ident: Identity, account: db.Account, code: str) -> BindingOut:
    # a signed-in caller: a bad WeChat code is bad input (422), not a 401 that would end the app's session
    try:
        wechat = await ident.integrations.wechat.oauth_identity(code)
    except InvalidWeChatCode:
        raise InvalidInput(
            "微信授权码无效或已使用",
            code="invalid_wechat_code",
            errors=[{"field": "code", "message": "无效或已使用"}],
        ) from None
    async with in_transaction():
        await _bind_wechat(account, wechat)
    binding = await db.binding_of("wechat", wechat.openid)
    assert binding is not None
    return binding_view(binding)


async def unbind_wechat(account: db.Account) -> None:
    deleted = await db.ChannelBinding.filter(account_id=account.id, channel="wechat").delete()
    if not deleted:
        raise NotFoundError("没有绑定微信", code="binding_not_found")


async def delete_account(ident: Identity, account: db.Account) -> None:
    """Anonymise: personal data gone, sessions revoked, Redis keys about the phone removed; the row stays
    so that cases and audit entries keep pointing at something."""
    phone_index = account.phone_index
    async with in_transaction():
        await db.RealNameRecord.filter(account_id=account.id).delete()
        await db.ChannelBinding.filter(account_id=account.id).delete()
        await db.Account.filter(id=account.id).update(
            phone_index=None,
            phone_enc=None,
            password_hash=None,
            status="deleted",
            real_name_level=0,
            deleted_at=sessions.now(),
        )
        await db.AuditLog.create(
            actor_id=account.id, actor_role="resident", action="account.deleted", subject_id=account.id
        )
    await sessions.revoke_all(ident, account.id)
    if phone_index:
        await forget_phone(ident, phone_index)
