"""Signing people in through the API, as the apps do."""

from __future__ import annotations

import httpx

ZHANG = {"name": "张三", "id_number": "360502198803152015", "phone": "13800000001"}
LI = {"name": "李娟", "id_number": "360521199207084021", "phone": "13800000002"}
WANG = {"name": "王五", "id_number": "360502197505206113", "phone": "13800000003"}


async def last_code(client: httpx.AsyncClient, phone: str) -> str:
    r = await client.get("/api/v1/sandbox/sms", params={"phone": phone})
    assert r.status_code == 200, r.text
    return r.json()["items"][-1]["code"]


async def sms_sign_in(client: httpx.AsyncClient, phone: str, channel: str = "app", **extra: str) -> dict:
    r = await client.post("/api/v1/auth/sms-codes", json={"phone": phone, "purpose": "login"})
    assert r.status_code == 202, r.text
    code = await last_code(client, phone)
    r = await client.post(
        "/api/v1/auth/token",
        json={"grant_type": "sms_code", "phone": phone, "code": code, "channel": channel, **extra},
    )
    assert r.status_code == 200, r.text
    return r.json()


def bearer(tokens: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def verified_resident(client: httpx.AsyncClient, person: dict = ZHANG) -> dict:
    tokens = await sms_sign_in(client, person["phone"])
    r = await client.post(
        "/api/v1/me/real-name",
        json={"name": person["name"], "id_number": person["id_number"]},
        headers=bearer(tokens),
    )
    assert r.status_code == 200, r.text
    return tokens
