"""Contract: GET /licences, GET /licences/{id}, POST /licences/{id}/presentations, POST /licence-verifications,
GET /licences/{id}/verifications (issue 12; SECURITY rows 1, 12, 13, 16).

张三 (ZHANG) holds, in the sandbox library, an ID card, household register, social-security card (ending 20
days from today), driving and vehicle licences, a real-estate and a marriage certificate. A window clerk sees
what he chose to show as it is, a grid worker masked; what he did not choose nobody sees."""

from __future__ import annotations

import dataclasses
import time
from datetime import date, timedelta

import pytest

from api.kit import clock
from integrations.elicence.sandbox import EXPIRING_IN_DAYS
from models.licences import LicenceVerification
from tests.licences.conftest import LICENCES, licences_of, present, verify
from tests.support.people import LI, WANG, ZHANG
from tests.support.security import assert_problem

pytestmark = pytest.mark.usefixtures("catalog")

NOW = "api.licences.service.time.time"


async def test_a_verified_resident_sees_his_licences_masked(client, zhang, library):
    mine = await licences_of(client, zhang.headers)
    assert {"id_card", "household_register", "social_security_card", "driving_licence", "vehicle_licence",
            "real_estate_certificate", "marriage_certificate"} <= set(mine)  # fmt: skip
    card = mine["id_card"]
    assert card["number"] == "3605**********2015" and card["holder"] == "张*"
    assert card["issuer"] == "新余市公安局" and card["type_name"] == "居民身份证"
    assert card["status"] == "valid" and card["issuer_trusted"] is True
    assert card["fields"]["address"].endswith("****") and "胜利南路" not in card["fields"]["address"]
    assert {"holder", "number", "validity", "address"} <= set(card["disclosable"])
    social = mine["social_security_card"]
    assert date.fromisoformat(social["valid_until"]) == clock.now().date() + timedelta(days=EXPIRING_IN_DAYS)
    r = await client.get(LICENCES, headers=zhang.headers)
    assert r.json()["stale"] is False
    # nothing of the ID number or name in any answer
    assert ZHANG["id_number"] not in r.text and "张三" not in r.text


async def test_the_expired_suspended_and_revoked_are_shown_with_their_status(client, people, library):
    wang = await people.resident(WANG)
    mine = await licences_of(client, wang.headers)
    assert mine["driving_licence"]["status"] == "expired"  # ended 2024-01-10
    assert mine["disability_certificate"]["status"] == "valid"


async def test_real_name_first(client, people, library):
    from tests.support.people import bearer, sms_sign_in

    tokens = await sms_sign_in(client, "13800000009")
    r = await client.get(LICENCES, headers=bearer(tokens))
    assert_problem(r, 403, "real_name_required")


async def test_another_holders_licence_is_not_found(client, app, zhang, people, library, monkeypatch):
    li = await people.resident(LI)
    hers = await licences_of(client, li.headers)  # her read of each licence is in our cache now
    mine = await licences_of(client, zhang.headers)
    licence_id = hers["marriage_certificate"]["id"]
    later = time.time() + app.ctx.settings.licences.status_ttl + 1
    for moment in (None, later):  # answered from her fresh cached read, then from the database
        if moment is not None:
            monkeypatch.setattr(NOW, lambda moment=moment: moment)
        for method, path in (
            ("GET", f"{LICENCES}/{licence_id}"),
            ("POST", f"{LICENCES}/{licence_id}/presentations"),
            ("GET", f"{LICENCES}/{licence_id}/verifications"),
        ):
            r = await client.request(
                method, path, headers=zhang.headers, json={} if method == "POST" else None
            )
            assert_problem(r, 404, "licence_not_found")
    r = await client.get(f"{LICENCES}/{mine['id_card']['id']}", headers=zhang.headers)
    assert r.status_code == 200 and r.json()["holder"] == "张*"


