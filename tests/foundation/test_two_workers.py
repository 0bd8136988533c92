"""The real server with 2 Sanic workers on a fresh data dir and real Redis: both workers sign with the one key
they found or made, so a token minted by one verifies on the other.

Every worker makes its keys in its own `before_server_start`; before api.kit.keyfile two of them could each
write and keep a signing key of their own. Demo seeding is off: `serve` seeds in one process before it starts
the workers, and seeding builds the identity service, so it would make the keys before any worker could race.
Sanic's workers share one listening socket, so which worker answers a connection is up to the kernel: the test
asks Linux (/proc) which worker holds the server side of each connection, and keeps one connection to each
worker.

This checks the property end to end; it cannot force the race. The old writer lost it only when a second
worker looked for jwt.json within the ~1 ms the first took to write it, and here the workers get there 60 ms to
2 s apart: tests/foundation/test_keyfile.py releases threads and processes together to force it."""

from __future__ import annotations

import http.client
import json
import os
import time
from pathlib import Path

import pytest
import redis

from api.kit.keys import JWT_FILE
from tests.support.server import free_port, started

REDIS_URL = os.environ.get("YWT_TEST_REDIS_URL") or "redis://127.0.0.1:6379/13"
WORKERS = 2
START_WITHIN = 35.0  # seconds: migrations and 2 workers up (10-20 s here on a busy machine)
PHONES = ("13800000001", "13800000002", "13800000003")


def _flush_redis() -> None:
    with redis.Redis.from_url(REDIS_URL) as client:
        client.flushdb()


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _serving_pid(conn: http.client.HTTPConnection, server_port: int, candidates: set[int]) -> int | None:
    """The process holding the server side of ``conn``: its socket inode from /proc/net/tcp, then whose fd."""
    client_port = conn.sock.getsockname()[1]
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == server_port and int(remote.split(":")[1], 16) == client_port:
            inode = fields[9]
    if inode in (None, "0"):
        return None
    for pid in candidates:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    return None


def _call(
    conn: http.client.HTTPConnection, method: str, path: str, body=None, token=None
) -> tuple[int, object]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
    response = conn.getresponse()
    raw = response.read()
    return response.status, (json.loads(raw) if raw else None)


@pytest.fixture
def two_workers(tmp_path):
    _flush_redis()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("YWT_") or k.startswith("YWT_TEST_")}
    env |= {
        "YWT_APP__MODE": "embedded",
        "YWT_APP__DATA_DIR": str(tmp_path),
        "YWT_APP__LOG_LEVEL": "WARNING",
        "YWT_APP__SEED_DEMO": "false",  # see the module docstring: the workers, not `serve`, make the keys
        "YWT_SERVER__HOST": "127.0.0.1",
        "YWT_SERVER__PORT": str(port),
        "YWT_SERVER__WORKERS": str(WORKERS),
        "YWT_DATABASE__URL": f"sqlite://{tmp_path}/ywt.sqlite3",
        "YWT_REDIS__URL": REDIS_URL,
    }
    log_path = tmp_path / "server.log"

    def log_tail() -> str:
        return log_path.read_text(encoding="utf-8")[-3000:]

    try:
        with started(env, log_path) as proc:
            yield proc, port, tmp_path / "keys", log_tail
    finally:
        _flush_redis()


def test_a_token_minted_by_one_worker_verifies_on_the_other(two_workers):
    proc, port, keys_dir, log_tail = two_workers
    deadline = time.monotonic() + START_WITHIN

    # one kept-alive connection to each worker; every fresh connection also reports the worker's JWKS
    conns: dict[int, http.client.HTTPConnection] = {}
    kids_seen: dict[int, set[str]] = {}
    while len(conns) < WORKERS:
        assert proc.poll() is None, "server exited:\n" + log_tail()
        assert time.monotonic() < deadline, f"{len(conns)} of {WORKERS} workers answered:\n" + log_tail()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            status, jwks = _call(conn, "GET", "/.well-known/jwks.json")
        except OSError:
            conn.close()
            time.sleep(0.1)
            continue
        assert status == 200, jwks
        pid = _serving_pid(conn, port, _children(proc.pid))
        assert pid is not None, "no worker holds the connection"
        kids_seen.setdefault(pid, set()).update(k["kid"] for k in jwks["keys"])
        if pid in conns:
            conn.close()
        else:
            conns[pid] = conn
    try:
        ring = json.loads((keys_dir / JWT_FILE).read_text())
        assert list(ring["keys"]) == [ring["current"]]
        assert kids_seen == {pid: {ring["current"]} for pid in conns}, "each worker signs with the one key"

        # each worker mints a token (the whole SMS sign-in on its own connection) ...
        minted: dict[int, str] = {}
        for (pid, conn), phone in zip(conns.items(), PHONES, strict=False):
            status, body = _call(conn, "POST", "/api/v1/auth/sms-codes", {"phone": phone, "purpose": "login"})
            assert status == 202, body
            status, body = _call(conn, "GET", f"/api/v1/sandbox/sms?phone={phone}")
            assert status == 200, body
            code = body["items"][-1]["code"]
            grant = {"grant_type": "sms_code", "phone": phone, "code": code, "channel": "app"}
            status, body = _call(conn, "POST", "/api/v1/auth/token", grant)
            assert status == 200, body
            assert _serving_pid(conn, port, {pid}) == pid, "the sign-in stayed on its worker"
            minted[pid] = body["access_token"]

        # ... and every worker accepts every token
        for signer, token in minted.items():
            for verifier, conn in conns.items():
                status, body = _call(conn, "GET", "/api/v1/me", token=token)
                assert status == 200, f"token of worker {signer} on worker {verifier}: {status} {body}"
                assert _serving_pid(conn, port, {verifier}) == verifier

        # and on fresh connections, wherever the kernel sends them
        for token in minted.values():
            for _ in range(6):
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                try:
                    status, body = _call(conn, "GET", "/api/v1/me", token=token)
                finally:
                    conn.close()
                assert status == 200, body
        assert json.loads((keys_dir / JWT_FILE).read_text()) == ring
    finally:
        for conn in conns.values():
            conn.close()
