"""The results jobs: the month close, the publication, and the release of results that an acceptance freed."""
from __future__ import annotations

import sys
import threading
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete

from bot.appraisal.results.close import close_month
from bot.appraisal.results.compute import Progress
from bot.appraisal.results.publish import publish, release_accepted
from bot.appraisal.workcalendar import nth_workday_of_month
from bot.config import Config
from bot.storage.models import JobRun
from bot.templates import render
from scoring import Period

if TYPE_CHECKING:
    from bot.jobs.context import JobContext

RELEASE_RUNS_KEPT = timedelta(days=7)


def _month_before_workday(at: datetime, workday: int) -> str | None:
    """The month before `at`'s (local) when `at` falls on this month's `workday`-th workday."""
    day = at.date()
    if day == nth_workday_of_month(day.year, day.month, workday):
        return str(Period.month(day.year, day.month).previous())
    return None


def close_period_of(at: datetime, config: Config) -> str | None:
    """The month closed at `at` (local): the previous month, on the configured workday of this one."""
    return _month_before_workday(at, config.results.close_on_workday)


def publish_period_of(at: datetime, config: Config) -> str | None:
    return _month_before_workday(at, config.results.publish_on_workday)


def terminal_progress(job: str, subject: str) -> Progress | None:
    """A progress line on stderr when a person runs the job by hand in a terminal (never from the scheduler)."""
    if threading.current_thread() is not threading.main_thread() or not sys.stderr.isatty():
        return None
    label = render("results/job_label.txt.j2", job=job, subject=subject)

    def show(stage: str, done: int, total: int) -> None:
        line = render("results/progress.txt.j2", label=label, stage=stage, done=done, total=total)
        print("\r" + line, end="\n" if done >= total else "", file=sys.stderr, flush=True)

    return show


def run_close_job(ctx: JobContext) -> str:
    report = close_month(ctx.sessions, ctx.config, ctx.clock.now(), ctx.period, as_of=ctx.at,
                         progress=terminal_progress("close", ctx.period))
    return render("results/job_detail.txt.j2", ctx.config.bot.locale, job="close", report=report)


def run_publish_job(ctx: JobContext) -> str:
    report = publish(ctx.sessions, ctx.config, ctx.clock.now(), ctx.period, as_of=ctx.at,
                     progress=terminal_progress("publish", ctx.period))
    return render("results/job_detail.txt.j2", ctx.config.bot.locale, job="publish", report=report)


def run_release_job(ctx: JobContext) -> str:
    now = ctx.clock.now()
    released = release_accepted(ctx.sessions, ctx.config, now)
    # It runs every few minutes; its own run records are only worth keeping for a week.
    ctx.session.execute(delete(JobRun).where(JobRun.job_id == "quality_release",
                                             JobRun.started_at < now - RELEASE_RUNS_KEPT))
    return render("quality/job_detail.txt.j2", ctx.config.bot.locale, periods=released)