async def test_a_clerk_sees_the_chosen_fields_a_grid_worker_masked_and_nobody_the_rest(
    client, zhang, people, library
):
    mine = await licences_of(client, zhang.headers)
    shown = await present(client, zhang.headers, mine["id_card"]["id"], fields=["holder", "address"])
    assert shown["fields"] == ["holder", "address"] and shown["single_use"] is False
    # the token names no person and no value
    assert "张三" not in shown["token"] and ZHANG["id_number"] not in shown["token"]
    staff = await people.staff()
    r = await verify(client, staff.headers, shown["token"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["valid"] is True and body["reason"] is None
    licence = body["licence"]
    assert licence["holder"] == "张三" and licence["fields"] == {"address": ZHANG_ADDRESS}
    assert licence["status"] == "valid" and licence["type"] == "id_card"
    # not chosen: never disclosed
    assert licence["number"] is None and licence["valid_from"] is None and licence["valid_until"] is None
    assert ZHANG["id_number"] not in r.text and "1988-03-15" not in r.text
    grid = await people.grid_worker()
    licence = (await verify(client, grid.headers, shown["token"])).json()["licence"]
    assert licence["holder"] == "张*" and licence["fields"]["address"] == "江西省新余市****"


ZHANG_ADDRESS = "江西省新余市渝水区胜利南路88号3栋2单元501室"


async def test_default_fields_are_holder_and_validity(client, zhang, people, library):
    mine = await licences_of(client, zhang.headers)
    shown = await present(client, zhang.headers, mine["driving_licence"]["id"])
    assert shown["fields"] == ["holder", "validity"]
    staff = await people.staff()
    licence = (await verify(client, staff.headers, shown["token"])).json()["licence"]
    assert licence["holder"] == "张三" and licence["valid_from"] == "2018-06-01" and licence["number"] is None
    assert licence["fields"] == {}


async def test_a_field_the_type_does_not_have_is_refused(client, zhang, library):
    mine = await licences_of(client, zhang.headers)
    r = await client.post(
        f"{LICENCES}/{mine['social_security_card']['id']}/presentations",
        json={"fields": ["vehicle_class"]},
        headers=zhang.headers,
    )
    assert_problem(r, 422)
    r = await client.post(
        f"{LICENCES}/{mine['id_card']['id']}/presentations",
        json={"fields": ["salary"]},
        headers=zhang.headers,
    )
    assert_problem(r, 422)


async def test_a_forged_token_is_refused_and_recorded(client, zhang, people, library):
    mine = await licences_of(client, zhang.headers)
    shown = await present(client, zhang.headers, mine["id_card"]["id"])
    staff = await people.staff()
    token = shown["token"]
    flipped = token[:20] + ("A" if token[20] != "A" else "B") + token[21:]
    for bad in (flipped, token[:-3], "YL1:" + "0" * 137, "not a token", token + "00"):
        body = assert_problem(await verify(client, staff.headers, bad), 422, "presentation_refused")
        assert body["valid"] is False and body["reason"] == "forged"
    rows = await LicenceVerification.filter(reason="forged")
    assert len(rows) == 5 and all(row.verifier_account_id == staff.id and not row.valid for row in rows)


async def test_an_expired_token_is_refused(client, zhang, people, library, monkeypatch):
    mine = await licences_of(client, zhang.headers)
    shown = await present(client, zhang.headers, mine["id_card"]["id"])
    staff = await people.staff()
    later = time.time() + 181
    monkeypatch.setattr(NOW, lambda: later)
    body = assert_problem(await verify(client, staff.headers, shown["token"]), 422, "presentation_refused")
    assert body["reason"] == "expired_token"
    row = await LicenceVerification.get(reason="expired_token")
    assert row.licence_id == mine["id_card"]["id"]  # the holder sees the attempt


async def test_a_single_use_token_verifies_once(client, zhang, people, library):
    mine = await licences_of(client, zhang.headers)
    once = await present(client, zhang.headers, mine["id_card"]["id"], single_use=True)
    again = await present(client, zhang.headers, mine["id_card"]["id"])
    staff = await people.staff()
    assert (await verify(client, staff.headers, once["token"])).json()["valid"] is True
    body = assert_problem(await verify(client, staff.headers, once["token"]), 422, "presentation_refused")
    assert body["reason"] == "replayed"
    # a code not marked single-use verifies as often as shown within its three minutes
    for _ in range(2):
        assert (await verify(client, staff.headers, again["token"])).json()["valid"] is True


async def test_revocation_reaches_the_verifier_within_the_status_ttl(
    client, app, zhang, people, library, monkeypatch
):
    mine = await licences_of(client, zhang.headers)
    licence_id = mine["driving_licence"]["id"]
    shown = await present(client, zhang.headers, licence_id)
    staff = await people.staff()
    assert (await verify(client, staff.headers, shown["token"])).json()["valid"] is True
    r = await client.post(f"/api/v1/sandbox/licences/{licence_id}/status", json={"status": "revoked"})
    assert r.status_code == 200, r.text
    ttl = app.ctx.settings.licences.status_ttl
    assert ttl <= 60
    later = time.time() + ttl
    monkeypatch.setattr(NOW, lambda: later)
    body = (await verify(client, staff.headers, shown["token"])).json()
    assert body["valid"] is False and body["reason"] == "revoked" and body["licence"]["status"] == "revoked"
    # revoked after the code was made: the status at verification counts, not at presentation
    r = await client.post(f"{LICENCES}/{licence_id}/presentations", json={}, headers=zhang.headers)
    assert_problem(r, 409, "licence_not_valid")


async def test_a_suspended_licence(client, zhang, people, library):
    mine = await licences_of(client, zhang.headers)
    licence_id = mine["vehicle_licence"]["id"]
    shown = await present(client, zhang.headers, licence_id, fields=["number"])
    r = await client.post(
        f"/api/v1/sandbox/licences/{licence_id}/status", json={"status": "suspended", "at_once": True}
    )
    assert r.status_code == 200
    staff = await people.staff()
    body = (await verify(client, staff.headers, shown["token"])).json()
    assert (
        body["valid"] is False and body["reason"] == "suspended" and body["licence"]["number"] == "赣K·8A123"
    )
    # restored, it verifies again
    r = await client.post(
        f"/api/v1/sandbox/licences/{licence_id}/status", json={"status": "valid", "at_once": True}
    )
    assert (await verify(client, staff.headers, shown["token"])).json()["valid"] is True


async def test_the_seeded_suspended_licence_cannot_be_shown(client, people, library):
    qian = await people.resident({"name": "钱磊", "id_number": "360521198506120032", "phone": "13800000005"})
    mine = await licences_of(client, qian.headers)
    assert mine["driving_licence"]["status"] == "suspended"
    r = await client.post(
        f"{LICENCES}/{mine['driving_licence']['id']}/presentations", json={}, headers=qian.headers
    )
    assert_problem(r, 409, "licence_not_valid")


async def test_a_licence_that_ended_since_the_code_was_made(client, zhang, people, library, monkeypatch):
    mine = await licences_of(client, zhang.headers)
    shown = await present(client, zhang.headers, mine["social_security_card"]["id"])
    staff = await people.staff()
    ahead = clock.now() + timedelta(days=EXPIRING_IN_DAYS + 1)
    monkeypatch.setattr(clock, "now", lambda: ahead)
    body = (await verify(client, staff.headers, shown["token"])).json()
    assert body["valid"] is False and body["reason"] == "expired_licence"


async def test_an_expired_licence_cannot_be_shown(client, people, library):
    wang = await people.resident(WANG)
    mine = await licences_of(client, wang.headers)
    r = await client.post(
        f"{LICENCES}/{mine['driving_licence']['id']}/presentations", json={}, headers=wang.headers
    )
    assert_problem(r, 409, "licence_not_valid")


async def test_an_issuer_taken_off_the_trust_list(client, app, zhang, people, library):
    mine = await licences_of(client, zhang.headers)
    shown = await present(client, zhang.headers, mine["marriage_certificate"]["id"])
    del app.ctx.services.licences.issuers["XY-CIVIL"]
    staff = await people.staff()
    body = (await verify(client, staff.headers, shown["token"])).json()
    assert body["valid"] is False and body["reason"] == "unknown_issuer" and body["licence"] is None
    r = await client.post(
        f"{LICENCES}/{mine['marriage_certificate']['id']}/presentations", json={}, headers=zhang.headers
    )
    assert_problem(r, 409, "issuer_untrusted")


async def test_a_record_whose_signature_fails_is_never_shown(client, zhang, library, caplog):
    card = library.find(ZHANG["id_number"], "id_card")
    library.put(dataclasses.replace(card, holder_name="张三", number="360502198803152099"))  # tampered
    unsigned = library.find(ZHANG["id_number"], "household_register")
    library.put(dataclasses.replace(unsigned, signature=""))
    mine = await licences_of(client, zhang.headers)
    assert "id_card" not in mine and "household_register" not in mine and "driving_licence" in mine
    assert any(getattr(r, "msg", "") == "licence.signature_refused" for r in caplog.records)


async def test_the_library_down_gives_stale_answers_but_no_verification(
    client, app, zhang, people, library, monkeypatch
):
    mine = await licences_of(client, zhang.headers)
    licence_id = mine["id_card"]["id"]
    shown = await present(client, zhang.headers, licence_id, single_use=True)
    first = (await client.get(LICENCES, headers=zhang.headers)).json()["read_at"]
    library.down = True
    later = time.time() + app.ctx.settings.licences.status_ttl + 1
    monkeypatch.setattr(NOW, lambda: later)
    r = await client.get(LICENCES, headers=zhang.headers)
    assert r.status_code == 200 and r.json()["stale"] is True and r.json()["read_at"] == first
    r = await client.get(f"{LICENCES}/{licence_id}", headers=zhang.headers)
    assert r.status_code == 200 and r.json()["stale"] is True
    staff = await people.staff()
    body = (await verify(client, staff.headers, shown["token"])).json()
    assert body == {**body, "valid": False, "reason": "status_unavailable", "licence": None}
    library.down = False
    # the single-use code was not used up by a verification that could not be made
    assert (await verify(client, staff.headers, shown["token"])).json()["valid"] is True


async def test_the_library_down_with_nothing_cached_is_a_502(client, people, library):
    li = await people.resident(LI)
    library.down = True
    assert_problem(await client.get(LICENCES, headers=li.headers), 502, "upstream_error")


async def test_the_holder_sees_who_checked(client, zhang, people, library):
    mine = await licences_of(client, zhang.headers)
    licence_id = mine["id_card"]["id"]
    shown = await present(client, zhang.headers, licence_id, fields=["holder"])
    staff = await people.staff(department="civil")
    grid = await people.grid_worker()
    await verify(client, staff.headers, shown["token"])
    await verify(client, grid.headers, shown["token"])
    r = await client.get(f"{LICENCES}/{licence_id}/verifications", params={"limit": 1}, headers=zhang.headers)
    page = r.json()
    assert [i["verifier_role"] for i in page["items"]] == ["grid_worker"] and page["next_cursor"]
    r = await client.get(
        f"{LICENCES}/{licence_id}/verifications",
        params={"cursor": page["next_cursor"]},
        headers=zhang.headers,
    )
    (clerk,) = r.json()["items"]
    assert (
        clerk["verifier_role"] == "staff"
        and "窗口工作人员" in clerk["verifier"]
        and clerk["fields"] == ["holder"]
    )
    assert clerk["valid"] is True and r.json()["next_cursor"] is None


async def test_residents_cannot_verify(client, zhang, people, library):
    mine = await licences_of(client, zhang.headers)
    shown = await present(client, zhang.headers, mine["id_card"]["id"])
    li = await people.resident(LI)
    assert_problem(await verify(client, li.headers, shown["token"]), 403, "forbidden")
    assert_problem(await client.post("/api/v1/licence-verifications", json={"token": shown["token"]}), 401)
    assert await LicenceVerification.all().count() == 0
