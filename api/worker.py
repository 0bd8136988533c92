"""python -m api.worker [--once] — background loops in a process of their own (production).

Today it runs the deadline watch (电子监察, api.applications.deadlines); the outbox dispatcher joins it later.
A composition root like api/app.py: it loads the settings, opens the database, builds what the watch needs
(the working-day calendar, nothing else: no keys, no outside-system clients) and runs a pass every `applications.deadline_watch_interval`
seconds until SIGTERM or SIGINT; `--once` runs one pass, prints its report as one JSON line and exits (0 on
success, 1 when the pass failed, 2 on a configuration error).

Any number of workers may run side by side, and beside servers running the watch in embedded mode: every
change the watch makes is a conditional UPDATE on the status it read, so exactly one of them makes a given
change and writes its notifications. Competing for outbox rows with `SELECT … FOR UPDATE SKIP LOCKED` is the
outbox dispatcher's business, when it lands."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from dataclasses import dataclass

import orjson

from api.applications.deadlines import watch_forever, watch_once
from api.kit.config import ConfigError, Settings, load_settings
from api.kit.logs import setup_logging
from api.kit.workdays import WorkCalendar

log = logging.getLogger("ywt.worker")


@dataclass(frozen=True)
class Watch:
    """What the deadline watch needs (deadlines.HasCalendar): the server passes its `Cases`, this its own."""

    calendar: WorkCalendar


async def run(settings: Settings, *, once: bool) -> int:
    from api.kit.db import close_database, open_database

    watch = Watch(calendar=WorkCalendar.from_settings(settings.calendar))
    await open_database(settings)
    try:
        return await _loop(watch, settings, once=once)
    finally:
        await close_database()


async def _loop(cases: Watch, settings: Settings, *, once: bool) -> int:
    if once:
        try:
            report = await watch_once(cases.calendar)
        except Exception:
            log.exception("deadline watch pass failed")
            return 1
        print(orjson.dumps({"deadline_watch": report.as_dict()}).decode(), flush=True)
        return 0
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("worker started", extra={"fields": {"mode": settings.app.mode}})
    await watch_forever(cases, settings.applications.deadline_watch_interval, stop)
    log.info("worker stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--once", action="store_true", help="run one pass, print its report, exit")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    setup_logging(settings.app.log_level)
    return asyncio.run(run(settings, once=args.once))


if __name__ == "__main__":
    raise SystemExit(main())
