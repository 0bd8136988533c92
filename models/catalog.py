"""The standardised catalogue: districts, departments, communities, service points, service items."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from tortoise import fields
from tortoise.expressions import Q
from tortoise.models import Model

POINT_SERVICES = (
    "appointment",
    "extended_hours",
    "green_channel",
    "door_to_door",
    "joint_handling",
    "online",
    "weekend_lunchtime",
)


class District(Model):
    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=12, unique=True)
    name = fields.CharField(max_length=64)

    class Meta:
        table = "district"


class Department(Model):
    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=64, unique=True)
    name = fields.CharField(max_length=128)
    phone = fields.CharField(max_length=32, default="")

    class Meta:
        table = "department"


class Community(Model):
    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=12, unique=True)
    name = fields.CharField(max_length=128)
    kind = fields.CharField(max_length=16)  # community | village
    district: fields.ForeignKeyRelation[District] = fields.ForeignKeyField(
        "models.District", related_name="communities", on_delete=fields.RESTRICT
    )

    class Meta:
        table = "community"


class ServicePoint(Model):
    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=32, unique=True)
    name = fields.CharField(max_length=128)
    level = fields.CharField(max_length=16)  # city | community
    district: fields.ForeignKeyRelation[District] = fields.ForeignKeyField(
        "models.District", related_name="points", on_delete=fields.RESTRICT
    )
    community: fields.ForeignKeyNullableRelation[Community] = fields.ForeignKeyField(
        "models.Community", related_name="points", null=True, on_delete=fields.RESTRICT
    )
    address = fields.CharField(max_length=256)
    latitude = fields.FloatField()
    longitude = fields.FloatField()
    phone = fields.CharField(max_length=32, default="")
    opening_hours = fields.CharField(max_length=256, default="")
    # ",appointment,door_to_door," — comma-wrapped so a plain LIKE filters one service on any database
    service_tags = fields.CharField(max_length=256, default=",")

    class Meta:
        table = "service_point"

    @property
    def services(self) -> list[str]:
        return [tag for tag in self.service_tags.split(",") if tag]

    @staticmethod
    def tags_for(services: list[str]) -> str:
        ordered = [s for s in POINT_SERVICES if s in set(services)]
        return "," + ",".join(ordered) + "," if ordered else ","


class ServiceItem(Model):
    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=64, unique=True)
    name = fields.CharField(max_length=128, db_index=True)
    department: fields.ForeignKeyRelation[Department] = fields.ForeignKeyField(
        "models.Department", related_name="items", on_delete=fields.RESTRICT
    )
    kind = fields.CharField(max_length=16)  # same_day | committed
    statutory_days = fields.IntField()
    promised_days = fields.IntField()
    legal_basis = fields.TextField()
    fee_fen = fields.IntField(null=True)  # null: free of charge
    fee_basis = fields.TextField(default="")
    channels: fields.JSONField[list[str]] = fields.JSONField(default=list)  # online | counter | community
    community_level = fields.BooleanField(default=False, db_index=True)
    scope = fields.CharField(max_length=32, default="city_wide")
    delivery_modes: fields.JSONField[list[str]] = fields.JSONField(
        default=list
    )  # pickup | mail | grid_worker
    conditions: fields.JSONField[list[str]] = fields.JSONField(default=list)
    process: fields.JSONField[list[dict[str, str]]] = fields.JSONField(default=list)  # [{step, description}]
    updated_at = fields.DatetimeField(auto_now=True)

    materials: fields.ReverseRelation[ItemMaterial]

    class Meta:
        table = "service_item"


class ItemMaterial(Model):
    id = fields.IntField(primary_key=True)
    item: fields.ForeignKeyRelation[ServiceItem] = fields.ForeignKeyField(
        "models.ServiceItem", related_name="materials", on_delete=fields.CASCADE
    )
    position = fields.IntField()
    code = fields.CharField(max_length=32)
    name = fields.CharField(max_length=128)
    basis = fields.TextField(default="")
    form = fields.CharField(max_length=16)  # original | copy | electronic
    copies = fields.IntField(default=1)
    required = fields.BooleanField(default=True)
    notes = fields.TextField(default="")
    sample = fields.CharField(max_length=256, null=True)
    # the e-licence type that may stand in for this material (免提交), e.g. "id_card"; null: none may
    licence_type = fields.CharField(max_length=32, null=True)

    class Meta:
        table = "item_material"
        unique_together = (("item", "code"),)


# ---- queries -------------------------------------------------------------------------------------------


async def departments_ordered() -> list[Department]:
    return await Department.all().order_by("code")


def _fits(model: type[Model], code: str) -> bool:
    """Whether `code` can be one of the model's codes at all (tortoise refuses to filter on a longer value
    with a ValidationError: such a code is simply not there)."""
    return len(code) <= int(model._meta.fields_map["code"].max_length)  # type: ignore[attr-defined]


async def department_by_code(code: str) -> Department | None:
    return await Department.get_or_none(code=code) if _fits(Department, code) else None


async def district_by_code(code: str) -> District | None:
    return await District.get_or_none(code=code) if _fits(District, code) else None


async def community_by_code(code: str) -> Community | None:
    return await Community.get_or_none(code=code) if _fits(Community, code) else None


async def items_page(
    *,
    q: str | None,
    department_id: int | None,
    kind: str | None,
    community_level: bool | None,
    after_code: str | None,
    limit: int,
) -> list[ServiceItem]:
    """Items matching the filters, with their department, ordered by code, after `after_code` (keyset)."""
    qs = ServiceItem.all().select_related("department")
    if q:
        qs = qs.filter(Q(name__icontains=q) | Q(code__icontains=q))
    if department_id is not None:
        qs = qs.filter(department_id=department_id)
    if kind:
        qs = qs.filter(kind=kind)
    if community_level is not None:
        qs = qs.filter(community_level=community_level)
    if after_code:
        qs = qs.filter(code__gt=after_code)
    return await qs.order_by("code").limit(limit)


async def item_by_code(code: str) -> ServiceItem | None:
    """The item with its department, without its guide's materials."""
    if not _fits(ServiceItem, code):
        return None
    return await ServiceItem.get_or_none(code=code).select_related("department")


