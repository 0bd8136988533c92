"""The official account's callback against a WeChat peer (tests/wechat/peer.py), plain and safe mode:
signatures, timestamps, de-duplication, hostile XML, the body cap, and what each message and event does."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from models import wechat as wechat_db
from tests.support.cases import make_world, new_case
from tests.support.people import ZHANG, bearer, sms_sign_in, wechat_code
from tests.wechat.peer import URL, Peer, event, sign, text

OPENID = "oZhangSan0000000000000000001"
POINT = "P360502001001"  # tests/support/catalog.py's community point


@pytest.fixture
def peer(app) -> Peer:
    return Peer(app.ctx.settings.wechat)


def configure(app, monkeypatch, **update) -> None:
    """The official account's settings changed for one test (the settings themselves are frozen)."""
    from api.wechat.deps import Official

    changed = app.ctx.settings.wechat.model_copy(update=update)
    monkeypatch.setattr(Official, "settings", property(lambda self: changed))


async def _bound_zhang(client, openid: str = OPENID) -> dict:
    """张三 signed in on the app, his WeChat (this openid) bound."""
    tokens = await sms_sign_in(client, ZHANG["phone"])
    code, _ = await wechat_code(client, openid)
    r = await client.post("/api/v1/me/bindings/wechat", json={"code": code}, headers=bearer(tokens))
    assert r.status_code == 201, r.text
    return tokens


# ---- the URL check ---------------------------------------------------------------------------------------


async def test_the_url_check_echoes_echostr_when_signed_and_403_when_not(client, peer):
    query = peer.query() | {"echostr": "5839925613217812345"}
    r = await client.get(URL, params=query)
    assert r.status_code == 200 and r.text == "5839925613217812345"
    forged = query | {"signature": sign("another-token", query["timestamp"], query["nonce"])}
    r = await client.get(URL, params=forged)
    assert r.status_code == 403 and r.json()["code"] == "wechat_signature_invalid"
    assert "5839925613217812345" not in r.text


# ---- refused callbacks --------------------------------------------------------------------------------


async def test_a_forged_signature_is_403_and_nothing_is_done(client, peer):
    query = peer.query()
    query["signature"] = sign("not-our-token", query["timestamp"], query["nonce"])
    r = await client.post(URL, params=query, content=event(OPENID, "subscribe").encode())
    assert r.status_code == 403 and r.json()["code"] == "wechat_signature_invalid"
    assert await wechat_db.follower(OPENID) is None


async def test_a_forged_message_signature_in_safe_mode_is_403(client, peer):
    query = peer.query()
    body = peer.seal(event(OPENID, "subscribe"), query)
    query["msg_signature"] = "0" * 40
    r = await client.post(URL, params=query, content=body.encode())
    assert r.status_code == 403 and r.json()["code"] == "wechat_signature_invalid"
    assert await wechat_db.follower(OPENID) is None


async def test_a_message_encrypted_for_another_account_is_403(client, app):
    from api.kit.config import WechatSection

    other = WechatSection(**(app.ctx.settings.wechat.model_dump() | {"app_id": "wx_someone_else"}))
    r = await Peer(other).post(client, event(OPENID, "subscribe"), safe=True)
    assert r.status_code == 403
    assert await wechat_db.follower(OPENID) is None


@pytest.mark.parametrize("off", [-301, 301, -86400])
async def test_a_stale_timestamp_is_403(client, peer, off):
    r = await peer.post(client, event(OPENID, "subscribe"), timestamp=int(time.time()) + off)
    assert r.status_code == 403 and r.json()["code"] == "wechat_timestamp_stale"
    assert await wechat_db.follower(OPENID) is None


