"""Contract: POST /api/v1/auth/token with grant_type sms_code | password | wechat_code (refresh_token is
covered by the journey and the security tests)."""

from __future__ import annotations

import pytest

from models.identity import Account, ChannelBinding
from tests.support.people import bearer, end_cooldown, other_code, request_code, sms_sign_in, wechat_code

TOKEN = "/api/v1/auth/token"
PHONE = "13800000001"
OTHER = "13800000002"


def _shape(body: dict) -> dict:
    """A problem body without what differs per request."""
    return {k: v for k, v in body.items() if k != "request_id"}


# ---- sms_code ------------------------------------------------------------------------------------------


async def test_first_sms_sign_in_creates_a_resident(client, app):
    code = await request_code(client, PHONE)
    r = await client.post(
        TOKEN, json={"grant_type": "sms_code", "phone": PHONE, "code": code, "channel": "wechat"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in", "account"}
    assert body["token_type"] == "Bearer" and 0 < body["expires_in"] <= 900
    account = body["account"]
    assert account["roles"] == ["resident"] and account["real_name_level"] == 1
    assert account["phone"] == "138****0001" and account["bindings"] == []
    assert await Account.all().count() == 1
    # the second sign-in finds the same account
    await end_cooldown(app, PHONE)
    again = await sms_sign_in(client, PHONE, channel="app")
    assert again["account"]["id"] == account["id"] and await Account.all().count() == 1


async def test_a_code_is_single_use(client):
    code = await request_code(client, PHONE)
    body = {"grant_type": "sms_code", "phone": PHONE, "code": code, "channel": "app"}
    assert (await client.post(TOKEN, json=body)).status_code == 200
    r = await client.post(TOKEN, json=body)
    assert r.status_code == 401 and r.json()["code"] == "invalid_grant"


async def test_a_wrong_code_answers_exactly_like_a_phone_that_never_asked(client):
    code = await request_code(client, PHONE)
    wrong = await client.post(
        TOKEN, json={"grant_type": "sms_code", "phone": PHONE, "code": other_code(code), "channel": "app"}
    )
    never = await client.post(
        TOKEN, json={"grant_type": "sms_code", "phone": OTHER, "code": other_code(code), "channel": "app"}
    )
    assert wrong.status_code == never.status_code == 401
    assert wrong.json()["code"] == "invalid_grant"
    assert _shape(wrong.json()) == _shape(never.json())
    assert wrong.headers["content-type"] == never.headers["content-type"]
    assert await Account.all().count() == 0


async def test_a_code_asked_for_another_purpose_does_not_sign_in(client):
    code = await request_code(client, PHONE, purpose="bind")
    r = await client.post(
        TOKEN, json={"grant_type": "sms_code", "phone": PHONE, "code": code, "channel": "app"}
    )
    assert r.status_code == 401 and r.json()["code"] == "invalid_grant"


# ---- password ------------------------------------------------------------------------------------------


async def test_password_grant_right_wrong_and_unknown_phone(client):
    tokens = await sms_sign_in(client, PHONE)
    r = await client.put("/api/v1/me/password", json={"new_password": "Mima2026ab"}, headers=bearer(tokens))
    assert r.status_code == 204, r.text

    right = await client.post(
        TOKEN, json={"grant_type": "password", "phone": PHONE, "password": "Mima2026ab", "channel": "app"}
    )
    assert right.status_code == 200, right.text
    assert right.json()["account"]["id"] == tokens["account"]["id"]

    wrong = await client.post(
        TOKEN, json={"grant_type": "password", "phone": PHONE, "password": "Mima2026xx", "channel": "app"}
    )
    unknown = await client.post(
        TOKEN, json={"grant_type": "password", "phone": OTHER, "password": "Mima2026ab", "channel": "app"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["code"] == "invalid_grant"
    assert _shape(wrong.json()) == _shape(unknown.json())


async def test_password_grant_for_an_account_without_a_password_is_invalid_grant(client):
    await sms_sign_in(client, PHONE)
    r = await client.post(
        TOKEN, json={"grant_type": "password", "phone": PHONE, "password": "anything1", "channel": "app"}
    )
    assert r.status_code == 401 and r.json()["code"] == "invalid_grant"


# ---- missing fields per grant --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "missing"),
    [
        ({"grant_type": "sms_code", "phone": PHONE, "channel": "app"}, ["code"]),
        ({"grant_type": "sms_code", "code": "123456", "channel": "app"}, ["phone"]),
        ({"grant_type": "sms_code", "phone": PHONE, "code": "123456"}, ["channel"]),
        ({"grant_type": "password", "phone": PHONE, "channel": "app"}, ["password"]),
        ({"grant_type": "password", "password": "Mima2026ab"}, ["phone", "channel"]),
        ({"grant_type": "wechat_code", "channel": "wechat"}, ["code"]),
        ({"grant_type": "refresh_token"}, ["refresh_token"]),
        ({"phone": PHONE, "code": "123456", "channel": "app"}, ["grant_type"]),
    ],
)
async def test_a_missing_field_of_a_grant_is_422_naming_it(client, body, missing):
    r = await client.post(TOKEN, json=body)
    assert r.status_code == 422, r.text
    assert sorted(e["field"] for e in r.json()["errors"]) == sorted(missing)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"grant_type": "client_credentials"}, "grant_type"),
        ({"grant_type": "sms_code", "phone": PHONE, "code": "123456", "channel": "web"}, "channel"),
        ({"grant_type": "sms_code", "phone": "1380000000", "code": "123456", "channel": "app"}, "phone"),
        (
            {"grant_type": "password", "phone": PHONE, "password": "x", "channel": "app", "role": "admin"},
            "role",
        ),
    ],
)
async def test_a_bad_value_or_an_unknown_field_is_422_naming_it(client, body, field):
    r = await client.post(TOKEN, json=body)
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == [field]


