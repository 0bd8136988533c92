"""The resident's side: his cases (and only his), one case with its timeline, resubmit, withdraw."""

from __future__ import annotations

from models import applications as db
from tests.support.cases import (
    APPS,
    act_ok,
    case_in,
    make_world,
    missing_all,
    new_case,
    problem_code,
)


async def test_my_list_holds_only_mine_newest_first(app, client):
    w = await make_world(app, client)
    mine = [await new_case(w) for _ in range(3)]
    await new_case(w, headers=w.other_resident)
    r = await client.get(APPS, headers=w.resident)
    assert r.status_code == 200, r.text
    page = r.json()
    assert [c["id"] for c in page["items"]] == [c["id"] for c in reversed(mine)]
    assert page["next_cursor"] is None
    assert {"id", "number", "status", "item", "point", "created_at", "due_at"} <= set(page["items"][0])


async def test_my_list_filters_by_status(app, client):
    w = await make_world(app, client)
    submitted = await new_case(w)
    returned = await case_in(w, "returned")
    other = await new_case(w, headers=w.other_resident)
    await act_ok(w, "grid", other["id"], "return", missing_materials=missing_all())
    r = await client.get(APPS, params={"status": "returned"}, headers=w.resident)
    assert [c["id"] for c in r.json()["items"]] == [returned["id"]]
    r = await client.get(APPS, params={"status": "submitted"}, headers=w.resident)
    assert [c["id"] for c in r.json()["items"]] == [submitted["id"]]
    r = await client.get(APPS, params={"status": "approved"}, headers=w.resident)
    assert r.json()["items"] == []


async def test_my_list_refuses_bad_query(app, client):
    w = await make_world(app, client, second_resident=False)
    for params in [
        {"status": "approved_by_me"},
        {"limit": "0"},
        {"limit": "x"},
        {"cursor": "not-a-cursor"},
        {"owner": "2"},
        [("status", "submitted"), ("status", "returned")],
    ]:
        r = await client.get(APPS, params=params, headers=w.resident)
        assert r.status_code == 422, (params, r.text)


async def test_my_list_pages_without_gaps_or_repeats(app, client):
    w = await make_world(app, client, second_resident=False)
    ids = [(await new_case(w))["id"] for _ in range(5)]
    seen, cursor = [], None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await client.get(APPS, params=params, headers=w.resident)).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))


async def test_my_case_with_its_timeline(app, client):
    w = await make_world(app, client)
    case = await new_case(w)
    r = await client.get(f"{APPS}/{case['id']}", headers=w.resident)
    assert r.status_code == 200
    assert r.json()["id"] == case["id"] and [e["action"] for e in r.json()["events"]] == ["submit"]


async def test_another_residents_case_is_404(app, client):
    w = await make_world(app, client)
    his = await new_case(w, headers=w.other_resident)
    for method, path in [
        ("GET", f"{APPS}/{his['id']}"),
        ("POST", f"{APPS}/{his['id']}/withdraw"),
        ("POST", f"{APPS}/{his['id']}/resubmit"),
    ]:
        r = await client.request(method, path, headers=w.resident)
        assert r.status_code == 404, (path, r.text)
        assert problem_code(r) == "application_not_found"
    r = await client.get(f"{APPS}/{his['id'] + 1000}", headers=w.resident)
    assert r.status_code == 404
    assert (await db.Application.get(id=his["id"])).status == "submitted"


async def test_resubmit_only_from_returned(app, client):
    w = await make_world(app, client, second_resident=False)
    case = await new_case(w)
    r = await client.post(f"{APPS}/{case['id']}/resubmit", headers=w.resident)
    assert r.status_code == 409 and problem_code(r) == "invalid_transition"
    await act_ok(w, "grid", case["id"], "return", missing_materials=missing_all())
    r = await client.post(f"{APPS}/{case['id']}/resubmit", headers=w.resident)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "submitted"
    assert [e["action"] for e in r.json()["events"]] == ["submit", "return", "resubmit"]
    r = await client.post(f"{APPS}/{case['id']}/resubmit", headers=w.resident)
    assert r.status_code == 409


async def test_withdraw_until_decided(app, client):
    w = await make_world(app, client, second_resident=False)
    for status in ("submitted", "returned", "accepted", "in_review", "suspended"):
        case = await case_in(w, status)
        r = await client.post(
            f"{APPS}/{case['id']}/withdraw", json={"reason": "已在别处办理"}, headers=w.resident
        )
        assert r.status_code == 200, (status, r.text)
        assert r.json()["status"] == "withdrawn"
        event = r.json()["events"][-1]
        assert event["action"] == "withdraw" and event["note"] == {"reason": "已在别处办理"}
        assert event["actor_role"] == "resident" and event["from_status"] == status
        assert r.json()["deadline_status"] == "normal"


async def test_withdraw_after_decision_is_409(app, client):
    w = await make_world(app, client, second_resident=False)
    for status in ("approved", "rejected", "ready", "delivered", "closed", "refused", "withdrawn"):
        case = await case_in(w, status)
        r = await client.post(f"{APPS}/{case['id']}/withdraw", headers=w.resident)
        assert r.status_code == 409 and problem_code(r) == "invalid_transition", (status, r.text)
        assert (await db.Application.get(id=case["id"])).status == status


async def test_withdraw_body_is_strict(app, client):
    w = await make_world(app, client, second_resident=False)
    case = await new_case(w)
    for payload, content_type, status in [
        (b'{"reason": "x", "status": "approved"}', "application/json", 422),
        (b'{"reason": 5}', "application/json", 422),
        (b"[]", "application/json", 422),
        (b"reason=x", "application/x-www-form-urlencoded", 415),
    ]:
        r = await client.post(
            f"{APPS}/{case['id']}/withdraw",
            content=payload,
            headers={**w.resident, "Content-Type": content_type},
        )
        assert r.status_code == status, (payload, r.text)
    assert (await db.Application.get(id=case["id"])).status == "submitted"


async def test_resident_cannot_use_the_clerk_routes(app, client):
    w = await make_world(app, client, second_resident=False)
    case = await new_case(w)
    r = await client.post(
        f"/api/v1/work/applications/{case['id']}/actions", json={"action": "accept"}, headers=w.resident
    )
    assert r.status_code == 403
    assert (await db.Application.get(id=case["id"])).status == "submitted"
