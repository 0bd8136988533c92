"""SECURITY.md row 6: SMS codes — 6 digits, at most 5 minutes, single use, bound to phone and purpose, stored
hashed, 5 wrong tries burn them, resending waits out a cooldown, and no answer tells whether a phone has an
account."""

from __future__ import annotations

import asyncio
import re

from argon2 import PasswordHasher

from tests.support.people import (
    SMS,
    bearer,
    end_cooldown,
    last_code,
    new_account,
    other_code,
    request_code,
    sign_in_with_code,
    sms_sign_in,
)
from tests.support.security import assert_problem, code_key, redis_items

PHONE = "13800000301"


async def test_codes_are_six_digits_and_live_at_most_five_minutes(client, app):
    for n in range(5):
        phone = f"1380000031{n}"
        code = await request_code(client, phone)
        assert re.fullmatch(r"[0-9]{6}", code)
        ttl = await app.ctx.services.kernel.redis.ttl(code_key(app, phone))
        assert 0 < ttl <= 300


async def test_an_expired_code_is_refused(client, app):
    code = await request_code(client, PHONE)
    # five minutes pass: the code's key expires in Redis
    assert await app.ctx.services.kernel.redis.pexpire(code_key(app, PHONE), 1)
    await asyncio.sleep(0.05)
    assert_problem(await sign_in_with_code(client, PHONE, code), 401, "invalid_grant")


async def test_a_code_works_once(client):
    code = await request_code(client, PHONE)
    assert (await sign_in_with_code(client, PHONE, code)).status_code == 200
    assert_problem(await sign_in_with_code(client, PHONE, code), 401, "invalid_grant")


async def test_a_code_works_for_its_own_phone_only(client):
    code = await request_code(client, PHONE)
    await request_code(client, "13800000302")
    assert_problem(await sign_in_with_code(client, "13800000302", code), 401, "invalid_grant")


async def test_four_wrong_tries_leave_the_code_usable(client):
    code = await request_code(client, PHONE)
    for _ in range(4):
        assert_problem(await sign_in_with_code(client, PHONE, other_code(code)), 401, "invalid_grant")
    assert (await sign_in_with_code(client, PHONE, code)).status_code == 200


async def test_five_wrong_tries_burn_the_code(client):
    code = await request_code(client, PHONE)
    for _ in range(5):
        assert_problem(await sign_in_with_code(client, PHONE, other_code(code)), 401, "invalid_grant")
    assert_problem(await sign_in_with_code(client, PHONE, code), 401, "invalid_grant")


async def test_wrong_tries_sent_at_once_still_burn_the_code(client):
    code = await request_code(client, PHONE)
    wrong = await asyncio.gather(*(sign_in_with_code(client, PHONE, other_code(code)) for _ in range(8)))
    assert [r.status_code for r in wrong] == [401] * 8
    assert_problem(await sign_in_with_code(client, PHONE, code), 401, "invalid_grant")


async def test_the_right_code_sent_twice_at_once_signs_in_once(client):
    code = await request_code(client, PHONE)
    answers = await asyncio.gather(
        sign_in_with_code(client, PHONE, code), sign_in_with_code(client, PHONE, code)
    )
    assert sorted(r.status_code for r in answers) == [200, 401]


async def test_resending_within_the_cooldown_is_429_with_retry_after(client, settings):
    await request_code(client, PHONE)
    for purpose in ("login", "reset_password"):
        r = await client.post(SMS, json={"phone": PHONE, "purpose": purpose})
        assert_problem(r, 429, "rate_limited")
        assert 1 <= int(r.headers["Retry-After"]) <= settings.security.sms_resend_after
    assert len((await client.get("/api/v1/sandbox/sms", params={"phone": PHONE})).json()["items"]) == 1


async def test_two_sends_at_once_deliver_one_code(client):
    answers = await asyncio.gather(
        *(client.post(SMS, json={"phone": PHONE, "purpose": "login"}) for _ in range(3))
    )
    assert sorted(r.status_code for r in answers) == [202, 429, 429]
    assert len((await client.get("/api/v1/sandbox/sms", params={"phone": PHONE})).json()["items"]) == 1


def _shape(r) -> tuple:
    """Everything a caller sees, less the request id (a fresh one per request)."""
    body = {k: v for k, v in r.json().items() if k != "request_id"}
    return r.status_code, body, r.headers["content-type"], sorted(k for k in r.headers if k != "x-request-id")


async def test_an_unknown_phone_gets_the_same_answers_as_a_known_one(client, app):
    cheap = PasswordHasher(
        time_cost=1, memory_cost=1024, parallelism=1
    )  # the answer, not its timing, is tested here
    for n, purpose in enumerate(("login", "reset_password")):
        known, unknown = f"1390000040{n}", f"1390000041{n}"
        await new_account(app, known, password_hash=cheap.hash("Mima2026x"))
        first = [await client.post(SMS, json={"phone": p, "purpose": purpose}) for p in (known, unknown)]
        assert first[0].status_code == 202
        assert _shape(first[0]) == _shape(first[1])
        again = [await client.post(SMS, json={"phone": p, "purpose": purpose}) for p in (known, unknown)]
        assert again[0].status_code == 429
        assert _shape(again[0]) == _shape(again[1])
    # a wrong password for a known phone and any password for an unknown one: the same refusal
    tries = [
        await client.post(
            "/api/v1/auth/token",
            json={"grant_type": "password", "phone": p, "password": "Cuowu2026x", "channel": "app"},
        )
        for p in ("13900000400", "13900000410")
    ]
    assert tries[0].status_code == 401
    assert _shape(tries[0]) == _shape(tries[1])


async def test_a_login_code_does_not_reset_a_password_and_back(client, app):
    tokens = await sms_sign_in(client, PHONE)
    await end_cooldown(app, PHONE)
    login_code = await request_code(client, PHONE, "login")
    r = await client.put(
        "/api/v1/me/password",
        json={"new_password": "Xinmima2026", "sms_code": login_code},
        headers=bearer(tokens),
    )
    assert_problem(r, 422, "invalid_code")

    await end_cooldown(app, PHONE)
    reset_code = await request_code(client, PHONE, "reset_password")
    assert_problem(await sign_in_with_code(client, PHONE, reset_code), 401, "invalid_grant")
    # each works for its own purpose
    r = await client.put(
        "/api/v1/me/password",
        json={"new_password": "Xinmima2026", "sms_code": reset_code},
        headers=bearer(tokens),
    )
    assert r.status_code == 204, r.text
    assert (await sign_in_with_code(client, PHONE, login_code)).status_code == 200


async def test_codes_are_not_stored_in_plaintext_in_redis(client, app):
    codes = {}
    for n in range(3):
        phone = f"1380000032{n}"
        codes[phone] = await request_code(client, phone)
    items = await redis_items(app)
    # the SMS sandbox is the phones' inbox (embedded mode only): it holds what was "sent"
    stored = [(k, v) for k, v in items if not k.startswith(b"sandbox:sms:")]
    assert any(k.startswith(b"sms:code:") for k, _ in stored)
    for phone, code in codes.items():
        assert await last_code(client, phone) == code
        # the code as a number of its own: the rate limiter stores clock readings, whose digits may hold it
        as_stored = re.compile(rb"(?<![0-9])%s(?![0-9])" % code.encode())
        for key, value in stored:
            assert not as_stored.search(key) and not as_stored.search(value), key
            assert phone.encode() not in key and phone.encode() not in value, key
