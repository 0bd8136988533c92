"""Contract: GET /stats/applications?from=&to=&point_code=&department= — of the cases created in the period:
submitted, accepted, decided, completion_rate = decided / accepted, on_time_rate = decided on time / decided,
overdue (overdue now, or decided late), returned (returned for correction at least once). Counted by hand."""

from __future__ import annotations

import pytest

from tests.support.people import ZHANG
from tests.support.rows import at, make_case

pytestmark = pytest.mark.usefixtures("catalog")

URL = "/api/v1/stats/applications"
P1, P2 = "P360502001001", "P360502002001"
MZ, RS, GA = "360500-MZ-001", "360500-RS-002", "360500-GA-001"  # civil, hrss, police
APRIL = {"from": "2026-04-01T00:00:00+08:00", "to": "2026-05-01T00:00:00+08:00"}


@pytest.fixture
async def cases(client, catalog, people):
    """Eleven cases of 张三; #1–#9 created in April 2026, #10 in March, #11 in May.

    #   status     accepted decided on time  deadline  returned  item      point
    1   submitted  -        -       -        normal    0         MZ civil  P1
    2   returned   -        -       -        normal    1         MZ civil  P1
    3   refused    -        -       -        normal    0         RS hrss   P2
    4   in_review  yes      -       -        normal    0         MZ civil  P1
    5   accepted   yes      -       -        overdue   0         RS hrss   P2
    6   approved   yes      yes     yes      normal    0         MZ civil  P1
    7   rejected   yes      yes     yes      normal    1         RS hrss   P2
    8   delivered  yes      yes     no       normal    0         MZ civil  P2
    9   closed     yes      yes     yes      normal    0         GA police CITY-CENTER
    10  approved   yes      yes     no       normal    0         MZ civil  P1   (March)
    11  suspended  yes      -       -        overdue   0         MZ civil  P1   (May)
    """
    zhang = (await people.resident(ZHANG)).id
    april, march, may = at("2026-04-10 09:00"), at("2026-03-20 09:00"), at("2026-05-06 09:00")
    rows = [
        dict(status="submitted", item=MZ, point=P1),
        dict(status="returned", item=MZ, point=P1, returned_count=1),
        dict(status="refused", item=RS, point=P2),
        dict(status="in_review", item=MZ, point=P1),
        dict(status="accepted", item=RS, point=P2, deadline_status="overdue"),
        dict(status="approved", item=MZ, point=P1),
        dict(status="rejected", item=RS, point=P2, returned_count=1),
        dict(status="delivered", item=MZ, point=P2, decided_on_time=False),
        dict(status="closed", item=GA, point="CITY-CENTER"),
        dict(status="approved", item=MZ, point=P1, decided_on_time=False, created_at=march),
        dict(status="suspended", item=MZ, point=P1, deadline_status="overdue", created_at=may),
    ]
    for row in rows:
        await make_case(zhang, **{"created_at": april, **row})


async def figures(client, who, **params) -> dict:
    r = await client.get(URL, params=params, headers=who.headers)
    assert r.status_code == 200, r.text
    return r.json()


async def test_april_for_the_whole_city(client, cases, admin):
    """#1–#9: accepted #4–#9 = 6; decided #6–#9 = 4; completion 4/6; on time #6 #7 #9 = 3 of 4;
    overdue #5 (overdue now) and #8 (decided late) = 2; returned #2 #7 = 2."""
    assert await figures(client, admin, **APRIL) == {
        "submitted": 9,
        "accepted": 6,
        "decided": 4,
        "completion_rate": 0.6667,
        "on_time_rate": 0.75,
        "overdue": 2,
        "returned": 2,
    }


async def test_all_time(client, cases, admin):
    """#1–#11: accepted #4–#11 = 8; decided #6–#10 = 5; completion 5/8; on time 3 of 5;
    overdue #5 #8 #10 #11 = 4; returned 2."""
    assert await figures(client, admin) == {
        "submitted": 11,
        "accepted": 8,
        "decided": 5,
        "completion_rate": 0.625,
        "on_time_rate": 0.6,
        "overdue": 4,
        "returned": 2,
    }


