"""Contract: DELETE /me takes fresh proof in the same request (issue 8) — {"password"} or {"sms_code"} of a
code sent for purpose delete_account, exactly one. Wrong or missing proof is a 4xx and deletes nothing."""

from __future__ import annotations

import pytest

from models import identity as db
from models.notifications import Device
from tests.support.people import (
    LI,
    SMS,
    ZHANG,
    bearer,
    end_cooldown,
    last_code,
    other_code,
    request_code,
    sms_sign_in,
)
from tests.support.proof import delete_code, delete_me, delete_with_code
from tests.support.security import ME, assert_problem

PASSWORD = "Zhuxiao2026"


async def _alive(account_id: int) -> bool:
    account = await db.account_by_id(account_id)
    return account is not None and account.status == "active"


async def test_with_a_fresh_delete_account_code(client, app):
    tokens = await sms_sign_in(client, ZHANG["phone"])
    device = {"registration_id": "zhang-phone", "platform": "android", "app_version": "3.2.0"}
    assert (await client.post(ME + "/devices", json=device, headers=bearer(tokens))).status_code == 201
    r = await delete_with_code(client, app, ZHANG["phone"], bearer(tokens))
    assert r.status_code == 204, r.text
    assert not await _alive(tokens["account"]["id"])
    # the device that took its pushes is gone with the account's other personal data
    assert not await Device.filter(registration_id="zhang-phone").exists()
    assert_problem(await client.get(ME, headers=bearer(tokens)), 401, "invalid_token")


async def test_with_the_password(client):
    tokens = await sms_sign_in(client, ZHANG["phone"])
    assert (
        await client.put(ME + "/password", json={"new_password": PASSWORD}, headers=bearer(tokens))
    ).status_code == 204
    r = await delete_me(client, bearer(tokens), {"password": PASSWORD})
    assert r.status_code == 204, r.text
    assert not await _alive(tokens["account"]["id"])


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        (None, 415, None),  # no body at all
        ({}, 422, "password"),
        ({"password": "Zhuxiao2026", "sms_code": "123456"}, 422, "password"),
        ({"sms_code": "12345"}, 422, "sms_code"),
        ({"password": ""}, 422, "password"),
        ({"password": "Zhuxiao2026", "reason": "bye"}, 422, "reason"),
    ],
)
async def test_missing_or_malformed_proof_deletes_nothing(client, body, status, field):
    tokens = await sms_sign_in(client, ZHANG["phone"])
    if body is None:
        r = await client.delete(ME, headers=bearer(tokens))
    else:
        r = await delete_me(client, bearer(tokens), body)
    problem = assert_problem(r, status)
    if field:
        assert field in [e["field"] for e in problem["errors"]]
    assert await _alive(tokens["account"]["id"])
    assert (await client.get(ME, headers=bearer(tokens))).status_code == 200


async def test_a_wrong_password_deletes_nothing(client):
    tokens = await sms_sign_in(client, ZHANG["phone"])
    await client.put(ME + "/password", json={"new_password": PASSWORD}, headers=bearer(tokens))
    r = await delete_me(client, bearer(tokens), {"password": "Cuowu2026xx"})
    problem = assert_problem(r, 422, "wrong_password")
    assert problem["errors"] == [{"field": "password", "message": "不正确"}]
    assert await _alive(tokens["account"]["id"])


async def test_a_password_for_an_account_without_one_deletes_nothing(client):
    tokens = await sms_sign_in(client, ZHANG["phone"])
    assert_problem(
        await delete_me(client, bearer(tokens), {"password": "Anything2026"}), 422, "wrong_password"
    )
    assert await _alive(tokens["account"]["id"])


