"""电子监察 — the deadline watch. Each pass looks at the cases whose clock runs and sets their
`deadline_status` to what the working-day calendar says now (normal, warning at ≤ 1 working day left,
overdue after the due time); a case that turns warning or overdue writes an inbox notification to every
clerk responsible for it — the staff of its department and the grid workers of its point — in the same
transaction as the change.

Several watchers may run at once (server processes in embedded mode, `python -m api.worker` processes in
production): each change is a conditional UPDATE on the status (and version) the watcher read, so for any
one change exactly one watcher's update matches and only that watcher notifies. The watch never bumps the
case's `version`, so it never makes a clerk's action lose its optimistic lock; a clerk's action that lands
between the read and the update bumps the version and the watcher's update then matches nothing (the next
pass looks again). Suspended cases (paused clock) are not looked at, nor are cases that left the running
states: they keep the status they had."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Protocol

from api.applications import states
from api.kit import clock
from api.kit.clock import CITY_TZ
from api.kit.db import in_transaction
from api.kit.later import stopped_within
from models import applications as db
from models import identity as identity_db
from models import notifications as notifications_db

log = logging.getLogger("ywt.deadlines")

NOTIFY_KINDS = {"warning": "deadline_warning", "overdue": "deadline_overdue"}
TITLES = {"warning": "办件即将到期(剩余不足1个工作日)", "overdue": "办件已超期"}
# a case due further ahead than this is "normal" whatever the holidays (the longest run of days off in
# the Chinese calendar is under two weeks), so a pass reads only cases near their due time plus those
# whose stored status is not normal — not the whole table
HORIZON = timedelta(days=31)
BATCH = 500


class Calendar(Protocol):
    def status(self, now: datetime, due: datetime) -> str: ...


class HasCalendar(Protocol):
    """What the loop needs of its services (the server's and the worker's `Cases`)."""

    @property
    def calendar(self) -> Calendar: ...


@dataclass
class WatchReport:
    checked: int = 0  # running cases near their due time (or flagged) that were looked at
    warned: int = 0  # set to warning by this pass
    overdue: int = 0  # set to overdue by this pass
    cleared: int = 0  # set back to normal (the due date moved, e.g. after a suspension)
    notified: int = 0  # inbox notifications written
    skipped: int = 0  # changed by someone else (a clerk, another watcher) between read and update
    started_at: datetime | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = asdict(self)
        out["started_at"] = self.started_at.isoformat() if self.started_at else None
        out["seconds"] = round(self.seconds, 3)
        return out


class _Recipients:
    """The responsible clerks of a (department, point), looked up once per pass."""

    def __init__(self) -> None:
        self._staff: dict[int, list[int]] = {}
        self._grid: dict[int, list[int]] = {}

    async def of(self, department_id: int, point_id: int | None) -> list[int]:
        if department_id not in self._staff:
            self._staff[department_id] = await identity_db.active_staff_of(department_id)
        ids = list(self._staff[department_id])
        if point_id is not None:
            if point_id not in self._grid:
                self._grid[point_id] = await identity_db.active_grid_workers_of(point_id)
            ids.extend(i for i in self._grid[point_id] if i not in ids)
        return ids


async def watch_once(calendar: Calendar, now: datetime | None = None, *, batch: int = BATCH) -> WatchReport:
    """One pass of the watch at `now` (the current time when not given); what it changed."""
    moment = now or clock.now()
    report = WatchReport(started_at=moment)
    started = asyncio.get_running_loop().time()
    recipients = _Recipients()
    last_id = 0
    while True:
        rows = await db.running_cases_near_due(sorted(states.CLOCK_RUNNING), moment + HORIZON, last_id, batch)
        if not rows:
            break
        last_id = rows[-1]["id"]
        for row in rows:
            report.checked += 1
            await _check(calendar, moment, row, recipients, report)
        if len(rows) < batch:
            break
    report.seconds = asyncio.get_running_loop().time() - started
    return report


async def _check(
    calendar: Calendar, moment: datetime, row: dict, recipients: _Recipients, report: WatchReport
) -> None:
    old = row["deadline_status"]
    new = calendar.status(moment, row["due_at"])
    if new == old:
        return
    targets = await recipients.of(row["department_id"], row["point_id"]) if new in NOTIFY_KINDS else []
    async with in_transaction():
        if not await db.set_deadline_status(
            row["id"], row["version"], old, new, sorted(states.CLOCK_RUNNING)
        ):
            report.skipped += 1
            return
        if targets:
            title = TITLES[new]
            due_text = row["due_at"].astimezone(CITY_TZ).strftime("%Y-%m-%d %H:%M")
            await notifications_db.notify_each(
                targets,
                NOTIFY_KINDS[new],
                title,
                f"办件编号 {row['number']}：{title}，办理时限 {due_text}",
                application_id=row["id"],
            )
    report.notified += len(targets)
    if new == "warning":
        report.warned += 1
    elif new == "overdue":
        report.overdue += 1
    else:
        report.cleared += 1


async def watch_forever(
    cases: HasCalendar, interval: float, stop: asyncio.Event, *, first_after: float = 0.0
) -> None:
    """Run a pass every `interval` seconds (the first after `first_after`) until `stop` is set. A failing
    pass (database down, a bug on one row) is logged and the loop goes on; the next pass retries whatever
    the failed one did not finish. Setting `stop` lets a pass in flight finish; cancelling interrupts it,
    and its transaction of the case at hand rolls back whole."""
    log.info("deadline watch started", extra={"fields": {"interval": interval}})
    if await stopped_within(stop, first_after):
        log.info("deadline watch stopped")
        return
    while not stop.is_set():
        try:
            report = await watch_once(cases.calendar)
            if report.warned or report.overdue or report.cleared:
                log.info("deadline watch pass", extra={"fields": report.as_dict()})
        except Exception:
            log.exception("deadline watch pass failed")
        if await stopped_within(stop, interval):
            break
    log.info("deadline watch stopped")
