"""SECURITY row 9 for identity: strict schemas. Unknown fields are refused, clients never set role, level,
status or owner, and a refused body changes nothing."""

from __future__ import annotations

import pytest

from models.identity import Account, RealNameRecord
from tests.support.people import ZHANG, bearer, sms_sign_in


async def test_real_name_with_a_level_of_its_own_is_422_and_changes_nothing(client):
    tokens = await sms_sign_in(client, ZHANG["phone"])
    r = await client.post(
        "/api/v1/me/real-name",
        json={"name": ZHANG["name"], "id_number": ZHANG["id_number"], "real_name_level": 3},
        headers=bearer(tokens),
    )
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "real_name_level", "message": "不允许的字段"}]
    assert await RealNameRecord.all().count() == 0
    assert (await Account.get(id=tokens["account"]["id"])).real_name_level == 1


async def test_admin_accounts_with_a_resident_role_is_422(client, catalog, admin):
    r = await client.post(
        "/api/v1/admin/accounts", json={"phone": "13600000001", "roles": ["resident"]}, headers=admin.headers
    )
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["roles.0"]
    assert await Account.all().count() == 1


@pytest.mark.parametrize(
    "extra",
    [
        {"roles": ["admin"]},
        {"role": "admin"},
        {"account_id": 1},
        {"real_name_level": 3},
        {"status": "active"},
    ],
)
async def test_a_token_request_cannot_choose_roles_or_accounts(client, extra):
    body = {"grant_type": "sms_code", "phone": ZHANG["phone"], "code": "123456", "channel": "app", **extra}
    r = await client.post("/api/v1/auth/token", json=body)
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == list(extra)


async def test_sms_sign_in_with_roles_in_the_body_creates_no_account(client):
    await client.post("/api/v1/auth/sms-codes", json={"phone": ZHANG["phone"], "purpose": "login"})
    code = (await client.get("/api/v1/sandbox/sms", params={"phone": ZHANG["phone"]})).json()["items"][-1][
        "code"
    ]
    r = await client.post(
        "/api/v1/auth/token",
        json={
            "grant_type": "sms_code",
            "phone": ZHANG["phone"],
            "code": code,
            "channel": "app",
            "roles": ["admin"],
        },
    )
    assert r.status_code == 422
    assert await Account.all().count() == 0


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/api/v1/me/password", {"new_password": "Xinde2026ab", "account_id": 1}),
        ("POST", "/api/v1/me/bindings/wechat", {"code": "abc", "channel": "wechat"}),
        ("POST", "/api/v1/auth/logout", {"refresh_token": "x" * 40, "everywhere": True}),
        ("POST", "/api/v1/auth/sms-codes", {"phone": ZHANG["phone"], "purpose": "login", "template": "x"}),
    ],
)
async def test_every_identity_body_refuses_unknown_fields(client, method, path, body):
    tokens = await sms_sign_in(client, "13900000001")
    r = await client.request(method, path, json=body, headers=bearer(tokens))
    assert r.status_code == 422, r.text
    assert "不允许的字段" in [e["message"] for e in r.json()["errors"]]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/auth/token"),
        ("POST", "/api/v1/auth/logout"),
        ("PUT", "/api/v1/me/password"),
        ("POST", "/api/v1/me/real-name"),
        ("POST", "/api/v1/me/bindings/wechat"),
    ],
)
async def test_identity_bodies_must_be_json(client, method, path):
    tokens = await sms_sign_in(client, "13900000001")
    r = await client.request(
        method,
        path,
        content=b"grant_type=password",
        headers={**bearer(tokens), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 415
