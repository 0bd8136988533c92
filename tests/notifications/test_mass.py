"""Announcements by WeChat (issue 10 part 4): one mass send (群发) to the bound accounts that follow the
official account, its clientmsgid kept before sending so a retry never sends twice, WeChat's
MASSSENDJOBFINISH settling every delivery of the job, and a lone follower never left waiting for ever."""

from __future__ import annotations

from datetime import timedelta

from api.kit import clock
from api.kit.errors import UpstreamTimeout
from api.notifications.delivery import deliver_once
from models import notifications as db
from tests.notifications.test_announcements import publish, shown
from tests.notifications.test_delivery import bind_wechat, channel, newest_notification, senders
from tests.support.cases import make_world
from tests.wechat.peer import Peer, event


async def followers(app, client, *headers) -> list[str]:
    """Each of these people binds his WeChat and follows the official account (through its callback)."""
    peer = Peer(app.ctx.settings.wechat)
    openids = []
    for h in headers:
        openid = await bind_wechat(client, h)
        assert (await peer.post(client, event(openid, "subscribe"))).status_code == 200
        openids.append(openid)
    return openids


async def test_an_announcement_goes_to_followers_as_one_mass_send_settled_by_its_job_receipt(app, client):
    w = await make_world(app, client)
    openids = await followers(app, client, w.resident, w.other_resident)
    published = await publish(w, channels=["inbox", "wechat"])

    await deliver_once(senders(app))
    wechat = app.ctx.services.integrations.wechat
    [mass] = await wechat.mass_messages()
    assert sorted(mass["openids"]) == sorted(openids)
    assert mass["content"].startswith("【春节期间便民服务站开放时间调整】") and "12345" in mass["content"]
    assert (await shown(w, published["id"]))["deliveries"] == {"wechat": {"sent": 2}}

    # WeChat's word on the job, at the callback: both are delivered; the same event again changes nothing
    peer = Peer(app.ctx.settings.wechat)
    finished = event(
        "gh_system",
        "MASSSENDJOBFINISH",
        MsgID=int(mass["msg_id"]),
        Status="send success",
        TotalCount=2,
        FilterCount=2,
        SentCount=2,
        ErrorCount=0,
    )
    for _ in range(2):
        assert (await peer.post(client, finished)).status_code == 200
    assert (await shown(w, published["id"]))["deliveries"] == {"wechat": {"delivered": 2}}
    detail = await newest_notification(client, w.resident)
    assert detail["kind"] == "announcement" and channel(detail, "wechat")["status"] == "delivered"
    # the next passes send nothing more
    await deliver_once(senders(app), clock.now() + timedelta(hours=1))
    assert len(await wechat.mass_messages()) == 1


async def test_a_mass_send_that_timed_out_is_tried_again_with_its_clientmsgid_and_sent_once(
    app, client, monkeypatch
):
    w = await make_world(app, client)
    await followers(app, client, w.resident, w.other_resident)
    published = await publish(w, channels=["inbox", "wechat"])
    wechat = app.ctx.services.integrations.wechat
    real = wechat.mass_send_text

    async def taken_then_lost(openids, content, clientmsgid):
        await real(openids, content, clientmsgid)  # WeChat took it; its answer never came back
        raise UpstreamTimeout("WeChat")

    monkeypatch.setattr(wechat, "mass_send_text", taken_then_lost)
    await deliver_once(senders(app))
    assert (await shown(w, published["id"]))["deliveries"] == {"wechat": {"temporary-failure": 2}}
    monkeypatch.setattr(wechat, "mass_send_text", real)

    await deliver_once(senders(app), clock.now() + timedelta(hours=1))
    [mass] = await wechat.mass_messages()  # WeChat answered the first job's msg_id and sent nothing again
    assert (await shown(w, published["id"]))["deliveries"] == {"wechat": {"sent": 2}}
    refs = {d.provider_ref for d in await db.Delivery.filter(channel="wechat")}
    assert refs == {f"mass:{mass['msg_id']}"}


async def test_a_lone_follower_is_given_up_not_kept_waiting(app, client):
    w = await make_world(app, client)
    await followers(app, client, w.resident)
    await bind_wechat(client, w.other_resident)  # bound, but he never followed: no mass send for him
    published = await publish(w, channels=["inbox", "wechat"])

    await deliver_once(senders(app))
    assert await app.ctx.services.integrations.wechat.mass_messages() == []
    assert (await shown(w, published["id"]))["deliveries"] == {"wechat": {"permanent-failure": 1}}
    detail = await newest_notification(client, w.resident)
    assert "two followers" in channel(detail, "wechat")["history"][-1]["detail"]


async def test_a_follower_who_unfollows_after_the_fan_out_is_sent_nothing(app, client):
    from api.notifications.delivery import DeliveryReport, announce_once

    w = await make_world(app, client)
    _, li = await followers(app, client, w.resident, w.other_resident)
    published = await publish(w, channels=["inbox", "wechat"])
    workers = senders(app)
    await announce_once(workers, DeliveryReport(), clock.now())  # fanned out, nothing sent yet
    assert (await Peer(app.ctx.settings.wechat).post(client, event(li, "unsubscribe"))).status_code == 200

    await deliver_once(workers)
    assert await app.ctx.services.integrations.wechat.mass_messages() == []  # 张三 alone: WeChat wants two
    assert (await shown(w, published["id"]))["deliveries"] == {"wechat": {"permanent-failure": 2}}
    detail = await newest_notification(client, w.other_resident)
    assert "no longer follows" in channel(detail, "wechat")["history"][-1]["detail"]


