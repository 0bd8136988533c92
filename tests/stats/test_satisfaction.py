"""Contract: GET /stats/satisfaction?group_by=point|staff|item|department&from=&to= — 满意率 = ratings of
3, 4 and 5 over all ratings, counted by hand below on a known data set."""

from __future__ import annotations

import pytest

from models.feedback import Evaluation
from tests.support.people import ZHANG
from tests.support.rows import at, make_case, make_evaluation, move_evaluation

pytestmark = pytest.mark.usefixtures("catalog")

URL = "/api/v1/stats/satisfaction"
P1, P2 = "P360502001001", "P360502002001"
MZ, RS = "360500-MZ-001", "360500-RS-002"  # civil affairs; human resources and social security

# (point, who took the case in, item, what the resident sent)
RATINGS = [
    (P1, "A", MZ, {"level": 5}),
    (P1, "A", MZ, {"level": 4}),
    (P1, "B", RS, {"pad_key": "average"}),  # 一般 = 3: satisfied
    (P1, "B", MZ, {"level": 2}),
    (P2, "A", RS, {"pad_key": "dissatisfied"}),  # 不满意 = 2: not satisfied
    (P2, "B", RS, {"level": 1}),
    (P2, "B", MZ, {"pad_key": "very_satisfied"}),  # 5
]


def levels(five=0, four=0, three=0, two=0, one=0) -> dict[str, int]:
    return {"5": five, "4": four, "3": three, "2": two, "1": one}


@pytest.fixture
async def rated(app, client, catalog, people):
    """Seven decided cases of 张三, each rated once through the API.

    A is the grid worker (phone 13700000011), B the window clerk (13700000012).

        #  point  staff  item  rating
        1  P1     A      MZ    5
        2  P1     A      MZ    4
        3  P1     B      RS    pad 一般 → 3
        4  P1     B      MZ    2
        5  P2     A      RS    pad 不满意 → 2
        6  P2     B      RS    1
        7  P2     B      MZ    pad 非常满意 → 5

    Counted by hand (satisfied = 3, 4 or 5):
        point       P1: 5,4,3,2 → 3 of 4 = 0.75      P2: 2,1,5 → 1 of 3 = 0.3333
        staff       A : 5,4,2   → 2 of 3 = 0.6667    B : 3,2,1,5 → 2 of 4 = 0.5
        item        MZ: 5,4,2,5 → 3 of 4 = 0.75      RS: 3,2,1 → 1 of 3 = 0.3333
        department  civil = MZ, hrss = RS (each item belongs to one department)
    """
    zhang = await people.resident(ZHANG)
    staff = {
        "A": await people.account(["grid_worker"], points=[P1, P2], phone="13700000011"),
        "B": await people.account(["staff"], department="civil", phone="13700000012"),
    }
    ids = []
    for point, who, item, body in RATINGS:
        case = await make_case(zhang.id, item=item, point=point, status="delivered", accepted_by=staff[who])
        r = await client.post(f"/api/v1/applications/{case.id}/evaluation", json=body, headers=zhang.headers)
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    return {"ids": ids, "staff": staff, "zhang": zhang}


async def report(client, who, **params) -> list[dict]:
    r = await client.get(URL, params=params, headers=who.headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]


async def test_by_point(client, rated, admin):
    assert await report(client, admin, group_by="point") == [
        {
            "key": P1,
            "name": f"{P1} 便民服务站",
            "total": 4,
            "levels": levels(1, 1, 1, 1, 0),
            "satisfaction_rate": 0.75,
        },
        {
            "key": P2,
            "name": f"{P2} 便民服务站",
            "total": 3,
            "levels": levels(1, 0, 0, 1, 1),
            "satisfaction_rate": 0.3333,
        },
    ]


async def test_by_staff_member_who_received_the_resident(client, rated, admin):
    a, b = rated["staff"]["A"], rated["staff"]["B"]
    assert await report(client, admin, group_by="staff") == [
        {
            "key": str(a),
            "name": "137****0011",
            "total": 3,
            "levels": levels(1, 1, 0, 1, 0),
            "satisfaction_rate": 0.6667,
        },
        {
            "key": str(b),
            "name": "137****0012",
            "total": 4,
            "levels": levels(1, 0, 1, 1, 1),
            "satisfaction_rate": 0.5,
        },
    ]


