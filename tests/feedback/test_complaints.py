"""Contract: POST /complaints, GET /complaints (mine), GET /work/complaints, POST /work/complaints/{id}/reply.
A resident consults, complains or suggests; the answer is due within `complaint_answer_days` working days;
a clerk of the department concerned (an admin when none is: issue 8, SECURITY row 1) answers once, and the
answer reaches the resident's inbox in the same transaction."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest

from api.kit import clock
from models.feedback import Complaint
from models.notifications import Notification
from tests.support.people import LI, Person
from tests.support.rows import SHANGHAI, at, make_case

pytestmark = pytest.mark.usefixtures("catalog")

MINE = "/api/v1/complaints"
WORK = "/api/v1/work/complaints"


def reply_url(complaint_id: int) -> str:
    return f"{WORK}/{complaint_id}/reply"


@pytest.fixture
async def civil_case(zhang):
    """张三's case of a civil-affairs item at the 胜利社区 point."""
    return await make_case(zhang.id, item="360500-MZ-001", point="P360502001001")


async def file(client, who: Person, **body) -> dict:
    body = {"kind": "complaint", "content": "窗口人员态度不好，等了很久", **body}
    r = await client.post(MINE, json=body, headers=who.headers)
    assert r.status_code == 201, r.text
    return r.json()


# ---- POST /complaints ----------------------------------------------------------------------------------


async def test_a_consultation_is_due_five_working_days_later_counted_across_national_day(
    client, zhang, monkeypatch
):
    """Filed Tue 2026-09-29 10:00. Working days after it: Wed 09-30 (1); 10-01 … 10-07 国庆 off;
    Thu 10-08 (2), Fri 10-09 (3), Sat 10-10 make-up workday (4), Sun 10-11 off, Mon 10-12 (5).
    So the answer is due 2026-10-12 23:59:59 +08:00."""
    monkeypatch.setattr(clock, "now", lambda: at("2026-09-29 10:00"))
    r = await client.post(
        MINE, json={"kind": "consultation", "content": "  低保申请需要哪些材料？  "}, headers=zhang.headers
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {
        "id", "kind", "content", "status", "application_id", "point", "department",
        "due_at", "overdue", "reply", "replied_at", "created_at",
    }  # fmt: skip
    assert body["kind"] == "consultation" and body["content"] == "低保申请需要哪些材料？"
    assert body["status"] == "open" and body["reply"] is None and body["replied_at"] is None
    assert body["application_id"] is None and body["point"] is None and body["department"] is None
    assert datetime.fromisoformat(body["due_at"]) == datetime(2026, 10, 12, 23, 59, 59, tzinfo=SHANGHAI)
    assert body["overdue"] is False
    row = await Complaint.get(id=body["id"])
    assert row.account_id == zhang.id and row.department_id is None


async def test_a_complaint_about_a_case_goes_to_its_department_and_point(client, zhang, civil_case):
    body = await file(client, zhang, application_id=civil_case.id)
    assert body["application_id"] == civil_case.id
    assert body["department"] == {"code": "civil", "name": "新余市民政局"}
    assert body["point"]["code"] == "P360502001001"
    row = await Complaint.get(id=body["id"])
    assert row.department_id == civil_case.department_id and row.point_id == civil_case.point_id


async def test_a_named_point_is_recorded(client, zhang, civil_case):
    body = await file(client, zhang, kind="suggestion", content="建议周末也开放", point_code="P360502002001")
    assert body["point"]["code"] == "P360502002001" and body["department"] is None
    body = await file(client, zhang, application_id=civil_case.id, point_code="CITY-CENTER")
    assert body["point"]["code"] == "CITY-CENTER" and body["department"]["code"] == "civil"


async def test_another_residents_case_is_refused_as_unknown(client, zhang, civil_case, people):
    li = await people.resident(LI)
    r = await client.post(
        MINE,
        json={"kind": "complaint", "content": "这个办件太慢了", "application_id": civil_case.id},
        headers=li.headers,
    )
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "application_id", "message": "没有这个办件"}]
    r = await client.post(
        MINE,
        json={"kind": "complaint", "content": "这个办件太慢了", "application_id": 999999},
        headers=zhang.headers,
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "application_id"
    assert await Complaint.all().count() == 0


async def test_an_unknown_point_is_422(client, zhang):
    r = await client.post(
        MINE,
        json={"kind": "complaint", "content": "这个网点不开门", "point_code": "NOWHERE"},
        headers=zhang.headers,
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "point_code"
    assert r.json()["code"] == "unknown_point"
    assert await Complaint.all().count() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"content": "没有类别的投诉"}, "kind"),
        ({"kind": "praise", "content": "表扬一下窗口"}, "kind"),
        ({"kind": "complaint"}, "content"),
        ({"kind": "complaint", "content": "太慢了"}, "content"),
        ({"kind": "complaint", "content": "   太慢了啊   "}, "content"),  # 4 characters once trimmed
        ({"kind": "complaint", "content": "慢" * 2001}, "content"),
        ({"kind": "complaint", "content": "窗口态度不好", "application_id": "1"}, "application_id"),
        ({"kind": "complaint", "content": "窗口态度不好", "application_id": 0}, "application_id"),
        ({"kind": "complaint", "content": "窗口态度不好", "point_code": ""}, "point_code"),
        # clients never set status, reply or owner (SECURITY row 9)
        ({"kind": "complaint", "content": "窗口态度不好", "status": "answered"}, "status"),
        ({"kind": "complaint", "content": "窗口态度不好", "account_id": 1}, "account_id"),
        ({"kind": "complaint", "content": "窗口态度不好", "department": "civil"}, "department"),
    ],
)
async def test_bad_complaints_are_422_and_write_nothing(client, zhang, body, field):
    r = await client.post(MINE, json=body, headers=zhang.headers)
    assert r.status_code == 422, r.text
    assert field in [e["field"] for e in r.json()["errors"]]
    assert await Complaint.all().count() == 0


