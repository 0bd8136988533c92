"""The small catalogue of the tests: a known catalogue whose answers can be counted by hand, and loading it."""

from __future__ import annotations

import copy
from typing import Any

from api.catalog.importer import LoadReport, load, validate_data


def material(code: str = "M01", **over: Any) -> dict[str, Any]:
    row = {
        "code": code,
        "name": "居民身份证",
        "basis": "《中华人民共和国居民身份证法》",
        "form": "original",
        "copies": 1,
        "required": True,
        "notes": "",
        "sample": None,
    }
    row.update(over)
    return row


def item(code: str, name: str, department: str = "civil", **over: Any) -> dict[str, Any]:
    row = {
        "code": code,
        "name": name,
        "department": department,
        "kind": "committed",
        "statutory_days": 20,
        "promised_days": 5,
        "legal_basis": "《社会救助暂行办法》第十一条",
        "fee": None,
        "channels": ["online", "counter", "community"],
        "scope": "city_wide",
        "delivery_modes": ["pickup", "mail", "grid_worker"],
        "conditions": ["本市户籍居民"],
        "process": [
            {"step": "受理", "description": "社区便民服务站受理"},
            {"step": "决定", "description": "部门审核决定"},
        ],
        "materials": [
            material("M01", licence_type="id_card"),
            material("M02", name="户口簿", form="copy", licence_type="household_register"),
        ],
    }
    row.update(over)
    return row


def point(
    code: str, community: str | None, district: str, lat: float, lng: float, services: list[str], **over: Any
) -> dict[str, Any]:
    row = {
        "code": code,
        "name": f"{code} 便民服务站",
        "level": "community" if community else "city",
        "community": community,
        "district": district,
        "address": "渝水区胜利北路1号",
        "latitude": lat,
        "longitude": lng,
        "phone": "0790-6220000",
        "opening_hours": "周一至周五 8:30-17:30",
        "services": services,
    }
    row.update(over)
    return row


SMALL_CATALOG: dict[str, Any] = {
    "districts": [{"code": "360502", "name": "渝水区"}, {"code": "360521", "name": "分宜县"}],
    "departments": [
        {"code": "civil", "name": "新余市民政局", "phone": "0790-6441234"},
        {"code": "police", "name": "新余市公安局", "phone": "0790-6221234"},
        {"code": "hrss", "name": "新余市人力资源和社会保障局", "phone": "0790-6331234"},
    ],
    "communities": [
        {"code": "360502001001", "name": "城北街道胜利社区", "district": "360502", "kind": "community"},
        {"code": "360502002001", "name": "城南街道沿江社区", "district": "360502", "kind": "community"},
        {"code": "360521100201", "name": "分宜镇江口村", "district": "360521", "kind": "village"},
    ],
    "points": [
        point("CITY-CENTER", None, "360502", 27.8175, 114.9170, ["appointment", "green_channel", "online"]),
        point("P360502001001", "360502001001", "360502", 27.8300, 114.9300, ["door_to_door"]),
        point("P360502002001", "360502002001", "360502", 27.8000, 114.9100, ["door_to_door", "appointment"]),
        point(
            "P360521100201", "360521100201", "360521", 27.8100, 114.6800, ["appointment", "weekend_lunchtime"]
        ),
    ],
    "items": [
        item("360500-MZ-001", "最低生活保障申请"),
        item("360500-MZ-002", "高龄津贴申领", kind="same_day", promised_days=0, statutory_days=0),
        item(
            "360500-GA-001",
            "居民身份证换领",
            department="police",
            channels=["counter"],
            fee={"amount_fen": 2000, "basis": "居民身份证工本费标准"},
            delivery_modes=["pickup", "mail"],
        ),
        item(
            "360500-RS-001", "失业登记", department="hrss", kind="same_day", promised_days=0, statutory_days=1
        ),
        item("360500-RS-002", "灵活就业人员参保登记", department="hrss", channels=["online", "community"]),
    ],
}


def small_catalog() -> dict[str, Any]:
    return copy.deepcopy(SMALL_CATALOG)


async def load_catalog(data: dict[str, Any] | None = None) -> LoadReport:
    catalog, errors = validate_data(data or small_catalog())
    assert catalog is not None, [str(e) for e in errors]
    return await load(catalog)
