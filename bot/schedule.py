"""The scheduler: one table of jobs, each acting once per period, caught up after downtime, led by one process.

Every job has a daily (or frequent) cron trigger at a configured time; its `period_of` decides from the
team's calendar (bot.workcalendar) whether that day is one where the job acts, and for which period
(an ISO week "2026-W48", a month "2026-11", a day). A JobRun row per (job, period) makes a job act once
per period however often it is started: by APScheduler, by catch-up after downtime, or by hand.
"""
from __future__ import annotations

import logging
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from bot import feedback360, okr, results, wecom_stats, workcalendar
from bot.config import Config
from bot.db import transaction
from bot.leases import release_lease, take_lease
from bot.models import Conversation, JobRun
from bot.templates import render
from bot.sqlutil import insert_ignoring_duplicates

if TYPE_CHECKING:
    from bot.app import KpiBot

log = logging.getLogger(__name__)

SCHEDULER_LEASE = "scheduler"
LEASE_DURATION = timedelta(seconds=90)


@dataclass
class JobContext:
    """What a job receives: its own session, the moment it runs for, and the bot's parts."""

    session: Session
    bot: KpiBot
    at: datetime  # local time, in the configured zone
    period: str

    @property
    def config(self) -> Config:
        return self.bot.config


def _configured_grace(config: Config) -> timedelta:
    return timedelta(hours=config.schedule.catch_up_grace_hours)


@dataclass(frozen=True)
class JobSpec:
    id: str
    description: str
    trigger: Callable[[Config], BaseTrigger]
    period_of: Callable[[datetime, Config], str | None]  # None: nothing to do at that moment (local time)
    run: Callable[[JobContext], str | None]
    # How old a missed fire time may be and still be caught up at start-up.
    catch_up_within: Callable[[Config], timedelta] = _configured_grace


def _daily_at(clock_time: Callable[[Config], time]) -> Callable[[Config], BaseTrigger]:
    """A trigger firing every day at a configured local time; period_of picks the days that count."""
    def trigger(config: Config) -> BaseTrigger:
        at = clock_time(config)
        return CronTrigger(hour=at.hour, minute=at.minute, timezone=config.schedule.zone)
    return trigger


def _daily_period(at: datetime, _config: Config) -> str:
    return at.date().isoformat()


def _org_sync(ctx: JobContext) -> str:
    from bot.org import sync_org

    report = sync_org(ctx.session, ctx.bot.client, ctx.config, ctx.bot.clock.now())
    return render("ops/org_sync.txt.j2", ctx.config.bot.locale, report=report)


# -- the weekly report and the self-review, on the team's calendar ------------------------------------------
def _weekly_prompt_period(at: datetime, config: Config) -> str | None:
    return workcalendar.week_prompted_on(at.date(), config.weekly_report)


def _weekly_due_period(at: datetime, config: Config) -> str | None:
    return workcalendar.week_due_on(at.date(), config.weekly_report)


def _review_prompt_period(at: datetime, config: Config) -> str | None:
    return workcalendar.month_prompted_on(at.date(), config.self_review)


def _review_reminder_period(at: datetime, config: Config) -> str | None:
    return workcalendar.month_reminded_on(at.date(), config.self_review)


def _weekly_prompt(ctx: JobContext) -> str:
    from handlers.weekly_report import send_weekly_prompts
    return send_weekly_prompts(ctx)


def _weekly_reminder(ctx: JobContext) -> str:
    from handlers.weekly_report import send_weekly_reminders
    return send_weekly_reminders(ctx)


def _weekly_escalation(ctx: JobContext) -> str:
    from handlers.weekly_report import send_weekly_escalations
    return send_weekly_escalations(ctx)


def _review_prompt(ctx: JobContext) -> str:
    from handlers.self_review import send_review_prompts
    return send_review_prompts(ctx)


def _review_reminder(ctx: JobContext) -> str:
    from handlers.self_review import send_review_reminders
    return send_review_reminders(ctx)


def _until_deadline(config: Config) -> timedelta:
    """A reminder is only worth sending before the deadline, so it is never caught up after it."""
    rules = config.weekly_report
    any_day = date(2000, 1, 3)
    before_deadline = datetime.combine(any_day, rules.deadline_at) - datetime.combine(any_day, rules.reminder_at)
    return min(_configured_grace(config), before_deadline)


