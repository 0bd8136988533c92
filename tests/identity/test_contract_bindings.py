"""Contract: GET /me/bindings, POST /me/bindings/wechat {"code"}, DELETE /me/bindings/wechat."""

from __future__ import annotations

from models.identity import ChannelBinding
from tests.support.people import LI, ZHANG, bearer, sms_sign_in, wechat_code

URL = "/api/v1/me/bindings/wechat"


async def test_no_bindings_at_first(client):
    tokens = await sms_sign_in(client, ZHANG["phone"])
    r = await client.get("/api/v1/me/bindings", headers=bearer(tokens))
    assert r.status_code == 200 and r.json() == {"items": []}


async def test_bind_list_unbind(client):
    tokens = await sms_sign_in(client, ZHANG["phone"])
    auth = bearer(tokens)
    code, openid = await wechat_code(client, unionid="unionid-zhang-0001")
    r = await client.post(URL, json={"code": code}, headers=auth)
    assert r.status_code == 201, r.text
    binding = r.json()
    assert set(binding) == {"channel", "external_id", "has_unionid", "created_at"}
    assert binding["channel"] == "wechat" and binding["has_unionid"] is True
    assert binding["external_id"] == openid[:4] + "****" + openid[-4:]
    assert openid not in r.text

    listed = (await client.get("/api/v1/me/bindings", headers=auth)).json()["items"]
    assert listed == [binding]
    assert (await client.get("/api/v1/me", headers=auth)).json()["bindings"] == [binding]

    # the bound openid now signs in through WeChat
    code, _ = await wechat_code(client, openid)
    r = await client.post(
        "/api/v1/auth/token", json={"grant_type": "wechat_code", "code": code, "channel": "wechat"}
    )
    assert r.status_code == 200 and r.json()["account"]["id"] == tokens["account"]["id"]

    r = await client.delete(URL, headers=auth)
    assert r.status_code == 204
    assert (await client.get("/api/v1/me/bindings", headers=auth)).json() == {"items": []}
    r = await client.delete(URL, headers=auth)
    assert r.status_code == 404 and r.json()["code"] == "binding_not_found"

    # after unbinding, the openid is a stranger again
    code, _ = await wechat_code(client, openid)
    r = await client.post(
        "/api/v1/auth/token", json={"grant_type": "wechat_code", "code": code, "channel": "wechat"}
    )
    assert r.status_code == 401 and r.json()["code"] == "wechat_not_bound"


async def test_a_second_wechat_on_the_same_account_is_409(client):
    tokens = await sms_sign_in(client, ZHANG["phone"])
    code, first = await wechat_code(client)
    assert (await client.post(URL, json={"code": code}, headers=bearer(tokens))).status_code == 201
    code, _ = await wechat_code(client)
    r = await client.post(URL, json={"code": code}, headers=bearer(tokens))
    assert r.status_code == 409 and r.json()["code"] == "wechat_already_bound"
    assert await ChannelBinding.filter(account_id=tokens["account"]["id"]).values_list(
        "external_id", flat=True
    ) == [first]


async def test_an_openid_bound_to_another_account_is_409(client):
    zhang = await sms_sign_in(client, ZHANG["phone"])
    li = await sms_sign_in(client, LI["phone"])
    code, openid = await wechat_code(client)
    assert (await client.post(URL, json={"code": code}, headers=bearer(zhang))).status_code == 201
    code, _ = await wechat_code(client, openid)
    r = await client.post(URL, json={"code": code}, headers=bearer(li))
    assert r.status_code == 409 and r.json()["code"] == "wechat_bound_elsewhere"
    assert await ChannelBinding.filter(account_id=li["account"]["id"]).count() == 0


async def test_a_used_or_unknown_code_is_422_not_a_401_that_would_end_the_session(client):
    tokens = await sms_sign_in(client, ZHANG["phone"])
    code, _ = await wechat_code(client)
    assert (await client.post(URL, json={"code": code}, headers=bearer(tokens))).status_code == 201
    assert (await client.delete(URL, headers=bearer(tokens))).status_code == 204
    for bad in (code, "never-issued"):
        r = await client.post(URL, json={"code": bad}, headers=bearer(tokens))
        assert r.status_code == 422, r.text
        assert r.json()["code"] == "invalid_wechat_code"
        assert [e["field"] for e in r.json()["errors"]] == ["code"]
    assert (await client.get("/api/v1/me", headers=bearer(tokens))).status_code == 200
    assert await ChannelBinding.all().count() == 0


async def test_binding_needs_a_signed_in_caller_and_a_strict_body(client):
    code, _ = await wechat_code(client)
    assert (await client.post(URL, json={"code": code})).status_code == 401
    assert (await client.get("/api/v1/me/bindings")).status_code == 401
    assert (await client.delete(URL)).status_code == 401
    tokens = await sms_sign_in(client, ZHANG["phone"])
    r = await client.post(URL, json={"code": code, "openid": "oAttackerChosen0001"}, headers=bearer(tokens))
    assert r.status_code == 422
    r = await client.post(URL, json={}, headers=bearer(tokens))
    assert r.status_code == 422
