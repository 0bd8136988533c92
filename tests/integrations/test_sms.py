"""SMS: the Redis-backed sandbox and the HTTP client against a fake provider on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from fakeredis import FakeAsyncRedis

from api.kit.errors import UpstreamError, UpstreamTimeout
from integrations.http import make_client
from integrations.sms import TEMPLATES, HttpSms, SandboxSms, render
from tests.integrations.fakeserver import FakeServer, Reply
from tests.support.settings import settings_for

API_KEY = "sms-key-0d5f9c2e-never-shown"
SEND = "/v1/sms/send"


# ---- templates and sandbox --------------------------------------------------------------------------


def test_templates_render_with_sign_and_code() -> None:
    assert set(TEMPLATES) >= {"login_code", "reset_password_code", "bind_code"}
    assert (
        render("login_code", "新余一网通", {"code": "123456"})
        == "【新余一网通】您的登录验证码为123456，5分钟内有效。请勿泄露给他人。"
    )
    for name in ("reset_password_code", "bind_code"):
        text = render(name, "新余一网通", {"code": "654321"})
        assert text.startswith("【新余一网通】") and "654321" in text


def test_unknown_template_or_missing_parameter_is_a_bug() -> None:
    with pytest.raises(ValueError):
        render("no_such_template", "s", {"code": "1"})
    with pytest.raises(ValueError):
        render("login_code", "s", {})


async def test_sandbox_records_and_lists_messages(redis: FakeAsyncRedis) -> None:
    sms = SandboxSms(redis, "新余一网通")
    first = await sms.send("13800000001", "login_code", {"code": "123456"})
    second = await sms.send("13800000001", "bind_code", {"code": "222222"})
    await sms.send("13800000002", "login_code", {"code": "999999"})
    assert first and second and first != second

    messages = await sms.sent_to("13800000001")
    assert [m["code"] for m in messages] == ["123456", "222222"]  # newest last
    assert messages[0]["phone"] == "13800000001"
    assert messages[0]["text"] == "【新余一网通】您的登录验证码为123456，5分钟内有效。请勿泄露给他人。"
    sent_at = datetime.fromisoformat(messages[0]["sent_at"])
    assert sent_at.utcoffset() == timedelta(hours=8)
    assert abs(sent_at.timestamp() - time.time()) < 5
    assert set(messages[0]) == {"phone", "text", "code", "sent_at"}

    assert [m["code"] for m in await sms.sent_to("13800000002")] == ["999999"]
    assert await sms.sent_to("13800000009") == []
    assert 0 < await redis.ttl("sandbox:sms:13800000001") <= 24 * 3600


async def test_sandbox_keeps_the_last_fifty(redis: FakeAsyncRedis) -> None:
    sms = SandboxSms(redis, "签名")
    for i in range(53):
        await sms.send("13800000001", "login_code", {"code": f"{i:06d}"})
    codes = [m["code"] for m in await sms.sent_to("13800000001")]
    assert len(codes) == 50
    assert codes[0] == "000003" and codes[-1] == "000052"


async def test_sandbox_refuses_unknown_template(redis: FakeAsyncRedis) -> None:
    sms = SandboxSms(redis, "签名")
    with pytest.raises(ValueError):
        await sms.send("13800000001", "nope", {"code": "1"})
    assert await sms.sent_to("13800000001") == []


# ---- HTTP client ------------------------------------------------------------------------------------


@pytest.fixture
async def http_sms(fake: FakeServer) -> AsyncIterator[HttpSms]:
    settings = settings_for(
        SMS__PROVIDER="http", SMS__BASE_URL=fake.url, SMS__API_KEY=API_KEY, SMS__TIMEOUT="0.3"
    )
    sms = HttpSms(settings.sms)
    yield sms
    await sms.aclose()


async def test_http_send_success_and_request(fake: FakeServer, http_sms: HttpSms) -> None:
    fake.route("POST", SEND, Reply(200, {"message_id": "msg-42"}))
    assert await http_sms.send("13800000001", "login_code", {"code": "123456"}) == "msg-42"
    [seen] = fake.hits(SEND)
    assert seen.method == "POST"
    assert seen.query == {}
    assert seen.headers["authorization"] == f"Bearer {API_KEY}"
    assert seen.headers["content-type"].startswith("application/json")
    assert seen.json() == {
        "phone": "13800000001",
        "template": "login_code",
        "params": {"code": "123456"},
        "sign_name": "新余一网通",
    }


async def test_http_base_url_path_prefix_is_kept(fake: FakeServer) -> None:
    fake.route("POST", "/gateway" + SEND, Reply(200, {"message_id": "m"}))
    settings = settings_for(SMS__PROVIDER="http", SMS__BASE_URL=fake.url + "/gateway", SMS__API_KEY=API_KEY)
    async with make_client(settings.sms.base_url, 1) as client:
        assert await HttpSms(settings.sms, client).send("13800000001", "login_code", {"code": "1"}) == "m"


@pytest.mark.parametrize("status", [400, 401, 429, 500])
async def test_http_error_status(fake: FakeServer, http_sms: HttpSms, status: int) -> None:
    fake.route("POST", SEND, Reply(status, {"message_id": "msg-42"}))
    with pytest.raises(UpstreamError) as err:
        await http_sms.send("13800000001", "login_code", {"code": "123456"})
    assert API_KEY not in str(err.value)


@pytest.mark.parametrize(
    "reply",
    [
        Reply(200, body=b"OK"),
        Reply(200, body=b'{"message_id": '),
        Reply(200, {"id": "msg-42"}),
        Reply(200, {"message_id": 42}),
        Reply(200, {"message_id": ""}),
        Reply(200, ["msg-42"]),
    ],
)
async def test_http_malformed_answer(fake: FakeServer, http_sms: HttpSms, reply: Reply) -> None:
    fake.route("POST", SEND, reply)
    with pytest.raises(UpstreamError):
        await http_sms.send("13800000001", "login_code", {"code": "123456"})


@pytest.mark.parametrize(
    "first", [Reply(503, {}), Reply(drop=True), Reply(200, {"message_id": "late"}, delay=1)]
)
async def test_http_send_is_never_repeated(fake: FakeServer, http_sms: HttpSms, first: Reply) -> None:
    """An SMS that may have gone out is not sent again: a POST gets one try."""
    fake.route("POST", SEND, first)
    with pytest.raises((UpstreamError, UpstreamTimeout)):
        await http_sms.send("13800000001", "login_code", {"code": "123456"})
    assert len(fake.hits(SEND)) == 1


async def test_http_slow_answer(fake: FakeServer, http_sms: HttpSms) -> None:
    fake.route("POST", SEND, Reply(200, {"message_id": "late"}, delay=3))
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        await http_sms.send("13800000001", "login_code", {"code": "123456"})
    assert time.monotonic() - started < 1.0


async def test_http_redirect_not_followed(fake: FakeServer, http_sms: HttpSms) -> None:
    fake.route("POST", SEND, Reply(307, {}, headers={"Location": "/elsewhere"}))
    fake.route("POST", "/elsewhere", Reply(200, {"message_id": "stolen"}))
    with pytest.raises(UpstreamError):
        await http_sms.send("13800000001", "login_code", {"code": "123456"})
    assert fake.hits("/elsewhere") == []


async def test_http_oversize_answer(fake: FakeServer, http_sms: HttpSms) -> None:
    # valid JSON of the right shape, only too big
    fake.route("POST", SEND, Reply(200, {"message_id": "m" * 1_200_000}, content_length=False))
    with pytest.raises(UpstreamError, match="过大"):
        await http_sms.send("13800000001", "login_code", {"code": "123456"})


async def test_http_unknown_template_sends_nothing(fake: FakeServer, http_sms: HttpSms) -> None:
    fake.route("POST", SEND, Reply(200, {"message_id": "m"}))
    with pytest.raises(ValueError):
        await http_sms.send("13800000001", "no_such_template", {"code": "1"})
    assert fake.hits(SEND) == []
