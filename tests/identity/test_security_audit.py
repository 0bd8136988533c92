"""Audit rows (issue 8, SECURITY row 18): every sign-in (each grant) and refresh, every refused sign-in, every
real-name check, read back through GET /admin/audit. Rows hold ids and masked values only."""

from __future__ import annotations

import pytest

from models.identity import AuditLog
from tests.support.people import (
    LI,
    PASSWORD,
    POINT,
    TOKEN,
    ZHANG,
    bearer,
    make_account,
    other_code,
    refresh,
    request_code,
    sms_sign_in,
    wechat_code,
)
from tests.support.security import ME
from tests.support.timing import past_the_window

AUDIT = "/api/v1/admin/audit"
WORKER = "13700000401"


async def rows(action_prefix: str) -> list[AuditLog]:
    return [r for r in await AuditLog.all().order_by("id") if r.action.startswith(action_prefix)]


async def test_an_sms_sign_in_is_audited_with_its_grant_channel_and_request_id(client):
    code = await request_code(client, ZHANG["phone"])
    r = await client.post(
        TOKEN, json={"grant_type": "sms_code", "phone": ZHANG["phone"], "code": code, "channel": "wechat"}
    )
    assert r.status_code == 200, r.text
    account = r.json()["account"]["id"]
    [row] = await rows("auth.")
    assert (row.action, row.actor_id, row.subject_id, row.actor_role) == (
        "auth.signed_in", account, account, "resident",
    )  # fmt: skip
    assert row.detail == {"grant": "sms_code", "channel": "wechat"}
    assert row.request_id == r.headers["x-request-id"] and row.ip


async def test_password_wechat_and_refresh_grants_are_audited(app, client, catalog):
    account = await make_account(app, WORKER, ["grid_worker"], points=[POINT])
    r = await client.post(
        TOKEN, json={"grant_type": "password", "phone": WORKER, "password": PASSWORD, "channel": "handheld"}
    )
    assert r.status_code == 200, r.text
    assert (await refresh(client, r.json()["refresh_token"])).status_code == 200
    resident = await sms_sign_in(client, ZHANG["phone"])
    code, openid = await wechat_code(client)
    assert (
        await client.post("/api/v1/me/bindings/wechat", json={"code": code}, headers=bearer(resident))
    ).status_code == 201
    code, _ = await wechat_code(client, openid)
    r = await client.post(TOKEN, json={"grant_type": "wechat_code", "code": code, "channel": "wechat"})
    assert r.status_code == 200, r.text
    seen = [(r.action, r.subject_id, r.actor_role, r.detail) for r in await rows("auth.")]
    zhang = resident["account"]["id"]
    assert seen == [
        ("auth.signed_in", account, "grid_worker", {"grant": "password", "channel": "handheld"}),
        ("auth.refreshed", account, "grid_worker", {"grant": "refresh_token", "channel": "handheld"}),
        ("auth.signed_in", zhang, "resident", {"grant": "sms_code", "channel": "app"}),
        ("auth.signed_in", zhang, "resident", {"grant": "wechat_code", "channel": "wechat"}),
    ]


async def test_refused_sign_ins_are_audited_with_the_reason_and_a_masked_phone(client):
    zhang = await sms_sign_in(client, ZHANG["phone"])
    zhang_id = zhang["account"]["id"]
    # a wrong code for a known phone, a code for an unknown one, a refused channel, a reused refresh token
    code = await request_code(client, LI["phone"])
    bad = [
        {"grant_type": "sms_code", "phone": LI["phone"], "code": other_code(code), "channel": "app"},
        {"grant_type": "password", "phone": ZHANG["phone"], "password": "Cuowu2026xx", "channel": "app"},
        {"grant_type": "password", "phone": "13600000401", "password": "Cuowu2026xx", "channel": "app"},
    ]
    for body in bad:
        assert (await client.post(TOKEN, json=body)).status_code == 401
    await AuditLog.filter(action="auth.signed_in").delete()
    failed = await rows("auth.sign_in_failed")
    assert [(r.subject_id, r.actor_id, r.detail) for r in failed] == [
        (None, None, {"grant": "sms_code", "channel": "app", "reason": "invalid_grant", "phone": "138****0002"}),
        (zhang_id, None, {"grant": "password", "channel": "app", "reason": "invalid_grant", "phone": "138****0001"}),
        (None, None, {"grant": "password", "channel": "app", "reason": "invalid_grant", "phone": "136****0401"}),
    ]  # fmt: skip
    for r in failed:
        assert ZHANG["phone"] not in str(r.detail) and LI["phone"] not in str(r.detail)


