"""SECURITY.md row 4: refresh tokens are single-use and stored hashed; reuse revokes the family, except a
replay of the token just rotated within `security.refresh_reuse_window` (409, nothing revoked); logout and
a password change end sessions."""

from __future__ import annotations

import asyncio
import hashlib

from tests.support.people import bearer, end_cooldown, refresh, sms_sign_in
from tests.support.security import ME, assert_problem, table_rows
from tests.support.timing import WINDOW, later, past_the_window

PHONE = "13800000201"
PASSWORD = "Chushi2026"


async def test_a_replayed_refresh_token_is_refused_and_revokes_its_successor(client):
    first = await sms_sign_in(client, PHONE)
    r = await refresh(client, first["refresh_token"])
    assert r.status_code == 200, r.text
    second = r.json()
    assert (await client.get(ME, headers=bearer(second))).status_code == 200

    with past_the_window():
        assert_problem(await refresh(client, first["refresh_token"]), 401, "invalid_grant")
        assert_problem(await refresh(client, second["refresh_token"]), 401, "invalid_grant")
    assert_problem(await client.get(ME, headers=bearer(second)), 401, "invalid_token")
    assert_problem(await client.get(ME, headers=bearer(first)), 401, "invalid_token")


async def test_a_refresh_token_is_used_once_even_by_two_concurrent_requests(client):
    tokens = await sms_sign_in(client, PHONE)
    answers = await asyncio.gather(
        refresh(client, tokens["refresh_token"]), refresh(client, tokens["refresh_token"])
    )
    # the loser is a double-fired refresh: 409, and it revokes nothing (issue 8)
    assert sorted(r.status_code for r in answers) == [200, 409], [r.text for r in answers]
    loser = next(r for r in answers if r.status_code == 409)
    assert_problem(loser, 409, "refresh_in_progress")
    # one refresh was issued, not two, and the winner's tokens work
    rows = await table_rows("refresh_token")
    assert len(rows) == 2
    assert sum(1 for row in rows if row["used_at"] is not None) == 1
    assert all(row["revoked_at"] is None for row in rows)
    winner = next(r for r in answers if r.status_code == 200).json()
    assert (await client.get(ME, headers=bearer(winner))).status_code == 200
    r = await refresh(client, winner["refresh_token"])
    assert r.status_code == 200, r.text
    assert (await client.get(ME, headers=bearer(r.json()))).status_code == 200


async def test_of_many_concurrent_refreshes_exactly_one_wins(client, app):
    await end_cooldown(app, PHONE)
    tokens = await sms_sign_in(client, PHONE)
    answers = await asyncio.gather(*(refresh(client, tokens["refresh_token"]) for _ in range(6)))
    assert sorted(r.status_code for r in answers) == [200] + [409] * 5, [r.status_code for r in answers]
    winner = next(r for r in answers if r.status_code == 200).json()
    assert (await client.get(ME, headers=bearer(winner))).status_code == 200


async def test_logout_ends_the_session_at_once(client):
    tokens = await sms_sign_in(client, PHONE)
    other = await refresh(client, tokens["refresh_token"])
    current = other.json()
    r = await client.post("/api/v1/auth/logout", json={"refresh_token": current["refresh_token"]})
    assert r.status_code == 204
    assert_problem(await client.get(ME, headers=bearer(current)), 401, "invalid_token")
    assert_problem(await refresh(client, current["refresh_token"]), 401, "invalid_grant")


async def _sessions(client, app, n: int) -> list[dict]:
    """`n` separate sign-ins (sessions) of one account."""
    out = []
    for _ in range(n):
        await end_cooldown(app, PHONE)
        out.append(await sms_sign_in(client, PHONE))
    return out


async def test_a_password_change_ends_every_other_session_but_not_the_current_one(client, app):
    first, current, other = await _sessions(client, app, 3)
    for tokens in (first, current, other):
        assert (await client.get(ME, headers=bearer(tokens))).status_code == 200

    # the first password of an SMS-only account
    r = await client.put(ME + "/password", json={"new_password": PASSWORD}, headers=bearer(current))
    assert r.status_code == 204, r.text
    for ended in (first, other):
        assert_problem(await client.get(ME, headers=bearer(ended)), 401, "invalid_token")
        assert_problem(await refresh(client, ended["refresh_token"]), 401, "invalid_grant")
    assert (await client.get(ME, headers=bearer(current))).status_code == 200

    # a change with the old password
    [later] = await _sessions(client, app, 1)
    r = await client.put(
        ME + "/password",
        json={"old_password": PASSWORD, "new_password": "Xinmima2026"},
        headers=bearer(current),
    )
    assert r.status_code == 204, r.text
    assert_problem(await client.get(ME, headers=bearer(later)), 401, "invalid_token")
    assert_problem(await refresh(client, later["refresh_token"]), 401, "invalid_grant")
    assert (await client.get(ME, headers=bearer(current))).status_code == 200
    r = await refresh(client, current["refresh_token"])
    assert r.status_code == 200, r.text
    assert (await client.get(ME, headers=bearer(r.json()))).status_code == 200


