"""API keys: made once (the key shown once, kept as its SHA-256), listed, revoked; looked up for every call
that sends one, through a Redis copy of a minute that revocation deletes first."""

from __future__ import annotations

import hashlib
import secrets

import orjson
from redis.asyncio import Redis

from api.apikeys.errors import ApiKeyNotFound
from api.apikeys.schemas import ApiKeyCreated, ApiKeyIn, ApiKeyList, ApiKeyOut
from api.kit import clock
from api.kit.auth import KeyCaller, Principal
from api.kit.db import in_transaction
from models import apikeys as db
from models.audit import audit

KEY_PREFIX = "ywt_"
CACHE_TTL = 60


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _cache_key(key_digest: str) -> str:
    return f"apikey:{key_digest}"


def _out(row: db.ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        scopes=row.scopes.split(),
        rate_limit=row.rate_limit,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


class ApiKeyDirectory:
    """The KeySource of kit.auth."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def caller_of(self, key: str) -> KeyCaller | None:
        if not key.startswith(KEY_PREFIX) or len(key) > 100:
            return None
        key_digest = digest(key)
        cached = await self.redis.get(_cache_key(key_digest))
        if cached is not None:
            data = orjson.loads(cached)
        else:
            row = await db.api_key_by_hash(key_digest)
            if row is None or row.revoked_at is not None:
                return None
            data = {
                "id": row.id,
                "name": row.name,
                "scopes": row.scopes.split(),
                "rate_limit": row.rate_limit,
            }
            await self.redis.set(_cache_key(key_digest), orjson.dumps(data), ex=CACHE_TTL)
        return KeyCaller(
            id=data["id"], name=data["name"], scopes=frozenset(data["scopes"]), rate_limit=data["rate_limit"]
        )


async def create(principal: Principal, body: ApiKeyIn, *, request_id: str, ip: str) -> ApiKeyCreated:
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    async with in_transaction():
        row = await db.create_api_key(
            name=body.name,
            prefix=key[:12],
            key_hash=digest(key),
            scopes=" ".join(sorted(set(body.scopes))),
            rate_limit=body.rate_limit,
            created_by_id=principal.account_id,
        )
        await audit(
            principal,
            "api_key.created",
            subject=None,
            request_id=request_id,
            ip=ip,
            detail={"api_key": row.id},
        )
    return ApiKeyCreated(**_out(row).model_dump(), key=key)


async def listed(include_revoked: bool) -> ApiKeyList:
    return ApiKeyList(items=[_out(row) for row in await db.api_keys(include_revoked)])


async def revoke(redis: Redis, principal: Principal, key_id: int, *, request_id: str, ip: str) -> ApiKeyOut:
    async with in_transaction():
        row = await db.revoke_api_key(key_id, clock.now())
        if row is None:
            raise ApiKeyNotFound()
        await audit(
            principal,
            "api_key.revoked",
            subject=None,
            request_id=request_id,
            ip=ip,
            detail={"api_key": row.id},
        )
    # the copy goes before the answer: a revoked key is refused from the next call on, in every worker
    await redis.delete(_cache_key(row.key_hash))
    return _out(row)
