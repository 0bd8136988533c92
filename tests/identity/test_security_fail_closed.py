"""SECURITY.md row 17: with Redis down, sign-in and authenticated calls answer 503 problem+json (never let
through unchecked, never a traceback); when Redis is back they work again without a restart."""

from __future__ import annotations

import logging

from tests.support.people import SMS, TOKEN, bearer, last_code, refresh, sms_sign_in
from tests.support.security import ME, assert_problem, redis_down

PHONE = "13800000501"


async def test_redis_down_means_503_on_auth_and_service_resumes_when_it_is_back(client, app, caplog):
    tokens = await sms_sign_in(client, PHONE)
    code_request = {"phone": "13800000502", "purpose": "login"}
    caplog.set_level(logging.DEBUG)
    async with redis_down(app):
        answers = {
            "send code": await client.post(SMS, json=code_request),
            "sign in": await client.post(
                TOKEN, json={"grant_type": "sms_code", "phone": PHONE, "code": "123456", "channel": "app"}
            ),
            "refresh": await refresh(client, tokens["refresh_token"]),
            "me": await client.get(ME, headers=bearer(tokens)),
        }
        for what, r in answers.items():
            assert r.status_code == 503, (what, r.text)
            assert_problem(r, 503, "redis_unavailable")
    assert not [rec for rec in caplog.records if rec.exc_info or rec.exc_text], "a traceback was logged"
    assert any(rec.getMessage().startswith("redis unavailable") for rec in caplog.records)

    # back: the same client object, no restart
    assert (await client.get(ME, headers=bearer(tokens))).status_code == 200
    r = await client.post(SMS, json=code_request)
    assert r.status_code == 202, r.text
    r = await client.post(
        TOKEN,
        json={
            "grant_type": "sms_code",
            "phone": "13800000502",
            "code": await last_code(client, "13800000502"),
            "channel": "app",
        },
    )
    assert r.status_code == 200, r.text
    r = await refresh(client, tokens["refresh_token"])
    assert r.status_code == 200, r.text


async def test_a_revoked_session_stays_refused_while_redis_is_down(client, app):
    # the revocation list lives in Redis: without it the answer is 503, never "let through"
    tokens = await sms_sign_in(client, PHONE)
    assert (
        await client.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    ).status_code == 204
    async with redis_down(app):
        assert_problem(await client.get(ME, headers=bearer(tokens)), 503, "redis_unavailable")
    assert_problem(await client.get(ME, headers=bearer(tokens)), 401, "invalid_token")
