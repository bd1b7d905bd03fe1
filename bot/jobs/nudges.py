"""Nudges before the close: N workdays before a month closes, each manager gets who in their team is still
unscored or missing data, with the command that fixes each; nothing when all is done."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING

from bot.appraisal.entries import due_ratings, is_manager_rated, latest_entry
from bot.appraisal.results.compute import compute
from bot.appraisal.results.roster import Roster
from bot.appraisal.results.schedule import close_moment
from bot.appraisal.results.steps import send
from bot.appraisal.results.store import key_names, period_state
from bot.appraisal.workcalendar import previous_workday, workdays_of_month
from bot.config import Config
from bot.templates import render
from bot.appraisal.leave import userids_on_leave_all_of
from scoring import Period

if TYPE_CHECKING:
    from bot.jobs.context import JobContext


def nudge_day(config: Config, month: Period) -> date | None:
    """The workday `nudge_workdays_before` workdays before the month's close; None when nudges are off."""
    before = config.results.nudge_workdays_before
    closes = close_moment(config, month)
    if before <= 0 or closes is None:
        return None
    day = closes.date()
    for _ in range(before):
        day = previous_workday(day)
    return day


def nudge_period_of(at: datetime, config: Config) -> str | None:
    """The month whose nudge falls on `at`'s day (local): usually the previous month, early in this one."""
    today = at.date()
    this_month = Period.month(today.year, today.month)
    for month in (this_month.previous(), this_month):
        if nudge_day(config, month) == today:
            return str(month)
    return None


@dataclass
class OpenItem:
    """One member's open work: ratings not given yet and data still missing, each with its fixing command."""

    name: str
    unrated: list[str] = field(default_factory=list)
    data: list[dict[str, str]] = field(default_factory=list)  # {"name", "period", "short"}


def run_nudge_job(ctx: JobContext) -> str:
    session, config = ctx.session, ctx.config
    month = Period.parse(ctx.period)
    locale = config.bot.locale
    if period_state(session, str(month)) is not None:
        return render("results/nudge_detail.txt.j2", locale, period=str(month), closed=True, managers=0, members=0)
    roster = Roster.load(session, config)
    computed = compute(session, config, month, roster=roster)
    away = userids_on_leave_all_of(session, workdays_of_month(month.year, month.index), roster.userids)
    now = ctx.clock.now()
    sent = members = 0
    for manager in roster.managers_of(computed.results):
        items: list[OpenItem] = []
        for userid in roster.rated_by(manager):
            result = computed.results.get(userid)
            if result is None or not result.appraised or userid in away:
                continue
            scheme = computed.schemes[userid]
            item = OpenItem(roster.org.name(userid))
            item.unrated = [i.name for i, period in due_ratings(scheme, month)
                            if latest_entry(session, userid, i.key, period, "value") is None]
            names = key_names(scheme)
            rated = {i.key for i in scheme.indicators if is_manager_rated(i)}
            for label in result.missing:
                key, _, period = label.partition("@")
                if key not in rated:
                    # The command shown names the indicator without the note in parentheses after its name.
                    item.data.append({"name": names.get(key, key), "period": period,
                                      "short": names.get(key, key).split("（")[0]})
            if item.unrated or item.data:
                items.append(item)
        if not items:
            continue  # all done: nothing to say
        members += len(items)
        send(session, config, f"job:nudge:{month}:{manager}", manager, "results/nudge.txt.j2", now,
             manager=roster.org.name(manager), period=str(month), closes=close_moment(config, month), items=items)
        sent += 1
    return render("results/nudge_detail.txt.j2", locale, period=str(month), closed=False, managers=sent,
                  members=members)
