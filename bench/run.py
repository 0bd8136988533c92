"""Benchmark: wrk against the real service and against a bare Sanic app, in one run.

.venv/bin/python bench/run.py [--duration 10] [--runs 3] [--workers 1[,2…]] [--cases 100000] [--only a,b]
                               [--database-url URL] [--redis-url URL]

Prepares a fresh database (a temp SQLite file, or a new PostgreSQL database `ywt_bench_<pid>` created on the
server of --database-url and dropped afterwards): migrations, the demo catalogue, the demo staff and --cases
application rows bulk-inserted for the grid worker queue. Starts bench/bare_app.py, then, for each worker
count of --workers, a fresh `python -m api.cli serve` on that database at the production log level (INFO,
access log on, written to a file in the temp dir). Each of --runs rounds measures every scenario (writes last)
between two runs of bare: each run a 2 s warm-up, then `wrk -t2 -c64 -d<duration>s --timeout=10s --latency`;
a ratio is a scenario's req/s over the mean of the two bare runs beside it. The report gives, per worker count and scenario, the median
req/s, p50, p99 and ratio and the spread (min–max) across rounds, judges the goals on the medians, reads the
resident memory of the service, prints a table and writes bench/results/latest.json (with every round's raw
figures) and bench/results/latest.md. It reports; it does not assert: exit 0 even when a goal is missed,
non-zero only when something could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
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
from typing import Literal

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
RESULTS_FILE = BENCH_DIR / "results" / "latest.json"
MARKDOWN_FILE = BENCH_DIR / "results" / "latest.md"
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
    # the licence scenarios measure the verification and the presentation, not their rate limits (which still
    # run: two moving-window hits per verification, one per presentation)
    "YWT_LICENCES__VERIFY_PER_MINUTE": "100000000",
    "YWT_LICENCES__VERIFY_PER_IP_PER_MINUTE": "100000000",
    "YWT_LICENCES__PRESENTATIONS_PER_HOUR": "100000000",
}
CLERK_PHONE = "13700000101"  # the first demo window clerk


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


# A setup hook receives the target's base URL (http://127.0.0.1:PORT) and the seconds of the measured run
# (the warm-up, WARMUP_SECONDS, comes before it) and returns Prepared, e.g. signs in and returns
# {"Authorization": "Bearer …"}, or writes the requests of the run to a file. It runs once per scenario and
# round, after the service is ready, before the warm-up.
SetupHook = Callable[[str, int], Prepared]


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str  # may hold {placeholders}: {code} (an item code found at start) and any setup hook values
    target: str = "service"  # "service" or "bare"
    headers: dict[str, str] = field(default_factory=dict)  # sent with every request (wrk -H)
    script: str | None = None  # a wrk Lua script, relative to bench/ (POST bodies, per-request headers)
    # passed to the script's init(args); {placeholders} are filled in, and {phase}: "warmup" for the warm-up,
    # "run" for the measured run (wechat_callback: a file of requests for each, no MsgId sent twice)
    script_args: tuple[str, ...] = ()
    setup: SetupHook | None = None
    goal_ratio: float | None = None  # req/s at least this × the bare app's req/s (of the same round)
    goal_p99_ms: float | None = None  # 99th percentile latency at most this
    # req/s at least this; a mapping {"postgres": 600, "sqlite": 300} gives one goal per database kind
    # (a kind missing from it is reported, not judged)
    goal_rps: float | dict[str, float] | None = None
    # changes the database or keeps something in Redis: measured after the read-only scenarios of each round
    writes: bool = False
    # how the 2 s warm-up runs: "wrk", the scenario's own wrk command; "waiting", Python clients that each
    # wait for their answer (post_warmup: values["body"] POSTed as JSON with a fresh Idempotency-Key): a
    # transaction cancelled by wrk's closing can leave an SQLite worker stuck (README, "Known problem")
    warmup: Literal["wrk", "waiting"] = "wrk"

    def rps_goal(self, dialect: str) -> float | None:
        if isinstance(self.goal_rps, dict):
            return self.goal_rps.get(dialect)
        return self.goal_rps

    def judged_on(self, dialect: str) -> bool:
        """False when the only goal is a req/s goal given for other database kinds."""
        has_other = self.goal_ratio is not None or self.goal_p99_ms is not None
        return has_other or self.rps_goal(dialect) is not None

    def goal_text(self, dialect: str) -> str:
        parts = []
        rps = self.rps_goal(dialect)
        if rps is not None:
            parts.append(f">={rps:g}/s" + (f" (on {dialect})" if isinstance(self.goal_rps, dict) else ""))
        elif isinstance(self.goal_rps, dict):
            parts.append(
                "; ".join(f">={v:g}/s on {k}" for k, v in self.goal_rps.items()) + f" (not on {dialect})"
            )
        if self.goal_ratio is not None:
            parts.append(f">={self.goal_ratio:g}x bare")
        if self.goal_p99_ms is not None:
            parts.append(f"p99<={self.goal_p99_ms:g}ms")
        return ", ".join(parts) or "-"


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


def signed_in_resident(base: str, seconds: int) -> Prepared:
    tokens = sms_sign_in(base, ME_PHONE)
    expect("GET /api/v1/me", *http_json("GET", base + "/api/v1/me", headers=bearer(tokens)), 200)
    return Prepared(headers=bearer(tokens))


def queue_grid_worker(base: str, seconds: int) -> Prepared:
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


def _level_2_zhang(base: str) -> dict:
    """张三 signed in, his real name verified, with a token that carries level 2: the token answer."""
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
    return tokens


def verified_zhang(base: str, seconds: int) -> Prepared:
    """张三 signed in, real name verified, and a token that carries level 2; one submission checked."""
    tokens = _level_2_zhang(base)
    headers = {**bearer(tokens), "Idempotency-Key": f"bench-check-{os.getpid()}-{time.time_ns()}"}
    expect("a first submission", *http_json("POST", base + "/api/v1/applications", SUBMIT_BODY, headers), 201)
    return Prepared(
        headers=bearer(tokens),
        values={
            "nonce": f"{os.getpid():x}{time.time_ns():x}",
            "body": json.dumps(SUBMIT_BODY, ensure_ascii=False),
        },
    )


def _zhang_licence(base: str) -> tuple[dict, int]:
    """张三 verified (level 2) and the id of his ID card among his e-licences."""
    tokens = _level_2_zhang(base)
    listed = expect(
        "张三's licences", *http_json("GET", base + "/api/v1/licences", headers=bearer(tokens)), 200
    )
    card = next((i for i in listed.get("items") or [] if i["type"] == "id_card"), None)
    if card is None:
        raise BenchError("张三 has no ID card in the e-licence sandbox")
    return tokens, card["id"]


PRESENT_BODY = {"fields": ["holder", "number", "validity"]}


def licence_holder(base: str, seconds: int) -> Prepared:
    """张三 presenting his ID card (one presentation checked)."""
    tokens, licence_id = _zhang_licence(base)
    url = f"{base}/api/v1/licences/{licence_id}/presentations"
    expect("a presentation", *http_json("POST", url, PRESENT_BODY, bearer(tokens)), 201)
    return Prepared(
        headers=bearer(tokens), values={"licence": str(licence_id), "body": json.dumps(PRESENT_BODY)}
    )


def licence_verifier(base: str, seconds: int) -> Prepared:
    """A window clerk verifying one presentation of 张三's ID card (good for 3 minutes: the warm-up and the
    run fit in it); each verification is one audit row."""
    tokens, licence_id = _zhang_licence(base)
    url = f"{base}/api/v1/licences/{licence_id}/presentations"
    shown = expect("a presentation", *http_json("POST", url, PRESENT_BODY, bearer(tokens)), 201)
    if seconds + WARMUP_SECONDS > 170:
        raise BenchError("licence_verify: a presentation lasts 180 s; run it for at most 160 s")
    grant = {"grant_type": "password", "phone": CLERK_PHONE, "password": DEMO_PASSWORD, "channel": "app"}
    status, clerk = http_json("POST", base + "/api/v1/auth/token", grant)
    expect(f"window clerk {CLERK_PHONE} sign-in (demo staff seeded?)", status, clerk, 200)
    body = {"token": shown["token"]}
    answer = expect(
        "a verification", *http_json("POST", base + "/api/v1/licence-verifications", body, bearer(clerk)), 200
    )
    if answer.get("valid") is not True:
        raise BenchError(f"the bench presentation does not verify: {answer}")
    return Prepared(headers=bearer(clerk), values={"body": json.dumps(body)})


# WeChat's callback in safe mode, as WeChat's servers make it (api/wechat/callback.py checks every part):
# ?signature=sha1(sort(token, timestamp, nonce))&timestamp&nonce&openid&encrypt_type=aes
# &msg_signature=sha1(sort(token, timestamp, nonce, Encrypt)), the body <xml><ToUserName/><Encrypt/></xml>,
# Encrypt = AES-256-CBC of the message under the EncodingAESKey (wechatpy's PrpCrypto). The message: "进度"
# from an openid bound to no account: the service remembers its MsgId in Redis (de-duplication), looks the
# binding up (one database read) and answers an encrypted news article ("please bind first").
WECHAT_CALLBACK = "/api/v1/wechat/callback"
WECHAT_ACCOUNT = "gh_0123456789ab"  # the official account's own id (ToUserName)
WECHAT_OPENIDS = 8  # senders, "o" + 27 URL-safe characters, fresh each round: bound to no account
# requests prepared per second of warm-up and of run: several times what the service answers on this path,
# so that wrk never runs out (if it does, the script sends some again and the run is flagged: those MsgIds
# are answered "success" by the de-duplication and measure it, not the handling)
WECHAT_RATE = 5_000
WECHAT_MARGIN = 30  # seconds kept between the last prepared request's timestamp and the server's limit


@dataclass(frozen=True)
class CallbackKeys:
    """The official account's callback settings ([wechat] of config.toml, YWT_WECHAT__* overrides)."""

    token: str
    encoding_aes_key: str
    app_id: str
    seen_ttl: int = 300  # the server refuses a timestamp more than this many seconds from its clock


