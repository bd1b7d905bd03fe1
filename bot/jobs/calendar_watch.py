"""The yearly calendar_warning job: tell the admins once when this year's or next year's holidays are unknown."""
from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta

from bot.appraisal import workcalendar
from bot.config import Config
from bot.jobs.context import JobContext
from bot.templates import render
from bot.wecom import outbox

log = logging.getLogger(__name__)

WARN_DAYS_BEFORE = 30
WARN_AT = time(9, 45)  # a working morning, off hh:00 and hh:30


def missing_year_period(at: datetime, _config: Config) -> str | None:
    """The year to warn about on this day: the current one if unknown, else the next one once it is at most
    WARN_DAYS_BEFORE days away and unknown. The period is the year, so the warning goes out once a year."""
    today = at.date()
    if not workcalendar.year_is_known(today.year):
        return str(today.year)
    following = today.year + 1
    if date(following, 1, 1) - today <= timedelta(days=WARN_DAYS_BEFORE) and not workcalendar.year_is_known(following):
        return str(following)
    return None


def run_warning(ctx: JobContext) -> str:
    year = int(ctx.period)
    config, now = ctx.config, ctx.clock.now()
    library = workcalendar.library_years()
    variables = {"year": year, "today": ctx.at.date(), "starts_in_days": (date(year, 1, 1) - ctx.at.date()).days,
                 "library_version": workcalendar.library_version(), "library_last": library[-1],
                 "calendar_file": str(config.schedule.calendar_file or "calendar.toml")}
    log.warning("no holiday data for %s (chinese-calendar %s knows up to %s; no %s in the calendar file): "
                "weekly and monthly dates fall back to Monday-Friday", year, variables["library_version"],
                variables["library_last"], year)
    # The key makes the warning once per year and admin, even when the job is forced to run again.
    outbox.send_to_admins(ctx.session, config, f"calendar_warning:{year}", "calendar/missing_year.txt.j2", now,
                          **variables)
    return render("calendar/warning_detail.txt.j2", config.bot.locale, year=year, admins=list(config.org.admins))
