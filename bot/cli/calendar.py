"""`kpibot calendar show YEAR`: a year's holidays and make-up workdays, their source, and every job's dates on them."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from bot.appraisal import workcalendar
from bot.cli.support import CliError, config_from_args, help_text, subcommand_group
from bot.config import Config
from bot.config.calendar_file import Festival
from bot.templates import render

# How far around a holiday the "near holidays" part looks: the week before and the week after.
NEAR_DAYS = 7
# A job acting on at least this many days of the year is shown as "every day" instead of a date list.
DAILY_DAYS = 300


@dataclass(frozen=True)
class JobDates:
    id: str
    description: str
    year: int
    around: tuple[datetime, ...]  # local fire times at which the job acts, the year and NEAR_DAYS around it

    @property
    def fires(self) -> tuple[datetime, ...]:
        return tuple(fire for fire in self.around if fire.year == self.year)

    @property
    def daily(self) -> bool:
        return len(self.fires) >= DAILY_DAYS

    @property
    def times(self) -> list[str]:
        return sorted({fire.strftime("%H:%M") for fire in self.fires})

    def by_month(self) -> list[tuple[int, list[datetime]]]:
        months: dict[int, list[datetime]] = {}
        for fire in self.fires:
            months.setdefault(fire.month, []).append(fire)
        return sorted(months.items())


@dataclass(frozen=True)
class NearHoliday:
    festival: Festival
    fires: tuple[tuple[str, datetime], ...]  # (job id, local fire time), in time order


def year_job_dates(config: Config, year: int) -> list[JobDates]:
    """Each calendar job's fire times in the year at which it acts (housekeeping is left out: not on the calendar)."""
    # The job table loads every handler and job family: about 400 ms more at every `kpibot` command, `--help`
    # included, were it imported at the top.
    from bot.jobs.spec import fire_times
    from bot.jobs.table import JOBS

    zone = config.schedule.zone
    # A week on either side: New Year's Day moves the prompt of the year before.
    start = datetime(year, 1, 1, tzinfo=zone) - timedelta(days=NEAR_DAYS)
    end = datetime(year + 1, 1, 1, tzinfo=zone) + timedelta(days=NEAR_DAYS)
    jobs = []
    for spec in JOBS:
        fires, periods = [], set()
        for fire in fire_times(spec.trigger(config), start, end):
            local = fire.astimezone(zone)
            period = spec.period_of(local, config)
            # A job acts once per period: at the first fire time of it (later ones find it done).
            if period is not None and period not in periods:
                periods.add(period)
                fires.append(local)
        jobs.append(JobDates(spec.id, spec.description, year, tuple(fires)))
    return jobs


def near_holidays(festivals: tuple[Festival, ...], jobs: list[JobDates]) -> list[NearHoliday]:
    """For each festival, the fires from a week before its first day off to a week after its last, and on its
    make-up workdays wherever they fall: where a wrong calendar would show first."""
    near = []
    for festival in festivals:
        days = festival.days_off + festival.workdays
        first, last = min(days) - timedelta(days=NEAR_DAYS), max(festival.days_off or days) + timedelta(days=NEAR_DAYS)
        fires = sorted(((job.id, fire) for job in jobs for fire in job.around if not job.daily
                        and (first <= fire.date() <= last or fire.date() in festival.workdays)), key=lambda i: i[1])
        near.append(NearHoliday(festival, tuple(fires)))
    return near


def cmd_calendar_show(args: argparse.Namespace) -> int:
    config = config_from_args(args)  # installs the admin's calendar file
    year: int = args.year
    source = workcalendar.calendar_source(year)
    facts = _facts(config, year)
    if source is workcalendar.CalendarSource.MISSING:
        raise CliError(render("calendar/unknown_year.txt.j2", config.bot.locale, **facts), 1)
    festivals = workcalendar.festivals_of(year)
    jobs = year_job_dates(config, year)
    entry = config.calendar.year(year) if config.calendar else None
    print(render("calendar/show.txt.j2", config.bot.locale, **facts, source=source.value,
                 notice=entry.source if entry else "", festivals=festivals,
                 workdays=sorted(day for festival in festivals for day in festival.workdays),
                 near=near_holidays(festivals, jobs), jobs=jobs, weekday=_weekday))
    return 0


def _facts(config: Config, year: int) -> dict[str, Any]:
    library = workcalendar.library_years()
    return {"year": year, "library_version": workcalendar.library_version(), "library_first": library[0],
            "library_last": library[-1], "calendar_file": str(config.schedule.calendar_file or "calendar.toml"),
            "file_years": [entry.year for entry in config.calendar.years] if config.calendar else [],
            "file_exists": config.calendar is not None}


def _weekday(day: date) -> int:
    return day.weekday()


def add_parsers(subparsers: Any) -> None:
    calendar = subcommand_group(subparsers, "calendar", help_text("calendar", "calendar"))
    show = calendar.add_parser("show", help=help_text("calendar", "calendar.show"))
    show.add_argument("year", type=int, metavar="YEAR", help=help_text("calendar", "calendar.show.YEAR"))
    show.set_defaults(func=cmd_calendar_show)
