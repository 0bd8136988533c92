"""Benchmark: wrk against the real service and against a bare Sanic app, in one run.

.venv/bin/python bench/run.py [--duration 10] [--cases 100000] [--only a,b] [--database-url URL]
                               [--redis-url URL] [--workers N]

Prepares a fresh database (a temp SQLite file, or a new PostgreSQL database `ywt_bench_<pid>` created on the
server of --database-url and dropped afterwards): migrations, the demo catalogue, the demo staff and --cases
application rows bulk-inserted for the grid worker queue. Then starts `python -m api.cli serve` on it and
bench/bare_app.py on free 127.0.0.1 ports, warms each scenario up for 2 s, measures it with
`wrk -t2 -c64 -d<duration>s --timeout=10s --latency`, reads the resident memory of the service, prints a table and writes
bench/results/latest.json. It reports; it does not assert: exit 0 even when a goal is missed, non-zero only
when something could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
RESULTS_FILE = BENCH_DIR / "results" / "latest.json"
HOST = "127.0.0.1"  # the only host this script ever sends requests to

THREADS = 2
CONNECTIONS = 64
WARMUP_SECONDS = 2
# a request slower than this is given up by wrk (and counted as a timeout): long enough that a slow
# endpoint shows its real latency instead of being abandoned (an abandoned request is cancelled server-side)
WRK_TIMEOUT = "10s"
START_TIMEOUT = 90.0  # seconds for the service to answer /readyz and list an item
RSS_GOAL_MB = 150.0
DEFAULT_CASES = 100_000

# who the scenarios act as (api/sandbox/people.py; residents sign up by SMS through the sandbox gateway)
DEMO_PASSWORD = "Xinyu2026"
GRID_WORKER_PHONE = "13700000201"  # serves P360502001001-003
QUEUE_POINT = "P360502001001"
ME_PHONE = "13800000002"  # 李娟
ZHANG = {"name": "张三", "id_number": "360502198803152015", "phone": "13800000001"}
SUBMIT_ITEM = "360500-MZ-003"  # 临时救助申请, community level, delivery by grid worker
SUBMIT_POINT = "P360502003001"  # not one of the queue's grid worker points: the queue stays as prepared
SUBMIT_BODY = {
    "item_code": SUBMIT_ITEM,
    "point_code": SUBMIT_POINT,
    "form": {"difficulty": "家庭成员突发重大疾病", "household_size": 3},
    "delivery": {"mode": "grid_worker", "address": "渝水区袁河街道公园路18号3栋2单元401室"},
}
# the service under the bench: limits that would stop the setup hooks from signing in on a shared Redis
# (a previous run's SMS cooldown, a day's quota) are lifted; nothing measured goes through them
BENCH_ENV = {
    "YWT_SECURITY__SMS_RESEND_AFTER": "1",
    "YWT_SECURITY__SMS_MAX_PER_PHONE_PER_DAY": "100000",
    "YWT_SECURITY__SMS_MAX_PER_IP_PER_HOUR": "100000",
    "YWT_SECURITY__TOKEN_MAX_PER_IP_PER_MINUTE": "100000",
    "YWT_SECURITY__TOKEN_MAX_PER_PHONE_PER_HOUR": "100000",
    "YWT_SECURITY__REAL_NAME_MAX_PER_DAY": "100000",
}


class BenchError(Exception):
    """Something could not run; the message says what."""


# ---------------------------------------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    """What a scenario's setup hook hands back: extra request headers and values for {placeholders}."""

    headers: dict[str, str] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)


# A setup hook receives the target's base URL (http://127.0.0.1:PORT) and returns Prepared, e.g. signs in
# and returns {"Authorization": "Bearer …"}. It runs once, after the service is ready, before the warm-up.
SetupHook = Callable[[str], Prepared]


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str  # may hold {placeholders}: {code} (an item code found at start) and any setup hook values
    target: str = "service"  # "service" or "bare"
    headers: dict[str, str] = field(default_factory=dict)  # sent with every request (wrk -H)
    script: str | None = None  # a wrk Lua script, relative to bench/ (POST bodies, per-request headers)
    script_args: tuple[str, ...] = ()  # passed to the script's init(args); {placeholders} are filled in
    setup: SetupHook | None = None
    goal_ratio: float | None = None  # req/s at least this × the bare app's req/s
    goal_p99_ms: float | None = None  # 99th percentile latency at most this
    goal_rps: float | None = None  # req/s at least this
    goal_on: str | None = None  # "postgres": the goal is judged only on PostgreSQL (reported elsewhere)
    writes: bool = False  # changes the database: measured after the read-only scenarios

    def goal_text(self) -> str:
        parts = []
        if self.goal_rps is not None:
            parts.append(f">={self.goal_rps:g}/s")
        if self.goal_ratio is not None:
            parts.append(f">={self.goal_ratio:g}x bare")
        if self.goal_p99_ms is not None:
            parts.append(f"p99<={self.goal_p99_ms:g}ms")
        text = ", ".join(parts) or "-"
        return f"{text} (on {self.goal_on})" if self.goal_on and parts else text


