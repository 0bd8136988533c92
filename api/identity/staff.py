"""The staff side of identity: admins create staff accounts, clerks find and check residents in person,
every read of a resident's personal data goes to the audit log."""

from __future__ import annotations

from datetime import datetime

from tortoise.exceptions import IntegrityError
from tortoise.timezone import is_naive, localtime, make_aware
from tortoise.transactions import in_transaction

from api.identity import sessions
from api.identity.deps import Identity
from api.identity.schemas import AccountOut, AdminAccountIn, AuditList, AuditOut, ResidentOut
from api.identity.service import account_view, decrypt_phone
from api.kit.auth import Principal
from api.kit.errors import Conflict, InvalidInput, NotFoundError
from api.kit.http import decode_id_cursor, page
from api.kit.pii import id_number_problem, mask_id_number, mask_name, mask_phone, normalize_id_number
from models import catalog as catalog_db
from models import identity as db
from models.audit import audit


async def resolve_scopes(
    roles: list[str], department: str | None, points: list[str]
) -> tuple[int | None, list[int]]:
    """The department id and point ids an account with `roles` is bound to; 422 naming the field when a
    scope is missing or unknown (staff need a department, grid workers at least one point)."""
    department_id = None
    if "staff" in roles and not department:
        raise InvalidInput(errors=[{"field": "department", "message": "窗口人员必须属于一个部门"}])
    if department:
        found = await catalog_db.department_by_code(department)
        if found is None:
            raise InvalidInput(errors=[{"field": "department", "message": "没有这个部门"}])
        department_id = found.id
    if "grid_worker" in roles and not points:
        raise InvalidInput(errors=[{"field": "points", "message": "网格员至少负责一个服务网点"}])
    point_ids = []
    for code in points:
        point = await catalog_db.point_by_code(code)
        if point is None:
            raise InvalidInput(errors=[{"field": "points", "message": f"没有这个服务网点：{code[:32]}"}])
        point_ids.append(point.id)
    return department_id, sorted(set(point_ids))


async def insert_account(
    ident: Identity,
    phone: str,
    roles: list[str],
    *,
    department_id: int | None = None,
    point_ids: list[int] | None = None,
    password: str | None = None,
) -> db.Account:
    """A new account for `phone` (encrypted, blind-indexed) with its roles and scopes; 409 when the phone has
    one. Runs inside the caller's transaction."""
    phone_index = ident.phone_index(phone)
    if await db.account_by_phone_index(phone_index) is not None:
        raise Conflict("该手机号已有账号", code="phone_taken")
    account = await db.Account.create(
        phone_index=phone_index,
        phone_enc=ident.cipher.encrypt(phone, f"phone:{phone_index}"),
        password_hash=await ident.hash_password(password) if password else None,
        roles=",".join(sorted(set(roles))),
        department_id=department_id,
        real_name_level=1,
    )
    for point_id in sorted(set(point_ids or ())):
        await db.AccountPoint.create(account_id=account.id, point_id=point_id)
    return account


async def create_account(
    ident: Identity, body: AdminAccountIn, principal: Principal, request_id: str, ip: str
) -> AccountOut:
    department_id, point_ids = await resolve_scopes(body.roles, body.department, body.points)
    try:
        async with in_transaction():
            account = await insert_account(
                ident,
                body.phone,
                body.roles,
                department_id=department_id,
                point_ids=point_ids,
                password=body.password,
            )
            await audit(
                principal,
                "account.created",
                subject=account.id,
                request_id=request_id,
                ip=ip,
                detail={"roles": sorted(body.roles)},
            )
    except IntegrityError:
        # two admins creating the same phone at once: the unique blind index lets one through
        raise Conflict("该手机号已有账号", code="phone_taken") from None
    return await account_view(ident, account)


async def bootstrap_admin(ident: Identity, phone: str, password: str | None) -> tuple[db.Account, str]:
    """`create-admin`: an admin account for `phone`, or the admin role added to the account the phone has.
    Idempotent. Returns the account and what happened: "created", "granted" or "unchanged". A password given
    for an existing account replaces its password and ends its sessions, as a password change does."""
    phone_index = ident.phone_index(phone)
    password_changed = False
    async with in_transaction():
        account = await db.account_by_phone_index(phone_index)
        if account is None:
            account = await insert_account(ident, phone, ["admin"], password=password)
            outcome = "created"
        else:
            changes: dict[str, str] = {}
            if "admin" not in account.role_set:
                changes["roles"] = ",".join(sorted(account.role_set | {"admin"}))
            if password:
                changes["password_hash"] = await ident.hash_password(password)
                password_changed = True
            if changes:
                await db.Account.filter(id=account.id).update(**changes)
                account = await db.Account.get(id=account.id)
            outcome = "granted" if "roles" in changes else "unchanged"
        if outcome != "unchanged":
            await db.AuditLog.create(
                actor_id=None,
                actor_role="cli",
                action="account.created" if outcome == "created" else "account.admin_granted",
                subject_id=account.id,
                detail={"roles": sorted(account.role_set), "via": "create-admin"},
            )
    if password_changed:
        await sessions.revoke_all(ident, account.id)
    return account, outcome


