"""SECURITY.md rows 7, 8 and 20: personal data encrypted at rest and masked in answers; ID numbers checked at
the door; account deletion leaves no personal data, no live session and no Redis key about the phone."""

from __future__ import annotations

import pytest

from models import identity as db
from tests.support.people import (
    LI,
    TOKEN,
    ZHANG,
    bearer,
    end_cooldown,
    new_account,
    refresh,
    sms_sign_in,
    verified_resident,
)
from tests.support.proof import delete_me
from tests.support.security import (
    ME,
    all_rows,
    assert_problem,
    cells_containing,
    redis_items,
    table_rows,
)

PASSWORD = "Mima2026xy"
WEIGHTS = [pow(2, 17 - i, 11) for i in range(17)]


def with_check_digit(first17: str) -> str:
    """GB 11643 (ISO 7064 MOD 11-2), written out here rather than taken from the code under test."""
    return first17 + "10X98765432"[sum(int(c) * w for c, w in zip(first17, WEIGHTS, strict=True)) % 11]


# ---- row 7: at rest and in answers ----------------------------------------------------------------------


async def test_the_database_holds_no_plaintext_id_number_name_or_phone(client, app):
    people = (ZHANG, LI)
    for person in people:
        await verified_resident(client, person)
    # a clerk looks one of them up: the audit row is written too
    await new_account(app, "13600000001", roles="admin")
    admin = await sms_sign_in(client, "13600000001")
    r = await client.get(
        "/api/v1/work/residents", params={"id_number": ZHANG["id_number"]}, headers=bearer(admin)
    )
    assert r.status_code == 200, r.text
    assert r.json()["id_number"] == "3605**********2015" and r.json()["name"] == "张*"

    rows = await all_rows()
    assert len(rows["real_name_record"]) == 2 and rows["audit_log"]
    needles = [v for p in people for v in (p["id_number"], p["name"], p["phone"])] + ["13600000001"]
    assert cells_containing(rows, *needles) == []
    # not even the significant parts of an ID number (region + birth date, or birth date + sequence)
    assert (
        cells_containing(rows, *(p["id_number"][:14] for p in people), *(p["id_number"][6:] for p in people))
        == []
    )


async def test_me_shows_masked_values_only(client):
    tokens = await verified_resident(client, ZHANG)
    me = (await client.get(ME, headers=bearer(tokens))).json()
    assert me["phone"] == "138****0001"
    assert me["name"] == "张*"
    assert me["id_number"] == "3605**********2015"
    text = str(me)
    assert ZHANG["phone"] not in text and ZHANG["id_number"] not in text and ZHANG["name"] not in text


# ---- row 8: ID numbers via the API --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "id_number",
    [
        "360502198803152016",  # wrong check digit
        with_check_digit("36050219880230201"),  # 30 February
        with_check_digit("36050219881301201"),  # month 13
        with_check_digit("36050218991231201"),  # before 1900
        with_check_digit("36050221990101201"),  # born in 2199
        "36050219880315201",  # 17 characters
        "36050219880315201A",  # letter other than X
    ],
    ids=["check digit", "30 Feb", "month 13", "1899", "future", "17 chars", "letter"],
)
async def test_a_bad_id_number_is_refused_and_changes_nothing(client, id_number):
    tokens = await sms_sign_in(client, ZHANG["phone"])
    r = await client.post(
        "/api/v1/me/real-name", json={"name": ZHANG["name"], "id_number": id_number}, headers=bearer(tokens)
    )
    assert r.status_code == 422, r.text
    if len(id_number) == 18:
        assert_problem(r, 422, "invalid_id_number")
    assert id_number not in r.text
    assert await db.RealNameRecord.all().count() == 0
    assert (await client.get(ME, headers=bearer(tokens))).json()["real_name_level"] == 1


def test_the_check_digit_helper_agrees_with_the_sandbox_people():
    # the helper above makes numbers whose only fault is the one named; prove it on known-good numbers
    for person in (ZHANG, LI):
        assert with_check_digit(person["id_number"][:17]) == person["id_number"]


# ---- row 20: deletion -------------------------------------------------------------------------------------------


async def test_deleting_an_account_revokes_its_sessions_and_leaves_no_personal_data(client, app):
    ident = app.ctx.services.identity
    phone = ZHANG["phone"]
    phone_index = ident.phone_index(phone).encode()
    first = await verified_resident(client, ZHANG)
    code = (await client.post("/api/v1/sandbox/wechat/oauth-code", json={})).json()["code"]
    assert (
        await client.post("/api/v1/me/bindings/wechat", json={"code": code}, headers=bearer(first))
    ).status_code == 201
    assert (
        await client.put(ME + "/password", json={"new_password": PASSWORD}, headers=bearer(first))
    ).status_code == 204
    await end_cooldown(app, phone)
    second = await sms_sign_in(client, phone)
    account_id = first["account"]["id"]

    before = await all_rows()
    account = next(a for a in before["account"] if a["id"] == account_id)
    record = next(x for x in before["real_name_record"] if x["account_id"] == account_id)
    binding = next(b for b in before["channel_binding"] if b["account_id"] == account_id)
    traces = [
        account["phone_index"],
        account["phone_enc"],
        account["password_hash"],
        record["name_enc"],
        record["id_number_enc"],
        record["id_number_index"],
        binding["external_id"],
    ]
    assert all(traces)
    assert any(phone_index in key for key, _ in await redis_items(app))  # cooldown and limiter keys

    r = await delete_me(client, bearer(second), {"password": PASSWORD})
    assert r.status_code == 204, r.text
    leftovers = [key for key, _ in await redis_items(app) if phone_index in key]
    assert leftovers == []

    for tokens in (first, second):
        assert_problem(await client.get(ME, headers=bearer(tokens)), 401, "invalid_token")
        assert_problem(await refresh(client, tokens["refresh_token"]), 401, "invalid_grant")
    r = await client.post(
        TOKEN, json={"grant_type": "password", "phone": phone, "password": PASSWORD, "channel": "app"}
    )
    assert_problem(r, 401, "invalid_grant")

    after = await all_rows()
    row = next(a for a in after["account"] if a["id"] == account_id)
    assert row["phone_index"] is None and row["phone_enc"] is None and row["password_hash"] is None
    assert row["status"] == "deleted"
    assert await table_rows("real_name_record") == [] and await table_rows("channel_binding") == []
    assert cells_containing(after, *traces, phone, ZHANG["id_number"], ZHANG["name"]) == []

    # the same phone signs up afresh, and the ID number is free for the new account
    again = await verified_resident(client, ZHANG)
    assert again["account"]["id"] != account_id
    me = (await client.get(ME, headers=bearer(again))).json()
    assert me["real_name_level"] == 2 and me["id_number"] == "3605**********2015" and me["bindings"] == []
