"""What each clerk action needs, what it sets, and what it writes: the event on the timeline and the
applicant's notification, in the same transaction as the change."""

from __future__ import annotations

import asyncio
import base64
from datetime import datetime, timedelta

from models import applications as db
from models.notifications import Notification
from tests.support.cases import (
    ADDRESS,
    APPS,
    MATERIALS,
    SAME_DAY_ITEM,
    WORK,
    act,
    act_ok,
    case_in,
    make_world,
    missing_all,
    new_case,
    notifications_of,
    problem_code,
)
from tests.support.files import png, png_b64


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


# ---- accept ---------------------------------------------------------------------------------------------


async def test_accept_sets_the_due_date_in_working_days(app, client):
    w = await make_world(app, client, second_resident=False)
    case = await new_case(w)
    done = await act_ok(w, "grid", case["id"], "accept")
    assert done["status"] == "accepted"
    accepted = when(done["accepted_at"])
    expected = app.ctx.services.cases.calendar.due_at(accepted, "committed", 5)
    assert when(done["due_at"]) == expected
    assert done["deadline_status"] == "normal"
    row = await db.Application.get(id=case["id"])
    assert row.accepted_by_id is not None
    event = done["events"][-1]
    assert event["action"] == "accept" and event["from_status"] == "submitted"
    assert event["actor_role"] == "grid_worker" and event["channel"] == "handheld"
    assert when(event["at"]).utcoffset() is not None
    assert when(event["at"]) == accepted  # the timeline tells the same moment as the case


async def test_same_day_item_is_due_at_the_end_of_the_acceptance_day(app, client):
    w = await make_world(app, client, second_resident=False)
    case = await new_case(w, item=SAME_DAY_ITEM)
    done = await act_ok(w, "staff", case["id"], "accept")
    accepted = when(done["accepted_at"])
    assert when(done["due_at"]) == app.ctx.services.cases.calendar.due_at(accepted, "same_day", 0)
    assert when(done["due_at"]) >= accepted


# ---- return (the one-time notice) ------------------------------------------------------------------------


async def test_return_lists_every_missing_material_with_its_reason(app, client):
    w = await make_world(app, client, second_resident=False)
    case = await new_case(w)
    notice = missing_all()
    done = await act_ok(w, "grid", case["id"], "return", missing_materials=notice, note="请一次补齐")
    assert done["status"] == "returned"
    assert done["missing_materials"] == notice
    assert done["events"][-1]["note"]["missing_materials"] == notice
    # the resident reads the same notice on his side
    mine = (await w.client.get(f"{APPS}/{case['id']}", headers=w.resident)).json()
    assert mine["missing_materials"] == notice
    assert {m["material_code"] for m in mine["missing_materials"]} == set(MATERIALS)
    inbox = await notifications_of(w.resident_id, case["id"])
    assert [n.title for n in inbox][-1] == "您的申请需要补正材料"


async def test_return_only_once(app, client):
    w = await make_world(app, client, second_resident=False)
    case = await new_case(w)
    await act_ok(w, "grid", case["id"], "return", missing_materials=missing_all())
    r = await w.client.post(f"{APPS}/{case['id']}/resubmit", headers=w.resident)
    assert r.status_code == 200 and r.json()["status"] == "submitted"
    r = await act(w.client, w.grid, case["id"], "return", missing_materials=missing_all("仍然不清晰"))
    assert r.status_code == 409 and problem_code(r) == "already_returned"
    assert (await db.Application.get(id=case["id"])).status == "submitted"
    # it can still be accepted or refused
    assert (await act_ok(w, "grid", case["id"], "accept"))["status"] == "accepted"


