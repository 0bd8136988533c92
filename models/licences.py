"""E-licences as we know them (a reference to the library's record per holder, never a copy of its data), every
verification of a presentation (the audit the holder reads), and the API keys of the city systems that verify.

API keys (models.apikeys) name the systems among the verifiers.

A `Licence` row gives the library's opaque identifier a small id of ours (the one in the API and in the QR
token) and keeps what the expiry notice needs (type, valid until, which expiry was told of). The licence's
data stays in the library; our Redis holds a copy only for as long as the cache says (api.licences.service).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from tortoise import connections, fields
from tortoise.expressions import F, Q
from tortoise.models import Model

from models.sql import Placeholders, as_db, is_postgres


class Licence(Model):
    id = fields.IntField(primary_key=True)
    account: fields.ForeignKeyRelation = fields.ForeignKeyField(
        "models.Account", related_name="licences", on_delete=fields.CASCADE
    )
    account_id: int
    library_id = fields.CharField(max_length=64)
    type = fields.CharField(max_length=32)
    valid_until = fields.DateField(null=True)
    # the valid_until the 30-day notice was sent for (a renewed licence gets its own notice)
    expiry_told = fields.DateField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "licence"
        unique_together = (("account", "library_id"),)
        table_description = "A holder's e-licence: our id for the library's record, and its validity"


class LicenceVerification(Model):
    id = fields.BigIntField(primary_key=True)
    licence: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.Licence", related_name="verifications", null=True, on_delete=fields.CASCADE
    )
    licence_id: int | None
    verifier_account: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.Account", related_name="licence_checks", null=True, on_delete=fields.SET_NULL
    )
    verifier_account_id: int | None
    verifier_key: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.ApiKey", related_name="verifications", null=True, on_delete=fields.SET_NULL
    )
    verifier_key_id: int | None
    verifier_role = fields.CharField(max_length=16)  # grid_worker | staff | admin | api_key
    valid = fields.BooleanField()
    reason = fields.CharField(max_length=24, null=True)
    fields_mask = fields.IntField(default=0)  # what the answer disclosed
    ip = fields.CharField(max_length=64, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "licence_verification"
        indexes = (("licence_id", "id"),)
        table_description = (
            "Every verification of a licence presentation: who, when, which licence, what result"
        )


# ---- licences ---------------------------------------------------------------------------------------------


async def licences_of(account_id: int) -> dict[str, Licence]:
    """The holder's licence rows by library identifier."""
    return {row.library_id: row for row in await Licence.filter(account_id=account_id)}


async def add_licences(account_id: int, seen: list[tuple[str, str, date | None]]) -> None:
    """Rows for the (library id, type, valid until) not known yet; a concurrent add of the same is harmless."""
    for library_id, type_code, valid_until in seen:
        await Licence.get_or_create(
            account_id=account_id,
            library_id=library_id,
            defaults={"type": type_code, "valid_until": valid_until},
        )


async def set_validity(licence_id: int, valid_until: date | None) -> None:
    await Licence.filter(id=licence_id).update(valid_until=valid_until)


async def licence_by_id(licence_id: int) -> Licence | None:
    return await Licence.get_or_none(id=licence_id)


async def own_licence(account_id: int, licence_id: int) -> Licence | None:
    return await Licence.get_or_none(id=licence_id, account_id=account_id)


async def expiring(until: date, today: date, limit: int) -> list[Licence]:
    """Licences ending between today and `until` whose end was not told of yet, oldest end first."""
    return (
        await Licence.filter(
            Q(expiry_told__isnull=True) | ~Q(expiry_told=F("valid_until")),
            valid_until__gte=today,
            valid_until__lte=until,
        )
        .order_by("valid_until", "id")
        .limit(limit)
    )


async def told_expiry(licence_id: int, valid_until: date) -> bool:
    """Mark the notice for this end as sent; False when another pass did it first."""
    # not `exclude(expiry_told=…)`: NOT (NULL = x) is NULL in SQL, which would skip every untold row
    updated = await Licence.filter(
        Q(expiry_told__isnull=True) | ~Q(expiry_told=valid_until), id=licence_id, valid_until=valid_until
    ).update(expiry_told=valid_until)
    return bool(updated)


# ---- verifications ----------------------------------------------------------------------------------------


async def record_verification(
    *,
    licence_id: int | None,
    verifier_account_id: int | None,
    verifier_key_id: int | None,
    verifier_role: str,
    valid: bool,
    reason: str | None,
    fields_mask: int,
    ip: str,
    at: datetime,
) -> None:
    """One audit row. A hand-written INSERT: every verification writes one, and tortoise's `create` (a model
    built, its fields checked and converted, the statement compiled) cost as much as the rest of the insert."""
    arg = Placeholders(is_postgres())
    model = LicenceVerification
    values = ", ".join(
        (
            arg(licence_id),
            arg(verifier_account_id),
            arg(verifier_key_id),
            arg(verifier_role),
            arg(as_db(model, "valid", valid)),
            arg(reason),
            arg(fields_mask),
            arg(ip),
            arg(as_db(model, "created_at", at)),
        )
    )
    sql = (
        'INSERT INTO "licence_verification" ("licence_id", "verifier_account_id", "verifier_key_id", '  # noqa: S608
        '"verifier_role", "valid", "reason", "fields_mask", "ip", "created_at") '
        f"VALUES ({values})"
    )
    await connections.get("default").execute_insert(sql, arg.values)


async def verifications_of(licence_id: int, before_id: int | None, limit: int) -> list[dict[str, Any]]:
    """Newest first, with the verifier's name (an account's, or the API key's)."""
    query = LicenceVerification.filter(licence_id=licence_id)
    if before_id is not None:
        query = query.filter(id__lt=before_id)
    return (
        await query.order_by("-id")
        .limit(limit)
        .values(
            "id",
            "verifier_role",
            "valid",
            "reason",
            "fields_mask",
            "created_at",
            "verifier_account_id",
            key_name="verifier_key__name",
            department="verifier_account__department__name",
        )
    )