async def test_content_of_5_and_2000_characters_is_accepted(client, zhang):
    assert (await file(client, zhang, content="窗口太慢了"))["content"] == "窗口太慢了"
    assert len((await file(client, zhang, content="慢" * 2000))["content"]) == 2000


async def test_only_residents_file_complaints(app, client, catalog, people):
    clerk = await people.staff("civil")
    r = await client.post(MINE, json={"kind": "complaint", "content": "窗口态度不好"}, headers=clerk.headers)
    assert r.status_code == 403
    r = await client.post(MINE, json={"kind": "complaint", "content": "窗口态度不好"})
    assert r.status_code == 401
    assert await Complaint.all().count() == 0


async def test_a_retried_complaint_with_the_same_key_is_filed_once(client, zhang):
    headers = {**zhang.headers, "Idempotency-Key": "complaint-1"}
    body = {"kind": "complaint", "content": "窗口态度不好"}
    first = await client.post(MINE, json=body, headers=headers)
    again = await client.post(MINE, json=body, headers=headers)
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    other = await client.post(MINE, json={**body, "content": "另一件事情要投诉"}, headers=headers)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert await Complaint.all().count() == 1


# ---- GET /complaints -----------------------------------------------------------------------------------


async def test_my_complaints_newest_first_in_pages_and_only_mine(client, zhang, people):
    li = await people.resident(LI)
    mine = [(await file(client, zhang, content=f"第{i}条投诉内容"))["id"] for i in range(5)]
    await file(client, li, content="李娟的投诉内容")
    seen, cursor = [], None
    while True:
        r = await client.get(
            MINE, params={"limit": 2, **({"cursor": cursor} if cursor else {})}, headers=zhang.headers
        )
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["items"]) <= 2
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(mine))


async def test_my_complaints_filter_by_status_and_refuse_bad_parameters(app, client, zhang, people):
    first = await file(client, zhang)
    await file(client, zhang, content="第二条投诉内容")
    await Complaint.filter(id=first["id"]).update(status="answered", reply="已处理")
    r = await client.get(MINE, params={"status": "answered"}, headers=zhang.headers)
    assert [c["id"] for c in r.json()["items"]] == [first["id"]] and r.json()["items"][0]["reply"] == "已处理"
    for params in ({"status": "closed"}, {"cursor": "garbage"}, {"limit": 0}, {"colour": "red"}):
        r = await client.get(MINE, params=params, headers=zhang.headers)
        assert r.status_code == 422, params
    clerk = await people.staff("civil")
    assert (await client.get(MINE, headers=clerk.headers)).status_code == 403


# ---- GET /work/complaints ------------------------------------------------------------------------------


@pytest.fixture
async def three_complaints(zhang, client, civil_case):
    """One about a civil-affairs case, one about a police case, one about no department."""
    police_case = await make_case(zhang.id, item="360500-GA-001", point="CITY-CENTER")
    civil = await file(client, zhang, application_id=civil_case.id)
    police = await file(client, zhang, application_id=police_case.id)
    general = await file(client, zhang, kind="suggestion", content="建议增加自助机")
    return civil, police, general


