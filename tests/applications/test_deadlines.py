"""电子监察 — the deadline watch: statuses from the working-day calendar, notifications to the clerks
responsible, idempotent and safe with several watchers, suspended cases left alone, and the worker process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import orjson
import pytest

from api.applications.deadlines import WatchReport, watch_forever, watch_once
from api.kit.config import PROJECT_ROOT
from api.kit.workdays import WorkCalendar
from models import applications as db
from models.notifications import Notification
from tests.support.catalog import load_catalog
from tests.support.people import ZHANG
from tests.support.rows import make_case

SH = ZoneInfo("Asia/Shanghai")
POINT = "P360502001001"
OTHER_POINT = "P360502002001"
ITEM = "360500-MZ-001"  # civil affairs
# Wednesday 11 June 2025, mid-morning: an ordinary working week (端午 was 31 May – 2 June)
NOW = datetime(2025, 6, 11, 10, 0, tzinfo=SH)


@pytest.fixture
async def calendar(settings) -> WorkCalendar:
    return WorkCalendar.from_settings(settings.calendar)


async def cast(people) -> SimpleNamespace:
    """The resident, the clerks responsible for civil-affairs cases at POINT, and clerks who are not: their
    account ids."""
    await load_catalog()
    return SimpleNamespace(
        resident=await people.account(["resident"], phone="13800000009"),
        staff=await people.account(["staff"], department="civil"),
        staff2=await people.account(["staff"], department="civil"),
        disabled_staff=await _disabled(people),
        other_staff=await people.account(["staff"], department="hrss"),
        grid=await people.account(["grid_worker"], points=[POINT]),
        other_grid=await people.account(["grid_worker"], points=[OTHER_POINT]),
        admin=await people.account(["admin"]),
    )


async def _disabled(people) -> int:
    account_id = await people.account(["staff"], department="civil")
    from models.identity import Account

    await Account.filter(id=account_id).update(status="disabled")
    return account_id


async def case(
    applicant: int,
    due: datetime | None,
    *,
    status: str = "accepted",
    point: str | None = POINT,
    item: str = ITEM,
    deadline_status: str = "normal",
) -> db.Application:
    """A case row as the service leaves it after the clerks' actions (the API journey is tested below)."""
    return await make_case(
        applicant,
        item=item,
        point=point,
        status=status,
        deadline_status=deadline_status,
        accepted=due is not None,
        accepted_at=NOW - timedelta(days=10) if due else None,
        due_at=due,
        suspended_at=NOW - timedelta(days=1) if status == "suspended" else None,
    )


def end_of(calendar: WorkCalendar, day: date) -> datetime:
    return calendar.end_of(day)


async def status_of(case_row: db.Application) -> str:
    return (await db.Application.get(id=case_row.id)).deadline_status


async def deadline_notes(application_id: int | None = None) -> list[Notification]:
    qs = Notification.filter(kind__startswith="deadline_")
    if application_id is not None:
        qs = qs.filter(application_id=application_id)
    return await qs.order_by("id")


async def test_statuses_follow_the_calendar_and_the_responsible_clerks_are_told(
    app, client, calendar, people
):
    p = await cast(people)
    overdue = await case(p.resident, end_of(calendar, date(2025, 6, 10)))  # yesterday
    warning = await case(p.resident, end_of(calendar, date(2025, 6, 12)))  # tomorrow: one working day left
    due_today = await case(p.resident, end_of(calendar, date(2025, 6, 11)), status="in_review")
    normal = await case(p.resident, end_of(calendar, date(2025, 6, 13)))  # Friday: two working days left
    far = await case(p.resident, end_of(calendar, date(2025, 9, 30)))
    online = await case(p.resident, end_of(calendar, date(2025, 6, 9)), point=None)

    report = await watch_once(calendar, now=NOW)

    assert isinstance(report, WatchReport)
    assert (report.warned, report.overdue, report.cleared) == (2, 2, 0)
    assert report.checked >= 5  # every running case near its due time (far ones need no look)
    assert await status_of(overdue) == "overdue" and await status_of(online) == "overdue"
    assert await status_of(warning) == "warning" and await status_of(due_today) == "warning"
    assert await status_of(normal) == "normal" and await status_of(far) == "normal"

    # the department's active staff and the point's grid worker, nobody else
    for row, kind in (
        (overdue, "deadline_overdue"),
        (warning, "deadline_warning"),
        (due_today, "deadline_warning"),
    ):
        notes = await deadline_notes(row.id)
        assert sorted(n.account_id for n in notes) == sorted([p.staff, p.staff2, p.grid])
        assert {n.kind for n in notes} == {kind}
        assert all(row.number in n.body for n in notes)
    # an online case has no point: its department's staff only
    assert sorted(n.account_id for n in await deadline_notes(online.id)) == sorted([p.staff, p.staff2])
    assert report.notified == 3 * 3 + 2 == len(await deadline_notes())
    assert not await Notification.filter(
        account_id__in=[p.disabled_staff, p.other_staff, p.other_grid, p.admin, p.resident]
    ).exists()