# ---------------------------------------------------------------------------------------------------------
# Setup hooks: sign in through the running service, as the apps do
# ---------------------------------------------------------------------------------------------------------


def http_json(
    method: str, url: str, body: object | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict]:
    """One JSON request to 127.0.0.1; (status, parsed body or {})."""
    if urllib.parse.urlsplit(url).hostname != HOST:
        raise BenchError(f"refusing a non-local target: {url}")
    data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
    sent = {"Content-Type": "application/json", **(headers or {})}
    request = urllib.request.Request(url, data=data, method=method, headers=sent)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310 — http://127.0.0.1 only
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        parsed = json.loads(raw) if raw else {}
    except ValueError:
        parsed = {"raw": raw[:300].decode(errors="replace")}
    return status, parsed if isinstance(parsed, dict) else {"items": parsed}


def expect(what: str, status: int, body: dict, *wanted: int) -> dict:
    if status not in wanted:
        raise BenchError(f"{what}: HTTP {status} {json.dumps(body, ensure_ascii=False)[:400]}")
    return body


def sms_sign_in(base: str, phone: str) -> dict:
    """A resident signed in with a code read from the sandbox SMS gateway (embedded mode only)."""
    for attempt in range(3):
        status, body = http_json(
            "POST", base + "/api/v1/auth/sms-codes", {"phone": phone, "purpose": "login"}
        )
        if status != 429 or attempt == 2:
            break
        time.sleep(1.1)  # the bench service's resend cooldown is 1 s
    expect(f"SMS code for {phone}", status, body, 202)
    status, body = http_json("GET", f"{base}/api/v1/sandbox/sms?phone={phone}")
    items = expect("sandbox SMS (is the service in embedded mode?)", status, body, 200).get("items") or []
    if not items or not items[-1].get("code"):
        raise BenchError(f"the sandbox SMS gateway shows no code for {phone}")
    grant = {"grant_type": "sms_code", "phone": phone, "code": items[-1]["code"], "channel": "app"}
    return expect(f"sign-in of {phone}", *http_json("POST", base + "/api/v1/auth/token", grant), 200)