async def test_clerks_see_their_departments_complaints_admin_sees_all_and_the_unassigned(
    app, client, three_complaints, people
):
    civil, police, general = three_complaints
    civil_clerk = await people.staff("civil")
    police_clerk = await people.staff("police")
    admin = await people.admin()

    async def ids(who, **params):
        r = await client.get(WORK, params=params, headers=who.headers)
        assert r.status_code == 200, r.text
        return [c["id"] for c in r.json()["items"]]

    # the complaint about no department is the admins' (issue 8)
    assert await ids(civil_clerk) == [civil["id"]]
    assert await ids(police_clerk) == [police["id"]]
    assert await ids(admin) == [civil["id"], police["id"], general["id"]]
    # oldest (soonest due) first, in pages
    r = await client.get(WORK, params={"limit": 2}, headers=admin.headers)
    assert [c["id"] for c in r.json()["items"]] == [civil["id"], police["id"]]
    r = await client.get(WORK, params={"limit": 2, "cursor": r.json()["next_cursor"]}, headers=admin.headers)
    assert [c["id"] for c in r.json()["items"]] == [general["id"]] and r.json()["next_cursor"] is None
    await client.post(reply_url(civil["id"]), json={"reply": "已核实处理"}, headers=civil_clerk.headers)
    assert await ids(civil_clerk, status="open") == []
    assert await ids(civil_clerk, status="answered") == [civil["id"]]
    assert await ids(admin, status="open") == [police["id"], general["id"]]
    assert (await client.get(WORK, params={"status": "new"}, headers=admin.headers)).status_code == 422


async def test_an_open_complaint_past_its_deadline_is_flagged_overdue(app, client, three_complaints, people):
    civil, _, _ = three_complaints
    await Complaint.filter(id=civil["id"]).update(due_at=at("2026-01-05 23:59"))
    admin = await people.admin()
    r = await client.get(WORK, headers=admin.headers)
    flags = {c["id"]: c["overdue"] for c in r.json()["items"]}
    assert flags[civil["id"]] is True and list(flags.values()).count(True) == 1


async def test_only_clerks_and_admins_read_the_work_list(app, client, zhang, catalog, people):
    grid = await people.grid_worker()
    assert (await client.get(WORK, headers=zhang.headers)).status_code == 403
    assert (await client.get(WORK, headers=grid.headers)).status_code == 403
    assert (await client.get(WORK)).status_code == 401


# ---- POST /work/complaints/{id}/reply ------------------------------------------------------------------


