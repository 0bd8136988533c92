"""The in-process WeChat sandbox: one-time OAuth codes, its own access token, recorded template messages."""

from __future__ import annotations

import re

import pytest
from fakeredis import FakeAsyncRedis
from fakeredis import FakeServer as FakeRedisServer

from integrations.wechat import InvalidWeChatCode, SandboxWeChat, WeChatIdentity

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
