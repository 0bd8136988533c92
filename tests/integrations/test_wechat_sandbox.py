"""The in-process WeChat sandbox: one-time OAuth codes, its own access token and JS-SDK ticket, the menu,
deterministic QR tickets, recorded template, customer-service, mass and subscribe messages."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from fakeredis import FakeAsyncRedis
from fakeredis import FakeServer as FakeRedisServer

from integrations.wechat import InvalidWeChatCode, SandboxWeChat, WeChatError, WeChatIdentity
from integrations.wechat.sandbox import sandbox_qr_ticket

APP_ID = "wx0000000000sandbox"
OPENID = re.compile(r"^o[A-Za-z0-9_\-]{27}$")


async def test_code_is_single_use(redis: FakeAsyncRedis) -> None:
    wechat = SandboxWeChat(redis, APP_ID)
    code, openid = await wechat.issue_oauth_code()
    assert OPENID.match(openid)
    assert await wechat.oauth_identity(code) == WeChatIdentity(openid=openid, unionid=None)
    with pytest.raises(InvalidWeChatCode):
        await wechat.oauth_identity(code)


async def test_unknown_and_garbage_codes(redis: FakeAsyncRedis) -> None:
    wechat = SandboxWeChat(redis, APP_ID)
    for code in ("never-issued", "", "a b", "x" * 500):
        with pytest.raises(InvalidWeChatCode):
            await wechat.oauth_identity(code)


async def test_code_belongs_to_its_app(redis: FakeAsyncRedis) -> None:
    code, _ = await SandboxWeChat(redis, APP_ID).issue_oauth_code()
    with pytest.raises(InvalidWeChatCode):
        await SandboxWeChat(redis, "wxOtherApp").oauth_identity(code)


async def test_code_expires_in_five_minutes(redis: FakeAsyncRedis) -> None:
    wechat = SandboxWeChat(redis, APP_ID)
    code, _ = await wechat.issue_oauth_code()
    [key] = await redis.keys(f"sandbox:wechat:oauth_code:{APP_ID}:*")
    assert key.decode().endswith(code)
    assert 295 <= await redis.ttl(key) <= 300
    await redis.delete(key)  # what expiry does
    with pytest.raises(InvalidWeChatCode):
        await wechat.oauth_identity(code)


async def test_given_openid_and_unionid(redis: FakeAsyncRedis) -> None:
    wechat = SandboxWeChat(redis, APP_ID)
    code, openid = await wechat.issue_oauth_code(openid="oGivenOpenId", unionid="uGivenUnion")
    assert openid == "oGivenOpenId"
    assert await wechat.oauth_identity(code) == WeChatIdentity("oGivenOpenId", "uGivenUnion")


async def test_openids_are_distinct_and_deterministic(redis: FakeAsyncRedis) -> None:
    wechat = SandboxWeChat(redis, APP_ID)
    first = [(await wechat.issue_oauth_code())[1] for _ in range(3)]
    assert len(set(first)) == 3
    fresh = FakeAsyncRedis(server=FakeRedisServer())
    try:
        again = [(await SandboxWeChat(fresh, APP_ID).issue_oauth_code())[1] for _ in range(3)]
    finally:
        await fresh.aclose()
    assert again == first
    code_a, _ = await wechat.issue_oauth_code(openid=first[0])
    code_b, _ = await wechat.issue_oauth_code(openid=first[0])
    assert code_a != code_b  # codes are random, only openids are seeded


async def test_access_token_is_stable(redis: FakeAsyncRedis) -> None:
    wechat = SandboxWeChat(redis, APP_ID)
    token = await wechat.access_token()
    assert token and await wechat.access_token() == token
    assert await SandboxWeChat(redis, APP_ID).access_token() == token  # shared through Redis
    assert await SandboxWeChat(redis, "wxOtherApp").access_token() != token


async def test_template_messages_recorded(redis: FakeAsyncRedis) -> None:
    wechat = SandboxWeChat(redis, APP_ID)
    first = await wechat.send_template("oAlice", "TPL_ACCEPTED", {"keyword1": "YWT1"}, url="https://h5/a/1")
    second = await wechat.send_template("oAlice", "TPL_DONE", {"keyword1": "YWT1"})
    await wechat.send_template("oBob", "TPL_DONE", {"keyword1": "YWT2"})
    assert int(second) > int(first)

    messages = await wechat.messages_to("oAlice")
    assert [(m["template_id"], m["msgid"]) for m in messages] == [
        ("TPL_ACCEPTED", first),
        ("TPL_DONE", second),
    ]
    assert messages[0]["data"] == {"keyword1": "YWT1"}
    assert messages[0]["url"] == "https://h5/a/1" and messages[1]["url"] is None
    assert messages[0]["sent_at"].endswith("+08:00")
    assert [m["openid"] for m in await wechat.messages_to("oBob")] == ["oBob"]
    assert await wechat.messages_to("oNobody") == []
    assert 0 < await redis.ttl("sandbox:wechat:messages:oAlice") <= 24 * 3600


async def test_a_client_msg_id_is_sent_once_within_ten_minutes(redis: FakeAsyncRedis) -> None:
    wechat = SandboxWeChat(redis, APP_ID)
    first = await wechat.send_template("oAlice", "TPL_DONE", {"keyword1": "YWT1"}, client_msg_id="ywt-d1")
    again = await wechat.send_template("oAlice", "TPL_DONE", {"keyword1": "YWT1"}, client_msg_id="ywt-d1")
    assert again == first
    assert len(await wechat.messages_to("oAlice")) == 1
    assert 0 < await redis.ttl(f"sandbox:wechat:client_msg_id:{APP_ID}:ywt-d1") <= 600
    other = await wechat.send_template("oAlice", "TPL_DONE", {"keyword1": "YWT1"}, client_msg_id="ywt-d2")
    assert other != first and len(await wechat.messages_to("oAlice")) == 2


async def test_jsapi_ticket_is_stable_and_shared(redis: FakeAsyncRedis) -> None:
    wechat = SandboxWeChat(redis, APP_ID)
    ticket = await wechat.jsapi_ticket()
    assert re.match(r"^sandbox-ticket-[A-Za-z0-9_\-]{43}$", ticket)
    assert await wechat.jsapi_ticket() == ticket
    assert await SandboxWeChat(redis, APP_ID).jsapi_ticket() == ticket
    assert await SandboxWeChat(redis, "wxOtherApp").jsapi_ticket() != ticket
    assert ticket != await wechat.access_token()
    assert 0 < await redis.ttl(f"sandbox:wechat:jsapi_ticket:{APP_ID}") <= 7200 - 300


async def test_menu_kept(redis: FakeAsyncRedis) -> None:
    wechat = SandboxWeChat(redis, APP_ID)
    assert await wechat.menu() is None
    menu = {"button": [{"type": "view", "name": "办事指南", "url": "https://h5/items"}]}
    await wechat.create_menu(menu)
    assert await wechat.menu() == menu
    assert await SandboxWeChat(redis, "wxOtherApp").menu() is None
    newer = {"button": [{"type": "click", "name": "联系客服", "key": "CONTACT"}]}
    await wechat.create_menu(newer)
    assert await wechat.menu() == newer


@pytest.mark.parametrize(
    ("menu", "errcode"),
    [
        ({"button": []}, 40016),
        ({"button": [{"type": "click", "name": f"b{i}", "key": "k"} for i in range(4)]}, 40016),
        ({}, 40016),
        (
            {"button": [{"name": "我的", "sub_button": [{"type": "click", "name": "s", "key": "k"}] * 6}]},
            40023,
        ),
    ],
)
async def test_menu_refused_as_wechat_would(redis: FakeAsyncRedis, menu: dict, errcode: int) -> None:
    wechat = SandboxWeChat(redis, APP_ID)
    kept = {"button": [{"type": "click", "name": "联系客服", "key": "CONTACT"}]}
    await wechat.create_menu(kept)
    with pytest.raises(WeChatError) as err:
        await wechat.create_menu(menu)
    assert err.value.errcode == errcode
    assert await wechat.menu() == kept


async def test_qr_tickets_are_deterministic(redis: FakeAsyncRedis) -> None:
    wechat = SandboxWeChat(redis, APP_ID)
    qr = await wechat.create_qr("point:360502-001")
    assert qr == await wechat.create_qr("point:360502-001")
    assert qr.ticket == sandbox_qr_ticket(APP_ID, "point:360502-001")
    assert qr.image_url == "https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=" + quote(qr.ticket, safe="")
    assert qr.url.startswith("http://weixin.qq.com/q/")
    assert (await wechat.create_qr("point:360502-002")).ticket != qr.ticket
    assert (await SandboxWeChat(redis, "wxOtherApp").create_qr("point:360502-001")).ticket != qr.ticket
    assert (await wechat.create_qr("x" * 64)).ticket
    for scene in ("", "x" * 65):
        with pytest.raises(ValueError):
            await wechat.create_qr(scene)


async def test_custom_messages_recorded(redis: FakeAsyncRedis) -> None:
    wechat = SandboxWeChat(redis, APP_ID)
    text = {"msgtype": "text", "text": {"content": "您的办件已办结"}}
    news = {
        "msgtype": "news",
        "news": {"articles": [{"title": "指南", "description": "d", "url": "https://h5/1"}]},
    }
    await wechat.send_custom("oAlice", text)
    await wechat.send_custom("oAlice", news)
    await wechat.send_custom("oBob", text)
    messages = await wechat.custom_messages_to("oAlice")
    assert [m["message"] for m in messages] == [text, news]
    assert messages[0]["openid"] == "oAlice" and messages[0]["sent_at"].endswith("+08:00")
    assert len(await wechat.custom_messages_to("oBob")) == 1
    assert await wechat.messages_to("oAlice") == []  # not template messages
    for bad in ({}, {"msgtype": "text"}, {"touser": "oBob", "msgtype": "text", "text": {"content": "x"}}):
        with pytest.raises(ValueError):
            await wechat.send_custom("oAlice", bad)
    assert len(await wechat.custom_messages_to("oAlice")) == 2


async def test_mass_send_recorded_once_per_clientmsgid(redis: FakeAsyncRedis) -> None:
    wechat = SandboxWeChat(redis, APP_ID)
    first = await wechat.mass_send_text(["oAlice", "oBob"], "停水通知", "ywt-a1")
    assert await wechat.mass_send_text(["oAlice", "oBob"], "停水通知", "ywt-a1") == first
    other = await wechat.mass_send_text(["oAlice", "oCarol"], "停电通知", "ywt-a2")
    assert other != first
    sent = await wechat.mass_messages()
    assert [(m["msg_id"], m["openids"], m["content"]) for m in sent] == [
        (first, ["oAlice", "oBob"], "停水通知"),
        (other, ["oAlice", "oCarol"], "停电通知"),
    ]
    ttl = await redis.ttl(f"sandbox:wechat:mass_clientmsgid:{APP_ID}:ywt-a1")
    assert 24 * 3600 - 5 <= ttl <= 24 * 3600
    for openids, content, clientmsgid in (
        (["oAlice"], "x", "c"),
        (["oA", "oB"], "", "c"),
        (["oA", "oB"], "x", ""),
    ):
        with pytest.raises(ValueError):
            await wechat.mass_send_text(openids, content, clientmsgid)
    assert len(await wechat.mass_messages()) == 2


async def test_subscribe_messages_recorded(redis: FakeAsyncRedis) -> None:
    wechat = SandboxWeChat(redis, APP_ID)
    await wechat.send_subscribe("oAlice", "SUB_1", {"thing1": "身份证换领"}, page="pages/case?id=1")
    await wechat.send_subscribe("oAlice", "SUB_2", {"thing1": "x"})
    messages = await wechat.subscribe_messages_to("oAlice")
    assert [(m["template_id"], m["data"], m["page"]) for m in messages] == [
        ("SUB_1", {"thing1": "身份证换领"}, "pages/case?id=1"),
        ("SUB_2", {"thing1": "x"}, None),
    ]
    assert await wechat.subscribe_messages_to("oBob") == []
    with pytest.raises(ValueError):
        await wechat.send_subscribe("", "SUB_1", {})
