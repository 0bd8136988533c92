"""Accounts and everything that proves who they are: roles and scopes, channel bindings, refresh-token
families, real-name records (encrypted, blind-indexed) and the audit log."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tortoise import connections, fields
from tortoise.expressions import F
from tortoise.models import Model

from api.kit import versions
from api.kit.auth import Role
from api.kit.db import after_commit
from models.notifications import Delivery, Device, Notification
from models.sql import Placeholders, is_postgres

if TYPE_CHECKING:
    from models.catalog import Department, ServicePoint


class Account(Model):
    id = fields.IntField(primary_key=True)
    # the phone is personal data: an HMAC blind index to find the account, AES-GCM ciphertext to show it
    phone_index = fields.CharField(max_length=64, unique=True, null=True)
    phone_enc = fields.TextField(null=True)
    password_hash = fields.CharField(max_length=255, null=True)
    roles = fields.CharField(max_length=64, default="resident")  # comma-separated kit.auth Role values
    department: fields.ForeignKeyNullableRelation[Department] = fields.ForeignKeyField(
        "models.Department", related_name="staff", null=True, on_delete=fields.RESTRICT
    )
    department_id: int | None
    real_name_level = fields.SmallIntField(default=1)  # 1 phone, 2 population database, 3 seen in person
    status = fields.CharField(max_length=16, default="active")  # active | disabled | deleted
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    deleted_at = fields.DatetimeField(null=True)
    # bumped by `changed()` with every write to roles, status, level, scope, bindings, real name or password;
    # copied to Redis after the commit, so a worker's cached copy of the account is used only while it is current
    version = fields.IntField(default=1, db_default=1)

    points: fields.ReverseRelation[AccountPoint]
    bindings: fields.ReverseRelation[ChannelBinding]

    class Meta:
        table = "account"

    @property
    def role_set(self) -> frozenset[str]:
        return frozenset(r for r in self.roles.split(",") if r)


class AccountPoint(Model):
    """The service points a grid worker serves."""

    id = fields.IntField(primary_key=True)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="points", on_delete=fields.CASCADE
    )
    account_id: int
    point: fields.ForeignKeyRelation[ServicePoint] = fields.ForeignKeyField(
        "models.ServicePoint", related_name="grid_workers", on_delete=fields.RESTRICT
    )
    point_id: int

    class Meta:
        table = "account_point"
        unique_together = (("account", "point"),)


class ChannelBinding(Model):
    id = fields.IntField(primary_key=True)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="bindings", on_delete=fields.CASCADE
    )
    account_id: int
    channel = fields.CharField(max_length=16)  # wechat
    external_id = fields.CharField(max_length=128)  # openid
    unionid = fields.CharField(max_length=128, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "channel_binding"
        unique_together = (("channel", "external_id"), ("account", "channel"))


class RefreshToken(Model):
    """One refresh token of a session family, stored as its SHA-256 only. Used once, then replaced."""

    id = fields.BigIntField(primary_key=True)
    family = fields.CharField(max_length=32, db_index=True)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="refresh_tokens", on_delete=fields.CASCADE
    )
    account_id: int
    token_hash = fields.CharField(max_length=64, unique=True)
    channel = fields.CharField(max_length=16)
    issued_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "refresh_token"


class RealNameRecord(Model):
    id = fields.IntField(primary_key=True)
    account: fields.OneToOneRelation[Account] = fields.OneToOneField(
        "models.Account", related_name="real_name", on_delete=fields.CASCADE
    )
    account_id: int
    name_enc = fields.TextField()
    id_number_enc = fields.TextField()
    id_number_index = fields.CharField(max_length=64, unique=True)
    level = fields.SmallIntField()
    verified_at = fields.DatetimeField()
    in_person_by: fields.ForeignKeyNullableRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="in_person_checks", null=True, on_delete=fields.SET_NULL
    )
    in_person_by_id: int | None
    in_person_at = fields.DatetimeField(null=True)

    class Meta:
        table = "real_name_record"


class AuditLog(Model):
    """Who did what to whose personal data, and when. Holds ids and masked values only."""

    id = fields.BigIntField(primary_key=True)
    at = fields.DatetimeField(auto_now_add=True, db_index=True)
    actor: fields.ForeignKeyNullableRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="audit_actions", null=True, on_delete=fields.SET_NULL
    )
    actor_id: int | None
    actor_role = fields.CharField(max_length=16, default="")
    action = fields.CharField(max_length=64)
    subject: fields.ForeignKeyNullableRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="audit_subject", null=True, on_delete=fields.SET_NULL
    )
    subject_id: int | None
    request_id = fields.CharField(max_length=64, default="")
    ip = fields.CharField(max_length=64, default="")
    detail: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)

    class Meta:
        table = "audit_log"


# ---- accounts ------------------------------------------------------------------------------------------


async def changed(account_id: int, **fields: Any) -> None:
    """THE write to what `require()` and `/me` read: roles, status, level, scope, bindings, real name,
    password. Sets `fields` on the account (none: only its version, for a change to a row beside it) and
    bumps `accounts.version` in the same statement, in the caller's transaction; after the commit the new
    version is copied to Redis, so every worker's cached copy of the account stops being used at once.
    `tests/identity/test_account_versions.py` fails on a write to these tables that bypasses this."""
    await Account.filter(id=account_id).update(version=F("version") + 1, **fields)
    await after_commit(lambda: _publish_version(account_id))


async def _publish_version(account_id: int) -> None:
    publisher = versions.publisher.get()
    if publisher is None:  # a process that serves no requests (nothing here caches accounts)
        return
    row = await Account.filter(id=account_id).first().values("version")
    if row is not None:
        await publisher.publish(account_id, row["version"])


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """An active account as `require()` and the work scope need it, with the version it was read at."""

    id: int
    version: int
    roles: str
    real_name_level: int
    department_id: int | None
    point_ids: frozenset[int]

    @property
    def role_set(self) -> frozenset[str]:
        return frozenset(r for r in self.roles.split(",") if r)


async def active_snapshot(account_id: int) -> AccountSnapshot | None:
    """One read of an active account (two for a grid worker: his points too)."""
    row = (
        await Account.filter(id=account_id, status="active")
        .first()
        .values("version", "roles", "real_name_level", "department_id")
    )
    if row is None:
        return None
    roles = row["roles"]
    points = (
        frozenset(await point_ids_of(account_id)) if Role.GRID_WORKER in roles.split(",") else frozenset()
    )
    return AccountSnapshot(
        id=account_id,
        version=row["version"],
        roles=roles,
        real_name_level=row["real_name_level"],
        department_id=row["department_id"],
        point_ids=points,
    )


def _roles_text(roles: Iterable[str]) -> str:
    return ",".join(sorted({str(role) for role in roles}))


async def account_by_id(account_id: int) -> Account | None:
    return await Account.get_or_none(id=account_id)


async def accounts_by_ids(account_ids: Iterable[int]) -> list[Account]:
    return await Account.filter(id__in=sorted(set(account_ids)))


async def get_account(account_id: int) -> Account:
    """An account known to exist (read again after a change)."""
    return await Account.get(id=account_id)


async def active_account(account_id: int) -> Account | None:
    return await Account.get_or_none(id=account_id, status="active")


async def account_by_phone_index(phone_index: str) -> Account | None:
    return await Account.get_or_none(phone_index=phone_index)


async def create_account(
    *,
    phone_index: str,
    phone_enc: str,
    roles: Iterable[str],
    password_hash: str | None = None,
    department_id: int | None = None,
    point_ids: Iterable[int] = (),
) -> Account:
    """A new account at real-name level 1 with the service points it serves. The phone's blind index is
    unique: a second account for one phone raises `IntegrityError`."""
    account = await Account.create(
        phone_index=phone_index,
        phone_enc=phone_enc,
        password_hash=password_hash,
        roles=_roles_text(roles),
        department_id=department_id,
        real_name_level=1,
    )
    for point_id in sorted(set(point_ids)):
        await AccountPoint.create(account_id=account.id, point_id=point_id)
    await changed(account.id)
    account.version += 1
    return account


async def set_password_hash(account_id: int, password_hash: str) -> None:
    await changed(account_id, password_hash=password_hash)


async def set_roles(account_id: int, roles: Iterable[str]) -> None:
    await changed(account_id, roles=_roles_text(roles))


async def set_real_name_level(account_id: int, level: int) -> None:
    await changed(account_id, real_name_level=level)


async def anonymise_account(account_id: int, at: datetime) -> None:
    """Personal data gone (real name, bindings, the devices that took its pushes, phone, password); the row
    stays, marked deleted, so that cases and audit entries keep pointing at something."""
    await RealNameRecord.filter(account_id=account_id).delete()
    await ChannelBinding.filter(account_id=account_id).delete()
    await Device.filter(account_id=account_id).delete()
    # where its messages went (registration ids, openid), kept with each delivery
    notified = await Notification.filter(account_id=account_id).values_list("id", flat=True)
    await Delivery.filter(notification_id__in=list(notified)).update(target={})
    await changed(
        account_id,
        phone_index=None,
        phone_enc=None,
        password_hash=None,
        status="deleted",
        real_name_level=0,
        deleted_at=at,
    )


async def department_code_of(account: Account) -> str | None:
    if account.department_id is None:
        return None
    await account.fetch_related("department")
    return account.department.code if account.department is not None else None


async def point_ids_of(account_id: int) -> list[int]:
    rows = await AccountPoint.filter(account_id=account_id).values("point_id")
    return [row["point_id"] for row in rows]


async def point_codes_of(account_id: int) -> list[str]:
    rows = await AccountPoint.filter(account_id=account_id).values("point__code")
    return sorted(row["point__code"] for row in rows)


async def active_staff_of(department_id: int) -> list[int]:
    accounts = await Account.filter(department_id=department_id, status="active").only("id", "roles")
    return [a.id for a in accounts if Role.STAFF in a.role_set]


async def active_grid_workers_of(point_id: int) -> list[int]:
    links = await AccountPoint.filter(point_id=point_id, account__status="active").select_related("account")
    return sorted(link.account.id for link in links if Role.GRID_WORKER in link.account.role_set)


# ---- channel bindings ----------------------------------------------------------------------------------


async def account_of_binding(channel: str, external_id: str) -> tuple[int, int] | None:
    """The account bound to this external id and its version, by one hand-written SELECT on the unique
    (channel, external_id) index: the official account asks it for most messages, and building tortoise's
    query cost more than running it (measured in the callback bench)."""
    arg = Placeholders(is_postgres())
    sql = (
        'SELECT b."account_id", a."version" FROM "channel_binding" b '  # noqa: S608 — placeholders only
        'JOIN "account" a ON a."id" = b."account_id" '
        f'WHERE b."channel" = {arg(channel)} AND b."external_id" = {arg(external_id)} LIMIT 1'
    )
    rows = await connections.get("default").execute_query_dict(sql, arg.values)
    return (int(rows[0]["account_id"]), int(rows[0]["version"])) if rows else None


async def binding_of(channel: str, external_id: str) -> ChannelBinding | None:
    return await ChannelBinding.get_or_none(channel=channel, external_id=external_id).select_related(
        "account"
    )


async def bindings_of(account_id: int) -> list[ChannelBinding]:
    return await ChannelBinding.filter(account_id=account_id).order_by("channel")


async def wechat_openids_of(account_ids: list[int]) -> dict[int, str]:
    """The WeChat openid bound to each of these accounts (those with one)."""
    rows = await ChannelBinding.filter(account_id__in=account_ids, channel="wechat").values(
        "account_id", "external_id"
    )
    return {int(r["account_id"]): str(r["external_id"]) for r in rows}


async def has_binding(account_id: int, channel: str) -> bool:
    return await ChannelBinding.filter(account_id=account_id, channel=channel).exists()


async def add_binding(account_id: int, channel: str, external_id: str, unionid: str | None) -> ChannelBinding:
    """One binding per account and channel, one account per external id: a second raises `IntegrityError`."""
    binding = await ChannelBinding.create(
        account_id=account_id, channel=channel, external_id=external_id, unionid=unionid
    )
    await changed(account_id)
    # the caches of "this external id is bound to nobody" are stale once this commits (api/identity/bound.py)
    await after_commit(lambda: _new_generation(binding_generation(channel)))
    return binding


def binding_generation(channel: str) -> str:
    return f"bindings:{channel}"


async def _new_generation(name: str) -> None:
    publisher = versions.publisher.get()
    if publisher is not None:  # a process that serves no requests: the caches' max_age bounds their staleness
        await publisher.bump_generation(name)


async def remove_binding(account_id: int, channel: str) -> bool:
    removed = await ChannelBinding.filter(account_id=account_id, channel=channel).delete() > 0
    if removed:
        await changed(account_id)
    return removed


# ---- real name -----------------------------------------------------------------------------------------


async def real_name_of(account_id: int) -> RealNameRecord | None:
    return await RealNameRecord.get_or_none(account_id=account_id)


async def real_named_after(after_account_id: int, limit: int) -> list[int]:
    """Active accounts with a real-name record (level 2 or more), by account id after the given one."""
    rows: list[Any] = (
        await RealNameRecord.filter(account_id__gt=after_account_id, account__status="active")
        .order_by("account_id")
        .limit(limit)
        .values_list("account_id", flat=True)
    )
    return [int(account_id) for account_id in rows]


async def real_name_by_id_index(index: str) -> RealNameRecord | None:
    return await RealNameRecord.get_or_none(id_number_index=index).select_related("account")


@dataclass(frozen=True)
class SealedRealName:
    """A real name as it is stored: name and ID number encrypted, the number's blind index, when checked."""

    name_enc: str
    id_number_enc: str
    id_number_index: str
    verified_at: datetime


