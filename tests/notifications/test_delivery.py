"""Notifications leave the server (issue 10): the outbox row written with each inbox entry, expanded by a
delivery worker into one delivery per channel the person takes, sent by app push (the JPush sandbox) and
WeChat (the WeChat sandbox), each try marked with Notify's statuses; what was rolled back is never sent;
retries, permanent failures, quiet hours, the person's choices, and the status a resident sees."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import pytest
from tortoise import connections

from api.kit import clock
from api.kit.clock import CITY_TZ
from api.kit.db import in_transaction
from api.notifications.delivery import Senders, deliver_once, quiet_until
from models import notifications as db
from tests.support.cases import act_ok, body, case_in, make_world, missing_all, submit
from tests.support.people import wechat_code

NOTIFICATIONS = "/api/v1/notifications"
DEVICES = "/api/v1/me/devices"
PREFERENCES = "/api/v1/me/notification-preferences"


def senders(app, **settings) -> Senders:
    """The app's senders; without default quiet hours unless given (the tests run at any time of day)."""
    integrations = app.ctx.services.integrations
    config = app.ctx.settings.notifications.model_copy(
        update={"quiet_start": "00:00", "quiet_end": "00:00", **settings}
    )
    return Senders(push=integrations.push, wechat=integrations.wechat, settings=config)


