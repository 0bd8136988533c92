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
