"""Delivery bench (issue 10 part 9): an announcement's fan-out, and deliveries sent per second by 1 and 2
workers to a fake JPush on 127.0.0.1.

.venv/bin/python bench/deliveries.py [--database-url URL] [--residents 100000] [--sends 10000] [--workers 1,2]

Prepares a fresh database as bench/run.py does (a temp SQLite file, or a new PostgreSQL database
`ywt_bench_<pid>` next to the one --database-url names, dropped at the end): migrations, the demo catalogue,
and --residents resident accounts with one app install (JPush registration id) each. Then:

1. **fan-out**: one announcement to everyone (inbox and push), fanned out by one call of the workers' own
   `announce_once` in a child process, timed from the claim to its last batch; it checks that every inbox
   copy and every delivery is there and claimable (`created`, due now). The issue's goal: < 30 s for 100 000
   residents on PostgreSQL;
2. **sending**, for each worker count of --workers: --sends of those deliveries made due again (the rest
   set aside), then that many `python -m api.worker` processes started against the fake JPush
   (bench/fake_jpush.py: cid, push, report), timed from the first delivery marked to the last;
   deliveries/s = what they marked in that time. The fake counts pushes per cid: a cid pushed twice (a
   delivery claimed twice, or retried) is reported. The workers are then stopped with SIGTERM and the time
   they took to exit is reported (the grace period is `notifications.hold_seconds`-free: they finish or
   leave what they hold).

It reports and writes bench/results/deliveries.json; it does not assert (exit non-zero only when something
could not run)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

import run as common  # noqa: E402 — bench/run.py: the database, the servers, the ports

RESULTS = BENCH_DIR / "results" / "deliveries.json"
FANOUT_GOAL_SECONDS = 30.0
SEND_TIMEOUT = 600.0
STALL_SECONDS = 60.0  # no delivery marked for this long: the round has failed


# ---- in child processes (tortoise's state stays out of the bench's own) ------------------------------------


async def insert_residents(count: int) -> str:
    sys.path.insert(0, str(PROJECT_ROOT))
    from datetime import UTC, datetime

    from api.kit.config import load_settings
    from api.kit.db import close_database, open_database
    from models.identity import Account
    from models.notifications import Device

    settings = load_settings()
    await open_database(settings)
    try:
        now = datetime.now(UTC)
        first = await Account.all().order_by("-id").first()
        start = first.id if first else 0
        for offset in range(0, count, 5000):
            size = min(5000, count - offset)
            await Account.bulk_create(
                [Account(phone_index=None, roles="resident", real_name_level=2) for _ in range(size)]
            )
        ids = await Account.filter(id__gt=start, roles="resident").order_by("id").values_list("id", flat=True)
        for offset in range(0, len(ids), 5000):
            await Device.bulk_create(
                [
                    Device(
                        account_id=account_id,
                        registration_id=f"bench-{account_id}",
                        platform="android",
                        app_version="3.2.0",
                        created_at=now,
                        updated_at=now,
                    )
                    for account_id in ids[offset : offset + 5000]
                ]
            )
        accounts = await Account.filter(status="active").count()
    finally:
        await close_database()
    return f"{count} residents with a device; {accounts} active accounts"


async def fan_out() -> str:
    sys.path.insert(0, str(PROJECT_ROOT))
    from api.kit import clock
    from api.kit.config import load_settings
    from api.kit.db import close_database, open_database
    from api.kit.kv import make_redis
    from api.notifications.delivery import DeliveryReport, Senders, announce_once
    from integrations import build_integrations
    from models import notifications as db

    settings = load_settings()
    await open_database(settings)
    redis = make_redis(settings)
    integrations = build_integrations(settings, redis)
    try:
        senders = Senders(push=integrations.push, wechat=integrations.wechat, settings=settings.notifications)
        now = clock.now()
        row = await db.create_announcement(
            "春节期间便民服务站开放时间调整",
            "2月10日至2月17日各社区便民服务站上午9时至12时开放，急办事项请拨打12345。",
            {"kind": "everyone"},
            ["inbox", "push"],
            now,
            None,  # published by the bench, by no account
            now,
        )
        report = DeliveryReport()
        started = time.monotonic()
        await announce_once(senders, report, clock.now())
        seconds = time.monotonic() - started
        done = await db.announcement_by_id(row.id)
        copies, deliveries = await db.announcement_counts(row.id)
        claimable = await db.Delivery.filter(status="created", next_attempt_at__lte=clock.now()).count()
    finally:
        await integrations.close()
        await redis.aclose()
        await close_database()
    return json.dumps(
        {
            "seconds": round(seconds, 2),
            "status": done.status if done else None,
            "inbox_copies": copies,
            "deliveries": deliveries,
            "claimable": claimable,
            "batch": settings.notifications.fanout_batch,
        }
    )


async def reset_sends(count: int) -> str:
    """`count` deliveries due again as never tried (no cid, no message id), every other one set aside."""
    sys.path.insert(0, str(PROJECT_ROOT))
    from tortoise import connections

    from api.kit import clock
    from api.kit.config import load_settings
    from api.kit.db import close_database, open_database

    settings = load_settings()
    await open_database(settings)
    try:
        conn = connections.get("default")
        postgres = conn.capabilities.dialect == "postgres"
        now = clock.now()
        await conn.execute_query(
            """UPDATE "delivery" SET "status" = 'permanent-failure', "claimed_until" = NULL"""
        )
        strip = (
            """"target" - 'cid' - 'first_try_at'"""
            if postgres
            else ("""json_remove("target", '$.cid', '$.first_try_at')""")
        )
        p = ("$1", "$2") if postgres else ("?", "?")
        moment = now if postgres else now.isoformat(sep=" ")
        await conn.execute_query(
            f"""UPDATE "delivery" SET "status" = 'created', "attempts" = 0, "provider_ref" = NULL,
                "claimed_until" = NULL, "last_error" = NULL, "next_attempt_at" = {p[0]}, "target" = {strip}
                WHERE "id" IN (SELECT "id" FROM "delivery" ORDER BY "id" LIMIT {p[1]})""",  # noqa: S608
            [moment, count],
        )
        due = await conn.execute_query_dict(
            """SELECT COUNT(*) AS "n" FROM "delivery" WHERE "status" = 'created'"""
        )
    finally:
        await close_database()
    return f"{due[0]['n']} deliveries due"


# ---- the bench --------------------------------------------------------------------------------------------


def child(python: str, env: dict[str, str], *args: str, timeout: float = 900) -> str:
    done = subprocess.run(
        [python, str(Path(__file__).resolve()), *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise common.BenchError(f"{' '.join(args)} failed:\n{done.stdout}{done.stderr}".rstrip())
    return (done.stdout.strip().splitlines() or [""])[-1]


def marked(database_url: str) -> int:
    """Deliveries the workers took to JPush so far (sent, or delivered by its report)."""
    sql = """SELECT COUNT(*) FROM "delivery" WHERE "status" IN ('sent', 'delivered')"""
    if common.is_postgres(database_url):
        import asyncpg

        async def count() -> int:
            conn = await asyncpg.connect(common._asyncpg_dsn(database_url))
            try:
                return int(await conn.fetchval(sql))
            finally:
                await conn.close()

        return asyncio.run(count())
    path = database_url.removeprefix("sqlite://")
    with sqlite3.connect(path, timeout=30) as conn:
        return int(conn.execute(sql).fetchone()[0])


def fake_stats(base: str) -> dict:
    with urllib.request.urlopen(f"{base}/stats", timeout=5) as answer:  # noqa: S310 — 127.0.0.1 only
        return json.loads(answer.read())


def send_round(
    python: str, env: dict[str, str], database_url: str, workers: int, sends: int, fake: str, tmp: Path
) -> dict:
    print(f"  reset: {child(python, env, '--reset-sends', str(sends))}", flush=True)
    before = fake_stats(fake)
    worker_env = dict(env)
    worker_env.update(
        {
            "YWT_PUSH__PROVIDER": "http",
            "YWT_PUSH__BASE_URL": fake,
            "YWT_PUSH__REPORT_URL": fake,
            "YWT_PUSH__APP_KEY": "bench",
            "YWT_PUSH__MASTER_SECRET": "bench",
            "YWT_NOTIFICATIONS__INTERVAL": "0.2",
            # receipts and the deadline watch out of the way of what is measured
            "YWT_NOTIFICATIONS__RECEIPT_POLL": "86400",
            "YWT_APPLICATIONS__DEADLINE_WATCH_INTERVAL": "86400",
            "YWT_APP__LOG_LEVEL": "WARNING",
        }
    )
    procs: list[common.Server] = []
    started = time.monotonic()
    first_at = None
    first_count = 0
    count = 0
    progress_at, last = started, 0
    try:
        for n in range(workers):
            log = tmp / f"worker-{workers}-{n}.log"
            procs.append(common.Server(f"worker-{n}", [python, "-m", "api.worker"], worker_env, log))
            procs[-1].ready = True  # stopped with TERM first
        while time.monotonic() - started < SEND_TIMEOUT:
            count = marked(database_url)
            now = time.monotonic()
            if count and first_at is None:
                first_at, first_count = now, count
            if count != last:
                progress_at, last = now, count
            elif now - progress_at > STALL_SECONDS:
                raise common.BenchError(
                    f"no delivery marked for {STALL_SECONDS:g} s ({count} of {sends}):\n"
                    + "\n".join(p.log_tail() for p in procs)
                )
            if count >= sends:
                break
            if not all(p.alive() for p in procs):
                raise common.BenchError("a worker died:\n" + "\n".join(p.log_tail() for p in procs))
            time.sleep(0.2)
        done_at = time.monotonic()
        stopping = time.monotonic()
        for proc in procs:
            proc._signal(15)
        exits = []
        for proc in procs:
            try:
                proc.proc.wait(timeout=30)
                exits.append(round(time.monotonic() - stopping, 2))
            except subprocess.TimeoutExpired:
                exits.append(None)
    finally:
        for proc in procs:
            proc.stop()  # what is left of each (nothing, after a clean exit)
    after = fake_stats(fake)
    span = (done_at - first_at) if first_at is not None else None
    rate = (count - first_count) / span if span else None
    return {
        "workers": workers,
        "sends": sends,
        "marked": count,
        "seconds_from_start": round(done_at - started, 2),
        "seconds_first_to_last": round(span, 2) if span else None,
        "deliveries_per_second": round(rate, 1) if rate else None,
        "pushes": after["pushes"] - before["pushes"],
        "messages": after["messages"] - before["messages"],
        "duplicate_cids": after["duplicates"] - before["duplicates"],
        "seconds_to_exit_after_sigterm": exits,
        "exit_codes": [p.proc.returncode for p in procs],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url")
    parser.add_argument("--residents", type=int, default=100_000)
    parser.add_argument("--sends", type=int, default=10_000)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--insert-residents", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--fan-out", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--reset-sends", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.insert_residents is not None:
        print(asyncio.run(insert_residents(args.insert_residents)))
        return 0
    if args.fan_out:
        print(asyncio.run(fan_out()))
        return 0
    if args.reset_sends is not None:
        print(asyncio.run(reset_sends(args.reset_sends)))
        return 0

    # a TERM (a timeout) unwinds like ^C, so the finally blocks stop the workers and drop the database
    signal.signal(signal.SIGTERM, common._interrupted)
    python = sys.executable
    tmp = Path(tempfile.mkdtemp(prefix="ywt-deliveries-"))
    admin_url = args.database_url
    database_url = (
        common.create_bench_database(admin_url)
        if admin_url and common.is_postgres(admin_url)
        else f"sqlite://{tmp / 'bench.sqlite3'}"
    )
    env = dict(os.environ)
    env.update(
        {
            "YWT_APP__MODE": "embedded",
            "YWT_APP__DATA_DIR": str(tmp),
            "YWT_DATABASE__URL": database_url,
            "YWT_APP__LOG_LEVEL": "WARNING",
            "YWT_APP__SEED_DEMO": "false",
            # no quiet hours: at night they would hold every push until 08:00 (not claimable yet)
            "YWT_NOTIFICATIONS__QUIET_START": "00:00",
            "YWT_NOTIFICATIONS__QUIET_END": "00:00",
        }
    )
    fake = None
    report: dict = {"database": "postgresql" if common.is_postgres(database_url) else "sqlite"}
    try:
        for what, cmd in (
            ("migrations", [python, "-m", "api.cli", "migrate"]),
            ("demo catalogue", [python, "-m", "api.cli", "seed"]),
        ):
            subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, check=True, capture_output=True, timeout=600)
            print(f"  {what}: done", flush=True)
        print(f"  {child(python, env, '--insert-residents', str(args.residents))}", flush=True)
        fan = json.loads(child(python, env, "--fan-out"))
        fan["goal_seconds"] = FANOUT_GOAL_SECONDS
        fan["residents"] = args.residents
        report["fan_out"] = fan
        print(f"fan-out: {json.dumps(fan, ensure_ascii=False)}", flush=True)

        port = common.free_port()
        fake = common.Server(
            "fake JPush",
            [python, str(BENCH_DIR / "fake_jpush.py"), "--port", str(port)],
            env,
            tmp / "fake.log",
        )
        base = f"http://127.0.0.1:{port}"
        common.wait_until(fake, time.monotonic() + 30, lambda: fake_stats(base), "the fake JPush")
        fake.ready = True
        report["sending"] = []
        for workers in common.parse_workers(args.workers):
            row = send_round(python, env, database_url, workers, args.sends, base, tmp)
            report["sending"].append(row)
            print(f"sending: {json.dumps(row)}", flush=True)
    finally:
        if fake is not None:
            fake.stop()
        if admin_url and common.is_postgres(database_url):
            common.drop_bench_database(admin_url, database_url)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