async def test_a_refused_channel_is_audited(client):
    code = await request_code(client, ZHANG["phone"])
    r = await client.post(
        TOKEN, json={"grant_type": "sms_code", "phone": ZHANG["phone"], "code": code, "channel": "handheld"}
    )
    assert r.status_code == 403
    [row] = await rows("auth.sign_in_failed")
    assert row.detail["reason"] == "channel_not_allowed" and row.detail["channel"] == "handheld"
    assert row.subject_id is None  # the first sign-in would have created the account: none was made


async def test_a_reused_refresh_token_is_an_audited_refusal(client):
    tokens = await sms_sign_in(client, ZHANG["phone"])
    assert (await refresh(client, tokens["refresh_token"])).status_code == 200
    with past_the_window():
        assert (await refresh(client, tokens["refresh_token"])).status_code == 401
    [row] = await rows("auth.sign_in_failed")
    assert row.subject_id == tokens["account"]["id"]
    assert row.detail == {"grant": "refresh_token", "channel": "app", "reason": "invalid_grant"}


async def test_real_name_checks_are_audited_success_and_failure(client, admin):
    zhang = await sms_sign_in(client, ZHANG["phone"])
    li = await sms_sign_in(client, LI["phone"])
    url = "/api/v1/me/real-name"
    attempts = [
        (zhang, {"name": "张四", "id_number": ZHANG["id_number"]}, 422),  # not the population's name
        (zhang, {"name": "张三", "id_number": "360502198803152016"}, 422),  # a bad check digit
        (zhang, {"name": "张三", "id_number": ZHANG["id_number"]}, 200),
        (li, {"name": "张三", "id_number": ZHANG["id_number"]}, 409),  # verified on another account
    ]
    for who, body, status in attempts:
        r = await client.post(url, json=body, headers=bearer(who))
        assert r.status_code == status, r.text
    r = await client.get(AUDIT, headers=admin.headers)
    checks = [e for e in reversed(r.json()["items"]) if e["action"].startswith("real_name.")]
    masked = "3605**********2015"
    assert [(e["action"], e["subject"], e["actor"], e["detail"]) for e in checks] == [
        ("real_name.failed", zhang["account"]["id"], zhang["account"]["id"],
         {"reason": "real_name_mismatch", "id_number": masked}),
        ("real_name.failed", zhang["account"]["id"], zhang["account"]["id"],
         {"reason": "invalid_id_number", "id_number": None}),
        ("real_name.verified", zhang["account"]["id"], zhang["account"]["id"], {"id_number": masked}),
        ("real_name.failed", li["account"]["id"], li["account"]["id"],
         {"reason": "id_number_taken", "id_number": masked}),
    ]  # fmt: skip
    assert ZHANG["id_number"] not in r.text


@pytest.mark.parametrize("grant", ["sms_code", "password"])
async def test_a_malformed_or_rate_limited_grant_writes_no_row(client, grant):
    r = await client.post(TOKEN, json={"grant_type": grant, "phone": ZHANG["phone"], "channel": "app"})
    assert r.status_code == 422
    assert await rows("auth.") == []
    assert (await client.get(ME)).status_code == 401