# Every job on the team's calendar, in one place. Times come from config and stay off hh:00/hh:30
# by default; BotScheduler adds 1-4 minutes of jitter on top (wecom.md §2).
JOBS: list[JobSpec] = [
    JobSpec("weekly_prompt", "周报提问（每周最后一个工作日）", _daily_at(lambda c: c.weekly_report.prompt_at),
            _weekly_prompt_period, _weekly_prompt),
    JobSpec("weekly_reminder", "周报催交（截止日，截止前）", _daily_at(lambda c: c.weekly_report.reminder_at),
            _weekly_due_period, _weekly_reminder, catch_up_within=_until_deadline),
    JobSpec("weekly_escalation", "周报汇总给主管（截止后）", _daily_at(lambda c: c.weekly_report.escalation_at),
            _weekly_due_period, _weekly_escalation),
    JobSpec("self_review_prompt", "月度自评提问（月末工作日）", _daily_at(lambda c: c.self_review.prompt_at),
            _review_prompt_period, _review_prompt),
    JobSpec("self_review_reminder", "月度自评催交（月末工作日）", _daily_at(lambda c: c.self_review.reminder_at),
            _review_reminder_period, _review_reminder),
    JobSpec("org_sync", "每晚同步通讯录", _daily_at(lambda c: c.org.sync_at), _daily_period, _org_sync),
    JobSpec("wecom_stats_sync", "拉取企业微信客户联系统计（昨天，并重拉此前几天）",
            _daily_at(lambda c: c.wecom_stats.sync_at), wecom_stats.sync_period, wecom_stats.run_sync_job),
    JobSpec("okr_quarter_close", "KR 季末评分（每季度第一周）",
            _daily_at(lambda _c: time(okr.OKR_CLOSE_AT_HOUR, okr.OKR_CLOSE_AT_MINUTE)), okr.quarter_close_period,
            okr.run_quarter_close),
    JobSpec("feedback360_daily", "360 反馈：提醒评价人，到期结束",
            _daily_at(lambda _c: time(feedback360.DAILY_AT_HOUR, feedback360.DAILY_AT_MINUTE)),
            feedback360.daily_period, feedback360.run_daily_job),
    JobSpec("month_close", "月度结账：计算结果、数据质量检查、草稿发给主管（季度、年度随最后一个月）",
            _daily_at(lambda c: c.results.close_at), results.close_period_of, results.run_close_job),
    JobSpec("publish", "发布考核结果：成员私信、主管团队汇总、管理员总览、IDP（校准截止时）",
            _daily_at(lambda c: c.results.publish_at), results.publish_period_of, results.run_publish_job),
]


# -- housekeeping ---------------------------------------------------------------------------------------------
SWEEP_EVERY_MINUTES = 10
SWEEP_RUNS_KEPT = timedelta(days=7)


def _sweep_trigger(config: Config) -> BaseTrigger:
    # At 03, 13, ... 53 minutes past the hour: off hh:00/hh:30 like everything else.
    return CronTrigger(minute=f"3-59/{SWEEP_EVERY_MINUTES}", timezone=config.schedule.zone)


def _sweep_period(at: datetime, _config: Config) -> str:
    return at.strftime("%Y-%m-%dT%H:%M")


def _sweep_conversations(ctx: JobContext) -> str:
    """Close conversations idle past their timeout through their flow's on_timeout (which keeps the draft)."""
    from bot.dispatcher import build_context
    from bot.updates import Update

    moment = ctx.at.astimezone(timezone.utc)
    expired = ctx.session.scalars(select(Conversation).where(Conversation.expires_at <= moment)
                                  .order_by(Conversation.userid)).all()
    flows = ctx.bot.dispatcher.conversations
    for row in expired:
        update = Update(kind="event", from_user=row.userid, create_time=int(moment.timestamp()),
                        event="conversation_timeout")
        handler_ctx = build_context(ctx.session, update, ctx.config, ctx.bot.clock,
                                    f"sweep:{row.userid}:{row.expires_at:%Y%m%dT%H%M%S}", ctx.bot.services)
        spec = flows.get(row.flow)
        if spec is not None and spec.on_timeout is not None:
            spec.on_timeout(handler_ctx)
        handler_ctx.conversation.end()
    # The sweep runs often; its own run records are only worth keeping for a week.
    ctx.session.execute(delete(JobRun).where(JobRun.job_id == "conversation_sweep",
                                             JobRun.started_at < ctx.bot.clock.now() - SWEEP_RUNS_KEPT))
    return render("ops/sweep.txt.j2", ctx.config.bot.locale, closed=len(expired))


