"""E-licences in applications (免提交: materials[].licence_id where the catalogue lets a licence stand in for a
material; the case holds a reference, checked when attached) and the 30-day expiry notice."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from api.kit import clock
from api.licences import service as licences
from models.applications import ApplicationLicence
from models.notifications import Notification
from tests.licences.conftest import licences_of
from tests.support.cases import body, submit
from tests.support.people import LI
from tests.support.security import assert_problem

pytestmark = pytest.mark.usefixtures("catalog")


async def test_an_e_licence_stands_in_for_the_id_card(client, zhang, people, library):
    mine = await licences_of(client, zhang.headers)
    data = body(materials=[{"material_code": "M01", "licence_id": mine["id_card"]["id"]}])
    r = await submit(client, zhang.headers, data)
    assert r.status_code == 201, r.text
    (attached,) = r.json()["licence_materials"]
    assert attached["material_code"] == "M01" and attached["licence_type"] == "id_card"
    assert attached["licence_type_name"] == "居民身份证" and attached["verified_at"]
    case_id = r.json()["id"]
    row = await ApplicationLicence.get(application_id=case_id)
    assert row.licence_id == mine["id_card"]["id"]  # a reference, no copy of the licence's data
    staff = await people.staff(department="civil")
    seen = (await client.get(f"/api/v1/work/applications/{case_id}", headers=staff.headers)).json()
    assert seen["licence_materials"] == r.json()["licence_materials"]
    # the catalogue says which licence each material takes
    item = (await client.get("/api/v1/items/360500-MZ-001")).json()
    assert {m["code"]: m["licence_type"] for m in item["materials"]} == {
        "M01": "id_card",
        "M02": "household_register",
    }


async def test_what_cannot_stand_in_is_refused_and_nothing_is_written(client, zhang, people, library):
    mine = await licences_of(client, zhang.headers)
    li = await people.resident(LI)
    hers = await licences_of(client, li.headers)
    cases = [
        ([{"material_code": "M01", "licence_id": mine["driving_licence"]["id"]}], "materials.0.licence_id"),
        ([{"material_code": "M01", "licence_id": hers["id_card"]["id"]}], "materials.0.licence_id"),
        ([{"material_code": "M09", "licence_id": mine["id_card"]["id"]}], "materials.0.material_code"),
    ]
    for materials, field in cases:
        problem = assert_problem(await submit(client, zhang.headers, body(materials=materials)), 422)
        assert [e["field"] for e in problem["errors"]] == [field], problem
    twice = [{"material_code": "M01", "licence_id": mine["id_card"]["id"]}] * 2
    assert_problem(await submit(client, zhang.headers, body(materials=twice)), 422)
    # revoked since he last looked: 409, and no case
    await client.post(
        f"/api/v1/sandbox/licences/{mine['id_card']['id']}/status",
        json={"status": "revoked", "at_once": True},
    )
    r = await submit(
        client, zhang.headers, body(materials=[{"material_code": "M01", "licence_id": mine["id_card"]["id"]}])
    )
    assert_problem(r, 409, "licence_not_valid")
    assert await ApplicationLicence.all().count() == 0
    assert (await client.get("/api/v1/applications", headers=zhang.headers)).json()["items"] == []


async def test_the_library_down_means_no_attaching(client, zhang, app, library, monkeypatch):
    mine = await licences_of(client, zhang.headers)
    library.down = True
    await licences.forget_reads(app.ctx.services.licences, mine["id_card"]["id"])
    r = await submit(
        client, zhang.headers, body(materials=[{"material_code": "M01", "licence_id": mine["id_card"]["id"]}])
    )
    assert_problem(r, 502, "upstream_error")


async def test_the_holder_is_told_30_days_before_a_licence_ends_once(client, app, zhang, library):
    lic = app.ctx.services.licences
    assert await licences.tell_expiring(lic) == 0  # nothing known yet: he has not looked
    await licences_of(client, zhang.headers)
    assert await licences.tell_expiring(lic) == 1  # the social-security card, 20 days off
    (note,) = await Notification.filter(account_id=zhang.id, kind="licence_expiry")
    assert "社会保障卡" in note.title and "20 天" in note.body
    assert await licences.tell_expiring(lic) == 0  # once
    # renewed in the library before the next pass: a new end, told again only when it comes near
    card = library.find("360502198803152015", "social_security_card")
    import dataclasses

    from integrations.elicence.sandbox import sign

    library.put(
        sign(dataclasses.replace(card, valid_until=clock.now().date() + timedelta(days=3650), signature=""))
    )
    assert await licences.tell_expiring(lic) == 0


async def test_a_licence_revoked_before_the_pass_is_not_told_as_expiring(client, app, zhang, library):
    mine = await licences_of(client, zhang.headers)
    card = mine["social_security_card"]  # known to us, valid, and ending within the 30 days: it would be told
    assert card["status"] == "valid"
    assert date.fromisoformat(card["valid_until"]) <= clock.now().date() + timedelta(days=30)
    library.set_status(library.find("360502198803152015", "social_security_card").id, "revoked")
    assert await licences.tell_expiring(app.ctx.services.licences) == 0
    assert not await Notification.filter(kind="licence_expiry").exists()


async def test_a_resident_who_never_looked_is_told_once_the_sweep_reached_him(
    client, app, zhang, people, library
):
    lic = app.ctx.services.licences
    await lic.kernel.redis.delete(licences.SWEEP_CURSOR_KEY)  # the sweep from the first account
    li = await people.resident(LI)
    assert await licences.tell_expiring(lic) == 0  # neither has opened the list: nothing known
    library.down = True
    assert await licences.learn_licences(lic, batch=1) == 0  # the library down: the sweep waits there
    library.down = False
    assert await licences.learn_licences(lic, batch=1) == 1  # 张三, made level 2 first
    assert await licences.tell_expiring(lic) == 1
    assert await licences.learn_licences(lic, batch=1) == 1  # 李娟
    assert await licences.tell_expiring(lic) == 1
    told = await Notification.filter(kind="licence_expiry").values_list("account_id", flat=True)
    assert sorted(told) == sorted([zhang.id, li.id])
    assert await licences.learn_licences(lic, batch=1) == 0  # past the last one: from the first again
    assert await licences.learn_licences(lic, batch=10) == 2
    assert await licences.tell_expiring(lic) == 0  # each told once


async def test_one_account_the_sweep_cannot_read_is_skipped_not_stuck_on(
    client, app, zhang, people, library, monkeypatch
):
    lic = app.ctx.services.licences
    await lic.kernel.redis.delete(licences.SWEEP_CURSOR_KEY)
    li = await people.resident(LI)
    real = licences.identity.verified_person

    async def broken_for_zhang(ident, account_id):
        if account_id == zhang.id:
            raise ValueError("a record sealed with a key since removed")
        return await real(ident, account_id)

    monkeypatch.setattr(licences.identity, "verified_person", broken_for_zhang)
    assert await licences.learn_licences(lic, batch=10) == 1  # 李娟's read; 张三's skipped
    assert await licences.tell_expiring(lic) == 1
    told = await Notification.filter(kind="licence_expiry").values_list("account_id", flat=True)
    assert list(told) == [li.id]
