"""Faults (issue 10 part 8), with processes the test starts itself, all on 127.0.0.1: delivery workers
(`python -m api.worker`, killed and started again by their pid) sending to a fake JPush that answers 500, 429,
malformed JSON, or too late, or holds a push while the worker is killed. At the end of each: every committed
notification was delivered, none rolled back was sent, and nobody got two messages — JPush sends a `cid` once,
so a second push with the same cid (a crash between the send and its mark) is counted here and reported, and
reaches nobody twice. On PostgreSQL two workers share a 10 000-delivery announcement (1 000 on SQLite) and
never claim one delivery twice."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from api.kit import clock
from api.kit.config import PROJECT_ROOT
from api.kit.db import in_transaction
from models import notifications as db
from tests.integrations.fakeserver import FakeServer, Reply, Seen
from tests.notifications.test_delivery import bind_wechat, device, submitted
from tests.support.cases import make_world
from tests.support.rows import residents_with_devices
from tests.support.server import free_port

SETTLED = ("sent", "delivered")


class FakeJPush:
    """JPush as our client meets it: cids, pushes (a cid seen before answers its first msg_id and sends
    nothing), receipts; `faults` are answered to the next pushes in turn, each one still taking the push
    when it is a late or unreadable answer (what JPush may have done)."""

    def __init__(self) -> None:
        self.server = FakeServer().start(keep_alive=True)
        self.lock = threading.Lock()
        self.msg_ids = itertools.count(18_100_000_000_001)
        self.by_cid: dict[str, str] = {}
        self.to_device: dict[str, list[str]] = {}  # registration id -> the cids it got (each once)
        self.pushes: list[dict] = []
        self.faults: list[str] = []
        self.hold = threading.Event()  # set: pushes wait until it is cleared
        self.server.route("GET", "/v3/push/cid", self._cids)
        self.server.route("POST", "/v3/push", self._push)
        self.server.route("GET", "/v3/received/detail", self._received)

    @property
    def url(self) -> str:
        return self.server.url

    def stop(self) -> None:
        self.hold.clear()
        self.server.stop()

    def _cids(self, seen: Seen) -> Reply:
        return Reply(200, {"cidlist": [uuid.uuid4().hex for _ in range(int(seen.query.get("count", "1")))]})

    def _take(self, body: dict) -> str:
        cid = body["cid"]
        with self.lock:
            if cid not in self.by_cid:
                self.by_cid[cid] = str(next(self.msg_ids))
                for registration_id in body["audience"]["registration_id"]:
                    self.to_device.setdefault(registration_id, []).append(cid)
            return self.by_cid[cid]

    def _push(self, seen: Seen) -> Reply:
        body = seen.json()
        with self.lock:
            self.pushes.append(body)
            fault = self.faults.pop(0) if self.faults else None
        if fault == "500":
            return Reply(500, {"error": {"code": 1000, "message": "server error"}})
        if fault == "429":
            return Reply(429, {"error": {"code": 2002, "message": "rate limited"}})
        msg_id = self._take(body)
        if fault == "malformed":
            return Reply(200, body=b'{"sendno": "0", "msg_id": ')
        if fault == "late":
            return Reply(200, {"sendno": "0", "msg_id": msg_id}, delay=2.0)  # past the client's timeout
        while self.hold.is_set():
            time.sleep(0.02)
        return Reply(200, {"sendno": "0", "msg_id": msg_id})

    def _received(self, seen: Seen) -> Reply:
        ids = [m for m in seen.query.get("msg_ids", "").split(",") if m]
        with self.lock:
            taken = set(self.by_cid.values())
        return Reply(200, [{"msg_id": m, "jpush_received": 1 if m in taken else 0} for m in ids])

    def cids_pushed_twice(self) -> int:
        with self.lock:
            counts: dict[str, int] = {}
            for body in self.pushes:
                counts[body["cid"]] = counts.get(body["cid"], 0) + 1
        return sum(1 for n in counts.values() if n > 1)


@pytest.fixture
def jpush() -> Iterator[FakeJPush]:
    fake = FakeJPush()
    yield fake
    fake.stop()


def worker_env(app, jpush: FakeJPush | FakeJPushUrl, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YWT_")}
    return env | {
        "YWT_APP__MODE": "embedded",
        "YWT_APP__DATA_DIR": str(tmp),
        "YWT_APP__LOG_LEVEL": "INFO",
        "YWT_DATABASE__URL": app.ctx.settings.database_url,
        "YWT_REDIS__URL": "memory://",
        "YWT_PUSH__PROVIDER": "http",
        "YWT_PUSH__BASE_URL": jpush.url,
        "YWT_PUSH__REPORT_URL": jpush.url,
        "YWT_PUSH__APP_KEY": "fault-test",
        "YWT_PUSH__MASTER_SECRET": "fault-test",
        "YWT_PUSH__TIMEOUT": "0.5",
        "YWT_NOTIFICATIONS__INTERVAL": "0.1",
        "YWT_NOTIFICATIONS__HOLD_SECONDS": "5",
        "YWT_NOTIFICATIONS__RETRY_FIRST": "0.2",
        "YWT_NOTIFICATIONS__RETRY_MAX": "0.5",
        "YWT_NOTIFICATIONS__RECEIPT_POLL": "0.5",
        "YWT_NOTIFICATIONS__QUIET_START": "00:00",
        "YWT_NOTIFICATIONS__QUIET_END": "00:00",
        "YWT_APPLICATIONS__DEADLINE_WATCH_INTERVAL": "86400",
        "NO_PROXY": "127.0.0.1",
    }


@contextmanager
def worker(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """`python -m api.worker`, in a process group of its own; stopped (TERM, then KILL) when the block ends."""
    with open(log, "a", encoding="utf-8") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "api.worker"],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
                if proc.poll() is not None:
                    break
                os.killpg(proc.pid, sig)
                try:
                    proc.wait(wait)
                except subprocess.TimeoutExpired:
                    continue


async def until(what: str, check, timeout: float = 60.0, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    tail = log.read_text(encoding="utf-8")[-3000:] if log and log.exists() else ""
    pytest.fail(f"not within {timeout:g} s: {what}\n{tail}")


async def all_settled(expected: int) -> bool:
    return await db.Delivery.filter(status__in=SETTLED).count() == expected


async def test_provider_faults_are_retried_and_nobody_gets_a_message_twice(app, client, jpush, tmp_path):
    w = await make_world(app, client, second_resident=False)
    await device(client, w.resident, "rid-zhang-1")
    for _ in range(3):
        await submitted(w)
    # rolled back: never sent
    with pytest.raises(RuntimeError):
        async with in_transaction():
            await db.notify(w.resident_id, "application_status", "不会发出", "回滚的变更")
            raise RuntimeError("the change fails after its notification was written")
    jpush.faults = ["500", "429", "malformed", "late", "500"]
    log = tmp_path / "worker.log"
    with worker(worker_env(app, jpush, tmp_path), log) as proc:
        await until("the three pushes taken", lambda: all_settled(3), log=log)
        # and the receipts come in: JPush says every one arrived
        await until("the receipts", lambda: _count(status="delivered", expected=3), timeout=20, log=log)
        assert proc.poll() is None
    assert not jpush.faults  # every fault was answered
    # the resident got each of his three notifications once, and nothing of the rolled-back one
    assert len(jpush.to_device["rid-zhang-1"]) == 3
    assert all(body["notification"]["android"]["title"] != "不会发出" for body in jpush.pushes)
    assert len(jpush.pushes) == 3 + 5  # one more push per fault; the late and unreadable ones, same cid
    assert await db.DeliveryEvent.filter(status="temporary-failure").count() == 5


async def _count(*, status: str, expected: int) -> bool:
    return await db.Delivery.filter(status=status).count() == expected


async def test_a_worker_killed_between_the_push_and_its_mark_sends_nothing_twice(
    app, client, jpush, tmp_path
):
    w = await make_world(app, client, second_resident=False)
    await device(client, w.resident, "rid-zhang-1")
    await submitted(w)
    env = worker_env(app, jpush, tmp_path)
    log = tmp_path / "worker.log"
    jpush.hold.set()  # JPush takes the push and does not answer yet
    with worker(env, log) as first:
        await until("the push reaches JPush", lambda: _pushed(jpush), log=log)
        os.kill(first.pid, signal.SIGKILL)  # after JPush took it, before the worker could mark it
        first.wait(10)
    assert (await db.Delivery.get(channel="push")).status == "sending"
    jpush.hold.clear()
    with worker(env, log):  # another worker: once the dead one's hold lapses, the sweep tries again
        await until("the push marked", lambda: all_settled(1), timeout=30, log=log)
    assert jpush.to_device["rid-zhang-1"] == [jpush.pushes[0]["cid"]]  # one message reached him
    assert jpush.cids_pushed_twice() == 1  # the crash's duplicate: the same cid, sent nothing again
    report = f"crash duplicates (same cid, not sent again): {jpush.cids_pushed_twice()}"
    print(report)


async def _pushed(jpush: FakeJPush) -> bool:
    return bool(jpush.pushes)


async def test_two_workers_never_claim_one_delivery_twice(app, client, jpush, tmp_path):
    postgres = app.ctx.settings.database_url.startswith("postgres")
    residents = 10_000 if postgres else 1_000
    await make_world(app, client, second_resident=False)
    await residents_with_devices(residents, "bulk")
    now = clock.now()
    await db.create_announcement(
        "停水通知",
        "12月6日城北片区停水",
        {"kind": "role", "code": "resident"},
        ["inbox", "push"],
        now,
        None,
        now,
    )
    # receipts (each applied in a transaction of its own) are another test's: here, the claims
    env = worker_env(app, jpush, tmp_path) | {
        "YWT_PUSH__TIMEOUT": "10",
        "YWT_NOTIFICATIONS__RECEIPT_POLL": "86400",
    }
    expected = await db.Device.all().count()
    log = tmp_path / "workers.log"
    with worker(env, log), worker(env, log):
        await until(
            f"{expected} pushes marked",
            lambda: all_settled(expected),
            timeout=300 if postgres else 150,
            log=log,
        )
    # no delivery was claimed by one worker while the other held it: in each one's history every
    # `sending` is followed by what became of that try before the next `sending`
    events = await db.DeliveryEvent.all().order_by("delivery_id", "id").values_list("delivery_id", "status")
    previous: dict[int, str] = {}
    for delivery_id, status in events:
        assert not (status == "sending" and previous.get(delivery_id) == "sending"), delivery_id
        previous[delivery_id] = status
    # each device got one message (a retry after a slow answer carries the same cid: sent once)
    assert len(jpush.to_device) == expected
    assert all(len(cids) == 1 for cids in jpush.to_device.values())
    print(
        f"pushes {len(jpush.pushes)} for {expected} deliveries; cids pushed twice: {jpush.cids_pushed_twice()}"
    )


# ---- Redis restarted, the database connection cut --------------------------------------------------------


class FakeWeChatApi:
    """WeChat's token and template-message calls; a client_msg_id seen before sends nothing again."""

    def __init__(self) -> None:
        self.server = FakeServer().start()
        self.lock = threading.Lock()
        self.msgids = itertools.count(200228332)
        self.by_client_msg_id: dict[str, int] = {}
        self.to_openid: dict[str, list[str]] = {}
        self.server.route("POST", "/cgi-bin/stable_token", self._token)
        self.server.route("POST", "/cgi-bin/message/template/send", self._send)

    def _token(self, seen: Seen) -> Reply:
        return Reply(200, {"access_token": "ACCESS_TOKEN_fault_test", "expires_in": 7200})

    def _send(self, seen: Seen) -> Reply:
        body = seen.json()
        key = body["client_msg_id"]
        with self.lock:
            if key not in self.by_client_msg_id:
                self.by_client_msg_id[key] = next(self.msgids)
                self.to_openid.setdefault(body["touser"], []).append(key)
            return Reply(200, {"errcode": 0, "errmsg": "ok", "msgid": self.by_client_msg_id[key]})