def bearer(tokens: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def signed_in_resident(base: str) -> Prepared:
    tokens = sms_sign_in(base, ME_PHONE)
    expect("GET /api/v1/me", *http_json("GET", base + "/api/v1/me", headers=bearer(tokens)), 200)
    return Prepared(headers=bearer(tokens))


def queue_grid_worker(base: str) -> Prepared:
    grant = {
        "grant_type": "password",
        "phone": GRID_WORKER_PHONE,
        "password": DEMO_PASSWORD,
        "channel": "handheld",
    }
    status, tokens = http_json("POST", base + "/api/v1/auth/token", grant)
    expect(f"grid worker {GRID_WORKER_PHONE} sign-in (demo staff seeded?)", status, tokens, 200)
    url = f"{base}/api/v1/work/applications?point_code={QUEUE_POINT}&limit=20"
    page = expect("the grid worker's queue", *http_json("GET", url, headers=bearer(tokens)), 200)
    if len(page.get("items") or []) != 20:
        raise BenchError(
            f"the grid worker's queue at {QUEUE_POINT} holds {len(page.get('items') or [])} cases, not 20"
        )
    return Prepared(headers=bearer(tokens), values={"point": QUEUE_POINT})


def verified_zhang(base: str) -> Prepared:
    """张三 signed in, real name verified, and a token that carries level 2; one submission checked."""
    tokens = sms_sign_in(base, ZHANG["phone"])
    if tokens["account"].get("real_name_level", 0) < 2:
        body = {"name": ZHANG["name"], "id_number": ZHANG["id_number"]}
        expect(
            "real-name check of 张三",
            *http_json("POST", base + "/api/v1/me/real-name", body, bearer(tokens)),
            200,
        )
        refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        tokens = expect("token refresh", *http_json("POST", base + "/api/v1/auth/token", refresh), 200)
    headers = {**bearer(tokens), "Idempotency-Key": f"bench-check-{os.getpid()}-{time.time_ns()}"}
    expect("a first submission", *http_json("POST", base + "/api/v1/applications", SUBMIT_BODY, headers), 201)
    return Prepared(
        headers=bearer(tokens),
        values={
            "nonce": f"{os.getpid():x}{time.time_ns():x}",
            "body": json.dumps(SUBMIT_BODY, ensure_ascii=False),
        },
    )


SCENARIOS: list[Scenario] = [
    Scenario("bare", "/", target="bare"),
    Scenario("item", "/api/v1/items/{code}", goal_ratio=0.5, goal_p99_ms=50),
    Scenario("points_near", "/api/v1/points?near=27.8175,114.9170", goal_p99_ms=50),
    Scenario("me", "/api/v1/me", setup=signed_in_resident, goal_ratio=0.4, goal_p99_ms=50),
    Scenario(
        "queue",
        "/api/v1/work/applications?point_code={point}&limit=20",
        setup=queue_grid_worker,
        goal_p99_ms=50,
    ),
    Scenario(
        "submit",
        "/api/v1/applications",
        script="submit.lua",
        script_args=("{nonce}", "{body}"),
        setup=verified_zhang,
        goal_rps=500,
        goal_on="postgres",
        writes=True,
    ),
]


# ---------------------------------------------------------------------------------------------------------
# wrk
# ---------------------------------------------------------------------------------------------------------


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found: installing the Debian package (apt-get update -qq && apt-get install -y -qq wrk)")
    if shutil.which("apt-get") is None:
        raise BenchError("wrk is not installed and apt-get is not available: install wrk and run again")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        print("  $ " + " ".join(cmd), flush=True)
        try:
            done = subprocess.run(cmd, timeout=300, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise BenchError(
                f"could not install wrk ({' '.join(cmd)}: {exc}); install it and run again"
            ) from None
        if done.returncode != 0:
            raise BenchError(
                f"could not install wrk ({' '.join(cmd)} exited {done.returncode}; root needed?): "
                "install it (apt-get install wrk) and run again"
            )
    found = shutil.which("wrk")
    if not found:
        raise BenchError("apt-get reported success but wrk is still not on PATH")
    return found


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def to_ms(value: str, unit: str) -> float:
    return float(value) * _UNIT_MS[unit]


@dataclass
class WrkResult:
    requests_per_sec: float
    p50_ms: float | None
    p99_ms: float | None
    requests: int | None
    non_2xx: int  # wrk's "Non-2xx or 3xx responses" (status >= 400)
    socket_errors: dict[str, int]

    @property
    def flagged(self) -> bool:
        return self.non_2xx > 0 or any(self.socket_errors.values())


def parse_wrk(output: str) -> WrkResult:
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    if not rps:
        raise BenchError("could not find Requests/sec in wrk's output:\n" + output)
    percentiles = {
        int(p): to_ms(v, u) for p, v, u in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.M)
    }
    total = re.search(r"^\s+(\d+) requests in", output, re.M)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = (
        dict(zip(("connect", "read", "write", "timeout"), map(int, sock.groups()), strict=True))
        if sock
        else {}
    )
    return WrkResult(
        requests_per_sec=float(rps.group(1)),
        p50_ms=percentiles.get(50),
        p99_ms=percentiles.get(99),
        requests=int(total.group(1)) if total else None,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=errors,
    )


def wrk_command(
    wrk: str, url: str, seconds: int, headers: dict[str, str], script: Path | None, args: list[str]
):
    cmd = [wrk, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", f"--timeout={WRK_TIMEOUT}", "--latency"]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    if script is not None:
        cmd += ["-s", str(script)]
    cmd.append(url)
    if args:
        cmd += ["--", *args]
    return cmd


def run_wrk(cmd: list[str], seconds: int) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30, check=False)
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk did not finish within {seconds + 30} s: {' '.join(cmd)}") from None
    if done.returncode != 0:
        raise BenchError(
            f"wrk exited {done.returncode}: {' '.join(cmd)}\n{done.stdout}{done.stderr}".rstrip()
        )
    return done.stdout


# ---------------------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Server:
    """A subprocess in its own process group, output to a log file, stopped with TERM then KILL."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log = log
        self.ready = False  # set once it has answered; decides how it is stopped
        self._log_file = log.open("wb")
        print(f"starting {name}: {' '.join(cmd)}", flush=True)
        self.proc = subprocess.Popen(
            cmd,
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """TERM (a ready server shuts down cleanly), then KILL whatever is left of its process group.

        A server that never became ready gets KILL straight away: Sanic may lose a TERM sent mid-start.
        """
        try:
            if self.ready and self.proc.poll() is None:
                self._signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    print(f"{self.name} did not stop within 5 s of SIGTERM: killing it", file=sys.stderr)
            # whatever is left of its group (workers), and the leader if it ignored TERM
            self._signal(signal.SIGKILL)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                print(f"{self.name} (pid {self.pid}) did not die after SIGKILL", file=sys.stderr)
        finally:
            self._log_file.close()

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)  # the group we created with start_new_session
        except (ProcessLookupError, PermissionError):
            pass


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    if urllib.parse.urlsplit(url).hostname != HOST:
        raise BenchError(f"refusing a non-local target: {url}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 — http://127.0.0.1 only
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_until(server: Server, deadline: float, probe: Callable[[], object | None], what: str) -> object:
    """Call probe until it returns something other than None; fail if the process dies or time runs out."""
    last_error = ""
    while time.monotonic() < deadline:
        if not server.alive():
            raise BenchError(
                f"{server.name} exited with code {server.proc.returncode} while waiting for {what}; "
                f"its output:\n{server.log_tail()}"
            )
        try:
            found = probe()
        except (OSError, ValueError, KeyError, TypeError, urllib.error.URLError) as exc:
            last_error = f"{type(exc).__name__}: {exc}"
        else:
            if found is not None:
                return found
        time.sleep(0.25)
    raise BenchError(
        f"{server.name}: no {what} within {START_TIMEOUT:g} s"
        + (f" (last error: {last_error})" if last_error else "")
        + f"; its output:\n{server.log_tail()}"
    )


def wait_for_service(server: Server, base: str) -> str:
    """Wait for /healthz, then /readyz 200, then an item in the list; return that item's code.

    /healthz first, with a short timeout (it touches nothing); /readyz only then, with a long one: a client
    that gives up on the worker's first database query (Sanic cancels the handler while tortoise opens its
    SQLite connection) leaves that connection wedged and every later query hanging."""
    deadline = time.monotonic() + START_TIMEOUT
    wait_until(
        server, deadline, lambda: True if http_get(base + "/healthz")[0] == 200 else None, "200 from /healthz"
    )
    wait_until(
        server,
        deadline,
        lambda: True if http_get(base + "/readyz", timeout=30)[0] == 200 else None,
        "200 from /readyz",
    )
    server.ready = True  # up: from now on it is stopped with TERM first

    def first_item() -> str | None:
        status, body = http_get(base + "/api/v1/items?limit=1")
        if status != 200:
            return None
        items = json.loads(body).get("items") or []
        return items[0]["code"] if items else None

    return str(wait_until(server, deadline, first_item, "item from /api/v1/items?limit=1"))


def wait_for_bare(server: Server, base: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    wait_until(server, deadline, lambda: True if http_get(base + "/")[0] == 200 else None, "200 from /")
    server.ready = True


def process_tree(root: int) -> list[int]:
    """root and all its descendants, from /proc/<pid>/stat."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])  # the command name may hold spaces and parentheses
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def largest_rss(root: int) -> dict[str, object]:
    sizes = {pid: kb for pid in process_tree(root) if (kb := rss_kb(pid)) is not None}
    if not sizes:
        raise BenchError(f"could not read VmRSS of pid {root} or its children")
    pid = max(sizes, key=sizes.__getitem__)
    return {"pid": pid, "rss_mb": round(sizes[pid] / 1024, 1), "processes": len(sizes)}


