"""The whole journey of one case, as the demo tells it, and submissions under concurrency."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime

from models import applications as db
from models.notifications import Notification
from tests.support.cases import (
    APPS,
    MATERIALS,
    POINT,
    WORK,
    act_ok,
    body,
    make_world,
    missing_all,
    submit,
)
from tests.support.files import png_b64


async def test_the_whole_journey(app, client):
    w = await make_world(app, client, second_resident=False)
    # 张三 submits at his community point, the result to be brought to his door
    r = await submit(client, w.resident, body(point=POINT, mode="grid_worker"), key="journey-1")
    assert r.status_code == 201, r.text
    case = r.json()
    case_id = case["id"]
    queue = (await client.get(WORK, headers=w.grid)).json()["items"]
    assert [c["id"] for c in queue] == [case_id]

    # the grid worker returns it once, listing every missing material with its reason
    notice = missing_all("身份证复印件不清晰，户口簿缺少本人页")
    returned = await act_ok(w, "grid", case_id, "return", missing_materials=notice)
    assert returned["status"] == "returned"
    mine = (await client.get(f"{APPS}/{case_id}", headers=w.resident)).json()
    assert mine["missing_materials"] == notice
    assert {m["material_code"] for m in mine["missing_materials"]} == set(MATERIALS)

    # 张三 resubmits
    r = await client.post(f"{APPS}/{case_id}/resubmit", headers=w.resident)
    assert r.status_code == 200 and r.json()["status"] == "submitted"

    # the grid worker accepts: the due date is counted in working days
    accepted = await act_ok(w, "grid", case_id, "accept")
    accepted_at = datetime.fromisoformat(accepted["accepted_at"])
    assert datetime.fromisoformat(accepted["due_at"]) == app.ctx.services.cases.calendar.due_at(
        accepted_at, "committed", 5
    )

    # staff of civil affairs review and approve, and make the result ready
    assert (await act_ok(w, "staff", case_id, "start_review"))["status"] == "in_review"
    approved = await act_ok(w, "staff", case_id, "approve", note="符合最低生活保障条件")
    assert approved["decision"] == "approved" and approved["decided_at"]
    assert (await act_ok(w, "staff", case_id, "mark_ready"))["status"] == "ready"

    # the grid worker brings it to the door, with the recipient's name and a photo
    delivered = await act_ok(w, "grid", case_id, "deliver", recipient="张三", photo=png_b64())
    assert delivered["status"] == "delivered"

    # the timeline has every step, in order, as 张三 reads it
    mine = (await client.get(f"{APPS}/{case_id}", headers=w.resident)).json()
    steps = [(e["action"], e["actor_role"], e["to_status"]) for e in mine["events"]]
    assert steps == [
        ("submit", "resident", "submitted"),
        ("return", "grid_worker", "returned"),
        ("resubmit", "resident", "submitted"),
        ("accept", "grid_worker", "accepted"),
        ("start_review", "staff", "in_review"),
        ("approve", "staff", "approved"),
        ("mark_ready", "staff", "ready"),
        ("deliver", "grid_worker", "delivered"),
    ]
    times = [datetime.fromisoformat(e["at"]) for e in mine["events"]]
    assert times == sorted(times)
    assert mine["events"][-1]["note"]["recipient"] == "张三"
    assert mine["events"][1]["note"]["missing_materials"] == notice
    assert mine["events"][3]["channel"] == "handheld"
    # his inbox got a line for every step
    inbox = await Notification.filter(account_id=w.resident_id, application_id=case_id).order_by("id")
    assert len(inbox) == len(steps)
    assert inbox[-1].title == "办理结果已送达"
    # his list shows it delivered
    listed = (await client.get(APPS, params={"status": "delivered"}, headers=w.resident)).json()["items"]
    assert [c["id"] for c in listed] == [case_id]


async def test_numbers_stay_unique_under_concurrent_submissions(app, client):
    w = await make_world(app, client, second_resident=False)
    answers = await asyncio.gather(*(submit(client, w.resident, body(), key=f"burst-{n}") for n in range(20)))
    assert [r.status_code for r in answers] == [201] * 20, [r.text for r in answers if r.status_code != 201]
    numbers = [r.json()["number"] for r in answers]
    assert len(set(numbers)) == 20
    assert all(re.fullmatch(r"XY\d{8}\d{6}", n) for n in numbers)
    assert await db.Application.all().count() == 20
    by_day: dict[str, list[int]] = {}
    for n in numbers:
        by_day.setdefault(n[2:10], []).append(int(n[10:]))
    for day, values in by_day.items():
        # the sequence of each day hands out 1, 2, 3 … with nothing skipped
        assert sorted(values) == list(range(1, len(values) + 1)), day
