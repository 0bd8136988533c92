"""SECURITY.md rows 7 and 18: what the logs and the answers give away.

Log lines are read as the app writes them: the handler setup_logging installs (its ScrubFilter, its JSON-lines
formatter) copied onto an in-memory handler. Records of other loggers (Sanic, Tortoise …) pass no scrubber in
production, so they are checked raw."""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace

import jwt
import orjson

from api.kit.auth import log_auth_event
from tests.support.people import (
    LI,
    SMS,
    TOKEN,
    ZHANG,
    bearer,
    end_cooldown,
    last_code,
    new_account,
    refresh,
    sms_sign_in,
    verified_resident,
)
from tests.support.proof import delete_with_code
from tests.support.security import ME, assert_problem, production_log_lines, redis_down, valid_id_numbers_in
from tests.support.timing import past_the_window

ADMIN_PHONE = "13600000601"
NEW_ADMIN_PHONE = "13600000602"
FORGED = '\r\n{"level":"error","logger":"ywt.auth","message":"forged"}\u2028\x85{"level":"error"}'


def lines_of(capture) -> list[dict]:
    text = capture.stream.getvalue()
    assert text.endswith("\n") or not text
    lines = text.split("\n")[:-1] if text else []
    assert len(lines) == capture.emitted, "a record was written as more than one line"
    assert len(text.splitlines()) == capture.emitted, "a record holds a character Python splits lines on"
    return [orjson.loads(line) for line in lines]


def sign(app, claims: dict) -> str:
    keys = app.ctx.services.kernel.tokens.keys
    return jwt.encode(claims, keys.private[keys.current], algorithm="EdDSA", headers={"kid": keys.current})


# ---- row 18: 401 and 403 are logged, with what an operator needs and nothing more ---------------------------


async def test_a_401_is_logged_as_auth_denied_with_request_id_and_reason(client, app, caplog):
    tokens = await sms_sign_in(client, ZHANG["phone"])
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    expired = sign(app, {**claims, "iat": int(time.time()) - 999, "exp": int(time.time()) - 60})
    caplog.set_level(logging.INFO)
    with production_log_lines() as capture:
        r = await client.post(
            "/api/v1/me/real-name",
            json={"name": ZHANG["name"], "id_number": ZHANG["id_number"]},
            headers={"Authorization": f"Bearer {expired}", "X-Request-ID": "req-401-expired"},
        )
    body = assert_problem(r, 401, "invalid_token")
    assert body["request_id"] == r.headers["X-Request-ID"] == "req-401-expired"
    records = [rec for rec in caplog.records if getattr(rec, "fields", {}).get("event") == "auth.denied"]
    assert len(records) == 1
    rec = records[0]
    assert rec.levelno == logging.WARNING and rec.name == "ywt.auth"
    assert rec.fields["request_id"] == "req-401-expired"
    assert rec.fields["reason"] == "expired"
    assert rec.fields["status"] == 401 and rec.fields["path"] == "/api/v1/me/real-name"
    [line] = [x for x in lines_of(capture) if x.get("event") == "auth.denied"]
    assert line["level"] == "warning" and line["request_id"] == "req-401-expired"
    assert line["time"].endswith("+00:00")  # UTC
    for text in (capture.stream.getvalue(), repr(rec.__dict__)):
        for secret in (
            expired,
            expired.split(".")[2],
            tokens["access_token"],
            ZHANG["id_number"],
            ZHANG["phone"],
        ):
            assert secret not in text


async def test_each_kind_of_refusal_names_its_reason(client, app, caplog):
    tokens = await sms_sign_in(client, ZHANG["phone"])
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    caplog.set_level(logging.INFO)
    for headers in (
        {},
        {"Authorization": "Bearer garbage"},
        {"Authorization": f"Bearer {sign(app, {**claims, 'aud': 'other'})}"},
        {"Authorization": f"Bearer {tokens['refresh_token']}"},
    ):
        assert (await client.get(ME, headers=headers)).status_code == 401
    reasons = [
        rec.fields["reason"]
        for rec in caplog.records
        if getattr(rec, "fields", {}).get("event") == "auth.denied"
    ]
    assert len(reasons) == 4 and all(reasons)
    assert len(set(reasons[1:])) >= 2  # not one catch-all reason


