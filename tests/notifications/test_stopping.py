"""Stopping cleanly (issue 10 part 10): the service (`python -m api.cli serve`, embedded mode, its delivery loop
and deadline watch inside), started by the test and sent SIGTERM at 20 seeded moments — during start-up,
during a deadline-watch pass, while announcements are fanned out and pushed, while requests are answered —
exits 0 within the grace period each time (`notifications.stop_grace`, also Sanic's graceful shutdown: at
most twice it, plus closing), and nothing committed is lost: every announcement it answered 201 for is there,
and nothing is left held (no delivery `sending`, no outbox row or announcement claimed), so another worker
can take all of it at once. On SQLite, and on this run's PostgreSQL (a database of the test's own) when
YWT_TEST_DATABASE_URL is set."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from api.kit.config import PROJECT_ROOT
from api.sandbox.people import ADMIN_PHONE, DEMO_PASSWORD
from tests.support.databases import own_database, pg_execute
from tests.support.server import free_port

GRACE = 1.5
MOMENTS = 20
SEED = 20261204
ANNOUNCE = "/api/v1/admin/announcements"


@pytest.fixture
def database(tmp_path) -> Iterator[str]:
    with own_database(tmp_path, "ywt_stopping") as url:
        yield url


def query(database: str, sql: str) -> list[tuple]:
    if database.startswith("sqlite://"):
        with sqlite3.connect(database.removeprefix("sqlite://"), timeout=30) as conn:
            return list(conn.execute(sql).fetchall())
    return [tuple(r) for r in asyncio.run(pg_execute(sql, database))]


def env_for(tmp_path: Path, database: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YWT_")}
    return env | {
        "YWT_APP__MODE": "embedded",
        "YWT_APP__DATA_DIR": str(tmp_path / "data"),
        "YWT_APP__LOG_LEVEL": "INFO",
        "YWT_SERVER__HOST": "127.0.0.1",
        "YWT_SERVER__PORT": str(free_port()),
        "YWT_DATABASE__URL": database,
        "YWT_REDIS__URL": "memory://",
        "YWT_NOTIFICATIONS__INTERVAL": "0.05",
        "YWT_NOTIFICATIONS__STOP_GRACE": str(GRACE),
        "YWT_NOTIFICATIONS__HOLD_SECONDS": "30",
        "YWT_NOTIFICATIONS__QUIET_START": "00:00",
        "YWT_NOTIFICATIONS__QUIET_END": "00:00",
        "YWT_APPLICATIONS__DEADLINE_WATCH_INTERVAL": "0.2",
        "NO_PROXY": "127.0.0.1",
    }


def spawn(env: dict[str, str], log: Path) -> subprocess.Popen:
    out = open(log, "a", encoding="utf-8")  # noqa: SIM115 — closed with the process below
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve"],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    proc.log_file = out  # type: ignore[attr-defined]
    return proc


def reap(proc: subprocess.Popen) -> None:
    """Whatever is left of the process group (nothing after a clean exit)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(10)
    proc.log_file.close()  # type: ignore[attr-defined]


def ready(base: str, proc: subprocess.Popen, within: float = 120) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return True
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    return False


class Load(threading.Thread):
    """Announcements published and items read until the server stops answering; the ids answered 201."""

    def __init__(self, base: str) -> None:
        super().__init__(daemon=True)
        self.base = base
        self.published: list[int] = []
        self.stop = threading.Event()

    def run(self) -> None:
        headers: dict[str, str] = {}
        with httpx.Client(base_url=self.base, timeout=5) as http:
            n = 0
            while not self.stop.is_set():
                n += 1
                try:
                    if not headers:  # signed in once the server answers (its sessions live in its Redis)
                        headers = {"Authorization": f"Bearer {sign_in(http)}"}
                    r = http.post(
                        ANNOUNCE,
                        json={
                            "title": f"通知 {n}",
                            "body": "便民服务站开放时间调整",
                            "audience": {"kind": "everyone"},
                        },
                        headers=headers,
                    )
                    if r.status_code == 201:
                        self.published.append(r.json()["id"])
                    http.get("/api/v1/items", params={"limit": 5})
                except httpx.TransportError:
                    time.sleep(0.02)  # not up yet, or stopping