BAD_NOTICES = [
    ({}, "missing_materials"),
    ({"missing_materials": []}, "missing_materials"),
    ({"missing_materials": [{"material_code": "M01"}]}, "missing_materials.0.reason"),
    ({"missing_materials": [{"material_code": "M01", "reason": ""}]}, "missing_materials.0.reason"),
    ({"missing_materials": [{"reason": "缺少"}]}, "missing_materials.0.material_code"),
    ({"missing_materials": [{"material_code": "M99", "reason": "缺少"}]}, "missing_materials"),
    ({"missing_materials": [{"material_code": "m01", "reason": "缺少"}]}, "missing_materials"),
    (
        {"missing_materials": [{"material_code": "M01", "reason": "缺少", "extra": 1}]},
        "missing_materials.0.extra",
    ),
    (
        {
            "missing_materials": [
                {"material_code": "M01", "reason": "缺少原件"},
                {"material_code": "M01", "reason": "复印件不清晰"},
            ]
        },
        "missing_materials",
    ),
    ({"missing_materials": "M01"}, "missing_materials"),
    (
        {"missing_materials": [{"material_code": f"M{n:02d}", "reason": "缺少"} for n in range(31)]},
        "missing_materials",
    ),
]


async def test_bad_return_notice_is_422_and_changes_nothing(app, client):
    w = await make_world(app, client, second_resident=False)
    case = await new_case(w)
    for n, (fields, field) in enumerate(BAD_NOTICES):
        r = await act(w.client, w.grid, case["id"], "return", **fields)
        assert r.status_code == 422, (n, r.text)
        assert any(e["field"] == field for e in r.json()["errors"]), (n, r.json())
    row = await db.Application.get(id=case["id"])
    assert row.status == "submitted" and row.returned_count == 0 and row.version == 1
    assert await db.ApplicationEvent.filter(application_id=case["id"]).count() == 1
    assert await Notification.filter(application_id=case["id"]).count() == 1


# ---- refuse / reject / approve ------------------------------------------------------------------------


async def test_refuse_needs_a_reason(app, client):
    w = await make_world(app, client, second_resident=False)
    case = await new_case(w)
    for fields in ({}, {"reason": ""}, {"reason": "x"}, {"legal_basis": "《办法》"}, {"reason": None}):
        r = await act(w.client, w.grid, case["id"], "refuse", **fields)
        assert r.status_code == 422, (fields, r.text)
        assert r.json()["errors"][0]["field"] == "reason"
    assert (await db.Application.get(id=case["id"])).status == "submitted"


async def test_refuse_records_the_reason(app, client):
    w = await make_world(app, client, second_resident=False)
    case = await new_case(w)
    done = await act_ok(w, "grid", case["id"], "refuse", reason="不属于本事项受理范围")
    assert done["status"] == "refused"
    assert done["events"][-1]["note"]["reason"] == "不属于本事项受理范围"
    assert done["decided_at"] is None and done["decision"] is None


async def test_reject_needs_reason_and_legal_basis(app, client):
    w = await make_world(app, client, second_resident=False)
    case = await case_in(w, "in_review")
    for fields, field in [
        ({}, "reason"),
        ({"legal_basis": "《社会救助暂行办法》第九条"}, "reason"),
        ({"reason": "家庭收入超过标准"}, "legal_basis"),
        ({"reason": "家庭收入超过标准", "legal_basis": ""}, "legal_basis"),
    ]:
        r = await act(w.client, w.staff, case["id"], "reject", **fields)
        assert r.status_code == 422, (fields, r.text)
        assert r.json()["errors"][0]["field"] == field
    row = await db.Application.get(id=case["id"])
    assert row.status == "in_review" and row.decided_at is None and row.decision is None


async def test_reject_sets_the_decision(app, client):
    w = await make_world(app, client, second_resident=False)
    case = await case_in(w, "in_review")
    done = await act_ok(
        w, "staff", case["id"], "reject", reason="家庭收入超过标准", legal_basis="《办法》第九条"
    )
    assert done["status"] == "rejected" and done["decision"] == "rejected" and done["decided_at"]
    note = done["events"][-1]["note"]
    assert note["reason"] == "家庭收入超过标准" and note["legal_basis"] == "《办法》第九条"
    row = await db.Application.get(id=case["id"])
    assert row.decided_on_time is True


async def test_approve_sets_the_decision(app, client):
    w = await make_world(app, client, second_resident=False)
    case = await case_in(w, "accepted")
    done = await act_ok(w, "staff", case["id"], "approve")
    assert done["status"] == "approved" and done["decision"] == "approved"
    assert when(done["decided_at"]) >= when(done["accepted_at"])
    assert when(done["events"][-1]["at"]) == when(done["decided_at"])
    assert done["events"][-1]["actor_role"] == "staff"
    row = await db.Application.get(id=case["id"])
    assert row.decided_on_time is True