async def test_a_wrong_or_other_purpose_code_deletes_nothing(client, app):
    tokens = await sms_sign_in(client, ZHANG["phone"])
    code = await delete_code(client, app, ZHANG["phone"])
    r = await delete_me(client, bearer(tokens), {"sms_code": other_code(code)})
    problem = assert_problem(r, 422, "invalid_code")
    assert [e["field"] for e in problem["errors"]] == ["sms_code"]
    # a login code is not a deletion code
    await end_cooldown(app, ZHANG["phone"])
    login = await request_code(client, ZHANG["phone"], "login")
    assert_problem(await delete_me(client, bearer(tokens), {"sms_code": login}), 422, "invalid_code")
    assert await _alive(tokens["account"]["id"])
    # the right code still works (a wrong try does not burn it at once)
    assert (await delete_me(client, bearer(tokens), {"sms_code": code})).status_code == 204


async def test_another_accounts_code_does_not_delete_mine(client, app):
    zhang = await sms_sign_in(client, ZHANG["phone"])
    await sms_sign_in(client, LI["phone"])
    li_code = await delete_code(client, app, LI["phone"])
    assert_problem(await delete_me(client, bearer(zhang), {"sms_code": li_code}), 422, "invalid_code")
    assert await _alive(zhang["account"]["id"])


async def test_a_delete_account_code_goes_only_to_an_active_account(client, app):
    """The answer is the same for any phone; the SMS goes out only when there is an account to delete."""
    r = await client.post(SMS, json={"phone": "13600000301", "purpose": "delete_account"})
    assert r.status_code == 202
    sent = await client.get("/api/v1/sandbox/sms", params={"phone": "13600000301"})
    assert sent.json()["items"] == []
    await sms_sign_in(client, ZHANG["phone"])
    await end_cooldown(app, ZHANG["phone"])
    r = await client.post(SMS, json={"phone": ZHANG["phone"], "purpose": "delete_account"})
    assert r.status_code == 202
    assert len(await last_code(client, ZHANG["phone"])) == 6


async def test_the_openapi_body_of_delete_me_is_the_proof(client):
    spec = (await client.get("/docs/openapi.json")).json()
    body = spec["paths"]["/api/v1/me"]["delete"]["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/DeleteAccountIn"}
    proofs = spec["components"]["schemas"]["DeleteAccountIn"]["anyOf"]
    assert proofs == [
        {"$ref": "#/components/schemas/PasswordProof"},
        {"$ref": "#/components/schemas/SmsCodeProof"},
    ]


async def test_password_guesses_through_delete_count_against_the_sign_in_limit(client, app, monkeypatch):
    """A stolen access token is no way round the per-phone sign-in limit to guess the password."""
    security = app.ctx.services.kernel.settings.security
    monkeypatch.setitem(security.__dict__, "token_max_per_phone_per_hour", 3)
    tokens = await sms_sign_in(client, ZHANG["phone"])  # one sign-in counted
    await client.put(ME + "/password", json={"new_password": PASSWORD}, headers=bearer(tokens))
    for _ in range(2):
        r = await delete_me(client, bearer(tokens), {"password": "Cuowu2026xx"})
        assert_problem(r, 422, "wrong_password")
    r = await delete_me(client, bearer(tokens), {"password": PASSWORD})
    assert_problem(r, 429, "rate_limited")
    assert r.headers["retry-after"]
    assert await _alive(tokens["account"]["id"])


async def test_old_password_guesses_count_against_the_sign_in_limit(client, app, monkeypatch):
    """A stolen access token is no way round the per-phone sign-in limit through PUT /me/password either."""
    security = app.ctx.services.kernel.settings.security
    monkeypatch.setitem(security.__dict__, "token_max_per_phone_per_hour", 3)
    tokens = await sms_sign_in(client, ZHANG["phone"])  # one sign-in counted
    await client.put(ME + "/password", json={"new_password": PASSWORD}, headers=bearer(tokens))
    for _ in range(2):
        r = await client.put(
            ME + "/password",
            json={"old_password": "Cuowu2026xx", "new_password": "Xin2026mima"},
            headers=bearer(tokens),
        )
        assert_problem(r, 422, "wrong_password")
    r = await client.put(
        ME + "/password",
        json={"old_password": PASSWORD, "new_password": "Xin2026mima"},
        headers=bearer(tokens),
    )
    assert_problem(r, 429, "rate_limited")
    assert r.headers["retry-after"]
