"""China's working calendar and the team dates derived from it, including the fallback past the calendar's data."""
from __future__ import annotations

import logging
from datetime import date

import pytest

from bot.appraisal import workcalendar as wc
from bot.appraisal.periods import Week
from bot.config import SelfReviewConfig, WeeklyReportConfig

WEEKLY = WeeklyReportConfig()


@pytest.mark.parametrize("day, expected", [
    (date(2026, 11, 27), True),  # an ordinary Friday
    (date(2026, 11, 28), False),  # an ordinary Saturday
    (date(2026, 2, 14), True),  # Saturday make-up workday before the Spring Festival
    (date(2026, 2, 17), False),  # the Spring Festival
    (date(2026, 10, 1), False),  # National Day
    (date(2026, 10, 10), True),  # Saturday make-up workday after National Day
    (date(2026, 9, 20), True),  # Sunday make-up workday
])
def test_is_workday_follows_the_official_calendar(day: date, expected: bool) -> None:
    assert wc.is_workday(day) is expected


def test_weeks() -> None:
    assert wc.week_of(date(2026, 11, 27)) == "2026-W48"
    assert wc.week_of(date(2026, 1, 1)) == "2026-W01"
    assert wc.week_of(date(2027, 1, 1)) == "2026-W53"
    assert wc.week_days("2026-W48")[0] == date(2026, 11, 23) and wc.week_days("2026-W48")[-1] == date(2026, 11, 29)
    assert wc.shift_week("2026-W01", -1) == "2025-W52"
    with pytest.raises(ValueError):
        Week.parse("2026-W54")  # 2026 has 53 ISO weeks


@pytest.mark.parametrize("week, last", [
    ("2026-W48", date(2026, 11, 27)),
    ("2026-W07", date(2026, 2, 14)),  # make-up Saturday
    ("2026-W08", None),  # the Spring Festival week has no workday
    ("2026-W38", date(2026, 9, 20)),  # make-up Sunday
    ("2026-W39", date(2026, 9, 24)),  # Mid-Autumn Festival on Friday
    ("2026-W40", date(2026, 9, 30)),  # National Day from Thursday
    ("2026-W41", date(2026, 10, 10)),
])
def test_last_workday_of_week(week: str, last: date | None) -> None:
    assert wc.last_workday_of_week(week) == last


def test_last_workday_on_or_before_a_weekday_ignores_a_make_up_saturday() -> None:
    assert wc.last_workday_on_or_before("2026-W41", 4) == date(2026, 10, 9)
    assert wc.last_workday_on_or_before("2026-W08", 4) is None


def test_month_workdays() -> None:
    assert wc.last_workday_of_month(2026, 2) == date(2026, 2, 28)  # a make-up Saturday
    assert wc.nth_workday_from_month_end(2026, 2, 2) == date(2026, 2, 27)
    assert wc.last_workday_of_month(2026, 9) == date(2026, 9, 30)
    assert wc.last_workday_of_month(2026, 10) == date(2026, 10, 30)
    assert wc.nth_workday_of_month(2026, 10, 1) == date(2026, 10, 8)  # the first workday after the holiday
    assert wc.nth_workday_of_month(2026, 2, 99) is None


def test_neighbouring_workdays() -> None:
    assert wc.next_workday(date(2026, 9, 30)) == date(2026, 10, 8)
    assert wc.next_workday(date(2026, 2, 14)) == date(2026, 2, 24)
    assert wc.previous_workday(date(2026, 10, 8)) == date(2026, 9, 30)
    assert wc.next_workday(date(2026, 11, 27)) == date(2026, 11, 30)


def test_team_dates_from_the_configured_rules() -> None:
    assert wc.weekly_prompt_day("2026-W48", WEEKLY) == date(2026, 11, 27)
    assert wc.weekly_deadline_day("2026-W48", WEEKLY) == date(2026, 11, 30)
    assert wc.weekly_deadline_day("2026-W40", WEEKLY) == date(2026, 10, 8)
    assert wc.week_due_on(date(2026, 10, 8), WEEKLY) == "2026-W40"
    assert wc.week_due_on(date(2026, 10, 9), WEEKLY) is None
    same_day = WeeklyReportConfig(deadline="same_day", deadline_at=WEEKLY.escalation_at.replace(hour=20))
    assert wc.week_due_on(date(2026, 11, 27), same_day) == "2026-W48"
    friday = WeeklyReportConfig(prompt_on="last_workday_before_friday")
    assert wc.week_prompted_on(date(2026, 10, 9), friday) == "2026-W41"
    assert wc.week_prompted_on(date(2026, 10, 10), friday) is None
    review = SelfReviewConfig()
    assert wc.month_prompted_on(date(2026, 2, 27), review) == "2026-02"
    assert wc.month_reminded_on(date(2026, 2, 28), review) == "2026-02"
    assert wc.month_prompted_on(date(2026, 2, 28), review) is None


def test_years_without_official_data_fall_back_to_monday_to_friday_with_a_warning(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wc, "_warned_years", set())
    assert not wc.has_calendar_data(2031)
    with caplog.at_level(logging.WARNING, logger="bot.appraisal.workcalendar"):
        assert wc.is_workday(date(2031, 1, 3)) is True  # a Friday
        assert wc.is_workday(date(2031, 1, 4)) is False  # a Saturday
        assert wc.last_workday_of_week("2031-W01") == date(2031, 1, 3)
    warnings = [r for r in caplog.records if "2031" in r.getMessage()]
    assert len(warnings) == 1 and "Monday-Friday" in warnings[0].getMessage()
