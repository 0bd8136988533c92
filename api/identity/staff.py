"""The staff side of identity: admins create staff accounts, clerks find and check residents in person,
every read of a resident's personal data goes to the audit log."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from api.identity import sessions
from api.identity.deps import Identity
from api.identity.errors import (
    IdCardMismatch,
    InvalidIdNumber,
    PhoneTaken,
    ResidentNotFound,
    ResidentRealNameRequired,
)
from api.identity.schemas import AccountOut, AdminAccountIn, AuditList, AuditOut, ResidentOut
from api.identity.views import account_view, decrypt_phone
from api.kit import clock
from api.kit.auth import Principal, Role
from api.kit.db import IntegrityError, in_transaction
from api.kit.errors import invalid
from api.kit.http import decode_id_cursor, page
from api.kit.ids import MAX_ID64
from api.kit.pii import mask_id_number, mask_name, mask_phone
from models import audit as audit_db
from models import catalog as catalog_db
from models import identity as db
from models.audit import audit


async def resolve_scopes(
    roles: Collection[str], department: str | None, points: Sequence[str]
) -> tuple[int | None, list[int]]:
    """The department id and point ids an account with `roles` is bound to; 422 naming the field when a
    scope is missing or unknown (staff need a department, grid workers at least one point)."""
    department_id = None
    if Role.STAFF in roles and not department:
        raise invalid("department", "窗口人员必须属于一个部门")
    if department:
        found = await catalog_db.department_by_code(department)
        if found is None:
            raise invalid("department", "没有这个部门")
        department_id = found.id
    if Role.GRID_WORKER in roles and not points:
        raise invalid("points", "网格员至少负责一个服务网点")
    point_ids = []
    for code in points:
        point = await catalog_db.point_by_code(code)
        if point is None:
            raise invalid("points", f"没有这个服务网点：{code[:32]}")
        point_ids.append(point.id)
    return department_id, sorted(set(point_ids))


async def insert_account(
    ident: Identity,
    phone: str,
    roles: Collection[str],
    *,
    department_id: int | None = None,
    point_ids: Collection[int] = (),
    password: str | None = None,
    password_hash: str | None = None,
) -> db.Account:
    """A new account for `phone` (encrypted, blind-indexed) with its roles and scopes, and a password given
    in clear or already hashed; 409 when the phone has one. Runs inside the caller's transaction."""
    phone_index = ident.phone_index(phone)
    if await db.account_by_phone_index(phone_index) is not None:
        raise PhoneTaken()
    if password:
        password_hash = await ident.hash_password(password)
    return await db.create_account(
        phone_index=phone_index,
        phone_enc=ident.cipher.encrypt(phone, f"phone:{phone_index}"),
        roles=roles,
        password_hash=password_hash,
        department_id=department_id,
        point_ids=point_ids,
    )


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
        raise PhoneTaken() from None
    return await account_view(ident.cipher, account)


async def enrol_staff(
    ident: Identity,
    phone: str,
    roles: Collection[str],
    *,
    department: str | None,
    points: Sequence[str],
    password_hash: str,
    via: str,
) -> db.Account:
    """A staff account made by a tool (`via` names it in the audit log), with a password already hashed.
    422 when a scope is missing or unknown, 409 when the phone has an account."""
    department_id, point_ids = await resolve_scopes(roles, department, points)
    try:
        async with in_transaction():
            account = await insert_account(
                ident,
                phone,
                roles,
                department_id=department_id,
                point_ids=point_ids,
                password_hash=password_hash,
            )
            await audit(
                None,
                "account.created",
                subject=account.id,
                detail={"roles": sorted(roles), "via": via},
                actor_role="cli",
            )
    except IntegrityError:
        raise PhoneTaken() from None
    return account


async def bootstrap_admin(ident: Identity, phone: str, password: str | None) -> tuple[db.Account, str]:
    """`create-admin`: an admin account for `phone`, or the admin role added to the account the phone has.
    Idempotent. Returns the account and what happened: "created", "granted" or "unchanged". A password given
    for an existing account replaces its password and ends its sessions, as a password change does."""
    phone_index = ident.phone_index(phone)
    async with in_transaction():
        account = await db.account_by_phone_index(phone_index)
        if account is None:
            account = await insert_account(ident, phone, [Role.ADMIN], password=password)
            outcome = "created"
        else:
            granted = Role.ADMIN not in account.role_set
            if granted:
                await db.set_roles(account.id, account.role_set | {Role.ADMIN})
            if password:
                await db.set_password_hash(account.id, await ident.hash_password(password))
            if granted or password:
                account = await db.get_account(account.id)
            outcome = "granted" if granted else "unchanged"
        if outcome != "unchanged":
            await audit(
                None,
                "account.created" if outcome == "created" else "account.admin_granted",
                subject=account.id,
                detail={"roles": sorted(account.role_set), "via": "create-admin"},
                actor_role="cli",
            )
    if password and outcome != "created":
        await sessions.revoke_all(ident, account.id)
    return account, outcome


async def find_resident(
    ident: Identity, id_number: str, principal: Principal, request_id: str, ip: str
) -> ResidentOut:
    normalized = InvalidIdNumber.check(id_number)
    record = await db.real_name_by_id_index(ident.id_number_index(normalized))
    found = record if record is not None and record.account.status == "active" else None
    await audit(
        principal,
        "resident.lookup",
        subject=found.account_id if found else None,
        request_id=request_id,
        ip=ip,
        detail={"found": found is not None, "id_number": mask_id_number(normalized)},
    )
    if found is None:
        raise ResidentNotFound()
    account = found.account
    return ResidentOut(
        id=account.id,
        name=mask_name(ident.cipher.decrypt(found.name_enc, f"realname:{account.id}:name")),
        id_number=mask_id_number(normalized),
        phone=mask_phone(decrypt_phone(ident.cipher, account)),
        real_name_level=account.real_name_level,
    )


async def verify_in_person(
    ident: Identity, resident_id: int, id_number: str, principal: Principal, request_id: str, ip: str
) -> ResidentOut:
    account = await db.active_account(resident_id)
    record = await db.real_name_of(resident_id) if account is not None else None
    if account is None or Role.RESIDENT not in account.role_set:
        raise ResidentNotFound()
    if record is None:
        raise ResidentRealNameRequired()
    # a misread card, not a different person: say so, and leave no mismatch in the audit log
    card = InvalidIdNumber.check(id_number)
    if ident.id_number_index(card) != record.id_number_index:
        await audit(
            principal, "resident.in_person_mismatch", subject=resident_id, request_id=request_id, ip=ip
        )
        raise IdCardMismatch()
    async with in_transaction():
        await db.record_in_person(record.id, resident_id, principal.account_id, clock.now())
        await audit(
            principal, "resident.in_person_verified", subject=resident_id, request_id=request_id, ip=ip
        )
    id_plain = ident.cipher.decrypt(record.id_number_enc, f"realname:{resident_id}:id_number")
    return ResidentOut(
        id=resident_id,
        name=mask_name(ident.cipher.decrypt(record.name_enc, f"realname:{resident_id}:name")),
        id_number=mask_id_number(id_plain),
        phone=mask_phone(decrypt_phone(ident.cipher, account)),
        real_name_level=3,
    )


async def audit_entries(
    account: int | None, start: datetime | None, end: datetime | None, cursor: str | None, limit: int
) -> AuditList:
    before = decode_id_cursor(cursor, "before", MAX_ID64)
    rows, next_cursor = page(
        await audit_db.audit_entries(account, start, end, before, limit + 1),
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