async def device(client, headers, registration_id: str = "rid-zhang-1", platform: str = "android"):
    r = await client.post(
        DEVICES,
        json={"registration_id": registration_id, "platform": platform, "app_version": "3.2.0"},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    return r.json()


async def bind_wechat(client, headers) -> str:
    code, openid = await wechat_code(client)
    r = await client.post("/api/v1/me/bindings/wechat", json={"code": code}, headers=headers)
    assert r.status_code == 201, r.text
    return openid


async def submitted(w) -> dict:
    r = await submit(w.client, w.resident, body(), key=uuid.uuid4().hex)
    assert r.status_code == 201, r.text
    return r.json()


async def newest_notification(client, headers) -> dict:
    inbox = (await client.get(NOTIFICATIONS, headers=headers)).json()["items"]
    r = await client.get(f"{NOTIFICATIONS}/{inbox[0]['id']}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def channel(detail: dict, name: str) -> dict:
    return next(c for c in detail["channels"] if c["channel"] == name)


async def test_a_submission_reaches_the_resident_by_push_and_wechat_once_each(app, client):
    w = await make_world(app, client, second_resident=False)
    await device(client, w.resident)
    openid = await bind_wechat(client, w.resident)
    case = await submitted(w)
    workers = senders(app)

    report = await deliver_once(workers)
    assert (report.expanded, report.created, report.sent) == (1, 2, 2)
    pushed = await app.ctx.services.integrations.push.sent_to("rid-zhang-1")
    assert len(pushed) == 1 and pushed[0]["title"] == "您的申请已提交，等待受理"
    assert pushed[0]["extras"]["application_id"] == str(case["id"])
    messages = await app.ctx.services.integrations.wechat.messages_to(openid)
    assert len(messages) == 1
    assert messages[0]["template_id"] == "sandbox-application-status"
    assert messages[0]["data"]["character_string2"] == case["number"]
    assert all(len(v) <= 20 for v in messages[0]["data"].values())

    detail = await newest_notification(client, w.resident)
    assert channel(detail, "inbox")["status"] == "delivered"
    # JPush's report says the phone got it (the same pass asked); WeChat's receipt comes by its callback
    assert channel(detail, "push")["status"] == "delivered"
    assert [h["status"] for h in channel(detail, "push")["history"]] == [
        "created",
        "sending",
        "sent",
        "delivered",
    ]
    assert channel(detail, "wechat")["status"] == "sent"
    assert [h["status"] for h in channel(detail, "wechat")["history"]] == ["created", "sending", "sent"]

    # the next pass tells the clerks of the case's point it arrived; the one after finds nothing to do,
    # and nobody got anything twice
    await deliver_once(workers)
    again = await deliver_once(workers)
    assert again.work == 0
    assert len(await app.ctx.services.integrations.push.sent_to("rid-zhang-1")) == 1
    assert len(await app.ctx.services.integrations.wechat.messages_to(openid)) == 1


async def test_what_was_rolled_back_is_never_sent(app, client):
    w = await make_world(app, client, second_resident=False)
    await device(client, w.resident)
    with pytest.raises(RuntimeError):
        async with in_transaction():
            await db.notify(w.resident_id, "application_status", "不会发出", "回滚的变更")
            raise RuntimeError("the change fails after its notification was written")
    assert await db.Outbox.all().count() == 0
    report = await deliver_once(senders(app))
    assert report.work == 0
    assert await app.ctx.services.integrations.push.sent_to("rid-zhang-1") == []


async def test_a_busy_provider_is_tried_again_later_until_it_takes_it(app, client):
    w = await make_world(app, client, second_resident=False)
    await device(client, w.resident, "busy-zhang")  # the sandbox answers "busy" twice, then takes it
    await submitted(w)
    workers = senders(app)
    first = await deliver_once(workers)
    assert first.retrying == 1
    row = await db.Delivery.get(channel="push")
    assert row.status == "temporary-failure" and row.attempts == 1
    assert row.next_attempt_at > clock.now() + timedelta(seconds=10)  # not hammered at once
    assert (await deliver_once(workers)).tried == 0  # not due yet

    later = clock.now() + timedelta(hours=1)
    assert (await deliver_once(workers, now=later)).retrying == 1
    assert (await deliver_once(workers, now=later + timedelta(hours=1))).sent == 1
    detail = await newest_notification(client, w.resident)
    push = channel(detail, "push")
    # taken on the third try, and the phone reported it received (JPush's report, asked in that pass)
    assert push["status"] == "delivered" and push["attempts"] == 3
    assert [h["status"] for h in push["history"]] == [
        "created",
        "sending",
        "temporary-failure",
        "sending",
        "temporary-failure",
        "sending",
        "sent",
        "delivered",
    ]
    assert len(await app.ctx.services.integrations.push.sent_to("busy-zhang")) == 1


async def test_past_the_retry_horizon_a_delivery_is_a_technical_failure(app, client):
    w = await make_world(app, client, second_resident=False)
    await device(client, w.resident, "busy-zhang-2")
    await submitted(w)
    await deliver_once(senders(app, retry_horizon=1.0))
    row = await db.Delivery.get(channel="push")
    assert row.status == "technical-failure"


async def test_an_uninstalled_app_is_a_permanent_failure_and_its_device_is_dropped(app, client):
    w = await make_world(app, client, second_resident=False)
    await device(client, w.resident, "gone-zhang")
    await submitted(w)
    report = await deliver_once(senders(app))
    assert report.failed == 1
    assert (await db.Delivery.get(channel="push")).status == "permanent-failure"
    assert (await client.get(DEVICES, headers=w.resident)).json()["items"] == []


async def test_a_worker_that_died_mid_push_leaves_a_try_that_sends_nothing_twice(app, client):
    """A worker claimed the push and JPush took it, then the worker died before marking it: once its hold
    lapses the sweep gives it back, and the next try carries the same cid, which JPush does not send again."""
    w = await make_world(app, client, second_resident=False)
    await device(client, w.resident)
    await submitted(w)
    workers = senders(app)
    now = clock.now()
    from api.notifications.delivery import DeliveryReport, expand_once

    await expand_once(workers, DeliveryReport(), now)
    held_until = now + timedelta(seconds=60)
    (delivery_id,) = await db.claim_deliveries(now, held_until, 10)
    target = {"registration_ids": ["rid-zhang-1"], "platforms": ["android"], "cid": "cid-of-the-dead"}
    await db.set_target(delivery_id, target)
    from integrations.push import PushMessage

    await workers.push.push(
        PushMessage(registration_ids=("rid-zhang-1",), platforms=("android",), title="t", body="b"),
        "cid-of-the-dead",
    )  # ... and the worker dies here

    report = await deliver_once(workers, now=held_until + timedelta(seconds=1))
    assert report.swept == 1 and report.sent == 1
    assert len(await workers.push.sent_to("rid-zhang-1")) == 1
    history = [e.status for e in await db.DeliveryEvent.filter(delivery_id=delivery_id).order_by("id")]
    assert history == ["created", "sending", "temporary-failure", "sending", "sent", "delivered"]


async def test_two_workers_never_claim_one_delivery_twice(app, client):
    w = await make_world(app, client, second_resident=False)
    note = await db.notify(w.resident_id, "application_status", "t", "b")
    now = clock.now()
    # 300 due deliveries (one notification each: a delivery is unique per notification and channel)
    for _ in range(300):
        n = await db.Notification.create(
            account_id=w.resident_id, kind="application_status", title="t", body="b"
        )
        await db.create_delivery(
            n.id, "push", {"registration_ids": ["x"], "platforms": ["android"]}, "created", now, None
        )
    assert note.id
    held = now + timedelta(seconds=60)

    async def worker() -> list[int]:
        got: list[int] = []
        while True:
            batch = await db.claim_deliveries(now, held, 7)
            if not batch:
                return got
            got.extend(batch)
            await asyncio.sleep(0)

    first, second = await asyncio.gather(worker(), worker())
    assert not set(first) & set(second)
    assert len(first) + len(second) == 300
    if connections.get("default").capabilities.dialect == "postgres":
        assert first and second  # both took part: the rows one held were skipped by the other


async def test_a_channel_turned_off_is_not_sent_and_a_mandatory_inbox_cannot_be(app, client):
    w = await make_world(app, client, second_resident=False)
    await device(client, w.resident)
    r = await client.put(
        PREFERENCES, json={"categories": {"application_status": {"push": False}}}, headers=w.resident
    )
    assert r.status_code == 200, r.text
    status = next(c for c in r.json()["categories"] if c["category"] == "application_status")
    assert status["channels"] == {"inbox": True, "push": False, "wechat": True}
    await submitted(w)
    await deliver_once(senders(app))
    assert await db.Delivery.all().count() == 0  # no push; no WeChat either: none bound
    assert await app.ctx.services.integrations.push.sent_to("rid-zhang-1") == []

    before = (await client.get(PREFERENCES, headers=w.resident)).json()
    for wrong, field in (
        ({"categories": {"application_returned": {"inbox": False}}}, "categories.application_returned.inbox"),
        ({"categories": {"lottery": {"push": True}}}, "categories.lottery"),
        ({"categories": {"application_status": {"sms": True}}}, "categories.application_status.sms"),
        ({"categories": {"application_status": {"push": 0}}}, "categories.application_status.push"),
    ):
        r = await client.put(PREFERENCES, json=wrong, headers=w.resident)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in r.json()["errors"]] == [field]
    assert (await client.get(PREFERENCES, headers=w.resident)).json() == before


async def test_quiet_hours_hold_push_until_they_end_but_not_the_inbox(app, client):
    w = await make_world(app, client, second_resident=False)
    await device(client, w.resident)
    local = clock.now().astimezone(CITY_TZ)
    start = (local - timedelta(hours=1)).strftime("%H:%M")
    end = (local + timedelta(hours=1)).strftime("%H:%M")
    r = await client.put(PREFERENCES, json={"quiet_hours": {"start": start, "end": end}}, headers=w.resident)
    assert r.status_code == 200 and r.json()["quiet_hours"] == {"start": start, "end": end}
    await submitted(w)
    report = await deliver_once(senders(app))
    assert report.created == 1 and report.sent == 0
    assert len((await client.get(NOTIFICATIONS, headers=w.resident)).json()["items"]) == 1
    held = await db.Delivery.get(channel="push")
    assert held.next_attempt_at > clock.now() + timedelta(minutes=50)
    assert (await deliver_once(senders(app), now=held.next_attempt_at)).sent == 1


def test_quiet_hours_over_midnight_end_the_next_morning():
    night = datetime(2026, 12, 3, 23, 30, tzinfo=CITY_TZ)
    assert quiet_until(night, (22 * 60, 8 * 60)) == datetime(2026, 12, 4, 8, 0, tzinfo=CITY_TZ)
    early = datetime(2026, 12, 4, 6, 0, tzinfo=CITY_TZ)
    assert quiet_until(early, (22 * 60, 8 * 60)) == datetime(2026, 12, 4, 8, 0, tzinfo=CITY_TZ)
    assert quiet_until(datetime(2026, 12, 4, 12, 0, tzinfo=CITY_TZ), (22 * 60, 8 * 60)) is None
    assert quiet_until(night, None) is None


async def test_a_device_moves_to_the_account_that_registers_it_last(app, client):
    w = await make_world(app, client)
    await device(client, w.resident, "shared-phone")
    await device(client, w.other_resident, "shared-phone")
    assert (await client.get(DEVICES, headers=w.resident)).json()["items"] == []
    mine = (await client.get(DEVICES, headers=w.other_resident)).json()["items"]
    assert [d["registration_id"] for d in mine] == ["shared-phone"]
    assert await db.Device.all().count() == 1
    assert (await client.delete(f"{DEVICES}/shared-phone", headers=w.resident)).status_code == 404
    assert (await client.delete(f"{DEVICES}/shared-phone", headers=w.other_resident)).status_code == 204
    for nothing in ("%F0%98%B7%A1%ED%87%BD", "a" * 65, "a%20b"):  # never a registration id: 404, no query
        assert (await client.delete(f"{DEVICES}/{nothing}", headers=w.resident)).status_code == 404
    bad = await client.post(
        DEVICES,
        json={"registration_id": "x y", "platform": "symbian", "app_version": "1"},
        headers=w.resident,
    )
    assert bad.status_code == 422


async def test_a_notification_s_status_is_its_owner_s_alone(app, client):
    w = await make_world(app, client)
    await submitted(w)
    mine = (await client.get(NOTIFICATIONS, headers=w.resident)).json()["items"][0]["id"]
    assert (await client.get(f"{NOTIFICATIONS}/{mine}", headers=w.other_resident)).status_code == 404
    assert (await client.get(f"{NOTIFICATIONS}/{mine}", headers=w.resident)).status_code == 200


async def test_a_returned_case_tells_the_resident_in_its_mandatory_category(app, client):
    w = await make_world(app, client, second_resident=False)
    await device(client, w.resident)
    await client.put(
        PREFERENCES, json={"categories": {"application_status": {"push": False}}}, headers=w.resident
    )
    case = await case_in(w, "submitted")
    await act_ok(w, "grid", case["id"], "return", missing_materials=missing_all())
    newest = (await client.get(NOTIFICATIONS, headers=w.resident)).json()["items"][0]
    assert newest["kind"] == "application_returned"
    await deliver_once(senders(app))
    # the submission's own push was turned off with its category; the return's was not
    pushed = await app.ctx.services.integrations.push.sent_to("rid-zhang-1")
    assert [p["title"] for p in pushed] == [newest["title"]]


async def test_quiet_hours_default_to_the_city_s_and_can_be_turned_off(app, client):
    w = await make_world(app, client, second_resident=False)
    first = (await client.get(PREFERENCES, headers=w.resident)).json()
    assert first["quiet_hours"] == {"start": "22:00", "end": "08:00"}  # config.toml's default
    assert {c["category"] for c in first["categories"]} >= {"application_status", "application_returned"}
    # changing a channel keeps the default quiet hours; null turns them off; leaving them out keeps that
    r = await client.put(
        PREFERENCES, json={"categories": {"complaint_reply": {"wechat": False}}}, headers=w.resident
    )
    assert r.json()["quiet_hours"] == {"start": "22:00", "end": "08:00"}
    assert (await client.put(PREFERENCES, json={"quiet_hours": None}, headers=w.resident)).json()[
        "quiet_hours"
    ] is None
    r = await client.put(PREFERENCES, json={"categories": {}}, headers=w.resident)
    assert r.json()["quiet_hours"] is None
    reply = next(c for c in r.json()["categories"] if c["category"] == "complaint_reply")
    assert reply["channels"] == {"inbox": True, "push": True, "wechat": False}


async def test_the_sandbox_shows_a_tester_what_went_out(app, client):
    w = await make_world(app, client, second_resident=False)
    await device(client, w.resident)
    openid = await bind_wechat(client, w.resident)
    await submitted(w)
    await deliver_once(senders(app))
    pushes = (await client.get("/api/v1/sandbox/push", params={"registration_id": "rid-zhang-1"})).json()
    assert [p["title"] for p in pushes["items"]] == ["您的申请已提交，等待受理"]
    messages = (await client.get("/api/v1/sandbox/wechat/messages", params={"openid": openid})).json()
    wechat = await db.Delivery.get(channel="wechat")
    assert [m["client_msg_id"] for m in messages["items"]] == [f"ywt-d{wechat.id}"]


def test_the_preferences_schema_names_every_category_and_channel():
    from api.notifications.categories import CATEGORIES, CHANNELS
    from api.notifications.schemas import CategoryChoices, ChannelChoices, MandatoryChannelChoices

    assert set(CategoryChoices.model_fields) == set(CATEGORIES)
    assert set(ChannelChoices.model_fields) == set(CHANNELS)
    for kind, category in CATEGORIES.items():
        wanted = MandatoryChannelChoices if category.mandatory else ChannelChoices
        assert CategoryChoices.model_fields[kind].annotation == wanted | None, kind


async def test_a_push_held_by_quiet_hours_still_gets_its_retries(app, client, monkeypatch):
    """The retry horizon runs from the first try: a night's quiet hours (longer than the horizon) do not
    use it up before the morning's first try."""
    w = await make_world(app, client, second_resident=False)
    await device(client, w.resident, "busy-morning")
    local = clock.now().astimezone(CITY_TZ)
    start, end = (
        (local - timedelta(hours=1)).strftime("%H:%M"),
        (local + timedelta(hours=5)).strftime("%H:%M"),
    )
    await client.put(PREFERENCES, json={"quiet_hours": {"start": start, "end": end}}, headers=w.resident)
    await submitted(w)
    workers = senders(app, retry_horizon=3600.0)  # one hour, shorter than the quiet hours
    await deliver_once(workers)
    held = await db.Delivery.get(channel="push")
    morning = held.next_attempt_at
    monkeypatch.setattr(clock, "now", lambda: morning + timedelta(seconds=1))  # the morning comes
    assert (await deliver_once(workers, now=morning)).retrying == 1  # busy: tried again, not given up


async def test_a_device_that_moved_after_expansion_gets_nothing_of_its_former_owner(app, client):
    w = await make_world(app, client)
    await device(client, w.resident, "handed-on")
    await submitted(w)
    from api.notifications.delivery import DeliveryReport, expand_once

    await expand_once(senders(app), DeliveryReport(), clock.now())  # the delivery names "handed-on"
    await device(client, w.other_resident, "handed-on")  # ... then the phone changes hands
    report = await deliver_once(senders(app))
    assert report.failed == 1
    assert (await db.Delivery.get(channel="push")).status == "permanent-failure"
    assert await app.ctx.services.integrations.push.sent_to("handed-on") == []


async def test_a_deleted_account_s_deliveries_keep_no_device_or_openid(app, client):
    w = await make_world(app, client, second_resident=False)
    await device(client, w.resident)
    await bind_wechat(client, w.resident)
    await submitted(w)
    await deliver_once(senders(app))
    assert all(d.target for d in await db.Delivery.all())
    from models import identity as identity_db

    await identity_db.anonymise_account(w.resident_id, clock.now())
    assert [d.target for d in await db.Delivery.all()] == [{}, {}]