async def test_a_second_pass_writes_nothing_new(app, client, calendar, people):
    p = await cast(people)
    await case(p.resident, end_of(calendar, date(2025, 6, 10)))
    await case(p.resident, end_of(calendar, date(2025, 6, 12)))
    first = await watch_once(calendar, now=NOW)
    assert first.notified == 6
    before = await Notification.all().count()
    again = await watch_once(calendar, now=NOW + timedelta(minutes=1))
    assert (again.warned, again.overdue, again.cleared, again.notified) == (0, 0, 0, 0)
    assert again.checked == first.checked
    assert await Notification.all().count() == before


async def test_warning_turns_overdue_after_the_due_time_and_tells_again(app, client, calendar, people):
    p = await cast(people)
    row = await case(p.resident, end_of(calendar, date(2025, 6, 12)))
    await watch_once(calendar, now=NOW)
    assert await status_of(row) == "warning"
    report = await watch_once(calendar, now=datetime(2025, 6, 13, 0, 0, 1, tzinfo=SH))
    assert report.overdue == 1 and report.notified == 3
    assert await status_of(row) == "overdue"
    kinds = [n.kind for n in await deadline_notes(row.id) if n.account_id == p.grid]
    assert kinds == ["deadline_warning", "deadline_overdue"]


async def test_national_day_holidays_are_not_working_days_for_the_watch(app, client, calendar, people):
    p = await cast(people)
    # 国庆 2025: 1–8 October off, Saturday 11 October a make-up workday. On Tuesday 30 September the next
    # working day is 9 October, so a case due then has one working day left: warning, not normal.
    row = await case(p.resident, end_of(calendar, date(2025, 10, 9)))
    later = await case(p.resident, end_of(calendar, date(2025, 10, 10)))
    report = await watch_once(calendar, now=datetime(2025, 9, 30, 16, 0, tzinfo=SH))
    assert report.warned == 1
    assert await status_of(row) == "warning" and await status_of(later) == "normal"


async def test_suspended_and_finished_cases_are_left_alone(app, client, calendar, people):
    p = await cast(people)
    past = end_of(calendar, date(2025, 6, 2))
    suspended = await case(p.resident, past, status="suspended")
    suspended_flagged = await case(p.resident, past, status="suspended", deadline_status="warning")
    for status in ("approved", "rejected", "ready", "delivered", "closed", "withdrawn", "refused"):
        await case(p.resident, past, status=status)
    submitted = await case(p.resident, None, status="submitted")
    report = await watch_once(calendar, now=NOW)
    assert (report.checked, report.warned, report.overdue, report.notified) == (0, 0, 0, 0)
    assert await status_of(suspended) == "normal"  # the clock is paused
    assert await status_of(suspended_flagged) == "warning"  # and what it showed stays
    assert await status_of(submitted) == "normal"
    assert await db.Application.filter(deadline_status="overdue").count() == 0
    assert await Notification.all().count() == 0


async def test_a_moved_due_date_clears_the_flag_without_telling_anyone(app, client, calendar, people):
    p = await cast(people)
    row = await case(p.resident, end_of(calendar, date(2025, 6, 10)))
    await watch_once(calendar, now=NOW)
    assert await status_of(row) == "overdue"
    # resumed after a suspension: the due date moved by the paused working days
    await db.Application.filter(id=row.id).update(due_at=end_of(calendar, date(2025, 8, 29)))
    report = await watch_once(calendar, now=NOW)
    assert (report.cleared, report.notified) == (1, 0)
    assert await status_of(row) == "normal"


async def test_two_watchers_at_once_make_each_change_once(app, client, calendar, people):
    p = await cast(people)
    for day in (date(2025, 6, 9), date(2025, 6, 10), date(2025, 6, 12)):
        await case(p.resident, end_of(calendar, day))
    reports = await asyncio.gather(*(watch_once(calendar, now=NOW) for _ in range(3)))
    assert sum(r.overdue for r in reports) == 2 and sum(r.warned for r in reports) == 1
    assert sum(r.notified for r in reports) == 9 == len(await deadline_notes())


async def test_the_watch_never_spoils_a_clerks_optimistic_lock(app, client, calendar, people):
    p = await cast(people)
    row = await case(p.resident, end_of(calendar, date(2025, 6, 10)))
    await watch_once(calendar, now=NOW)
    assert (await db.Application.get(id=row.id)).version == row.version  # a clerk who read it still wins
    assert await db.move(row.id, row.version, status="approved", deadline_status="normal")


async def test_watch_forever_survives_a_failing_pass_and_stops_when_asked(app, client, calendar, people):
    p = await cast(people)
    row = await case(p.resident, end_of(calendar, date(2020, 1, 2)))

    class Flaky:
        """The real calendar, whose first answer blows up (a bug, a lost connection…)."""

        def __init__(self) -> None:
            self.calls = 0

        def status(self, now: datetime, due: datetime) -> str:
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("boom")
            return calendar.status(now, due)

    class Deps:
        calendar = Flaky()

    stop = asyncio.Event()
    task = asyncio.create_task(watch_forever(Deps(), 0.01, stop))
    for _ in range(500):
        if await status_of(row) == "overdue":
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert await status_of(row) == "overdue"
    assert Deps.calendar.calls >= 2


