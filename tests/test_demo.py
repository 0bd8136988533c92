"""`make demo` against the real service: started as `python -m api.cli serve` (embedded mode, SQLite, free port),
the demo run twice as a subprocess — the second run proves it can be repeated against the same server."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from api.kit.config import PROJECT_ROOT
from scripts.demo import STEPS
from tests.support.server import free_port, server_env, serving

# the seeding `serve` does once api/cli.py calls seed_demo_people; until then the test seeds them itself
CLI_SEEDS_PEOPLE = "seed_people" in (PROJECT_ROOT / "api" / "cli.py").read_text(encoding="utf-8")

SEED_SCRIPT = """
import asyncio
from api.kit.config import load_settings
from api.kit.db import close_database, open_database
from api.cli import seed_people

async def main():
    settings = load_settings()
    await open_database(settings)
    try:
        for line in await seed_people(settings):
            print(line)
    finally:
        await close_database()

asyncio.run(main())
"""


def _run(cmd: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, encoding="utf-8", timeout=timeout
    )


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    env = server_env(tmp, PYTHONIOENCODING="utf-8", YWT_APP__MODE="embedded", YWT_APP__LOG_LEVEL="WARNING")
    if not CLI_SEEDS_PEOPLE:
        for cmd in (
            [sys.executable, "-m", "api.cli", "migrate"],
            [sys.executable, "-m", "api.cli", "seed"],
            [sys.executable, "-c", SEED_SCRIPT],
        ):
            done = _run(cmd, env)
            assert done.returncode == 0, done.stdout + done.stderr
    # /healthz first: it touches nothing. A /readyz abandoned by a client timeout while the worker
    # opens its first database connection leaves that connection wedged (see the bench README).
    with serving(env, tmp / "server.log", ready=(("/healthz", 1), ("/readyz", 30)), within=90) as base:
        yield base, env


def _demo(base: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-m", "scripts.demo", "--base-url", base], env)


def test_the_demo_drives_a_whole_case_and_can_run_again(service):
    base, env = service

    first = _demo(base, env)
    assert first.returncode == 0, first.stdout + first.stderr
    out = first.stdout
    for _key, zh, en in STEPS:
        assert f"{zh} / {en}" in out, f"step not printed: {en}\n{out}"
    for shown in (
        "张三 signs in (SMS code",  # first run: the sandbox SMS code
        "level 2",  # real name verified
        " submitted ",
        " returned (5 missing: M01",  # the one-time notice lists every material
        " accepted (due 20",  # the due date is shown
        " in_review",
        " approved",
        " ready",
        " delivered (recipient 张三",
        "demo finished",
    ):
        assert shown in out, f"{shown!r} not in the output:\n{out}"
    # every numbered line names the case once it exists
    numbered = [line for line in out.splitlines() if line.startswith("[")]
    assert len(numbered) == len(STEPS)
    assert all("XY" in line for line in numbered[6:] if "skipped" not in line)

    # again, at once: the SMS cooldown refuses a new code, so 张三 signs in with the password set above
    second = _demo(base, env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "next code in" in second.stdout and "张三 signs in (password" in second.stdout
    assert "already verified" in second.stdout
    assert second.stdout.count("demo finished") == 1
    first_number = next(w for w in out.split() if w.startswith("XY"))
    second_number = next(w for w in second.stdout.split() if w.startswith("XY"))
    assert first_number != second_number  # a fresh Idempotency-Key: a new case, not a replay


def test_an_unreachable_service_is_one_clear_failure(tmp_path):
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    done = _demo(f"http://127.0.0.1:{free_port()}", env)
    assert done.returncode == 1
    assert "is the service running" in done.stderr and "Traceback" not in done.stderr
