"""Two single-worker servers on two ports, one database and one Redis: a change made through one process is
seen by the other on its very next request, although both keep the accounts they have seen in memory
(issue 9, item 1).

The database is this run's PostgreSQL (a database of the test's own, created and dropped here) when
YWT_TEST_DATABASE_URL is set, else one SQLite file both servers open. Redis is real: YWT_TEST_REDIS_URL, or
the machine's at 127.0.0.1:6379 (database 10). The test starts and stops both servers itself."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.support.databases import own_database
from tests.support.server import free_port, serving

REDIS_URL = os.environ.get("YWT_TEST_REDIS_URL") or "redis://127.0.0.1:6379/10"
ROOT = Path(__file__).resolve().parents[2]
WORKER_PHONE = "13700000201"  # a demo grid worker (api/sandbox/people.py), password Xinyu2026
RESIDENT = {"name": "张三", "id_number": "360502198803152015", "phone": "13800000001"}
QUEUE = "/api/v1/work/applications"
AUDIT = "/api/v1/admin/audit"


def _flush_redis() -> None:
    with redis.Redis.from_url(REDIS_URL) as client:
        client.flushdb()


@pytest.fixture
def database(tmp_path) -> Iterator[str]:
    with own_database(tmp_path, "ywt_two_servers") as url:
        yield url


def _env(tmp_path: Path, database: str, *, seed: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YWT_")}
    return env | {
        "YWT_APP__MODE": "embedded",
        "YWT_APP__DATA_DIR": str(tmp_path / "data"),  # one keyring and signing key for both
        "YWT_APP__LOG_LEVEL": "WARNING",
        "YWT_APP__SEED_DEMO": "true" if seed else "false",
        "YWT_SERVER__HOST": "127.0.0.1",
        "YWT_SERVER__PORT": str(free_port()),
        "YWT_SERVER__WORKERS": "1",
        "YWT_DATABASE__URL": database,
        "YWT_REDIS__URL": REDIS_URL,
        "YWT_APPLICATIONS__DEADLINE_WATCH_INTERVAL": "86400",
    }


# what a later staff-management API will do: take roles away through models.identity (here from a process
# of its own, built like the CLI, so its versions reach the same Redis)
TAKE_ROLES = textwrap.dedent(
    """
    import asyncio, sys
    from api.app import build_services
    from api.cli import _with_db
    from api.kit.config import load_settings
    from api.kit.db import in_transaction
    from models import identity as db

    async def main() -> None:
        settings = load_settings()
        services = build_services(settings)
        async def work() -> None:
            async with in_transaction():
                await db.set_roles(int(sys.argv[1]), ["resident"])
        try:
            await _with_db(settings, work)
        finally:
            await services.close()

    asyncio.run(main())
    """
)


def _run(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [sys.executable, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_change_through_one_server_is_seen_by_the_other_at_once(tmp_path, database):
    _flush_redis()
    env_a = _env(tmp_path, database, seed=True)
    env_b = _env(tmp_path, database, seed=False)
    ready = (("/healthz", 5), ("/readyz", 5))
    try:
        with (
            serving(env_a, tmp_path / "a.log", ready=ready) as a,
            serving(env_b, tmp_path / "b.log", ready=ready) as b,
        ):
            with httpx.Client(timeout=20) as http:
                signed = http.post(
                    a + "/api/v1/auth/token",
                    json={
                        "grant_type": "password",
                        "phone": WORKER_PHONE,
                        "password": "Xinyu2026",
                        "channel": "handheld",
                    },
                )
                assert signed.status_code == 200, signed.text
                worker = {"Authorization": f"Bearer {signed.json()['access_token']}"}
                worker_id = signed.json()["account"]["id"]
                for base in (a, b):  # both servers now hold the grid worker in memory
                    assert http.get(base + QUEUE, headers=worker).status_code == 200
                    assert http.get(base + AUDIT, headers=worker).status_code == 403

                # a role given by another process (the CLI): both servers let him in at once
                _run(env_a, "-m", "api.cli", "create-admin", "--phone", WORKER_PHONE)
                for base in (a, b):
                    assert http.get(base + AUDIT, headers=worker).status_code == 200, base

                # roles taken away by another process: both refuse him at once
                _run(env_a, "-c", TAKE_ROLES, str(worker_id))
                for base in (a, b):
                    assert http.get(base + QUEUE, headers=worker).status_code == 403, base
                    assert http.get(base + "/api/v1/me", headers=worker).json()["roles"] == ["resident"]

                # a resident's real name verified through A: B's cached /me and level-2 routes follow at once
                code = http.post(
                    a + "/api/v1/auth/sms-codes", json={"phone": RESIDENT["phone"], "purpose": "login"}
                )
                assert code.status_code == 202, code.text
                sms = http.get(a + "/api/v1/sandbox/sms", params={"phone": RESIDENT["phone"]}).json()
                tokens = http.post(
                    a + "/api/v1/auth/token",
                    json={
                        "grant_type": "sms_code",
                        "phone": RESIDENT["phone"],
                        "code": sms["items"][-1]["code"],
                        "channel": "app",
                    },
                ).json()
                resident = {"Authorization": f"Bearer {tokens['access_token']}"}
                assert http.get(b + "/api/v1/me", headers=resident).json()["real_name_level"] == 1
                verified = http.post(
                    a + "/api/v1/me/real-name",
                    json={"name": RESIDENT["name"], "id_number": RESIDENT["id_number"]},
                    headers=resident,
                )
                assert verified.status_code == 200, verified.text
                me_on_b = http.get(b + "/api/v1/me", headers=resident).json()
                assert me_on_b["real_name_level"] == 2 and me_on_b["name"] == "张*"
    finally:
        _flush_redis()
