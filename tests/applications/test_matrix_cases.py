"""SECURITY.md rows 1 and 2 for the applications routes: every role on every route, on an object inside
its scope and on one outside it. A wrong role is 403 (whatever the object), an object outside the scope is
404 (its existence is not revealed), and a route of the blueprint missing from the matrix fails the test.

The objects: case A of 张三 at community point P360502001001 (civil affairs: inside the grid worker's points,
the civil clerk's department, and 张三's own), case B of 李娟 at P360502002001 for human resources (outside
all of those; only the admin sees it). Requests that would change a case are ones the state machine refuses
(409 proves the object was found), except withdraw, which runs on a spare case of 张三."""

from __future__ import annotations

import pytest

from tests.support.cases import APPS, HRSS_ITEM, OTHER_POINT, WORK, body, make_world, new_case

ROLES = ("resident", "grid", "staff", "admin")
ALLOWED = {
    "resident": {"resident"},
    "work": {"grid", "staff", "admin"},
}

# route name -> (method, path template, json body, who may call it, status inside the scope)
MATRIX: dict[str, tuple[str, str, dict | None, str, int]] = {
    "submit": ("POST", APPS, body(), "resident", 201),
    "mine": ("GET", APPS, None, "resident", 200),
    "get_mine": ("GET", APPS + "/{id}", None, "resident", 200),
    "resubmit": ("POST", APPS + "/{id}/resubmit", None, "resident", 409),
    "withdraw": ("POST", APPS + "/{spare}/withdraw", None, "resident", 200),
    "work_queue": ("GET", WORK, None, "work", 200),
    "work_get": ("GET", WORK + "/{id}", None, "work", 200),
    "work_action": ("POST", WORK + "/{id}/actions", {"action": "deliver"}, "work", 409),
}
# routes that take no object id: there is no "outside the scope" for them
NO_OBJECT = {"submit", "mine", "work_queue"}


def _routes(app) -> list:
    """The blueprint's own routes (sanic-ext adds HEAD and OPTIONS twins; they run no handler of ours)."""
    return [
        r
        for r in app.router.routes
        if r.name.startswith(f"{app.name}.applications.") and not set(r.methods) <= {"HEAD", "OPTIONS"}
    ]


async def test_the_matrix_covers_every_route_of_the_blueprint(app, client):
    names = {r.name.split(".")[-1] for r in _routes(app)}
    assert names == set(MATRIX), f"routes missing from the matrix: {names - set(MATRIX)}"
    for route in _routes(app):
        _, _, _, who, _ = MATRIX[route.name.split(".")[-1]]
        roles = {"grid_worker" if r == "grid" else r for r in ALLOWED[who]}
        assert set(route.handler.__ywt_roles__) == roles, route.name


def _path(template: str, **ids: int) -> str:
    return template.format(**ids)


@pytest.mark.parametrize("route", list(MATRIX))
async def test_every_role_on_the_route(app, client, route):
    w = await make_world(app, client)
    a = await new_case(w)
    b = await new_case(w, headers=w.other_resident, item=HRSS_ITEM, point=OTHER_POINT)
    spare = await new_case(w)
    method, template, payload, who, inside = MATRIX[route]
    for role in ROLES:
        headers = w.headers(role)
        mine = _path(template, id=a["id"], spare=spare["id"])
        r = await client.request(method, mine, json=payload, headers=headers)
        if role not in ALLOWED[who]:
            assert r.status_code == 403, (route, role, r.text)
            assert r.json()["code"] == "forbidden"
            # a wrong role learns nothing about objects either
            theirs = _path(template, id=b["id"], spare=b["id"])
            r = await client.request(method, theirs, json=payload, headers=headers)
            assert r.status_code == 403, (route, role, "foreign", r.text)
            continue
        assert r.status_code == inside, (route, role, r.text)
        if route in NO_OBJECT:
            continue
        theirs = _path(template, id=b["id"], spare=b["id"])
        r = await client.request(method, theirs, json=payload, headers=headers)
        if role == "admin":
            assert r.status_code == inside, (route, role, "foreign", r.text)
        else:
            assert r.status_code == 404, (route, role, "foreign", r.text)
            assert r.json()["code"] == "application_not_found"
        missing = _path(template, id=b["id"] + 10_000, spare=b["id"] + 10_000)
        r = await client.request(method, missing, json=payload, headers=headers)
        assert r.status_code == 404, (route, role, "missing", r.text)


async def test_without_a_token_every_route_is_401(app, client):
    for route, (method, template, payload, _, _) in MATRIX.items():
        for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic dXNlcjpwYXNz"}):
            r = await client.request(method, _path(template, id=1, spare=1), json=payload, headers=headers)
            assert r.status_code == 401, (route, headers, r.text)