async def create_real_name(account_id: int, sealed: SealedRealName) -> None:
    """A level 2 record (checked with the population database). The ID number's blind index is unique: one
    already verified on another account raises `IntegrityError`."""
    await RealNameRecord.create(account_id=account_id, level=2, **asdict(sealed))
    await changed(account_id)


async def replace_real_name(account_id: int, sealed: SealedRealName) -> None:
    """Another person's data on the account's record: back to level 2, the in-person check no longer holds."""
    await RealNameRecord.filter(account_id=account_id).update(
        level=2, in_person_by_id=None, in_person_at=None, **asdict(sealed)
    )
    await changed(account_id)


async def record_in_person(record_id: int, account_id: int, clerk_id: int, at: datetime) -> None:
    """A clerk saw the ID card: the record and the account at level 3."""
    await RealNameRecord.filter(id=record_id).update(level=3, in_person_by_id=clerk_id, in_person_at=at)
    await changed(account_id, real_name_level=3)


# ---- refresh tokens ------------------------------------------------------------------------------------


async def add_refresh_token(
    *, family: str, account_id: int, token_hash: str, channel: str, issued_at: datetime, expires_at: datetime
) -> None:
    await RefreshToken.create(
        family=family,
        account_id=account_id,
        token_hash=token_hash,
        channel=channel,
        issued_at=issued_at,
        expires_at=expires_at,
    )


async def refresh_by_hash(token_hash: str) -> RefreshToken | None:
    return await RefreshToken.get_or_none(token_hash=token_hash)


async def claim_refresh(token_id: int, now: datetime) -> bool:
    """Mark a refresh token used, only if nobody has: exactly one concurrent caller wins."""
    updated = await RefreshToken.filter(id=token_id, used_at__isnull=True, revoked_at__isnull=True).update(
        used_at=now
    )
    return updated == 1


async def refresh_by_id(token_id: int) -> RefreshToken | None:
    return await RefreshToken.get_or_none(id=token_id)


async def rotated_after(token: RefreshToken) -> bool:
    """Whether a later token of the same family has been used since: then `token` is not the one its family
    rotated last."""
    return await RefreshToken.filter(family=token.family, id__gt=token.id, used_at__isnull=False).exists()


async def revoke_family(family: str, now: datetime) -> int:
    return await RefreshToken.filter(family=family, revoked_at__isnull=True).update(revoked_at=now)


async def live_families_of(account_id: int) -> list[str]:
    rows = (
        await RefreshToken.filter(account_id=account_id, revoked_at__isnull=True).distinct().values("family")
    )
    return [row["family"] for row in rows]
