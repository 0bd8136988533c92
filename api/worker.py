"""python -m api.worker [--once] — background loops in a process of their own (production).

It runs the deadline watch (电子监察, api.applications.deadlines), the delivery loop (the outbox, app
push and WeChat messages: api.notifications.delivery) and the official account's deferred replies (the
callback's messages it could not answer within WeChat's 5 s: api.wechat.service). A composition root like
api/app.py: it loads the settings, opens the database and Redis, builds the same services a server's worker
builds (`build_services`: the signing and personal-data keys too, as the servers have them) and runs the
loops until SIGTERM or SIGINT, the watch every
`applications.deadline_watch_interval` seconds, the deliveries as they come (`notifications.interval` when
idle); `--once` runs one pass of each, prints their reports as one JSON line and exits (0 on success, 1
when a pass failed, 2 on a configuration error).

Any number of workers may run side by side, and beside servers running the watch in embedded mode: every
change the watch makes is a conditional UPDATE on the status it read, so exactly one of them makes a given
change and writes its notifications; the delivery loop claims its rows (`FOR UPDATE SKIP LOCKED` on
PostgreSQL), so no two workers try one delivery at once."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import threading
from dataclasses import asdict, dataclass

import orjson

from api.applications.deadlines import watch_forever, watch_once
from api.kit.config import ConfigError, Settings, load_settings
from api.kit.logs import setup_logging
from api.kit.workdays import WorkCalendar
from api.licences.service import Licences, expiry_forever, tell_expiring
from api.notifications.delivery import Senders, deliver_forever, deliver_once
from api.wechat.deps import Official
from api.wechat.service import consumer_name, replies_forever, replies_once

log = logging.getLogger("ywt.worker")
_stop_asked = threading.Event()


@dataclass(frozen=True)
class Watch:
    """What the deadline watch needs (deadlines.HasCalendar): the server passes its `Cases`, this its own."""

    calendar: WorkCalendar


async def run(settings: Settings, *, once: bool) -> int:
    from api.app import build_services
    from api.kit.db import close_database, open_database

    watch = Watch(calendar=WorkCalendar.from_settings(settings.calendar))
    await open_database(settings)
    services = build_services(settings)
    integrations = services.integrations
    senders = Senders(push=integrations.push, wechat=integrations.wechat, settings=settings.notifications)
    try:
        return await _loop(watch, senders, services.official, services.licences, settings, once=once)
    finally:
        await services.close()
        await close_database()


async def _loop(
    cases: Watch, senders: Senders, official: Official, licences: Licences, settings: Settings, *, once: bool
) -> int:
    if once:
        try:
            report = await watch_once(cases.calendar)
            delivered = await deliver_once(senders)
            replied = await replies_once(official, consumer_name())
            told = await tell_expiring(licences)
        except Exception:
            log.exception("worker pass failed")
            return 1
        line = {
            "deadline_watch": report.as_dict(),
            "deliveries": asdict(delivered),
            "wechat": asdict(replied),
            "licence_expiry": {"told": told},
        }
        print(orjson.dumps(line).decode(), flush=True)
        return 0
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if _stop_asked.is_set():  # a SIGTERM while the database and Redis were being opened
        stop.set()
    log.info("worker started", extra={"fields": {"mode": settings.app.mode}})
    loops = [
        asyncio.ensure_future(watch_forever(cases, settings.applications.deadline_watch_interval, stop)),
        asyncio.ensure_future(deliver_forever(senders, stop)),
        asyncio.ensure_future(replies_forever(official, stop)),
        asyncio.ensure_future(expiry_forever(licences, settings.licences.expiry_watch_interval, stop)),
    ]
    await stop.wait()
    # the delivery loop gives its pass `stop_grace` seconds and then gives back what it holds; a watch
    # pass still running then is cancelled (its case in hand rolls back whole; the next pass looks again)
    _, late = await asyncio.wait(loops, timeout=settings.notifications.stop_grace + 2)
    for task in late:
        task.cancel()
    await asyncio.gather(*loops, return_exceptions=True)
    log.info("worker stopped", extra={"fields": {"cut_short": len(late)}})
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
    if not args.once:
        # until the loop takes the signals over: noted, and the worker stops as soon as it can (exit 0)
        signal.signal(signal.SIGTERM, lambda signum, frame: _stop_asked.set())
    return asyncio.run(run(settings, once=args.once))


if __name__ == "__main__":
    raise SystemExit(main())
