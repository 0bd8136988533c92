"""Deadlines counted in Chinese working days (工作日), for 承诺件, 特别程序 and 电子监察.

Why this module exists: the promised time of a committed item (承诺时限) is counted in *working* days, and
in China those are not simply Monday to Friday — statutory holidays close weekdays and make-up workdays
(调休) open Saturdays and Sundays. `chinese_calendar` carries the State Council's published table, so it is
the source of truth for every year it covers. Its table ends (2026 in 1.11; it raises NotImplementedError
beyond), while a case accepted in December runs into the next year, so further years come from
`config.toml` (`calendar.extra_holidays` / `calendar.extra_workdays`), and a year known to neither falls
back to plain weekends with one warning in the log, rather than refusing to compute a deadline at all.

The coverage of `chinese_calendar` is probed at runtime (not hard-coded), so upgrading the package to a
version with a newer table takes effect without touching this code.

Everything here is pure (no I/O besides a log line, no Sanic, no ORM) so the rules can be tested directly.
All datetimes must be timezone-aware; a day is always the day in the city's zone, Asia/Shanghai, because
"the acceptance day" and "end of day" mean the day on the wall of the service hall, not in UTC.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import Literal, Protocol

import chinese_calendar

from api.kit.clock import CITY_TZ

__all__ = ["CalendarSettings", "DeadlineStatus", "ItemKind", "WorkCalendar", "local_date"]


ItemKind = Literal["same_day", "committed"]
DeadlineStatus = Literal["normal", "warning", "overdue"]

log = logging.getLogger("ywt.workdays")

_REMEMBERED_DAYS = 20_000  # some 55 years of days; more and the memory is cleared
_ONE_DAY = timedelta(days=1)


class CalendarSettings(Protocol):
    """What `from_settings` reads: `api.kit.config.CalendarSection` fits; a Protocol keeps this module free of
    the settings machinery."""

    @property
    def extra_holidays(self) -> Iterable[date]: ...

    @property
    def extra_workdays(self) -> Iterable[date]: ...

    @property
    def end_of_day(self) -> time: ...


def _aware(moment: datetime, name: str) -> datetime:
    """Reject naive datetimes: guessing their zone would silently shift deadlines by eight hours."""
    if not isinstance(moment, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (got naive {moment.isoformat()})")
    return moment


def _plain_date(day: date, name: str) -> date:
    """Reject datetimes where a date is expected: a datetime's .date() is in *its* zone, which is how a
    UTC timestamp ends up counted on the wrong day. Callers convert with `local_date` first."""
    if isinstance(day, datetime):
        raise TypeError(f"{name} must be a date, not a datetime; use local_date() to take its Shanghai date")
    if not isinstance(day, date):
        raise TypeError(f"{name} must be a date, got {type(day).__name__}")
    return day


def local_date(moment: datetime) -> date:
    """The calendar day of an aware datetime in Asia/Shanghai (2026-10-09T17:00Z is 2026-10-10 here)."""
    return _aware(moment, "moment").astimezone(CITY_TZ).date()


def _table_covers(year: int) -> bool:
    """Whether the installed chinese_calendar has the official table for `year` (asked, not assumed)."""
    try:
        chinese_calendar.is_workday(date(year, 6, 1))
    except NotImplementedError:
        return False
    return True


class WorkCalendar:
    """Working days for one configuration. Build it once (at start, from settings) and share it: it keeps
    which years it has already warned about, so the log gets one line per uncovered year, not one per
    deadline computed."""

    def __init__(
        self,
        extra_holidays: Iterable[date] = (),
        extra_workdays: Iterable[date] = (),
        end_of_day: time = time(23, 59, 59),
    ) -> None:
        holidays = frozenset(_plain_date(d, "extra_holidays") for d in extra_holidays)
        workdays = frozenset(_plain_date(d, "extra_workdays") for d in extra_workdays)
        both = holidays & workdays
        if both:
            raise ValueError(f"a date cannot be both an extra holiday and an extra workday: {min(both)}")
        if not isinstance(end_of_day, time):
            raise TypeError(f"end_of_day must be a time, got {type(end_of_day).__name__}")
        if end_of_day.tzinfo is not None:
            # the zone is always Asia/Shanghai; a second zone on the time would contradict it
            raise ValueError("end_of_day must be a wall-clock time without a zone (it is Asia/Shanghai)")
        self._extra_holidays = holidays
        self._extra_workdays = workdays
        self._config_years = frozenset(d.year for d in holidays | workdays)
        self.end_of_day = end_of_day
        self._covered: dict[int, bool] = {}
        self._days: dict[date, bool] = {}  # is_workday's answers: the table and the config never change
        self._warned_years: set[int] = set()
        ignored = sorted(d for d in holidays | workdays if self._covers(d.year))
        if ignored:
            # the published table wins for the years it has; say so instead of ignoring config silently
            log.warning(
                "calendar extra dates ignored, chinese_calendar has those years: %s",
                ", ".join(d.isoformat() for d in ignored),
            )

    @classmethod
    def from_settings(cls, calendar_section: CalendarSettings) -> WorkCalendar:
        """Build from `settings.calendar` (api.kit.config.CalendarSection)."""
        return cls(
            extra_holidays=calendar_section.extra_holidays,
            extra_workdays=calendar_section.extra_workdays,
            end_of_day=calendar_section.end_of_day,
        )

    # -- days -------------------------------------------------------------------------------------------

    def _covers(self, year: int) -> bool:
        covered = self._covered.get(year)
        if covered is None:
            covered = self._covered[year] = _table_covers(year)
        return covered

    def is_workday(self, d: date) -> bool:
        """Whether offices work on `d`: the official table when chinese_calendar has the year; otherwise the
        configured extra holidays (off) and make-up workdays (on), else Monday to Friday.

        Answers are remembered (chinese_calendar checks its argument on every call, and the deadline watch
        asks about the same few weeks for every open case on each pass)."""
        known = self._days.get(d) if type(d) is date else None
        if known is not None:
            return known
        d = _plain_date(d, "d")
        if len(self._days) >= _REMEMBERED_DAYS:
            self._days.clear()
        answer = self._days[d] = self._day_is_workday(d)
        return answer

    def _day_is_workday(self, d: date) -> bool:
        if self._covers(d.year):
            return bool(chinese_calendar.is_workday(d))
        if d.year not in self._config_years and d.year not in self._warned_years:
            self._warned_years.add(d.year)
            log.warning("no holiday table for %d: weekends only", d.year)
        if d in self._extra_holidays:
            return False
        if d in self._extra_workdays:
            return True
        return d.weekday() < 5

    def add_workdays(self, start: date, n: int) -> date:
        """The n-th working day after `start` (start itself is not counted, as the promised period begins
        the day after acceptance); n == 0 gives `start` back unchanged."""
        start = _plain_date(start, "start")
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        day = start
        while n > 0:
            day += _ONE_DAY
            if self.is_workday(day):
                n -= 1
        return day

    def workdays_between(self, start: date, end: date) -> int:
        """How many working days d satisfy start < d <= end (0 when end <= start): the inverse of
        add_workdays, so workdays_between(s, add_workdays(s, n)) == n."""
        start = _plain_date(start, "start")
        end = _plain_date(end, "end")
        count = 0
        day = start + _ONE_DAY
        while day <= end:
            if self.is_workday(day):
                count += 1
            day += _ONE_DAY
        return count

    def end_of(self, d: date) -> datetime:
        """The deadline instant of day `d`: `end_of_day` (23:59:59 by default) in Asia/Shanghai."""
        return datetime.combine(_plain_date(d, "d"), self.end_of_day, tzinfo=CITY_TZ)

    # -- deadlines --------------------------------------------------------------------------------------

    def due_at(self, accepted_at: datetime, kind: ItemKind, promised_days: int) -> datetime:
        """When an application accepted at `accepted_at` must be decided.

        same_day (即办件): end of the acceptance day, even on a weekend (an online acceptance on Saturday is
        still promised that day). committed (承诺件): end of the `promised_days`-th working day after the
        acceptance day, so accepting late in the afternoon does not eat into the promised time."""
        accepted_on = local_date(_aware(accepted_at, "accepted_at"))
        if kind == "same_day":
            return self.end_of(accepted_on)
        if kind == "committed":
            return self.end_of(self.add_workdays(accepted_on, promised_days))
        raise ValueError(f"unknown item kind {kind!r}: expected 'same_day' or 'committed'")

    def extend(self, due: datetime, paused_workdays: int) -> datetime:
        """The due date moved later by `paused_workdays` working days (end of that day), when a suspension
        (特别程序) ends: the paused days are given back. Zero paused days leave `due` as it was."""
        due = _aware(due, "due")
        if paused_workdays < 0:
            raise ValueError(f"paused_workdays must be >= 0, got {paused_workdays}")
        if paused_workdays == 0:
            return due.astimezone(CITY_TZ)
        return self.end_of(self.add_workdays(local_date(due), paused_workdays))

    def paused_workdays(self, suspended_at: datetime, resumed_at: datetime) -> int:
        """Working days the clock stood still: working days d with suspended day <= d < resumed day.

        The suspension day counts (work stopped on it), the resume day does not (work goes on that day), so
        suspending and resuming the same day pauses 0 and Monday→Wednesday pauses 2 (Mon, Tue). A resume
        that is not after the suspension pauses 0."""
        suspended_on = local_date(_aware(suspended_at, "suspended_at"))
        resumed_on = local_date(_aware(resumed_at, "resumed_at"))
        # {d : s <= d < r} == {d : s-1 < d <= r-1}
        return self.workdays_between(suspended_on - _ONE_DAY, resumed_on - _ONE_DAY)

    def remaining_workdays(self, now: datetime, due: datetime) -> int:
        """Working days after today up to and including the due day; 0 when due is today or past."""
        return self.workdays_between(local_date(_aware(now, "now")), local_date(_aware(due, "due")))

    def status(self, now: datetime, due: datetime) -> DeadlineStatus:
        """电子监察: "overdue" once `now` is past `due`; "warning" while at most one working day remains
        (including the due day itself); otherwise "normal"."""
        if _aware(now, "now") > _aware(due, "due"):
            return "overdue"
        if self.remaining_workdays(now, due) <= 1:
            return "warning"
        return "normal"