async def test_the_period_bounds(client, cases, admin):
    """from inclusive: a case created exactly at 04-10 09:00 counts from then, not to then."""
    only_may = await figures(client, admin, **{"from": "2026-05-01T00:00:00+08:00"})
    assert only_may["submitted"] == 1 and only_may["overdue"] == 1 and only_may["decided"] == 0
    assert (await figures(client, admin, **{"from": "2026-04-10T09:00:00+08:00"}))["submitted"] == 10
    assert (await figures(client, admin, to="2026-04-10T09:00:00+08:00"))["submitted"] == 1
    # the same instant in UTC
    assert (await figures(client, admin, to="2026-04-10T01:00:00Z"))["submitted"] == 1


async def test_by_point(client, cases, admin):
    """April at P1: #1 #2 #4 #6 → accepted #4 #6; decided #6 (on time); returned #2."""
    assert await figures(client, admin, point_code=P1, **APRIL) == {
        "submitted": 4,
        "accepted": 2,
        "decided": 1,
        "completion_rate": 0.5,
        "on_time_rate": 1.0,
        "overdue": 0,
        "returned": 1,
    }


async def test_by_department(client, cases, admin):
    """April, civil affairs: #1 #2 #4 #6 #8 → accepted #4 #6 #8; decided #6 #8, #8 late."""
    civil = {
        "submitted": 5,
        "accepted": 3,
        "decided": 2,
        "completion_rate": 0.6667,
        "on_time_rate": 0.5,
        "overdue": 1,
        "returned": 1,
    }
    assert await figures(client, admin, department="civil", **APRIL) == civil
    # point and department together: civil cases at P2 in April → #8 only
    assert (await figures(client, admin, department="civil", point_code=P2, **APRIL))["submitted"] == 1


async def test_staff_see_their_own_departments_cases_only(app, client, cases, people):
    civil = await people.staff("civil")
    assert (await figures(client, civil, **APRIL))["submitted"] == 5
    police = await people.staff("police")
    assert await figures(client, police, **APRIL) == {
        "submitted": 1,
        "accepted": 1,
        "decided": 1,
        "completion_rate": 1.0,
        "on_time_rate": 1.0,
        "overdue": 0,
        "returned": 0,
    }
    # asking for another department's cases gives nothing, not their figures
    assert await figures(client, police, department="civil", **APRIL) == {
        "submitted": 0,
        "accepted": 0,
        "decided": 0,
        "completion_rate": None,
        "on_time_rate": None,
        "overdue": 0,
        "returned": 0,
    }


async def test_nothing_in_the_period_gives_zeros_and_no_rates(client, cases, admin):
    body = await figures(client, admin, **{"from": "2027-01-01T00:00:00+08:00"})
    assert body == {
        "submitted": 0,
        "accepted": 0,
        "decided": 0,
        "completion_rate": None,
        "on_time_rate": None,
        "overdue": 0,
        "returned": 0,
    }


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"point_code": "NOWHERE"}, "point_code"),
        ({"department": "tax"}, "department"),
        ({"from": "last month"}, "from"),
        ({"to": "2026-04-01T00:00:00"}, "to"),
        ({"from": "2026-04-02T00:00:00+08:00", "to": "2026-04-01T00:00:00+08:00"}, "to"),
        ({"group_by": "point"}, "group_by"),
    ],
)
async def test_bad_parameters_are_422_naming_the_field(client, catalog, admin, params, field):
    r = await client.get(URL, params=params, headers=admin.headers)
    assert r.status_code == 422, r.text
    assert field in [e["field"] for e in r.json()["errors"]]


async def test_only_admins_and_staff_read_the_figures(app, client, catalog, people):
    zhang = await people.resident(ZHANG)
    grid = await people.grid_worker()
    for who in (zhang, grid):
        assert (await client.get(URL, headers=who.headers)).status_code == 403
    assert (await client.get(URL)).status_code == 401
