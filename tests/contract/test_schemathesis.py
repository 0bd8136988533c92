"""schemathesis over the whole API, against the real server (issue 8 item 4: "no 5xx from outside").

The server is started as `make run` starts it (`python -m api.cli serve`, embedded mode, sandbox integrations,
seeded catalogue and demo staff) on a free port of 127.0.0.1, with a SQLite file and in-process Redis of its
own in both passes of CI (the PostgreSQL pass shares one database between the suite's tests, which empty it
before each test, so a server seeding its own demo data there would race them); then `make demo` drives one
whole case through it, so ids name real records. schemathesis reads the server's own document (/docs/openapi.json) and runs every check, in every phase (examples, coverage, fuzzing, stateful),
over every operation, once per role: nobody signed in, a resident (张三, real name verified), a grid worker, a
window clerk and the admin, each signed in through the API as a client would (SMS code read from the sandbox,
or the demo staff password). Its settings are tests/contract/schemathesis.toml (seed, cases per operation).

It runs as schemathesis' own command line, `st --config-file … run URL -H "Authorization: Bearer …"`: the
runner that has every phase and check, and what a developer re-runs by hand (the failing case's curl line is
in the output this test shows). (schemathesis' pytest plugin cannot load a schema from a fixture under
pytest 9.2: it reads `Function._nodeid`, gone from pytest.)

Rate limits are made generous for this run by configuration (FUZZ_SETTINGS), never by code: a 429 is a
documented answer, but none should come. Failures not yet fixed are in PENDING, one line per (operation,
failure code) with its reason; any other failure fails the test, and a PENDING line that no longer fails is
reported as a warning so the list only shrinks.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from collections.abc import Iterator
from fnmatch import fnmatchcase
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from api.kit.config import PROJECT_ROOT
from api.sandbox.people import ADMIN_PHONE, DEMO_PASSWORD, person
from tests.support.people import ZHANG
from tests.support.server import server_env, serving

CONFIG = Path(__file__).with_name("schemathesis.toml")
DOCUMENT = "/docs/openapi.json"
ROLES = ("anonymous", "resident", "grid_worker", "staff", "admin")
# seconds one role's runs may take before the test stops them and fails (they take some 25 s each on a
# 2-core machine; the whole module about two minutes)
ROLE_BUDGET = 240

# every limit of [security] and [uploads] far above what one run sends: the fuzzer signs in, asks for codes,
# checks real names and uploads from one address, many times a second
FUZZ_SETTINGS = {
    "YWT_SECURITY__SMS_RESEND_AFTER": "1",
    "YWT_SECURITY__SMS_MAX_PER_PHONE_PER_DAY": "1000000",
    "YWT_SECURITY__SMS_MAX_PER_IP_PER_HOUR": "1000000",
    "YWT_SECURITY__TOKEN_MAX_PER_IP_PER_MINUTE": "1000000",
    "YWT_SECURITY__TOKEN_MAX_PER_PHONE_PER_HOUR": "1000000",
    "YWT_SECURITY__REAL_NAME_MAX_PER_DAY": "1000000",
    "YWT_UPLOADS__MAX_PER_HOUR": "1000000",
    # the in-server deadline watch has nothing to do with this run
    "YWT_APPLICATIONS__DEADLINE_WATCH_INTERVAL": "86400",
}

# Operations that end the signed-in person's session or account: each role's run fuzzes them after all the
# others, so the token stays good for those.
SESSION_ENDERS = ("DELETE /api/v1/me", "PUT /api/v1/me/password", "POST /api/v1/auth/logout")

# Failures known and not yet fixed, by (operation, schemathesis failure code): the operation is a pattern
# ("*" any text, fnmatch), each line with its cause and what lifts it (`st explain CODE` says what the code
# checks). Empty means schemathesis finds nothing; a failure not fixed yet goes here, one line with its reason.
PENDING: dict[tuple[str, str], str] = {}


# ---- the server and its people ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    log = tmp / "server.log"
    with serving(server_env(tmp, **FUZZ_SETTINGS), log, ready=(("/healthz", 1), ("/readyz", 30))) as base:
        # one whole case first (`make demo`: 张三's application accepted, returned, resubmitted, approved,
        # delivered, evaluated, with materials and notifications), so ids 1, 2 … name real records
        demo = subprocess.run(
            [sys.executable, "-m", "scripts.demo", "--base-url", base],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=120,
            check=False,
        )
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
        yield base, log


def _sign_in(http: httpx.Client, body: dict) -> str:
    r = http.post("/api/v1/auth/token", json=body)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def _sms_sign_in(http: httpx.Client, phone: str) -> str:
    r = http.post("/api/v1/auth/sms-codes", json={"phone": phone, "purpose": "login"})
    assert r.status_code == 202, r.text
    code = http.get("/api/v1/sandbox/sms", params={"phone": phone}).json()["items"][-1]["code"]
    return _sign_in(http, {"grant_type": "sms_code", "phone": phone, "code": code, "channel": "app"})


def access_token(base: str, role: str) -> str | None:
    """The access token of `role`, signed in through the API as its client would (None for nobody)."""
    if role == "anonymous":
        return None
    with httpx.Client(base_url=base, timeout=30) as http:
        if role == "resident":
            token = _sms_sign_in(http, ZHANG["phone"])
            r = http.post(
                "/api/v1/me/real-name",
                json={"name": ZHANG["name"], "id_number": ZHANG["id_number"]},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 200, r.text
            return token
        phone = {
            "admin": ADMIN_PHONE,
            "staff": person("staff", department="civil_affairs").phone,
            "grid_worker": person("grid_worker").phone,
        }[role]
        channel = "handheld" if role == "grid_worker" else "app"
        return _sign_in(
            http, {"grant_type": "password", "phone": phone, "password": DEMO_PASSWORD, "channel": channel}
        )


# ---- one schemathesis run ---------------------------------------------------------------------------------


def schemathesis_run(
    base: str, token: str | None, out: Path, name: str, selection: list[str], budget: float
) -> tuple[dict, str]:
    """`st run` over the document with this token and operation selection, stopped after `budget` seconds: its
    JSON report and its output."""
    report = out / f"{name}.json"
    cmd = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(CONFIG),
        "--no-color",
        "run",
        base + DOCUMENT,
        "--report",
        "json",
        "--report-json-path",
        str(report),
        *selection,
    ]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=budget, cwd=out, check=False)
    except subprocess.TimeoutExpired as exc:
        captured = exc.stdout or b""  # bytes, whatever text= says
        tail = (captured.decode("utf-8", "replace") if isinstance(captured, bytes) else captured)[-3000:]
        pytest.fail(f"schemathesis ({name}) did not finish within {budget:g} s:\n{tail}", pytrace=False)
    output = done.stdout + done.stderr
    (out / f"{name}.txt").write_text(output, encoding="utf-8")
    assert report.exists(), f"schemathesis wrote no report (exit {done.returncode}):\n{output[-3000:]}"
    return json.loads(report.read_text(encoding="utf-8")), output


STATEFUL = "Stateful tests"  # the label the report gives every failure of the stateful phase


def failures(report: dict, output: str, templates: list[str]) -> set[tuple[str, str]]:
    """(operation, failure code) of every failure of a run: from its JSON report, and for the stateful phase,
    whose report names no operation, from the request of each failing case in the output."""
    found = {(op, f["code"]) for f in report["failures"] for op in f["operations"] if op != STATEFUL}
    if not any(STATEFUL in f["operations"] for f in report["failures"]):
        return found
    part = output.split(f" {STATEFUL} ", 1)[1]
    part = re.split(r"\n_{3,} [A-Z]+ /|\n={3,}", part, maxsplit=1)[0]
    # literal paths before templated ones: /me/bindings is not /me/{anything}
    ordered = sorted(templates, key=lambda t: t.count("{"))
    for case in re.split(r"\n\d+\. Test Case ID", part)[1:]:
        request = re.search(r"curl -X (\S+)[^\n]*?(https?://[^\s']+)", case)
        operation = STATEFUL
        if request:
            method, path = request.group(1), urlsplit(request.group(2)).path
            operation = next(
                (f"{method} {t}" for t in ordered if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", t), path)),
                f"{method} {path}",
            )
        found |= {(operation, code) for code in re.findall(r"^- (ST\d{3}) ", case, re.M)}
    return found


def pending(found: tuple[str, str]) -> bool:
    operation, code = found
    return any(fnmatchcase(operation, pattern) and code == known for pattern, known in PENDING)


def sections(output: str, operations: set[str]) -> str:
    """The parts of schemathesis' output about these operations (the failing case, its answer, a curl line)."""
    parts = re.split(r"\n(?=_{3,} [A-Z]+ /)", output)
    wanted = [
        p for p in parts if any(re.match(rf"_{{3,}} {re.escape(op)} _", p.strip()) for op in operations)
    ]
    return "\n".join(wanted)[-12000:] or output[-6000:]