async def test_a_timestamp_within_300_seconds_is_taken(client, peer):
    r = await peer.post(client, event(OPENID, "subscribe"), timestamp=int(time.time()) - 290)
    assert r.status_code == 200
    assert (await wechat_db.follower(OPENID)).subscribed is True


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    "<xml><ToUserName>gh</ToUserName><FromUserName>{o}</FromUserName><CreateTime>1</CreateTime>"
    "<MsgType>text</MsgType><Content>&lol3;</Content><MsgId>1</MsgId></xml>"
)
XXE = (
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    "<xml><ToUserName>gh</ToUserName><FromUserName>{o}</FromUserName><CreateTime>1</CreateTime>"
    "<MsgType>text</MsgType><Content>&xxe;</Content><MsgId>2</MsgId></xml>"
)
DTD_ONLY = '<!DOCTYPE xml SYSTEM "http://127.0.0.1:9/x.dtd"><xml><MsgType>text</MsgType></xml>'


@pytest.mark.parametrize("safe", [False, True], ids=["plain", "safe"])
@pytest.mark.parametrize(
    "body", [BILLION_LAUGHS, XXE, DTD_ONLY, "not xml at all", "<xml><a></xml>", "<other/>"], ids=str.__len__
)
async def test_hostile_or_broken_xml_is_400(client, peer, body, safe):
    r = await peer.post(client, body.replace("{o}", OPENID), safe=safe)
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "wechat_message_invalid"
    assert "root:" not in r.text


