"""API keys of the other city systems that call us (X-API-Key): stored as SHA-256 digests, with scopes and a
rate limit, revoked rather than deleted (the verifications they made keep naming them)."""

from __future__ import annotations

from datetime import datetime

from tortoise import fields
from tortoise.models import Model


class ApiKey(Model):
    """A city system's key: shown once at creation, kept as its SHA-256 (a random 32-byte key needs no slow
    hash: nothing can be guessed from the digest)."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=64)
    prefix = fields.CharField(max_length=16)  # the key's first characters, to tell keys apart in a list
    key_hash = fields.CharField(max_length=64, unique=True)
    scopes = fields.CharField(max_length=256)  # space-separated
    rate_limit = fields.IntField()  # verifications per minute
    created_by: fields.ForeignKeyNullableRelation = fields.ForeignKeyField(
        "models.Account", related_name="api_keys", null=True, on_delete=fields.SET_NULL
    )
    created_by_id: int | None
    created_at = fields.DatetimeField(auto_now_add=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "api_key"
        table_description = "An API key of another city system (hashed), with its scopes and rate limit"


async def create_api_key(
    *, name: str, prefix: str, key_hash: str, scopes: str, rate_limit: int, created_by_id: int
) -> ApiKey:
    return await ApiKey.create(
        name=name,
        prefix=prefix,
        key_hash=key_hash,
        scopes=scopes,
        rate_limit=rate_limit,
        created_by_id=created_by_id,
    )


async def api_key_by_hash(key_hash: str) -> ApiKey | None:
    return await ApiKey.get_or_none(key_hash=key_hash)


async def api_keys(include_revoked: bool) -> list[ApiKey]:
    query = ApiKey.all() if include_revoked else ApiKey.filter(revoked_at=None)
    return await query.order_by("id")


async def revoke_api_key(key_id: int, at: datetime) -> ApiKey | None:
    """The key, revoked now (or earlier); None when there is no such key."""
    await ApiKey.filter(id=key_id, revoked_at=None).update(revoked_at=at)
    return await ApiKey.get_or_none(id=key_id)
