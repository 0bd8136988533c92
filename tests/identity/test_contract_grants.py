"""Contract: the token endpoint's body is one shape per grant_type, and the OpenAPI document says which
fields each grant needs; refresh tokens expire on the clock, whatever zone the clock reads in."""

from __future__ import annotations

from datetime import UTC, timedelta

from api.kit import clock
from tests.support.people import sms_sign_in

TOKEN = "/api/v1/auth/token"

GRANTS = {
    "sms_code": ("SmsCodeGrant", {"grant_type", "phone", "code", "channel"}),
    "password": ("PasswordGrant", {"grant_type", "phone", "password", "channel"}),
    "wechat_code": ("WeChatCodeGrant", {"grant_type", "code", "channel"}),
    "wechat_ticket": ("WeChatTicketGrant", {"grant_type", "ticket", "channel"}),
    "refresh_token": ("RefreshTokenGrant", {"grant_type", "refresh_token"}),
}


async def test_openapi_shows_each_grant_with_the_fields_it_needs(client):
    spec = (await client.get("/docs/openapi.json")).json()
    body = spec["paths"][TOKEN]["post"]["requestBody"]["content"]["application/json"]["schema"]
    schemas = spec["components"]["schemas"]
    union = schemas[body["$ref"].rsplit("/", 1)[-1]]
    assert union["discriminator"]["propertyName"] == "grant_type"
    assert union["discriminator"]["mapping"] == {
        grant: f"#/components/schemas/{name}" for grant, (name, _) in GRANTS.items()
    }
    assert sorted(o["$ref"] for o in union["oneOf"]) == sorted(
        f"#/components/schemas/{name}" for name, _ in GRANTS.values()
    )
    for grant, (name, required) in GRANTS.items():
        member = schemas[name]
        assert set(member["required"]) == required, name
        assert member["properties"]["grant_type"]["enum"] == [grant]
        assert member["additionalProperties"] is False
        assert "const" not in str(member)  # OpenAPI 3.0 has no const
    assert schemas["WeChatCodeGrant"]["properties"]["channel"]["enum"] == ["wechat"]
    assert schemas["SmsCodeGrant"]["properties"]["binding_ticket"]["nullable"] is True


async def test_an_unknown_grant_type_names_the_ones_there_are(client):
    r = await client.post(TOKEN, json={"grant_type": "client_credentials", "code": "x"})
    assert r.status_code == 422, r.text
    [error] = r.json()["errors"]
    assert error["field"] == "grant_type"
    for grant in GRANTS:
        assert grant in error["message"]


async def test_fields_of_another_grant_are_refused(client):
    r = await client.post(
        TOKEN, json={"grant_type": "refresh_token", "refresh_token": "x" * 20, "phone": "13800000001"}
    )
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["phone"]


async def _refresh(client, token: str) -> int:
    r = await client.post(TOKEN, json={"grant_type": "refresh_token", "refresh_token": token})
    return r.status_code


async def test_a_refresh_token_works_until_it_expires_and_not_after(client, settings):
    ttl = timedelta(days=settings.security.refresh_ttl_days)
    before = await sms_sign_in(client, "13800000301")
    after = await sms_sign_in(client, "13800000302")
    issued = clock.now()
    try:
        clock.use(lambda: issued + ttl - timedelta(minutes=1))
        assert await _refresh(client, before["refresh_token"]) == 200
        # the same instant told in UTC: aware times compare as instants, whatever their zone
        clock.use(lambda: (issued + ttl + timedelta(minutes=1)).astimezone(UTC))
        assert await _refresh(client, after["refresh_token"]) == 401
    finally:
        clock.use(None)
