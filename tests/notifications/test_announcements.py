"""Announcements (issue 10 part 6), the clerks told of what arrives (part 1), receipts and their timeout
(parts 3 and 7), and the operators' view of deliveries (part 7): what staff, residents, grid workers and
operators see through the API, the workers run pass by pass as the delivery loop runs them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from api.kit import clock
from api.notifications.delivery import apply_receipt, deliver_once
from models import notifications as db
from models.feedback import Complaint
from models.identity import Account
from tests.notifications.test_delivery import channel, device, newest_notification, senders, submitted
from tests.support.cases import ITEM, SAME_DAY_ITEM, make_world, new_case, problem_code
from tests.support.rows import residents_with_devices

ANNOUNCEMENTS = "/api/v1/admin/announcements"
DELIVERIES = "/api/v1/admin/deliveries"
INBOX = "/api/v1/notifications"


def announcement(**over) -> dict:
    data = {
        "title": "春节期间便民服务站开放时间调整",
        "body": "2月10日至2月17日各社区便民服务站上午9时至12时开放，急办事项请拨打12345。",
        "audience": {"kind": "everyone"},
        "channels": ["inbox", "push"],
    }
    data.update(over)
    return data


async def publish(w, **over) -> dict:
    r = await w.client.post(ANNOUNCEMENTS, json=announcement(**over), headers=w.staff)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"{ANNOUNCEMENTS}/{r.json()['id']}"
    return r.json()


async def inbox_kinds(client, headers) -> list[str]:
    return [n["kind"] for n in (await client.get(INBOX, headers=headers)).json()["items"]]


async def shown(w, announcement_id: int) -> dict:
    r = await w.client.get(f"{ANNOUNCEMENTS}/{announcement_id}", headers=w.staff)
    assert r.status_code == 200, r.text
    return r.json()


# ---- announcements ----------------------------------------------------------------------------------------


async def test_an_announcement_reaches_everyone_by_inbox_and_push_from_the_workers(app, client):
    w = await make_world(app, client)
    await device(client, w.resident, "rid-zhang-1")
    published = await publish(w)
    assert published["status"] == "scheduled" and published["recipients"] == 0
    # the request fanned out to no one
    assert await db.Notification.filter(kind="announcement").count() == 0

    report = await deliver_once(senders(app))
    people = await Account.filter(status="active").count()
    assert report.announced == people
    for headers in (w.resident, w.other_resident, w.grid, w.staff, w.admin):
        assert "announcement" in await inbox_kinds(client, headers)
    [pushed] = await app.ctx.services.integrations.push.sent_to("rid-zhang-1")
    assert pushed["title"] == "春节期间便民服务站开放时间调整"

    after = await shown(w, published["id"])
    assert after["status"] == "sent" and after["recipients"] == people
    assert after["started_at"] and after["finished_at"]
    # one push (张三's phone), taken and reported received in the same pass
    assert after["deliveries"] == {"push": {"delivered": 1}}
    detail = await newest_notification(client, w.resident)
    assert detail["kind"] == "announcement" and channel(detail, "push")["status"] == "delivered"
    # sent once: the next passes add no copy
    await deliver_once(senders(app))
    assert await db.Notification.filter(kind="announcement").count() == people


async def test_a_fan_out_cut_short_goes_on_from_its_last_whole_batch_without_a_second_copy(
    app, client, monkeypatch
):
    w = await make_world(app, client)
    published = await publish(w)
    workers = senders(app, fanout_batch=2)
    real = db.fan_out_batch
    calls = 0

    async def dies_on_the_third(*args, **kwargs):
        nonlocal calls
        calls += 1
        if calls == 3:
            raise ConnectionError("the worker lost its database mid fan-out")
        return await real(*args, **kwargs)

    monkeypatch.setattr(db, "fan_out_batch", dies_on_the_third)
    with pytest.raises(ConnectionError):
        await deliver_once(workers)
    assert await db.Notification.filter(kind="announcement").count() == 4  # two whole batches
    assert (await shown(w, published["id"]))["status"] == "sending"

    # another worker takes it over once the first one's hold lapsed, from where it stopped
    monkeypatch.setattr(db, "fan_out_batch", real)
    assert (await deliver_once(workers)).announced == 0  # still held
    later = clock.now() + timedelta(seconds=workers.settings.hold_seconds + 1)
    await deliver_once(workers, now=later)
    people = await Account.filter(status="active").count()
    copies = await db.Notification.filter(kind="announcement").values_list("account_id", flat=True)
    assert sorted(copies) == sorted(set(copies)) and len(copies) == people
    assert (await shown(w, published["id"]))["status"] == "sent"


async def test_a_scheduled_announcement_waits_and_can_be_withdrawn_until_it_begins(app, client):
    w = await make_world(app, client)
    later = clock.now() + timedelta(hours=2)
    first = await publish(w, send_at=later.isoformat())
    second = await publish(w, send_at=later.isoformat(), title="第二条")
    assert (await deliver_once(senders(app))).announced == 0  # not yet

    r = await client.post(f"{ANNOUNCEMENTS}/{first['id']}/cancel", headers=w.staff)
    assert r.status_code == 200 and r.json()["status"] == "cancelled" and r.json()["cancelled_at"]
    await deliver_once(senders(app), now=later + timedelta(minutes=1))
    assert (await shown(w, first["id"]))["recipients"] == 0
    assert (await shown(w, second["id"]))["status"] == "sent"
    # once sent, or withdrawn, it cannot be withdrawn
    for done in (first, second):
        r = await client.post(f"{ANNOUNCEMENTS}/{done['id']}/cancel", headers=w.staff)
        assert r.status_code == 409 and problem_code(r) == "announcement_started"
    titles = [n["title"] for n in (await client.get(INBOX, headers=w.resident)).json()["items"]]
    assert "第二条" in titles and "春节期间便民服务站开放时间调整" not in titles

    listed = (await client.get(ANNOUNCEMENTS, params={"status": "cancelled"}, headers=w.staff)).json()
    assert [a["id"] for a in listed["items"]] == [first["id"]]


async def test_audiences_reach_only_whom_they_name(app, client):
    w = await make_world(app, client)
    await new_case(w)  # 张三 has a case of ITEM at the point of community 360502001001
    await publish(w, title="网格员", audience={"kind": "role", "code": "grid_worker"})
    await publish(w, title="事项", audience={"kind": "item", "code": ITEM})
    await publish(w, title="社区", audience={"kind": "community", "code": "360502001001"})
    for _ in range(4):
        await deliver_once(senders(app))

    async def titles(headers) -> set[str]:
        items = (await client.get(INBOX, headers=headers)).json()["items"]
        return {n["title"] for n in items if n["kind"] == "announcement"}

    assert await titles(w.resident) == {"事项", "社区"}
    assert await titles(w.other_resident) == set()  # 李娟 has no case
    assert await titles(w.grid) == {"网格员", "社区"}  # serves a point of that community
    assert await titles(w.other_grid) == {"网格员"}  # his point is in another community
    assert await titles(w.staff) == set()


async def test_each_person_s_choices_and_quiet_hours_hold_for_announcements(app, client):
    w = await make_world(app, client)
    await device(client, w.resident, "rid-zhang-1")
    await device(client, w.other_resident, "rid-li-1")
    r = await client.put(
        "/api/v1/me/notification-preferences",
        json={"categories": {"announcement": {"push": False}}},
        headers=w.other_resident,
    )
    assert r.status_code == 200, r.text
    await publish(w)
    # 张三 is in his quiet hours (the whole day here): the push waits for their end
    await deliver_once(senders(app, quiet_start="00:00", quiet_end="23:59"))
    assert await app.ctx.services.integrations.push.sent_to("rid-zhang-1") == []
    assert await app.ctx.services.integrations.push.sent_to("rid-li-1") == []  # turned off by her
    assert "announcement" in await inbox_kinds(client, w.other_resident)  # the inbox still has it
    held = await db.Delivery.get(channel="push")
    assert held.next_attempt_at > clock.now()
    assert await db.Delivery.filter(channel="push").count() == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"audience": {}}, "audience.kind"),
        ({"audience": {"kind": "planet"}}, "audience.kind"),
        ({"audience": {"kind": "district"}}, "audience.code"),
        ({"audience": {"kind": "district", "code": "999999"}}, "audience.code"),
        ({"audience": {"kind": "role", "code": "king"}}, "audience.code"),
        ({"audience": {"kind": "community", "code": "c" * 40}}, "audience.code"),  # longer than any code
        ({"audience": {"kind": "everyone", "code": "360502"}}, "audience.code"),
        ({"audience": {"kind": "item", "code": SAME_DAY_ITEM}}, "audience"),  # nobody has such a case
        ({"send_at": "2020-01-01T00:00:00+08:00"}, "send_at"),
        ({"channels": ["sms"]}, "channels.0"),
        ({"channels": []}, "channels"),
        ({"title": ""}, "title"),
        ({"body": "很" * 5001}, "body"),
    ],
)
async def test_a_bad_announcement_is_refused_naming_the_field_and_nothing_is_written(
    app, client, change, field
):
    w = await make_world(app, client, second_resident=False)
    r = await client.post(ANNOUNCEMENTS, json=announcement(**change), headers=w.staff)
    assert r.status_code == 422, r.text
    assert field in [e["field"] for e in r.json()["errors"]]
    assert await db.Announcement.all().count() == 0


async def test_only_staff_and_admins_publish(app, client):
    w = await make_world(app, client, second_resident=False)
    for headers in (w.resident, w.grid):
        r = await client.post(ANNOUNCEMENTS, json=announcement(), headers=headers)
        assert r.status_code == 403
        assert (await client.get(ANNOUNCEMENTS, headers=headers)).status_code == 403
    r = await client.post(ANNOUNCEMENTS, json=announcement(), headers=w.admin)
    assert r.status_code == 201
    assert (await client.get(f"{ANNOUNCEMENTS}/999999", headers=w.admin)).status_code == 404


# ---- the clerks told --------------------------------------------------------------------------------------


async def test_a_case_arriving_at_a_point_is_told_to_its_grid_workers_online_to_its_department(app, client):
    w = await make_world(app, client, second_resident=False)
    case = await submitted(w)
    await deliver_once(senders(app))
    [told] = [
        n for n in (await client.get(INBOX, headers=w.grid)).json()["items"] if n["kind"] == "case_arrived"
    ]
    assert told["application_id"] == case["id"] and case["number"] in told["body"]
    assert "case_arrived" not in await inbox_kinds(client, w.other_grid)
    assert "case_arrived" not in await inbox_kinds(client, w.staff)  # the point accepts it first

    online = await new_case(w, point=None, mode="mail")
    await deliver_once(senders(app))
    staff_told = [
        n for n in (await client.get(INBOX, headers=w.staff)).json()["items"] if n["kind"] == "case_arrived"
    ]
    assert [n["application_id"] for n in staff_told] == [online["id"]]
    assert "case_arrived" not in await inbox_kinds(client, w.other_staff)


async def test_a_complaint_is_told_to_the_clerks_it_is_routed_to(app, client):
    w = await make_world(app, client, second_resident=False)
    case = await new_case(w)
    r = await client.post(
        "/api/v1/complaints",
        json={"kind": "complaint", "content": "等了很久没有人受理", "application_id": case["id"]},
        headers=w.resident,
    )
    assert r.status_code == 201, r.text
    await deliver_once(senders(app))
    for headers in (w.staff, w.grid):  # the case's department and its point
        assert "complaint_routed" in await inbox_kinds(client, headers)
    for headers in (w.other_staff, w.other_grid):
        assert "complaint_routed" not in await inbox_kinds(client, headers)


# ---- receipts ---------------------------------------------------------------------------------------------


async def test_receipts_early_duplicate_and_never(app, client):
    w = await make_world(app, client, second_resident=False)
    await device(client, w.resident, "offline-zhang")  # takes pushes, never reports them received
    await submitted(w)
    workers = senders(app)
    await deliver_once(workers)
    push = await db.Delivery.get(channel="push")
    assert push.status == "sent" and push.provider_ref

    # a receipt for a message nobody has marked yet waits, and is applied once its delivery is marked
    early = await apply_receipt("push", "msg-not-marked-yet", "delivered", None, clock.now())
    assert early == "pending"
    await db.Delivery.filter(id=push.id).update(provider_ref="msg-not-marked-yet")
    assert (await deliver_once(workers)).receipts == 1
    assert (await db.Delivery.get(id=push.id)).status == "delivered"
    # the same receipt again changes nothing
    events = await db.DeliveryEvent.filter(delivery_id=push.id).count()
    assert await apply_receipt("push", "msg-not-marked-yet", "delivered", None, clock.now()) == "duplicate"
    assert await db.DeliveryEvent.filter(delivery_id=push.id).count() == events

    # one with no receipt within the timeout is given up, and never sent again
    await submitted(w)
    await deliver_once(workers)
    [second] = await db.Delivery.filter(channel="push", status="sent")
    later = clock.now() + timedelta(seconds=workers.settings.receipt_timeout + 60)
    assert (await deliver_once(workers, now=later)).timed_out == 1
    again = await db.Delivery.get(id=second.id)
    assert again.status == "temporary-failure" and again.last_error
    await deliver_once(workers, now=later + timedelta(days=1))
    assert len(await app.ctx.services.integrations.push.sent_to("offline-zhang")) == 2
    # a receipt that comes after all still says what happened
    assert await apply_receipt("push", str(again.provider_ref), "delivered", None, later) == "applied"
    assert (await db.Delivery.get(id=second.id)).status == "delivered"


# ---- the operators' view ----------------------------------------------------------------------------------


async def test_operators_list_deliveries_by_status_and_channel_and_see_a_summary(app, client):
    w = await make_world(app, client, second_resident=False)
    await device(client, w.resident, "offline-zhang")
    await device(client, w.grid, "rid-grid-1")
    await submitted(w)
    for _ in range(3):
        await deliver_once(senders(app))
    r = await client.get(DELIVERIES, params={"status": "sent", "channel": "push"}, headers=w.admin)
    assert r.status_code == 200, r.text
    [sent] = r.json()["items"]
    assert sent["kind"] == "application_status" and sent["attempts"] == 1
    r = await client.get(DELIVERIES, params={"status": "delivered"}, headers=w.admin)
    assert [d["kind"] for d in r.json()["items"]] == ["case_arrived"]
    future = (clock.now() + timedelta(days=1)).isoformat()
    r = await client.get(DELIVERIES, params={"from": future}, headers=w.admin)
    assert r.json()["items"] == []

    summary = (await client.get(f"{DELIVERIES}/summary", headers=w.admin)).json()
    assert summary == {"channels": {"push": {"sent": 1, "delivered": 1}}, "total": 2}
    for params in ({"status": "lost"}, {"channel": "sms"}, {"from": "yesterday"}):
        assert (await client.get(DELIVERIES, params=params, headers=w.admin)).status_code == 422
    assert (await client.get(DELIVERIES, headers=w.staff)).status_code == 403


async def test_a_second_resident_in_the_same_batch_gets_his_own_copy(app, client):
    """Two residents, one batch: each copy is his, never another's (the batch maps notification to
    account by what the database returned, not by position)."""
    w = await make_world(app, client)
    await device(client, w.resident, "rid-zhang-1")
    await device(client, w.other_resident, "rid-li-1")
    await publish(w)
    await deliver_once(senders(app))
    for headers, rid in ((w.resident, "rid-zhang-1"), (w.other_resident, "rid-li-1")):
        detail = await newest_notification(client, headers)
        [pushed] = await app.ctx.services.integrations.push.sent_to(rid)
        assert pushed["extras"]["notification_id"] == str(detail["id"])


async def test_a_batch_larger_than_one_insert_gets_every_delivery_once(app, client):
    """A batch of 1 200 people with a device is written in more than one INSERT (the drivers cap the values
    of one statement): each gets one copy and one delivery."""
    w = await make_world(app, client, second_resident=False)
    await residents_with_devices(1200, "many")
    published = await publish(w, audience={"kind": "role", "code": "resident"})
    report = await deliver_once(senders(app), receipts=False)
    assert report.announced == 1201  # 张三 and the 1 200
    assert await db.Delivery.filter(channel="push").count() == 1200
    assert await db.DeliveryEvent.filter(status="created").count() == 1200
    shown_now = await shown(w, published["id"])
    assert shown_now["recipients"] == 1201 and sum(shown_now["deliveries"]["push"].values()) == 1200


async def test_an_outbox_row_that_cannot_be_expanded_holds_up_no_other(app, client, monkeypatch):
    from api.notifications import delivery

    w = await make_world(app, client, second_resident=False)
    first = await new_case(w)
    # a complaint whose row goes before the workers come to it (its account deleted)
    r = await client.post(
        "/api/v1/complaints", json={"kind": "complaint", "content": "等了很久没有人受理"}, headers=w.resident
    )
    assert r.status_code == 201, r.text
    await Complaint.filter(id=r.json()["id"]).delete()
    second = await new_case(w)
    real = delivery._tell_case_arrived

    async def breaks_on_the_first(notification):
        if notification.application_id == first["id"]:
            raise RuntimeError("a bug on one row")
        return await real(notification)

    monkeypatch.setattr(delivery, "_tell_case_arrived", breaks_on_the_first)
    report = await deliver_once(senders(app))
    assert report.expanded == 2  # the complaint's row (nothing to tell now) and the second case
    told = [n["application_id"] for n in (await client.get(INBOX, headers=w.grid)).json()["items"]]
    assert told == [second["id"]]
    first_row = db.Outbox.filter(
        done_at__isnull=True,
        notification__application_id=first["id"],
        notification__kind="application_status",
    )
    assert await first_row.count() == 1  # the first case's row: rolled back whole, tried again later
    monkeypatch.setattr(delivery, "_tell_case_arrived", real)
    later = clock.now() + timedelta(seconds=senders(app).settings.hold_seconds + 1)
    assert (await deliver_once(senders(app), now=later)).expanded >= 1
    assert await first_row.count() == 0
