"""App push: the JPush sandbox, and the JPush REST API v3 client against a fake JPush on 127.0.0.1 speaking
its documented protocol (Basic appKey:masterSecret, /v3/push with platform, audience.registration_id,
notification per platform, options, cid; /v3/push/cid; errors as {"error": {"code", "message"}})."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest
from fakeredis import FakeAsyncRedis

from integrations.push import HttpPush, PushMessage, PushRejected, PushRetryable, SandboxPush
from tests.integrations.fakeserver import FakeServer, Reply
from tests.support.settings import settings_for

APP_KEY = "jpush-appkey-6c1f"
SECRET = "jpush-master-secret-never-shown"
PUSH = "/v3/push"
CID = "/v3/push/cid"

MESSAGE = PushMessage(
    registration_ids=("1a0018970a8d5b3c", "160a3797c8f36bd0"),
    platforms=("android", "ios", "hmos"),
    title="您的申请已提交，等待受理",
    body="办件编号 XY20261203000001：您的申请已提交，等待受理",
    extras={"notification_id": "7", "application_id": "3"},
)


# ---- sandbox ----------------------------------------------------------------------------------------------


async def test_the_sandbox_keeps_each_push_per_device_and_sends_a_cid_once(redis: FakeAsyncRedis) -> None:
    push = SandboxPush(redis)
    cid = await push.new_cid()
    first = await push.push(MESSAGE, cid)
    assert await push.push(MESSAGE, cid) == first  # the same cid: the first push's id, nothing sent again
    for registration_id in MESSAGE.registration_ids:
        [kept] = await push.sent_to(registration_id)
        assert kept["msg_id"] == first and kept["title"] == MESSAGE.title and kept["extras"] == MESSAGE.extras
    assert await push.push(MESSAGE, await push.new_cid()) != first


async def test_the_sandboxs_message_ids_are_not_given_again_after_a_restart() -> None:
    """The embedded Redis begins empty at each start; receipts are matched by message id, so a second run
    must not hand out the ids of the first (it did: "1", "2" … again, and every receipt pass failed)."""
    first = SandboxPush(FakeAsyncRedis())
    before = [await first.push(MESSAGE, f"cid-{n}") for n in range(3)]
    again = SandboxPush(FakeAsyncRedis())  # the next start: a new, empty Redis
    after = [await again.push(MESSAGE, f"cid-{n}") for n in range(3)]
    assert len(set(before + after)) == 6
    assert all(m.isdigit() for m in before + after)  # numeric, as JPush's are


async def test_the_sandbox_refuses_a_gone_device_and_is_busy_twice_for_a_busy_one(
    redis: FakeAsyncRedis,
) -> None:
    push = SandboxPush(redis)
    gone = PushMessage(registration_ids=("gone-1",), platforms=("android",), title="t", body="b")
    with pytest.raises(PushRejected) as refused:
        await push.push(gone, "c1")
    assert refused.value.gone == ("gone-1",)
    busy = PushMessage(registration_ids=("busy-1",), platforms=("android",), title="t", body="b")
    for _ in range(2):
        with pytest.raises(PushRetryable):
            await push.push(busy, "c2")
    assert await push.push(busy, "c2")


# ---- JPush over HTTP --------------------------------------------------------------------------------------


@pytest.fixture
async def jpush(fake: FakeServer) -> AsyncIterator[HttpPush]:
    settings = settings_for(
        PUSH__PROVIDER="http",
        PUSH__BASE_URL=fake.url,
        PUSH__REPORT_URL=fake.url,
        PUSH__APP_KEY=APP_KEY,
        PUSH__MASTER_SECRET=SECRET,
        PUSH__TIMEOUT="0.3",
        PUSH__APNS_PRODUCTION="false",
    )
    client = HttpPush(settings.push)
    yield client
    await client.aclose()


async def test_a_push_is_the_request_jpush_documents(fake: FakeServer, jpush: HttpPush) -> None:
    fake.route("GET", CID, Reply(200, {"cidlist": ["8103a4c628a0b98974ec1949-711261d4"]}))
    fake.route("POST", PUSH, Reply(200, {"sendno": "0", "msg_id": 18100000000001}))
    cid = await jpush.new_cid()
    assert cid == "8103a4c628a0b98974ec1949-711261d4"
    assert await jpush.push(MESSAGE, cid) == "18100000000001"

    [asked] = fake.hits(CID)
    assert asked.query == {"count": "1", "type": "push"}
    [seen] = fake.hits(PUSH)
    assert (
        seen.headers["authorization"] == "Basic " + base64.b64encode(f"{APP_KEY}:{SECRET}".encode()).decode()
    )
    sent = seen.json()
    assert sent["platform"] == ["android", "ios", "hmos"]
    assert sent["audience"] == {"registration_id": list(MESSAGE.registration_ids)}
    assert sent["cid"] == cid
    android, ios, hmos = (sent["notification"][p] for p in ("android", "ios", "hmos"))
    assert android == {"alert": MESSAGE.body, "title": MESSAGE.title, "extras": MESSAGE.extras}
    assert ios["alert"] == {"title": MESSAGE.title, "body": MESSAGE.body} and ios["extras"] == MESSAGE.extras
    assert hmos["alert"] == MESSAGE.body and hmos["category"] == "WORK"
    options = sent["options"]
    assert options["apns_production"] is False  # given explicitly, as configured
    assert options["time_to_live"] == 86_400
    # a service notice: the makers' personal/system message classes
    assert options["third_party_channel"]["vivo"] == {"classification": 1}
    assert options["third_party_channel"]["huawei"]["importance"] == "NORMAL"


async def test_an_announcement_goes_as_an_operational_message(fake: FakeServer, jpush: HttpPush) -> None:
    fake.route("POST", PUSH, Reply(200, {"sendno": "0", "msg_id": "1"}))
    notice = PushMessage(
        registration_ids=("r1",), platforms=("android",), title="停水通知", body="b", service_notice=False
    )
    await jpush.push(notice, "cid-1")
    assert fake.hits(PUSH)[0].json()["options"]["third_party_channel"]["vivo"] == {"classification": 0}


async def test_devices_jpush_no_longer_knows_are_refused_as_gone(fake: FakeServer, jpush: HttpPush) -> None:
    fake.route(
        "POST",
        PUSH,
        Reply(400, {"error": {"code": 1011, "message": "cannot find user by this audience"}, "msg_id": "9"}),
    )
    with pytest.raises(PushRejected) as refused:
        await jpush.push(MESSAGE, "cid-1")
    assert refused.value.gone == MESSAGE.registration_ids
    assert SECRET not in str(refused.value)


@pytest.mark.parametrize(
    "reply",
    [
        Reply(500, {"error": {"code": 1000, "message": "server error"}}),
        Reply(503, body=b"<html>busy</html>"),
        Reply(429, {"error": {"code": 2002, "message": "API rate limit"}}),
        Reply(400, {"error": {"code": 1030, "message": "internal service timeout"}}),
        # our configuration refused: retried, so that fixing it loses nothing
        Reply(401, {"error": {"code": 1004, "message": "basic auth failed"}}),
        Reply(400, {"error": {"code": 1008, "message": "app_key is not a valid"}}),
        Reply(400, {"error": {"code": 2004, "message": "IP not allowed"}}),
        Reply(200, body=b'{"msg_id": '),  # malformed JSON: JPush may have it; the same cid is safe
        Reply(200, {"sendno": "0"}),  # no msg_id
        Reply(200, {"msg_id": 1}, delay=1.0),  # slower than the timeout
        Reply(drop=True),
    ],
)
async def test_failures_that_may_pass_are_retryable(fake: FakeServer, jpush: HttpPush, reply: Reply) -> None:
    fake.route("POST", PUSH, reply)
    with pytest.raises(PushRetryable):
        await jpush.push(MESSAGE, "cid-1")
    assert len(fake.hits(PUSH)) == 1  # a POST is tried once here; the delivery worker schedules the retry


@pytest.mark.parametrize("code, status", [(1003, 400), (1005, 400), (1009, 400)])
async def test_other_jpush_errors_are_permanent(
    fake: FakeServer, jpush: HttpPush, code: int, status: int
) -> None:
    fake.route("POST", PUSH, Reply(status, {"error": {"code": code, "message": "x"}}))
    with pytest.raises(PushRejected) as refused:
        await jpush.push(MESSAGE, "cid-1")
    assert refused.value.gone == ()
    assert str(code) in str(refused.value)


async def test_a_cid_that_cannot_be_had_is_retryable(fake: FakeServer, jpush: HttpPush) -> None:
    fake.route("GET", CID, Reply(500, {"error": {"code": 1000, "message": "x"}}))
    with pytest.raises(PushRetryable):
        await jpush.new_cid()


# ---- JPush's report API: what became of each message -----------------------------------------------------

RECEIVED = "/v3/received/detail"


async def test_receipts_are_the_report_apis_counts_per_message(fake: FakeServer, jpush: HttpPush) -> None:
    fake.route(
        "GET",
        RECEIVED,
        Reply(
            200,
            [
                # got by two phones over the makers' channels and one iPhone
                {"msg_id": "18100000000001", "jpush_received": 0, "android_pns_sent": 2,
                 "android_pns_received": 2, "ios_apns_sent": 1, "ios_apns_received": 1,
                 "ios_msg_received": None, "wp_mpns_sent": None, "hmos_hmpns_received": None},
                # sent, not received yet: counts of nothing, and nulls
                {"msg_id": 18100000000002, "jpush_received": None, "android_pns_sent": 1,
                 "android_pns_received": 0, "ios_apns_received": None},
                "not an entry",  # one entry we cannot read says nothing of the others
            ],
        ),
    )  # fmt: skip
    counts = await jpush.received(["18100000000001", "18100000000002", "18100000000003"])
    assert counts == {"18100000000001": 3, "18100000000002": 0}  # the third: no count at all
    [asked] = fake.hits(RECEIVED)
    assert asked.query == {"msg_ids": "18100000000001,18100000000002,18100000000003"}
    assert asked.headers["authorization"].startswith("Basic ")
    with pytest.raises(ValueError):
        await jpush.received([str(i) for i in range(101)])  # JPush takes at most 100 a call
    assert await jpush.received([]) == {}


@pytest.mark.parametrize("reply", [Reply(500, {"error": {"code": 1000}}), Reply(200, {"not": "a list"})])
async def test_a_report_that_cannot_be_read_is_asked_again_later(
    fake: FakeServer, jpush: HttpPush, reply: Reply
) -> None:
    fake.route("GET", RECEIVED, reply)
    with pytest.raises(PushRetryable):
        await jpush.received(["18100000000001"])


async def test_the_sandbox_reports_every_device_received_but_an_offline_one(redis: FakeAsyncRedis) -> None:
    push = SandboxPush(redis)
    online = await push.push(MESSAGE, await push.new_cid())
    offline = await push.push(
        PushMessage(registration_ids=("offline-1",), platforms=("android",), title="t", body="b"), "c-off"
    )
    assert await push.received([online, offline, "999999"]) == {online: 2, offline: 0}


async def test_cids_for_a_whole_batch_come_in_one_call(fake: FakeServer, jpush: HttpPush) -> None:
    fake.route("GET", CID, Reply(200, {"cidlist": ["c1", "c2", "c3"]}))
    assert await jpush.new_cids(3) == ["c1", "c2", "c3"]
    [asked] = fake.hits(CID)
    assert asked.query == {"count": "3", "type": "push"}
    with pytest.raises(PushRetryable):
        await jpush.new_cids(4)  # JPush gave fewer than asked: none is used
    with pytest.raises(ValueError):
        await jpush.new_cids(1001)