async def test_a_job_wechat_reports_failed_fails_every_delivery_it_named(app, client):
    w = await make_world(app, client)
    await followers(app, client, w.resident, w.other_resident)
    published = await publish(w, channels=["inbox", "wechat"])
    await deliver_once(senders(app))
    [mass] = await app.ctx.services.integrations.wechat.mass_messages()
    failed = event(
        "gh_system", "MASSSENDJOBFINISH", MsgID=int(mass["msg_id"]), Status="err(30003)", TotalCount=2
    )
    assert (await Peer(app.ctx.settings.wechat).post(client, failed)).status_code == 200
    assert (await shown(w, published["id"]))["deliveries"] == {"wechat": {"permanent-failure": 2}}
    detail = await newest_notification(client, w.other_resident)
    assert "err(30003)" in channel(detail, "wechat")["history"][-1]["detail"]


# ---- subscribe notifications (订阅通知) -------------------------------------------------------------------

SUBSCRIBE_ONLY = {
    # application_status by subscribe notification instead of a template (as a category with no template)
    "wechat_templates": {},
    "wechat_subscribe": {
        "application_status": {
            "template_id": "sub-case-status",
            "fields": {"thing1": "title", "character_string2": "number", "time3": "time"},
        }
    },
}


def consent(openid: str, status: str, kind: str = "subscribe_msg_popup_event") -> str:
    holder = "SubscribeMsgPopupEvent" if kind == "subscribe_msg_popup_event" else "SubscribeMsgChangeEvent"
    return event(
        openid,
        kind,
        **{
            holder: "<List><TemplateId><![CDATA[sub-case-status]]></TemplateId>"
            f"<SubscribeStatusString><![CDATA[{status}]]></SubscribeStatusString></List>"
        },
    )


async def test_a_category_without_a_template_goes_by_subscribe_notification_to_those_who_accepted_it(
    app, client
):
    from tests.notifications.test_delivery import submitted

    w = await make_world(app, client, second_resident=False)
    [openid] = await followers(app, client, w.resident)
    workers = senders(app, **SUBSCRIBE_ONLY)
    wechat = app.ctx.services.integrations.wechat
    peer = Peer(app.ctx.settings.wechat)

    # not accepted yet: his case's news reaches the inbox, nothing goes by WeChat
    await submitted(w)
    await deliver_once(workers)
    assert await wechat.subscribe_messages_to(openid) == []
    assert [c["channel"] for c in (await newest_notification(client, w.resident))["channels"]] == ["inbox"]

    assert (await peer.post(client, consent(openid, "accept"))).status_code == 200
    case = await submitted(w)
    await deliver_once(workers)
    [sent] = await wechat.subscribe_messages_to(openid)
    assert sent["template_id"] == "sub-case-status" and sent["data"]["character_string2"] == case["number"]
    assert all(len(v) <= 20 for v in sent["data"].values())
    assert channel(await newest_notification(client, w.resident), "wechat")["status"] == "sent"
    # WeChat gives no receipt for it: `sent` is where it ends, the receipt timeout leaves it be
    await deliver_once(workers, clock.now() + timedelta(days=4))
    assert channel(await newest_notification(client, w.resident), "wechat")["status"] == "sent"
    assert len(await wechat.messages_to(openid)) == 0  # and no template message besides

    # he withdraws his consent in WeChat: the next case's news goes to the inbox only
    assert (
        await peer.post(client, consent(openid, "reject", "subscribe_msg_change_event"))
    ).status_code == 200
    await submitted(w)
    await deliver_once(workers)
    assert len(await wechat.subscribe_messages_to(openid)) == 1


async def test_a_subscribe_notification_whose_send_timed_out_is_not_tried_again(app, client, monkeypatch):
    from tests.notifications.test_delivery import submitted

    w = await make_world(app, client, second_resident=False)
    [openid] = await followers(app, client, w.resident)
    assert (await Peer(app.ctx.settings.wechat).post(client, consent(openid, "accept"))).status_code == 200
    wechat = app.ctx.services.integrations.wechat
    real = wechat.send_subscribe

    async def taken_then_lost(*args, **kwargs):
        await real(*args, **kwargs)
        raise UpstreamTimeout("WeChat")

    monkeypatch.setattr(wechat, "send_subscribe", taken_then_lost)
    await submitted(w)
    workers = senders(app, **SUBSCRIBE_ONLY)
    await deliver_once(workers)
    monkeypatch.setattr(wechat, "send_subscribe", real)
    # within the 10 minutes a template's try in doubt would be made again in
    await deliver_once(workers, clock.now() + timedelta(minutes=5))
    # no key WeChat de-duplicates by: a second try could reach him twice, so there is none
    assert len(await wechat.subscribe_messages_to(openid)) == 1
    assert channel(await newest_notification(client, w.resident), "wechat")["status"] == "technical-failure"
