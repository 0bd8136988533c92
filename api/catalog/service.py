"""Catalogue reads. Answers are serialised once and kept in Redis under the catalogue's version;
every catalogue change bumps the version, so no stale answer outlives a change."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar, cast

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.catalog.errors import ItemNotFound, PointNotFound, UnknownFilterValue
from api.catalog.schemas import (
    DepartmentList,
    DepartmentOut,
    FeeOut,
    ItemGuide,
    ItemList,
    ItemsQuery,
    ItemSummary,
    MaterialOut,
    PointList,
    PointOut,
    PointsQuery,
)
from api.kit import metrics
from api.kit.errors import InvalidCursor
from api.kit.http import decode_code_cursor, decode_cursor, encode_cursor, page
from api.kit.kv import raw
from models import catalog as db

VERSION_KEY = "catalog:version"
log = logging.getLogger("ywt.catalog")
T = TypeVar("T")


async def _whole(read: Callable[[], Awaitable[T]]) -> T:
    """`read()` run to its end even if the request waiting for it is cancelled (its client went away): a
    database call cut in the middle can leave a connection unusable (see api/kit/auth.py `to_completion`);
    the catalogue's routes are `public_read` and rely on this."""
    return await asyncio.shield(read())


class CatalogCache:
    """Two levels: this worker's memory, then Redis shared by all workers, then the database.

    The catalogue's version lives in Redis and is read at most once a second per worker; a new version
    empties this worker's memory. When Redis is away the catalogue keeps answering from memory and the
    database (it is public, read-mostly data); /readyz still reports Redis down."""

    def __init__(
        self,
        redis: Redis,
        ttl: int,
        *,
        recheck: float = 1.0,
        max_entries: int = 4096,
        facts_ttl: float | None = None,
    ) -> None:
        self.redis = redis
        self.ttl = ttl
        self.recheck = recheck
        self.max_entries = max_entries
        self._local: dict[str, tuple[float, bytes]] = {}
        # what `remembered` keeps (never in Redis): expiry, the catalogue version it was loaded under, value
        self._objects: dict[str, tuple[float, bytes, object]] = {}
        # how long `remembered` keeps a value: the answers' ttl, unless the version cannot move from outside
        # this process (embedded mode's in-process Redis, which `load-catalog` cannot reach)
        self.facts_ttl = float(ttl) if facts_ttl is None else facts_ttl
        self._version: bytes | None = None
        self._checked = -math.inf
        self._checking = False  # a recheck is under way

    async def _version_now(self) -> bytes | None:
        moment = time.monotonic()
        if self._version is not None and (self._checking or moment - self._checked < self.recheck):
            # one request rechecks; those that arrive meanwhile take the version known (at most a
            # second old, as between rechecks) instead of all asking Redis at once
            return self._version
        self._checking = True
        try:
            version = raw(await self.redis.get(VERSION_KEY) or b"0")
        except RedisError as exc:
            log.warning("catalogue cache without Redis: %s", type(exc).__name__)
            return None
        finally:
            self._checking = False
        self._checked = moment
        if version != self._version:
            self._local.clear()
            self._objects.clear()
            self._version = version
        return version

    async def get_or_build(self, key: str, build: Callable[[], Awaitable[bytes]]) -> bytes:
        version = await self._version_now()
        local = self._local.get(key)
        if local is not None and time.monotonic() < local[0]:
            metrics.cache_hit("catalog")
            return local[1]
        metrics.cache_miss("catalog")
        if version is None:
            return await _whole(build)
        full_key = f"catalog:{version.decode()}:{key}"
        try:
            cached = await self.redis.get(full_key)
            if cached is None:
                metrics.cache_miss("catalog_redis")
                body = await _whole(build)
                await self.redis.set(full_key, body, ex=self.ttl)
            else:
                metrics.cache_hit("catalog_redis")
                body = raw(cached)
        except RedisError:
            body = await _whole(build)
        if len(self._local) >= self.max_entries:
            self._local.clear()
        self._local[key] = (time.monotonic() + self.ttl, body)
        return body

    async def remembered(self, key: str, load: Callable[[], Awaitable[T]]) -> T:
        """What `load` reads of the catalogue, kept in this worker's memory under the catalogue's version
        (dropped with the answers when it changes) for at most `facts_ttl` seconds; never in Redis. Without
        Redis the version cannot be checked, so nothing is kept and every call loads."""
        version = await self._version_now()
        kept = self._objects.get(key)
        if version is not None and kept is not None and kept[1] == version and time.monotonic() < kept[0]:
            metrics.cache_hit("catalog_facts")
            return cast(T, kept[2])
        metrics.cache_miss("catalog_facts")
        value = await _whole(load)
        # kept only if the version did not move while it loaded: a value read before a catalogue change was
        # committed must not stay under the version that change brought
        if version is not None and self._version == version:
            if len(self._objects) >= self.max_entries:
                self._objects.clear()
            self._objects[key] = (time.monotonic() + self.facts_ttl, version, value)
        return value

    def forget_local(self) -> None:
        """Drop this worker's memory (tests, and after Redis was flushed)."""
        self._local.clear()
        self._objects.clear()
        self._version = None
        self._checked = -math.inf

    async def invalidate(self) -> None:
        await self.redis.incr(VERSION_KEY)
        self._local.clear()
        self._objects.clear()
        self._checked = -math.inf


