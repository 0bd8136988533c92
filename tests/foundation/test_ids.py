"""Row ids are range-checked before any query: out of range is 404 in a path, 422 in a query or a body."""

from __future__ import annotations

import base64
import json
import re

import pytest

from api.kit.ids import MAX_ID, MAX_ID64, PATH_TYPES, parse_id

OUT_OF_RANGE = ["0", "-1", str(2**63), str(10**30), "%2B1", "1_0", "%201", "١٢"]
ID_LABELS = {cast.label: cast.maximum for cast in PATH_TYPES}


def id_routes(app):
    """(method, path template, {param: label}) for every route with an id parameter, every method."""
    found = []
    for route in app.router.routes:
        ids = {p.name: p.label for p in route.params.values() if p.label in ID_LABELS}
        if not ids:
            continue
        for method in sorted(route.methods):
            found.append((method, "/" + route.path, ids))
    return found


def fill(template: str, values: dict[str, str]) -> str:
    return re.sub(r"<([a-z_]+)(?::[a-z0-9]+)?>", lambda m: values.get(m.group(1), "1"), template)


def test_parse_id_takes_ascii_digits_in_range_only():
    assert parse_id("1") == 1 and parse_id(str(MAX_ID)) == MAX_ID
    assert parse_id(str(MAX_ID64), MAX_ID64) == MAX_ID64
    for text in ("0", "-1", "+1", " 1", "1 ", "1_0", "١٢", "", str(MAX_ID + 1), "0" * 30 + "1"):
        with pytest.raises(ValueError):
            parse_id(text)
    with pytest.raises(ValueError):
        parse_id(str(MAX_ID64 + 1), MAX_ID64)


async def test_every_id_route_uses_a_range_checked_type(client, app):
    routes = id_routes(app)
    # the id routes of the issue, at least: applications, materials, work queue, notifications, residents
    assert len(routes) >= 11
    for route in app.router.routes:
        for param in route.params.values():
            assert param.label != "int", f"/{route.path}: <{param.name}:int> takes any integer; use :id"


async def test_out_of_range_path_ids_are_404_problem_on_every_id_route(client, app, people):
    admin = await people.admin()
    for method, template, ids in id_routes(app):
        for name, label in ids.items():
            for bad in [*OUT_OF_RANGE, str(ID_LABELS[label] + 1)]:
                path = fill(template, {name: bad})
                for headers in ({}, admin.headers):
                    r = await client.request(method, path, headers=headers)
                    where = f"{method} {path}"
                    assert r.status_code == 404, (where, r.status_code, r.text)
                    assert r.headers["content-type"] == "application/problem+json", where
                    if method != "HEAD":
                        assert r.json()["code"] == "not_found", where


async def test_the_largest_ids_reach_the_handler_and_no_query_fails(client, app, people):
    admin = await people.admin()
    for method, template, ids in id_routes(app):
        if method in ("HEAD", "OPTIONS"):
            continue
        path = fill(template, {name: str(ID_LABELS[label]) for name, label in ids.items()})
        r = await client.request(method, path)
        if "/sandbox/" in path:  # public (embedded mode's sandboxes): the route matched, the body is asked
            assert r.status_code == 415, (method, path, r.text)
        else:
            assert r.status_code == 401, (method, path, r.text)  # the route matched: sign-in is asked
        kwargs = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
        r = await client.request(method, path, headers=admin.headers, **kwargs)
        assert r.status_code < 500, (method, path, r.status_code, r.text)


@pytest.mark.parametrize("value", ["0", "-1", str(2**31), str(2**63), str(10**30), "abc"])
async def test_out_of_range_query_ids_are_422(client, people, value):
    admin = await people.admin()
    r = await client.get("/api/v1/admin/audit", params={"account": value}, headers=admin.headers)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in r.json()["errors"]] == ["account"]


async def test_the_largest_query_id_is_a_query_that_finds_nothing(client, people):
    admin = await people.admin()
    r = await client.get("/api/v1/admin/audit", params={"account": str(MAX_ID)}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["items"] == []


@pytest.mark.parametrize("value", [0, -1, 2**31, 2**63, 10**30, "1", 1.0, True])
async def test_out_of_range_body_ids_are_422(client, people, value):
    zhang = await people.resident()
    body = {"kind": "consultation", "content": "请问办理需要多久？", "application_id": value}
    r = await client.post("/api/v1/complaints", json=body, headers=zhang.headers)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in r.json()["errors"]] == ["application_id"]


async def test_the_largest_body_id_is_one_that_is_not_mine(client, people):
    zhang = await people.resident()
    body = {"kind": "consultation", "content": "请问办理需要多久？", "application_id": MAX_ID}
    r = await client.post("/api/v1/complaints", json=body, headers=zhang.headers)
    assert r.status_code == 422 and r.json()["code"] == "unknown_application", r.text


async def test_path_ids_are_documented_as_bounded_integers(client):
    spec = (await client.get("/docs/openapi.json")).json()
    ops = spec["paths"]["/api/v1/applications/{application_id}"]["get"]
    (param,) = [p for p in ops["parameters"] if p["name"] == "application_id"]
    assert param["in"] == "path"
    assert param["schema"]["type"] == "integer"
    assert param["schema"]["minimum"] == 1 and param["schema"]["maximum"] == MAX_ID
    ops = spec["paths"]["/api/v1/notifications/{notification_id}/read"]["post"]
    (param,) = [p for p in ops["parameters"] if p["name"] == "notification_id"]
    assert param["schema"]["maximum"] == MAX_ID64


def forged(position: dict) -> str:
    """A cursor as ours look (base64url JSON), holding what a caller chose; json, since orjson refuses ints
    beyond 64 bits."""
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


LISTS = {
    # path: (cursor key, the column's largest id; None: a list ordered by code or offset)
    "/api/v1/notifications": ("before", MAX_ID64),
    "/api/v1/admin/audit": ("before", MAX_ID64),
    "/api/v1/applications": ("before", MAX_ID),
    "/api/v1/complaints": ("before", MAX_ID),
    "/api/v1/work/complaints": ("after", MAX_ID),
    "/api/v1/work/applications": ("after", None),
    "/api/v1/items": ("after", None),
    "/api/v1/points": ("after", None),
    "/api/v1/points?near=27.8,114.9": ("offset", None),
}
FORGED = [
    0,
    -1,
    2**31,
    2**63,
    10**30,
    "x",
    "x" * 100,
    [1],
    {"a": 1},
    1.5,
    True,
    ["2026-01-01T00:00:00+08:00", 2**63],
]


async def test_forged_cursors_are_422_or_a_page_never_a_500(client, people, catalog):
    admin = await people.admin()
    zhang = await people.resident()
    for path, (key, largest) in LISTS.items():
        who = zhang if path in ("/api/v1/applications", "/api/v1/complaints") else admin
        sep = "&" if "?" in path else "?"
        for value in FORGED:
            r = await client.get(f"{path}{sep}cursor={forged({key: value})}", headers=who.headers)
            assert r.status_code < 500, (path, value, r.text)
            if largest is not None and (not isinstance(value, int) or isinstance(value, bool)):
                assert r.status_code == 422 and r.json()["code"] == "invalid_cursor", (path, value)
        if largest is not None:
            for value in (0, -1, largest + 1, 2**63):
                r = await client.get(f"{path}{sep}cursor={forged({key: value})}", headers=who.headers)
                assert r.status_code == 422 and r.json()["code"] == "invalid_cursor", (path, value, r.text)
            r = await client.get(f"{path}{sep}cursor={forged({key: largest})}", headers=who.headers)
            assert r.status_code == 200, (path, r.text)
