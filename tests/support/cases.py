"""Cases made through the API, as the apps and the clerks make them, for the applications tests.

A world of the small catalogue, a verified resident (张三), a second verified resident (李娟), a grid worker of
community point P360502001001, a second grid worker of P360502002001, a window clerk of civil affairs, one of
human resources, and an admin; the cases they submit and the actions that move them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from sanic import Sanic

from models.notifications import Notification
from tests.support.catalog import load_catalog
from tests.support.people import LI, ZHANG, People

APPS = "/api/v1/applications"
WORK = "/api/v1/work/applications"

ITEM = (
    "360500-MZ-001"  # civil affairs, committed, 5 working days, online + counter + community, every delivery
)
SAME_DAY_ITEM = "360500-MZ-002"  # civil affairs, same-day
COUNTER_ONLY_ITEM = "360500-GA-001"  # police: counter only, pickup or mail
HRSS_ITEM = "360500-RS-002"  # human resources: online + community
POINT = "P360502001001"  # community point of the grid worker
OTHER_POINT = "P360502002001"  # community point of the other grid worker
CITY_POINT = "CITY-CENTER"  # the city hall (counter)
MATERIALS = ("M01", "M02")
ADDRESS = "江西省新余市渝水区胜利北路1号3栋201室"


@dataclass
class World:
    app: Sanic
    client: httpx.AsyncClient
    people: People  # for anyone else the test needs
    resident: dict[str, str]
    resident_id: int
    other_resident: dict[str, str]
    other_resident_id: int
    grid: dict[str, str]
    other_grid: dict[str, str]
    staff: dict[str, str]
    other_staff: dict[str, str]
    admin: dict[str, str]

    def headers(self, role: str) -> dict[str, str]:
        return getattr(self, role)


async def make_world(app: Sanic, client: httpx.AsyncClient, *, second_resident: bool = True) -> World:
    await load_catalog()
    people = People(app, client)
    zhang = await people.resident(ZHANG)
    li = await people.resident(LI) if second_resident else zhang
    return World(
        app=app,
        client=client,
        people=people,
        resident=zhang.headers,
        resident_id=zhang.id,
        other_resident=li.headers,
        other_resident_id=li.id,
        grid=(await people.grid_worker(points=[POINT])).headers,
        other_grid=(await people.grid_worker(points=[OTHER_POINT])).headers,
        staff=(await people.staff(department="civil")).headers,
        other_staff=(await people.staff(department="hrss")).headers,
        admin=(await people.admin()).headers,
    )


def body(
    item: str = ITEM, point: str | None = POINT, mode: str = "pickup", address: str | None = None, **over: Any
) -> dict[str, Any]:
    delivery: dict[str, Any] = {"mode": mode}
    if address is not None:
        delivery["address"] = address
    elif mode in ("mail", "grid_worker"):
        delivery["address"] = ADDRESS
    data: dict[str, Any] = {
        "item_code": item,
        "point_code": point,
        "form": {"reason": "家庭收入低于当地最低生活保障标准", "members": 3},
        "delivery": delivery,
    }
    data.update(over)
    return data


async def submit(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    data: dict[str, Any] | None = None,
    key: str | None = None,
) -> httpx.Response:
    h = dict(headers)
    if key is not None:
        h["Idempotency-Key"] = key
    return await client.post(APPS, json=data if data is not None else body(), headers=h)


async def new_case(w: World, headers: dict[str, str] | None = None, **over: Any) -> dict[str, Any]:
    """A freshly submitted case (201 checked); its JSON."""
    r = await submit(w.client, headers or w.resident, body(**over), key=uuid.uuid4().hex)
    assert r.status_code == 201, r.text
    return r.json()


async def act(
    client: httpx.AsyncClient, headers: dict[str, str], case_id: int, action: str, **fields: Any
) -> httpx.Response:
    return await client.post(f"{WORK}/{case_id}/actions", json={"action": action, **fields}, headers=headers)


async def act_ok(w: World, role: str, case_id: int, action: str, **fields: Any) -> dict[str, Any]:
    r = await act(w.client, w.headers(role), case_id, action, **fields)
    assert r.status_code == 200, (action, r.text)
    return r.json()


def missing_all(reason: str = "复印件不清晰，请重新提供") -> list[dict[str, str]]:
    return [{"material_code": code, "reason": f"{reason}({code})"} for code in MATERIALS]


# the extra fields each clerk action needs to succeed (for a case delivered by pickup)
ACTION_FIELDS: dict[str, dict[str, Any]] = {
    "accept": {},
    "return": {"missing_materials": missing_all()},
    "refuse": {"reason": "不属于本事项受理范围"},
    "start_review": {},
    "suspend": {"reason": "需要现场核查", "expected_days": 3},
    "resume": {},
    "approve": {"note": "符合条件"},
    "reject": {"reason": "家庭收入超过标准", "legal_basis": "《社会救助暂行办法》第九条"},
    "mark_ready": {},
    "deliver": {"recipient": "张三"},
    "close": {},
}

# how to bring a case (submitted, pickup) to each status through the API: (role, action)
PATHS: dict[str, list[tuple[str, str]]] = {
    "submitted": [],
    "returned": [("grid", "return")],
    "refused": [("grid", "refuse")],
    "accepted": [("grid", "accept")],
    "in_review": [("grid", "accept"), ("staff", "start_review")],
    "suspended": [("grid", "accept"), ("staff", "start_review"), ("staff", "suspend")],
    "approved": [("grid", "accept"), ("staff", "start_review"), ("staff", "approve")],
    "rejected": [("grid", "accept"), ("staff", "start_review"), ("staff", "reject")],
    "ready": [("grid", "accept"), ("staff", "approve"), ("staff", "mark_ready")],
    "delivered": [("grid", "accept"), ("staff", "approve"), ("staff", "mark_ready"), ("grid", "deliver")],
    "closed": [
        ("grid", "accept"),
        ("staff", "approve"),
        ("staff", "mark_ready"),
        ("grid", "deliver"),
        ("staff", "close"),
    ],
    "withdrawn": [("resident", "withdraw")],
}


async def case_in(w: World, status: str, **over: Any) -> dict[str, Any]:
    """A case brought to `status` through the API; its JSON as the last step answered."""
    case = await new_case(w, **over)
    for role, action in PATHS[status]:
        if action == "withdraw":
            r = await w.client.post(f"{APPS}/{case['id']}/withdraw", headers=w.resident)
            assert r.status_code == 200, r.text
            case = r.json()
        else:
            case = await act_ok(w, role, case["id"], action, **ACTION_FIELDS[action])
    assert case["status"] == status, case
    return case


async def notifications_of(account_id: int, case_id: int) -> list[Notification]:
    return await Notification.filter(account_id=account_id, application_id=case_id).order_by("id")


def problem_code(r: httpx.Response) -> str:
    assert r.headers["content-type"].startswith("application/problem+json"), r.text
    return r.json()["code"]