@contextmanager
def redis_server(port: int, log: Path) -> Iterator[subprocess.Popen]:
    """A Redis of the test's own on 127.0.0.1:`port`, nothing saved; killed by its pid when the block ends."""
    with open(log, "a", encoding="utf-8") as out:
        proc = subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                        sock.sendall(b"PING\r\n")
                        if sock.recv(16).startswith(b"+PONG"):
                            break
                except OSError:
                    time.sleep(0.05)
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(5)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server to start one")
async def test_a_redis_restart_under_a_worker_delays_wechat_messages_and_loses_none(app, client, tmp_path):
    w = await make_world(app, client, second_resident=False)
    openid = await bind_wechat(client, w.resident)
    wx = FakeWeChatApi()
    port = free_port()
    env = {
        k: v
        for k, v in worker_env(app, FakeJPushUrl(wx.server.url), tmp_path).items()
        if not k.startswith("YWT_PUSH__")
    } | {
        "YWT_REDIS__URL": f"redis://127.0.0.1:{port}/0",
        "YWT_REDIS__TIMEOUT": "0.5",
        "YWT_WECHAT__PROVIDER": "http",
        "YWT_WECHAT__BASE_URL": wx.server.url,
        "YWT_WECHAT__APP_SECRET": "fault-test-secret",
        "YWT_WECHAT__TIMEOUT": "1",
    }
    log = tmp_path / "worker.log"
    try:
        with redis_server(port, tmp_path / "redis.log") as redis_proc:
            await submitted(w)
            with worker(env, log):
                await until("the first WeChat message", lambda: _wechat_sent(1), log=log)
                os.kill(redis_proc.pid, signal.SIGKILL)  # our Redis, by its pid
                redis_proc.wait(5)
                await submitted(w)
                await submitted(w)
                await until(
                    "a try failing while Redis is down",
                    lambda: _failed_tries("wechat"),
                    timeout=30,
                    log=log,
                )
                with redis_server(port, tmp_path / "redis.log"):  # the same port again, empty
                    await until("all three WeChat messages", lambda: _wechat_sent(3), timeout=60, log=log)
    finally:
        wx.server.stop()
    assert len(wx.to_openid[openid]) == 3  # each once