@pytest.fixture(scope="module")
def seen() -> Iterator[set[tuple[str, str]]]:
    """The failures found by every role's run; PENDING lines none of them found are a warning at the end."""
    found: set[tuple[str, str]] = set()
    yield found
    stale = sorted(
        (pattern, code)
        for pattern, code in PENDING
        if not any(fnmatchcase(op, pattern) and code == known for op, known in found)
    )
    if stale:
        warnings.warn(f"PENDING lines schemathesis no longer finds, to remove: {stale}", stacklevel=1)


@pytest.mark.parametrize("role", ROLES)
def test_schemathesis_finds_nothing(fuzz_server, seen, role, tmp_path):
    base, log = fuzz_server
    token = access_token(base, role)
    enders = [arg for op in SESSION_ENDERS for arg in ("--include-name", op)]
    others = [arg for op in SESSION_ENDERS for arg in ("--exclude-name", op)]
    main, main_output = schemathesis_run(base, token, tmp_path, "main", others, ROLE_BUDGET * 0.8)
    last, last_output = schemathesis_run(base, token, tmp_path, "enders", enders, ROLE_BUDGET * 0.2)

    templates = list(httpx.get(base + DOCUMENT, timeout=30).json()["paths"])
    found = failures(main, main_output, templates) | failures(last, last_output, templates)
    seen.update(found)
    new = {f for f in found if not pending(f)}
    cases = main["test_cases"]["generated"] + last["test_cases"]["generated"]
    tested = main["operations"]["tested"] + last["operations"]["tested"]
    print(
        f"\nschemathesis as {role}: {tested} operations, {cases} cases, "
        f"{len(found)} failures ({len(found) - len(new)} pending), rate limited: "
        f"{sorted(set(main['warnings']['rate_limited']) | set(last['warnings']['rate_limited']))}"
    )
    for what, report in (("main", main), ("enders", last)):
        assert report["complete"], f"{what} run did not complete: {report['stop_reason']}"
        assert not report["errors"], f"{what} run errors: {report['errors']}"
    assert main["operations"]["tested"] + last["operations"]["tested"] == main["operations"]["total"]
    if new:
        ops = {op for op, _ in new}
        listing = "\n".join(f"  {code} {op}" for op, code in sorted(new))
        server_errors = [line for line in log.read_text(encoding="utf-8").splitlines() if "Traceback" in line]
        pytest.fail(
            f"schemathesis as {role} found {len(new)} failures not in PENDING:\n{listing}\n\n"
            + sections(main_output + "\n" + last_output, ops)
            + (f"\n\nserver log (tracebacks: {len(server_errors)}): {log}" if server_errors else ""),
            pytrace=False,
        )
