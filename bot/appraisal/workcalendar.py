"""China's official working calendar (holidays, make-up workdays 调休: chinese-calendar, or the admin's calendar
file for the years it lists) and the team dates derived from it."""
from __future__ import annotations

import logging
import threading
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from importlib import metadata
from typing import overload
from zoneinfo import ZoneInfo

import chinese_calendar

from bot.appraisal.periods import Week
from bot.config.calendar_file import CalendarFile, Festival
from bot.config import Config, SelfReviewConfig, WeeklyReportConfig

log = logging.getLogger(__name__)

WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# A holiday never runs longer than this (the Spring Festival with its weekends is about ten days),
# so looking this far for the next workday always finds one.
_LONGEST_BREAK = timedelta(days=40)

_warned_years: set[int] = set()
_warn_lock = threading.Lock()
# The admin's calendar file (config [schedule] calendar_file), installed by the composition root and the CLI.
# One per process: every date rule below reads it without being handed the config.
_calendar_file: CalendarFile | None = None


class CalendarSource(StrEnum):
    """Where a year's holidays come from."""

    FILE = "file"  # the admin's calendar file lists the year (it overrides the library for it)
    LIBRARY = "library"  # the installed chinese-calendar knows it
    MISSING = "missing"  # neither: Monday to Friday, holidays missed


def use_calendar_file(calendar: CalendarFile | None) -> None:
    """Install the admin's calendar file for this process (None: the library alone)."""
    global _calendar_file
    _calendar_file = calendar


def installed_calendar_file() -> CalendarFile | None:
    return _calendar_file


def library_version() -> str:
    try:
        return metadata.version("chinese-calendar")
    except metadata.PackageNotFoundError:  # pragma: no cover - it is a dependency
        return "?"


@lru_cache(maxsize=1)
def library_years() -> range:
    """The years the installed chinese-calendar has the State Council's arrangement for."""
    years = {day.year for day in chinese_calendar.holidays}
    return range(min(years), max(years) + 1)


def calendar_source(year: int) -> CalendarSource:
    if _calendar_file is not None and _calendar_file.lists(year):
        return CalendarSource.FILE
    if year in library_years():
        return CalendarSource.LIBRARY
    return CalendarSource.MISSING


def year_is_known(year: int) -> bool:
    """Whether the year's holidays and make-up workdays are known (from the file or the library)."""
    return calendar_source(year) is not CalendarSource.MISSING


def known_years() -> dict[int, CalendarSource]:
    """Every known year with its source, the file's years overriding the library's."""
    years = {year: CalendarSource.LIBRARY for year in library_years()}
    if _calendar_file is not None:
        years.update({entry.year: CalendarSource.FILE for entry in _calendar_file.years})
    return dict(sorted(years.items()))


def festivals_of(year: int) -> tuple[Festival, ...]:
    """The year's festivals with their days off and make-up workdays, from the file or the library; () if unknown."""
    source = calendar_source(year)
    if source is CalendarSource.FILE:
        entry = _calendar_file.year(year) if _calendar_file is not None else None
        return entry.festivals if entry is not None else ()
    if source is CalendarSource.MISSING:
        return ()
    names: dict[str, tuple[list[date], list[date]]] = {}
    for table, index in ((chinese_calendar.holidays, 0), (chinese_calendar.workdays, 1)):
        for day, name in sorted(table.items()):
            if day.year == year:
                names.setdefault(_chinese_name(name), ([], []))[index].append(day)
    festivals = [Festival(name, tuple(off), tuple(work)) for name, (off, work) in names.items()]
    return tuple(sorted(festivals, key=lambda f: min(f.days_off or f.workdays)))


def _chinese_name(name: str) -> str:
    try:
        return chinese_calendar.Holiday(name).chinese
    except ValueError:  # pragma: no cover - a name the library added later
        return name


def is_workday(day: date) -> bool:
    """A working day in China: Monday to Friday unless a public holiday, plus make-up workdays (调休).

    A year the admin's calendar file lists follows the file alone. chinese_calendar only knows the years
    the State Council has published; outside them and the file we fall back to Monday-Friday and say so
    once per year in the log (and the calendar_warning job tells the admins), because holidays are missed.
    """
    if _calendar_file is not None:
        kind = _calendar_file.day_kind(day)
        if kind is not None:
            return kind
        if _calendar_file.lists(day.year):
            return day.weekday() < 5
    known = _library_workday(day)
    if known is None:
        with _warn_lock:
            if day.year not in _warned_years:
                _warned_years.add(day.year)
                log.warning("chinese_calendar has no holiday data for %s: treating Monday-Friday as workdays "
                            "(upgrade chinese-calendar once the official calendar is published)", day.year)
        return day.weekday() < 5
    return known