async def test_decision_after_the_due_date_is_late(app, client):
    w = await make_world(app, client, second_resident=False)
    case = await case_in(w, "in_review")
    past = datetime.fromisoformat(case["due_at"]) - timedelta(days=30)
    await db.Application.filter(id=case["id"]).update(due_at=past)
    await act_ok(w, "staff", case["id"], "approve")
    assert (await db.Application.get(id=case["id"])).decided_on_time is False


# ---- suspend / resume ----------------------------------------------------------------------------------


async def test_suspend_needs_reason_and_expected_days(app, client):
    w = await make_world(app, client, second_resident=False)
    case = await case_in(w, "in_review")
    for fields, field in [
        ({}, "reason"),
        ({"expected_days": 3}, "reason"),
        ({"reason": "需要现场核查"}, "expected_days"),
        ({"reason": "需要现场核查", "expected_days": 0}, "expected_days"),
        ({"reason": "需要现场核查", "expected_days": -1}, "expected_days"),
        ({"reason": "需要现场核查", "expected_days": "三"}, "expected_days"),
        ({"reason": "需要现场核查", "expected_days": 2.5}, "expected_days"),
        ({"reason": "需要现场核查", "expected_days": 1000}, "expected_days"),
    ]:
        r = await act(w.client, w.staff, case["id"], "suspend", **fields)
        assert r.status_code == 422, (fields, r.text)
        assert r.json()["errors"][0]["field"] == field
    row = await db.Application.get(id=case["id"])
    assert row.status == "in_review" and row.suspended_at is None


async def test_resume_moves_the_due_date_by_the_paused_working_days(app, client):
    w = await make_world(app, client, second_resident=False)
    case = await case_in(w, "in_review")
    done = await act_ok(w, "staff", case["id"], "suspend", reason="需要专家评审", expected_days=5)
    assert done["status"] == "suspended"
    assert done["events"][-1]["note"] == {"reason": "需要专家评审", "expected_days": 5}
    # the suspension began twelve days ago
    row = await db.Application.get(id=case["id"])
    began = row.suspended_at - timedelta(days=12)
    await db.Application.filter(id=case["id"]).update(suspended_at=began)
    due_before = row.due_at
    resumed = await act_ok(w, "staff", case["id"], "resume")
    assert resumed["status"] == "in_review"
    calendar = app.ctx.services.cases.calendar
    resumed_at = when(resumed["events"][-1]["at"])
    paused = calendar.paused_workdays(began, resumed_at)
    assert paused >= 6  # twelve calendar days hold at least six working days, holidays or not
    assert resumed["events"][-1]["note"]["paused_workdays"] == paused
    assert when(resumed["due_at"]) == calendar.extend(due_before, paused)
    assert when(resumed["due_at"]) > due_before
    row = await db.Application.get(id=case["id"])
    assert row.suspended_at is None and row.paused_workdays == paused


async def test_suspend_and_resume_the_same_day_keeps_the_due_date(app, client):
    w = await make_world(app, client, second_resident=False)
    case = await case_in(w, "accepted")
    await act_ok(w, "staff", case["id"], "suspend", reason="需要现场核查", expected_days=2)
    resumed = await act_ok(w, "staff", case["id"], "resume")
    assert resumed["due_at"] == case["due_at"]


# ---- deliver -----------------------------------------------------------------------------------------


async def test_pickup_is_delivered_at_the_point(app, client):
    w = await make_world(app, client, second_resident=False)
    case = await case_in(w, "ready")
    done = await act_ok(w, "grid", case["id"], "deliver")
    assert done["status"] == "delivered"
    assert done["events"][-1]["note"]["mode"] == "pickup"
    assert (await db.Application.get(id=case["id"])).delivered_at is not None


async def test_mail_delivery_needs_a_tracking_number(app, client):
    w = await make_world(app, client, second_resident=False)
    case = await case_in(w, "ready", mode="mail")
    for fields in (
        {},
        {"tracking_no": ""},
        {"tracking_no": "SF1"},
        {"tracking_no": "SF 1234 5678"},
        {"recipient": "张三"},
    ):
        r = await act(w.client, w.staff, case["id"], "deliver", **fields)
        assert r.status_code == 422, (fields, r.text)
        assert r.json()["errors"][0]["field"] == "tracking_no"
    assert (await db.Application.get(id=case["id"])).status == "ready"
    done = await act_ok(w, "staff", case["id"], "deliver", tracking_no="SF1234567890")
    assert done["status"] == "delivered"
    assert done["events"][-1]["note"]["tracking_no"] == "SF1234567890"
    assert done["delivery"]["address"].endswith("****")


