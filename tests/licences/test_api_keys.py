"""API keys of other city systems (POST/GET/DELETE /admin/api-keys) verifying presentations with X-API-Key; the
verification rate limits per verifier and per address (SECURITY rows 12, 13)."""

from __future__ import annotations

import hashlib

import pytest

from models.apikeys import ApiKey
from models.licences import LicenceVerification
from tests.licences.conftest import licences_of, present, verify
from tests.support.security import assert_problem

pytestmark = pytest.mark.usefixtures("catalog")

KEYS = "/api/v1/admin/api-keys"


async def make_key(client, admin, **body) -> dict:
    r = await client.post(
        KEYS,
        json={"name": "工商银行新余分行柜面系统", "scopes": ["licences:verify"], **body},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    return r.json()


async def test_a_key_is_shown_once_and_kept_hashed(client, admin):
    made = await make_key(client, admin, rate_limit=300)
    assert made["key"].startswith("ywt_") and made["prefix"] == made["key"][:12]
    row = await ApiKey.get(id=made["id"])
    assert row.key_hash == hashlib.sha256(made["key"].encode()).hexdigest() and made["key"] not in str(
        row.__dict__
    )
    listed = (await client.get(KEYS, headers=admin.headers)).json()["items"]
    assert [k["id"] for k in listed] == [made["id"]] and "key" not in listed[0]
    assert listed[0]["scopes"] == ["licences:verify"] and listed[0]["rate_limit"] == 300


async def test_only_admins_manage_keys(client, people):
    staff = await people.staff()
    assert_problem(await client.get(KEYS, headers=staff.headers), 403)
    assert_problem(await client.post(KEYS, json={"name": "某系统", "scopes": ["licences:verify"]}), 401)
    r = await client.post(
        KEYS, json={"name": "某系统", "scopes": ["everything"]}, headers=(await people.admin()).headers
    )
    assert_problem(r, 422)


async def test_a_system_verifies_with_its_key_and_sees_masked_values(client, zhang, admin, library):
    made = await make_key(client, admin)
    mine = await licences_of(client, zhang.headers)
    shown = await present(client, zhang.headers, mine["id_card"]["id"], fields=["holder", "number"])
    r = await verify(client, {"X-API-Key": made["key"]}, shown["token"])
    assert r.status_code == 200, r.text
    licence = r.json()["licence"]
    assert (
        r.json()["valid"] is True and licence["holder"] == "张*" and licence["number"] == "3605**********2015"
    )
    row = await LicenceVerification.get(verifier_key_id=made["id"])
    assert row.verifier_role == "api_key" and row.verifier_account_id is None and row.valid
    history = (
        await client.get(f"/api/v1/licences/{mine['id_card']['id']}/verifications", headers=zhang.headers)
    ).json()
    assert history["items"][0]["verifier"] == "工商银行新余分行柜面系统"


async def test_a_key_without_the_scope_is_403_and_a_revoked_one_401(client, zhang, admin, library):
    mine = await licences_of(client, zhang.headers)
    shown = await present(client, zhang.headers, mine["id_card"]["id"])
    # a key made for another purpose (a later issue's scope)
    other = "ywt_" + "o" * 43
    await ApiKey.create(
        name="统计大屏", prefix=other[:12], key_hash=hashlib.sha256(other.encode()).hexdigest(),
        scopes="stats:read", rate_limit=60,
    )  # fmt: skip
    assert_problem(await verify(client, {"X-API-Key": other}, shown["token"]), 403, "forbidden")
    made = await make_key(client, admin)
    assert (await verify(client, {"X-API-Key": made["key"]}, shown["token"])).status_code == 200
    r = await client.delete(f"{KEYS}/{made['id']}", headers=admin.headers)
    assert r.status_code == 200 and r.json()["revoked_at"]
    assert_problem(await verify(client, {"X-API-Key": made["key"]}, shown["token"]), 401, "unauthorized")
    assert_problem(await verify(client, {"X-API-Key": "ywt_nonsense"}, shown["token"]), 401)
    assert_problem(await client.delete(f"{KEYS}/999", headers=admin.headers), 404, "api_key_not_found")
    listed = (await client.get(KEYS, headers=admin.headers)).json()["items"]
    assert made["id"] not in [k["id"] for k in listed]
    listed = (await client.get(KEYS, params={"include_revoked": "true"}, headers=admin.headers)).json()[
        "items"
    ]
    assert made["id"] in [k["id"] for k in listed]


async def test_a_key_is_held_to_its_own_rate_limit(client, zhang, admin, library):
    made = await make_key(client, admin, rate_limit=2)
    mine = await licences_of(client, zhang.headers)
    shown = await present(client, zhang.headers, mine["id_card"]["id"])
    for _ in range(2):
        assert (await verify(client, {"X-API-Key": made["key"]}, shown["token"])).status_code == 200
    r = await verify(client, {"X-API-Key": made["key"]}, shown["token"])
    assert_problem(r, 429, "rate_limited")
    assert int(r.headers["retry-after"]) >= 1
    assert (
        await LicenceVerification.filter(verifier_key_id=made["id"]).count() == 2
    )  # a refused call is not one


async def test_a_clerk_is_held_to_the_per_verifier_limit(client, app, zhang, people, library, monkeypatch):
    settings = app.ctx.settings.licences
    monkeypatch.setattr(type(settings), "verify_per_minute", property(lambda self: 3), raising=False)
    mine = await licences_of(client, zhang.headers)
    shown = await present(client, zhang.headers, mine["id_card"]["id"])
    staff = await people.staff()
    for _ in range(3):
        assert (await verify(client, staff.headers, shown["token"])).status_code == 200
    assert_problem(await verify(client, staff.headers, shown["token"]), 429)
    other = await people.staff()
    assert (await verify(client, other.headers, shown["token"])).status_code == 200
