"""Contract, staff side: POST /admin/accounts, GET /work/residents?id_number=,
POST /work/residents/{id}/in-person-verification, GET /admin/audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from models.identity import Account, AccountPoint, AuditLog, RealNameRecord
from tests.support.people import (
    LI,
    PASSWORD,
    WANG,
    ZHANG,
    bearer,
    password_sign_in,
    sms_sign_in,
    verified_resident,
)

ACCOUNTS = "/api/v1/admin/accounts"
RESIDENTS = "/api/v1/work/residents"


pytestmark = pytest.mark.usefixtures("catalog")


@pytest.fixture
async def clerk(people):
    """A window clerk of civil affairs."""
    return await people.staff(department="civil")


def _in_person(resident_id: int) -> str:
    return f"{RESIDENTS}/{resident_id}/in-person-verification"


# ---- POST /admin/accounts ------------------------------------------------------------------------------


async def test_admin_creates_a_window_clerk_of_a_department(client, admin):
    r = await client.post(
        ACCOUNTS,
        json={"phone": "13600000001", "roles": ["staff"], "department": "civil", "password": PASSWORD},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["roles"] == ["staff"] and body["department"] == "civil" and body["points"] == []
    assert body["phone"] == "136****0001" and body["real_name_level"] == 1
    # he signs in with the password he was given, and his token says staff
    tokens = await password_sign_in(client, "13600000001")
    assert tokens["account"]["id"] == body["id"] and tokens["account"]["roles"] == ["staff"]
    rows = await AuditLog.filter(action="account.created", subject_id=body["id"])
    assert len(rows) == 1 and rows[0].actor_id == admin.id and rows[0].actor_role == "admin"


async def test_admin_creates_a_grid_worker_of_points(client, admin):
    r = await client.post(
        ACCOUNTS,
        json={"phone": "13600000002", "roles": ["grid_worker"], "points": ["P360502001001", "P360502002001"]},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["roles"] == ["grid_worker"] and body["points"] == ["P360502001001", "P360502002001"]
    assert body["department"] is None
    assert await AccountPoint.filter(account_id=body["id"]).count() == 2


async def test_admin_creates_another_admin_and_several_roles_at_once(client, admin):
    r = await client.post(ACCOUNTS, json={"phone": "13600000003", "roles": ["admin"]}, headers=admin.headers)
    assert r.status_code == 201 and r.json()["roles"] == ["admin"]
    r = await client.post(
        ACCOUNTS,
        json={
            "phone": "13600000004",
            "roles": ["staff", "grid_worker"],
            "department": "police",
            "points": ["CITY-CENTER"],
        },
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    assert r.json()["roles"] == ["grid_worker", "staff"]
    assert r.json()["department"] == "police" and r.json()["points"] == ["CITY-CENTER"]


async def test_an_existing_phone_is_409(client, admin):
    await sms_sign_in(client, ZHANG["phone"])  # a resident already has it
    r = await client.post(
        ACCOUNTS,
        json={"phone": ZHANG["phone"], "roles": ["staff"], "department": "civil"},
        headers=admin.headers,
    )
    assert r.status_code == 409 and r.json()["code"] == "phone_taken"
    r = await client.post(ACCOUNTS, json={"phone": admin.phone, "roles": ["admin"]}, headers=admin.headers)
    assert r.status_code == 409  # the admin's own phone
    assert await Account.all().count() == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"phone": "13600000009", "roles": ["staff"]}, "department"),
        ({"phone": "13600000009", "roles": ["staff"], "department": "ghost"}, "department"),
        ({"phone": "13600000009", "roles": ["grid_worker"]}, "points"),
        ({"phone": "13600000009", "roles": ["grid_worker"], "points": []}, "points"),
        (
            {"phone": "13600000009", "roles": ["grid_worker"], "points": ["P360502001001", "NOWHERE"]},
            "points",
        ),
        ({"phone": "13600000009", "roles": []}, "roles"),
        ({"phone": "13600000009", "roles": ["resident"]}, "roles.0"),
        ({"phone": "1360000000", "roles": ["admin"]}, "phone"),
        ({"phone": "13600000009", "roles": ["admin"], "password": "short"}, "password"),
        ({"phone": "13600000009", "roles": ["admin"], "password": "12345678"}, "password"),
        ({"phone": "13600000009", "roles": ["admin"], "status": "active"}, "status"),
        ({"phone": "13600000009", "roles": ["admin"], "real_name_level": 3}, "real_name_level"),
    ],
)
async def test_a_missing_or_unknown_scope_or_a_bad_field_is_422_and_creates_nothing(
    client, admin, body, field
):
    r = await client.post(ACCOUNTS, json=body, headers=admin.headers)
    assert r.status_code == 422, r.text
    assert field in [e["field"] for e in r.json()["errors"]]
    assert await Account.all().count() == 1  # the admin alone


async def test_only_an_admin_creates_accounts(client, app, clerk):
    body = {"phone": "13600000001", "roles": ["admin"]}
    assert (await client.post(ACCOUNTS, json=body)).status_code == 401
    assert (await client.post(ACCOUNTS, json=body, headers=clerk.headers)).status_code == 403
    resident = await sms_sign_in(client, ZHANG["phone"])
    assert (await client.post(ACCOUNTS, json=body, headers=bearer(resident))).status_code == 403


# ---- GET /work/residents?id_number= --------------------------------------------------------------------


async def test_a_clerk_finds_a_resident_by_id_number_masked_and_audited(client, admin, clerk):
    resident = await verified_resident(client, ZHANG)
    rid = resident["account"]["id"]
    r = await client.get(RESIDENTS, params={"id_number": ZHANG["id_number"]}, headers=clerk.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "id": rid,
        "name": "张*",
        "id_number": "3605**********2015",
        "phone": "138****0001",
        "real_name_level": 2,
    }
    for secret in (ZHANG["name"], ZHANG["id_number"], ZHANG["phone"]):
        assert secret not in r.text

    r = await client.get("/api/v1/admin/audit", params={"account": rid}, headers=admin.headers)
    assert r.status_code == 200, r.text
    [entry] = [e for e in r.json()["items"] if e["action"] == "resident.lookup"]
    assert entry["actor"] == clerk.id and entry["actor_role"] == "staff"
    assert entry["subject"] == rid and entry["request_id"]
    assert entry["detail"]["found"] is True and ZHANG["id_number"] not in str(entry["detail"])


async def test_the_lookup_is_an_exact_match(client, clerk):
    await verified_resident(client, ZHANG)
    await verified_resident(client, WANG)  # same prefix 360502, another person
    r = await client.get(RESIDENTS, params={"id_number": WANG["id_number"]}, headers=clerk.headers)
    assert r.status_code == 200 and r.json()["name"] == "王*"


async def test_an_unknown_resident_is_404_and_the_miss_is_audited(client, clerk):
    r = await client.get(RESIDENTS, params={"id_number": LI["id_number"]}, headers=clerk.headers)
    assert r.status_code == 404 and r.json()["code"] == "resident_not_found"
    row = await AuditLog.get(action="resident.lookup")
    assert row.subject_id is None and row.detail["found"] is False
    assert LI["id_number"] not in str(row.detail)


async def test_a_resident_who_only_signed_in_is_not_found_by_id_number(client, clerk):
    await sms_sign_in(client, ZHANG["phone"])  # no real name: nothing to match
    r = await client.get(RESIDENTS, params={"id_number": ZHANG["id_number"]}, headers=clerk.headers)
    assert r.status_code == 404


@pytest.mark.parametrize("id_number", ["360502198803152016", "360502198802302015", "3605021988", "abc"])
async def test_a_bad_id_number_is_422(client, clerk, id_number):
    r = await client.get(RESIDENTS, params={"id_number": id_number}, headers=clerk.headers)
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["id_number"]


async def test_the_lookup_needs_the_id_number_and_nothing_else(client, clerk):
    assert (await client.get(RESIDENTS, headers=clerk.headers)).status_code == 422
    r = await client.get(
        RESIDENTS, params={"id_number": ZHANG["id_number"], "name": "张三"}, headers=clerk.headers
    )
    assert r.status_code == 422


async def test_grid_workers_and_admins_look_up_too_residents_do_not(client, people, admin):
    await verified_resident(client, ZHANG)
    grid = await people.grid_worker()
    for who in (grid, admin):
        r = await client.get(RESIDENTS, params={"id_number": ZHANG["id_number"]}, headers=who.headers)
        assert r.status_code == 200
    resident = await sms_sign_in(client, LI["phone"])
    r = await client.get(RESIDENTS, params={"id_number": ZHANG["id_number"]}, headers=bearer(resident))
    assert r.status_code == 403


# ---- POST /work/residents/{id}/in-person-verification --------------------------------------------------


async def test_in_person_verification_raises_the_level_to_3(client, clerk):
    resident = await verified_resident(client, ZHANG)
    rid = resident["account"]["id"]
    r = await client.post(_in_person(rid), json={"id_number": ZHANG["id_number"]}, headers=clerk.headers)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "id": rid,
        "name": "张*",
        "id_number": "3605**********2015",
        "phone": "138****0001",
        "real_name_level": 3,
    }
    record = await RealNameRecord.get(account_id=rid)
    assert record.level == 3 and record.in_person_by_id == clerk.id
    me = (await client.get("/api/v1/me", headers=bearer(resident))).json()
    assert me["real_name_level"] == 3
    assert await AuditLog.filter(action="resident.in_person_verified", subject_id=rid).count() == 1
    # verifying again online with the same card keeps level 3
    r = await client.post(
        "/api/v1/me/real-name",
        json={"name": ZHANG["name"], "id_number": ZHANG["id_number"]},
        headers=bearer(resident),
    )
    assert r.status_code == 200 and r.json()["real_name_level"] == 3


async def test_in_person_without_a_real_name_is_409(client, clerk):
    resident = await sms_sign_in(client, ZHANG["phone"])
    r = await client.post(
        _in_person(resident["account"]["id"]), json={"id_number": ZHANG["id_number"]}, headers=clerk.headers
    )
    assert r.status_code == 409 and r.json()["code"] == "real_name_required"


async def test_in_person_with_another_card_number_is_422_and_audited(client, clerk):
    resident = await verified_resident(client, ZHANG)
    rid = resident["account"]["id"]
    r = await client.post(_in_person(rid), json={"id_number": WANG["id_number"]}, headers=clerk.headers)
    assert r.status_code == 422 and r.json()["code"] == "id_card_mismatch"
    assert [e["field"] for e in r.json()["errors"]] == ["id_number"]
    assert (await Account.get(id=rid)).real_name_level == 2
    assert await AuditLog.filter(action="resident.in_person_mismatch", subject_id=rid).count() == 1


async def test_in_person_with_a_misread_card_number_is_422_invalid_id_number(client, clerk):
    resident = await verified_resident(client, ZHANG)
    rid = resident["account"]["id"]
    r = await client.post(_in_person(rid), json={"id_number": "360502198803152016"}, headers=clerk.headers)
    assert r.status_code == 422 and r.json()["code"] == "invalid_id_number"
    assert (await Account.get(id=rid)).real_name_level == 2


async def test_in_person_of_an_unknown_or_non_resident_account_is_404(client, clerk, admin):
    for account_id in (999_999, clerk.id, admin.id):
        r = await client.post(
            _in_person(account_id), json={"id_number": ZHANG["id_number"]}, headers=clerk.headers
        )
        assert r.status_code == 404, account_id
        assert r.json()["code"] == "resident_not_found"


async def test_in_person_with_a_bad_body_is_422(client, clerk):
    resident = await verified_resident(client, ZHANG)
    url = _in_person(resident["account"]["id"])
    for body in ({}, {"id_number": ZHANG["id_number"], "level": 3}, {"id_number": "123"}):
        r = await client.post(url, json=body, headers=clerk.headers)
        assert r.status_code == 422, body
    assert (await Account.get(id=resident["account"]["id"])).real_name_level == 2


# ---- GET /admin/audit ----------------------------------------------------------------------------------


async def _lookups(client, clerk, n: int) -> None:
    for _ in range(n):
        r = await client.get(RESIDENTS, params={"id_number": ZHANG["id_number"]}, headers=clerk.headers)
        assert r.status_code == 200


async def test_audit_pages_newest_first_with_an_opaque_cursor(client, admin, clerk):
    await verified_resident(client, ZHANG)
    await _lookups(client, clerk, 5)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        r = await client.get("/api/v1/admin/audit", params=params, headers=admin.headers)
        assert r.status_code == 200, r.text
        page = r.json()
        assert set(page) == {"items", "next_cursor"} and len(page["items"]) <= 2
        seen += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    total = await AuditLog.all().count()
    assert len(seen) == total >= 5 and pages == (total + 1) // 2
    ids = [e["id"] for e in seen]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == len(ids)
    assert {"id", "at", "actor", "actor_role", "action", "subject", "request_id", "detail"} == set(seen[0])


async def test_audit_filters_by_account_and_time(client, admin, clerk):
    resident = await verified_resident(client, ZHANG)
    await _lookups(client, clerk, 2)
    other = await verified_resident(client, LI)
    r = await client.get(RESIDENTS, params={"id_number": LI["id_number"]}, headers=clerk.headers)
    assert r.status_code == 200
    rid = resident["account"]["id"]

    items = (await client.get("/api/v1/admin/audit", params={"account": rid}, headers=admin.headers)).json()[
        "items"
    ]
    # his sign-in and real-name check (issue 8: both audited), then the clerk's two lookups of him
    assert [e["action"] for e in items] == [
        "resident.lookup", "resident.lookup", "real_name.verified", "auth.signed_in",
    ]  # fmt: skip
    assert all(e["subject"] == rid for e in items)
    # the clerk as actor: all three lookups
    items = (
        await client.get("/api/v1/admin/audit", params={"account": clerk.id}, headers=admin.headers)
    ).json()["items"]
    assert len(items) == 3 and {e["subject"] for e in items} == {rid, other["account"]["id"]}

    now = datetime.now(UTC)
    hour = timedelta(hours=1)
    window = {"from": (now - hour).isoformat(), "to": (now + hour).isoformat(), "account": rid}
    assert (
        len((await client.get("/api/v1/admin/audit", params=window, headers=admin.headers)).json()["items"])
        == 4
    )
    for params in ({"from": (now + hour).isoformat()}, {"to": (now - hour).isoformat()}):
        r = await client.get("/api/v1/admin/audit", params=params, headers=admin.headers)
        assert r.status_code == 200 and r.json() == {"items": [], "next_cursor": None}
    # the same instants in China time, with the offset and without it (a time without offset is China time)
    china = timezone(timedelta(hours=8))
    for fmt in (
        lambda t: t.astimezone(china).isoformat(),
        lambda t: t.astimezone(china).replace(tzinfo=None).isoformat(),
    ):
        for params, expected in (
            ({"from": fmt(now - hour), "to": fmt(now + hour)}, 4),
            ({"from": fmt(now + hour)}, 0),
            ({"to": fmt(now - hour)}, 0),
        ):
            r = await client.get(
                "/api/v1/admin/audit", params={**params, "account": rid}, headers=admin.headers
            )
            assert r.status_code == 200 and len(r.json()["items"]) == expected, params


@pytest.mark.parametrize(
    "params",
    [
        {"account": "abc"},
        {"account": "0"},
        {"from": "yesterday"},
        {"to": "2026-13-01T00:00:00+08:00"},
        {"cursor": "not-a-cursor"},
        {"limit": "0"},
        {"actor": "1"},
    ],
)
async def test_audit_refuses_bad_filters_with_422(client, admin, params):
    r = await client.get("/api/v1/admin/audit", params=params, headers=admin.headers)
    assert r.status_code == 422, r.text


async def test_audit_is_for_admins_only(client, clerk):
    assert (await client.get("/api/v1/admin/audit")).status_code == 401
    assert (await client.get("/api/v1/admin/audit", headers=clerk.headers)).status_code == 403
