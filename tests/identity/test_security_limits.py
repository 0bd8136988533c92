"""SECURITY.md row 12: rate limits per IP, per phone and per account; X-Forwarded-For believed only from a
configured proxy; page sizes capped. Limits are the configured ones: N requests pass, the N+1st is 429."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from api.kit.auth import client_ip
from models import identity as db
from tests.support.people import (
    SMS,
    TOKEN,
    ZHANG,
    bearer,
    end_cooldown,
    new_account,
    other_code,
    request_code,
    sign_in_with_code,
    sms_sign_in,
)
from tests.support.security import assert_problem

FORGED = [
    {"X-Forwarded-For": "203.0.113.{n}"},
    {"X-Forwarded-For": "198.51.100.{n}, 127.0.0.1"},
    {"X-Real-IP": "192.0.2.{n}"},
    {"Forwarded": "for=192.0.2.{n}"},
]


def forged_headers(n: int) -> dict[str, str]:
    return {k: v.format(n=n) for k, v in FORGED[n % len(FORGED)].items()}


def assert_limited(r, window: int) -> None:
    assert_problem(r, 429, "rate_limited")
    assert 1 <= int(r.headers["Retry-After"]) <= window


async def test_sign_in_attempts_per_ip_are_limited_and_a_forged_forwarded_for_does_not_reset_them(
    client, settings
):
    limit = settings.security.token_max_per_ip_per_minute
    for n in range(limit):
        r = await client.post(
            TOKEN,
            json={"grant_type": "refresh_token", "refresh_token": f"not-a-real-token-{n:04d}"},
            headers=forged_headers(n),
        )
        assert_problem(r, 401, "invalid_grant")
    for n in range(len(FORGED)):
        r = await client.post(
            TOKEN,
            json={"grant_type": "refresh_token", "refresh_token": "not-a-real-token-last"},
            headers=forged_headers(n + 100),
        )
        assert_limited(r, 60)


async def test_sms_sends_per_ip_are_limited(client, settings):
    limit = settings.security.sms_max_per_ip_per_hour
    for n in range(limit):
        r = await client.post(
            SMS, json={"phone": f"1350000{n:04d}", "purpose": "login"}, headers=forged_headers(n)
        )
        assert r.status_code == 202, r.text
    r = await client.post(SMS, json={"phone": "13599999999", "purpose": "login"}, headers=forged_headers(7))
    assert_limited(r, 3600)
    sent = (await client.get("/api/v1/sandbox/sms", params={"phone": "13599999999"})).json()["items"]
    assert sent == []


async def test_sms_sends_per_phone_are_limited_per_day(client, app, settings):
    phone = "13500000001"
    limit = settings.security.sms_max_per_phone_per_day
    for _ in range(limit):
        await request_code(client, phone)
        await end_cooldown(app, phone)
    r = await client.post(SMS, json={"phone": phone, "purpose": "login"})
    assert_limited(r, 86400)
    assert len((await client.get("/api/v1/sandbox/sms", params={"phone": phone})).json()["items"]) == limit


async def test_sign_in_attempts_per_phone_are_limited(client, settings):
    phone = "13500000002"
    limit = settings.security.token_max_per_phone_per_hour
    assert limit < settings.security.token_max_per_ip_per_minute  # else the IP limit would answer first
    code = await request_code(client, phone)
    for _ in range(limit):
        assert_problem(await sign_in_with_code(client, phone, other_code(code)), 401, "invalid_grant")
    assert_limited(await sign_in_with_code(client, phone, code), 3600)
    # another phone from the same address is still served
    other = await request_code(client, "13500000003")
    assert (await sign_in_with_code(client, "13500000003", other)).status_code == 200


async def test_real_name_checks_per_account_are_limited(client, settings):
    limit = settings.security.real_name_max_per_day
    tokens = await sms_sign_in(client, ZHANG["phone"])
    other = await sms_sign_in(client, "13500000004")
    attempt = {"name": ZHANG["name"], "id_number": "360502198803152016"}
    for n in range(limit):
        r = await client.post(
            "/api/v1/me/real-name", json=attempt, headers={**bearer(tokens), **forged_headers(n)}
        )
        assert_problem(r, 422, "invalid_id_number")
    r = await client.post(
        "/api/v1/me/real-name", json={**attempt, "id_number": ZHANG["id_number"]}, headers=bearer(tokens)
    )
    assert_limited(r, 86400)
    # per account: another account is not held back
    r = await client.post("/api/v1/me/real-name", json=attempt, headers=bearer(other))
    assert_problem(r, 422, "invalid_id_number")
    assert await db.RealNameRecord.all().count() == 0


async def test_audit_page_size_is_capped(client, app, settings):
    admin = await new_account(app, "13500000005", roles="admin")
    await db.AuditLog.bulk_create(
        [db.AuditLog(actor_id=admin.id, actor_role="admin", action="test.entry") for _ in range(130)]
    )
    tokens = await sms_sign_in(client, "13500000005")
    r = await client.get("/api/v1/admin/audit", params={"limit": 100000}, headers=bearer(tokens))
    assert r.status_code == 200, r.text
    page = r.json()
    assert len(page["items"]) == settings.pagination.max_limit == 100
    assert page["next_cursor"]
    r = await client.get("/api/v1/admin/audit", params={"limit": 5}, headers=bearer(tokens))
    assert len(r.json()["items"]) == 5


# ---- client_ip ---------------------------------------------------------------------------------------------


def stub_request(peer: str, forwarded: str | None, proxies: list[str]) -> SimpleNamespace:
    headers = {} if forwarded is None else {"x-forwarded-for": forwarded}
    settings = SimpleNamespace(server=SimpleNamespace(trusted_proxies=proxies))
    return SimpleNamespace(
        ip=peer, headers=headers, app=SimpleNamespace(ctx=SimpleNamespace(settings=settings))
    )


@pytest.mark.parametrize(
    ("peer", "forwarded", "proxies", "expected"),
    [
        # no proxy configured: the header is the caller's to write, so it is ignored
        ("203.0.113.9", "1.2.3.4", [], "203.0.113.9"),
        # a peer that is not one of our proxies
        ("203.0.113.9", "1.2.3.4", ["10.0.0.1"], "203.0.113.9"),
        # our proxy: the hop it saw, i.e. the last (nearest) address
        ("10.0.0.1", "203.0.113.9", ["10.0.0.1"], "203.0.113.9"),
        # the client prepended a forged address: the nearest untrusted hop wins, not the leftmost
        ("10.0.0.1", "1.2.3.4, 203.0.113.9", ["10.0.0.1"], "203.0.113.9"),
        # two of our proxies in a row are skipped
        ("10.0.0.1", "1.2.3.4, 203.0.113.9, 10.0.0.2", ["10.0.0.1", "10.0.0.2"], "203.0.113.9"),
        # spaces and empty parts are tolerated
        ("10.0.0.1", " 203.0.113.9 ,, ", ["10.0.0.1"], "203.0.113.9"),
        # our proxy without the header, or with only our own hops: the peer itself
        ("10.0.0.1", None, ["10.0.0.1"], "10.0.0.1"),
        ("10.0.0.1", "10.0.0.2", ["10.0.0.1", "10.0.0.2"], "10.0.0.1"),
    ],
)
def test_client_ip_believes_forwarded_for_only_from_a_trusted_proxy(peer, forwarded, proxies, expected):
    assert client_ip(stub_request(peer, forwarded, proxies)) == expected