async def test_a_2_mb_body_is_413(client, peer):
    huge = text(OPENID, "进" * (2 * 1024 * 1024 // 3))
    r = await peer.post(client, huge)
    assert r.status_code == 413


async def test_plain_messages_are_refused_when_the_account_is_in_safe_mode(client, app, peer, monkeypatch):
    configure(app, monkeypatch, callback_mode="safe")
    r = await peer.post(client, event(OPENID, "subscribe"))
    assert r.status_code == 403 and r.json()["code"] == "wechat_mode_refused"
    r = await peer.post(client, event(OPENID, "subscribe"), safe=True)
    assert r.status_code == 200


# ---- de-duplication ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("safe", [False, True], ids=["plain", "safe"])
async def test_the_same_msgid_twice_is_handled_once(client, peer, safe, caplog):
    xml = text(OPENID, "进度", msgid=6054768590064713728)
    first = peer.reply(await peer.post(client, xml, safe=safe), safe=safe)
    assert first is not None and first["MsgType"] == "news"  # unbound: the way to bind
    with caplog.at_level(logging.INFO, logger="ywt.wechat"):
        again = await peer.post(client, xml, safe=safe)  # WeChat's retry: another nonce, the same message
    assert peer.reply(again, safe=safe) is None
    assert any("seen before" in r.getMessage() for r in caplog.records)


async def test_an_event_is_deduplicated_by_sender_and_create_time(client, peer):
    at = int(time.time())
    await peer.post(client, event(OPENID, "subscribe", at=at, EventKey=f"qrscene_{POINT}"))
    await peer.post(client, event(OPENID, "unsubscribe", at=at + 1))
    # WeChat retries the first event: it is not done again (he stays unfollowed)
    r = await peer.post(client, event(OPENID, "subscribe", at=at, EventKey=f"qrscene_{POINT}"))
    assert peer.reply(r) is None
    assert (await wechat_db.follower(OPENID)).subscribed is False


# ---- events -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("safe", [False, True], ids=["plain", "safe"])
async def test_following_without_a_scene_welcomes_with_a_link_to_bind(client, peer, safe):
    reply = peer.reply(await peer.post(client, event(OPENID, "subscribe"), safe=safe), safe=safe)
    assert reply["ToUserName"] == OPENID and reply["MsgType"] == "news"
    article = reply["Articles"]["item"]
    assert "绑定" in article["Description"] and "/api/v1/wechat/oauth/start?next=/h5/bind" in article["Url"]
    assert (await wechat_db.follower(OPENID)).subscribed is True


async def test_following_by_a_points_qr_code_remembers_the_point_for_his_next_application(
    client, catalog, peer
):
    tokens = await _bound_zhang(client)
    reply = peer.reply(
        await peer.post(client, event(OPENID, "subscribe", EventKey=f"qrscene_{POINT}", Ticket="T"))
    )
    assert reply["MsgType"] == "news" and reply["Articles"]["item"]["Url"].endswith(f"/points/{POINT}")
    me = (await client.get("/api/v1/wechat/me", headers=bearer(tokens))).json()
    assert me["bound"] is True and me["follows"] is True and me["point"]["code"] == POINT


async def test_scanning_a_points_code_as_a_follower_remembers_it(client, catalog, peer):
    tokens = await _bound_zhang(client)
    await peer.post(client, event(OPENID, "subscribe"))
    reply = peer.reply(await peer.post(client, event(OPENID, "SCAN", EventKey=POINT, Ticket="T")))
    assert reply["Articles"]["item"]["Url"].endswith(f"/points/{POINT}")
    me = (await client.get("/api/v1/wechat/me", headers=bearer(tokens))).json()
    assert me["point"]["code"] == POINT


async def test_unfollowing_removes_what_we_hold_and_stops_wechat_messages_until_he_follows_again(
    client, catalog, peer, app
):
    tokens = await _bound_zhang(client)
    await peer.post(client, event(OPENID, "subscribe", EventKey=f"qrscene_{POINT}"))
    popup = (
        "<SubscribeMsgPopupEvent><List><TemplateId>tpl-case-status</TemplateId>"
        "<SubscribeStatusString>accept</SubscribeStatusString><PopupScene>2</PopupScene></List>"
        "</SubscribeMsgPopupEvent>"
    )
    await peer.post(
        client,
        event(OPENID, "subscribe_msg_popup_event", at=int(time.time()) + 1, **{"X": popup})
        .replace("<X>", "")
        .replace("</X>", ""),
    )
    assert await wechat_db.consents_of(OPENID) == ["tpl-case-status"]
    version_before = (await client.get("/api/v1/me", headers=bearer(tokens))).status_code
    assert version_before == 200

    r = await peer.post(client, event(OPENID, "unsubscribe", at=int(time.time()) + 2))
    assert peer.reply(r) is None
    follower = await wechat_db.follower(OPENID)
    assert follower.subscribed is False and follower.scene_point_id is None and follower.scene_at is None
    assert await wechat_db.consents_of(OPENID) == []
    me = (await client.get("/api/v1/wechat/me", headers=bearer(tokens))).json()
    assert me == {"bound": True, "follows": False, "point": None, "point_since": None}
    assert await wechat_db.unfollowed_among([OPENID]) == {OPENID}

    await peer.post(client, event(OPENID, "subscribe", at=int(time.time()) + 3))
    assert await wechat_db.unfollowed_among([OPENID]) == set()


async def test_progress_answers_with_his_latest_case_by_keyword_and_by_menu(client, app, peer):
    w = await make_world(app, client, second_resident=False)
    code, _ = await wechat_code(client, OPENID)
    assert (
        await client.post("/api/v1/me/bindings/wechat", json={"code": code}, headers=w.resident)
    ).status_code == 201
    case = await new_case(w)
    for xml in (text(OPENID, "我的办件进度"), event(OPENID, "CLICK", EventKey="MY_CASES")):
        reply = peer.reply(await peer.post(client, xml))
        assert reply["MsgType"] == "text"
        assert case["number"] in reply["Content"] and "已提交，待受理" in reply["Content"]
        assert f"/cases/{case['id']}" in reply["Content"]


async def test_his_answers_follow_his_binding_at_once_though_the_server_remembers_it(client, app, peer):
    """The server keeps who an openid is bound to between messages (api/identity/bound.py): binding,
    unbinding and a Redis that lost everything must each show in the very next answer."""
    w = await make_world(app, client, second_resident=False)
    case = await new_case(w)

    async def progress() -> dict:
        reply = peer.reply(await peer.post(client, text(OPENID, "进度")))
        assert reply is not None
        return reply

    for _ in range(2):  # the second answer is the remembered one
        assert (await progress())["MsgType"] == "news"  # bound to nobody: the way to bind
    code, _ = await wechat_code(client, OPENID)
    r = await client.post("/api/v1/me/bindings/wechat", json={"code": code}, headers=w.resident)
    assert r.status_code == 201, r.text
    for _ in range(2):
        answer = await progress()
        assert answer["MsgType"] == "text" and case["number"] in answer["Content"]
    assert (await client.delete("/api/v1/me/bindings/wechat", headers=w.resident)).status_code == 204
    assert (await progress())["MsgType"] == "news"
    # Redis loses every key (a restart), then he binds again: the copy "bound to nobody" is not believed
    await app.ctx.services.kernel.redis.flushdb()
    code, _ = await wechat_code(client, OPENID)
    r = await client.post("/api/v1/me/bindings/wechat", json={"code": code}, headers=w.resident)
    assert r.status_code == 201, r.text
    assert case["number"] in (await progress())["Content"]


async def test_keywords_point_to_licences_and_conveniences_and_anything_else_gets_help(client, peer):
    licences = peer.reply(await peer.post(client, text(OPENID, "证照")))
    assert licences["Articles"]["item"]["Url"].endswith("/licences")
    bills = peer.reply(await peer.post(client, text(OPENID, "交电费")))
    assert bills["Articles"]["item"]["Url"].endswith("/conveniences/bills")
    fines = peer.reply(await peer.post(client, event(OPENID, "CLICK", EventKey="CONVENIENCE_FINES")))
    assert fines["Articles"]["item"]["Url"].endswith("/conveniences/fines")
    other = peer.reply(await peer.post(client, text(OPENID, "你好")))
    assert other["MsgType"] == "text" and "进度" in other["Content"] and "菜单" in other["Content"]


async def test_a_location_gets_the_nearest_point(client, catalog, peer):
    reply = peer.reply(
        await peer.post(
            client, event(OPENID, "LOCATION", Latitude=27.8174, Longitude=114.9172, Precision=30.0)
        )
    )
    assert reply["MsgType"] == "news" and "/h5/points/" in reply["Articles"]["item"]["Url"]
    assert "米" in reply["Articles"]["item"]["Description"]


async def test_a_view_and_an_unknown_event_get_success_and_the_unknown_one_is_logged(client, peer, caplog):
    assert (
        peer.reply(
            await peer.post(client, event(OPENID, "VIEW", EventKey="https://ywt.xinyu.gov.cn/h5/items"))
        )
        is None
    )
    with caplog.at_level(logging.INFO, logger="ywt.wechat"):
        r = await peer.post(client, event(OPENID, "some_new_event_of_2027", at=int(time.time()) + 1))
    assert r.status_code == 200 and r.text == "success"
    assert any("do not handle" in rec.getMessage() for rec in caplog.records)


async def test_subscribe_message_consents_are_kept_and_a_rejection_removes_one(client, peer):
    def popup(name: str, items: list[tuple[str, str]], at: int) -> str:
        tag = "SubscribeMsgPopupEvent" if name == "subscribe_msg_popup_event" else "SubscribeMsgChangeEvent"
        body = "".join(
            f"<List><TemplateId><![CDATA[{t}]]></TemplateId><SubscribeStatusString><![CDATA[{s}]]>"
            "</SubscribeStatusString><PopupScene>0</PopupScene></List>"
            for t, s in items
        )
        return event(OPENID, name, at=at).replace("</xml>", f"<{tag}>{body}</{tag}></xml>")

    now = int(time.time())
    await peer.post(
        client,
        popup(
            "subscribe_msg_popup_event", [("tpl-a", "accept"), ("tpl-b", "accept"), ("tpl-c", "reject")], now
        ),
    )
    assert await wechat_db.consents_of(OPENID) == ["tpl-a", "tpl-b"]
    await peer.post(client, popup("subscribe_msg_change_event", [("tpl-a", "reject")], now + 1))
    assert await wechat_db.consents_of(OPENID) == ["tpl-b"]


# ---- the 5-second budget ----------------------------------------------------------------------------------


async def test_with_a_slow_database_the_reply_is_deferred_not_late(client, app, peer, monkeypatch):
    """The database answers after 2 s; the callback (budget 0.5 s) answers `success` in time, and a worker
    pass afterwards sends the reply as a customer-service message."""
    from tortoise import connections

    from api.wechat.service import replies_once

    w = await make_world(app, client, second_resident=False)
    code, _ = await wechat_code(client, OPENID)
    await client.post("/api/v1/me/bindings/wechat", json={"code": code}, headers=w.resident)
    case = await new_case(w)
    official = app.ctx.services.official
    configure(app, monkeypatch, reply_budget=0.5)
    conn = connections.get("default")
    slow = type(conn)
    original = slow.execute_query_dict

    async def execute_query_dict(self, *args, **kwargs):
        await asyncio.sleep(2.0)
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(slow, "execute_query_dict", execute_query_dict)
    started = time.perf_counter()
    r = await peer.post(client, text(OPENID, "进度"))
    took = time.perf_counter() - started
    monkeypatch.setattr(slow, "execute_query_dict", original)
    assert r.status_code == 200 and r.text == "success"
    assert took < 4.5, took  # WeChat's 5 s
    sandbox = app.ctx.services.integrations.wechat
    assert await sandbox.custom_messages_to(OPENID) == []
    report = await replies_once(official, "test-worker")
    assert report.sent == 1
    [sent] = await sandbox.custom_messages_to(OPENID)
    assert sent["message"]["msgtype"] == "text" and case["number"] in sent["message"]["text"]["content"]
    again = await replies_once(official, "test-worker")
    assert again.answered == 0  # done once


async def test_a_deferred_reply_a_worker_could_not_send_is_taken_again_by_another(
    client, app, peer, monkeypatch
):
    from api.wechat import service

    official = app.ctx.services.official
    monkeypatch.setattr(service, "DEFERRED_RETRY_MS", 0)
    await service._defer_or_forget(
        official,
        {"MsgType": "text", "FromUserName": OPENID, "Content": "你好", "CreateTime": str(int(time.time()))},
        "k",
        "slow",
    )
    sandbox = app.ctx.services.integrations.wechat
    calls = {"n": 0}
    real = sandbox.send_custom

    async def flaky(openid, message):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("WeChat went away")
        await real(openid, message)

    monkeypatch.setattr(sandbox, "send_custom", flaky)
    first = await service.replies_once(official, "worker-a")
    assert first.retried == 1 and first.sent == 0
    second = await service.replies_once(official, "worker-b")
    assert second.sent == 1
    assert len(await sandbox.custom_messages_to(OPENID)) == 1


async def test_a_template_message_receipt_settles_its_delivery_and_a_block_is_permanent(client, app, peer):
    from api.notifications.delivery import deliver_once
    from models import notifications as ndb
    from tests.notifications.test_delivery import bind_wechat, newest_notification, senders, submitted

    w = await make_world(app, client, second_resident=False)
    openid = await bind_wechat(client, w.resident)
    await submitted(w)
    await deliver_once(senders(app))
    [message] = await app.ctx.services.integrations.wechat.messages_to(openid)
    r = await peer.post(
        client, event(openid, "TEMPLATESENDJOBFINISH", MsgID=message["msgid"], Status="success")
    )
    assert r.status_code == 200 and r.text == "success"
    detail = await newest_notification(client, w.resident)
    wechat = next(c for c in detail["channels"] if c["channel"] == "wechat")
    assert wechat["status"] == "delivered"
    assert [h["status"] for h in wechat["history"]] == ["created", "sending", "sent", "delivered"]

    # another message, refused by him: a permanent failure
    await new_case(w)
    await deliver_once(senders(app))
    latest = (await app.ctx.services.integrations.wechat.messages_to(openid))[-1]
    await peer.post(
        client,
        event(
            openid,
            "TEMPLATESENDJOBFINISH",
            at=int(time.time()) + 1,
            MsgID=latest["msgid"],
            Status="failed:user block",
        ),
    )
    blocked = await ndb.Delivery.get(channel="wechat", provider_ref=latest["msgid"])
    assert blocked.status == "permanent-failure"