async def test_a_403_is_logged_as_authz_denied(client, caplog):
    tokens = await sms_sign_in(client, ZHANG["phone"])
    caplog.set_level(logging.INFO)
    with production_log_lines() as capture:
        r = await client.post(
            "/api/v1/admin/accounts",
            json={"phone": LI["phone"], "roles": ["admin"]},
            headers={**bearer(tokens), "X-Request-ID": "req-403-role"},
        )
    assert_problem(r, 403, "forbidden")
    [rec] = [rec for rec in caplog.records if getattr(rec, "fields", {}).get("event") == "authz.denied"]
    assert rec.levelno == logging.WARNING
    assert rec.fields["request_id"] == "req-403-role" and rec.fields["status"] == 403
    assert rec.fields["account"] == tokens["account"]["id"] and rec.fields["reason"] == "role"
    text = capture.stream.getvalue()
    assert '"event":"authz.denied"' in text
    for secret in (tokens["access_token"], tokens["refresh_token"], LI["phone"], ZHANG["phone"]):
        assert secret not in text and secret not in repr(rec.__dict__)


async def test_line_breaks_in_input_cannot_forge_a_log_line(client, app):
    tokens = await sms_sign_in(client, ZHANG["phone"])
    with production_log_lines() as capture:
        # through the API: path, query, headers and JSON fields carrying a forged line
        await client.get("/api/v1/nope%0D%0A%7B%22level%22%3A%22error%22%7D")
        await client.get(ME, params={"q": FORGED}, headers={"X-Request-ID": "abcdefgh%0d%0a{}"})
        await client.post(
            "/api/v1/me/real-name",
            json={"name": "张三" + FORGED, "id_number": ZHANG["id_number"] + FORGED},
            headers=bearer(tokens),
        )
        await client.post(SMS, json={"phone": FORGED, "purpose": "login"})
        # and straight into the auth logger, as if a proxy had let a raw line break through
        request = SimpleNamespace(
            path="/api/v1/me" + FORGED,
            ip="127.0.0.1",
            headers={},
            ctx=SimpleNamespace(request_id="rid" + FORGED),
            app=app,
        )
        log_auth_event(request, "auth.denied", status=401, reason="test" + FORGED)
        logging.getLogger("ywt.test").warning("user said %s", FORGED, extra={"fields": {FORGED: FORGED}})
    lines = lines_of(capture)
    assert capture.emitted >= 6
    assert not [x for x in lines if x["level"] == "error"], "a forged line was written"
    [denied] = [x for x in lines if x.get("reason", "").startswith("test")]
    assert denied["level"] == "warning" and denied["path"].startswith("/api/v1/me\\r\\n")


# ---- row 7: a whole journey, every log line and every answer scanned ------------------------------------------


async def test_a_whole_journey_leaves_no_id_number_phone_or_token_in_logs_or_answers(client, app, caplog):
    answers: list[tuple[str, int, dict, str]] = []

    async def record(response) -> None:
        await response.aread()
        answers.append(
            (response.request.url.path, response.status_code, dict(response.headers), response.text)
        )

    hooks = client.event_hooks
    client.event_hooks = {**hooks, "response": [*hooks.get("response", []), record]}
    caplog.set_level(logging.DEBUG)
    try:
        with production_log_lines() as capture:
            await _journey(client, app)
    finally:
        client.event_hooks = hooks

    phones = [ZHANG["phone"], LI["phone"], ADMIN_PHONE, NEW_ADMIN_PHONE, "13600000698", "13600000699"]
    tokens = [
        orjson.loads(text)[kind]
        for path, status, _, text in answers
        if path == TOKEN and status == 200
        for kind in ("access_token", "refresh_token")
    ]
    assert len(tokens) >= 12

    # the app's own log lines
    output = capture.stream.getvalue()
    events = {line.get("event") for line in lines_of(capture)}
    assert {
        "account.created",
        "real_name.verified",
        "auth.denied",
        "authz.denied",
        "auth.refresh_reuse",
    } <= events
    assert "redis unavailable" in output
    assert valid_id_numbers_in(output) == []
    assert [p for p in phones if p in output] == []
    assert [t[:20] for t in tokens if t in output or t.split(".")[-1] in output] == []
    # every other logger, unscrubbed (the test's own HTTP client excepted)
    for rec in caplog.records:
        if rec.name.startswith(("ywt", "httpx", "httpcore")):
            continue
        text = rec.getMessage() + (rec.exc_text or "")
        assert valid_id_numbers_in(text) == [], rec.name
        assert [p for p in phones if p in text] == [], rec.name
        assert [t for t in tokens if t in text] == [], rec.name

    # the answers: no full ID number or phone anywhere; tokens only where the caller asked for his own
    for path, status, headers, text in answers:
        if path.startswith("/api/v1/sandbox/"):
            continue  # the test's window into the simulated phones (embedded mode only)
        where = f"{status} {path}"
        assert valid_id_numbers_in(text) == [] and valid_id_numbers_in(str(headers)) == [], where
        assert [p for p in phones if p in text or p in str(headers)] == [], where
        if path != TOKEN or status != 200:
            assert [t for t in tokens if t in text or t in str(headers)] == [], where