async def test_by_item(client, rated, admin):
    assert await report(client, admin, group_by="item") == [
        {
            "key": MZ,
            "name": "最低生活保障申请",
            "total": 4,
            "levels": levels(2, 1, 0, 1, 0),
            "satisfaction_rate": 0.75,
        },
        {
            "key": RS,
            "name": "灵活就业人员参保登记",
            "total": 3,
            "levels": levels(0, 0, 1, 1, 1),
            "satisfaction_rate": 0.3333,
        },
    ]


async def test_by_department_is_the_default(client, rated, admin):
    expected = [
        {
            "key": "civil",
            "name": "新余市民政局",
            "total": 4,
            "levels": levels(2, 1, 0, 1, 0),
            "satisfaction_rate": 0.75,
        },
        {
            "key": "hrss",
            "name": "新余市人力资源和社会保障局",
            "total": 3,
            "levels": levels(0, 0, 1, 1, 1),
            "satisfaction_rate": 0.3333,
        },
    ]
    assert await report(client, admin, group_by="department") == expected
    assert await report(client, admin) == expected


async def test_the_pad_key_average_counts_as_satisfied_and_dissatisfied_does_not(
    client, catalog, app, admin, people
):
    """Two ratings from the hall pad only: 一般 (3) and 不满意 (2) → 1 of 2 satisfied = 0.5."""
    zhang = await people.resident(ZHANG)
    for key in ("average", "dissatisfied"):
        case = await make_case(zhang.id, status="approved")
        r = await client.post(
            f"/api/v1/applications/{case.id}/evaluation",
            json={"pad_key": key},
            headers=zhang.headers,
        )
        assert r.status_code == 201
    (row,) = await report(client, admin, group_by="department")
    assert row["levels"] == levels(0, 0, 1, 1, 0) and row["satisfaction_rate"] == 0.5


async def test_the_period_is_from_inclusive_to_exclusive(client, rated, admin):
    """#1–#3 rated in March, #4 exactly at 2026-04-01 00:00 +08:00, #5–#7 in mid-April.

    From 04-01: #4–#7 → P1: #4 (2) → 0 of 1 = 0.0; P2: 2,1,5 → 1 of 3.
    To 04-01: #1–#3 → P1 only: 5,4,3 → 3 of 3 = 1.0."""
    ids = rated["ids"]
    for evaluation_id in ids[:3]:
        await move_evaluation(evaluation_id, at("2026-03-10 09:30"))
    await move_evaluation(ids[3], at("2026-04-01 00:00"))
    for evaluation_id in ids[4:]:
        await move_evaluation(evaluation_id, at("2026-04-15 15:00"))
    april = [
        {
            "key": P1,
            "name": f"{P1} 便民服务站",
            "total": 1,
            "levels": levels(0, 0, 0, 1, 0),
            "satisfaction_rate": 0.0,
        },
        {
            "key": P2,
            "name": f"{P2} 便民服务站",
            "total": 3,
            "levels": levels(1, 0, 0, 1, 1),
            "satisfaction_rate": 0.3333,
        },
    ]
    assert await report(client, admin, group_by="point", **{"from": "2026-04-01T00:00:00+08:00"}) == april
    # the same instant written in UTC gives the same answer
    assert await report(client, admin, group_by="point", **{"from": "2026-03-31T16:00:00Z"}) == april
    march = await report(client, admin, group_by="point", to="2026-04-01T00:00:00+08:00")
    assert march == [
        {
            "key": P1,
            "name": f"{P1} 便民服务站",
            "total": 3,
            "levels": levels(1, 1, 1, 0, 0),
            "satisfaction_rate": 1.0,
        }
    ]
    both = await report(
        client,
        admin,
        group_by="point",
        **{"from": "2026-03-01T00:00:00+08:00", "to": "2026-05-01T00:00:00+08:00"},
    )
    assert [r["total"] for r in both] == [4, 3]
    assert await report(client, admin, group_by="point", **{"from": "2026-06-01T00:00:00+08:00"}) == []


