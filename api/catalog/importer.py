"""Load a catalogue file: validate every row first, load nothing if any row is wrong, else upsert by code.

Running the same file twice changes nothing (every row is compared before it is written)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from api.catalog.schemas import CommunityRow, DepartmentRow, DistrictRow, ItemRow, PointRow
from api.kit.db import in_transaction
from api.kit.errors import field_errors
from api.licences import service as licences
from models import catalog as db

SECTIONS: dict[str, type[BaseModel]] = {
    "districts": DistrictRow,
    "departments": DepartmentRow,
    "communities": CommunityRow,
    "points": PointRow,
    "items": ItemRow,
}


@dataclass
class RowError:
    section: str
    row: int | None
    code: str | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.section if self.row is None else f"{self.section}[{self.row}]"
        if self.code:
            where += f" ({self.code})"
        return f"{where} {self.field}: {self.message}"


@dataclass
class LoadReport:
    errors: list[RowError] = field(default_factory=list)
    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def changed(self) -> bool:
        return any(self.created.values()) or any(self.updated.values())

    def count(self, section: str, done: db.Upserted) -> None:
        for counts, n in (
            (self.created, done.created),
            (self.updated, done.updated),
            (self.unchanged, done.unchanged),
        ):
            if n:
                counts[section] = counts.get(section, 0) + n


@dataclass
class Catalog:
    districts: list[DistrictRow]
    departments: list[DepartmentRow]
    communities: list[CommunityRow]
    points: list[PointRow]
    items: list[ItemRow]


def validate_file(path: Path) -> tuple[Catalog | None, list[RowError]]:
    try:
        raw = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None, [RowError("file", None, None, str(path), "文件不存在")]
    except orjson.JSONDecodeError as exc:
        return None, [RowError("file", None, None, str(path), f"不是合法的 JSON：{exc}")]
    return validate_data(raw)


def validate_data(raw: Any) -> tuple[Catalog | None, list[RowError]]:
    errors: list[RowError] = []
    if not isinstance(raw, dict):
        return None, [RowError("file", None, None, "(top)", "应为 JSON 对象")]
    for key in raw.keys() - SECTIONS.keys():
        errors.append(RowError("file", None, None, key, "不允许的部分"))
    parsed: dict[str, list[Any]] = {}
    for section, model in SECTIONS.items():
        rows = raw.get(section)
        if not isinstance(rows, list):
            errors.append(RowError("file", None, None, section, "缺少该部分或不是列表"))
            parsed[section] = []
            continue
        good = []
        for index, row in enumerate(rows):
            code = row.get("code") if isinstance(row, dict) else None
            try:
                good.append(model.model_validate(row))
            except ValidationError as exc:
                for err in field_errors([dict(e) for e in exc.errors()]):
                    errors.append(
                        RowError(
                            section,
                            index,
                            code if isinstance(code, str) else None,
                            err["field"],
                            err["message"],
                        )
                    )
        parsed[section] = good
    errors += _cross_check(raw, parsed)
    if errors:
        return None, errors
    return Catalog(**parsed), []


def _cross_check(raw: dict, parsed: dict[str, list[Any]]) -> list[RowError]:
    errors: list[RowError] = []
    for section in SECTIONS:
        seen: dict[str, int] = {}
        for index, row in enumerate(raw.get(section) or []):
            code = row.get("code") if isinstance(row, dict) else None
            if isinstance(code, str):
                if code in seen:
                    errors.append(RowError(section, index, code, "code", f"编码重复(与第 {seen[code]} 行)"))
                seen.setdefault(code, index)
    districts = {d.code for d in parsed["districts"]}
    departments = {d.code for d in parsed["departments"]}
    communities = {c.code: c for c in parsed["communities"]}

    def rows_of(section: str) -> list[tuple[int, dict]]:
        return [(i, r) for i, r in enumerate(raw.get(section) or []) if isinstance(r, dict)]

    for index, row in rows_of("communities"):
        if isinstance(row.get("district"), str) and row["district"] not in districts:
            errors.append(RowError("communities", index, row.get("code"), "district", "区县编码不存在"))
    for index, row in rows_of("points"):
        if isinstance(row.get("district"), str) and row["district"] not in districts:
            errors.append(RowError("points", index, row.get("code"), "district", "区县编码不存在"))
        community = row.get("community")
        if isinstance(community, str):
            if community not in communities:
                errors.append(RowError("points", index, row.get("code"), "community", "社区编码不存在"))
            elif communities[community].district != row.get("district"):
                errors.append(
                    RowError("points", index, row.get("code"), "district", "与所属社区的区县不一致")
                )
    for index, row in rows_of("items"):
        if isinstance(row.get("department"), str) and row["department"] not in departments:
            errors.append(RowError("items", index, row.get("code"), "department", "部门编码不存在"))
        for material in row.get("materials") or []:
            kind = material.get("licence_type") if isinstance(material, dict) else None
            if isinstance(kind, str) and not licences.is_licence_type(kind):
                errors.append(
                    RowError("items", index, row.get("code"), "licence_type", f"电子证照类型 {kind} 不存在")
                )
    return errors


async def load(catalog: Catalog) -> LoadReport:
    """Upsert every row by code in one transaction."""
    report = LoadReport()

    async def upsert(section: db.Section, rows: list[tuple[str, dict[str, Any]]]) -> dict[str, int]:
        done = await db.upsert_by_code(section, rows)
        report.count(section, done)
        return done.ids

    async with in_transaction():
        districts = await upsert("districts", [(d.code, {"name": d.name}) for d in catalog.districts])
        departments = await upsert(
            "departments", [(d.code, {"name": d.name, "phone": d.phone}) for d in catalog.departments]
        )
        communities = await upsert(
            "communities",
            [
                (c.code, {"name": c.name, "kind": c.kind, "district_id": districts[c.district]})
                for c in catalog.communities
            ],
        )
        await upsert(
            "points",
            [
                (
                    p.code,
                    {
                        "name": p.name,
                        "level": p.level,
                        "district_id": districts[p.district],
                        "community_id": communities[p.community] if p.community else None,
                        "address": p.address,
                        "latitude": p.latitude,
                        "longitude": p.longitude,
                        "phone": p.phone,
                        "opening_hours": p.opening_hours,
                        "service_tags": db.ServicePoint.tags_for(list(p.services)),
                    },
                )
                for p in catalog.points
            ],
        )
        items = await upsert(
            "items",
            [
                (
                    i.code,
                    {
                        "name": i.name,
                        "department_id": departments[i.department],
                        "kind": i.kind,
                        "statutory_days": i.statutory_days,
                        "promised_days": i.promised_days,
                        "legal_basis": i.legal_basis,
                        "fee_fen": i.fee.amount_fen if i.fee else None,
                        "fee_basis": i.fee.basis if i.fee else "",
                        "channels": list(i.channels),
                        "community_level": "community" in i.channels,
                        "scope": i.scope,
                        "delivery_modes": list(i.delivery_modes),
                        "conditions": list(i.conditions),
                        "process": [s.model_dump() for s in i.process],
                    },
                )
                for i in catalog.items
            ],
        )
        for row in catalog.items:
            report.count("materials", await db.sync_materials(items[row.code], _materials(row)))
    return report


def _materials(row: ItemRow) -> dict[str, dict[str, Any]]:
    return {
        m.code: {
            "position": pos,
            "name": m.name,
            "basis": m.basis,
            "form": m.form,
            "copies": m.copies,
            "required": m.required,
            "notes": m.notes,
            "sample": m.sample,
            "licence_type": m.licence_type,
        }
        for pos, m in enumerate(row.materials)
    }


async def load_file(path: Path) -> LoadReport:
    catalog, errors = validate_file(path)
    if catalog is None:
        return LoadReport(errors=errors)
    return await load(catalog)