def callback_keys() -> CallbackKeys:
    """The keys the service runs with: it is started with this process's environment and config.toml."""
    sys.path.insert(0, str(PROJECT_ROOT))
    from api.kit.config import load_settings

    wechat = load_settings().wechat
    if not wechat.token or not wechat.encoding_aes_key:
        raise BenchError("wechat_callback: [wechat] token and encoding_aes_key are not configured")
    if wechat.callback_mode == "plain":
        raise BenchError("wechat_callback: [wechat] callback_mode is plain: the service refuses safe mode")
    return CallbackKeys(wechat.token, wechat.encoding_aes_key, wechat.app_id, wechat.seen_ttl)


def wechat_openid() -> str:
    return "o" + secrets.token_urlsafe(20)  # 20 bytes: 27 characters


def wechat_text(openid: str, msgid: int, at: int, content: str = "进度") -> str:
    return (
        f"<xml><ToUserName><![CDATA[{WECHAT_ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]>"
        f"</FromUserName><CreateTime>{at}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msgid}</MsgId></xml>"
    )


class CallbackSigner:
    """Seals messages as WeChat does for one official account's keys."""

    def __init__(self, keys: CallbackKeys) -> None:
        from wechatpy.crypto import PrpCrypto, WeChatCrypto

        self.keys = keys
        self.crypto = WeChatCrypto(keys.token, keys.encoding_aes_key, keys.app_id)
        self._prp = PrpCrypto(self.crypto.key)

    @staticmethod
    def sign(*parts: str) -> str:
        from wechatpy.utils import WeChatSigner

        signer = WeChatSigner()
        signer.add_data(*parts)
        return str(signer.signature)

    def request(self, openid: str, msgid: int, now: int | None = None) -> tuple[str, str]:
        """(path with query, body) of one text message in safe mode."""
        at = int(time.time()) if now is None else now
        timestamp, nonce = str(at), str(secrets.randbelow(10**10))
        encrypted = self._prp.encrypt(wechat_text(openid, msgid, at), self.keys.app_id).decode()
        query = {
            "signature": self.sign(self.keys.token, timestamp, nonce),
            "timestamp": timestamp,
            "nonce": nonce,
            "openid": openid,
            "encrypt_type": "aes",
            "msg_signature": self.sign(self.keys.token, timestamp, nonce, encrypted),
        }
        body = (
            f"<xml><ToUserName><![CDATA[{WECHAT_ACCOUNT}]]></ToUserName>"
            f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
        )
        return f"{WECHAT_CALLBACK}?{urllib.parse.urlencode(query)}", body

    def lines(self, count: int, first_msgid: int, openids: list[str]) -> list[str]:
        """`count` requests, "path-with-query TAB body", MsgIds first_msgid, first_msgid + 1, …, the senders
        taken in turn."""
        out = []
        for n in range(count):
            path, body = self.request(openids[n % len(openids)], first_msgid + n)
            out.append(f"{path}\t{body}")
        return out


