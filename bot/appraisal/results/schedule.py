"""When results happen: the periods that close with a month, when they close and publish, and which month may run."""
from __future__ import annotations

from datetime import datetime, time
from typing import Any

from bot.appraisal.workcalendar import at_local, month_days, nth_workday_of_month
from bot.config import Config
from bot.errors import UserFacingError
from bot.templates import render
from scoring import Period, PeriodError, PeriodKind


class ResultsError(UserFacingError):
    """A close, publication or calibration that cannot go ahead: the template's sentence for `code` says why."""

    TEMPLATE = "results/error.txt.j2"

    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(self.TEMPLATE, code=code, p=params)

    def __str__(self) -> str:
        # A job stopped by it records (and `kpibot jobs run` prints) its text: the sentence itself.
        return render(self.template, **self.variables)


def periods_closing_with(month: Period) -> list[Period]:
    """A month, and the quarter and year it ends: they roll up with their last month."""
    closing = [month]
    if month.index % 3 == 0:
        closing.append(Period.quarter(month.year, month.index // 3))
    if month.index == 12:
        closing.append(Period.whole_year(month.year))
    return closing


def last_month_of(period: Period) -> Period:
    return period.months()[-1]


def _in_following_month(config: Config, period: Period, workday: int, clock_time: time) -> datetime | None:
    last = last_month_of(period)
    year, month = (last.year + 1, 1) if last.index == 12 else (last.year, last.index + 1)
    day = nth_workday_of_month(year, month, workday)
    return at_local(day, clock_time, config.schedule.zone) if day else None


def close_moment(config: Config, period: Period) -> datetime | None:
    """When a period (closed with its last month) closes: the configured workday of the month after it."""
    return _in_following_month(config, period, config.results.close_on_workday, config.results.close_at)


def publish_moment(config: Config, period: Period) -> datetime | None:
    """When a period's results are published, ending the calibration window."""
    return _in_following_month(config, period, config.results.publish_on_workday, config.results.publish_at)


def month_to_close(text: str, config: Config, now: datetime) -> Period:
    """The month a close or publication was asked for (by the job's period or a person), once it is over."""
    try:
        period = Period.parse(text)
    except PeriodError:
        raise ResultsError("period.invalid", period=text) from None
    if period.kind is not PeriodKind.MONTH:
        raise ResultsError("period.not_month", period=str(period))
    today = now.astimezone(config.schedule.zone).date()
    if month_days(period.year, period.index)[-1] >= today:
        raise ResultsError("period.not_over", period=str(period))
    return period