async def item_with_guide(code: str) -> ServiceItem | None:
    item = await item_by_code(code)
    if item is not None:
        await item.fetch_related("materials")
    return item


async def points_filtered(
    *,
    district_id: int | None,
    community_id: int | None,
    service: str | None,
    after_code: str | None = None,
    limit: int | None = None,
) -> list[ServicePoint]:
    """Points matching the filters, with district and community, ordered by code; all of them unless
    `limit` (keyset after `after_code`)."""
    qs = ServicePoint.all().select_related("district", "community")
    if district_id is not None:
        qs = qs.filter(district_id=district_id)
    if community_id is not None:
        qs = qs.filter(community_id=community_id)
    if service:
        qs = qs.filter(service_tags__contains=f",{service},")
    if after_code is not None:
        qs = qs.filter(code__gt=after_code)
    qs = qs.order_by("code")
    return await (qs.limit(limit) if limit is not None else qs)


async def point_by_code(code: str) -> ServicePoint | None:
    return await ServicePoint.get_or_none(code=code).select_related("district", "community")


async def licence_types_of(item_id: int) -> dict[str, str | None]:
    """Each material's code and the e-licence type that may stand in for it (None: none may)."""
    rows = await ItemMaterial.filter(item_id=item_id).values_list("code", "licence_type")
    return {str(code): kind for code, kind in rows}


async def material_codes_of(item_id: int) -> list[str]:
    return [str(code) for code in await ItemMaterial.filter(item_id=item_id).values_list("code", flat=True)]


# ---- loading a catalogue file --------------------------------------------------------------------------

Section = Literal["districts", "departments", "communities", "points", "items"]
_TABLES: dict[str, type[Model]] = {
    "districts": District,
    "departments": Department,
    "communities": Community,
    "points": ServicePoint,
    "items": ServiceItem,
}


@dataclass
class Upserted:
    """What loading rows did: the id of every code, and how many rows were created, updated or left alone."""

    ids: dict[str, int] = field(default_factory=dict)
    created: int = 0
    updated: int = 0
    unchanged: int = 0


async def upsert_by_code(section: Section, rows: list[tuple[str, dict[str, Any]]]) -> Upserted:
    """Insert or update each (code, values) of a catalogue table; a row already as given is not written.
    Call it inside the loader's transaction."""
    model: Any = _TABLES[section]
    existing = {obj.code: obj for obj in await model.filter(code__in=[code for code, _ in rows])}
    done = Upserted()
    for code, values in rows:
        obj = existing.get(code)
        if obj is None:
            obj = await model.create(code=code, **values)
            done.created += 1
        elif any(getattr(obj, k) != v for k, v in values.items()):
            await model.filter(id=obj.id).update(**values)
            done.updated += 1
        else:
            done.unchanged += 1
        done.ids[code] = obj.id
    return done


async def sync_materials(item_id: int, wanted: dict[str, dict[str, Any]]) -> Upserted:
    """Make an item's materials exactly `wanted` (code -> values): stale ones deleted (counted as updated),
    new ones created, changed ones updated."""
    existing = {m.code: m for m in await ItemMaterial.filter(item_id=item_id)}
    done = Upserted()
    stale = [m.id for code, m in existing.items() if code not in wanted]
    if stale:
        await ItemMaterial.filter(id__in=stale).delete()
        done.updated += len(stale)
    for code, values in wanted.items():
        obj = existing.get(code)
        if obj is None:
            obj = await ItemMaterial.create(item_id=item_id, code=code, **values)
            done.created += 1
        elif any(getattr(obj, k) != v for k, v in values.items()):
            await ItemMaterial.filter(id=obj.id).update(**values)
            done.updated += 1
        else:
            done.unchanged += 1
        done.ids[code] = obj.id
    return done