def sign_in(http: httpx.Client) -> str:
    r = http.post(
        "/api/v1/auth/token",
        json={"grant_type": "password", "phone": ADMIN_PHONE, "password": DEMO_PASSWORD, "channel": "app"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    # the admin's phone takes pushes: every announcement goes out by push too
    r = http.post(
        "/api/v1/me/devices",
        json={"registration_id": "rid-admin-1", "platform": "android", "app_version": "3.2.0"},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert r.status_code == 201, r.text
    return token


def test_sigterm_at_twenty_moments_exits_in_time_and_loses_nothing(tmp_path, database):
    env = env_for(tmp_path, database)
    base = f"http://127.0.0.1:{env['YWT_SERVER__PORT']}"
    log = tmp_path / "server.log"
    # the first start migrates and seeds the demo people; the moments come after
    proc = spawn(env, log)
    try:
        assert ready(base, proc), log.read_text(encoding="utf-8")[-3000:]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        reap(proc)

    rng = random.Random(SEED)
    published: list[int] = []
    took: list[float] = []
    early = 0
    for moment in range(MOMENTS):
        after = rng.uniform(0.0, 4.5)  # from the spawn: start-up takes ~2-3 s here, then load
        start_of_log = log.stat().st_size
        proc = spawn(env, log)
        load = Load(base)
        load.start()
        try:
            time.sleep(after)
            proc.send_signal(signal.SIGTERM)  # to the server, as an orchestrator sends it
            sent = time.monotonic()
            try:
                code = proc.wait(2 * GRACE + 10)
            except subprocess.TimeoutExpired:
                pytest.fail(
                    f"moment {moment} ({after:.2f} s after start): still running {2 * GRACE + 10:g} s after "
                    f"SIGTERM\n" + log.read_text(encoding="utf-8")[-3000:]
                )
            took.append(time.monotonic() - sent)
            this_start = log.read_text(encoding="utf-8")[start_of_log:]
            # exit 0 once our own code runs; a SIGTERM while the interpreter is still starting (before the
            # command's first line) ends it by the signal, before anything was begun
            began = "serving on" in this_start or "catalogue" in this_start or "migrat" in this_start
            assert code == 0 or (code == -signal.SIGTERM and not began), (
                f"moment {moment} ({after:.2f} s): exit {code}\n{this_start[-3000:]}"
            )
            early += code != 0
        finally:
            load.stop.set()
            load.join(10)
            reap(proc)
        published.extend(load.published)
        # nothing held: another worker could take everything at once
        held = {
            "deliveries sending": "SELECT COUNT(*) FROM delivery WHERE status = 'sending'",
            "outbox rows claimed": "SELECT COUNT(*) FROM outbox WHERE done_at IS NULL AND claimed_until IS NOT NULL",
            "announcements claimed": (
                "SELECT COUNT(*) FROM announcement WHERE status = 'sending' AND claimed_until IS NOT NULL"
            ),
        }
        counts = {what: query(database, sql)[0][0] for what, sql in held.items()}
        assert not any(counts.values()), (
            f"moment {moment}: {counts}\n" + log.read_text(encoding="utf-8")[-6000:]
        )
    # every announcement answered 201 is there
    stored = {row[0] for row in query(database, "SELECT id FROM announcement")}
    assert set(published) <= stored
    assert published, "the load published nothing: the moments never reached a running server"
    print(
        f"{MOMENTS} SIGTERMs: exit after {min(took):.2f}-{max(took):.2f} s; {len(published)} announcements; "
        f"{early} before the interpreter reached our code"
    )
