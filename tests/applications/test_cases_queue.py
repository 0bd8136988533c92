"""The clerks' queue GET /work/applications: each clerk sees his scope only, filters, due-date order with
cases without a due date last, keyset pages without gaps or repeats; a case outside the scope is 404."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from models import applications as db
from tests.support.cases import (
    ACTION_FIELDS,
    CITY_POINT,
    COUNTER_ONLY_ITEM,
    HRSS_ITEM,
    ITEM,
    OTHER_POINT,
    POINT,
    WORK,
    act,
    make_world,
    new_case,
    problem_code,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
# a due date as the service writes it: the end of a day, in the city's zone
T0 = datetime(2026, 12, 1, 23, 59, 59, tzinfo=SHANGHAI)


async def spread(w) -> dict[str, int]:
    """One case in each corner of the scopes; their ids by name."""
    return {
        "civil_here": (await new_case(w, item=ITEM, point=POINT))["id"],
        "civil_there": (await new_case(w, item=ITEM, point=OTHER_POINT))["id"],
        "civil_online": (await new_case(w, item=ITEM, point=None))["id"],
        "hrss_here": (await new_case(w, item=HRSS_ITEM, point=POINT))["id"],
        "police_city": (await new_case(w, item=COUNTER_ONLY_ITEM, point=CITY_POINT))["id"],
    }


async def queue_ids(client, headers, **params) -> list[int]:
    r = await client.get(WORK, params={"limit": "100", **params}, headers=headers)
    assert r.status_code == 200, r.text
    return [c["id"] for c in r.json()["items"]]


async def test_each_clerk_sees_his_scope(app, client):
    w = await make_world(app, client, second_resident=False)
    ids = await spread(w)
    expected = {
        "grid": {"civil_here", "hrss_here"},
        "other_grid": {"civil_there"},
        "staff": {"civil_here", "civil_there", "civil_online"},
        "other_staff": {"hrss_here"},
        "admin": set(ids),
    }
    for role, names in expected.items():
        seen = set(await queue_ids(client, w.headers(role)))
        assert seen == {ids[n] for n in names}, role


async def test_outside_the_scope_is_404_on_read_and_on_actions(app, client):
    w = await make_world(app, client, second_resident=False)
    ids = await spread(w)
    visible = {
        "grid": {"civil_here", "hrss_here"},
        "other_grid": {"civil_there"},
        "staff": {"civil_here", "civil_there", "civil_online"},
        "other_staff": {"hrss_here"},
        "admin": set(ids),
    }
    for role, names in visible.items():
        for name, case_id in ids.items():
            r = await client.get(f"{WORK}/{case_id}", headers=w.headers(role))
            a = await act(client, w.headers(role), case_id, "refuse", **ACTION_FIELDS["refuse"])
            if name in names:
                assert r.status_code == 200, (role, name, r.text)
            else:
                assert r.status_code == 404, (role, name, r.text)
                assert problem_code(r) == "application_not_found"
                assert a.status_code == 404, (role, name, a.text)
    # nobody outside the scope changed anything; the admin refused them all last
    for case_id in ids.values():
        events = await db.ApplicationEvent.filter(application_id=case_id).count()
        assert events == 2
    r = await client.get(f"{WORK}/999999", headers=w.admin)
    assert r.status_code == 404


async def test_grid_worker_with_two_points_sees_both(app, client):
    w = await make_world(app, client, second_resident=False)
    ids = await spread(w)
    both = (await w.people.grid_worker(points=[POINT, OTHER_POINT])).headers
    seen = set(await queue_ids(client, both))
    assert seen == {ids["civil_here"], ids["hrss_here"], ids["civil_there"]}


async def test_clerk_without_scope_sees_nothing(app, client):
    w = await make_world(app, client, second_resident=False)
    ids = await spread(w)
    nobody = (await w.people.grid_worker(points=[POINT])).headers
    from models.identity import Account, AccountPoint

    newest = await Account.all().order_by("-id").first()
    await AccountPoint.filter(account_id=newest.id).delete()  # his only point is taken away
    assert await queue_ids(client, nobody) == []
    r = await client.get(f"{WORK}/{ids['civil_here']}", headers=nobody)
    assert r.status_code == 404


async def test_filters(app, client):
    w = await make_world(app, client, second_resident=False)
    ids = await spread(w)
    await db.Application.filter(id=ids["civil_here"]).update(status="accepted", due_at=T0)
    await db.Application.filter(id=ids["civil_there"]).update(
        status="accepted", due_at=T0 + timedelta(days=3), deadline_status="overdue"
    )
    await db.Application.filter(id=ids["hrss_here"]).update(status="in_review", due_at=T0 + timedelta(days=1))
    assert set(await queue_ids(client, w.admin, point_code=POINT)) == {ids["civil_here"], ids["hrss_here"]}
    assert set(await queue_ids(client, w.staff, point_code=POINT)) == {ids["civil_here"]}
    assert await queue_ids(client, w.grid, point_code=OTHER_POINT) == []
    assert set(await queue_ids(client, w.admin, status="accepted")) == {ids["civil_here"], ids["civil_there"]}
    assert await queue_ids(client, w.admin, status="in_review") == [ids["hrss_here"]]
    assert await queue_ids(client, w.admin, overdue="true") == [ids["civil_there"]]
    assert ids["civil_there"] not in await queue_ids(client, w.admin, overdue="false")
    before = (T0 + timedelta(days=2)).astimezone(UTC).isoformat()  # given in UTC
    assert await queue_ids(client, w.admin, due_before=before) == [ids["civil_here"], ids["hrss_here"]]
    # the same instant written in Beijing time
    local = (T0 + timedelta(days=2)).isoformat()
    assert await queue_ids(client, w.admin, due_before=local) == [ids["civil_here"], ids["hrss_here"]]
    assert await queue_ids(client, w.admin, due_before=before, status="in_review") == [ids["hrss_here"]]


async def test_due_before_without_an_offset_is_beijing_time(app, client):
    w = await make_world(app, client, second_resident=False)
    ids = await spread(w)
    # due 2026-12-01 23:59:59 in Beijing
    await db.Application.filter(id=ids["civil_here"]).update(status="accepted", due_at=T0)
    assert await queue_ids(client, w.admin, due_before="2026-12-02T00:00:00") == [ids["civil_here"]]
    assert await queue_ids(client, w.admin, due_before="2026-12-01T23:00:00") == []
    assert await queue_ids(client, w.admin, due_before="2026-12-02") == [ids["civil_here"]]


async def test_bad_filters_are_422(app, client):
    w = await make_world(app, client, second_resident=False)
    for params in [
        {"point_code": "P999999999999"},
        {"status": "done"},
        {"due_before": "tomorrow"},
        {"overdue": "maybe"},
        {"limit": "0"},
        {"limit": "-5"},
        {"cursor": "bm90LWEtY3Vyc29y"},
        {"cursor": "eyJhZnRlciI6IFsieCIsIDFdfQ"},  # {"after": ["x", 1]}
        {"department": "civil"},
        {"due_before": "9999-12-31T23:59:59-12:00"},
        {"due_before": "0001-01-01T00:00:00+14:00"},
        {"due_before": "0001-01-01"},
    ]:
        r = await client.get(WORK, params=params, headers=w.admin)
        assert r.status_code == 422, (params, r.text)


async def test_sorted_by_due_date_with_no_due_date_last(app, client):
    w = await make_world(app, client, second_resident=False)
    ids = [(await new_case(w))["id"] for _ in range(5)]
    dues = {ids[0]: T0 + timedelta(days=2), ids[2]: T0, ids[4]: T0 + timedelta(hours=1)}
    for case_id, due in dues.items():
        await db.Application.filter(id=case_id).update(status="accepted", due_at=due)
    assert await queue_ids(client, w.admin) == [ids[2], ids[4], ids[0], ids[1], ids[3]]
    assert await queue_ids(client, w.grid) == [ids[2], ids[4], ids[0], ids[1], ids[3]]


async def test_pages_have_no_gaps_and_no_repeats(app, client):
    w = await make_world(app, client, second_resident=False)
    ids = [(await new_case(w))["id"] for _ in range(14)]
    # many cases share a due date (deadlines fall at the end of a day), some have none
    for n, case_id in enumerate(ids[:10]):
        due = T0 + timedelta(days=n % 3) + timedelta(microseconds=123456 if n % 3 == 1 else 0)
        await db.Application.filter(id=case_id).update(status="accepted", due_at=due)
    everything = await queue_ids(client, w.admin)
    assert len(everything) == 14 and set(everything) == set(ids)
    for limit in (1, 2, 3, 7, 14, 20):
        seen, cursor, pages = [], None, 0
        while True:
            params = {"limit": str(limit), **({"cursor": cursor} if cursor else {})}
            r = await client.get(WORK, params=params, headers=w.admin)
            assert r.status_code == 200, r.text
            page = r.json()
            assert len(page["items"]) <= limit
            seen += [c["id"] for c in page["items"]]
            cursor = page["next_cursor"]
            pages += 1
            if cursor is None:
                break
            assert pages < 30
        assert seen == everything, limit


async def test_pages_keep_the_filters(app, client):
    w = await make_world(app, client, second_resident=False)
    ids = [(await new_case(w))["id"] for _ in range(6)]
    for case_id in ids[:4]:
        await db.Application.filter(id=case_id).update(status="accepted", due_at=T0)
    first = (await client.get(WORK, params={"limit": "3", "status": "accepted"}, headers=w.admin)).json()
    second = (
        await client.get(
            WORK, params={"limit": "3", "status": "accepted", "cursor": first["next_cursor"]}, headers=w.admin
        )
    ).json()
    assert [c["id"] for c in first["items"]] + [c["id"] for c in second["items"]] == ids[:4]
    assert second["next_cursor"] is None


async def test_pages_over_cases_accepted_the_same_day(app, client):
    """Cases accepted the same day share their due date to the second: the cursor must tell them apart."""
    w = await make_world(app, client, second_resident=False)
    ids = [(await new_case(w))["id"] for _ in range(7)]
    for case_id in ids[:5]:
        r = await act(client, w.grid, case_id, "accept")
        assert r.status_code == 200, r.text
    dues = {(await db.Application.get(id=i)).due_at for i in ids[:5]}
    assert len(dues) == 1
    seen, cursor = [], None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await client.get(WORK, params=params, headers=w.grid)).json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    due = dues.pop()
    just_after = (due + timedelta(seconds=1)).astimezone(UTC).isoformat()
    just_before = (due - timedelta(seconds=1)).astimezone(UTC).isoformat()
    assert await queue_ids(client, w.grid, due_before=just_after) == ids[:5]
    assert await queue_ids(client, w.grid, due_before=just_before) == []


async def test_page_size_is_capped(app, client):
    w = await make_world(app, client, second_resident=False)
    r = await client.get(WORK, params={"limit": "100000"}, headers=w.admin)
    assert r.status_code == 200


async def test_many_cases_page_in_order_for_every_scope_and_filter(app, client):
    """A table of many cases over several points, departments, statuses and shared due dates: every clerk's
    queue, with each filter, pages through exactly his cases in due-date order (the cases without one last,
    by id), and every page is the documented ApplicationList, byte for byte as the schema writes it."""
    import orjson

    from api.applications.schemas import ApplicationList

    w = await make_world(app, client, second_resident=False)
    both = (await w.people.grid_worker(points=[POINT, OTHER_POINT])).headers
    corners = [
        await new_case(w, item=ITEM, point=POINT),
        await new_case(w, item=ITEM, point=OTHER_POINT),
        await new_case(w, item=ITEM, point=None),
        await new_case(w, item=HRSS_ITEM, point=POINT),
        await new_case(w, item=HRSS_ITEM, point=OTHER_POINT),
        await new_case(w, item=COUNTER_ONLY_ITEM, point=CITY_POINT),
    ]
    templates = [await db.Application.get(id=c["id"]) for c in corners]
    statuses = ["accepted", "in_review", "submitted", "suspended", "ready"]
    copies = []
    for n in range(84):
        t = templates[n % len(templates)]
        due = None if n % 5 == 2 else T0 + timedelta(hours=n % 4, microseconds=250_000 * (n % 2))
        copies.append(
            db.Application(
                number=f"QX{n:08d}",
                applicant_id=t.applicant_id,
                item_id=t.item_id,
                department_id=t.department_id,
                point_id=t.point_id,
                channel=t.channel,
                status=statuses[n % len(statuses)],
                form={},
                delivery_mode=t.delivery_mode,
                due_at=due,
                deadline_status=("overdue", "normal", "warning")[n % 3],
            )
        )
    await db.Application.bulk_create(copies)
    table = await db.Application.all().values(
        "id", "status", "due_at", "deadline_status", "point__code", "department__code"
    )
    assert len(table) == 90

    def expected(sees, point_code=None, status=None, overdue=None, due_before=None) -> list[int]:
        rows = [
            r
            for r in table
            if sees(r)
            and (point_code is None or r["point__code"] == point_code)
            and (status is None or r["status"] == status)
            and (overdue is None or (r["deadline_status"] == "overdue") == (overdue == "true"))
            and (due_before is None or (r["due_at"] is not None and r["due_at"] < due_before))
        ]
        dated = sorted((r for r in rows if r["due_at"] is not None), key=lambda r: (r["due_at"], r["id"]))
        undated = sorted((r for r in rows if r["due_at"] is None), key=lambda r: r["id"])
        return [r["id"] for r in dated + undated]

    scopes = {
        "grid": (w.grid, lambda r: r["point__code"] == POINT),
        "grid_two_points": (both, lambda r: r["point__code"] in (POINT, OTHER_POINT)),
        "staff": (w.staff, lambda r: r["department__code"] == "civil"),
        "admin": (w.admin, lambda r: True),
    }
    cutoff = T0 + timedelta(hours=2)
    filters = [
        {},
        {"status": "accepted"},
        {"overdue": "true"},
        {"overdue": "false", "status": "submitted"},
        {"point_code": POINT},
        {"point_code": OTHER_POINT, "status": "in_review"},
        {"due_before": cutoff},
    ]
    for name, (headers, sees) in scopes.items():
        for given in filters:
            params = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in given.items()}
            want = expected(sees, **given)
            seen, cursor, pages = [], None, 0
            while True:
                query = {**params, "limit": "8", **({"cursor": cursor} if cursor else {})}
                r = await client.get(WORK, params=query, headers=headers)
                assert r.status_code == 200, (name, given, r.text)
                document = ApplicationList.model_validate_json(r.content)
                assert orjson.dumps(document.model_dump(mode="json")) == r.content
                seen += [c.id for c in document.items]
                cursor, pages = document.next_cursor, pages + 1
                if cursor is None:
                    break
                assert pages < 20
            assert seen == want, (name, given)
    # the filters above do not all come out empty: the comparison would prove little
    assert expected(scopes["grid_two_points"][1], status="accepted")
    assert expected(scopes["grid"][1], point_code=POINT)