# Routine upkeep, run by the same runner but kept out of JOBS (the team's calendar), so views of
# "what happens next" (jobs list shows both, the sandbox only JOBS) are not drowned in sweeps.
HOUSEKEEPING: list[JobSpec] = [
    JobSpec("conversation_sweep", "关闭超时的对话（保留草稿）", _sweep_trigger, _sweep_period, _sweep_conversations,
            catch_up_within=lambda _config: timedelta(minutes=SWEEP_EVERY_MINUTES)),
    # An admin's acceptance (chat or CLI) of a data-quality finding releases held results within minutes.
    JobSpec("quality_release", "发布数据质量问题已被接受的结果", _sweep_trigger, _sweep_period, results.run_release_job,
            catch_up_within=lambda _config: timedelta(minutes=SWEEP_EVERY_MINUTES)),
]


def all_jobs() -> list[JobSpec]:
    return [*JOBS, *HOUSEKEEPING]


def job_by_id(job_id: str) -> JobSpec:
    for spec in all_jobs():
        if spec.id == job_id:
            return spec
    raise KeyError(job_id)


@dataclass(frozen=True)
class JobResult:
    job_id: str
    period: str | None
    ran: bool
    detail: str


class JobRunner:
    """Runs a job as if at a given moment, at most once per period (unless forced)."""

    def __init__(self, bot: KpiBot) -> None:
        self.bot = bot

    def run(self, job_id: str, at: datetime | None = None, *, force: bool = False,
            period: str | None = None) -> JobResult:
        spec = job_by_id(job_id)
        zone = self.bot.config.schedule.zone
        local = (at or self.bot.clock.now()).astimezone(zone)
        period = period or spec.period_of(local, self.bot.config)
        if period is None:
            return JobResult(job_id, None, False, "not_due")
        now = self.bot.clock.now()
        with transaction(self.bot.sessions) as session:
            inserted = insert_ignoring_duplicates(session, JobRun.__table__, [{
                "job_id": job_id, "period": period, "scheduled_for": local, "started_at": now, "status": "running"}])
            if not inserted:
                # A failed run may be retried; so may any run when forced. A finished one is skipped.
                allowed = ("failed", "done") if force else ("failed",)
                retaken = session.execute(
                    update(JobRun).where(JobRun.job_id == job_id, JobRun.period == period,
                                         JobRun.status.in_(allowed))
                    .values(status="running", started_at=now, finished_at=None, detail=None)).rowcount
                if retaken != 1:
                    return JobResult(job_id, period, False, "already_ran")
        try:
            with transaction(self.bot.sessions) as session:
                detail = spec.run(JobContext(session=session, bot=self.bot, at=local, period=period)) or ""
        except Exception as error:  # noqa: BLE001 - recorded; the next catch-up retries it
            if getattr(error, "code", None) is not None:  # a typed refusal (e.g. a month not over yet)
                log.warning("job %s for %s refused: %s", job_id, period, error)
            else:
                log.exception("job %s for %s failed", job_id, period)
            self._finish(job_id, period, "failed", f"{type(error).__name__}: {error}")
            raise
        self._finish(job_id, period, "done", detail)
        self.bot.sender.wake()
        return JobResult(job_id, period, True, detail)

    def _finish(self, job_id: str, period: str, status: str, detail: str) -> None:
        with transaction(self.bot.sessions) as session:
            session.execute(update(JobRun).where(JobRun.job_id == job_id, JobRun.period == period)
                            .values(status=status, finished_at=self.bot.clock.now(), detail=detail[:2000]))

    def missed_runs(self, now: datetime | None = None) -> list[tuple[JobSpec, datetime]]:
        """For each job, the latest effective fire time inside its catch-up window, if its period has
        no finished run. Older missed periods are stale once a newer one exists, so they are left."""
        now = now or self.bot.clock.now()
        config = self.bot.config
        zone = config.schedule.zone
        missed: list[tuple[JobSpec, datetime]] = []
        for spec in all_jobs():
            end = now.astimezone(zone)
            fires = fire_times(spec.trigger(config), end - spec.catch_up_within(config), end)
            latest = next(((fire, period) for fire in reversed(fires)
                           if (period := spec.period_of(fire, config)) is not None), None)
            if latest is None:
                continue
            fire, period = latest
            with transaction(self.bot.sessions) as session:
                done = session.scalar(select(JobRun.status).where(JobRun.job_id == spec.id, JobRun.period == period))
            if done != "done":
                missed.append((spec, fire))
        return missed

    def catch_up(self, now: datetime | None = None) -> list[JobResult]:
        """Run each missed job once, oldest fire time first, as the schedule would have."""
        results = []
        for spec, fire_time in sorted(self.missed_runs(now), key=lambda item: item[1]):
            log.info("catching up %s missed at %s", spec.id, fire_time.isoformat())
            try:
                results.append(self.run(spec.id, fire_time))
            except Exception:  # noqa: BLE001 - logged in run(); the others still get their turn
                continue
        return results


