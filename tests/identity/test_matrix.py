"""SECURITY rows 1 and 2: the role matrix, built from the router itself.

Every route under /api/v1 and /.well-known declares who may call it: `@require(...)` sets `__ywt_roles__` to
its allow-list (("*",) = anyone signed in), `@public` to (). A route that declares neither fails here, so does
a route with path parameters that has no entry in SAMPLES below. For every non-public route:
no token → 401, a garbage token → 401, each role outside the allow-list → 403, each role inside gets past
the gate (neither 401 nor 403 `forbidden`) and never a 5xx. Object ownership (row 1) for identity: a clerk
cannot in-person-verify an account that is not a resident (404).

When you add a route with an id in its path, add it to SAMPLES: sample path values, and a body/query when a
meaningful one helps. Ownership of your area's objects belongs in your area's tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from api.kit.auth import public, require
from tests.support.people import ZHANG, Person
from tests.support.proof import delete_with_code

ROLES = ("resident", "grid_worker", "staff", "admin")
PREFIXES = ("/api/v1/", "/.well-known/")
SKIPPED_METHODS = {"HEAD", "OPTIONS"}
_PARAM = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)(?::[^>]*)?>")


@dataclass(frozen=True)
class Sample:
    """What to send to a route. `params` fills the path; `last` marks a route that ends the caller itself
    (account deletion), which is therefore called after everything else."""

    params: dict[str, Any] = field(default_factory=dict)
    json: dict[str, Any] | None = None
    query: dict[str, Any] | None = None
    last: bool = False


# (method, path as the router spells it) -> sample. Every route with a path parameter needs an entry.
SAMPLES: dict[tuple[str, str], Sample] = {
    # identity
    ("POST", "/api/v1/work/residents/<resident_id:id>/in-person-verification"): Sample(
        params={"resident_id": 1}, json={"id_number": ZHANG["id_number"]}
    ),
    ("GET", "/api/v1/work/residents"): Sample(query={"id_number": ZHANG["id_number"]}),
    ("POST", "/api/v1/me/real-name"): Sample(json={"name": ZHANG["name"], "id_number": ZHANG["id_number"]}),
    ("PUT", "/api/v1/me/password"): Sample(json={"new_password": "Matrix2026ab"}),
    ("POST", "/api/v1/me/bindings/wechat"): Sample(json={"code": "not-a-real-code"}),
    ("POST", "/api/v1/admin/accounts"): Sample(json={"phone": "13600000099", "roles": ["admin"]}),
    ("DELETE", "/api/v1/me"): Sample(json={"password": "Wrong2026ab"}, last=True),
    # other areas: path values only (an id nobody has → the gate passes, the area answers 404); their
    # ownership tests (row 1) live with the areas
    ("GET", "/api/v1/applications/<application_id:id>"): Sample(params={"application_id": 1}),
    ("POST", "/api/v1/applications/<application_id:id>/evaluation"): Sample(params={"application_id": 1}),
    ("POST", "/api/v1/applications/<application_id:id>/resubmit"): Sample(params={"application_id": 1}),
    ("POST", "/api/v1/applications/<application_id:id>/withdraw"): Sample(params={"application_id": 1}),
    ("GET", "/api/v1/work/applications/<application_id:id>"): Sample(params={"application_id": 1}),
    ("POST", "/api/v1/work/applications/<application_id:id>/actions"): Sample(params={"application_id": 1}),
    ("POST", "/api/v1/work/complaints/<complaint_id:id>/reply"): Sample(params={"complaint_id": 1}),
    ("POST", "/api/v1/notifications/<notification_id:id64>/read"): Sample(params={"notification_id": 1}),
    ("GET", "/api/v1/notifications/<notification_id:id64>"): Sample(params={"notification_id": 1}),
    ("DELETE", "/api/v1/me/devices/<registration:str>"): Sample(params={"registration": "nobody-s-device"}),
    ("GET", "/api/v1/admin/announcements/<announcement_id:id>"): Sample(params={"announcement_id": 1}),
    ("POST", "/api/v1/admin/announcements/<announcement_id:id>/cancel"): Sample(
        params={"announcement_id": 1}
    ),
    ("POST", "/api/v1/me/devices"): Sample(
        json={"registration_id": "matrix-1", "platform": "android", "app_version": "1.0"}
    ),
    ("PUT", "/api/v1/me/notification-preferences"): Sample(json={"categories": {}}),
    ("POST", "/api/v1/applications/<application_id:id>/materials"): Sample(params={"application_id": 1}),
    ("GET", "/api/v1/applications/<application_id:id>/materials/<material_id:id>"): Sample(
        params={"application_id": 1, "material_id": 1}
    ),
    ("GET", "/api/v1/work/applications/<application_id:id>/materials/<material_id:id>"): Sample(
        params={"application_id": 1, "material_id": 1}
    ),
    ("DELETE", "/api/v1/admin/api-keys/<key_id:id>"): Sample(params={"key_id": 1}),
    ("POST", "/api/v1/admin/api-keys"): Sample(json={"name": "矩阵测试系统", "scopes": ["licences:verify"]}),
    ("GET", "/api/v1/licences/<licence_id:id>"): Sample(params={"licence_id": 1}),
    ("POST", "/api/v1/licences/<licence_id:id>/presentations"): Sample(params={"licence_id": 1}, json={}),
    ("GET", "/api/v1/licences/<licence_id:id>/verifications"): Sample(params={"licence_id": 1}),
    ("POST", "/api/v1/licence-verifications"): Sample(json={"token": "YL1:not-a-token"}),
    ("POST", "/api/v1/sandbox/licences/<licence_id:id>/status"): Sample(
        params={"licence_id": 1}, json={"status": "revoked"}
    ),
    # catalogue (public)
    ("GET", "/api/v1/items/<code:str>"): Sample(params={"code": "360500-MZ-001"}),
    ("GET", "/api/v1/points/<code:str>"): Sample(params={"code": "P360502001001"}),
}


@dataclass(frozen=True)
class RouteInfo:
    method: str
    path: str  # as the router spells it, with <name:type> parameters
    roles: tuple[str, ...] | None  # None: declares nothing
    params: tuple[str, ...]

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.path)

    @property
    def label(self) -> str:
        return f"{self.method} {self.path}"

    def url(self) -> str:
        sample = SAMPLES.get(self.key, Sample())

        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in sample.params:
                return str(sample.params[name])
            return "1" if ":int" in match.group(0) else "x"

        return _PARAM.sub(fill, self.path)


def declared_roles(handler: Any) -> tuple[str, ...] | None:
    """`__ywt_roles__` of a handler, looking through wrappers (functools.wraps sets __wrapped__)."""
    seen = set()
    while handler is not None and id(handler) not in seen:
        seen.add(id(handler))
        roles = getattr(handler, "__ywt_roles__", None)
        if roles is not None:
            return tuple(roles)
        handler = getattr(handler, "__wrapped__", None)
    return None


def api_routes(app) -> list[RouteInfo]:
    routes = []
    for route in app.router.routes:
        path = "/" + route.path.lstrip("/")
        if not path.startswith(PREFIXES):
            continue
        for method in sorted(set(route.methods) - SKIPPED_METHODS):
            routes.append(
                RouteInfo(
                    method=method,
                    path=path,
                    roles=declared_roles(route.handler),
                    params=tuple(_PARAM.findall(path)),
                )
            )
    return sorted(routes, key=lambda r: (r.path, r.method))


def guarded(routes: list[RouteInfo]) -> list[RouteInfo]:
    return [r for r in routes if r.roles]


def allowed(route: RouteInfo, role: str) -> bool:
    assert route.roles
    return route.roles == ("*",) or role in route.roles


async def call(client, route: RouteInfo, headers: dict[str, str] | None = None):
    sample = SAMPLES.get(route.key, Sample())
    kwargs: dict[str, Any] = {"headers": headers or {}}
    if sample.query is not None:
        kwargs["params"] = sample.query
    if route.method in {"POST", "PUT", "PATCH"}:
        kwargs["json"] = sample.json if sample.json is not None else {}
    return await client.request(route.method, route.url(), **kwargs)


# ---- the matrix itself is complete ---------------------------------------------------------------------


def test_the_decorators_mark_handlers_and_wrappers_are_followed():
    async def handler(request):  # pragma: no cover - never called
        return None

    assert declared_roles(public(handler)) == ()
    assert declared_roles(require("admin")(handler)) == ("admin",)
    assert declared_roles(require()(handler)) == ("*",)

    async def bare(request):  # pragma: no cover
        return None

    def wrapper():  # pragma: no cover
        return None

    wrapper.__wrapped__ = require("staff")(bare)
    assert declared_roles(wrapper) == ("staff",)
    assert declared_roles(bare) is None


async def test_the_route_list_is_read_from_the_router(app, client):
    routes = {r.label for r in api_routes(app)}
    assert {
        "POST /api/v1/auth/token",
        "GET /api/v1/me",
        "DELETE /api/v1/me",
        "POST /api/v1/admin/accounts",
        "POST /api/v1/work/residents/<resident_id:id>/in-person-verification",
        "GET /.well-known/jwks.json",
    } <= routes
    assert not any(label.startswith(("HEAD", "OPTIONS")) for label in routes)
    assert not any(" /docs" in label or label.endswith("z") for label in routes)


async def test_every_route_declares_its_roles(app, client):
    undeclared = [r.label for r in api_routes(app) if r.roles is None]
    assert undeclared == [], "routes without @require(...) or @public: " + ", ".join(undeclared)


async def test_every_role_named_in_an_allow_list_exists(app, client):
    named = {role for r in api_routes(app) for role in (r.roles or ()) if role != "*"}
    assert named <= set(ROLES)


async def test_every_route_with_path_parameters_has_a_sample(app, client):
    missing = [r.label for r in api_routes(app) if r.params and r.key not in SAMPLES]
    assert missing == [], "add these routes to SAMPLES in tests/identity/test_matrix.py: " + ", ".join(
        missing
    )
    for r in api_routes(app):
        if r.key in SAMPLES and r.params:
            assert set(SAMPLES[r.key].params) == set(r.params), r.label


async def test_no_stale_samples(app, client):
    keys = {r.key for r in api_routes(app)}
    assert [k for k in SAMPLES if k not in keys] == []


async def test_identity_routes_have_the_expected_allow_lists(app, client):
    roles = {r.label: r.roles for r in api_routes(app)}
    assert roles["POST /api/v1/auth/sms-codes"] == ()
    assert roles["POST /api/v1/auth/token"] == ()
    assert roles["POST /api/v1/auth/logout"] == ()
    assert roles["GET /.well-known/jwks.json"] == ()
    for label in (
        "GET /api/v1/me",
        "DELETE /api/v1/me",
        "PUT /api/v1/me/password",
        "POST /api/v1/me/real-name",
        "GET /api/v1/me/bindings",
        "POST /api/v1/me/bindings/wechat",
        "DELETE /api/v1/me/bindings/wechat",
    ):
        assert roles[label] == ("*",), label
    assert set(roles["POST /api/v1/admin/accounts"]) == {"admin"}
    assert set(roles["GET /api/v1/admin/audit"]) == {"admin"}
    assert set(roles["GET /api/v1/work/residents"]) == {"staff", "grid_worker", "admin"}
    assert set(roles["POST /api/v1/work/residents/<resident_id:id>/in-person-verification"]) == {
        "staff",
        "grid_worker",
        "admin",
    }


# ---- row 2: each function only for its roles -----------------------------------------------------------


@pytest.fixture
async def by_role(people, catalog) -> dict[str, Person]:
    """One account per role, each signed in through the API (SMS for the resident, password for the others)."""
    return {
        "resident": await people.resident(ZHANG),
        "grid_worker": await people.grid_worker(sign_in=True),
        "staff": await people.staff(sign_in=True),
        "admin": await people.admin(sign_in=True),
    }


async def test_without_a_token_every_guarded_route_is_401(app, client):
    failures = []
    routes = guarded(api_routes(app))
    assert len(routes) > 30  # the matrix really covers the API (an empty list would prove nothing)
    for route in routes:
        for headers in (
            {},
            {"Authorization": "Bearer not.a.token"},
            {"Authorization": "Basic YWRtaW46YWRtaW4="},
        ):
            r = await call(client, route, headers)
            if r.status_code != 401 or not r.headers["content-type"].startswith("application/problem+json"):
                failures.append(f"{route.label} with {headers or 'no token'}: {r.status_code}")
    assert failures == []


async def test_a_role_outside_the_allow_list_is_403(app, client, by_role):
    failures, checked = [], 0
    for route in guarded(api_routes(app)):
        for role in ROLES:
            if allowed(route, role):
                continue
            r = await call(client, route, by_role[role].headers)
            checked += 1
            if r.status_code != 403 or r.json().get("code") != "forbidden":
                failures.append(f"{route.label} as {role}: {r.status_code} {r.text[:120]}")
    assert failures == []
    assert checked > 0


async def test_a_role_inside_the_allow_list_gets_past_the_gate(app, client, by_role):
    routes = guarded(api_routes(app))
    ordered = [r for r in routes if not SAMPLES.get(r.key, Sample()).last] + [
        r for r in routes if SAMPLES.get(r.key, Sample()).last
    ]
    failures, checked = [], 0
    for route in ordered:
        for role in ROLES:
            if not allowed(route, role):
                continue
            r = await call(client, route, by_role[role].headers)
            checked += 1
            denied = r.status_code == 401 or (r.status_code == 403 and r.json().get("code") == "forbidden")
            if denied or r.status_code >= 500:
                failures.append(f"{route.label} as {role}: {r.status_code} {r.text[:160]}")
    assert failures == [], "\n".join(failures)
    assert checked > 30


async def test_the_role_comes_from_the_account_not_from_a_stale_token(app, client, by_role):
    # the token of a resident whose account was later deleted carries "resident" but opens nothing
    resident = by_role["resident"]
    assert (await delete_with_code(client, app, resident.phone, resident.headers)).status_code == 204
    assert (await client.get("/api/v1/me", headers=resident.headers)).status_code == 401


# ---- row 1: object ownership on identity routes --------------------------------------------------------


async def test_in_person_verification_of_an_account_that_is_not_a_resident_is_404(app, client, by_role):
    url = "/api/v1/work/residents/{}/in-person-verification"
    resident_id = by_role["resident"].id
    not_residents = [by_role[role].id for role in ("grid_worker", "staff", "admin")]
    for role in ("grid_worker", "staff", "admin"):
        for target in [*not_residents, 10_000_000]:
            r = await client.post(
                url.format(target), json={"id_number": ZHANG["id_number"]}, headers=by_role[role].headers
            )
            assert r.status_code == 404, (role, target, r.text)
            assert r.json()["code"] == "resident_not_found"
    # the same request for the real resident works, so the 404s above are about the target
    r = await client.post(
        url.format(resident_id), json={"id_number": ZHANG["id_number"]}, headers=by_role["staff"].headers
    )
    assert r.status_code == 200 and r.json()["real_name_level"] == 3


async def test_a_404_for_an_absent_resident_and_for_a_non_resident_look_the_same(app, client, by_role):
    url = "/api/v1/work/residents/{}/in-person-verification"
    clerk = by_role["staff"].headers
    body = {"id_number": ZHANG["id_number"]}
    absent = await client.post(url.format(10_000_000), json=body, headers=clerk)
    staff = await client.post(url.format(by_role["admin"].id), json=body, headers=clerk)
    strip = lambda b: {k: v for k, v in b.items() if k != "request_id"}  # noqa: E731
    assert strip(absent.json()) == strip(staff.json())


async def test_a_deleted_resident_is_404_at_the_counter(app, client, by_role):
    resident = by_role["resident"]
    assert (await delete_with_code(client, app, resident.phone, resident.headers)).status_code == 204
    r = await client.post(
        f"/api/v1/work/residents/{resident.id}/in-person-verification",
        json={"id_number": ZHANG["id_number"]},
        headers=by_role["staff"].headers,
    )
    assert r.status_code == 404
    r = await client.get(
        "/api/v1/work/residents", params={"id_number": ZHANG["id_number"]}, headers=by_role["staff"].headers
    )
    assert r.status_code == 404