# ---- what a submission needs of the catalogue -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ItemFacts:
    """An item as a submission checks and records it."""

    id: int
    code: str
    name: str
    channels: tuple[str, ...]
    delivery_modes: tuple[str, ...]
    department_id: int
    department_code: str
    department_name: str


@dataclass(frozen=True, slots=True)
class PointFacts:
    """A service point as a submission checks and records it."""

    id: int
    code: str
    name: str
    level: str  # city | community


async def item_facts(cache: CatalogCache, code: str) -> ItemFacts | None:
    """The item of this code (None: there is none), from this worker's memory while the catalogue's
    version holds."""

    async def load() -> ItemFacts | None:
        item = await db.item_by_code(code)
        if item is None:
            return None
        department = item.department
        return ItemFacts(
            id=item.id,
            code=item.code,
            name=item.name,
            channels=tuple(item.channels),
            delivery_modes=tuple(item.delivery_modes),
            department_id=department.id,
            department_code=department.code,
            department_name=department.name,
        )

    if len(code) > 64:
        return None
    return await cache.remembered("facts:item:" + code, load)


async def point_facts(cache: CatalogCache, code: str) -> PointFacts | None:
    """The service point of this code (None: there is none), as `item_facts`."""

    async def load() -> PointFacts | None:
        point = await db.point_by_code(code)
        if point is None:
            return None
        return PointFacts(id=point.id, code=point.code, name=point.name, level=point.level)

    if len(code) > 32:
        return None
    return await cache.remembered("facts:point:" + code, load)


def _dump(model: DepartmentList | ItemList | ItemGuide | PointList | PointOut) -> bytes:
    return orjson.dumps(model.model_dump(mode="json"))


def _department(dep: db.Department) -> DepartmentOut:
    return DepartmentOut(code=dep.code, name=dep.name, phone=dep.phone)


def _summary_fields(item: db.ServiceItem) -> dict:
    return {
        "code": item.code,
        "name": item.name,
        "department": _department(item.department),
        "kind": item.kind,
        "promised_days": item.promised_days,
        "statutory_days": item.statutory_days,
        "fee": None if item.fee_fen is None else FeeOut(amount_fen=item.fee_fen, basis=item.fee_basis),
        "channels": item.channels,
        "community_level": item.community_level,
        "delivery_modes": item.delivery_modes,
    }


async def list_departments(cache: CatalogCache) -> bytes:
    async def build() -> bytes:
        deps = await db.departments_ordered()
        return _dump(DepartmentList(items=[_department(d) for d in deps]))

    return await cache.get_or_build("departments", build)


async def list_items(cache: CatalogCache, query: ItemsQuery, limit: int) -> bytes:
    after = decode_code_cursor(query.cursor, "after", 64)
    key = "items:" + _digest([query.q, query.department, query.kind, query.community_level, after, limit])

    async def build() -> bytes:
        department_id = None
        if query.department:
            dep = await db.department_by_code(query.department)
            if dep is None:
                raise UnknownFilterValue("department", "没有这个部门")
            department_id = dep.id
        rows = await db.items_page(
            q=query.q,
            department_id=department_id,
            kind=query.kind,
            community_level=query.community_level,
            after_code=str(after) if after is not None else None,
            limit=limit + 1,
        )
        rows, next_cursor = page(rows, limit, lambda last: {"after": last.code})
        return _dump(
            ItemList(items=[ItemSummary(**_summary_fields(i)) for i in rows], next_cursor=next_cursor)
        )

    return await cache.get_or_build(key, build)