async def test_clerks_read_the_address_in_full_and_it_is_audited(app, client):
    from models.identity import AuditLog

    w = await make_world(app, client, second_resident=False)
    case = await case_in(w, "ready", mode="mail")
    assert await AuditLog.filter(action="application.address_read").count() == 0
    r = await w.client.get(f"{WORK}/{case['id']}", headers={**w.staff, "X-Request-ID": "req-address-0001"})
    assert r.status_code == 200
    assert r.json()["delivery"]["address"] == ADDRESS
    [entry] = await AuditLog.filter(action="application.address_read")
    assert entry.subject_id == w.resident_id and entry.actor_role == "staff"
    assert entry.request_id == "req-address-0001" and entry.detail == {"application": case["number"]}
    assert ADDRESS not in str(entry.detail)
    # a case without an address is read without an audit line
    pickup = await new_case(w)
    assert (await w.client.get(f"{WORK}/{pickup['id']}", headers=w.staff)).status_code == 200
    assert await AuditLog.filter(action="application.address_read").count() == 1


async def test_door_delivery_needs_recipient_and_photo(app, client):
    w = await make_world(app, client, second_resident=False)
    case = await case_in(w, "ready", mode="grid_worker")
    photo = png_b64()
    for fields, field in [
        ({}, "recipient"),
        ({"photo": photo}, "recipient"),
        ({"recipient": "张三"}, "photo"),
        ({"recipient": "张三", "photo": "not base64!!"}, "photo"),
        ({"recipient": "张三", "photo": base64.b64encode(b"<html>hello</html>").decode()}, "photo"),
        ({"recipient": "张三", "photo": base64.b64encode(b"GIF89a" + b"\x00" * 20).decode()}, "photo"),
        ({"recipient": "张", "photo": photo}, "recipient"),
        ({"recipient": "张三", "photo": ""}, "photo"),
    ]:
        r = await act(w.client, w.grid, case["id"], "deliver", **fields)
        assert r.status_code == 422, (fields.keys(), r.text)
        assert r.json()["errors"][0]["field"] == field, (fields.keys(), r.json())
    assert (await db.Application.get(id=case["id"])).status == "ready"


async def test_door_delivery_keeps_the_photo(app, client):
    w = await make_world(app, client, second_resident=False)
    case = await case_in(w, "ready", mode="grid_worker")
    done = await act_ok(w, "grid", case["id"], "deliver", recipient="张三", photo=png_b64())
    note = done["events"][-1]["note"]
    assert note["mode"] == "grid_worker" and note["recipient"] == "张三"
    import hashlib

    assert note["photo_sha256"] == hashlib.sha256(png()).hexdigest()
    assert await app.ctx.services.cases.files.read(note["photo_sha256"]) == png()
    assert "photo" not in note  # the picture is stored once, not copied into the timeline


async def test_close_after_delivery_and_after_rejection(app, client):
    w = await make_world(app, client, second_resident=False)
    delivered = await case_in(w, "delivered")
    assert (await act_ok(w, "staff", delivered["id"], "close"))["status"] == "closed"
    rejected = await case_in(w, "rejected")
    assert (await act_ok(w, "admin", rejected["id"], "close"))["status"] == "closed"


# ---- roles inside the actions -----------------------------------------------------------------------


async def test_grid_worker_cannot_decide(app, client):
    from tests.support.cases import ACTION_FIELDS

    w = await make_world(app, client, second_resident=False)
    for status, actions in [
        ("submitted", ("approve", "start_review", "close")),  # never his, whatever the status
        ("accepted", ("start_review", "approve", "reject", "suspend")),
        ("suspended", ("resume",)),
        ("approved", ("mark_ready",)),
        ("delivered", ("close",)),
    ]:
        case = await case_in(w, status)
        for action in actions:
            r = await act(w.client, w.grid, case["id"], action, **ACTION_FIELDS[action])
            assert r.status_code == 403, (status, action, r.text)
            assert problem_code(r) == "forbidden"
        assert (await db.Application.get(id=case["id"])).status == status