# ---------------------------------------------------------------------------------------------------------
# Database: a fresh one per run, prepared before the service starts
# ---------------------------------------------------------------------------------------------------------


def is_postgres(url: str) -> bool:
    return urllib.parse.urlsplit(url).scheme in ("postgres", "postgresql", "asyncpg")


def with_database(url: str, name: str) -> str:
    return urllib.parse.urlunsplit(urllib.parse.urlsplit(url)._replace(path="/" + name))


def _asyncpg_dsn(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    # asyncpg speaks postgresql://; tortoise's pool options (minsize, maxsize…) are not libpq's
    return urllib.parse.urlunsplit(parts._replace(scheme="postgresql", query=""))


async def _admin(url: str, statement: str) -> None:
    """Run one statement (CREATE / DROP DATABASE) on the server of `url`, connected to its database, or
    to "postgres" when that one does not exist."""
    import asyncpg

    last: Exception | None = None
    for database in dict.fromkeys([urllib.parse.urlsplit(url).path.lstrip("/") or "postgres", "postgres"]):
        try:
            conn = await asyncpg.connect(_asyncpg_dsn(with_database(url, database)), timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            last = exc
            continue
        try:
            await conn.execute(statement)
            return
        finally:
            await conn.close()
    raise BenchError(f"could not connect to PostgreSQL at {redact(url)}: {last}")


def create_bench_database(url: str) -> str:
    """A new, empty database next to the one named in `url` (which is never touched); its URL."""
    name = f"ywt_bench_{os.getpid()}"
    try:
        asyncio.run(_admin(url, f'DROP DATABASE IF EXISTS "{name}"'))
        asyncio.run(_admin(url, f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 — asyncpg's errors, reported in one line
        raise BenchError(f"could not create database {name}: {type(exc).__name__}: {exc}") from None
    return with_database(url, name)


def drop_bench_database(admin_url: str, bench_url: str) -> None:
    """Drop the database of `bench_url`, connected to the one `admin_url` names (or "postgres")."""
    name = urllib.parse.urlsplit(bench_url).path.lstrip("/")
    try:
        asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        print(f"dropped database {name}")
    except Exception as exc:  # noqa: BLE001
        print(f"bench: could not drop database {name}: {exc}", file=sys.stderr)


def prepare_database(python: str, env: dict[str, str], cases: int) -> None:
    """Migrate and seed with the CLI, then bulk-insert the queue's cases (in a child process: tortoise's
    state stays out of this one)."""
    steps = [
        ("migrations", [python, "-m", "api.cli", "migrate"]),
        ("demo catalogue", [python, "-m", "api.cli", "seed"]),
        (
            f"demo staff and {cases} cases",
            [python, str(Path(__file__).resolve()), "--insert-cases", str(cases)],
        ),
    ]
    for what, cmd in steps:
        started = time.monotonic()
        try:
            done = subprocess.run(
                cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
            )
        except subprocess.TimeoutExpired:
            raise BenchError(f"preparing the database ({what}) took more than 600 s") from None
        if done.returncode != 0:
            raise BenchError(f"preparing the database ({what}) failed:\n{done.stdout}{done.stderr}".rstrip())
        last = (done.stdout.strip().splitlines() or [""])[-1]
        print(f"  {what}: {time.monotonic() - started:.1f} s  {last[:150]}", flush=True)


# the spread of the prepared cases: status -> weight
_STATUS_WEIGHTS = {
    "submitted": 15, "returned": 3, "refused": 1, "accepted": 20, "in_review": 15, "suspended": 2,
    "approved": 5, "rejected": 2, "ready": 5, "delivered": 20, "closed": 10, "withdrawn": 2,
}  # fmt: skip


async def insert_cases(cases: int) -> str:
    """The demo staff (api.sandbox.people) and `cases` application rows spread over every point, community
    item, status and due date, all of one anonymous applicant; runs with the service's YWT_* environment."""
    import random
    from datetime import UTC, datetime, timedelta

    sys.path.insert(0, str(PROJECT_ROOT))
    from api.applications.states import CLOCK_RUNNING, DECIDED, NEVER_ACCEPTED
    from api.cli import seed_people
    from api.kit.config import load_settings
    from api.kit.db import close_database, open_database
    from models.applications import Application
    from models.catalog import ServiceItem, ServicePoint
    from models.identity import Account

    settings = load_settings()
    await open_database(settings)
    try:
        lines = await seed_people(settings)
        rng = random.Random(20260101)
        applicant = await Account.create(phone_index=None, roles="resident", real_name_level=2)
        points = [p for p in await ServicePoint.all().values("id", "level")]
        items = await ServiceItem.all().values("id", "department_id", "channels", "delivery_modes")
        by_level = {
            level: [i for i in items if ("community" if level == "community" else "counter") in i["channels"]]
            for level in ("community", "city")
        }
        statuses = list(_STATUS_WEIGHTS)
        weights = list(_STATUS_WEIGHTS.values())
        now = datetime.now(UTC)
        batch: list[Application] = []
        for n in range(cases):
            point = rng.choice(points)
            item = rng.choice(by_level["community" if point["level"] == "community" else "city"])
            status = rng.choices(statuses, weights)[0]
            created = now - timedelta(days=rng.uniform(0, 60))
            accepted = None if status in NEVER_ACCEPTED else created + timedelta(hours=rng.uniform(1, 48))
            due = accepted + timedelta(days=rng.uniform(1, 30)) if accepted else None
            decided = due - timedelta(days=rng.uniform(-2, 5)) if due and status in DECIDED else None
            deadline = "normal"
            if due and status in CLOCK_RUNNING:
                deadline = (
                    "overdue" if due < now else "warning" if due - now < timedelta(days=1) else "normal"
                )
            batch.append(
                Application(
                    number=f"BN{n:010d}",
                    applicant_id=applicant.id,
                    item_id=item["id"],
                    department_id=item["department_id"],
                    point_id=point["id"],
                    channel=rng.choice(("app", "wechat", "handheld")),
                    status=status,
                    form={},
                    delivery_mode=rng.choice(item["delivery_modes"] or ["pickup"]),
                    accepted_at=accepted,
                    due_at=due,
                    deadline_status=deadline,
                    decided_at=decided,
                    decision=("rejected" if status == "rejected" else "approved") if decided else None,
                    decided_on_time=(decided <= due) if decided and due else None,
                    created_at=created,
                    updated_at=created,
                )
            )
            if len(batch) == 5000:
                await Application.bulk_create(batch)
                batch = []
        if batch:
            await Application.bulk_create(batch)
        total = await Application.all().count()
    finally:
        await close_database()
    return f"{lines[0]}; {total} cases in the table"


# ---------------------------------------------------------------------------------------------------------
# Run
# ---------------------------------------------------------------------------------------------------------


def redact(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(":" + parts.password + "@", ":***@")
        return urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    return url


def service_env(args: argparse.Namespace, port: int, tmp: Path, database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "YWT_APP__MODE": "embedded",  # sandbox SMS gateway and endpoints, demo data
            "YWT_SERVER__PORT": str(port),
            "YWT_APP__DATA_DIR": str(tmp),
            "YWT_DATABASE__URL": database_url,
            # the production level: INFO, one access-log line per request, written to service.log
            "YWT_APP__LOG_LEVEL": "INFO",
            **BENCH_ENV,
        }
    )
    if args.redis_url:
        env["YWT_REDIS__URL"] = args.redis_url
    if args.workers:
        env["YWT_SERVER__WORKERS"] = str(args.workers)
    return env


def measure(wrk: str, scenario: Scenario, base: str, context: dict[str, str], seconds: int) -> dict:
    values = dict(context)
    headers = dict(scenario.headers)
    if scenario.setup is not None:
        prepared = scenario.setup(base)
        headers.update(prepared.headers)
        values.update(prepared.values)
    path = scenario.path.format(**{k: urllib.parse.quote(v, safe="") for k, v in values.items()})
    url = base + path
    script = BENCH_DIR / scenario.script if scenario.script else None
    if script is not None and not script.is_file():
        raise BenchError(f"{scenario.name}: wrk script not found: {script}")
    script_args = [arg.format(**values) for arg in scenario.script_args]
    print(f"  {scenario.name}: warm-up {WARMUP_SECONDS} s, then {seconds} s  {url}", flush=True)
    if scenario.writes:
        # wrk ends a run by closing its connections, requests in flight or not; a write cancelled that way
        # can leave the service unable to answer (see README), so writes warm up with a client that waits
        post_warmup(url, headers, values, WARMUP_SECONDS)
    else:
        run_wrk(wrk_command(wrk, url, WARMUP_SECONDS, headers, script, script_args), WARMUP_SECONDS)
    cmd = wrk_command(wrk, url, seconds, headers, script, script_args)
    result = parse_wrk(run_wrk(cmd, seconds))
    return {"url": url, "wrk": " ".join(cmd), **asdict(result), "flagged": result.flagged}


def post_warmup(url: str, headers: dict[str, str], values: dict[str, str], seconds: float) -> None:
    """POST values["body"] for `seconds` from a few threads, each waiting for its answer, a fresh
    Idempotency-Key each time."""
    import threading

    body = json.loads(values["body"])
    stop = time.monotonic() + seconds
    failures: list[str] = []

    def worker(n: int) -> None:
        i = 0
        while time.monotonic() < stop and not failures:
            i += 1
            key = {"Idempotency-Key": f"{values['nonce']}-warm-{n}-{i}"}
            status, answer = http_json("POST", url, body, {**headers, **key})
            if status >= 300:
                failures.append(f"HTTP {status} {json.dumps(answer, ensure_ascii=False)[:300]}")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise BenchError(f"warm-up POST {url}: {failures[0]}")


def still_answers(base: str) -> bool:
    """The service answers /readyz within 15 s (a client of its own that waits, unlike wrk)."""
    try:
        return http_get(base + "/readyz", timeout=15)[0] == 200
    except (OSError, urllib.error.URLError):
        return False


def judge(scenario: Scenario, row: dict, bare_rps: float | None, dialect: str) -> None:
    ratio = row["requests_per_sec"] / bare_rps if bare_rps and scenario.target != "bare" else None
    row["ratio_vs_bare"] = round(ratio, 3) if ratio is not None else None
    row["goal"] = scenario.goal_text()
    if scenario.goal_on and scenario.goal_on != dialect:
        row["met"] = None  # judged on another database only
        return
    checks = []
    if scenario.goal_rps is not None:
        checks.append(row["requests_per_sec"] >= scenario.goal_rps)
    if scenario.goal_ratio is not None:
        checks.append(ratio is not None and ratio >= scenario.goal_ratio)
    if scenario.goal_p99_ms is not None:
        checks.append(row["p99_ms"] is not None and row["p99_ms"] <= scenario.goal_p99_ms)
    row["met"] = all(checks) if checks else None


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(rows: list[dict], rss: dict | None, bare_rss: dict | None) -> None:
    header = ["scenario", "req/s", "p50 ms", "p99 ms", "ratio vs bare", "goal", "met"]
    lines = []
    for row in rows:
        if "error" in row:
            lines.append([row["scenario"], "error", "-", "-", "-", row.get("goal", "-"), "could not run"])
            continue
        met = {True: "met", False: "NOT MET", None: "-"}[row["met"]]
        lines.append(
            [
                row["scenario"]
                + (" (!)" if row["flagged"] else "")
                + (" (stuck)" if row.get("stuck_after") else ""),
                fmt(row["requests_per_sec"], ".0f"),
                fmt(row["p50_ms"], ".2f"),
                fmt(row["p99_ms"], ".2f"),
                fmt(row["ratio_vs_bare"], ".2f"),
                row["goal"],
                met,
            ]
        )
    widths = [max(len(str(c)) for c in col) for col in zip(header, *lines, strict=False)]
    right = {1, 2, 3, 4}

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    print()
    print(line(header))
    print(line(["-" * w for w in widths]))
    for cells in lines:
        print(line(cells))
    for row in rows:
        if "error" in row:
            print(f"\n{row['scenario']}: could not run: {row['error']}")
        elif row["flagged"]:
            errors = ", ".join(f"{k} {v}" for k, v in row["socket_errors"].items() if v) or "none"
            print(f"(!) {row['scenario']}: {row['non_2xx']} non-2xx/3xx responses, socket errors: {errors}")
        if row.get("stuck_after"):
            print(
                f"(stuck) {row['scenario']}: the service stopped answering after this run and was restarted"
            )
    if rss is not None:
        verdict = "met" if rss["met"] else "NOT MET"
        print(
            f"\nservice RSS (largest of {rss['processes']} process(es), pid {rss['pid']}, before the write "
            f"scenarios): {rss['rss_mb']:.1f} MiB   goal <= {RSS_GOAL_MB:g} MiB: {verdict}"
        )
        if rss.get("after_all_mb") is not None:
            print(f"service RSS after all scenarios: {rss['after_all_mb']:.1f} MiB")
    if bare_rss is not None:
        print(f"bare app RSS: {bare_rss['rss_mb']:.1f} MiB (for reference)")


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="wrk benchmark of the service against a bare Sanic app")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run (default 10)")
    parser.add_argument(
        "--cases",
        type=int,
        default=DEFAULT_CASES,
        help=f"application rows inserted before the start, for the queue (default {DEFAULT_CASES})",
    )
    parser.add_argument("--only", help="comma-separated scenario names (default: all; bare is always run)")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server to run on: the bench creates its own database there (ywt_bench_<pid>) "
        "and drops it afterwards; the database named in the URL is only connected to. Default: a temp "
        "SQLite file",
    )
    parser.add_argument("--redis-url", help="Redis for the service (default: config, i.e. memory://)")
    parser.add_argument("--workers", type=int, help="service workers (needs a real --redis-url to be > 1)")
    parser.add_argument("--insert-cases", type=int, help=argparse.SUPPRESS)  # the child of prepare_database
    args = parser.parse_args(argv)
    if args.insert_cases is not None:
        print(asyncio.run(insert_cases(args.insert_cases)))
        return 0
    if not 1 <= args.duration <= 600:
        parser.error("--duration must be between 1 and 600 seconds")
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    if not 0 <= args.cases <= 5_000_000:
        parser.error("--cases must be between 0 and 5000000")
    if args.database_url and not is_postgres(args.database_url):
        parser.error("--database-url must be a postgres://… URL (the default is a temp SQLite file)")
    scenarios = SCENARIOS
    if args.only:
        wanted = {name.strip() for name in args.only.split(",") if name.strip()}
        unknown = wanted - {s.name for s in SCENARIOS}
        if unknown:
            parser.error(f"--only: unknown scenario(s) {', '.join(sorted(unknown))}")
        scenarios = [s for s in SCENARIOS if s.name in wanted or s.name == "bare"]
    # read-only scenarios first, so that writes do not change what they read
    scenarios = [s for s in scenarios if not s.writes] + [s for s in scenarios if s.writes]

    # a TERM to this script unwinds through the finally blocks like Ctrl-C does
    signal.signal(signal.SIGTERM, _interrupted)

    try:
        wrk = ensure_wrk()
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2

    python = sys.executable
    tmp = Path(tempfile.mkdtemp(prefix="ywt-bench-"))
    servers: list[Server] = []
    failed = False
    bench_db: str | None = None
    try:
        if args.database_url:
            bench_db = create_bench_database(args.database_url)
            database_url = bench_db
            print(
                f"created database {urllib.parse.urlsplit(bench_db).path.lstrip('/')} on {redact(args.database_url)}"
            )
        else:
            database_url = f"sqlite://{tmp}/bench.sqlite3"
        dialect = "postgres" if is_postgres(database_url) else "sqlite"
        service_port, bare_port = free_port(), free_port()
        env = service_env(args, service_port, tmp, database_url)
        print(f"preparing {redact(database_url)}", flush=True)
        prepare_database(python, env, args.cases)
        service = Server("service", [python, "-m", "api.cli", "serve"], env, tmp / "service.log")
        servers.append(service)
        bare = Server(
            "bare",
            [python, str(BENCH_DIR / "bare_app.py"), "--port", str(bare_port)],
            dict(os.environ),
            tmp / "bare.log",
        )
        servers.append(bare)
        bases = {"service": f"http://{HOST}:{service_port}", "bare": f"http://{HOST}:{bare_port}"}
        wait_for_bare(bare, bases["bare"])
        code = wait_for_service(service, bases["service"])
        print(f"both up; item scenario uses code {code}", flush=True)

        context = {"code": code}
        rows: list[dict] = []
        rss_read = None
        for scenario in scenarios:
            if scenario.writes and rss_read is None:
                rss_read = _try_rss(service.pid)
            row: dict = {"scenario": scenario.name, "target": scenario.target}
            try:
                row.update(measure(wrk, scenario, bases[scenario.target], context, args.duration))
            except BenchError as exc:
                failed = True
                row["error"] = str(exc)
                row["goal"] = scenario.goal_text()
                print(f"  {scenario.name}: could not run: {exc}", file=sys.stderr)
            rows.append(row)
            if scenario.target == "service" and service.alive() and not still_answers(bases["service"]):
                # reported, and a fresh process for the scenarios that follow
                row["stuck_after"] = True
                print(
                    f"  {scenario.name}: the service no longer answers /readyz after the run: restarting it",
                    file=sys.stderr,
                    flush=True,
                )
                service.stop()
                servers.remove(service)
                service = Server("service", [python, "-m", "api.cli", "serve"], env, tmp / "service2.log")
                servers.append(service)
                wait_for_service(service, bases["service"])
        for server in (service, bare):
            if not server.alive():
                failed = True
                print(
                    f"{server.name} died during the runs; its output:\n{server.log_tail()}", file=sys.stderr
                )

        bare_rps = next(
            (r["requests_per_sec"] for r in rows if r["scenario"] == "bare" and "error" not in r), None
        )
        for scenario, row in zip(scenarios, rows, strict=True):
            if "error" not in row:
                judge(scenario, row, bare_rps, dialect)

        rss = bare_rss = None
        try:
            # the goal is about serving: read before the write scenarios filled in-process caches
            # (with memory:// Redis, every idempotency answer is kept in the service process)
            rss = rss_read or largest_rss(service.pid)
            rss["goal_mb"] = RSS_GOAL_MB
            rss["met"] = rss["rss_mb"] <= RSS_GOAL_MB
            rss["after_all_mb"] = largest_rss(service.pid)["rss_mb"]
            bare_rss = largest_rss(bare.pid)
        except BenchError as exc:
            failed = True
            print(f"bench: {exc}", file=sys.stderr)

        print_table(rows, rss, bare_rss)
        report = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "duration_s": args.duration,
            "warmup_s": WARMUP_SECONDS,
            "threads": THREADS,
            "connections": CONNECTIONS,
            "database_url": redact(database_url),
            "cases_prepared": args.cases,
            "redis_url": redact(args.redis_url) if args.redis_url else None,
            "workers": args.workers,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "scenarios": rows,
            "service_rss": rss,
            "bare_rss": bare_rss,
        }
        RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
        RESULTS_FILE.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"\nwritten to {RESULTS_FILE}")
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    finally:
        for server in reversed(servers):
            server.stop()
        if bench_db is not None:
            drop_bench_database(args.database_url, bench_db)
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


def _try_rss(pid: int) -> dict | None:
    try:
        return largest_rss(pid)
    except BenchError:
        return None


if __name__ == "__main__":
    raise SystemExit(main())