async def test_refresh_tokens_are_stored_only_as_their_sha256(client):
    first = await sms_sign_in(client, PHONE)
    second = (await refresh(client, first["refresh_token"])).json()
    rows = await table_rows("refresh_token")
    assert len(rows) == 2
    stored = {str(value) for row in rows for value in row.values()}
    for token in (first["refresh_token"], second["refresh_token"]):
        assert not any(token in value for value in stored), "a refresh token is stored in plaintext"
        assert hashlib.sha256(token.encode()).hexdigest() in {row["token_hash"] for row in rows}


# ---- the reuse window (issue 8, SECURITY row 4) ----------------------------------------------------------


async def test_a_replay_within_the_window_is_409_and_revokes_nothing(client):
    first = await sms_sign_in(client, PHONE)
    second = (await refresh(client, first["refresh_token"])).json()
    with later(WINDOW - 1):  # still inside the window
        assert_problem(await refresh(client, first["refresh_token"]), 409, "refresh_in_progress")
    assert all(row["revoked_at"] is None for row in await table_rows("refresh_token"))
    # the winner's tokens still work, and his refresh token rotates as usual
    assert (await client.get(ME, headers=bearer(second))).status_code == 200
    third = await refresh(client, second["refresh_token"])
    assert third.status_code == 200, third.text
    assert (await client.get(ME, headers=bearer(third.json()))).status_code == 200


async def test_a_replay_after_the_window_revokes_the_family(client):
    first = await sms_sign_in(client, PHONE)
    second = (await refresh(client, first["refresh_token"])).json()
    with later(WINDOW + 1):
        assert_problem(await refresh(client, first["refresh_token"]), 401, "invalid_grant")
    assert all(row["revoked_at"] is not None for row in await table_rows("refresh_token"))
    assert_problem(await client.get(ME, headers=bearer(second)), 401, "invalid_token")
    assert_problem(await refresh(client, second["refresh_token"]), 401, "invalid_grant")


async def test_within_the_window_an_older_token_than_the_last_rotated_is_reuse(client):
    """Only the token the family rotated last is a double-fired refresh: one rotated before it, replayed
    even within seconds, means a copy is elsewhere."""
    first = await sms_sign_in(client, PHONE)
    second = (await refresh(client, first["refresh_token"])).json()
    third = (await refresh(client, second["refresh_token"])).json()
    assert_problem(await refresh(client, first["refresh_token"]), 401, "invalid_grant")
    assert_problem(await client.get(ME, headers=bearer(third)), 401, "invalid_token")


async def test_the_window_is_configurable(tmp_path):
    from tests.conftest import make_settings

    assert make_settings(tmp_path).security.refresh_reuse_window == WINDOW
    settings = make_settings(tmp_path, YWT_SECURITY__REFRESH_REUSE_WINDOW="0")
    assert settings.security.refresh_reuse_window == 0


async def test_with_no_window_a_replay_revokes_at_once(client, app, monkeypatch):
    security = app.ctx.services.kernel.settings.security
    monkeypatch.setitem(security.__dict__, "refresh_reuse_window", 0)
    first = await sms_sign_in(client, PHONE)
    second = (await refresh(client, first["refresh_token"])).json()
    assert_problem(await refresh(client, first["refresh_token"]), 401, "invalid_grant")
    assert_problem(await client.get(ME, headers=bearer(second)), 401, "invalid_token")


async def test_a_refresh_cut_by_the_database_can_be_retried(client, monkeypatch):
    """The database goes away after the old token is claimed, before its successor is written: the app
    gets 503, and its retry with the same refresh token gets tokens (not 409, then a revoked session)."""
    from models import identity as db

    tokens = await sms_sign_in(client, PHONE)
    real = db.add_refresh_token

    async def gone(**_: object) -> None:
        from api.kit.db import DBConnectionError

        raise DBConnectionError("connection lost")

    monkeypatch.setattr(db, "add_refresh_token", gone)
    assert_problem(await refresh(client, tokens["refresh_token"]), 503)
    monkeypatch.setattr(db, "add_refresh_token", real)
    r = await refresh(client, tokens["refresh_token"])
    assert r.status_code == 200, r.text
    assert (await client.get(ME, headers=bearer(r.json()))).status_code == 200
