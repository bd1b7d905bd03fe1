"""The admin's calendar file (TOML): holidays and make-up workdays for years chinese-calendar lacks, validated."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.config.problems import ConfigProblem
from bot.templates import render_error

# A holiday never runs longer than this (see workcalendar._LONGEST_BREAK): a longer range is a typo.
LONGEST_HOLIDAY = timedelta(days=40)
FIRST_YEAR, LAST_YEAR = 2000, 2100
_YEAR_KEYS = {"source", "holiday"}
_HOLIDAY_KEYS = {"name", "from", "to", "workdays"}


@dataclass(frozen=True)
class Festival:
    """One festival of a year's notice: its days off and the weekend days worked instead (调休上班)."""

    name: str
    days_off: tuple[date, ...]
    workdays: tuple[date, ...]


@dataclass(frozen=True)
class CalendarYear:
    year: int
    festivals: tuple[Festival, ...]
    source: str = ""  # the notice, as the admin cites it

    @property
    def days_off(self) -> frozenset[date]:
        return frozenset(day for festival in self.festivals for day in festival.days_off)

    @property
    def workdays(self) -> frozenset[date]:
        return frozenset(day for festival in self.festivals for day in festival.workdays)


@dataclass(frozen=True)
class CalendarFile:
    path: Path
    years: tuple[CalendarYear, ...]
    # Every listed day: True for a make-up workday, False for a day off (is_workday asks this very often).
    _days: dict[date, bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        days = {day: False for entry in self.years for day in entry.days_off}
        days.update({day: True for entry in self.years for day in entry.workdays})
        object.__setattr__(self, "_days", days)

    def year(self, year: int) -> CalendarYear | None:
        return next((entry for entry in self.years if entry.year == year), None)

    def lists(self, year: int) -> bool:
        return self.year(year) is not None

    def day_kind(self, day: date) -> bool | None:
        """True for a make-up workday, False for a day off, None when the file says nothing of this day."""
        return self._days.get(day)


class CalendarFileError(Exception):
    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(problem) for problem in problems))


def _message(code: str, **params: Any) -> str:
    return render_error("calendar/problem.txt.j2", code, code=code, **params)


def load_calendar_file(path: Path) -> CalendarFile:
    """Read and check the whole file; raise CalendarFileError with every problem, each under its key path."""
    prefix = path.name
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CalendarFileError([ConfigProblem(prefix, _message("missing_file", path=str(path)))]) from None
    except OSError as error:
        raise CalendarFileError([ConfigProblem(prefix, _message("unreadable", path=str(path),
                                                                 reason=error.strerror or str(error)))]) from None
    except tomllib.TOMLDecodeError as error:
        raise CalendarFileError([ConfigProblem(prefix, _message("toml", reason=str(error)))]) from None
    return parse_calendar(raw, path)


def parse_calendar(raw: dict[str, Any], path: Path) -> CalendarFile:
    problems: list[ConfigProblem] = []

    def problem(key: str, code: str, **params: Any) -> None:
        problems.append(ConfigProblem(f"{path.name}:{key}", _message(code, **params)))

    years: list[CalendarYear] = []
    seen_days: dict[date, str] = {}  # every listed day, with the key that listed it
    for key, table in raw.items():
        if not (key.isdigit() and len(key) == 4 and FIRST_YEAR <= int(key) <= LAST_YEAR):
            problem(key, "not_a_year", first=FIRST_YEAR, last=LAST_YEAR)
            continue
        if not isinstance(table, dict):
            problem(key, "not_a_table")
            continue
        year = int(key)
        source = _text_of(table, key, _YEAR_KEYS, "source", problem)
        entries = table.get("holiday")
        if not isinstance(entries, list) or not entries or not all(isinstance(item, dict) for item in entries):
            problem(f"{key}.holiday", "no_holidays", year=year)
            continue
        festivals = [_festival(item, f"{key}.holiday[{index}]", year, seen_days, problem)
                     for index, item in enumerate(entries)]
        years.append(CalendarYear(year, tuple(f for f in festivals if f is not None), source.strip()))
    if problems:
        raise CalendarFileError(problems)
    return CalendarFile(path, tuple(sorted(years, key=lambda entry: entry.year)))


def _text_of(table: dict[str, Any], key: str, known: set[str], name: str, problem: Any) -> str:
    """The text `name` of a table ("" when absent or not text), after naming every key the table may not have."""
    for unknown in sorted(set(table) - known):
        problem(f"{key}.{unknown}", "unknown_key")
    value = table.get(name, "")
    if not isinstance(value, str):
        problem(f"{key}.{name}", "not_text")
        return ""
    return value


def _festival(item: dict[str, Any], key: str, year: int, seen_days: dict[date, str],
              problem: Any) -> Festival | None:
    name = _text_of(item, key, _HOLIDAY_KEYS, "name", problem)
    first = _date(item, "from", key, year, problem, required=True)
    last = _date(item, "to", key, year, problem, required=False) or first
    workdays_raw = item.get("workdays", [])
    if not isinstance(workdays_raw, list):
        problem(f"{key}.workdays", "not_a_list")
        workdays_raw = []
    workdays = []
    for index, value in enumerate(workdays_raw):
        day = _date_value(value, f"{key}.workdays[{index}]", year, problem)
        if day is None:
            continue
        if day.weekday() < 5:
            problem(f"{key}.workdays[{index}]", "workday_not_weekend", day=day.isoformat(), weekday=day.weekday())
        elif _claim(day, f"{key}.workdays[{index}]", seen_days, problem):
            workdays.append(day)
    if first is None or last is None:
        return None
    if last < first:
        problem(f"{key}.to", "to_before_from", first=first.isoformat(), last=last.isoformat())
        return None
    if last - first > LONGEST_HOLIDAY:
        problem(f"{key}.to", "too_long", days=(last - first).days + 1, limit=LONGEST_HOLIDAY.days)
        return None
    days_off = []
    day = first
    while day <= last:
        if _claim(day, f"{key}.from", seen_days, problem):
            days_off.append(day)
        day += timedelta(days=1)
    return Festival(name.strip(), tuple(days_off), tuple(workdays))


def _claim(day: date, key: str, seen_days: dict[date, str], problem: Any) -> bool:
    """A day may be listed once in the whole file: as a day off or as a workday, in one festival."""
    if day in seen_days:
        problem(key, "listed_twice", day=day.isoformat(), other=seen_days[day])
        return False
    seen_days[day] = key
    return True


def _date(table: dict[str, Any], name: str, key: str, year: int, problem: Any, *, required: bool) -> date | None:
    if name not in table:
        if required:
            problem(f"{key}.{name}", "required")
        return None
    return _date_value(table[name], f"{key}.{name}", year, problem)


def _date_value(value: Any, where: str, year: int, problem: Any) -> date | None:
    """A TOML date (2027-01-01) or the same as a string, in the year or the neighbouring month of another."""
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value.strip())
        except ValueError:
            problem(where, "not_a_date", value=value)
            return None
    if isinstance(value, datetime) or not isinstance(value, date):
        problem(where, "not_a_date", value=str(value))
        return None
    # A notice may reach into the neighbouring year: 元旦 2023 began on 2022-12-31.
    if not date(year - 1, 12, 1) <= value <= date(year + 1, 1, 31):
        problem(where, "outside_year", day=value.isoformat(), year=year)
        return None
    return value
