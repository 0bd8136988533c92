"""The state machine through POST /work/applications/{id}/actions and the resident's own actions: every
allowed transition answers 200, every other one 409 invalid_transition and changes nothing."""

from __future__ import annotations

import pytest

from api.applications import states
from models import applications as db
from models.notifications import Notification
from tests.support.cases import ACTION_FIELDS, APPS, PATHS, case_in, make_world, problem_code

STATUSES = list(PATHS)
WORK_ACTIONS = list(states.WORK_ACTIONS)
APPLICANT_ACTIONS = ["resubmit", "withdraw"]
SNAPSHOT = (
    "status",
    "returned_count",
    "accepted_at",
    "accepted_by_id",
    "due_at",
    "suspended_at",
    "paused_workdays",
    "deadline_status",
    "decided_at",
    "decision",
    "decided_on_time",
    "delivered_at",
)


def test_the_table_covers_every_status_and_action():
    assert set(STATUSES) == set(db.STATUSES)
    assert set(WORK_ACTIONS) | set(APPLICANT_ACTIONS) == set(states.TRANSITIONS)
    assert set(WORK_ACTIONS) == set(ACTION_FIELDS)


@pytest.mark.parametrize("status", STATUSES)
async def test_every_action_from_every_status(app, client, status):
    w = await make_world(app, client, second_resident=False)
    case = await case_in(w, status)
    case_id = case["id"]
    row = await db.Application.get(id=case_id)
    saved = {name: getattr(row, name) for name in SNAPSHOT}
    outcomes = {}
    for action in WORK_ACTIONS + APPLICANT_ACTIONS:
        await db.Application.filter(id=case_id).update(**saved)
        events_before = await db.ApplicationEvent.filter(application_id=case_id).count()
        notes_before = await Notification.filter(application_id=case_id).count()
        if action in APPLICANT_ACTIONS:
            r = await client.post(f"{APPS}/{case_id}/{action}", headers=w.resident)
        else:
            r = await client.post(
                f"/api/v1/work/applications/{case_id}/actions",
                json={"action": action, **ACTION_FIELDS[action]},
                headers=w.admin,
            )
        transition = states.TRANSITIONS[action]
        after = await db.Application.get(id=case_id)
        events_after = await db.ApplicationEvent.filter(application_id=case_id).count()
        notes_after = await Notification.filter(application_id=case_id).count()
        if status in transition.sources:
            assert r.status_code == 200, (status, action, r.text)
            assert r.json()["status"] == transition.target == after.status
            assert r.json()["events"][-1]["action"] == action
            assert (events_after, notes_after) == (events_before + 1, notes_before + 1)
        else:
            assert r.status_code == 409, (status, action, r.text)
            assert problem_code(r) == "invalid_transition", (status, action)
            assert after.status == status
            assert (events_after, notes_after) == (events_before, notes_before)
        outcomes[action] = r.status_code
    allowed = {a for a, t in states.TRANSITIONS.items() if status in t.sources}
    assert {a for a, code in outcomes.items() if code == 200} == allowed


async def test_unknown_action_is_422(app, client):
    w = await make_world(app, client, second_resident=False)
    case = await case_in(w, "submitted")
    for action in ("resubmit", "withdraw", "delete", "", "ACCEPT"):
        r = await client.post(
            f"/api/v1/work/applications/{case['id']}/actions", json={"action": action}, headers=w.admin
        )
        assert r.status_code == 422, (action, r.text)
        assert r.json()["errors"][0]["field"] == "action"
    r = await client.post(f"/api/v1/work/applications/{case['id']}/actions", json={}, headers=w.admin)
    assert r.status_code == 422
    r = await client.post(
        f"/api/v1/work/applications/{case['id']}/actions",
        json={"action": "accept", "status": "approved"},
        headers=w.admin,
    )
    assert r.status_code == 422 and r.json()["errors"] == [{"field": "status", "message": "不允许的字段"}]
    r = await client.post(
        f"/api/v1/work/applications/{case['id']}/actions",
        content=b"action=accept",
        headers={**w.admin, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 415
    assert (await db.Application.get(id=case["id"])).status == "submitted"