@lru_cache(maxsize=8192)
def _library_workday(day: date) -> bool | None:
    """chinese_calendar's answer, None outside its years. Cached: each of its calls scans its whole table
    for the first and last year, and fire-time searches ask about the same days thousands of times."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return None


def has_calendar_data(year: int) -> bool:
    return year_is_known(year)


# -- local time and weeks -------------------------------------------------------------------------------
# Typed both ways, so that a moment given is a local moment back without a None check (and None stays None).
@overload
def local(config: Config, moment: datetime) -> datetime: ...


@overload
def local(config: Config, moment: None) -> None: ...


def local(config: Config, moment: datetime | None) -> datetime | None:
    """A stored moment (UTC) as the team reads it: in the configured zone; None stays None."""
    return moment.astimezone(config.schedule.zone) if moment is not None else None


def week_of(day: date) -> str:
    """The ISO week a day belongs to, e.g. "2026-W48" (weeks run Monday to Sunday)."""
    return str(Week.of(day))


def week_days(week: str) -> list[date]:
    return Week.parse(week).days()


def shift_week(week: str, weeks: int) -> str:
    return str(Week.parse(week).shift(weeks))


def workdays_of_week(week: str) -> list[date]:
    return [day for day in week_days(week) if is_workday(day)]


def last_workday_of_week(week: str) -> date | None:
    """The week's last workday (a make-up Saturday or Sunday counts); None for a week without one."""
    days = workdays_of_week(week)
    return days[-1] if days else None


def last_workday_on_or_before(week: str, weekday: int) -> date | None:
    """The week's last workday no later than the given weekday (0 = Monday); None if there is none."""
    days = [day for day in workdays_of_week(week) if day.weekday() <= weekday]
    return days[-1] if days else None


# -- months --------------------------------------------------------------------------------------------
def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def month_days(year: int, month: int) -> list[date]:
    first = date(year, month, 1)
    following = date(year + (month == 12), month % 12 + 1, 1)
    return [first + timedelta(days=offset) for offset in range((following - first).days)]


def workdays_of_month(year: int, month: int) -> list[date]:
    return [day for day in month_days(year, month) if is_workday(day)]


def last_workday_of_month(year: int, month: int) -> date | None:
    return nth_workday_from_month_end(year, month, 1)


def nth_workday_from_month_end(year: int, month: int, n: int) -> date | None:
    """1 = the month's last workday, 2 = the one before it, ..."""
    days = workdays_of_month(year, month)
    return days[-n] if 1 <= n <= len(days) else None


def nth_workday_of_month(year: int, month: int, n: int) -> date | None:
    """1 = the month's first workday."""
    days = workdays_of_month(year, month)
    return days[n - 1] if 1 <= n <= len(days) else None


# -- neighbours ----------------------------------------------------------------------------------------
def next_workday(day: date) -> date:
    """The first workday strictly after `day`."""
    candidate = day + timedelta(days=1)
    while not is_workday(candidate):
        candidate += timedelta(days=1)
        if candidate - day > _LONGEST_BREAK:  # pragma: no cover - a calendar this broken is a data bug
            raise ValueError(f"no workday within {_LONGEST_BREAK.days} days after {day}")
    return candidate


def previous_workday(day: date) -> date:
    """The last workday strictly before `day`."""
    candidate = day - timedelta(days=1)
    while not is_workday(candidate):
        candidate -= timedelta(days=1)
        if day - candidate > _LONGEST_BREAK:  # pragma: no cover
            raise ValueError(f"no workday within {_LONGEST_BREAK.days} days before {day}")
    return candidate


def at_local(day: date, clock_time: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, clock_time, tzinfo=zone)


# -- the team's cycles, as configured ------------------------------------------------------------------
def weekly_prompt_day(week: str, rules: WeeklyReportConfig) -> date | None:
    """The day the week's report is asked for; None when the week has no suitable workday."""
    if rules.prompt_on == "last_workday":
        return last_workday_of_week(week)
    weekday = WEEKDAY_NAMES.index(rules.prompt_on.removeprefix("last_workday_before_"))
    return last_workday_on_or_before(week, weekday)


def weekly_deadline_day(week: str, rules: WeeklyReportConfig) -> date | None:
    prompt_day = weekly_prompt_day(week, rules)
    if prompt_day is None:
        return None
    return prompt_day if rules.deadline == "same_day" else next_workday(prompt_day)


def weekly_prompt_time(week: str, rules: WeeklyReportConfig, zone: ZoneInfo) -> datetime | None:
    day = weekly_prompt_day(week, rules)
    return at_local(day, rules.prompt_at, zone) if day else None


def weekly_deadline(week: str, rules: WeeklyReportConfig, zone: ZoneInfo) -> datetime | None:
    day = weekly_deadline_day(week, rules)
    return at_local(day, rules.deadline_at, zone) if day else None


def week_prompted_on(day: date, rules: WeeklyReportConfig) -> str | None:
    """The week whose prompt goes out on `day`, if any."""
    week = week_of(day)
    return week if weekly_prompt_day(week, rules) == day else None


def week_due_on(day: date, rules: WeeklyReportConfig) -> str | None:
    """The week whose reports are due on `day` (the day of its reminder and escalation), if any."""
    if not is_workday(day):
        return None
    prompt_day = day if rules.deadline == "same_day" else previous_workday(day)
    return week_prompted_on(prompt_day, rules)


def review_prompt_day(year: int, month: int, rules: SelfReviewConfig) -> date | None:
    return nth_workday_from_month_end(year, month, rules.prompt_on)


def review_reminder_day(year: int, month: int, rules: SelfReviewConfig) -> date | None:
    return nth_workday_from_month_end(year, month, rules.reminder_on)


def month_prompted_on(day: date, rules: SelfReviewConfig) -> str | None:
    return month_of(day) if review_prompt_day(day.year, day.month, rules) == day else None


def month_reminded_on(day: date, rules: SelfReviewConfig) -> str | None:
    return month_of(day) if review_reminder_day(day.year, day.month, rules) == day else None


def end_of_day(day: date, zone: ZoneInfo) -> datetime:
    return at_local(day, time(23, 59, 59), zone)
