"""Contract: GET /notifications (my inbox, newest first, paginated, ?unread=) and
POST /notifications/{id}/read (idempotent; someone else's is 404)."""

from __future__ import annotations

from datetime import datetime

import pytest

from models.notifications import Notification
from tests.support.people import LI
from tests.support.rows import make_case, make_notification

pytestmark = pytest.mark.usefixtures("catalog")

INBOX = "/api/v1/notifications"


def read_url(notification_id: int) -> str:
    return f"{INBOX}/{notification_id}/read"


async def fill(account_id: int, n: int, **kw) -> list[int]:
    return [(await make_notification(account_id, f"消息{i}", **kw)).id for i in range(n)]


async def test_the_inbox_lists_my_notifications_newest_first(client, zhang):
    case = await make_case(zhang.id, status="approved")
    ids = await fill(zhang.id, 3, application_id=case.id)
    r = await client.get(INBOX, headers=zhang.headers)
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["next_cursor"] is None
    assert [n["id"] for n in page["items"]] == list(reversed(ids))
    first = page["items"][0]
    assert set(first) == {"id", "kind", "title", "body", "application_id", "created_at", "read_at"}
    assert (
        first["kind"] == "application_status" and first["title"] == "消息2" and first["body"] == "测试：消息2"
    )
    assert first["application_id"] == case.id and first["read_at"] is None
    assert first["created_at"].endswith("+08:00")


async def test_the_inbox_pages_through_everything_once(client, zhang):
    ids = await fill(zhang.id, 7)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(INBOX, params=params, headers=zhang.headers)).json()
        pages += 1
        assert len(page["items"]) <= 3
        seen += [n["id"] for n in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids)) and pages == 3


async def test_the_page_size_defaults_to_20_and_is_capped_at_100(client, zhang):
    await Notification.bulk_create(
        [
            Notification(account_id=zhang.id, kind="application_status", title=f"t{i}", body="b")
            for i in range(105)
        ]
    )
    assert len((await client.get(INBOX, headers=zhang.headers)).json()["items"]) == 20
    page = (await client.get(INBOX, params={"limit": 100000}, headers=zhang.headers)).json()
    assert len(page["items"]) == 100 and page["next_cursor"] is not None


async def test_nobody_sees_anyone_elses_notifications(app, client, zhang, people):
    li = await people.resident(LI)
    mine = await fill(zhang.id, 2)
    theirs = await fill(li.id, 2)
    assert [n["id"] for n in (await client.get(INBOX, headers=zhang.headers)).json()["items"]] == mine[::-1]
    assert [n["id"] for n in (await client.get(INBOX, headers=li.headers)).json()["items"]] == theirs[::-1]


async def test_reading_marks_once_and_keeps_the_first_time(client, zhang):
    first, second = await fill(zhang.id, 2)
    r = await client.post(read_url(first), headers=zhang.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == first and body["read_at"] is not None
    read_at = datetime.fromisoformat(body["read_at"])
    again = await client.post(read_url(first), headers=zhang.headers)
    assert again.status_code == 200 and datetime.fromisoformat(again.json()["read_at"]) == read_at
    assert (await Notification.get(id=second)).read_at is None


async def test_unread_filters_the_inbox(client, zhang):
    ids = await fill(zhang.id, 4)
    for notification_id in ids[:2]:
        await client.post(read_url(notification_id), headers=zhang.headers)
    unread = (await client.get(INBOX, params={"unread": "true"}, headers=zhang.headers)).json()["items"]
    assert [n["id"] for n in unread] == [ids[3], ids[2]]
    read = (await client.get(INBOX, params={"unread": "false"}, headers=zhang.headers)).json()["items"]
    assert [n["id"] for n in read] == [ids[1], ids[0]] and all(n["read_at"] for n in read)
    # pagination keeps the filter
    page = (await client.get(INBOX, params={"unread": "true", "limit": 1}, headers=zhang.headers)).json()
    rest = (
        await client.get(
            INBOX, params={"unread": "true", "cursor": page["next_cursor"]}, headers=zhang.headers
        )
    ).json()
    assert [n["id"] for n in page["items"] + rest["items"]] == [ids[3], ids[2]]


async def test_someone_elses_notification_cannot_be_marked(client, zhang, people):
    li = await people.resident(LI)
    (theirs,) = await fill(li.id, 1)
    r = await client.post(read_url(theirs), headers=zhang.headers)
    assert r.status_code == 404 and r.json()["code"] == "notification_not_found"
    assert (await Notification.get(id=theirs)).read_at is None
    assert (await client.post(read_url(theirs + 1000), headers=zhang.headers)).status_code == 404


async def test_staff_and_grid_workers_have_an_inbox_too(app, client, catalog, people):
    clerk = await people.staff("civil")
    grid = await people.grid_worker()
    (to_clerk,) = await fill(clerk.id, 1)
    for who, expected in ((clerk, [to_clerk]), (grid, [])):
        r = await client.get(INBOX, headers=who.headers)
        assert r.status_code == 200 and [n["id"] for n in r.json()["items"]] == expected
    assert (await client.post(read_url(to_clerk), headers=clerk.headers)).status_code == 200
    assert (await client.post(read_url(to_clerk), headers=grid.headers)).status_code == 404


async def test_the_inbox_needs_a_sign_in(client, zhang):
    (notification_id,) = await fill(zhang.id, 1)
    assert (await client.get(INBOX)).status_code == 401
    assert (await client.post(read_url(notification_id))).status_code == 401
    r = await client.get(INBOX, headers={"Authorization": "Bearer not-a-token"})
    assert r.status_code == 401


@pytest.mark.parametrize(
    "params",
    [
        {"unread": "maybe"},
        {"cursor": "garbage"},
        {"cursor": "eyJiZWZvcmUiOiJ4In0"},
        {"limit": 0},
        {"limit": "ten"},
        {"box": "sent"},
    ],
)
async def test_bad_query_parameters_are_422(client, zhang, params):
    r = await client.get(INBOX, params=params, headers=zhang.headers)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_the_read_time_comes_from_the_clock_and_is_answered_in_the_city_zone(
    client, zhang, monkeypatch
):
    from datetime import UTC

    from api.kit import clock

    (first,) = await fill(zhang.id, 1)
    moment = datetime(2026, 5, 1, 1, 30, tzinfo=UTC)
    monkeypatch.setattr(clock, "now", lambda: moment)
    r = await client.post(read_url(first), headers=zhang.headers)
    assert r.status_code == 200
    assert r.json()["read_at"].endswith("+08:00") and datetime.fromisoformat(r.json()["read_at"]) == moment
