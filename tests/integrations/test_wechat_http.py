"""Our async WeChat client against a fake of WeChat's public API on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest
from fakeredis import FakeAsyncRedis
from fakeredis import FakeServer as FakeRedisServer

from api.kit.errors import UpstreamError, UpstreamTimeout
from integrations.http import longest_call
from integrations.wechat import HttpWeChat, InvalidWeChatCode, QrTicket, WeChatError, WeChatIdentity
from tests.integrations.fakeserver import FakeServer, Reply, Seen
from tests.integrations.fakewechat import (
    APP_ID,
    CUSTOM_PATH,
    MASS_PATH,
    MENU_PATH,
    OAUTH_PATH,
    QR_PATH,
    SECRET,
    SEND_PATH,
    SUBSCRIBE_PATH,
    TICKET_PATH,
    TOKEN_PATH,
    FakeWeChat,
)
from tests.support.settings import settings_for

TOKEN_KEY = f"wechat:access_token:{APP_ID}"
TICKET_KEY = f"wechat:jsapi_ticket:{APP_ID}"
FORCED_KEY = TOKEN_KEY + ":forced"


@pytest.fixture
def wx(fake: FakeServer) -> FakeWeChat:
    return FakeWeChat(fake)


def make(fake: FakeServer, redis: FakeAsyncRedis, timeout: str = "0.3", secret: str = SECRET) -> HttpWeChat:
    settings = settings_for(
        WECHAT__PROVIDER="http",
        WECHAT__BASE_URL=fake.url,
        WECHAT__APP_ID=APP_ID,
        WECHAT__APP_SECRET=secret,
        WECHAT__TIMEOUT=timeout,
    )
    return HttpWeChat(settings.wechat, redis)


@pytest.fixture
async def wechat(fake: FakeServer, redis: FakeAsyncRedis) -> AsyncIterator[HttpWeChat]:
    client = make(fake, redis)
    yield client
    await client.aclose()


# ---- access token -----------------------------------------------------------------------------------


async def test_token_fetched_and_cached(
    fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat, redis: FakeAsyncRedis
) -> None:
    token = await wechat.access_token()
    assert token == "ACCESS_TOKEN_1_never_shown"
    [seen] = fake.hits(TOKEN_PATH)
    assert seen.method == "POST"
    assert seen.query == {}  # the secret travels in the body, not in a URL
    assert seen.headers["content-type"].startswith("application/json")
    assert seen.json() == {
        "grant_type": "client_credential",
        "appid": APP_ID,
        "secret": SECRET,
        "force_refresh": False,
    }
    assert await redis.get(TOKEN_KEY) == token.encode()
    assert 7200 - 300 - 5 <= await redis.ttl(TOKEN_KEY) <= 7200 - 300
    assert await redis.get(TOKEN_KEY + ":lock") is None  # released


async def test_cached_token_reused(
    fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat, redis: FakeAsyncRedis
) -> None:
    first = await wechat.access_token()
    assert await wechat.access_token() == first
    other_process = make(fake, redis)
    try:
        assert await other_process.access_token() == first
    finally:
        await other_process.aclose()
    assert len(fake.hits(TOKEN_PATH)) == 1


async def test_twenty_concurrent_callers_one_fetch(
    fake: FakeServer, wx: FakeWeChat, redis: FakeAsyncRedis
) -> None:
    wx.token_delay = 0.15  # the callers really overlap the fetch
    clients = [make(fake, redis) for _ in range(4)]  # several "processes" sharing one Redis
    try:
        tokens = await asyncio.gather(*(clients[i % 4].access_token() for i in range(20)))
    finally:
        for client in clients:
            await client.aclose()
    assert len(fake.hits(TOKEN_PATH)) == 1
    assert set(tokens) == {"ACCESS_TOKEN_1_never_shown"}


async def test_failed_refresh_fails_the_waiters_without_repeating_it(
    fake: FakeServer, redis: FakeAsyncRedis, wechat: HttpWeChat
) -> None:
    fake.route("POST", TOKEN_PATH, Reply(500, {}, delay=0.1))
    results = await asyncio.gather(*(wechat.access_token() for _ in range(20)), return_exceptions=True)
    assert all(isinstance(r, UpstreamError) for r in results), results
    assert len(fake.hits(TOKEN_PATH)) == 1
    assert await redis.get(TOKEN_KEY) is None


async def test_waits_for_a_refresh_held_elsewhere(
    fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat, redis: FakeAsyncRedis
) -> None:
    await redis.set(TOKEN_KEY + ":lock", b"another-process", px=5000)

    async def other_process_finishes() -> None:
        await asyncio.sleep(0.1)
        await redis.set(TOKEN_KEY, b"TOKEN_FROM_ELSEWHERE", ex=100)

    finisher = asyncio.create_task(other_process_finishes())
    assert await wechat.access_token() == "TOKEN_FROM_ELSEWHERE"
    await finisher
    assert fake.hits(TOKEN_PATH) == []
    assert await redis.get(TOKEN_KEY + ":lock") == b"another-process"  # not ours: left alone


async def test_takes_over_when_the_holder_died(
    fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat, redis: FakeAsyncRedis
) -> None:
    await redis.set(TOKEN_KEY + ":lock", b"crashed-process", px=150)
    assert await wechat.access_token() == "ACCESS_TOKEN_1_never_shown"
    assert len(fake.hits(TOKEN_PATH)) == 1


async def test_waiting_is_bounded(
    fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat, redis: FakeAsyncRedis
) -> None:
    await redis.set(TOKEN_KEY + ":lock", b"stuck-process", px=60_000)
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        await wechat.access_token()
    # the holder's fetch, every try of it, twice (a normal call, then a forced one), plus the 0.5 s margin
    longest = 2 * longest_call(0.3, settings_for().wechat.attempts)
    assert time.monotonic() - started < longest + 0.5 + 0.7
    assert fake.hits(TOKEN_PATH) == []


async def test_token_errcode(fake: FakeServer, wx: FakeWeChat, redis: FakeAsyncRedis) -> None:
    client = make(fake, redis, secret="wrong-secret-never-shown")
    try:
        with pytest.raises(WeChatError) as err:
            await client.access_token()
    finally:
        await client.aclose()
    assert err.value.errcode == 40125
    assert err.value.status == 502
    assert "wrong-secret-never-shown" not in str(err.value)
    assert await redis.get(TOKEN_KEY) is None


@pytest.mark.parametrize(
    "reply",
    [
        Reply(200, {"access_token": "T"}),
        Reply(200, {"access_token": "", "expires_in": 7200}),
        Reply(200, {"access_token": 5, "expires_in": 7200}),
        Reply(200, {"errcode": "x"}),
        Reply(200, body=b"<xml/>"),
        Reply(503, {"access_token": "T", "expires_in": 7200}),
    ],
)
async def test_token_malformed(
    fake: FakeServer, wechat: HttpWeChat, redis: FakeAsyncRedis, reply: Reply
) -> None:
    fake.route("POST", TOKEN_PATH, reply)
    with pytest.raises(UpstreamError):
        await wechat.access_token()
    assert await redis.get(TOKEN_KEY) is None


async def test_token_slow(fake: FakeServer, wechat: HttpWeChat) -> None:
    fake.route("POST", TOKEN_PATH, Reply(200, {"access_token": "T", "expires_in": 7200}, delay=3))
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        await wechat.access_token()
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("first", [Reply(503, {}), Reply(drop=True), Reply(200, {}, delay=1)])
async def test_token_fetch_that_fails_in_passing_is_tried_again(
    fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat, redis: FakeAsyncRedis, first: Reply
) -> None:
    tries: list[Seen] = []

    def flaky(seen: Seen) -> Reply:
        tries.append(seen)
        return first if len(tries) == 1 else wx.stable_token(seen)

    fake.route("POST", TOKEN_PATH, flaky)
    assert await wechat.access_token() == "ACCESS_TOKEN_1_never_shown"
    assert len(fake.hits(TOKEN_PATH)) == 2
    assert await redis.get(TOKEN_KEY) == b"ACCESS_TOKEN_1_never_shown"
    assert await redis.get(TOKEN_KEY + ":lock") is None


async def test_token_redirect_not_followed(fake: FakeServer, wechat: HttpWeChat) -> None:
    fake.route("POST", TOKEN_PATH, Reply(302, {}, headers={"Location": "/steal"}))
    fake.route("GET", "/steal", Reply(200, {"access_token": "T", "expires_in": 7200}))
    with pytest.raises(UpstreamError):
        await wechat.access_token()
    assert fake.hits("/steal") == []


async def test_token_oversize(fake: FakeServer, wechat: HttpWeChat) -> None:
    fake.route("POST", TOKEN_PATH, Reply(200, {"access_token": "T" * 1_200_000, "expires_in": 7200}))
    with pytest.raises(UpstreamError, match="过大"):
        await wechat.access_token()


# ---- OAuth ------------------------------------------------------------------------------------------


async def test_oauth_identity(fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat) -> None:
    wx.codes["CODE_A"] = {"openid": "oAbc123"}
    assert await wechat.oauth_identity("CODE_A") == WeChatIdentity(openid="oAbc123", unionid=None)
    [seen] = fake.hits(OAUTH_PATH)
    assert seen.method == "GET"
    assert seen.query == {
        "appid": APP_ID,
        "secret": SECRET,
        "code": "CODE_A",
        "grant_type": "authorization_code",
    }
    assert fake.hits(TOKEN_PATH) == []  # the web OAuth exchange needs no access token


async def test_oauth_unionid_passed_through(wx: FakeWeChat, wechat: HttpWeChat) -> None:
    wx.codes["CODE_U"] = {"openid": "oUser", "unionid": "uUnion42"}
    assert await wechat.oauth_identity("CODE_U") == WeChatIdentity(openid="oUser", unionid="uUnion42")


async def test_oauth_invalid_and_used_code(fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat) -> None:
    wx.codes["CODE_ONCE"] = {"openid": "oOnce"}
    with pytest.raises(InvalidWeChatCode):
        await wechat.oauth_identity("NO_SUCH_CODE")  # 40029
    assert (await wechat.oauth_identity("CODE_ONCE")).openid == "oOnce"
    with pytest.raises(InvalidWeChatCode):
        await wechat.oauth_identity("CODE_ONCE")  # 40163
    assert len(fake.hits(OAUTH_PATH)) == 3


@pytest.mark.parametrize("code", ["", "a b", "x" * 200, "代码", "a&secret=b"])
async def test_oauth_garbage_code_not_sent(
    fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat, code: str
) -> None:
    with pytest.raises(InvalidWeChatCode):
        await wechat.oauth_identity(code)
    assert fake.hits(OAUTH_PATH) == []


async def test_oauth_other_errcode_is_upstream_error(fake: FakeServer, wechat: HttpWeChat) -> None:
    fake.route("GET", OAUTH_PATH, Reply(200, {"errcode": 40125, "errmsg": "invalid appsecret"}))
    with pytest.raises(WeChatError) as err:
        await wechat.oauth_identity("CODE")
    assert err.value.errcode == 40125
    assert not isinstance(err.value, InvalidWeChatCode)


@pytest.mark.parametrize(
    "reply",
    [
        Reply(200, {"access_token": "x", "expires_in": 7200}),
        Reply(200, {"openid": ""}),
        Reply(200, {"openid": 123}),
        Reply(200, body=b"not json"),
        Reply(500, {"openid": "o"}),
    ],
)
async def test_oauth_malformed(fake: FakeServer, wechat: HttpWeChat, reply: Reply) -> None:
    fake.route("GET", OAUTH_PATH, reply)
    with pytest.raises(UpstreamError):
        await wechat.oauth_identity("CODE")


async def test_oauth_exchange_is_tried_again_after_a_dropped_connection(
    fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat
) -> None:
    wx.codes["CODE_A"] = {"openid": "oAbc123"}
    tries: list[Seen] = []

    def flaky(seen: Seen) -> Reply:
        tries.append(seen)
        return Reply(drop=True) if len(tries) == 1 else wx.oauth(seen)

    fake.route("GET", OAUTH_PATH, flaky)
    assert await wechat.oauth_identity("CODE_A") == WeChatIdentity(openid="oAbc123", unionid=None)
    assert len(fake.hits(OAUTH_PATH)) == 2


async def test_oauth_slow(fake: FakeServer, wechat: HttpWeChat) -> None:
    fake.route("GET", OAUTH_PATH, Reply(200, {"openid": "o"}, delay=3))
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        await wechat.oauth_identity("CODE")
    assert time.monotonic() - started < 1.0


# ---- template messages ------------------------------------------------------------------------------


async def test_send_template(fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat) -> None:
    msgid = await wechat.send_template(
        "oUser",
        "TPL_1",
        {"first": "您的办件已受理", "keyword1": "YWT2025000001"},
        url="https://h5.example/a/1",
    )
    assert msgid == "200228333"
    [seen] = fake.hits(SEND_PATH)
    assert seen.method == "POST"
    assert seen.query == {"access_token": "ACCESS_TOKEN_1_never_shown"}
    assert seen.json() == {
        "touser": "oUser",
        "template_id": "TPL_1",
        "url": "https://h5.example/a/1",
        "data": {"first": {"value": "您的办件已受理"}, "keyword1": {"value": "YWT2025000001"}},
    }
    assert await wechat.send_template("oUser", "TPL_1", {"first": "x"}) == "200228334"
    assert "url" not in fake.hits(SEND_PATH)[1].json()
    assert len(fake.hits(TOKEN_PATH)) == 1  # the token was reused for the second message
    # a delivery's key, which WeChat de-duplicates for 10 minutes
    await wechat.send_template("oUser", "TPL_1", {"first": "x"}, client_msg_id="ywt-d42")
    assert fake.hits(SEND_PATH)[2].json()["client_msg_id"] == "ywt-d42"


@pytest.mark.parametrize("errcode", [40001, 42001, 40014])
async def test_send_template_refreshes_a_refused_token_once(
    fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat, redis: FakeAsyncRedis, errcode: int
) -> None:
    await redis.set(TOKEN_KEY, b"STALE_TOKEN", ex=3600)  # WeChat no longer accepts it

    def send(seen: Seen) -> Reply:
        if seen.query["access_token"] == "STALE_TOKEN":
            return Reply(200, {"errcode": errcode, "errmsg": "access_token expired"})
        return wx.send(seen)

    fake.route("POST", SEND_PATH, send)
    assert await wechat.send_template("oUser", "TPL_1", {"first": "x"}) == "200228333"
    posts = fake.hits(SEND_PATH)
    assert [p.query["access_token"] for p in posts] == ["STALE_TOKEN", "ACCESS_TOKEN_1_never_shown"]
    assert len(fake.hits(TOKEN_PATH)) == 1
    assert wx.forced_requests == 0  # a normal call answered a token WeChat takes: nothing to force
    assert await redis.get(TOKEN_KEY) == b"ACCESS_TOKEN_1_never_shown"


async def test_dropping_a_refused_token_spares_its_replacement(
    wechat: HttpWeChat, redis: FakeAsyncRedis
) -> None:
    await redis.set(TOKEN_KEY, b"NEWER_TOKEN_FROM_ELSEWHERE")
    await wechat._drop_token("REFUSED_TOKEN")
    assert await redis.get(TOKEN_KEY) == b"NEWER_TOKEN_FROM_ELSEWHERE"
    await wechat._drop_token("NEWER_TOKEN_FROM_ELSEWHERE")
    assert await redis.get(TOKEN_KEY) is None


async def test_token_lifetime_claim_is_capped(
    fake: FakeServer, wechat: HttpWeChat, redis: FakeAsyncRedis
) -> None:
    fake.route("POST", TOKEN_PATH, Reply(200, {"access_token": "T", "expires_in": 10**9}))
    await wechat.access_token()
    assert 0 < await redis.ttl(TOKEN_KEY) <= 7200 - 300


async def test_send_template_retries_only_once(fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat) -> None:
    fake.route("POST", SEND_PATH, Reply(200, {"errcode": 40001, "errmsg": "invalid credential"}))
    with pytest.raises(WeChatError) as err:
        await wechat.send_template("oUser", "TPL_1", {"first": "x"})
    assert err.value.errcode == 40001
    assert len(fake.hits(SEND_PATH)) == 2
    # the first token; a normal call that answered the refused token again; one forced refresh
    assert [seen.json()["force_refresh"] for seen in fake.hits(TOKEN_PATH)] == [False, False, True]


async def test_send_template_other_errcode_not_retried(
    fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat
) -> None:
    fake.route("POST", SEND_PATH, Reply(200, {"errcode": 43004, "errmsg": "require subscribe"}))
    with pytest.raises(WeChatError) as err:
        await wechat.send_template("oUser", "TPL_1", {"first": "x"})
    assert err.value.errcode == 43004
    assert len(fake.hits(SEND_PATH)) == 1
    assert len(fake.hits(TOKEN_PATH)) == 1


@pytest.mark.parametrize(
    "reply",
    [
        Reply(200, {"errcode": 0, "errmsg": "ok"}),
        Reply(200, {"errcode": 0, "msgid": None}),
        Reply(200, body=b"ok"),
        Reply(500, {"errcode": 0, "msgid": 1}),
        Reply(503, {"errcode": 0, "msgid": 1}),
        Reply(drop=True),
        Reply(302, {}, headers={"Location": "/elsewhere"}),
        Reply(200, {"errcode": 0, "msgid": 1, "pad": "x" * 1_200_000}),
    ],
)
async def test_send_template_bad_answers(
    fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat, reply: Reply
) -> None:
    fake.route("POST", SEND_PATH, reply)
    fake.route("POST", "/elsewhere", Reply(200, {"errcode": 0, "msgid": 1}))
    with pytest.raises(UpstreamError):
        await wechat.send_template("oUser", "TPL_1", {"first": "x"})
    assert len(fake.hits(SEND_PATH)) == 1
    assert fake.hits("/elsewhere") == []


async def test_send_template_slow(fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat) -> None:
    fake.route("POST", SEND_PATH, Reply(200, {"errcode": 0, "msgid": 1}, delay=3))
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        await wechat.send_template("oUser", "TPL_1", {"first": "x"})
    assert time.monotonic() - started < 1.0
    assert len(fake.hits(SEND_PATH)) == 1  # a message that may have gone out is not sent again


async def test_no_secret_or_token_in_errors_or_logs(
    fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    texts = []
    await wechat.access_token()
    for reply in (
        Reply(500, {}),
        Reply(200, {"errcode": 40001, "errmsg": "invalid credential"}),
        Reply(200, {"errcode": 45009, "errmsg": "api freq out of limit"}),
        Reply(200, body=b"garbage"),
    ):
        fake.route("POST", SEND_PATH, reply)
        with pytest.raises((UpstreamError, UpstreamTimeout)) as err:
            await wechat.send_template("oUser", "TPL_1", {"first": "x"})
        texts += [str(err.value), err.value.detail]
    fake.route("GET", OAUTH_PATH, Reply(500, {}))
    with pytest.raises(UpstreamError) as err:
        await wechat.oauth_identity("CODE")
    texts.append(str(err.value))
    await wechat.jsapi_ticket()
    for path in (MASS_PATH, CUSTOM_PATH):
        fake.route("POST", path, Reply(200, {"errcode": 40001, "errmsg": "invalid credential"}))
    for call in (
        wechat.mass_send_text(["oAlice", "oBobby"], "x", "c1"),
        wechat.send_custom("oAlice", {"msgtype": "text", "text": {"content": "x"}}),
    ):
        with pytest.raises(WeChatError) as refused:
            await call
        texts += [str(refused.value), refused.value.detail]
    assert wx.issued >= 2
    for secret in (
        SECRET,
        "ACCESS_TOKEN_1_never_shown",
        "ACCESS_TOKEN_2_never_shown",
        "JSAPI_TICKET_1_never_shown",
    ):
        assert all(secret not in t for t in texts)
        assert secret not in caplog.text


# ---- the stable token: shared by every holder, forced only when WeChat keeps refusing it ------------


async def test_two_clients_with_their_own_caches_get_the_same_token(
    fake: FakeServer, wx: FakeWeChat, redis: FakeAsyncRedis
) -> None:
    elsewhere = FakeAsyncRedis(server=FakeRedisServer())  # another system holding the same app's token
    ours, theirs = make(fake, redis), make(fake, elsewhere)
    try:
        first = await ours.access_token()
        assert await theirs.access_token() == first
        await ours.send_template("oUser", "TPL_1", {"first": "x"})  # fetching it again spoilt nothing
    finally:
        await ours.aclose()
        await theirs.aclose()
        await elsewhere.aclose()
    assert len(fake.hits(TOKEN_PATH)) == 2
    assert wx.issued == 1
    assert len(wx.templates) == 1


async def test_a_refused_token_is_forced_once_for_five_senders_in_two_clients(
    fake: FakeServer, wx: FakeWeChat, redis: FakeAsyncRedis
) -> None:
    clients = [make(fake, redis), make(fake, redis)]  # two processes sharing one Redis
    try:
        assert await clients[0].access_token() == "ACCESS_TOKEN_1_never_shown"
        wx.revoke()  # WeChat refuses it now, yet a normal call still answers it
        msgids = await asyncio.gather(
            *(clients[i % 2].send_template(f"oUser{i}", "TPL_1", {"first": "x"}) for i in range(5))
        )
    finally:
        for client in clients:
            await client.aclose()
    assert len(set(msgids)) == 5
    assert wx.forced_requests == 1 and wx.forced == 1
    # the first token; one normal call that answered the refused token again; the forced one
    assert [seen.json()["force_refresh"] for seen in fake.hits(TOKEN_PATH)] == [False, False, True]
    assert {seen.query["access_token"] for seen in fake.hits(SEND_PATH)} == {
        "ACCESS_TOKEN_1_never_shown",
        "ACCESS_TOKEN_2_never_shown",
    }
    assert sorted(m["touser"] for m in wx.templates) == [f"oUser{i}" for i in range(5)]
    assert await redis.get(TOKEN_KEY) == b"ACCESS_TOKEN_2_never_shown"
    assert 0 < await redis.ttl(FORCED_KEY) <= 30


async def test_a_second_refusal_within_30_s_does_not_force_again(
    fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat, redis: FakeAsyncRedis
) -> None:
    await wechat.access_token()
    wx.revoke()
    await wechat.send_template("oUser", "TPL_1", {"first": "x"})  # forced: ACCESS_TOKEN_2
    wx.revoke()
    with pytest.raises(WeChatError) as err:
        await wechat.send_template("oUser", "TPL_1", {"first": "x"})
    assert err.value.errcode == 40001  # surfaced for the caller to retry later
    assert wx.forced_requests == 1
    # 30 s later (the mark expires), the next refusal forces again
    await redis.delete(FORCED_KEY)
    wx.advance(31)
    await wechat.send_template("oUser", "TPL_1", {"first": "x"})
    assert wx.forced_requests == 2
    assert await redis.get(TOKEN_KEY) == b"ACCESS_TOKEN_3_never_shown"


async def test_a_refused_forced_refresh_leaves_the_normal_token(
    fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat, redis: FakeAsyncRedis
) -> None:
    await wechat.access_token()
    wx.forced = 20  # today's forced refreshes are spent: WeChat answers 45009
    wx.revoke()
    with pytest.raises(WeChatError) as err:
        await wechat.send_template("oUser", "TPL_1", {"first": "x"})
    assert err.value.errcode == 40001
    assert wx.forced_requests == 1
    assert await redis.get(TOKEN_KEY) == b"ACCESS_TOKEN_1_never_shown"
    assert wx.templates == []


# ---- JS-SDK ticket ----------------------------------------------------------------------------------


async def test_jsapi_ticket_fetched_and_cached(
    fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat, redis: FakeAsyncRedis
) -> None:
    ticket = await wechat.jsapi_ticket()
    assert ticket == "JSAPI_TICKET_1_never_shown"
    [seen] = fake.hits(TICKET_PATH)
    assert seen.method == "GET"
    assert seen.query == {"access_token": "ACCESS_TOKEN_1_never_shown", "type": "jsapi"}
    assert await redis.get(TICKET_KEY) == ticket.encode()
    assert 7200 - 300 - 5 <= await redis.ttl(TICKET_KEY) <= 7200 - 300
    other_process = make(fake, redis)
    try:
        assert await other_process.jsapi_ticket() == ticket
    finally:
        await other_process.aclose()
    assert await wechat.jsapi_ticket() == ticket
    assert len(fake.hits(TICKET_PATH)) == 1
    assert await redis.get(TICKET_KEY + ":lock") is None


async def test_jsapi_ticket_twenty_concurrent_callers_one_fetch(
    fake: FakeServer, wx: FakeWeChat, redis: FakeAsyncRedis
) -> None:
    wx.ticket_delay = 0.15
    clients = [make(fake, redis) for _ in range(4)]
    try:
        tickets = await asyncio.gather(*(clients[i % 4].jsapi_ticket() for i in range(20)))
    finally:
        for client in clients:
            await client.aclose()
    assert set(tickets) == {"JSAPI_TICKET_1_never_shown"}
    assert len(fake.hits(TICKET_PATH)) == 1
    assert len(fake.hits(TOKEN_PATH)) == 1


async def test_jsapi_ticket_replaces_a_refused_token_once(
    fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat, redis: FakeAsyncRedis
) -> None:
    await redis.set(TOKEN_KEY, b"STALE_TOKEN", ex=3600)
    assert await wechat.jsapi_ticket() == "JSAPI_TICKET_1_never_shown"
    tries = fake.hits(TICKET_PATH)
    assert [t.query["access_token"] for t in tries] == ["STALE_TOKEN", "ACCESS_TOKEN_1_never_shown"]
    assert await redis.get(TOKEN_KEY) == b"ACCESS_TOKEN_1_never_shown"


async def test_jsapi_ticket_refused(
    fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat, redis: FakeAsyncRedis
) -> None:
    fake.route("GET", TICKET_PATH, Reply(200, {"errcode": 40001, "errmsg": "invalid credential"}))
    with pytest.raises(WeChatError) as err:
        await wechat.jsapi_ticket()
    assert err.value.errcode == 40001
    assert len(fake.hits(TICKET_PATH)) == 2  # once more with a new token, not more
    assert await redis.get(TICKET_KEY) is None


@pytest.mark.parametrize(
    "reply",
    [
        Reply(200, {"errcode": 0, "errmsg": "ok", "ticket": "", "expires_in": 7200}),
        Reply(200, {"errcode": 0, "errmsg": "ok", "ticket": "T"}),
        Reply(200, body=b"<xml/>"),
        Reply(500, {}, delay=0.1),
    ],
)
async def test_jsapi_ticket_failure_fails_the_waiters_without_repeating_it(
    fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat, redis: FakeAsyncRedis, reply: Reply
) -> None:
    fake.route("GET", TICKET_PATH, reply)
    results = await asyncio.gather(*(wechat.jsapi_ticket() for _ in range(10)), return_exceptions=True)
    assert all(isinstance(r, UpstreamError) for r in results), results
    assert len(fake.hits(TICKET_PATH)) == 1
    assert await redis.get(TICKET_KEY) is None


# ---- menu -------------------------------------------------------------------------------------------

MENU = {
    "button": [
        {"type": "view", "name": "办事指南", "url": "https://h5.example/items"},
        {
            "name": "我的",
            "sub_button": [
                {"type": "view", "name": "我的办件", "url": "https://h5.example/mine"},
                {"type": "click", "name": "联系客服", "key": "CONTACT"},
            ],
        },
    ]
}


async def test_create_menu_sends_utf8_json(fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat) -> None:
    await wechat.create_menu(MENU)
    [seen] = fake.hits(MENU_PATH)
    assert seen.query == {"access_token": "ACCESS_TOKEN_1_never_shown"}
    assert seen.headers["content-type"].startswith("application/json")
    assert "办事指南".encode() in seen.body and b"\\u" not in seen.body  # Chinese as UTF-8, not escaped
    assert wx.menu == MENU


async def test_create_menu_refused(fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat) -> None:
    too_many = {"button": [{"type": "click", "name": f"按钮{i}", "key": f"K{i}"} for i in range(4)]}
    with pytest.raises(WeChatError) as err:
        await wechat.create_menu(too_many)
    assert err.value.errcode == 40016
    assert wx.menu is None


async def test_create_menu_is_tried_again_after_a_503(
    fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat
) -> None:
    tries: list[Seen] = []

    def flaky(seen: Seen) -> Reply:
        tries.append(seen)
        return Reply(503, {}) if len(tries) == 1 else wx.create_menu(seen)

    fake.route("POST", MENU_PATH, flaky)
    await wechat.create_menu(MENU)  # replacing the menu twice is the same as once
    assert len(tries) == 2
    assert wx.menu == MENU


# ---- QR codes ---------------------------------------------------------------------------------------


async def test_create_qr(fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat) -> None:
    qr = await wechat.create_qr("point:360502-001")
    ticket = FakeWeChat.qr_ticket("point:360502-001")
    assert isinstance(qr, QrTicket)
    assert qr.ticket == ticket and ticket.endswith("=")
    assert qr.url.startswith("http://weixin.qq.com/q/")
    assert qr.image_url == (
        "https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket="
        + ticket.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
    )
    [seen] = fake.hits(QR_PATH)
    assert seen.json() == {
        "action_name": "QR_LIMIT_STR_SCENE",
        "action_info": {"scene": {"scene_str": "point:360502-001"}},
    }
    assert wx.qr == {ticket: "point:360502-001"}
    assert (await wechat.create_qr("x" * 64)).ticket == FakeWeChat.qr_ticket("x" * 64)


@pytest.mark.parametrize("scene", ["", "x" * 65])
async def test_create_qr_scene_out_of_bounds_not_sent(
    fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat, scene: str
) -> None:
    with pytest.raises(ValueError):
        await wechat.create_qr(scene)
    assert fake.hits(QR_PATH) == [] and fake.hits(TOKEN_PATH) == []


@pytest.mark.parametrize(
    "reply",
    [Reply(200, {"url": "http://weixin.qq.com/q/x"}), Reply(200, {"ticket": 5, "url": "u"}), Reply(502, {})],
)
async def test_create_qr_bad_answers(
    fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat, reply: Reply
) -> None:
    fake.route("POST", QR_PATH, reply)
    with pytest.raises(UpstreamError):
        await wechat.create_qr("scene")
    assert len(fake.hits(QR_PATH)) == 1


# ---- customer-service messages ----------------------------------------------------------------------


async def test_send_custom_text_and_news(fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat) -> None:
    await wechat.send_custom("oAlice", {"msgtype": "text", "text": {"content": "您的办件已办结"}})
    article = {"title": "办事指南", "description": "身份证换领", "url": "https://h5.example/i/1"}
    await wechat.send_custom("oAlice", {"msgtype": "news", "news": {"articles": [article]}})
    first, second = fake.hits(CUSTOM_PATH)
    assert first.json() == {"touser": "oAlice", "msgtype": "text", "text": {"content": "您的办件已办结"}}
    assert "您的办件已办结".encode() in first.body
    assert second.json()["news"]["articles"] == [article]
    assert [m["msgtype"] for m in wx.custom["oAlice"]] == ["text", "news"]


@pytest.mark.parametrize(
    ("setup", "openid", "errcode"),
    [
        ("silent", "oAlice", 45015),
        ("unsubscribed", "oAlice", 43004),
        ("none", "not-an-openid", 40003),
        ("quota", "oAlice", 45047),
    ],
)
async def test_send_custom_errcodes_surface(
    fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat, setup: str, openid: str, errcode: int
) -> None:
    if setup == "silent":
        wx.silent.add("oAlice")
    elif setup == "unsubscribed":
        wx.unsubscribed.add("oAlice")
    elif setup == "quota":
        wx.custom["oAlice"] = [{}] * 20
    with pytest.raises(WeChatError) as err:
        await wechat.send_custom(openid, {"msgtype": "text", "text": {"content": "x"}})
    assert err.value.errcode == errcode
    assert len(fake.hits(CUSTOM_PATH)) == 1  # not retried


async def test_send_custom_replaces_a_refused_token_once(
    fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat, redis: FakeAsyncRedis
) -> None:
    await redis.set(TOKEN_KEY, b"STALE_TOKEN", ex=3600)
    await wechat.send_custom("oAlice", {"msgtype": "text", "text": {"content": "x"}})
    assert [s.query["access_token"] for s in fake.hits(CUSTOM_PATH)] == [
        "STALE_TOKEN",
        "ACCESS_TOKEN_1_never_shown",
    ]
    assert len(wx.custom["oAlice"]) == 1


@pytest.mark.parametrize(
    "message",
    [
        {},
        {"msgtype": "text"},
        {"msgtype": "text", "text": "x"},
        {"touser": "oBob", "msgtype": "text", "text": {}},
    ],
)
async def test_send_custom_malformed_not_sent(
    fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat, message: dict
) -> None:
    with pytest.raises(ValueError):
        await wechat.send_custom("oAlice", message)
    assert fake.hits(CUSTOM_PATH) == []


# ---- mass send --------------------------------------------------------------------------------------


async def test_mass_send_text(fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat) -> None:
    msg_id = await wechat.mass_send_text(["oAlice", "oBobby"], "停水通知：明日 9 时至 17 时", "ywt-a42")
    assert msg_id == "34182"
    [seen] = fake.hits(MASS_PATH)
    assert seen.json() == {
        "touser": ["oAlice", "oBobby"],
        "msgtype": "text",
        "text": {"content": "停水通知：明日 9 时至 17 时"},
        "clientmsgid": "ywt-a42",
    }
    assert "停水通知".encode() in seen.body
    assert [m["clientmsgid"] for m in wx.mass] == ["ywt-a42"]


async def test_mass_send_same_clientmsgid_answers_the_earlier_job(
    fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat
) -> None:
    first = await wechat.mass_send_text(["oAlice", "oBobby"], "x", "ywt-a42")
    again = await wechat.mass_send_text(["oAlice", "oBobby"], "x", "ywt-a42")  # WeChat: 45065 + msg_id
    assert again == first
    assert len(wx.mass) == 1
    other = await wechat.mass_send_text(["oAlice", "oBobby"], "x", "ywt-a43")
    assert other != first and len(wx.mass) == 2


async def test_mass_send_timed_out_is_tried_again_and_sent_once(
    fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat
) -> None:
    tries: list[Seen] = []

    def slow_first(seen: Seen) -> Reply:
        tries.append(seen)
        reply = wx.mass_send(seen)  # WeChat took the job ...
        if len(tries) == 1:
            reply.delay = 1  # ... and its answer never came in time
        return reply

    fake.route("POST", MASS_PATH, slow_first)
    assert await wechat.mass_send_text(["oAlice", "oBobby"], "x", "ywt-a42") == "34182"
    assert len(tries) == 2
    assert len(wx.mass) == 1


async def test_mass_send_45065_without_msg_id_is_an_error(
    fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat
) -> None:
    fake.route("POST", MASS_PATH, Reply(200, {"errcode": 45065, "errmsg": "clientmsgid exist"}))
    with pytest.raises(WeChatError) as err:
        await wechat.mass_send_text(["oAlice", "oBobby"], "x", "ywt-a42")
    assert err.value.errcode == 45065


@pytest.mark.parametrize(
    ("openids", "content", "clientmsgid"),
    [
        (["oAlice"], "x", "c1"),
        ([], "x", "c1"),
        ([f"o{i:05d}" for i in range(10_001)], "x", "c1"),
        (["oAlice", "oBobby"], "", "c1"),
        (["oAlice", "oBobby"], "x", ""),
        (["oAlice", "oBobby"], "x", "c" * 65),
    ],
)
async def test_mass_send_refused_before_calling(
    fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat, openids: list[str], content: str, clientmsgid: str
) -> None:
    with pytest.raises(ValueError):
        await wechat.mass_send_text(openids, content, clientmsgid)
    assert fake.hits(MASS_PATH) == []


async def test_mass_send_errcode(fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat) -> None:
    with pytest.raises(WeChatError) as err:
        await wechat.mass_send_text(["oAlice", "bad openid"], "x", "ywt-a42")
    assert err.value.errcode == 40003
    assert wx.mass == []


# ---- subscribe messages -----------------------------------------------------------------------------


async def test_send_subscribe(fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat) -> None:
    await wechat.send_subscribe(
        "oAlice", "SUB_TPL_1", {"thing1": "身份证换领", "time2": "2025-06-01 09:00"}, page="pages/case?id=1"
    )
    await wechat.send_subscribe("oAlice", "SUB_TPL_1", {"thing1": "x"})
    first, second = fake.hits(SUBSCRIBE_PATH)
    assert first.json() == {
        "touser": "oAlice",
        "template_id": "SUB_TPL_1",
        "page": "pages/case?id=1",
        "data": {"thing1": {"value": "身份证换领"}, "time2": {"value": "2025-06-01 09:00"}},
    }
    assert "page" not in second.json()
    assert [m["data"]["thing1"]["value"] for m in wx.subscribe["oAlice"]] == ["身份证换领", "x"]


async def test_send_subscribe_without_consent(fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat) -> None:
    wx.no_consent.add("oAlice")
    with pytest.raises(WeChatError) as err:
        await wechat.send_subscribe("oAlice", "SUB_TPL_1", {"thing1": "x"})
    assert err.value.errcode == 43101
    assert "oAlice" not in wx.subscribe
