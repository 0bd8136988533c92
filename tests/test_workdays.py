"""Working-day deadlines against the real published calendars (chinese_calendar's 2024–2026 tables).

Every concrete date below was worked out by hand from the table as chinese_calendar has it; the first tests
pin those table facts so that a change of the table (not of our code) is reported as exactly that.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.kit.clock import CITY_TZ
from api.kit.config import CalendarSection
from api.kit.workdays import WorkCalendar, local_date

CN = CITY_TZ
EIGHT_HOURS = timedelta(hours=8)


def at(y: int, m: int, d: int, hh: int = 10, mm: int = 0, ss: int = 0) -> datetime:
    """A Shanghai wall-clock moment."""
    return datetime(y, m, d, hh, mm, ss, tzinfo=CN)


def eod(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, 23, 59, 59, tzinfo=CN)


@pytest.fixture
def cal() -> WorkCalendar:
    return WorkCalendar()


def _no_table_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "ywt.workdays" and r.levelno == logging.WARNING and "no holiday table" in r.getMessage()
    ]


# -- the table facts we rely on ---------------------------------------------------------------------------


def test_national_day_2026_table(cal: WorkCalendar) -> None:
    assert cal.is_workday(date(2026, 9, 30))  # Wed
    for day in range(1, 8):  # Oct 1 (Thu) .. Oct 7 (Wed) off
        assert not cal.is_workday(date(2026, 10, day)), day
    assert cal.is_workday(date(2026, 10, 8))  # Thu
    assert cal.is_workday(date(2026, 10, 9))  # Fri
    assert date(2026, 10, 10).weekday() == 5 and cal.is_workday(date(2026, 10, 10))  # make-up Saturday
    assert not cal.is_workday(date(2026, 10, 11))  # Sunday
    assert date(2026, 9, 20).weekday() == 6 and cal.is_workday(date(2026, 9, 20))  # make-up Sunday


def test_spring_festival_2026_table(cal: WorkCalendar) -> None:
    assert date(2026, 2, 14).weekday() == 5 and cal.is_workday(date(2026, 2, 14))  # make-up Saturday
    for offset in range(9):  # Feb 15 (Sun) .. Feb 23 (Mon) off
        day = date(2026, 2, 15) + timedelta(days=offset)
        assert not cal.is_workday(day), day
    assert cal.is_workday(date(2026, 2, 24))
    assert date(2026, 2, 28).weekday() == 5 and cal.is_workday(date(2026, 2, 28))  # make-up Saturday
    assert not cal.is_workday(date(2026, 3, 1))  # ordinary Sunday


def test_spring_festival_2025_table(cal: WorkCalendar) -> None:
    assert date(2025, 1, 26).weekday() == 6 and cal.is_workday(date(2025, 1, 26))  # make-up Sunday
    assert cal.is_workday(date(2025, 1, 27))
    for offset in range(8):  # Jan 28 (Tue) .. Feb 4 (Tue) off
        day = date(2025, 1, 28) + timedelta(days=offset)
        assert not cal.is_workday(day), day
    assert date(2025, 2, 8).weekday() == 5 and cal.is_workday(date(2025, 2, 8))  # make-up Saturday
    assert not cal.is_workday(date(2025, 2, 9))


def test_national_day_2024_table(cal: WorkCalendar) -> None:
    assert date(2024, 9, 29).weekday() == 6 and cal.is_workday(date(2024, 9, 29))  # make-up Sunday
    assert not cal.is_workday(date(2024, 9, 28))
    for day in range(1, 8):
        assert not cal.is_workday(date(2024, 10, day)), day
    assert date(2024, 10, 12).weekday() == 5 and cal.is_workday(date(2024, 10, 12))  # make-up Saturday


# -- add_workdays / workdays_between ----------------------------------------------------------------------


def test_add_workdays_across_national_day_2026(cal: WorkCalendar) -> None:
    start = date(2026, 9, 30)
    assert cal.add_workdays(start, 0) == start
    assert cal.add_workdays(start, 1) == date(2026, 10, 8)
    assert cal.add_workdays(start, 2) == date(2026, 10, 9)
    assert cal.add_workdays(start, 3) == date(2026, 10, 10)  # the make-up Saturday counts
    assert cal.add_workdays(start, 4) == date(2026, 10, 12)
    assert cal.workdays_between(start, date(2026, 10, 12)) == 4
    # the make-up Sunday before the holiday: Fri 09-18 + 1 is Sun 09-20, not Mon 09-21
    assert cal.add_workdays(date(2026, 9, 18), 1) == date(2026, 9, 20)


def test_add_workdays_across_spring_festival_2026(cal: WorkCalendar) -> None:
    assert cal.add_workdays(date(2026, 2, 13), 1) == date(2026, 2, 14)
    assert cal.add_workdays(date(2026, 2, 13), 2) == date(2026, 2, 24)
    assert cal.add_workdays(date(2026, 2, 26), 2) == date(2026, 2, 28)
    assert cal.add_workdays(date(2026, 2, 26), 3) == date(2026, 3, 2)
    # 02-14, 02-24, 02-25, 02-26, 02-27, 02-28
    assert cal.workdays_between(date(2026, 2, 13), date(2026, 2, 28)) == 6


def test_add_workdays_across_spring_festival_2025(cal: WorkCalendar) -> None:
    assert cal.add_workdays(date(2025, 1, 24), 1) == date(2025, 1, 26)  # make-up Sunday
    assert cal.add_workdays(date(2025, 1, 24), 2) == date(2025, 1, 27)
    assert cal.add_workdays(date(2025, 1, 24), 3) == date(2025, 2, 5)
    assert cal.add_workdays(date(2025, 2, 7), 1) == date(2025, 2, 8)  # make-up Saturday


def test_add_workdays_across_national_day_2024(cal: WorkCalendar) -> None:
    assert cal.add_workdays(date(2024, 9, 27), 1) == date(2024, 9, 29)
    assert cal.add_workdays(date(2024, 9, 27), 2) == date(2024, 9, 30)
    assert cal.add_workdays(date(2024, 9, 27), 3) == date(2024, 10, 8)


def test_workdays_between_is_zero_when_end_not_after_start(cal: WorkCalendar) -> None:
    assert cal.workdays_between(date(2026, 10, 9), date(2026, 10, 9)) == 0
    assert cal.workdays_between(date(2026, 10, 12), date(2026, 10, 9)) == 0
    assert cal.workdays_between(date(2026, 10, 8), date(2026, 10, 9)) == 1


def test_negative_days_and_datetimes_are_refused(cal: WorkCalendar) -> None:
    with pytest.raises(ValueError):
        cal.add_workdays(date(2026, 10, 9), -1)
    with pytest.raises(TypeError):
        cal.is_workday(at(2026, 10, 9))  # a datetime's own .date() may be the wrong day


# -- due_at -----------------------------------------------------------------------------------------------


def test_committed_due_across_national_day_2026(cal: WorkCalendar) -> None:
    accepted = at(2026, 9, 30, 16, 30)
    assert cal.due_at(accepted, "committed", 2) == eod(2026, 10, 9)
    assert cal.due_at(accepted, "committed", 3) == eod(2026, 10, 10)  # Saturday, a make-up workday
    assert cal.due_at(accepted, "committed", 4) == eod(2026, 10, 12)
    # accepted online on a holiday: the count starts after that day
    assert cal.due_at(at(2026, 10, 3), "committed", 1) == eod(2026, 10, 8)


def test_committed_due_across_spring_festival_2025(cal: WorkCalendar) -> None:
    assert cal.due_at(at(2025, 1, 24), "committed", 3) == eod(2025, 2, 5)


def test_same_day_accepted_on_saturday_is_due_that_saturday(cal: WorkCalendar) -> None:
    assert not cal.is_workday(date(2026, 10, 17))
    due = cal.due_at(at(2026, 10, 17, 9), "same_day", 0)
    assert due == eod(2026, 10, 17)
    assert due.utcoffset() == EIGHT_HOURS


def test_due_at_refuses_unknown_kind_and_negative_days(cal: WorkCalendar) -> None:
    with pytest.raises(ValueError):
        cal.due_at(at(2026, 10, 9), "someday", 3)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        cal.due_at(at(2026, 10, 9), "committed", -1)


def test_end_of_uses_configured_time_in_shanghai() -> None:
    cal = WorkCalendar(end_of_day=time(17, 30))
    due = cal.end_of(date(2026, 10, 9))
    assert due == datetime(2026, 10, 9, 9, 30, tzinfo=UTC)
    assert cal.due_at(at(2026, 9, 30), "committed", 1) == at(2026, 10, 8, 17, 30)


# -- time zones -------------------------------------------------------------------------------------------


def test_utc_moments_are_taken_on_the_shanghai_day(cal: WorkCalendar) -> None:
    late_utc = datetime(2026, 10, 9, 17, 0, tzinfo=UTC)  # 2026-10-10 01:00 in Shanghai
    assert local_date(late_utc) == date(2026, 10, 10)
    assert cal.due_at(late_utc, "same_day", 0) == eod(2026, 10, 10)
    assert cal.due_at(late_utc, "committed", 1) == eod(2026, 10, 12)
    earlier_utc = datetime(2026, 10, 9, 15, 0, tzinfo=UTC)  # 2026-10-09 23:00 in Shanghai
    assert cal.due_at(earlier_utc, "same_day", 0) == eod(2026, 10, 9)
    assert cal.due_at(earlier_utc, "committed", 1) == eod(2026, 10, 10)


def test_naive_datetimes_are_refused(cal: WorkCalendar) -> None:
    naive = datetime(2026, 10, 9, 10, 0)
    aware = at(2026, 10, 9)
    with pytest.raises(ValueError):
        cal.due_at(naive, "committed", 1)
    with pytest.raises(ValueError):
        cal.due_at(naive, "same_day", 0)
    with pytest.raises(ValueError):
        cal.extend(naive, 1)
    with pytest.raises(ValueError):
        cal.paused_workdays(naive, aware)
    with pytest.raises(ValueError):
        cal.paused_workdays(aware, naive)
    with pytest.raises(ValueError):
        cal.remaining_workdays(naive, aware)
    with pytest.raises(ValueError):
        cal.status(aware, naive)
    with pytest.raises(ValueError):
        local_date(naive)


# -- beyond chinese_calendar's table ----------------------------------------------------------------------


def test_year_without_table_falls_back_to_weekends_and_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ywt.workdays")
    cal = WorkCalendar()
    accepted = at(2026, 12, 30)
    # Thu 2026-12-31 (table), then 2027 as plain weekdays: Fri 01-01 counts, Sat/Sun do not
    assert cal.due_at(accepted, "committed", 2) == eod(2027, 1, 1)
    assert cal.due_at(accepted, "committed", 3) == eod(2027, 1, 4)
    assert cal.due_at(accepted, "committed", 5) == eod(2027, 1, 6)
    assert not cal.is_workday(date(2027, 1, 2))
    assert cal.workdays_between(date(2026, 12, 30), date(2027, 1, 6)) == 5
    assert _no_table_warnings(caplog) == ["no holiday table for 2027: weekends only"]

    cal.is_workday(date(2028, 3, 1))  # another uncovered year: its own warning
    assert _no_table_warnings(caplog) == [
        "no holiday table for 2027: weekends only",
        "no holiday table for 2028: weekends only",
    ]
    WorkCalendar().is_workday(date(2027, 1, 4))  # per instance: a new calendar warns again
    assert len(_no_table_warnings(caplog)) == 3


def test_configured_year_beyond_table(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ywt.workdays")
    section = CalendarSection(extra_holidays=[date(2027, 1, 1)], extra_workdays=[date(2027, 1, 3)])
    cal = WorkCalendar.from_settings(section)
    assert date(2027, 1, 3).weekday() == 6
    assert not cal.is_workday(date(2027, 1, 1))  # configured holiday on a Friday
    assert not cal.is_workday(date(2027, 1, 2))  # plain Saturday
    assert cal.is_workday(date(2027, 1, 3))  # configured make-up Sunday
    accepted = at(2026, 12, 30)
    assert cal.due_at(accepted, "committed", 1) == eod(2026, 12, 31)
    assert cal.due_at(accepted, "committed", 2) == eod(2027, 1, 3)
    assert cal.due_at(accepted, "committed", 3) == eod(2027, 1, 4)
    assert _no_table_warnings(caplog) == []


def test_table_wins_over_config_for_covered_years(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ywt.workdays")
    cal = WorkCalendar(extra_holidays=[date(2026, 10, 9)], extra_workdays=[date(2026, 10, 11)])
    assert cal.is_workday(date(2026, 10, 9))
    assert not cal.is_workday(date(2026, 10, 11))
    assert any("2026-10-09" in r.getMessage() and "ignored" in r.getMessage() for r in caplog.records)


def test_a_date_cannot_be_both_holiday_and_workday() -> None:
    with pytest.raises(ValueError):
        WorkCalendar(extra_holidays=[date(2027, 1, 1)], extra_workdays=[date(2027, 1, 1)])


def test_from_settings_defaults() -> None:
    cal = WorkCalendar.from_settings(CalendarSection())
    assert cal.end_of(date(2026, 10, 10)) == eod(2026, 10, 10)


# -- suspension (特别程序) --------------------------------------------------------------------------------


def test_paused_workdays_simple_cases(cal: WorkCalendar) -> None:
    assert cal.paused_workdays(at(2026, 11, 16, 9), at(2026, 11, 16, 17)) == 0  # same day
    assert cal.paused_workdays(at(2026, 11, 16, 17), at(2026, 11, 18, 9)) == 2  # Mon -> Wed: Mon, Tue
    # Fri -> Tue across a weekend: Fri, Mon
    assert cal.paused_workdays(at(2026, 11, 13, 15), at(2026, 11, 17, 9)) == 2
    # suspended on a Saturday, resumed Monday: no working day was lost
    assert cal.paused_workdays(at(2026, 11, 14, 10), at(2026, 11, 16, 10)) == 0
    assert cal.paused_workdays(at(2026, 11, 18), at(2026, 11, 16)) == 0  # resume before suspend


def test_paused_workdays_across_national_day_and_extend(cal: WorkCalendar) -> None:
    suspended = at(2026, 9, 28, 10)  # Monday
    resumed = at(2026, 10, 12, 9)  # Monday after the holiday
    # 09-28, 09-29, 09-30, 10-08, 10-09, 10-10 (make-up Saturday); not 10-01..07, 10-11, nor 10-12
    assert cal.paused_workdays(suspended, resumed) == 6
    # committed 5 from Fri 09-25: 09-28, 09-29, 09-30, (10-01..07 off) 10-08, 10-09
    due = cal.due_at(at(2026, 9, 25), "committed", 5)
    assert due == eod(2026, 10, 9)
    # given back six: 10-10 (make-up Saturday), 10-12, 10-13, 10-14, 10-15, 10-16
    assert cal.extend(due, 6) == eod(2026, 10, 16)


def test_extend_moves_due_by_working_days(cal: WorkCalendar) -> None:
    due = eod(2026, 10, 9)
    assert cal.extend(due, 0) == due
    assert cal.extend(due, 1) == eod(2026, 10, 10)
    assert cal.extend(due, 6) == eod(2026, 10, 16)  # 10-10, 12, 13, 14, 15, 16
    # a due instant given in UTC is extended from its Shanghai day
    assert cal.extend(datetime(2026, 10, 9, 15, 59, 59, tzinfo=UTC), 2) == eod(2026, 10, 12)
    with pytest.raises(ValueError):
        cal.extend(due, -1)


def test_suspend_and_resume_end_to_end(cal: WorkCalendar) -> None:
    due = cal.due_at(at(2026, 9, 30, 16), "committed", 3)
    assert due == eod(2026, 10, 10)
    paused = cal.paused_workdays(at(2026, 10, 8, 11), at(2026, 10, 12, 14))  # Thu 08, Fri 09, Sat 10
    assert paused == 3
    assert cal.extend(due, paused) == eod(2026, 10, 14)  # 10-12, 10-13, 10-14


# -- deadline watch (电子监察) ----------------------------------------------------------------------------


def test_remaining_and_status_around_national_day(cal: WorkCalendar) -> None:
    due = cal.due_at(at(2026, 9, 30), "committed", 2)
    assert due == eod(2026, 10, 9)
    now = at(2026, 9, 30, 12)
    assert cal.remaining_workdays(now, due) == 2 and cal.status(now, due) == "normal"
    now = at(2026, 10, 7, 12)  # last holiday: still two working days (08, 09)
    assert cal.remaining_workdays(now, due) == 2 and cal.status(now, due) == "normal"
    now = at(2026, 10, 8, 9)
    assert cal.remaining_workdays(now, due) == 1 and cal.status(now, due) == "warning"
    now = at(2026, 10, 9, 12)
    assert cal.remaining_workdays(now, due) == 0 and cal.status(now, due) == "warning"
    assert cal.status(due, due) == "warning"  # at the due second itself: not yet overdue
    after = due + timedelta(seconds=1)
    assert cal.status(after, due) == "overdue"
    assert cal.remaining_workdays(after, due) == 0
    assert cal.remaining_workdays(at(2026, 10, 20), due) == 0


def test_warning_across_a_weekend(cal: WorkCalendar) -> None:
    due = eod(2026, 11, 16)  # Monday
    assert cal.remaining_workdays(at(2026, 11, 12), due) == 2  # Thu: Fri, Mon
    assert cal.status(at(2026, 11, 12), due) == "normal"
    assert cal.remaining_workdays(at(2026, 11, 13), due) == 1  # Fri: only Mon left
    assert cal.status(at(2026, 11, 13), due) == "warning"


def test_status_compares_instants_not_wall_clocks(cal: WorkCalendar) -> None:
    due = eod(2026, 10, 9)  # 15:59:59Z
    assert cal.status(datetime(2026, 10, 9, 15, 59, 59, tzinfo=UTC), due) == "warning"
    assert cal.status(datetime(2026, 10, 9, 16, 0, 0, tzinfo=UTC), due) == "overdue"


# -- property ---------------------------------------------------------------------------------------------

_PROPERTY_CAL = WorkCalendar()


@settings(max_examples=300, deadline=None)
@given(start=st.dates(min_value=date(2024, 1, 1), max_value=date(2026, 12, 31)), n=st.integers(0, 30))
def test_add_and_between_are_inverse(start: date, n: int) -> None:
    end = _PROPERTY_CAL.add_workdays(start, n)
    assert _PROPERTY_CAL.workdays_between(start, end) == n
    if n > 0:
        assert end > start
        assert _PROPERTY_CAL.is_workday(end)
        # nothing skipped: the day before the result holds one working day fewer
        assert _PROPERTY_CAL.workdays_between(start, end - timedelta(days=1)) == n - 1
    else:
        assert end == start