# ---- wechat_code ---------------------------------------------------------------------------------------


async def test_wechat_sign_in_binding_ticket_then_straight_sign_in(client):
    code, openid = await wechat_code(client)

    # 1. an openid no account has: 401 wechat_not_bound with a ticket
    r = await client.post(TOKEN, json={"grant_type": "wechat_code", "code": code, "channel": "wechat"})
    assert r.status_code == 401, r.text
    refused = r.json()
    assert refused["code"] == "wechat_not_bound"
    ticket = refused["binding_ticket"]
    assert isinstance(ticket, str) and len(ticket) >= 20 and refused["binding_ticket_expires_in"] > 0
    assert openid not in r.text

    # 2. SMS sign-in with the ticket creates the account and binds the openid to it
    tokens = await sms_sign_in(client, PHONE, channel="wechat", binding_ticket=ticket)
    account_id = tokens["account"]["id"]
    [binding] = tokens["account"]["bindings"]
    assert binding["channel"] == "wechat" and binding["external_id"] != openid
    assert binding["external_id"] == openid[:4] + "****" + openid[-4:]
    assert await ChannelBinding.filter(account_id=account_id, external_id=openid).exists()

    # 3. a new code for the same openid signs straight in as the same account
    code, _ = await wechat_code(client, openid)
    r = await client.post(TOKEN, json={"grant_type": "wechat_code", "code": code, "channel": "wechat"})
    assert r.status_code == 200, r.text
    assert r.json()["account"]["id"] == account_id
    me = await client.get("/api/v1/me", headers=bearer(r.json()))
    assert me.status_code == 200 and me.json()["id"] == account_id


async def test_the_ticket_binds_to_an_account_that_already_exists(client, app):
    first = await sms_sign_in(client, PHONE)
    code, openid = await wechat_code(client)
    r = await client.post(TOKEN, json={"grant_type": "wechat_code", "code": code, "channel": "wechat"})
    ticket = r.json()["binding_ticket"]
    await end_cooldown(app, PHONE)
    tokens = await sms_sign_in(client, PHONE, channel="wechat", binding_ticket=ticket)
    assert tokens["account"]["id"] == first["account"]["id"]
    assert len(tokens["account"]["bindings"]) == 1


async def test_a_used_or_invalid_wechat_code_is_invalid_grant(client):
    code, _ = await wechat_code(client)
    first = await client.post(TOKEN, json={"grant_type": "wechat_code", "code": code, "channel": "wechat"})
    assert first.status_code == 401 and first.json()["code"] == "wechat_not_bound"
    used = await client.post(TOKEN, json={"grant_type": "wechat_code", "code": code, "channel": "wechat"})
    assert used.status_code == 401 and used.json()["code"] == "invalid_grant"
    assert "binding_ticket" not in used.json()
    for bad in ["never-issued-code", "含有中文", "a" * 256]:
        r = await client.post(TOKEN, json={"grant_type": "wechat_code", "code": bad, "channel": "wechat"})
        assert r.status_code == 401 and r.json()["code"] == "invalid_grant", bad


@pytest.mark.parametrize("channel", ["app", "handheld", None])
async def test_wechat_code_with_another_channel_is_422_and_keeps_the_code(client, channel):
    code, openid = await wechat_code(client)
    body = {"grant_type": "wechat_code", "code": code}
    if channel:
        body["channel"] = channel
    r = await client.post(TOKEN, json=body)
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["channel"]
    # the code was not spent on a refused request
    r = await client.post(TOKEN, json={**body, "channel": "wechat"})
    assert r.status_code == 401 and r.json()["code"] == "wechat_not_bound"


async def test_a_used_or_unknown_binding_ticket_is_422_and_spends_nothing(client, app):
    code, _ = await wechat_code(client)
    ticket = (
        await client.post(TOKEN, json={"grant_type": "wechat_code", "code": code, "channel": "wechat"})
    ).json()["binding_ticket"]
    await sms_sign_in(client, PHONE, channel="wechat", binding_ticket=ticket)

    for phone, given in [(OTHER, ticket), ("13800000003", "x" * 32)]:
        sms = await request_code(client, phone)
        r = await client.post(
            TOKEN,
            json={
                "grant_type": "sms_code",
                "phone": phone,
                "code": sms,
                "channel": "wechat",
                "binding_ticket": given,
            },
        )
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "invalid_binding_ticket"
        assert [e["field"] for e in r.json()["errors"]] == ["binding_ticket"]
        assert not await Account.filter(phone_index=app.ctx.services.identity.phone_index(phone)).exists()
        # the refused ticket did not spend the code: it still signs in, without binding anything
        r = await client.post(
            TOKEN, json={"grant_type": "sms_code", "phone": phone, "code": sms, "channel": "wechat"}
        )
        assert r.status_code == 200, r.text
        assert r.json()["account"]["bindings"] == []
    assert await ChannelBinding.all().count() == 1
