"""The job table: every scheduled job by its explicit id, with its trigger and the periods it acts for.

Every job has a daily (or frequent) cron trigger at a configured time; its `period_of` decides from the team's
calendar (bot.appraisal.workcalendar) whether that day is one where the job acts, and for which period (an ISO week
"2026-W48", a month "2026-11", a day). The runner (bot/jobs/runner.py) makes each act once per period.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from bot.appraisal import workcalendar
from bot.config import Config
from bot.jobs import (calendar_watch, conversation_sweep, feedback360, nudges, okr, results, self_review, stats, upkeep,
                      weekly)
from bot.jobs.context import JobContext
from bot.jobs.spec import JobSpec, configured_grace, daily_at, find_job, next_effective_fire_time
from bot.templates import render

def _job(job_id: str, trigger: Callable[[Config], BaseTrigger], period_of: Callable[[datetime, Config], str | None],
         run: Callable[[JobContext], str | None], **options: Any) -> JobSpec:
    """A job of the table, described as templates/<locale>/ops/job_description.txt.j2 says."""
    return JobSpec(job_id, render("ops/job_description.txt.j2", job=job_id), trigger, period_of, run, **options)


def _daily_period(at: datetime, _config: Config) -> str:
    return at.date().isoformat()


# -- the weekly report and the self-review, on the team's calendar ------------------------------------------
def _weekly_prompt_period(at: datetime, config: Config) -> str | None:
    return workcalendar.week_prompted_on(at.date(), config.weekly_report)


def _weekly_due_period(at: datetime, config: Config) -> str | None:
    return workcalendar.week_due_on(at.date(), config.weekly_report)


def _review_prompt_period(at: datetime, config: Config) -> str | None:
    return workcalendar.month_prompted_on(at.date(), config.self_review)


def _review_reminder_period(at: datetime, config: Config) -> str | None:
    return workcalendar.month_reminded_on(at.date(), config.self_review)


def _until_deadline(config: Config) -> timedelta:
    """A reminder is only worth sending before the deadline, so it is never caught up after it."""
    rules = config.weekly_report
    any_day = date(2000, 1, 3)
    before_deadline = datetime.combine(any_day, rules.deadline_at) - datetime.combine(any_day, rules.reminder_at)
    return min(configured_grace(config), before_deadline)


# Every job on the team's calendar, in one place. Times come from config and stay off hh:00/hh:30
# by default; the scheduler adds 1-4 minutes of jitter on top (wecom.md §2).
JOBS: list[JobSpec] = [
    _job("weekly_prompt", daily_at(lambda c: c.weekly_report.prompt_at), _weekly_prompt_period,
         weekly.send_weekly_prompts),
    _job("weekly_reminder", daily_at(lambda c: c.weekly_report.reminder_at), _weekly_due_period,
         weekly.send_weekly_reminders, catch_up_within=_until_deadline),
    _job("weekly_escalation", daily_at(lambda c: c.weekly_report.escalation_at), _weekly_due_period,
         weekly.send_weekly_escalations),
    _job("self_review_prompt", daily_at(lambda c: c.self_review.prompt_at), _review_prompt_period,
         self_review.send_review_prompts),
    _job("self_review_reminder", daily_at(lambda c: c.self_review.reminder_at), _review_reminder_period,
         self_review.send_review_reminders),
    _job("org_sync", daily_at(lambda c: c.org.sync_at), _daily_period, upkeep.run_org_sync),
    _job("wecom_stats_sync", daily_at(lambda c: c.wecom_stats.sync_at), stats.sync_period,
         stats.run_sync_job),
    _job("okr_quarter_close", daily_at(lambda _c: time(okr.OKR_CLOSE_AT_HOUR, okr.OKR_CLOSE_AT_MINUTE)),
         okr.quarter_close_period, okr.run_quarter_close),
    _job("feedback360_daily", daily_at(lambda _c: time(feedback360.DAILY_AT_HOUR, feedback360.DAILY_AT_MINUTE)),
         feedback360.daily_period, feedback360.run_daily_job),
    _job("close_nudge", daily_at(lambda c: c.results.nudge_at), nudges.nudge_period_of, nudges.run_nudge_job),
    _job("month_close", daily_at(lambda c: c.results.close_at), results.close_period_of, results.run_close_job),
    _job("publish", daily_at(lambda c: c.results.publish_at), results.publish_period_of, results.run_publish_job),
]


# -- housekeeping ---------------------------------------------------------------------------------------------
def _sweep_trigger(config: Config) -> BaseTrigger:
    # At 03, 13, ... 53 minutes past the hour: off hh:00/hh:30 like everything else.
    return CronTrigger(minute=f"3-59/{conversation_sweep.EVERY_MINUTES}", timezone=config.schedule.zone)


def _sweep_period(at: datetime, _config: Config) -> str:
    return at.strftime("%Y-%m-%dT%H:%M")


def _one_sweep_back(_config: Config) -> timedelta:
    return timedelta(minutes=conversation_sweep.EVERY_MINUTES)


# Routine upkeep, run by the same runner but kept out of JOBS (the team's calendar), so views of
# "what happens next" (jobs list shows both, the sandbox only JOBS) are not drowned in sweeps.
HOUSEKEEPING: list[JobSpec] = [
    _job(conversation_sweep.JOB_ID, _sweep_trigger, _sweep_period, conversation_sweep.run_sweep,
         catch_up_within=_one_sweep_back),
    # A day of catch-up: every start-up inside a year without data (or just before one) checks it at once.
    _job("calendar_warning", daily_at(lambda _c: calendar_watch.WARN_AT), calendar_watch.missing_year_period,
         calendar_watch.run_warning, catch_up_within=lambda _config: timedelta(days=1)),
    _job("inbox_prune", daily_at(lambda _c: upkeep.PRUNE_AT), _daily_period, upkeep.run_inbox_prune),
    # An admin's acceptance (chat or CLI) of a data-quality finding releases held results within minutes.
    _job("quality_release", _sweep_trigger, _sweep_period, results.run_release_job, catch_up_within=_one_sweep_back),
]


def all_jobs() -> list[JobSpec]:
    """The whole table, read at every call (so that a job added to JOBS or HOUSEKEEPING later is seen)."""
    return [*JOBS, *HOUSEKEEPING]


def job_by_id(job_id: str) -> JobSpec:
    return find_job(all_jobs(), job_id)


def next_fire_times(config: Config, now: datetime) -> list[tuple[JobSpec, datetime | None]]:
    """Each job (calendar jobs, then housekeeping) with its next effective fire time."""
    return [(spec, next_effective_fire_time(spec, config, now)) for spec in all_jobs()]