def fire_times(trigger: BaseTrigger, start: datetime, end: datetime) -> list[datetime]:
    """Every time the trigger fires in [start, end], found by stepping forward from start."""
    fires: list[datetime] = []
    fire = trigger.get_next_fire_time(None, start)
    while fire is not None and fire <= end:
        fires.append(fire)
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return fires


def last_fire_time(trigger: BaseTrigger, start: datetime, end: datetime) -> datetime | None:
    """The last time the trigger fires in [start, end]."""
    fires = fire_times(trigger, start, end)
    return fires[-1] if fires else None


# Far enough to cross any holiday and the longest month-end rule; a job never due within it is off.
EFFECTIVE_HORIZON = timedelta(days=400)


def next_effective_fire_time(spec: JobSpec, config: Config, after: datetime) -> datetime | None:
    """The first fire time at or after `after` on which the job has something to do (its period_of is
    not None), in the configured zone: the weekly prompt's next fire skips holidays and lands on make-up
    workdays. None when there is none within EFFECTIVE_HORIZON."""
    zone = config.schedule.zone
    start = after.astimezone(zone)
    trigger = spec.trigger(config)
    fire = trigger.get_next_fire_time(None, start)
    while fire is not None and fire - start <= EFFECTIVE_HORIZON:
        local = fire.astimezone(zone)
        if spec.period_of(local, config) is not None:
            return local
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return None


def next_fire_times(config: Config, now: datetime) -> list[tuple[JobSpec, datetime | None]]:
    """Each job (calendar jobs, then housekeeping) with its next effective fire time."""
    return [(spec, next_effective_fire_time(spec, config, now)) for spec in all_jobs()]


class BotScheduler:
    """APScheduler drives the real-time firing; only the process holding the lease runs jobs."""

    def __init__(self, bot: KpiBot) -> None:
        self.bot = bot
        self.runner = JobRunner(bot)
        self.holder = uuid.uuid4().hex[:12]
        self._scheduler = BackgroundScheduler(timezone=bot.config.schedule.zone)
        self._timers: set[threading.Timer] = set()
        self._timers_lock = threading.Lock()
        self._stopped = threading.Event()

    def start(self) -> None:
        for spec in all_jobs():
            self._scheduler.add_job(self._fire, spec.trigger(self.bot.config), args=[spec.id], id=spec.id,
                                    replace_existing=True, misfire_grace_time=3600, coalesce=True)
        self._scheduler.add_job(self._renew_lease, "interval", seconds=30, id="lease", replace_existing=True)
        self._scheduler.start()
        if self.take_lease():
            self.runner.catch_up()

    def stop(self) -> None:
        self._stopped.set()
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        with self._timers_lock:
            # A jittered run still waiting must not start against a bot that is shutting down.
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
        self.release_lease()

    def _fire(self, job_id: str) -> None:
        if self._stopped.is_set() or not self.take_lease():
            return
        # Spread sends away from the congested top and half of the hour (wecom.md §2).
        # The period is fixed now, at the fire time; only the sending waits.
        timer = threading.Timer(random.uniform(60, 240), self._run_now, args=[job_id, self.bot.clock.now()])
        timer.daemon = True
        with self._timers_lock:
            self._timers.add(timer)
        timer.start()

    def _run_now(self, job_id: str, at: datetime) -> None:
        with self._timers_lock:
            self._timers.discard(threading.current_thread())  # type: ignore[arg-type] - a Timer runs this
        if self._stopped.is_set():
            return
        try:
            self.runner.run(job_id, at)
        except Exception:  # noqa: BLE001 - already logged and recorded
            pass

    def _renew_lease(self) -> None:
        self.take_lease()

    def take_lease(self) -> bool:
        with transaction(self.bot.sessions) as session:
            return take_lease(session, SCHEDULER_LEASE, self.holder, self.bot.clock.now(), LEASE_DURATION)

    def release_lease(self) -> None:
        with transaction(self.bot.sessions) as session:
            release_lease(session, SCHEDULER_LEASE, self.holder)
