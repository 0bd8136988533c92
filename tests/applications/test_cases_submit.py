"""POST /api/v1/applications: the answer's shape, the number, and every bad input refused with nothing written."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from tortoise import connections

from api.catalog.service import VERSION_KEY
from models import applications as db
from models import catalog as catalog_db
from models.notifications import Notification
from tests.foundation.test_metrics import scrape
from tests.support.cases import (
    ADDRESS,
    APPS,
    CITY_POINT,
    COUNTER_ONLY_ITEM,
    HRSS_ITEM,
    ITEM,
    POINT,
    body,
    make_world,
    problem_code,
    submit,
)
from tests.support.people import bearer, end_cooldown, sms_sign_in

NUMBER = re.compile(r"^XY(\d{8})(\d{6})$")


def shanghai_day() -> str:
    return datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y%m%d")


async def test_submit_answers_201_with_the_case_and_its_first_event(app, client):
    w = await make_world(app, client, second_resident=False)
    before = shanghai_day()
    r = await submit(client, w.resident, body(mode="mail"))
    after = shanghai_day()
    assert r.status_code == 201, r.text
    case = r.json()
    assert {
        "id",
        "number",
        "status",
        "item",
        "point",
        "channel",
        "delivery",
        "created_at",
        "due_at",
        "events",
    } <= set(case)
    assert case["status"] == "submitted" and case["due_at"] is None
    assert case["item"] == {"code": ITEM, "name": "最低生活保障申请"}
    assert case["point"]["code"] == POINT
    assert case["channel"] == "app"
    assert case["delivery"]["mode"] == "mail"
    # the resident sees his own address masked, never in full
    assert case["delivery"]["address"] != ADDRESS and case["delivery"]["address"].endswith("****")
    m = NUMBER.match(case["number"])
    assert m and m.group(1) in (before, after), case["number"]
    created = datetime.fromisoformat(case["created_at"])
    assert created.utcoffset() is not None
    assert created.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y%m%d") == m.group(1)
    [event] = case["events"]
    assert event["action"] == "submit" and event["to_status"] == "submitted"
    assert event["actor_role"] == "resident" and event["channel"] == "app" and event["at"]
    row = await db.Application.get(id=case["id"])
    assert row.applicant_id == w.resident_id and row.status == "submitted"
    assert ADDRESS not in (row.delivery_address_enc or "")
    assert await Notification.filter(application_id=case["id"], account_id=w.resident_id).count() == 1


async def test_the_answer_is_what_a_later_read_of_the_case_shows(app, client):
    """The answer is built from what was written, not read back: it must agree with the case as stored,
    field for field (the moment, the form, the refs, the masked address, the first event)."""
    w = await make_world(app, client, second_resident=False)
    for data in (body(mode="grid_worker"), body(point=None, mode="mail"), body(form={"说明": "无", "n": 0})):
        r = await submit(client, w.resident, data, key=uuid.uuid4().hex)
        assert r.status_code == 201, r.text
        read = await client.get(f"{APPS}/{r.json()['id']}", headers=w.resident)
        assert read.status_code == 200, read.text
        assert r.json() == read.json()
    # and the inbox holds the notification written with it
    inbox = await client.get("/api/v1/notifications", headers=w.resident)
    assert inbox.status_code == 200, inbox.text
    assert [n["application_id"] for n in inbox.json()["items"]][:1] == [r.json()["id"]]


async def test_a_submission_is_written_in_two_statements_on_postgresql_five_on_sqlite(app, client):
    """Once this worker knows the item and the point, a submission reads nothing from the database and
    writes the day's number, then the case, its first event, its notification and that notification's
    outbox row: one statement on PostgreSQL, four inserts on SQLite (counted by the statement hook of
    /metrics; BEGIN and COMMIT are not statements there). Before issue 9 it was ten."""
    w = await make_world(app, client, second_resident=False)
    assert (
        await submit(client, w.resident, body(mode="grid_worker"), key=uuid.uuid4().hex)
    ).status_code == 201
    before = await scrape(client)
    r = await submit(client, w.resident, body(mode="grid_worker"), key=uuid.uuid4().hex)
    after = await scrape(client)
    assert r.status_code == 201, r.text

    def statements(samples, operation: str) -> float:
        return sum(
            v
            for (name, labels), v in samples.items()
            if name == "ywt_db_query_duration_seconds_count" and dict(labels)["operation"] == operation
        )

    added = {
        op: statements(after, op) - statements(before, op)
        for op in ("select", "insert", "update", "delete", "other", "script")
    }
    postgres = connections.get("default").capabilities.dialect == "postgres"
    # the number's upsert is an INSERT … ON CONFLICT; PostgreSQL's one statement starts with WITH ("other")
    wanted = {"insert": 1, "other": 1} if postgres else {"insert": 5}
    assert {op: n for op, n in added.items() if n} == wanted


async def test_a_changed_catalogue_reaches_the_next_submission(app, client):
    """The item and point a worker keeps are dropped when the catalogue's version moves (what load-catalog
    does): within a second every worker submits by the new catalogue."""
    w = await make_world(app, client, second_resident=False)
    assert (
        await submit(client, w.resident, body(mode="grid_worker"), key=uuid.uuid4().hex)
    ).status_code == 201
    item = await catalog_db.ServiceItem.get(code=ITEM)
    item.delivery_modes = ["pickup", "mail"]  # grid workers no longer bring its results
    await item.save()
    await app.ctx.services.kernel.redis.incr(VERSION_KEY)  # as `api.cli load-catalog` does
    await asyncio.sleep(1.1)  # a worker looks at the version at most once a second
    r = await submit(client, w.resident, body(mode="grid_worker"), key=uuid.uuid4().hex)
    assert r.status_code == 422, r.text
    assert problem_code(r) == "delivery_mode_not_offered"
    assert (await submit(client, w.resident, body(mode="mail"), key=uuid.uuid4().hex)).status_code == 201


async def test_numbers_are_unique_and_follow_on(app, client):
    w = await make_world(app, client, second_resident=False)
    numbers = []
    for _ in range(3):
        r = await submit(client, w.resident, body())
        assert r.status_code == 201, r.text
        numbers.append(r.json()["number"])
    assert len(set(numbers)) == 3
    sequences = [int(NUMBER.match(n).group(2)) for n in numbers]
    assert sequences == sorted(sequences)


async def test_online_submission_has_no_point(app, client):
    w = await make_world(app, client, second_resident=False)
    r = await submit(client, w.resident, body(point=None))
    assert r.status_code == 201, r.text
    assert r.json()["point"] is None


async def test_counter_item_is_accepted_at_the_city_hall(app, client):
    w = await make_world(app, client, second_resident=False)
    r = await submit(client, w.resident, body(item=COUNTER_ONLY_ITEM, point=CITY_POINT))
    assert r.status_code == 201, r.text
    assert r.json()["department"]["code"] == "police"


async def test_wechat_channel_is_recorded(app, client):
    w = await make_world(app, client, second_resident=False)
    await end_cooldown(app, "13800000001")  # the resident signs in again, through the official account
    tokens = await sms_sign_in(client, "13800000001", channel="wechat")
    r = await submit(client, bearer(tokens), body())
    assert r.status_code == 201, r.text
    assert r.json()["channel"] == "wechat" and r.json()["events"][0]["channel"] == "wechat"
    assert w.resident_id == tokens["account"]["id"]


BAD_SUBMISSIONS = [
    (body(item=COUNTER_ONLY_ITEM, point=POINT), "point_code", "not_handled_at_point"),
    (body(item=HRSS_ITEM, point=CITY_POINT), "point_code", "not_handled_at_point"),
    (body(item="360500-XX-999"), "item_code", "unknown_item"),
    (body(point="P999999999999"), "point_code", "unknown_point"),
    (body(item=COUNTER_ONLY_ITEM, point=None), "point_code", "not_handled_online"),
    (body(item=COUNTER_ONLY_ITEM, point=CITY_POINT, mode="grid_worker"), "delivery.mode", None),
    (body(point=None, mode="grid_worker"), "delivery.mode", None),
    (body(mode="drone"), "delivery.mode", "validation_failed"),
    (body(mode="mail", address=""), "delivery", "validation_failed"),
    ({**body(), "delivery": {"mode": "mail"}}, "delivery", "validation_failed"),
    ({**body(), "delivery": {"mode": "grid_worker"}}, "delivery", "validation_failed"),
    ({**body(), "status": "approved"}, "status", "validation_failed"),
    ({**body(), "applicant_id": 1}, "applicant_id", "validation_failed"),
    ({**body(), "number": "XY20260101000001"}, "number", "validation_failed"),
    ({k: v for k, v in body().items() if k != "point_code"}, "point_code", "validation_failed"),
    ({k: v for k, v in body().items() if k != "item_code"}, "item_code", "validation_failed"),
    ({k: v for k, v in body().items() if k != "delivery"}, "delivery", "validation_failed"),
    ({**body(), "delivery": {"mode": "pickup", "extra": 1}}, "delivery.extra", "validation_failed"),
    ({**body(), "delivery": "pickup"}, "delivery", "validation_failed"),
    ({**body(), "form": {"x": {"nested": True}}}, "form.x", "validation_failed"),
    ({**body(), "form": {"x": "长" * 2001}}, "form", "validation_failed"),
    ({**body(), "form": {f"k{n}": n for n in range(51)}}, "form", "validation_failed"),
    ({**body(), "item_code": ""}, "item_code", "validation_failed"),
    ({**body(), "item_code": 42}, "item_code", "validation_failed"),
]


async def test_bad_submission_is_422_and_writes_nothing(app, client):
    w = await make_world(app, client, second_resident=False)
    for n, (data, field, code) in enumerate(BAD_SUBMISSIONS):
        r = await submit(client, w.resident, data, key=f"bad-{n}")
        assert r.status_code == 422, (n, r.text)
        problem = r.json()
        if code:
            assert problem_code(r) == code, (n, problem)
        assert any(e["field"].startswith(field) for e in problem["errors"]), (n, problem)
        assert "pydantic" not in r.text and "Traceback" not in r.text
    assert await db.Application.all().count() == 0
    assert await db.ApplicationEvent.all().count() == 0
    assert await Notification.all().count() == 0
    assert await db.NumberSequence.all().count() == 0


async def test_client_cannot_set_status(app, client):
    """SECURITY.md row 9: POST /applications {"status": "approved", ...} → 422."""
    w = await make_world(app, client, second_resident=False)
    r = await submit(client, w.resident, {**body(), "status": "approved"})
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "status", "message": "不允许的字段"}]
    assert await db.Application.all().count() == 0


async def test_wrong_content_type_is_415_and_broken_json_422(app, client):
    w = await make_world(app, client, second_resident=False)
    for content_type, payload in [
        ("text/plain", b"{}"),
        ("application/x-www-form-urlencoded", b"item_code=x"),
        ("multipart/form-data; boundary=x", b"--x--"),
        (None, b"{}"),
    ]:
        headers = dict(w.resident)
        if content_type:
            headers["Content-Type"] = content_type
        r = await client.post(APPS, content=payload, headers=headers)
        assert r.status_code == 415, (content_type, r.text)
        assert problem_code(r) == "unsupported_media_type"
    for payload in [b"{not json", b"[1, 2]", b"null", b"", b'"text"']:
        r = await client.post(
            APPS, content=payload, headers={**w.resident, "Content-Type": "application/json; charset=utf-8"}
        )
        assert r.status_code == 422, (payload, r.text)
    assert await db.Application.all().count() == 0


async def test_resident_without_real_name_is_403(app, client):
    await make_world(app, client, second_resident=False)
    tokens = await sms_sign_in(client, "13800000009")
    assert tokens["account"]["real_name_level"] == 1
    r = await submit(client, bearer(tokens), body())
    assert r.status_code == 403
    assert problem_code(r) == "real_name_required"
    assert await db.Application.all().count() == 0


async def test_resident_may_submit_right_after_verifying_real_name(app, client):
    """The token was issued at level 1; the account is level 2 now, and that is what counts."""
    w = await make_world(app, client, second_resident=False)
    r = await submit(client, w.resident, body())
    assert r.status_code == 201, r.text


async def test_back_office_cannot_submit(app, client):
    w = await make_world(app, client, second_resident=False)
    for role in ("grid", "staff", "admin"):
        r = await submit(client, w.headers(role), body())
        assert r.status_code == 403, role
        assert problem_code(r) == "forbidden"
    assert await db.Application.all().count() == 0


async def test_submit_without_token_is_401(app, client):
    await make_world(app, client, second_resident=False)
    r = await client.post(APPS, json=body())
    assert r.status_code == 401
