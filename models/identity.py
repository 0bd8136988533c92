"""Accounts and everything that proves who they are: roles and scopes, channel bindings, refresh-token
families, real-name records (encrypted, blind-indexed) and the audit log."""

from __future__ import annotations

from datetime import datetime

from tortoise import fields
from tortoise.expressions import Q
from tortoise.models import Model
from tortoise.queryset import QuerySet

ROLES = ("resident", "grid_worker", "staff", "admin")


class Account(Model):
    id = fields.IntField(primary_key=True)
    # the phone is personal data: an HMAC blind index to find the account, AES-GCM ciphertext to show it
    phone_index = fields.CharField(max_length=64, unique=True, null=True)
    phone_enc = fields.TextField(null=True)
    password_hash = fields.CharField(max_length=255, null=True)
    roles = fields.CharField(max_length=64, default="resident")  # comma-separated, from ROLES
    department: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.Department", related_name="staff", null=True, on_delete=fields.RESTRICT
    )
    real_name_level = fields.SmallIntField(default=1)  # 1 phone, 2 population database, 3 seen in person
    status = fields.CharField(max_length=16, default="active")  # active | disabled | deleted
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)
    deleted_at = fields.DatetimeField(null=True)

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
    point: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.ServicePoint", related_name="grid_workers", on_delete=fields.RESTRICT
    )

    class Meta:
        table = "account_point"
        unique_together = (("account", "point"),)


class ChannelBinding(Model):
    id = fields.IntField(primary_key=True)
    account: fields.ForeignKeyRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="bindings", on_delete=fields.CASCADE
    )
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
    name_enc = fields.TextField()
    id_number_enc = fields.TextField()
    id_number_index = fields.CharField(max_length=64, unique=True)
    level = fields.SmallIntField()
    verified_at = fields.DatetimeField()
    in_person_by: fields.ForeignKeyNullableRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="in_person_checks", null=True, on_delete=fields.SET_NULL
    )
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
    actor_role = fields.CharField(max_length=16, default="")
    action = fields.CharField(max_length=64)
    subject: fields.ForeignKeyNullableRelation[Account] = fields.ForeignKeyField(
        "models.Account", related_name="audit_subject", null=True, on_delete=fields.SET_NULL
    )
    request_id = fields.CharField(max_length=64, default="")
    ip = fields.CharField(max_length=64, default="")
    detail = fields.JSONField(default=dict)

    class Meta:
        table = "audit_log"


# ---- queries -------------------------------------------------------------------------------------------


async def account_by_id(account_id: int) -> Account | None:
    return await Account.get_or_none(id=account_id)


async def active_account(account_id: int) -> Account | None:
    return await Account.get_or_none(id=account_id, status="active")


async def account_by_phone_index(phone_index: str) -> Account | None:
    return await Account.get_or_none(phone_index=phone_index)


async def binding_of(channel: str, external_id: str) -> ChannelBinding | None:
    return await ChannelBinding.get_or_none(channel=channel, external_id=external_id).select_related(
        "account"
    )


async def bindings_of(account_id: int) -> list[ChannelBinding]:
    return await ChannelBinding.filter(account_id=account_id).order_by("channel")


async def real_name_of(account_id: int) -> RealNameRecord | None:
    return await RealNameRecord.get_or_none(account_id=account_id)


async def real_name_by_id_index(index: str) -> RealNameRecord | None:
    return await RealNameRecord.get_or_none(id_number_index=index).select_related("account")


async def point_ids_of(account_id: int) -> list[int]:
    return await AccountPoint.filter(account_id=account_id).values_list("point_id", flat=True)


async def refresh_by_hash(token_hash: str) -> RefreshToken | None:
    return await RefreshToken.get_or_none(token_hash=token_hash)


async def claim_refresh(token_id: int, now: datetime) -> bool:
    """Mark a refresh token used, only if nobody has: exactly one concurrent caller wins."""
    updated = await RefreshToken.filter(id=token_id, used_at__isnull=True, revoked_at__isnull=True).update(
        used_at=now
    )
    return updated == 1


async def revoke_family(family: str, now: datetime) -> int:
    return await RefreshToken.filter(family=family, revoked_at__isnull=True).update(revoked_at=now)


async def live_families_of(account_id: int) -> list[str]:
    rows = (
        await RefreshToken.filter(account_id=account_id, revoked_at__isnull=True)
        .distinct()
        .values_list("family", flat=True)
    )
    return list(rows)


async def revoke_account_sessions(account_id: int, now: datetime) -> list[str]:
    families = await live_families_of(account_id)
    await RefreshToken.filter(account_id=account_id, revoked_at__isnull=True).update(revoked_at=now)
    return families


def audit_query(
    account_id: int | None, start: datetime | None, end: datetime | None, after_id: int | None, limit: int
) -> QuerySet[AuditLog]:
    qs = AuditLog.all()
    if account_id is not None:
        qs = qs.filter(Q(actor_id=account_id) | Q(subject_id=account_id))
    if start is not None:
        qs = qs.filter(at__gte=start)
    if end is not None:
        qs = qs.filter(at__lt=end)
    if after_id is not None:
        qs = qs.filter(id__lt=after_id)
    return qs.order_by("-id").limit(limit)


async def active_staff_of(department_id: int) -> list[int]:
    accounts = await Account.filter(department_id=department_id, status="active").only("id", "roles")
    return [a.id for a in accounts if "staff" in a.role_set]


async def active_grid_workers_of(point_id: int) -> list[int]:
    links = await AccountPoint.filter(point_id=point_id, account__status="active").select_related("account")
    return sorted(link.account.id for link in links if "grid_worker" in link.account.role_set)