async def test_a_clerk_answers_and_the_answer_reaches_the_residents_inbox(
    app, client, zhang, three_complaints, people
):
    civil, _, _ = three_complaints
    clerk = await people.staff("civil")
    r = await client.post(
        reply_url(civil["id"]), json={"reply": "  已核实，已对窗口人员批评教育  "}, headers=clerk.headers
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "answered" and body["reply"] == "已核实，已对窗口人员批评教育"
    assert body["replied_at"] is not None and body["overdue"] is False
    row = await Complaint.get(id=civil["id"])
    assert row.replied_by_id == clerk.id
    notes = await Notification.filter(account_id=zhang.id, kind="complaint_reply")
    assert len(notes) == 1
    assert notes[0].title == "您的投诉已答复" and notes[0].body == "已核实，已对窗口人员批评教育"
    assert notes[0].application_id == civil["application_id"]
    # the resident reads it in his inbox and in his list of complaints
    inbox = (
        await client.get("/api/v1/notifications", params={"unread": "true"}, headers=zhang.headers)
    ).json()
    assert [n["kind"] for n in inbox["items"]] == ["complaint_reply"]
    mine = (await client.get(MINE, headers=zhang.headers)).json()["items"]
    assert {c["id"]: c["status"] for c in mine}[civil["id"]] == "answered"


async def test_a_complaint_is_answered_once(app, client, three_complaints, people):
    civil, _, _ = three_complaints
    clerk = await people.staff("civil")
    assert (
        await client.post(reply_url(civil["id"]), json={"reply": "第一次答复"}, headers=clerk.headers)
    ).status_code == 200
    r = await client.post(reply_url(civil["id"]), json={"reply": "第二次答复"}, headers=clerk.headers)
    assert r.status_code == 409 and r.json()["code"] == "already_answered"
    assert (await Complaint.get(id=civil["id"])).reply == "第一次答复"
    assert await Notification.filter(kind="complaint_reply").count() == 1


async def test_two_clerks_answering_at_once_one_wins(app, client, three_complaints, people):
    civil, _, _ = three_complaints
    civil_clerk = await people.staff("civil")
    admin = await people.admin()
    answers = await asyncio.gather(
        client.post(reply_url(civil["id"]), json={"reply": "民政答复"}, headers=civil_clerk.headers),
        client.post(reply_url(civil["id"]), json={"reply": "管理员答复"}, headers=admin.headers),
    )
    assert sorted(r.status_code for r in answers) == [200, 409]
    assert await Notification.filter(kind="complaint_reply").count() == 1


async def test_a_clerk_of_another_department_cannot_see_or_answer(app, client, three_complaints, people):
    civil, police, general = three_complaints
    police_clerk = await people.staff("police")
    r = await client.post(reply_url(civil["id"]), json={"reply": "越权答复"}, headers=police_clerk.headers)
    assert r.status_code == 404 and r.json()["code"] == "complaint_not_found"
    assert (await Complaint.get(id=civil["id"])).status == "open"
    # the right department's clerk answers it
    civil_clerk = await people.staff("civil")
    r = await client.post(
        reply_url(police["id"]), json={"reply": "民政越权答复"}, headers=civil_clerk.headers
    )
    assert r.status_code == 404 and (await Complaint.get(id=police["id"])).status == "open"
    r = await client.post(reply_url(police["id"]), json={"reply": "公安已处理"}, headers=police_clerk.headers)
    assert r.status_code == 200 and r.json()["status"] == "answered"
    # one about no department: no clerk may answer it (issue 8, SECURITY row 1), the admin does
    for clerk in (police_clerk, civil_clerk):
        r = await client.post(reply_url(general["id"]), json={"reply": "窗口答复"}, headers=clerk.headers)
        assert r.status_code == 404 and r.json()["code"] == "complaint_not_found"
    assert (await Complaint.get(id=general["id"])).status == "open"
    assert await Notification.filter(kind="complaint_reply").count() == 1
    admin = await people.admin()
    r = await client.post(reply_url(general["id"]), json={"reply": "管理员答复建议"}, headers=admin.headers)
    assert r.status_code == 200 and (await Complaint.get(id=general["id"])).replied_by_id == admin.id
    r = await client.post(reply_url(civil["id"]), json={"reply": "管理员答复"}, headers=admin.headers)
    assert r.status_code == 200
    r = await client.post(reply_url(999999), json={"reply": "不存在"}, headers=admin.headers)
    assert r.status_code == 404


async def test_residents_and_grid_workers_cannot_answer(app, client, zhang, three_complaints, people):
    civil, _, _ = three_complaints
    grid = await people.grid_worker()
    for who in (zhang, grid):
        r = await client.post(reply_url(civil["id"]), json={"reply": "自己答复"}, headers=who.headers)
        assert r.status_code == 403
    assert (await client.post(reply_url(civil["id"]), json={"reply": "匿名答复"})).status_code == 401
    assert (await Complaint.get(id=civil["id"])).status == "open"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"reply": "好"},
        {"reply": "   好  "},
        {"reply": "复" * 2001},
        {"reply": 12},
        {"reply": "已处理", "status": "open"},
    ],
)
async def test_bad_replies_are_422_and_change_nothing(app, client, three_complaints, body, people):
    civil, _, _ = three_complaints
    clerk = await people.staff("civil")
    r = await client.post(reply_url(civil["id"]), json=body, headers=clerk.headers)
    assert r.status_code == 422, r.text
    assert (await Complaint.get(id=civil["id"])).status == "open"
    assert await Notification.filter(kind="complaint_reply").count() == 0


async def test_when_the_notification_cannot_be_written_the_answer_is_not_recorded(
    app, client, three_complaints, monkeypatch, people
):
    civil, _, _ = three_complaints
    clerk = await people.staff("civil")

    async def broken(**_):
        raise RuntimeError("inbox down")

    monkeypatch.setattr(Notification, "create", broken)
    r = await client.post(reply_url(civil["id"]), json={"reply": "这条答复不应留下"}, headers=clerk.headers)
    assert r.status_code == 500
    row = await Complaint.get(id=civil["id"])
    assert row.status == "open" and row.reply is None and row.replied_at is None