async def get_item(cache: CatalogCache, code: str) -> bytes:
    async def build() -> bytes:
        item = await db.item_with_guide(code)
        if item is None:
            raise ItemNotFound()
        materials = sorted(item.materials, key=lambda m: m.position)
        return _dump(
            ItemGuide(
                **_summary_fields(item),
                legal_basis=item.legal_basis,
                scope=item.scope,
                conditions=item.conditions,
                process=item.process,
                materials=[MaterialOut.model_validate(m, from_attributes=True) for m in materials],
            )
        )

    if len(code) > 64:
        raise ItemNotFound()
    return await cache.get_or_build("item:" + code, build)


def _point(point: db.ServicePoint, distance_m: int | None = None) -> PointOut:
    community = point.community
    return PointOut(
        code=point.code,
        name=point.name,
        level=point.level,
        district={"code": point.district.code, "name": point.district.name},
        community=None if community is None else {"code": community.code, "name": community.name},
        address=point.address,
        latitude=point.latitude,
        longitude=point.longitude,
        phone=point.phone,
        opening_hours=point.opening_hours,
        services=point.services,
        distance_m=distance_m,
    )


def distance_m(lat1: float, lng1: float, lat2: float, lng2: float) -> int:
    """Great-circle distance in metres (haversine, mean Earth radius)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return round(2 * 6371008.8 * math.asin(math.sqrt(a)))


async def list_points(cache: CatalogCache, query: PointsQuery, limit: int) -> bytes:
    position_key = "offset" if query.near else "after"
    position = decode_cursor(query.cursor, position_key)
    if query.near and position is not None and (not isinstance(position, int) or position < 0):
        raise InvalidCursor("无效的分页游标")
    if not query.near:
        decode_code_cursor(query.cursor, "after", 32)  # a point code, or 422
    key = "points:" + _digest([query.district, query.community, query.service, query.near, position, limit])

    async def build() -> bytes:
        district_id = community_id = None
        if query.district:
            district = await db.district_by_code(query.district)
            if district is None:
                raise UnknownFilterValue("district", "没有这个区县")
            district_id = district.id
        if query.community:
            community = await db.community_by_code(query.community)
            if community is None:
                raise UnknownFilterValue("community", "没有这个社区")
            community_id = community.id
        if query.near:
            lat, lng = (float(p) for p in query.near.split(","))
            # a city has a few hundred points at most: rank them all, then page by offset
            ranked = sorted(
                (
                    (distance_m(lat, lng, p.latitude, p.longitude), p.code, p)
                    for p in await db.points_filtered(
                        district_id=district_id, community_id=community_id, service=query.service
                    )
                ),
                key=lambda t: (t[0], t[1]),
            )
            start = position or 0
            window = ranked[start : start + limit]
            more = start + limit < len(ranked)
            items = [_point(p, d) for d, _, p in window]
            next_cursor = encode_cursor({"offset": start + limit}) if more else None
        else:
            rows, next_cursor = page(
                await db.points_filtered(
                    district_id=district_id,
                    community_id=community_id,
                    service=query.service,
                    after_code=str(position) if position is not None else None,
                    limit=limit + 1,
                ),
                limit,
                lambda last: {"after": last.code},
            )
            items = [_point(p) for p in rows]
        return _dump(PointList(items=items, next_cursor=next_cursor))

    return await cache.get_or_build(key, build)


async def nearest_point(cache: CatalogCache, lat: float, lng: float) -> PointOut | None:
    """The service point nearest to a place (the official account's answer to a location), with its
    distance; None when there is none. Ranked as `list_points` ranks them, from the same cached pages."""
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lng <= 180.0):
        return None
    body = await list_points(cache, PointsQuery(near=f"{lat:.6f},{lng:.6f}"), 1)
    items = PointList.model_validate_json(body).items
    return items[0] if items else None


async def get_point(cache: CatalogCache, code: str) -> bytes:
    async def build() -> bytes:
        point = await db.point_by_code(code)
        if point is None:
            raise PointNotFound()
        return _dump(_point(point))

    if len(code) > 32:
        raise PointNotFound()
    return await cache.get_or_build("point:" + code, build)


def _digest(parts: list) -> str:
    return hashlib.blake2b(orjson.dumps(parts), digest_size=12).hexdigest()
