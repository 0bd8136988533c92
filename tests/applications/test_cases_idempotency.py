"""Idempotency-Key on POST /api/v1/applications (SECURITY.md row 15): replays, reused keys, concurrent
duplicates, keys scoped per caller."""

from __future__ import annotations

import asyncio
import hashlib

import orjson

from api.applications import service
from api.kit import idempotency
from models import applications as db
from models.notifications import Notification
from tests.support.cases import APPS, body, make_world, problem_code, submit


async def test_same_key_and_body_replays_the_first_answer(app, client):
    w = await make_world(app, client, second_resident=False)
    first = await submit(client, w.resident, body(), key="k-replay-1")
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    again = await submit(client, w.resident, body(), key="k-replay-1")
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"] and again.json()["number"] == first.json()["number"]
    assert again.headers["content-type"].startswith("application/json")
    assert again.headers["X-Request-ID"]
    assert await db.Application.all().count() == 1
    assert await Notification.all().count() == 1


async def test_same_key_other_body_is_422_reused(app, client):
    w = await make_world(app, client, second_resident=False)
    first = await submit(client, w.resident, body(), key="k-reuse")
    assert first.status_code == 201
    r = await submit(client, w.resident, body(mode="mail"), key="k-reuse")
    assert r.status_code == 422, r.text
    assert problem_code(r) == "idempotency_key_reused"
    assert await db.Application.all().count() == 1


async def test_without_a_key_each_post_creates(app, client):
    w = await make_world(app, client, second_resident=False)
    for _ in range(2):
        assert (await submit(client, w.resident, body())).status_code == 201
    assert await db.Application.all().count() == 2


async def test_a_failed_request_does_not_burn_the_key(app, client):
    w = await make_world(app, client, second_resident=False)
    bad = await submit(client, w.resident, body(point="P999999999999"), key="k-fail")
    assert bad.status_code == 422
    # the same key with the corrected body goes through: nothing was created the first time
    ok = await submit(client, w.resident, body(), key="k-fail")
    assert ok.status_code == 201, ok.text
    assert "Idempotent-Replayed" not in ok.headers


async def test_concurrent_identical_posts_create_one_case(app, client):
    w = await make_world(app, client, second_resident=False)
    answers = await asyncio.gather(*(submit(client, w.resident, body(), key="k-race") for _ in range(5)))
    assert [r.status_code for r in answers] == [201] * 5, [r.text for r in answers]
    assert len({r.json()["id"] for r in answers}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in answers) == 4
    assert await db.Application.all().count() == 1
    assert await db.ApplicationEvent.all().count() == 1


async def test_keys_are_per_caller(app, client):
    w = await make_world(app, client)
    mine = await submit(client, w.resident, body(), key="shared-key")
    his = await submit(client, w.other_resident, body(), key="shared-key")
    assert mine.status_code == his.status_code == 201
    assert "Idempotent-Replayed" not in his.headers
    assert mine.json()["id"] != his.json()["id"]
    rows = await db.Application.all().order_by("id")
    assert [r.applicant_id for r in rows] == [w.resident_id, w.other_resident_id]


async def test_malformed_key_is_422(app, client):
    w = await make_world(app, client, second_resident=False)
    for key in ["", "x" * 129, "bad key", "键".encode()]:
        headers = {**w.resident, "Idempotency-Key": key}
        r = await client.post(APPS, json=body(), headers=headers)
        assert r.status_code == 422, (key, r.text)
        assert problem_code(r) == "invalid_idempotency_key"
    assert await db.Application.all().count() == 0


def _slot(account_id: int, key: str) -> str:
    return f"idem:{account_id}:POST:{APPS}:{hashlib.sha256(key.encode()).hexdigest()}"


async def test_a_claim_in_flight_expires_soon_and_the_answer_after_a_day(app, client, monkeypatch):
    """A worker killed mid-request must not block the key for a whole day; the answer is kept for the TTL."""
    w = await make_world(app, client, second_resident=False)
    seen = {}
    real_submit = service.submit

    async def watching(*args, **kwargs):
        seen["ttl"] = await app.ctx.services.kernel.redis.ttl(_slot(w.resident_id, "k-ttl"))
        return await real_submit(*args, **kwargs)

    monkeypatch.setattr(service, "submit", watching)
    r = await submit(client, w.resident, body(), key="k-ttl")
    assert r.status_code == 201
    assert 0 < seen["ttl"] <= idempotency.PENDING_TTL
    ttl = app.ctx.settings.applications.idempotency_ttl
    assert ttl - 5 <= await app.ctx.services.kernel.redis.ttl(_slot(w.resident_id, "k-ttl")) <= ttl


async def test_a_duplicate_of_a_request_still_running_is_409_in_progress(app, client, monkeypatch):
    w = await make_world(app, client, second_resident=False)
    # the first request's worker died after claiming the key
    await app.ctx.services.kernel.redis.set(
        _slot(w.resident_id, "k-stuck"),
        orjson.dumps({"state": "pending", "body": hashlib.sha256(orjson.dumps(body())).hexdigest()}),
        ex=60,
    )
    monkeypatch.setattr(idempotency, "WAIT_STEPS", 2)
    monkeypatch.setattr(idempotency, "WAIT_STEP", 0.01)
    r = await client.post(
        APPS,
        content=orjson.dumps(body()),
        headers={**w.resident, "Idempotency-Key": "k-stuck", "Content-Type": "application/json"},
    )
    assert r.status_code == 409, r.text
    assert problem_code(r) == "idempotency_in_progress"
    assert await db.Application.all().count() == 0


async def test_the_key_and_its_expiry_are_published(app, client):
    spec = (await client.get("/docs/openapi.json")).json()
    params = spec["paths"]["/api/v1/applications"]["post"].get("parameters", [])
    [key] = [p for p in params if p["name"] == "Idempotency-Key"]
    assert key["in"] == "header" and "24" in key["description"]
