"""Contract: POST /applications/{id}/evaluation — 好差评, once per case, only by its applicant, only after a
decision; the hall's 4-key pad maps 非常满意/满意/一般/不满意 to 5/4/3/2."""

from __future__ import annotations

import asyncio

import pytest

from api.applications import states
from models.applications import STATUSES
from models.feedback import Evaluation
from tests.support.people import LI, ZHANG, bearer, end_cooldown, sms_sign_in
from tests.support.rows import make_case

pytestmark = pytest.mark.usefixtures("catalog")


def url(application_id: int) -> str:
    return f"/api/v1/applications/{application_id}/evaluation"


@pytest.fixture
async def decided(app, zhang, people):
    """张三's approved case, taken in by the grid worker at the 胜利社区 point."""
    worker = await people.account(["grid_worker"], points=["P360502001001", "P360502002001"])
    return await make_case(zhang.id, status="approved", accepted_by=worker)


async def test_applicant_rates_a_decided_case_and_the_rating_names_who_and_what_is_rated(
    client, zhang, decided
):
    r = await client.post(
        url(decided.id), json={"level": 5, "comment": "  办得很快  "}, headers=zhang.headers
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"id", "application_id", "level", "comment", "channel", "created_at"}
    assert body["application_id"] == decided.id and body["level"] == 5 and body["comment"] == "办得很快"
    assert body["channel"] == "app"  # the channel he signed in through
    assert body["created_at"].endswith("+08:00")
    row = await Evaluation.get(id=body["id"])
    # copied from the case: the point, the item, its department, and the worker who received him
    assert (row.point_id, row.item_id, row.department_id) == (
        decided.point_id,
        decided.item_id,
        decided.department_id,
    )
    assert row.staff_id == decided.accepted_by_id is not None


async def test_the_channel_is_the_sign_in_channel_and_never_the_clients(app, client, zhang, decided):
    """Issue 8: the server sets the channel from the sign-in; a client's `channel` is an unknown field."""
    await end_cooldown(app, ZHANG["phone"])
    wechat = await sms_sign_in(client, ZHANG["phone"], channel="wechat")
    r = await client.post(url(decided.id), json={"level": 4}, headers=bearer(wechat))
    assert r.status_code == 201 and r.json()["channel"] == "wechat" and r.json()["comment"] == ""
    other = await make_case(zhang.id, status="closed")
    for channel in ("sms", "pad", "app"):
        r = await client.post(url(other.id), json={"level": 3, "channel": channel}, headers=zhang.headers)
        assert r.status_code == 422 and r.json()["errors"] == [
            {"field": "channel", "message": "不允许的字段"}
        ]
    assert await Evaluation.filter(application_id=other.id).count() == 0


@pytest.mark.parametrize("status", sorted(states.DECIDED))
async def test_every_decided_status_may_be_rated(client, zhang, status):
    case = await make_case(zhang.id, status=status)
    r = await client.post(url(case.id), json={"level": 2}, headers=zhang.headers)
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("status", sorted(set(STATUSES) - states.DECIDED))
async def test_a_case_without_a_decision_cannot_be_rated(client, zhang, status):
    case = await make_case(zhang.id, status=status)
    r = await client.post(url(case.id), json={"level": 5}, headers=zhang.headers)
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "not_decided"
    assert await Evaluation.all().count() == 0


async def test_a_case_is_rated_only_once(client, zhang, decided):
    r = await client.post(url(decided.id), json={"level": 5}, headers=zhang.headers)
    assert r.status_code == 201
    r = await client.post(url(decided.id), json={"level": 1, "comment": "改主意了"}, headers=zhang.headers)
    assert r.status_code == 409 and r.json()["code"] == "already_evaluated"
    rows = await Evaluation.filter(application_id=decided.id)
    assert [row.level for row in rows] == [5]


async def test_two_ratings_at_once_give_one_row_and_one_409(client, zhang, decided):
    answers = await asyncio.gather(
        *(client.post(url(decided.id), json={"level": lv}, headers=zhang.headers) for lv in (5, 1, 3))
    )
    assert sorted(r.status_code for r in answers) == [201, 409, 409]
    assert {r.json()["code"] for r in answers if r.status_code == 409} == {"already_evaluated"}
    assert await Evaluation.filter(application_id=decided.id).count() == 1


async def test_another_residents_case_is_not_found(client, zhang, decided, people):
    li = await people.resident(LI)
    r = await client.post(url(decided.id), json={"level": 1}, headers=li.headers)
    assert r.status_code == 404 and r.json()["code"] == "application_not_found"
    r = await client.post(url(decided.id + 1000), json={"level": 1}, headers=zhang.headers)
    assert r.status_code == 404
    assert await Evaluation.all().count() == 0


@pytest.mark.parametrize(
    ("key", "level"), [("very_satisfied", 5), ("satisfied", 4), ("average", 3), ("dissatisfied", 2)]
)
async def test_the_hall_pad_keys_map_to_the_national_levels(client, zhang, decided, key, level):
    r = await client.post(url(decided.id), json={"pad_key": key}, headers=zhang.headers)
    assert r.status_code == 201, r.text
    assert r.json()["level"] == level


