"""The 360 daily job: close rounds past their deadline, remind whoever still owes a nomination, a confirmation or
a rating (each message idempotent per day, purpose and person)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.appraisal.feedback360 import Send, announce_close, open_rounds, owed, pending_asks
from bot.templates import render
from bot.wecom import outbox
from handlers.feedback360 import ask_next, has_open_conversation

if TYPE_CHECKING:
    from bot.config import Config
    from bot.jobs.context import JobContext

DAILY_AT_HOUR, DAILY_AT_MINUTE = 10, 20


@dataclass(frozen=True)
class DailyReport:
    closed: tuple[str, ...]
    reminded_raters: int
    reminded_members: int
    reminded_managers: int


def daily_period(at: datetime, _config: Config) -> str:
    return at.date().isoformat()


def run_daily_job(ctx: JobContext) -> str:
    """Close overdue rounds; in the others remind, at most every REMIND_EVERY, who still owes something."""
    session, clock, locale, admins = ctx.session, ctx.clock, ctx.config.bot.locale, ctx.config.org.admins

    def send_for(purpose: str) -> Send:
        def send(userid: str, template: str, **variables: Any) -> None:
            outbox.send(session, ctx.config, f"job:feedback360:{ctx.period}:{purpose}:{userid}:{template}", userid,
                        template, clock.now(), **variables)
        return send

    now = clock.now()
    closed: list[str] = []
    raters = members = managers = 0
    for round_ in open_rounds(session):
        if ctx.at.date() > round_.deadline:
            announce_close(session, round_, now, admins, send_for(f"close{round_.id}"))
            closed.append(round_.name)
            continue
        send = send_for(f"remind{round_.id}")
        due = owed(session, round_, now, admins)
        for userid, suggestions in due.nominations.items():
            send(userid, "feedback360/reminder_nominate.txt.j2", round_name=round_.name, deadline=round_.deadline,
                 suggestions=suggestions)
        for reviewer, names in due.confirmations.items():
            send(reviewer, "feedback360/reminder_confirm.txt.j2", round_name=round_.name, names=names)
        for rater in due.raters:
            if has_open_conversation(session, rater, now):
                send(rater, "feedback360/reminder_rate.txt.j2", count=len(pending_asks(session, rater)),
                     deadline=round_.deadline)
            else:
                ask_next(session, clock, rater, send)
        raters, members, managers = (raters + len(due.raters), members + len(due.nominations),
                                     managers + len(due.confirmations))
    report = DailyReport(tuple(closed), raters, members, managers)
    return render("feedback360/job_detail.txt.j2", locale, report=report)
