"""The whole resident journey: SMS code → token → real name → refresh → reuse detection → logout."""

from __future__ import annotations

from tests.support.people import ZHANG, bearer, last_code, sms_sign_in
from tests.support.timing import past_the_window


async def test_resident_journey(client):
    # 1. ask for a code; the sandbox gateway shows what was "sent"
    r = await client.post("/api/v1/auth/sms-codes", json={"phone": ZHANG["phone"], "purpose": "login"})
    assert r.status_code == 202
    assert r.json() == {"expires_in": 300, "resend_after": 60}
    sms = (await client.get("/api/v1/sandbox/sms", params={"phone": ZHANG["phone"]})).json()["items"]
    assert len(sms) == 1 and sms[0]["code"] in sms[0]["text"] and len(sms[0]["code"]) == 6

    # 2. first sign-in creates the resident account
    code = await last_code(client, ZHANG["phone"])
    r = await client.post(
        "/api/v1/auth/token",
        json={"grant_type": "sms_code", "phone": ZHANG["phone"], "code": code, "channel": "app"},
    )
    assert r.status_code == 200, r.text
    tokens = r.json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] <= 900
    assert tokens["account"]["roles"] == ["resident"] and tokens["account"]["real_name_level"] == 1
    assert tokens["account"]["phone"] == "138****0001"

    # 3. real name against the population database
    r = await client.post(
        "/api/v1/me/real-name",
        json={"name": ZHANG["name"], "id_number": ZHANG["id_number"]},
        headers=bearer(tokens),
    )
    assert r.status_code == 200, r.text
    assert r.json()["real_name_level"] == 2
    me = (await client.get("/api/v1/me", headers=bearer(tokens))).json()
    assert me["name"] == "张*" and me["id_number"] == "3605**********2015" and me["real_name_level"] == 2

    # 4. refresh rotates: a new pair, the new access token carries the new level
    r = await client.post(
        "/api/v1/auth/token", json={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert r.status_code == 200
    rotated = r.json()
    assert rotated["refresh_token"] != tokens["refresh_token"]
    assert (await client.get("/api/v1/me", headers=bearer(rotated))).status_code == 200

    # 5. the old refresh token again: at once, a double-fired refresh (409, nothing revoked); after the
    # reuse window, reuse → 401 and the whole family is revoked
    r = await client.post(
        "/api/v1/auth/token", json={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    )
    assert r.status_code == 409 and r.json()["code"] == "refresh_in_progress"
    assert (await client.get("/api/v1/me", headers=bearer(rotated))).status_code == 200
    with past_the_window():
        r = await client.post(
            "/api/v1/auth/token",
            json={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        )
    assert r.status_code == 401 and r.json()["code"] == "invalid_grant"
    r = await client.post(
        "/api/v1/auth/token", json={"grant_type": "refresh_token", "refresh_token": rotated["refresh_token"]}
    )
    assert r.status_code == 401
    assert (await client.get("/api/v1/me", headers=bearer(rotated))).status_code == 401

    # 6. sign in again (with the password he set from a signed-in session), log out: the session ends at once
    other = await sms_sign_in(client, "13900000009")
    assert (
        await client.put("/api/v1/me/password", json={"new_password": "Xinyu2026"}, headers=bearer(other))
    ).status_code == 204
    r = await client.post(
        "/api/v1/auth/token",
        json={"grant_type": "password", "phone": "13900000009", "password": "Xinyu2026", "channel": "app"},
    )
    assert r.status_code == 200, r.text
    fresh = r.json()
    r = await client.post("/api/v1/auth/logout", json={"refresh_token": fresh["refresh_token"]})
    assert r.status_code == 204
    assert (await client.get("/api/v1/me", headers=bearer(fresh))).status_code == 401
    r = await client.post(
        "/api/v1/auth/token", json={"grant_type": "refresh_token", "refresh_token": fresh["refresh_token"]}
    )
    assert r.status_code == 401