async def test_a_pad_key_from_the_app_is_a_level_not_a_claim_to_be_the_pad(client, zhang, decided):
    """Issue 8: a resident's app sending the pad's key is recorded as from the app, the channel it signed in
    on; only a sign-in of the pad itself would record `pad`."""
    r = await client.post(url(decided.id), json={"pad_key": "average"}, headers=zhang.headers)
    assert r.status_code == 201 and r.json()["channel"] == "app" and r.json()["level"] == 3
    assert (await Evaluation.get(application_id=decided.id)).channel == "app"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "level"),
        ({"comment": "没有等级"}, "level"),
        ({"level": 0}, "level"),
        ({"level": 6}, "level"),
        ({"level": "5"}, "level"),
        ({"level": 4.5}, "level"),
        ({"level": True}, "level"),
        ({"level": None, "pad_key": None}, "level"),
        ({"level": 5, "pad_key": "satisfied"}, "pad_key"),
        ({"pad_key": "so_so"}, "pad_key"),
        ({"pad_key": "satisfied", "channel": "pad"}, "channel"),
        ({"level": 5, "channel": "fax"}, "channel"),
        ({"level": 5, "comment": "好" * 501}, "comment"),
        ({"level": 5, "comment": 5}, "comment"),
        # clients never set who or what is rated (SECURITY row 9)
        ({"level": 5, "staff_id": 1}, "staff_id"),
        ({"level": 5, "application_id": 2}, "application_id"),
    ],
)
async def test_bad_input_is_422_naming_the_field_and_writes_nothing(client, zhang, decided, body, field):
    r = await client.post(url(decided.id), json=body, headers=zhang.headers)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert field in [e["field"] for e in problem["errors"]], problem
    assert await Evaluation.all().count() == 0


async def test_a_comment_of_500_characters_is_accepted(client, zhang, decided):
    r = await client.post(url(decided.id), json={"level": 4, "comment": "好" * 500}, headers=zhang.headers)
    assert r.status_code == 201 and len(r.json()["comment"]) == 500


async def test_a_body_that_is_not_json_is_refused(client, zhang, decided):
    r = await client.post(
        url(decided.id), content=b"level=5", headers={**zhang.headers, "Content-Type": "text/plain"}
    )
    assert r.status_code == 415
    r = await client.post(
        url(decided.id), content=b"{", headers={**zhang.headers, "Content-Type": "application/json"}
    )
    assert r.status_code == 422
    assert await Evaluation.all().count() == 0


async def test_only_residents_rate_and_only_signed_in(app, client, zhang, decided, people):
    clerk = await people.staff("civil")
    r = await client.post(url(decided.id), json={"level": 5}, headers=clerk.headers)
    assert r.status_code == 403
    r = await client.post(url(decided.id), json={"level": 5})
    assert r.status_code == 401
    assert await Evaluation.all().count() == 0


async def test_a_retry_with_the_same_idempotency_key_replays_the_rating(client, zhang, decided):
    headers = {**zhang.headers, "Idempotency-Key": "rate-1"}
    first = await client.post(url(decided.id), json={"level": 5}, headers=headers)
    again = await client.post(url(decided.id), json={"level": 5}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers.get("idempotent-replayed") == "true"
    assert await Evaluation.filter(application_id=decided.id).count() == 1


async def test_the_case_shows_it_was_rated(client, zhang, decided):
    await client.post(url(decided.id), json={"level": 5}, headers=zhang.headers)
    r = await client.get(f"/api/v1/applications/{decided.id}", headers=zhang.headers)
    assert r.status_code == 200 and r.json()["evaluated"] is True


async def test_when_the_check_is_raced_the_unique_constraint_still_answers_409(
    client, zhang, decided, monkeypatch
):
    """Two requests can both pass the 'already rated?' check; the one-to-one constraint decides."""
    from models import feedback

    r = await client.post(url(decided.id), json={"level": 5}, headers=zhang.headers)
    assert r.status_code == 201

    async def never_rated(_application_id: int) -> bool:
        return False

    monkeypatch.setattr(feedback, "is_evaluated", never_rated)
    r = await client.post(url(decided.id), json={"level": 1}, headers=zhang.headers)
    assert r.status_code == 409 and r.json()["code"] == "already_evaluated"
    assert [e.level for e in await Evaluation.filter(application_id=decided.id)] == [5]


async def test_a_refused_second_evaluation_leaves_the_surrounding_transaction_usable(client, zhang, decided):
    """The insert the one-to-one constraint refuses is undone on its own (a savepoint), not with the
    transaction around it."""
    from api.kit.db import in_transaction
    from models import feedback

    async with in_transaction():
        assert await feedback.record_evaluation(decided, 4, "", "app") is not None
        assert await feedback.record_evaluation(decided, 1, "", "app") is None
        assert await feedback.is_evaluated(decided.id)
    assert [e.level for e in await Evaluation.filter(application_id=decided.id)] == [4]