async def test_staff_see_only_their_own_departments_ratings(app, client, rated, people):
    """A civil-affairs clerk sees #1, #2, #4, #7 (the MZ cases): P1 5,4,2 → 2 of 3; P2 5 → 1 of 1.
    A police clerk sees none of them; an hrss clerk only the RS ones."""
    civil = await people.staff("civil")
    assert await report(client, civil, group_by="point") == [
        {
            "key": P1,
            "name": f"{P1} 便民服务站",
            "total": 3,
            "levels": levels(1, 1, 0, 1, 0),
            "satisfaction_rate": 0.6667,
        },
        {
            "key": P2,
            "name": f"{P2} 便民服务站",
            "total": 1,
            "levels": levels(1, 0, 0, 0, 0),
            "satisfaction_rate": 1.0,
        },
    ]
    assert [r["key"] for r in await report(client, civil, group_by="department")] == ["civil"]
    police = await people.staff("police")
    for group_by in ("point", "staff", "item", "department"):
        assert await report(client, police, group_by=group_by) == []
    hrss = await people.staff("hrss")
    assert [(r["key"], r["total"]) for r in await report(client, hrss, group_by="item")] == [(RS, 3)]


async def test_online_cases_and_cases_of_no_recorded_clerk_are_grouped_last(
    app, client, catalog, admin, people
):
    zhang = await people.resident(ZHANG)
    worker = await people.account(["grid_worker"], points=[P1, P2])
    at_point = await make_case(zhang.id, point=P1, accepted_by=worker)
    online = await make_case(zhang.id, point=None, accepted_by=None)
    await make_evaluation(at_point, 4)
    await make_evaluation(online, 1)
    rows = await report(client, admin, group_by="point")
    assert [(r["key"], r["name"], r["satisfaction_rate"]) for r in rows] == [
        (P1, f"{P1} 便民服务站", 1.0),
        ("online", "网上办理", 0.0),
    ]
    rows = await report(client, admin, group_by="staff")
    assert [(r["key"], r["total"]) for r in rows] == [(str(worker), 1), ("unknown", 1)]
    assert await Evaluation.all().count() == 2


async def test_nothing_rated_gives_no_groups(client, catalog, admin):
    for group_by in ("point", "staff", "item", "department"):
        assert await report(client, admin, group_by=group_by) == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"group_by": "colour"}, "group_by"),
        ({"from": "yesterday"}, "from"),
        ({"from": "2026-04-01"}, "from"),  # a date has no offset
        ({"from": "2026-04-01T00:00:00"}, "from"),  # no offset
        ({"to": "2026-13-01T00:00:00+08:00"}, "to"),
        ({"from": "2026-04-01T00:00:00+08:00", "to": "2026-04-01T00:00:00+08:00"}, "to"),
        ({"from": "2026-05-01T00:00:00+08:00", "to": "2026-04-01T00:00:00+08:00"}, "to"),
        ({"start": "2026-04-01T00:00:00+08:00"}, "start"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_parameters_are_422_naming_the_field(client, catalog, admin, params, field):
    r = await client.get(URL, params=params, headers=admin.headers)
    assert r.status_code == 422, r.text
    assert field in [e["field"] for e in r.json()["errors"]], r.json()


async def test_a_parameter_given_twice_is_422(client, catalog, admin):
    r = await client.get(f"{URL}?group_by=point&group_by=item", headers=admin.headers)
    assert r.status_code == 422


async def test_only_admins_and_staff_read_statistics(app, client, catalog, people):
    zhang = await people.resident(ZHANG)
    grid = await people.grid_worker()
    for who in (zhang, grid):
        r = await client.get(URL, headers=who.headers)
        assert r.status_code == 403 and r.json()["code"] == "forbidden"
    assert (await client.get(URL)).status_code == 401


async def test_a_clerk_whose_phone_does_not_decrypt_is_shown_by_account_id(client, rated, admin):
    """The phone is sealed with its own row's context: B's ciphertext copied onto A's row does not open."""
    from models.identity import Account

    a, b = rated["staff"]["A"], rated["staff"]["B"]
    b_phone = (await Account.get(id=b)).phone_enc
    await Account.filter(id=a).update(phone_enc=b_phone)
    names = {row["key"]: row["name"] for row in await report(client, admin, group_by="staff")}
    assert names == {str(a): f"窗口#{a}", str(b): "137****0012"}
