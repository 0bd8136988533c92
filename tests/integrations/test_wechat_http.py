"""Our async WeChat client against a fake of WeChat's public API on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator

import pytest
from fakeredis import FakeAsyncRedis

from api.kit.errors import UpstreamError, UpstreamTimeout
from integrations.http import longest_call
from integrations.wechat import HttpWeChat, InvalidWeChatCode, WeChatError, WeChatIdentity
from tests.integrations.fakeserver import FakeServer, Reply, Seen
from tests.support.settings import settings_for

APP_ID = "wx1234567890abcdef"
SECRET = "appsecret-5e1f0c9d-never-shown"
TOKEN_PATH = "/cgi-bin/token"
OAUTH_PATH = "/sns/oauth2/access_token"
SEND_PATH = "/cgi-bin/message/template/send"
TOKEN_KEY = f"wechat:access_token:{APP_ID}"


class FakeWeChat:
    """Just enough of WeChat: tokens it issued, one-time OAuth codes, template messages checked against
    the current token."""

    def __init__(self, server: FakeServer) -> None:
        self.lock = threading.Lock()
        self.issued = 0
        self.current: str | None = None
        self.token_delay = 0.0
        self.codes: dict[str, dict[str, str]] = {}
        self.used: set[str] = set()
        self.next_msgid = 200228332
        server.route("GET", TOKEN_PATH, self.token)
        server.route("GET", OAUTH_PATH, self.oauth)
        server.route("POST", SEND_PATH, self.send)

    def token(self, seen: Seen) -> Reply:
        q = seen.query
        if q.get("grant_type") != "client_credential" or q.get("appid") != APP_ID:
            return Reply(200, {"errcode": 40013, "errmsg": "invalid appid"})
        if q.get("secret") != SECRET:
            return Reply(200, {"errcode": 40125, "errmsg": "invalid appsecret"})
        with self.lock:
            self.issued += 1
            self.current = f"ACCESS_TOKEN_{self.issued}_never_shown"
            return Reply(200, {"access_token": self.current, "expires_in": 7200}, delay=self.token_delay)

    def oauth(self, seen: Seen) -> Reply:
        q = seen.query
        if (
            q.get("appid") != APP_ID
            or q.get("secret") != SECRET
            or q.get("grant_type") != "authorization_code"
        ):
            return Reply(200, {"errcode": 40125, "errmsg": "invalid appsecret"})
        code = q.get("code", "")
        with self.lock:
            if code in self.used:
                return Reply(200, {"errcode": 40163, "errmsg": "code been used"})
            if code not in self.codes:
                return Reply(200, {"errcode": 40029, "errmsg": "invalid code"})
            self.used.add(code)
            who = self.codes[code]
        return Reply(
            200,
            {
                "access_token": "USER_TOKEN",
                "expires_in": 7200,
                "refresh_token": "REFRESH",
                "scope": "snsapi_base",
                "is_snapshotuser": 0,
                **who,
            },
        )

    def send(self, seen: Seen) -> Reply:
        with self.lock:
            if seen.query.get("access_token") != self.current:
                return Reply(200, {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid"})
            self.next_msgid += 1
            return Reply(200, {"errcode": 0, "errmsg": "ok", "msgid": self.next_msgid})


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
    assert seen.method == "GET"
    assert seen.query == {"grant_type": "client_credential", "appid": APP_ID, "secret": SECRET}
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
    fake.route("GET", TOKEN_PATH, Reply(500, {}, delay=0.1))
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
    longest = longest_call(0.3, settings_for().wechat.attempts)  # the holder's fetch, every try of it
    assert time.monotonic() - started < longest + 0.5 + 0.7  # plus the 0.5 s margin
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
    fake.route("GET", TOKEN_PATH, reply)
    with pytest.raises(UpstreamError):
        await wechat.access_token()
    assert await redis.get(TOKEN_KEY) is None


async def test_token_slow(fake: FakeServer, wechat: HttpWeChat) -> None:
    fake.route("GET", TOKEN_PATH, Reply(200, {"access_token": "T", "expires_in": 7200}, delay=3))
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
        return first if len(tries) == 1 else wx.token(seen)

    fake.route("GET", TOKEN_PATH, flaky)
    assert await wechat.access_token() == "ACCESS_TOKEN_1_never_shown"
    assert len(fake.hits(TOKEN_PATH)) == 2
    assert await redis.get(TOKEN_KEY) == b"ACCESS_TOKEN_1_never_shown"
    assert await redis.get(TOKEN_KEY + ":lock") is None


async def test_token_redirect_not_followed(fake: FakeServer, wechat: HttpWeChat) -> None:
    fake.route("GET", TOKEN_PATH, Reply(302, {}, headers={"Location": "/steal"}))
    fake.route("GET", "/steal", Reply(200, {"access_token": "T", "expires_in": 7200}))
    with pytest.raises(UpstreamError):
        await wechat.access_token()
    assert fake.hits("/steal") == []


async def test_token_oversize(fake: FakeServer, wechat: HttpWeChat) -> None:
    fake.route("GET", TOKEN_PATH, Reply(200, {"access_token": "T" * 1_200_000, "expires_in": 7200}))
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
    fake.route("GET", TOKEN_PATH, Reply(200, {"access_token": "T", "expires_in": 10**9}))
    await wechat.access_token()
    assert 0 < await redis.ttl(TOKEN_KEY) <= 7200 - 300


async def test_send_template_retries_only_once(fake: FakeServer, wx: FakeWeChat, wechat: HttpWeChat) -> None:
    fake.route("POST", SEND_PATH, Reply(200, {"errcode": 40001, "errmsg": "invalid credential"}))
    with pytest.raises(WeChatError) as err:
        await wechat.send_template("oUser", "TPL_1", {"first": "x"})
    assert err.value.errcode == 40001
    assert len(fake.hits(SEND_PATH)) == 2
    assert len(fake.hits(TOKEN_PATH)) == 2  # the first token, then one refresh


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
    assert wx.issued >= 2
    for secret in (SECRET, "ACCESS_TOKEN_1_never_shown", "ACCESS_TOKEN_2_never_shown"):
        assert all(secret not in t for t in texts)
        assert secret not in caplog.text