async def _journey(client, app) -> None:
    zhang = await verified_resident(client, ZHANG)
    me = await client.get(ME, headers=bearer(zhang))
    assert me.status_code == 200
    rotated = (await refresh(client, zhang["refresh_token"])).json()
    with past_the_window():
        assert (await refresh(client, zhang["refresh_token"])).status_code == 401  # reuse: family revoked
    assert (await client.get(ME, headers=bearer(rotated))).status_code == 401
    await end_cooldown(app, ZHANG["phone"])
    zhang = await sms_sign_in(client, ZHANG["phone"])
    assert (
        await client.put(ME + "/password", json={"new_password": "Mima2026zz"}, headers=bearer(zhang))
    ).status_code == 204
    signin = {"grant_type": "password", "phone": ZHANG["phone"], "channel": "app"}
    assert (await client.post(TOKEN, json={**signin, "password": "Cuowu2026zz"})).status_code == 401
    assert (await client.post(TOKEN, json={**signin, "password": "Mima2026zz"})).status_code == 200

    li = await sms_sign_in(client, LI["phone"])
    real_name = "/api/v1/me/real-name"
    for attempt, status in (
        ({"name": LI["name"], "id_number": ZHANG["id_number"]}, 409),  # someone else's number
        ({"name": "李四", "id_number": LI["id_number"]}, 422),  # the population database disagrees
        ({"name": LI["name"], "id_number": LI["id_number"][:-1] + "9"}, 422),  # bad check digit
        ({"name": LI["name"], "id_number": LI["id_number"]}, 200),
    ):
        assert (await client.post(real_name, json=attempt, headers=bearer(li))).status_code == status

    await new_account(app, ADMIN_PHONE, roles="admin")
    admin = await sms_sign_in(client, ADMIN_PHONE)
    r = await client.get(
        "/api/v1/work/residents", params={"id_number": ZHANG["id_number"]}, headers=bearer(admin)
    )
    assert r.status_code == 200
    check = f"/api/v1/work/residents/{zhang['account']['id']}/in-person-verification"
    assert (
        await client.post(check, json={"id_number": LI["id_number"]}, headers=bearer(admin))
    ).status_code == 422
    assert (
        await client.post(check, json={"id_number": ZHANG["id_number"]}, headers=bearer(admin))
    ).status_code == 200
    r = await client.post(
        "/api/v1/admin/accounts", json={"phone": NEW_ADMIN_PHONE, "roles": ["admin"]}, headers=bearer(admin)
    )
    assert r.status_code == 201, r.text
    assert (
        await client.get("/api/v1/admin/audit", params={"limit": 50}, headers=bearer(admin))
    ).status_code == 200

    # refusals and mistakes, with personal data in the places a careless log would copy it from
    assert (await client.get("/api/v1/admin/audit", headers=bearer(li))).status_code == 403
    assert (
        await client.get(ME, headers={"Authorization": f"Bearer {li['refresh_token']}"})
    ).status_code == 401
    assert (await client.get(f"/api/v1/residents/{ZHANG['id_number']}/{ZHANG['phone']}")).status_code == 404
    assert (await client.post(SMS, json={"phone": LI["phone"], "purpose": "login"})).status_code == 429
    assert (await client.post(SMS, json={"phone": ZHANG["id_number"], "purpose": "login"})).status_code == 422
    async with redis_down(app):
        assert (await client.get(ME, headers=bearer(li))).status_code == 503

    # leave: log out one, delete the other
    assert (
        await client.post("/api/v1/auth/logout", json={"refresh_token": zhang["refresh_token"]})
    ).status_code == 204
    assert (await delete_with_code(client, app, LI["phone"], bearer(li))).status_code == 204
    assert (await client.get(ME, headers=bearer(li))).status_code == 401
    # one more code to a number that never had an account, then sign-in with it
    await client.post(SMS, json={"phone": "13600000699", "purpose": "reset_password"})
    await client.post(SMS, json={"phone": "13600000698", "purpose": "login"})
    code = await last_code(client, "13600000698")
    assert (
        await client.post(
            TOKEN, json={"grant_type": "sms_code", "phone": "13600000698", "code": code, "channel": "app"}
        )
    ).status_code == 200
