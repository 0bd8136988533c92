"""`python -m api.cli create-admin --phone P [--password X]` bootstraps the first admin."""

from __future__ import annotations

import os
import subprocess
import sys

from api.kit.config import PROJECT_ROOT
from models.identity import Account, AuditLog
from tests.support.people import bearer, password_sign_in, sms_sign_in

PHONE = "13500000001"


def _cli(settings, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "YWT_DATABASE__URL": settings.database.url,
        "YWT_REDIS__URL": settings.redis.url,
        # the same data dir, so the same PII keyring: the phone's blind index matches the app's
        "YWT_APP__DATA_DIR": str(settings.app.data_dir),
    }
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "create-admin", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=PROJECT_ROOT,
    )


async def test_create_admin_then_sign_in_through_the_api(client, settings):
    result = _cli(settings, "--phone", PHONE, "--password", "Guanli2026ab")
    assert result.returncode == 0, result.stderr
    account = await Account.get(roles="admin")
    assert result.stdout.strip() == f"admin account {account.id} (135****0001): created"
    assert PHONE not in result.stdout + result.stderr

    tokens = await password_sign_in(client, PHONE, "Guanli2026ab")
    assert tokens["account"]["id"] == account.id and tokens["account"]["roles"] == ["admin"]
    assert tokens["account"]["phone"] == "135****0001"
    # and the admin can do admin things
    r = await client.get("/api/v1/admin/audit", headers=bearer(tokens))
    assert r.status_code == 200
    # newest first: his own sign-in (issue 8: sign-ins are audited), then the CLI made him
    assert [e["action"] for e in r.json()["items"]] == ["auth.signed_in", "account.created"]
    assert r.json()["items"][1]["actor_role"] == "cli" and r.json()["items"][1]["subject"] == account.id


async def test_create_admin_is_idempotent(client, settings):
    first = _cli(settings, "--phone", PHONE, "--password", "Guanli2026ab")
    assert first.returncode == 0, first.stderr
    again = _cli(settings, "--phone", PHONE)
    assert again.returncode == 0, again.stderr
    account = await Account.get(roles="admin")
    assert again.stdout.strip() == f"admin account {account.id} (135****0001): already an admin"
    assert await Account.all().count() == 1
    assert await AuditLog.all().count() == 1
    # the password set the first time still works
    assert (await password_sign_in(client, PHONE, "Guanli2026ab"))["account"]["id"] == account.id


async def test_create_admin_adds_the_role_to_the_phone_s_existing_account(client, settings):
    resident = await sms_sign_in(client, PHONE)
    result = _cli(settings, "--phone", PHONE, "--password", "-", stdin="Guanli2026ab\n")
    assert result.returncode == 0, result.stderr
    rid = resident["account"]["id"]
    assert result.stdout.strip() == f"admin account {rid} (135****0001): admin role added, password set"
    account = await Account.get(id=rid)
    assert account.role_set == {"resident", "admin"} and await Account.all().count() == 1
    tokens = await password_sign_in(client, PHONE, "Guanli2026ab")
    assert tokens["account"]["id"] == rid and tokens["account"]["roles"] == ["admin", "resident"]
    assert (await client.get("/api/v1/admin/audit", headers=bearer(tokens))).status_code == 200
    # the new password ended the sessions opened before it: the refresh token at once, the access token
    # through Redis when the CLI shares it with the server (memory:// is per process, so there it runs out)
    me = await client.get("/api/v1/me", headers=bearer(resident))
    assert me.status_code == (200 if settings.memory_redis else 401)
    r = await client.post(
        "/api/v1/auth/token", json={"grant_type": "refresh_token", "refresh_token": resident["refresh_token"]}
    )
    assert r.status_code == 401


async def test_an_invalid_phone_exits_2_with_one_line(client, settings):
    for phone in ("1350000000", "23500000001", "135000000ab"):
        result = _cli(settings, "--phone", phone)
        assert result.returncode == 2
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "--phone" in lines[0] and "Traceback" not in result.stderr
    assert await Account.all().count() == 0


async def test_a_weak_password_exits_2_with_one_line(client, settings):
    result = _cli(settings, "--phone", PHONE, "--password", "short")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "--password" in result.stderr
    assert await Account.all().count() == 0