async def find_resident(
    ident: Identity, id_number: str, principal: Principal, request_id: str, ip: str
) -> ResidentOut:
    normalized = normalize_id_number(id_number)
    problem = id_number_problem(normalized)
    if problem is not None:
        raise InvalidInput(
            f"身份证号码无效：{problem}",
            code="invalid_id_number",
            errors=[{"field": "id_number", "message": problem}],
        )
    record = await db.real_name_by_id_index(ident.id_number_index(normalized))
    found = record is not None and record.account.status == "active"
    await audit(
        principal,
        "resident.lookup",
        subject=record.account_id if found and record else None,
        request_id=request_id,
        ip=ip,
        detail={"found": found, "id_number": mask_id_number(normalized)},
    )
    if not found or record is None:
        raise NotFoundError("没有找到该居民", code="resident_not_found")
    account = record.account
    return ResidentOut(
        id=account.id,
        name=mask_name(ident.cipher.decrypt(record.name_enc, f"realname:{account.id}:name")),
        id_number=mask_id_number(normalized),
        phone=mask_phone(decrypt_phone(ident, account)),
        real_name_level=account.real_name_level,
    )


async def verify_in_person(
    ident: Identity, resident_id: int, id_number: str, principal: Principal, request_id: str, ip: str
) -> ResidentOut:
    account = await db.active_account(resident_id)
    record = await db.real_name_of(resident_id) if account is not None else None
    if account is None or "resident" not in account.role_set:
        raise NotFoundError("没有找到该居民", code="resident_not_found")
    if record is None:
        raise Conflict("该居民尚未完成实名认证", code="real_name_required")
    card = normalize_id_number(id_number)
    problem = id_number_problem(card)
    if problem is not None:
        # a misread card, not a different person: say so, and leave no mismatch in the audit log
        raise InvalidInput(
            f"身份证号码无效：{problem}",
            code="invalid_id_number",
            errors=[{"field": "id_number", "message": problem}],
        )
    if ident.id_number_index(card) != record.id_number_index:
        await audit(
            principal, "resident.in_person_mismatch", subject=resident_id, request_id=request_id, ip=ip
        )
        raise InvalidInput(
            "证件号码与账号实名信息不一致",
            code="id_card_mismatch",
            errors=[{"field": "id_number", "message": "与实名信息不一致"}],
        )
    async with in_transaction():
        await db.RealNameRecord.filter(id=record.id).update(
            level=3, in_person_by_id=principal.account_id, in_person_at=sessions.now()
        )
        await db.Account.filter(id=resident_id).update(real_name_level=3)
        await audit(
            principal, "resident.in_person_verified", subject=resident_id, request_id=request_id, ip=ip
        )
    id_plain = ident.cipher.decrypt(record.id_number_enc, f"realname:{resident_id}:id_number")
    return ResidentOut(
        id=resident_id,
        name=mask_name(ident.cipher.decrypt(record.name_enc, f"realname:{resident_id}:name")),
        id_number=mask_id_number(id_plain),
        phone=mask_phone(decrypt_phone(ident, account)),
        real_name_level=3,
    )


def _db_time(value: datetime | None) -> datetime | None:
    """A bound in the database's own zone. SQLite keeps datetimes as text in that zone and compares them as
    text, so a bound given in another offset (UTC, say) would compare wrong. A time without an offset is
    read as the database's zone (China time)."""
    if value is None:
        return None
    return localtime(make_aware(value) if is_naive(value) else value)


async def audit_entries(
    account: int | None, start: datetime | None, end: datetime | None, cursor: str | None, limit: int
) -> AuditList:
    before = decode_id_cursor(cursor, "before")
    rows, next_cursor = page(
        await db.audit_query(account, _db_time(start), _db_time(end), before, limit + 1),
        limit,
        lambda last: {"before": last.id},
    )
    return AuditList(
        items=[
            AuditOut(
                id=r.id,
                at=r.at,
                actor=r.actor_id,
                actor_role=r.actor_role,
                action=r.action,
                subject=r.subject_id,
                request_id=r.request_id,
                detail=r.detail,
            )
            for r in rows
        ],
        next_cursor=next_cursor,
    )