class FakeJPushUrl:
    def __init__(self, url: str) -> None:
        self.url = url


async def _wechat_sent(n: int) -> bool:
    return await db.Delivery.filter(channel="wechat", status__in=SETTLED).count() == n


async def _failed_tries(channel: str) -> bool:
    return await db.DeliveryEvent.filter(status="temporary-failure", delivery__channel=channel).exists()


class Proxy:
    """A TCP proxy on 127.0.0.1 in front of PostgreSQL that the test can cut: every connection through it
    closed, and new ones refused, until it is restored."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open = threading.Event()
        self.open.set()
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.listener.settimeout(0.1)
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if not self.open.is_set():
                conn.close()
                continue
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [conn, upstream]
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.open.clear()
        with self.lock:
            for s in self.sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()
            self.sockets = []

    def restore(self) -> None:
        self.open.set()

    def stop(self) -> None:
        self.stopping.set()
        self.cut()
        self.listener.close()


async def test_a_cut_database_connection_fails_passes_and_the_worker_goes_on(app, client, jpush, tmp_path):
    url = app.ctx.settings.database_url
    if not url.startswith("postgres"):
        pytest.skip("the database is a file here: there is no connection to cut (the PostgreSQL run cuts it)")
    parts = urllib.parse.urlsplit(url)
    proxy = Proxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    through = urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    w = await make_world(app, client, second_resident=False)
    await device(client, w.resident, "rid-zhang-1")
    env = worker_env(app, jpush, tmp_path) | {"YWT_DATABASE__URL": through}
    log = tmp_path / "worker.log"
    try:
        await submitted(w)
        with worker(env, log) as proc:
            await until("the first push", lambda: all_settled(1), log=log)
            proxy.cut()
            await submitted(w)  # committed through the test's own connection while the worker's is cut
            await submitted(w)
            await asyncio.sleep(2)  # passes fail meanwhile: logged, and the loop goes on
            assert proc.poll() is None
            proxy.restore()
            await until("the three pushes", lambda: all_settled(3), timeout=60, log=log)
    finally:
        proxy.stop()
    assert len(jpush.to_device["rid-zhang-1"]) == 3
    assert "delivery pass failed" in log.read_text(encoding="utf-8")