async def test_watch_forever_waits_before_its_first_pass_and_stops_while_waiting(
    app, client, calendar, people
):
    p = await cast(people)
    row = await case(p.resident, end_of(calendar, date(2020, 1, 2)))

    class Deps:
        pass

    Deps.calendar = calendar
    stop = asyncio.Event()
    task = asyncio.create_task(watch_forever(Deps(), 3600, stop, first_after=3600))
    await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(task, timeout=2)
    assert await status_of(row) == "normal"  # no pass ran


async def overdue_through_the_api(people, client, calendar) -> tuple[int, dict[str, str]]:
    """Submit and accept a case through the API, then run the watch past its due time: (id, staff headers)."""
    await load_catalog()
    resident = (await people.resident(ZHANG)).headers
    grid_worker = await people.grid_worker(points=[POINT])
    clerk = await people.staff(department="civil")
    grid, staff = grid_worker.headers, clerk.headers
    r = await client.post(
        "/api/v1/applications",
        json={"item_code": ITEM, "point_code": POINT, "form": {}, "delivery": {"mode": "pickup"}},
        headers=resident,
    )
    assert r.status_code == 201, r.text
    case_id = r.json()["id"]
    r = await client.post(
        f"/api/v1/work/applications/{case_id}/actions", json={"action": "accept"}, headers=grid
    )
    assert r.status_code == 200, r.text
    due = datetime.fromisoformat(r.json()["due_at"])
    assert r.json()["deadline_status"] == "normal"

    report = await watch_once(calendar, now=due + timedelta(seconds=1))
    assert report.overdue == 1 and report.notified == 2

    r = await client.get(f"/api/v1/work/applications/{case_id}", headers=staff)
    assert r.status_code == 200 and r.json()["deadline_status"] == "overdue"
    r = await client.get(f"/api/v1/applications/{case_id}", headers=resident)
    assert r.json()["deadline_status"] == "overdue"
    assert sorted(n.account_id for n in await deadline_notes(case_id)) == sorted([grid_worker.id, clerk.id])
    return case_id, staff


async def test_through_the_api_an_accepted_case_turns_overdue(app, client, calendar, people):
    await overdue_through_the_api(people, client, calendar)


async def test_overdue_cases_show_in_the_clerks_queue(app, client, calendar, people):
    case_id, staff = await overdue_through_the_api(people, client, calendar)
    r = await client.get("/api/v1/work/applications", params={"overdue": "true"}, headers=staff)
    assert r.status_code == 200, r.text
    assert [c["id"] for c in r.json()["items"]] == [case_id]
    r = await client.get("/api/v1/work/applications", params={"overdue": "false"}, headers=staff)
    assert r.status_code == 200 and r.json()["items"] == []


# ---- the worker process --------------------------------------------------------------------------------


def worker_env(settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YWT_")}
    env.update(
        YWT_DATABASE__URL=settings.database.url,
        YWT_APP__DATA_DIR=str(settings.app.data_dir),
        YWT_REDIS__URL=settings.redis.url,
        YWT_APP__LOG_LEVEL="INFO",
    )
    env.update(extra)
    return env


def report_line(stdout: str) -> dict:
    lines = [orjson.loads(line) for line in stdout.splitlines() if line.startswith('{"deadline_watch"')]
    assert len(lines) == 1, stdout
    return lines[0]["deadline_watch"]


async def test_worker_once_runs_a_pass_prints_its_report_and_exits_0(app, client, calendar, settings, people):
    p = await cast(people)
    overdue = await case(p.resident, end_of(calendar, date(2020, 1, 2)))
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "api.worker", "--once"],
        cwd=PROJECT_ROOT,
        env=worker_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    report = report_line(done.stdout)
    assert report["overdue"] == 1 and report["notified"] == 3 and report["checked"] == 1
    assert await status_of(overdue) == "overdue"
    assert len(await deadline_notes(overdue.id)) == 3


async def test_worker_stops_cleanly_on_sigterm(app, client, calendar, settings, people):
    p = await cast(people)
    row = await case(p.resident, end_of(calendar, date(2020, 1, 2)))
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.worker"],
        cwd=PROJECT_ROOT,
        env=worker_env(settings, YWT_APPLICATIONS__DEADLINE_WATCH_INTERVAL="0.2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while await status_of(row) != "overdue" and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert await status_of(row) == "overdue"
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.to_thread(proc.communicate, timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "deadline watch stopped" in out


def test_worker_refuses_a_bad_setting_with_one_line():
    env = {k: v for k, v in os.environ.items() if not k.startswith("YWT_")}
    env["YWT_APPLICATIONS__DEADLINE_WATCH_INTERVAL"] = "-1"
    done = subprocess.run(
        [sys.executable, "-m", "api.worker", "--once"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "YWT_APPLICATIONS__DEADLINE_WATCH_INTERVAL" in done.stderr