def http_post_xml(url: str, body: str) -> tuple[int, str]:
    """One POST of an XML body to 127.0.0.1; (status, body)."""
    if urllib.parse.urlsplit(url).hostname != HOST:
        raise BenchError(f"refusing a non-local target: {url}")
    request = urllib.request.Request(  # noqa: S310
        url, data=body.encode(), method="POST", headers={"Content-Type": "text/xml"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:  # noqa: S310 — http://127.0.0.1 only
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


_requests_dir: Path | None = None


def requests_dir() -> Path:
    """A temp dir of this process for the prepared requests, removed when it exits."""
    global _requests_dir
    if _requests_dir is None:
        _requests_dir = Path(tempfile.mkdtemp(prefix="ywt-bench-wechat-"))
        atexit.register(shutil.rmtree, _requests_dir, ignore_errors=True)
    return _requests_dir


def wechat_callback(base: str, seconds: int) -> Prepared:
    """One request checked (200, an encrypted reply that opens), then the warm-up's and the run's requests
    signed now, each with a MsgId of its own, into warmup.tsv and run.tsv (wechat_callback.lua)."""
    keys = callback_keys()
    if WARMUP_SECONDS + seconds + WECHAT_MARGIN > keys.seen_ttl:
        raise BenchError(
            f"wechat_callback: the requests are signed before the warm-up and the service refuses a "
            f"timestamp more than {keys.seen_ttl} s old: --duration at most "
            f"{keys.seen_ttl - WARMUP_SECONDS - WECHAT_MARGIN} s for this scenario"
        )
    signer = CallbackSigner(keys)
    openids = [wechat_openid() for _ in range(WECHAT_OPENIDS)]
    # nanoseconds since the epoch: a round's MsgIds start after the last one of the round before (preparing a
    # request takes far longer than 1 ns), and after a previous bench run's (a Redis shared between runs)
    first = time.time_ns()
    path, body = signer.request(openids[0], first)
    status, answer = http_post_xml(base + path, body)
    if status != 200 or "<Encrypt>" not in answer:
        raise BenchError(f"wechat_callback: a safe-mode message: HTTP {status} {answer[:400]!r}")
    try:
        import xmltodict

        envelope = xmltodict.parse(answer)["xml"]
        signer.crypto.decrypt_message(
            answer, envelope["MsgSignature"], envelope["TimeStamp"], envelope["Nonce"]
        )
    except Exception as exc:  # noqa: BLE001 — wechatpy's and xmltodict's errors, reported with the answer
        raise BenchError(
            f"wechat_callback: the reply does not open ({type(exc).__name__}: {exc}): {answer[:400]!r}"
        ) from None
    started = time.monotonic()
    folder = requests_dir()
    warmup = WECHAT_RATE * WARMUP_SECONDS
    run = WECHAT_RATE * seconds
    lines = signer.lines(warmup + run, first + 1, openids)
    (folder / "warmup.tsv").write_text("\n".join(lines[:warmup]) + "\n", encoding="utf-8")
    (folder / "run.tsv").write_text("\n".join(lines[warmup:]) + "\n", encoding="utf-8")
    print(
        f"  wechat_callback: {warmup} + {run} requests signed in {time.monotonic() - started:.1f} s",
        flush=True,
    )
    return Prepared(values={"requests": str(folder)})


SCENARIOS: list[Scenario] = [
    Scenario("bare", "/", target="bare"),
    # the goals of issue 9, judged on the medians of the rounds
    Scenario("item", "/api/v1/items/{code}", goal_ratio=0.6, goal_p99_ms=25),
    Scenario("points_near", "/api/v1/points?near=27.8175,114.9170", goal_ratio=0.4, goal_p99_ms=25),
    Scenario("me", "/api/v1/me", setup=signed_in_resident, goal_ratio=0.25, goal_p99_ms=50),
    Scenario(
        "queue",
        "/api/v1/work/applications?point_code={point}&limit=20",
        setup=queue_grid_worker,
        goal_ratio=0.08,
        goal_p99_ms=100,
    ),
    Scenario(
        "submit",
        "/api/v1/applications",
        script="submit.lua",
        script_args=("{nonce}", "{body}"),
        setup=verified_zhang,
        goal_rps={"postgres": 600, "sqlite": 300},
        writes=True,
        warmup="waiting",
    ),
    # writes: a de-duplication key per message in Redis (with memory:// Redis, kept in the service process:
    # after the RSS reading, like submit's idempotency answers); nothing in the database
    Scenario(
        "wechat_callback",
        WECHAT_CALLBACK,
        script="wechat_callback.lua",
        script_args=("{requests}/{phase}.tsv", str(THREADS)),
        setup=wechat_callback,
        goal_ratio=0.2,
        goal_p99_ms=100,
        writes=True,
    ),
    # issue 12: a verification (token, status from the Redis copy of the last read, an audit row), and a
    # presentation (token and its QR code as SVG)
    Scenario(
        "licence_verify",
        "/api/v1/licence-verifications",
        script="post.lua",
        script_args=("{body}",),
        setup=licence_verifier,
        goal_rps={"postgres": 1000},
        writes=True,
    ),
    Scenario(
        "licence_present",
        "/api/v1/licences/{licence}/presentations",
        script="post.lua",
        script_args=("{body}",),
        setup=licence_holder,
        goal_rps={"postgres": 200},
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
    # requests a script sent a second time because it ran out of prepared ones (wechat_callback.lua's
    # "Requests prepared: P, sent: S, reused: R" line)
    reused: int = 0

    @property
    def flagged(self) -> bool:
        return self.non_2xx > 0 or any(self.socket_errors.values()) or self.reused > 0


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
    reused = re.search(r"^Requests prepared: \d+, sent: \d+, reused: (\d+)", output, re.M)
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
        reused=int(reused.group(1)) if reused else 0,
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


def service_env(
    redis_url: str | None, workers: int, port: int, tmp: Path, database_url: str
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "YWT_APP__MODE": "embedded",  # sandbox SMS gateway and endpoints, demo data
            "YWT_SERVER__PORT": str(port),
            "YWT_APP__DATA_DIR": str(tmp),
            "YWT_DATABASE__URL": database_url,
            # the production level: INFO, one access-log line per request, written to service.log
            "YWT_APP__LOG_LEVEL": "INFO",
            "YWT_SERVER__WORKERS": str(workers),
            **BENCH_ENV,
        }
    )
    if redis_url:
        env["YWT_REDIS__URL"] = redis_url
    return env


def measure(wrk: str, scenario: Scenario, base: str, context: dict[str, str], seconds: int) -> dict:
    values = dict(context)
    headers = dict(scenario.headers)
    if scenario.setup is not None:
        prepared = scenario.setup(base, seconds)
        headers.update(prepared.headers)
        values.update(prepared.values)
    path = scenario.path.format(**{k: urllib.parse.quote(v, safe="") for k, v in values.items()})
    url = base + path
    script = BENCH_DIR / scenario.script if scenario.script else None
    if script is not None and not script.is_file():
        raise BenchError(f"{scenario.name}: wrk script not found: {script}")
    print(f"  {scenario.name}: warm-up {WARMUP_SECONDS} s, then {seconds} s  {url}", flush=True)
    if scenario.warmup == "waiting":
        # wrk ends a run by closing its connections, requests in flight or not; a transaction cancelled that
        # way can leave the service unable to answer (see README), so submit warms up with clients that wait
        post_warmup(url, headers, values, WARMUP_SECONDS)
    else:
        warm_args = script_arguments(scenario, values, "warmup")
        run_wrk(wrk_command(wrk, url, WARMUP_SECONDS, headers, script, warm_args), WARMUP_SECONDS)
    cmd = wrk_command(wrk, url, seconds, headers, script, script_arguments(scenario, values, "run"))
    result = parse_wrk(run_wrk(cmd, seconds))
    return {"url": url, "wrk": " ".join(cmd), **asdict(result), "flagged": result.flagged}


def script_arguments(scenario: Scenario, values: dict[str, str], phase: str) -> list[str]:
    """The scenario's script_args with its {placeholders} and {phase} ("warmup" or "run") filled in."""
    return [arg.format(**{**values, "phase": phase}) for arg in scenario.script_args]


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


# ---------------------------------------------------------------------------------------------------------
# Rounds, medians, goals, reports (pure functions: tests/bench/test_run.py)
# ---------------------------------------------------------------------------------------------------------


def parse_workers(text: str) -> list[int]:
    """ "1,2" -> [1, 2]: each a worker count from 1 to 64, in the order given, no repeats."""
    counts: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or not 1 <= int(part) <= 64:
            raise ValueError(f"not a worker count (1 to 64): {part!r}")
        if int(part) not in counts:
            counts.append(int(part))
    if not counts:
        raise ValueError("no worker count given")
    return counts


def redis_kind(url: str | None) -> str:
    """ "memory" (the config default: fakeredis inside each process) or the URL's scheme ("redis", …)."""
    if not url:
        return "memory"
    return urllib.parse.urlsplit(url).scheme or "memory"


def empty_redis(url: str) -> None:
    """FLUSHDB the Redis database the service is given: the fresh database starts its ids at 1, and what a
    previous run left there would not be this run's (an account's version from another database is higher
    than this one's, so its cached copy would never be used and every signed-in request would read the
    database). Only a Redis on 127.0.0.1 is emptied; give the bench a database of its own (/14)."""
    import redis

    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "redis" or parts.hostname not in (HOST, "localhost"):
        raise BenchError(
            f"the bench empties the Redis it is given, so it takes only redis://{HOST}:PORT/N "
            f"(got {redact(url)})"
        )
    if parts.path.strip("/") in ("", "0"):
        raise BenchError(
            f"refusing to empty Redis database 0 (usually somebody's own): give the bench a database of "
            f"its own, e.g. redis://{HOST}:6379/14 (got {redact(url)})"
        )
    client = redis.Redis.from_url(url, socket_timeout=10)
    try:
        client.flushdb()
    except redis.RedisError as exc:
        raise BenchError(f"could not empty Redis {redact(url)}: {exc}") from None
    finally:
        client.close()
    print(f"emptied Redis {redact(url)}")


def is_shared_redis(url: str | None) -> bool:
    """A Redis that several processes share (what more than one worker needs)."""
    return redis_kind(url) in ("redis", "rediss", "unix")


def with_ratios(round_rows: list[dict]) -> None:
    """Each row's req/s over the bare app's req/s measured next to it in the same round (rows of one round and
    one worker count, in the order they ran): the mean of the bare runs just before and just after it, or
    the one of them that ran. Bare moves by up to 30 % from one minute to the next on a shared VM; a bare
    run at the start of the round only was a ceiling from another minute for the scenarios measured last.
    None for bare itself and when no bare run beside it ran."""
    for index, row in enumerate(round_rows):
        row["ratio_vs_bare"] = None
        if "error" in row or row.get("target") == "bare":
            continue
        beside = [
            r["requests_per_sec"]
            for r in (_neighbour(round_rows, index, -1), _neighbour(round_rows, index, 1))
            if r is not None and "error" not in r
        ]
        if beside:
            row["ratio_vs_bare"] = round(row["requests_per_sec"] / statistics.fmean(beside), 3)


def _neighbour(rows: list[dict], index: int, step: int) -> dict | None:
    """The row next to rows[index] in the direction of `step` when it is a bare run, else None."""
    at = index + step
    if 0 <= at < len(rows) and rows[at].get("target") == "bare":
        return rows[at]
    return None


def round_order(scenarios: list[Scenario]) -> list[Scenario]:
    """The runs of one round: bare before every scenario and once after the last, so that each ratio is
    taken against the bare runs on either side of it."""
    bare = next(s for s in scenarios if s.target == "bare")
    order: list[Scenario] = []
    for scenario in scenarios:
        if scenario.target != "bare":
            order += [bare, scenario]
    return order + [bare]


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _spread(values: list[float | None]) -> list[float] | None:
    present = [v for v in values if v is not None]
    return [min(present), max(present)] if present else None


def summarise(rows: list[dict]) -> dict:
    """The rounds of one scenario at one worker count -> medians and spread (min, max) across the rounds that
    ran; "error" when none did. A round's p50/p99 are wrk's; their median is the median over rounds."""
    ran = [r for r in rows if "error" not in r]
    first = rows[0]
    summary: dict = {
        "workers": first.get("workers"),
        "scenario": first["scenario"],
        "target": first.get("target"),
        "rounds": len(rows),
        "rounds_ok": len(ran),
    }
    if not ran:
        summary["error"] = next(r["error"] for r in rows if "error" in r)
        return summary
    rps = [r["requests_per_sec"] for r in ran]
    ratios = [r.get("ratio_vs_bare") for r in ran]
    median_rps = _median(rps)
    median_ratio = _median(ratios)
    median_p50 = _median([r.get("p50_ms") for r in ran])
    median_p99 = _median([r.get("p99_ms") for r in ran])
    summary.update(
        {
            "requests_per_sec": round(median_rps, 1) if median_rps is not None else None,
            "requests_per_sec_spread": _spread(rps),
            "p50_ms": round(median_p50, 2) if median_p50 is not None else None,
            "p99_ms": round(median_p99, 2) if median_p99 is not None else None,
            "p99_ms_spread": _spread([r.get("p99_ms") for r in ran]),
            "ratio_vs_bare": round(median_ratio, 3) if median_ratio is not None else None,
            "ratio_vs_bare_spread": _spread(ratios),
            "flagged": any(r.get("flagged") for r in ran),
            "non_2xx": sum(r.get("non_2xx", 0) for r in ran),
            "reused": sum(r.get("reused", 0) for r in ran),
            "socket_errors": {
                k: sum(r.get("socket_errors", {}).get(k, 0) for r in ran)
                for k in ("connect", "read", "write", "timeout")
            },
            "stuck_after_rounds": [r["round"] for r in rows if r.get("stuck_after")],
        }
    )
    errors = [f"round {r.get('round')}: {r['error']}" for r in rows if "error" in r]
    if errors:
        summary["errors"] = errors
    return summary


def judge(scenario: Scenario, summary: dict, dialect: str) -> None:
    """Sets summary["goal"] and summary["met"] (True, False, or None: no goal on this database kind, or
    the scenario could not run), judged on the medians."""
    summary["goal"] = scenario.goal_text(dialect)
    if "error" in summary or not scenario.judged_on(dialect):
        summary["met"] = None
        return
    checks = []
    rps_goal = scenario.rps_goal(dialect)
    if rps_goal is not None:
        checks.append(summary["requests_per_sec"] >= rps_goal)
    if scenario.goal_ratio is not None:
        ratio = summary.get("ratio_vs_bare")
        checks.append(ratio is not None and ratio >= scenario.goal_ratio)
    if scenario.goal_p99_ms is not None:
        p99 = summary.get("p99_ms")
        checks.append(p99 is not None and p99 <= scenario.goal_p99_ms)
    summary["met"] = all(checks) if checks else None


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def fmt_spread(spread: list[float] | None, spec: str) -> str:
    return "-" if not spread else f"{format(spread[0], spec)}–{format(spread[1], spec)}"


TABLE_HEADER = [
    "workers",
    "scenario",
    "req/s",
    "req/s min–max",
    "p50 ms",
    "p99 ms",
    "ratio vs bare",
    "ratio min–max",
    "goal",
    "met",
]
_NUMERIC_COLUMNS = {0, 2, 3, 4, 5, 6, 7}


def table_cells(summaries: list[dict]) -> list[list[str]]:
    """One row of TABLE_HEADER per summary: medians, then the spread across rounds."""
    lines = []
    for s in summaries:
        workers = str(s.get("workers") or "-")
        if "error" in s:
            lines.append(
                [
                    workers,
                    s["scenario"],
                    "error",
                    "-",
                    "-",
                    "-",
                    "-",
                    "-",
                    s.get("goal", "-"),
                    "could not run",
                ]
            )
            continue
        name = (
            s["scenario"]
            + (" (!)" if s.get("flagged") else "")
            + (" (stuck)" if s.get("stuck_after_rounds") else "")
        )
        if s["rounds_ok"] < s["rounds"]:
            name += f" ({s['rounds_ok']}/{s['rounds']} rounds)"
        lines.append(
            [
                workers,
                name,
                fmt(s["requests_per_sec"], ".0f"),
                fmt_spread(s["requests_per_sec_spread"], ".0f"),
                fmt(s["p50_ms"], ".2f"),
                fmt(s["p99_ms"], ".2f"),
                fmt(s["ratio_vs_bare"], ".2f"),
                fmt_spread(s["ratio_vs_bare_spread"], ".2f"),
                s.get("goal", "-"),
                {True: "met", False: "NOT MET", None: "-"}[s.get("met")],
            ]
        )
    return lines


def notes(summaries: list[dict]) -> list[str]:
    """The lines under the table: errors, flagged and stuck scenarios."""
    out = []
    for s in summaries:
        where = f"{s['scenario']} ({s.get('workers')} worker(s))"
        if "error" in s:
            out.append(f"{where}: could not run: {s['error']}")
            continue
        for error in s.get("errors", []):
            out.append(f"{where}: {error}")
        if s.get("flagged"):
            errors = ", ".join(f"{k} {v}" for k, v in s["socket_errors"].items() if v) or "none"
            reused = (
                f"; {s['reused']} prepared requests sent again (the script ran out: those measure the "
                "de-duplication)"
                if s.get("reused")
                else ""
            )
            out.append(f"(!) {where}: {s['non_2xx']} non-2xx/3xx responses, socket errors: {errors}{reused}")
        if s.get("stuck_after_rounds"):
            rounds = ", ".join(map(str, s["stuck_after_rounds"]))
            out.append(
                f"(stuck) {where}: the service stopped answering after round(s) {rounds} and was restarted"
            )
    return out


def rss_lines(service_rss: dict[str, dict], bare_rss: dict | None) -> list[str]:
    out = []
    for workers, rss in service_rss.items():
        verdict = "met" if rss["met"] else "NOT MET"
        out.append(
            f"service RSS, {workers} worker(s) (largest of {rss['processes']} process(es), before the write "
            f"scenarios): {rss['rss_mb']:.1f} MiB, goal <= {RSS_GOAL_MB:g} MiB: {verdict}; after all rounds "
            f"{fmt(rss.get('after_all_mb'), '.1f')} MiB"
        )
    if bare_rss is not None:
        out.append(f"bare app RSS: {bare_rss['rss_mb']:.1f} MiB (for reference)")
    return out


def print_table(summaries: list[dict], service_rss: dict[str, dict], bare_rss: dict | None) -> None:
    lines = table_cells(summaries)
    widths = [max(len(str(c)) for c in col) for col in zip(TABLE_HEADER, *lines, strict=False)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in _NUMERIC_COLUMNS else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    print()
    print(line(TABLE_HEADER))
    print(line(["-" * w for w in widths]))
    for cells in lines:
        print(line(cells))
    for text in notes(summaries):
        print(text)
    print()
    for text in rss_lines(service_rss, bare_rss):
        print(text)


def markdown_report(report: dict) -> str:
    """bench/results/latest.md: what ran, on what, and the table of medians and spreads."""
    workers = ", ".join(map(str, report["workers"]))
    head = [
        f"# make bench — {report['when']}",
        "",
        f"- commit: `{report['commit']}`",
        f"- database: {report['database']} (`{report['database_url']}`), {report['cases_prepared']} cases prepared",
        f"- redis: {report['redis']}" + (f" (`{report['redis_url']}`)" if report.get("redis_url") else ""),
        f"- workers: {workers}; runs (rounds): {report['runs']}; duration: {report['duration_s']} s per run "
        f"(warm-up {report['warmup_s']} s); wrk -t{report['threads']} -c{report['connections']}",
        f"- python {report['python']}, {report['cpus']} CPU(s)",
        "",
        "Medians across the rounds; min–max is the spread. Each round measures every scenario between two runs "
        "of bare; a ratio is the scenario's req/s over the mean of the two bare runs beside it. Bare's figures "
        "are over all its runs. Goals are judged on the medians.",
        "",
    ]

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    rows = [
        "| " + " | ".join(TABLE_HEADER) + " |",
        "|" + "|".join("---:" if i in _NUMERIC_COLUMNS else "---" for i in range(len(TABLE_HEADER))) + "|",
    ]
    rows += ["| " + " | ".join(cell(c) for c in cells) + " |" for cells in table_cells(report["summary"])]
    tail = [
        f"- {cell(t)}"
        for t in notes(report["summary"]) + rss_lines(report["service_rss"], report["bare_rss"])
    ]
    return "\n".join(head + rows + ([""] + tail if tail else [])) + "\n"


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10, check=True
    ).stdout


def git_commit() -> str:
    """`git rev-parse --short HEAD`, "+dirty" when tracked files have uncommitted changes; "unknown" outside
    git."""
    try:
        head = _git("rev-parse", "--short", "HEAD").strip()
        status = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if status.strip() else "")


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="wrk benchmark of the service against a bare Sanic app")
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run (default 10)")
    parser.add_argument(
        "--runs", type=int, default=3, help="rounds per worker count (default 3): medians and spread"
    )
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
    parser.add_argument(
        "--redis-url",
        help="Redis for the service (default: config, i.e. memory://); a redis:// database on 127.0.0.1 is "
        "emptied (FLUSHDB) first: give it one of its own",
    )
    parser.add_argument(
        "--workers",
        default="1",
        help='service worker counts, comma-separated (default "1"), e.g. 1,2: a fresh service process for each '
        "on the same database; more than 1 needs a real --redis-url",
    )
    parser.add_argument("--insert-cases", type=int, help=argparse.SUPPRESS)  # the child of prepare_database
    args = parser.parse_args(argv)
    if args.insert_cases is not None:
        print(asyncio.run(insert_cases(args.insert_cases)))
        return 0
    if not 1 <= args.duration <= 600:
        parser.error("--duration must be between 1 and 600 seconds")
    if not 1 <= args.runs <= 50:
        parser.error("--runs must be between 1 and 50")
    try:
        worker_counts = parse_workers(args.workers)
    except ValueError as exc:
        parser.error(f"--workers: {exc}")
    if max(worker_counts) > 1 and not is_shared_redis(args.redis_url):
        parser.error(
            f"--workers {args.workers}: more than one worker needs a Redis the workers share, e.g. "
            f"--redis-url redis://127.0.0.1:6379/14 (got {redact(args.redis_url) if args.redis_url else 'memory://'}: "
            "each process would have its own in-memory Redis, and the service would run 1 worker)"
        )
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
    # bare first (the round's ceiling), read-only scenarios next, writes last: they do not change what
    # the reads read
    scenarios = (
        [s for s in scenarios if s.target == "bare"]
        + [s for s in scenarios if s.target != "bare" and not s.writes]
        + [s for s in scenarios if s.writes]
    )

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
        if is_shared_redis(args.redis_url):
            empty_redis(args.redis_url)
        print(f"preparing {redact(database_url)}", flush=True)
        prepare_database(python, service_env(args.redis_url, 1, free_port(), tmp, database_url), args.cases)
        bare_port = free_port()
        bare = Server(
            "bare",
            [python, str(BENCH_DIR / "bare_app.py"), "--port", str(bare_port)],
            dict(os.environ),
            tmp / "bare.log",
        )
        servers.append(bare)
        bare_base = f"http://{HOST}:{bare_port}"
        wait_for_bare(bare, bare_base)

        rounds: list[dict] = []
        service_rss: dict[str, dict] = {}
        for workers in worker_counts:
            # a fresh service process per worker count, on the same prepared database
            service_port = free_port()
            env = service_env(args.redis_url, workers, service_port, tmp, database_url)
            starts = 1
            service = Server(
                "service", [python, "-m", "api.cli", "serve"], env, tmp / f"service-w{workers}.log"
            )
            servers.append(service)
            bases = {"service": f"http://{HOST}:{service_port}", "bare": bare_base}
            code = wait_for_service(service, bases["service"])
            print(f"service up with {workers} worker(s); item scenario uses code {code}", flush=True)
            context = {"code": code}
            rss_read = None
            for round_no in range(1, args.runs + 1):
                print(f"round {round_no}/{args.runs}, {workers} worker(s)", flush=True)
                round_rows: list[dict] = []
                for scenario in round_order(scenarios):
                    if scenario.writes and rss_read is None:
                        rss_read = _try_rss(service.pid)
                    row: dict = {
                        "workers": workers,
                        "round": round_no,
                        "scenario": scenario.name,
                        "target": scenario.target,
                    }
                    try:
                        row.update(measure(wrk, scenario, bases[scenario.target], context, args.duration))
                    except BenchError as exc:
                        failed = True
                        row["error"] = str(exc)
                        print(f"  {scenario.name}: could not run: {exc}", file=sys.stderr)
                    round_rows.append(row)
                    if (
                        scenario.target == "service"
                        and service.alive()
                        and not still_answers(bases["service"])
                    ):
                        # reported, and a fresh process for the scenarios that follow
                        row["stuck_after"] = True
                        print(
                            f"  {scenario.name}: the service no longer answers /readyz after the run: restarting it",
                            file=sys.stderr,
                            flush=True,
                        )
                        service.stop()
                        servers.remove(service)
                        starts += 1
                        service = Server(
                            "service",
                            [python, "-m", "api.cli", "serve"],
                            env,
                            tmp / f"service-w{workers}-{starts}.log",
                        )
                        servers.append(service)
                        wait_for_service(service, bases["service"])
                with_ratios(round_rows)
                rounds.extend(round_rows)
            for server in (service, bare):
                if not server.alive():
                    failed = True
                    print(
                        f"{server.name} died during the runs; its output:\n{server.log_tail()}",
                        file=sys.stderr,
                    )
            try:
                # the goal is about serving: read before the write scenarios filled in-process caches
                # (with memory:// Redis, every idempotency answer is kept in the service process)
                rss = rss_read or largest_rss(service.pid)
                rss["goal_mb"] = RSS_GOAL_MB
                rss["met"] = rss["rss_mb"] <= RSS_GOAL_MB
                rss["after_all_mb"] = largest_rss(service.pid)["rss_mb"]
                service_rss[str(workers)] = rss
            except BenchError as exc:
                failed = True
                print(f"bench: {exc}", file=sys.stderr)
            service.stop()
            servers.remove(service)

        summaries = []
        for workers in worker_counts:
            for scenario in scenarios:
                rows = [r for r in rounds if r["workers"] == workers and r["scenario"] == scenario.name]
                if rows:
                    summary = summarise(rows)
                    judge(scenario, summary, dialect)
                    summaries.append(summary)
        bare_rss = None
        try:
            bare_rss = largest_rss(bare.pid)
        except BenchError as exc:
            failed = True
            print(f"bench: {exc}", file=sys.stderr)

        print_table(summaries, service_rss, bare_rss)
        report = {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "commit": git_commit(),
            "duration_s": args.duration,
            "warmup_s": WARMUP_SECONDS,
            "runs": args.runs,
            "workers": worker_counts,
            "threads": THREADS,
            "connections": CONNECTIONS,
            "database": dialect,
            "database_url": redact(database_url),
            "cases_prepared": args.cases,
            "redis": redis_kind(args.redis_url),
            "redis_url": redact(args.redis_url) if args.redis_url else None,
            "log_level": "INFO",
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "summary": summaries,
            "rounds": rounds,
            "service_rss": service_rss,
            "bare_rss": bare_rss,
        }
        RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
        RESULTS_FILE.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        MARKDOWN_FILE.write_text(markdown_report(report), encoding="utf-8")
        print(f"\nwritten to {RESULTS_FILE} and {MARKDOWN_FILE}")
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