# ---- timeline and inbox -------------------------------------------------------------------------------


async def test_every_step_is_an_event_and_a_notification(app, client):
    w = await make_world(app, client, second_resident=False)
    case = await case_in(w, "closed")
    full = (await w.client.get(f"{WORK}/{case['id']}", headers=w.admin)).json()
    actions = [e["action"] for e in full["events"]]
    assert actions == ["submit", "accept", "approve", "mark_ready", "deliver", "close"]
    for before, event in zip(full["events"], full["events"][1:], strict=False):
        assert event["from_status"] == before["to_status"]
        assert when(event["at"]) >= when(before["at"])
    for event in full["events"]:
        assert {"actor_role", "channel", "at", "note"} <= set(event)
    inbox = await notifications_of(w.resident_id, case["id"])
    assert len(inbox) == len(actions)
    assert all(case["number"] in n.body for n in inbox)
    assert all(n.kind == "application_status" for n in inbox)


async def test_a_failed_notification_rolls_the_step_back(app, client, monkeypatch):
    """The notification is written in the transaction of the change: if it fails, nothing of the step stays."""
    w = await make_world(app, client, second_resident=False)
    case = await new_case(w)

    async def broken(*args, **kwargs):
        raise RuntimeError("inbox down")

    monkeypatch.setattr(Notification, "create", broken)
    r = await act(w.client, w.grid, case["id"], "accept")
    assert r.status_code == 500
    monkeypatch.undo()
    row = await db.Application.get(id=case["id"])
    assert row.status == "submitted" and row.version == 1 and row.due_at is None
    assert await db.ApplicationEvent.filter(application_id=case["id"]).count() == 1


# ---- two clerks at once ----------------------------------------------------------------------------------


async def test_two_clerks_accept_and_return_at_once_one_wins(app, client):
    w = await make_world(app, client, second_resident=False)
    case = await new_case(w)
    first, second = await asyncio.gather(
        act(w.client, w.grid, case["id"], "accept"),
        act(w.client, w.staff, case["id"], "return", missing_materials=missing_all()),
    )
    codes = sorted([first.status_code, second.status_code])
    assert codes == [200, 409], (first.text, second.text)
    loser = first if first.status_code == 409 else second
    assert problem_code(loser) == "invalid_transition"
    events = await db.ApplicationEvent.filter(application_id=case["id"]).order_by("id")
    assert [e.action for e in events][0] == "submit" and len(events) == 2
    assert await Notification.filter(application_id=case["id"]).count() == 2


async def test_two_clerks_accept_twice_one_wins(app, client):
    w = await make_world(app, client, second_resident=False)
    case = await new_case(w)
    answers = await asyncio.gather(
        act(w.client, w.grid, case["id"], "accept"),
        act(w.client, w.staff, case["id"], "accept"),
        act(w.client, w.admin, case["id"], "accept"),
    )
    assert sorted(r.status_code for r in answers) == [200, 409, 409], [r.text for r in answers]
    assert all(problem_code(r) == "invalid_transition" for r in answers if r.status_code == 409)
    assert await db.ApplicationEvent.filter(application_id=case["id"], action="accept").count() == 1


async def test_resident_withdraws_while_a_clerk_accepts(app, client):
    w = await make_world(app, client, second_resident=False)
    case = await new_case(w)
    accepted, withdrawn = await asyncio.gather(
        act(w.client, w.grid, case["id"], "accept"),
        w.client.post(f"{APPS}/{case['id']}/withdraw", headers=w.resident),
    )
    # both are legal from "submitted" and withdrawal is legal from "accepted": one or both may win, but the
    # case ends in a state the machine reaches, with one event per winner
    row = await db.Application.get(id=case["id"])
    events = await db.ApplicationEvent.filter(application_id=case["id"]).count()
    winners = [r for r in (accepted, withdrawn) if r.status_code == 200]
    assert events == 1 + len(winners)
    assert all(r.status_code in (200, 409) for r in (accepted, withdrawn))
    assert row.status in ("accepted", "withdrawn")
