"""The scheduler: one table of jobs, each acting once per period, caught up after downtime, led by one process.

Every job has a daily (or frequent) cron trigger at a configured time; its `period_of` decides from the
team's calendar (bot.appraisal.workcalendar) whether that day is one where the job acts, and for which period
(an ISO week "2026-W48", a month "2026-11", a day). A JobRun row per (job, period) makes a job act once
per period however often it is started: by the scheduler (which plans the run in the database at the fire
time), by catch-up after downtime or a failover, by taking over a run whose process died, or by hand.
"""
from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time as time_module
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from bot import pausepoints
from bot.appraisal import feedback360, okr, results, wecom_stats, workcalendar
from bot.jobs import calendar_watch, nudges
from bot.config import Config
from bot.storage.db import transaction
from bot.storage.leases import release_lease, take_lease
from bot.storage.models import Conversation, JobRun
from bot.templates import render
from bot.storage.sqlutil import insert_ignoring_duplicates

if TYPE_CHECKING:
    from sqlalchemy.orm import sessionmaker

    from bot.app import KpiBot
    from bot.clock import Clock
    from bot.wecom.client import WeComClient

log = logging.getLogger(__name__)

SCHEDULER_LEASE = "scheduler"
LEASE_DURATION = timedelta(seconds=90)
# On stop, how long running jobs may take to finish before the process lets go of them (they are taken over).
STOP_WAITS_FOR_JOBS_SECONDS = 30.0


@dataclass
class JobContext:
    """What a job receives: its own session, the moment it runs for, and the bot's parts."""

    session: Session
    bot: KpiBot
    at: datetime  # local time, in the configured zone
    period: str

    # Jobs use only these parts (not `bot`), so the context can become a plain record of them.
    @property
    def config(self) -> Config:
        return self.bot.config

    @property
    def clock(self) -> Clock:
        return self.bot.clock

    @property
    def client(self) -> WeComClient:
        return self.bot.client

    @property
    def sessions(self) -> sessionmaker[Session]:
        return self.bot.sessions


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
    from bot.appraisal.org_sync import sync_org

    report = sync_org(ctx.session, ctx.client, ctx.config, ctx.clock.now())
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
    JobSpec("close_nudge", "结账前提醒主管：尚未评分或缺数据的成员（结账前 N 个工作日）",
            _daily_at(lambda c: c.results.nudge_at), nudges.nudge_period_of, nudges.run_nudge_job),
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
    """Close conversations idle past their timeout as a timeout closes them (the flow's on_timeout keeps the draft)."""
    moment = ctx.at.astimezone(timezone.utc)
    expired = ctx.session.scalars(select(Conversation).where(Conversation.expires_at <= moment)
                                  .order_by(Conversation.userid)).all()
    for row in expired:
        ctx.bot.dispatcher.expire(ctx.session, row.userid, moment)
    # The sweep runs often; its own run records are only worth keeping for a week.
    ctx.session.execute(delete(JobRun).where(JobRun.job_id == "conversation_sweep",
                                             JobRun.started_at < ctx.clock.now() - SWEEP_RUNS_KEPT))
    return render("ops/sweep.txt.j2", ctx.config.bot.locale, closed=len(expired))


def _inbox_prune(ctx: JobContext) -> str:
    from bot.wecom.inbox import prune_dedupe_keys

    keep_days = ctx.config.bot.dedupe_keep_days
    deleted = prune_dedupe_keys(ctx.session, ctx.clock.now(), keep_days)
    return render("ops/inbox_prune.txt.j2", ctx.config.bot.locale, deleted=deleted, keep_days=keep_days)


# Routine upkeep, run by the same runner but kept out of JOBS (the team's calendar), so views of
# "what happens next" (jobs list shows both, the sandbox only JOBS) are not drowned in sweeps.
HOUSEKEEPING: list[JobSpec] = [
    JobSpec("conversation_sweep", "关闭超时的对话（保留草稿）", _sweep_trigger, _sweep_period, _sweep_conversations,
            catch_up_within=lambda _config: timedelta(minutes=SWEEP_EVERY_MINUTES)),
    # A day of catch-up: every start-up inside a year without data (or just before one) checks it at once.
    JobSpec("calendar_warning", "缺少今年或明年的节假日数据时提醒管理员（每年一次，提前 30 天）",
            _daily_at(lambda _c: calendar_watch.WARN_AT), calendar_watch.missing_year_period,
            calendar_watch.run_warning, catch_up_within=lambda _config: timedelta(days=1)),
    JobSpec("inbox_prune", "删除超过保留期的已处理消息（去重键）", _daily_at(lambda _c: time(3, 17)), _daily_period,
            _inbox_prune),
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
    detail: str  # the job's own summary when it ran; else not_due | already_ran | running


# A running job's claim on its run; a heartbeat renews it well before it lapses, so a claim that has lapsed means
# the process running the job is gone (or stuck) and any other may take the run over.
JOB_CLAIM = timedelta(minutes=2)
HEARTBEAT_SECONDS = 30.0
# Spread sends away from the congested top and half of the hour (wecom.md §2).
JITTER_SECONDS = (60.0, 240.0)


def jitter(job_id: str, fire: datetime) -> timedelta:
    """The delay after a fire time before its run starts: spread over 1-4 minutes, yet the same in every process
    (derived from the job and the fire time), so whoever holds the lease starts the run at the same moment."""
    digest = hashlib.sha256(f"{job_id}@{fire.astimezone(timezone.utc).isoformat()}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2 ** 64
    low, high = JITTER_SECONDS
    return timedelta(seconds=round(low + (high - low) * fraction, 3))


def process_holder() -> str:
    """Who holds a claim or the lease: host and pid for the operator, and a random part for uniqueness."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def claim_lapsed(run: JobRun, now: datetime) -> bool:
    """A running run whose process stopped renewing its claim (a row from before claims existed has none)."""
    return run.status == "running" and (run.claimed_until is None or run.claimed_until < now)


class _Heartbeat:
    """Renews a running job's claim every HEARTBEAT_SECONDS until the job ends."""

    def __init__(self, runner: JobRunner, job_id: str, period: str) -> None:
        self.runner, self.job_id, self.period = runner, job_id, period
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{job_id}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._done.wait(HEARTBEAT_SECONDS):
            try:
                if not self.runner.renew_claim(self.job_id, self.period):
                    log.warning("job %s for %s: its claim was taken over by another process", self.job_id, self.period)
                    return
            except Exception:  # noqa: BLE001 - a missed beat is retried; the claim lasts four of them
                log.exception("job %s for %s: renewing its claim failed", self.job_id, self.period)

    def stop(self) -> None:
        self._done.set()


class JobRunner:
    """Runs a job as if at a given moment, at most once per period (unless forced).

    A run is claimed in its own transaction before the job starts (status running, a holder, a claim deadline kept
    fresh by a heartbeat). A planned or failed run is taken; so is a running one whose claim lapsed: its process
    died inside the job, and running the job again is safe because every message is queued under a key of
    period and person (the outbox ignores a key queued before) and results already published stay frozen."""

    def __init__(self, bot: KpiBot, holder: str | None = None) -> None:
        self.bot = bot
        self.holder = holder or process_holder()

    def run(self, job_id: str, at: datetime | None = None, *, force: bool = False,
            period: str | None = None) -> JobResult:
        spec = job_by_id(job_id)
        zone = self.bot.config.schedule.zone
        local = (at or self.bot.clock.now()).astimezone(zone)
        period = period or spec.period_of(local, self.bot.config)
        if period is None:
            return JobResult(job_id, None, False, "not_due")
        refused = self._claim(job_id, period, local, force)
        if refused is not None:
            return JobResult(job_id, period, False, refused)
        heartbeat = _Heartbeat(self, job_id, period)
        try:
            with transaction(self.bot.sessions) as session:
                detail = spec.run(JobContext(session=session, bot=self.bot, at=local, period=period)) or ""
        except Exception as error:  # noqa: BLE001 - recorded; the next catch-up retries it
            heartbeat.stop()
            if getattr(error, "code", None) is not None:  # a typed refusal (e.g. a month not over yet)
                log.warning("job %s for %s refused: %s", job_id, period, error)
            else:
                log.exception("job %s for %s failed", job_id, period)
            self._finish(job_id, period, "failed", f"{type(error).__name__}: {error}")
            raise
        heartbeat.stop()
        self._finish(job_id, period, "done", detail)
        log.info("job %s for %s done", job_id, period)
        self.bot.sender.wake()
        return JobResult(job_id, period, True, detail)

    def _claim(self, job_id: str, period: str, local: datetime, force: bool) -> str | None:
        """Make the run ours; None when it is, else why not (already_ran, running)."""
        now = self.bot.clock.now()
        claim = {"status": "running", "started_at": now, "finished_at": None, "detail": None,
                 "holder": self.holder, "claimed_until": now + JOB_CLAIM}
        with transaction(self.bot.sessions) as session:
            inserted = insert_ignoring_duplicates(session, JobRun.__table__, [{
                "job_id": job_id, "period": period, "scheduled_for": local, "takeovers": 0, **claim}])
            if inserted:
                return None
            run = session.scalars(select(JobRun).where(JobRun.job_id == job_id, JobRun.period == period)).one()
            lapsed = claim_lapsed(run, now)
            # A planned or failed run is taken, a finished one only when forced; a running one only once its
            # process is gone, and never from under a live one, forced or not.
            if not (run.status in ("planned", "failed") or lapsed or (force and run.status == "done")):
                return "running" if run.status == "running" else "already_ran"
            if lapsed:
                log.warning("taking over job %s for %s from %s (its claim lapsed at %s)", job_id, period,
                            run.holder, run.claimed_until.isoformat() if run.claimed_until else "-")
            # Only if nobody changed the row since we read it: of two processes taking it, one wins.
            taken = session.execute(
                update(JobRun).where(JobRun.id == run.id, JobRun.status == run.status,
                                     JobRun.holder.is_(None) if run.holder is None else JobRun.holder == run.holder)
                .values(**claim, takeovers=JobRun.takeovers + (1 if lapsed else 0))).rowcount
            return None if taken == 1 else "running"

    def renew_claim(self, job_id: str, period: str) -> bool:
        with transaction(self.bot.sessions) as session:
            return session.execute(
                update(JobRun).where(JobRun.job_id == job_id, JobRun.period == period, JobRun.status == "running",
                                     JobRun.holder == self.holder)
                .values(claimed_until=self.bot.clock.now() + JOB_CLAIM)).rowcount == 1

    def _finish(self, job_id: str, period: str, status: str, detail: str) -> None:
        with transaction(self.bot.sessions) as session:
            # Only while the run is still ours: a process that lost its claim leaves the row to its new holder.
            session.execute(update(JobRun).where(JobRun.job_id == job_id, JobRun.period == period,
                                                 JobRun.holder == self.holder)
                            .values(status=status, finished_at=self.bot.clock.now(), detail=detail[:2000],
                                    claimed_until=None))

    def latest_fires(self, now: datetime) -> list[tuple[JobSpec, datetime, str]]:
        """Each job's latest effective fire time inside its catch-up window, with its period. Older fire times
        are stale once a newer one exists, so they are left."""
        config = self.bot.config
        end = now.astimezone(config.schedule.zone)
        latest = []
        for spec in all_jobs():
            fires = fire_times(spec.trigger(config), end - spec.catch_up_within(config), end)
            found = next(((fire, period) for fire in reversed(fires)
                          if (period := spec.period_of(fire, config)) is not None), None)
            if found is not None:
                latest.append((spec, found[0], found[1]))
        return latest

    def runs(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], JobRun]:
        """The stored runs of these (job, period) pairs, detached from their session."""
        wanted = set(keys)
        if not wanted:
            return {}
        with transaction(self.bot.sessions) as session:
            rows = session.scalars(select(JobRun).where(JobRun.job_id.in_({job for job, _ in wanted}),
                                                        JobRun.period.in_({period for _, period in wanted}))).all()
            session.expunge_all()
        return {(row.job_id, row.period): row for row in rows if (row.job_id, row.period) in wanted}

    def missed_runs(self, now: datetime | None = None) -> list[tuple[JobSpec, datetime]]:
        """For each job, the latest effective fire time inside its catch-up window, if its period has no
        finished run and nobody is running it (a run whose process died counts as missed)."""
        now = now or self.bot.clock.now()
        latest = self.latest_fires(now)
        stored = self.runs((spec.id, period) for spec, _, period in latest)
        missed = []
        for spec, fire, period in latest:
            run = stored.get((spec.id, period))
            if run is None or run.status in ("planned", "failed") or claim_lapsed(run, now):
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


# How far back `kpibot jobs list` looks for runs worth an operator's eye.
WATCHED_RUNS_SINCE = timedelta(days=7)


@dataclass(frozen=True)
class WatchedRun:
    """A recent run that is not simply done: planned, running, stuck (its process gone), failed, or taken over."""

    job_id: str
    period: str
    state: str  # planned | running | stuck | failed | done (then taken over at least once)
    scheduled_for: datetime
    due_at: datetime | None
    holder: str | None
    claimed_until: datetime | None
    takeovers: int


def watched_runs(session: Session, now: datetime) -> list[WatchedRun]:
    rows = session.scalars(select(JobRun).where(JobRun.scheduled_for >= now - WATCHED_RUNS_SINCE)
                           .where((JobRun.status != "done") | (JobRun.takeovers > 0))
                           .order_by(JobRun.scheduled_for, JobRun.job_id)).all()
    return [WatchedRun(row.job_id, row.period, "stuck" if claim_lapsed(row, now) else row.status, row.scheduled_for,
                       row.due_at, row.holder, row.claimed_until, row.takeovers) for row in rows]


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
    """Only the process holding the lease runs jobs; it looks every `schedule.tick_seconds` (and at each due time).

    Nothing of the schedule lives only in this process: at each look the holder finds every job's latest fire time
    inside its catch-up window and writes a planned run for it (due at the fire time plus its jitter) before
    waiting; it starts every planned run that is due and takes over every run whose process died. So a holder
    killed after a fire time, during the jitter or inside the job costs only the lease's 90 s: the process that
    takes the lease next finds the same fire time, the same due time and the same abandoned run."""

    def __init__(self, bot: KpiBot) -> None:
        self.bot = bot
        self.holder = process_holder()
        self.runner = JobRunner(bot, self.holder)
        self.leading = False
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._running: dict[tuple[str, str], threading.Thread] = {}
        self._running_lock = threading.Lock()

    def start(self) -> None:
        """Catch up at once (the first look), then keep looking in a thread of its own."""
        try:
            self.tick()
        except Exception:  # noqa: BLE001 - the loop tries again
            log.exception("scheduler tick failed")
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self, job_timeout: float = STOP_WAITS_FOR_JOBS_SECONDS) -> None:
        self._stopped.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        # A job still running after this keeps its claim until it lapses; then another process takes it over.
        self.wait_idle(job_timeout)
        self.release_lease()

    def _loop(self) -> None:
        tick = self.bot.config.schedule.tick_seconds
        while not self._stopped.is_set():
            try:
                wait = self.tick()
            except Exception:  # noqa: BLE001 - the scheduler must survive a database hiccup
                log.exception("scheduler tick failed")
                wait = tick
            self._stopped.wait(min(tick, max(wait, 0.05)))

    def tick(self, now: datetime | None = None) -> float:
        """One look: renew or take the lease, plan, start what is due. Returns the seconds until the next due run."""
        tick = self.bot.config.schedule.tick_seconds
        if self._stopped.is_set():
            return tick
        if not self.take_lease():
            if self.leading:
                log.warning("lost the scheduler lease")
            self.leading = False
            return tick
        catching_up = not self.leading
        if catching_up:
            log.info("took the scheduler lease (%s): catching up every missed fire time", self.holder)
            self.leading = True
        now = now or self.bot.clock.now()
        latest = self.runner.latest_fires(now)
        stored = self.runner.runs((spec.id, period) for spec, _, period in latest)
        wait = tick
        for spec, fire, period in latest:
            run = stored.get((spec.id, period))
            if run is None:
                run = self._plan(spec, fire, period, now)
            if run is None:
                continue
            due_at = run.due_at or run.scheduled_for
            if run.status == "planned" and due_at > now:
                wait = min(wait, (due_at - now).total_seconds())
            elif (run.status == "planned" or claim_lapsed(run, now)
                  or (catching_up and run.status == "failed")):  # a failed run is retried by a new holder only
                self._start(spec.id, fire, period)
        return wait

    def _plan(self, spec: JobSpec, fire: datetime, period: str, now: datetime) -> JobRun | None:
        """Write the planned run of a fire time (due after its jitter) before waiting for it."""
        pausepoints.reached(f"schedule.seen:{spec.id}")
        with transaction(self.bot.sessions) as session:
            insert_ignoring_duplicates(session, JobRun.__table__, [{
                "job_id": spec.id, "period": period, "scheduled_for": fire, "due_at": fire + jitter(spec.id, fire),
                "started_at": now,  # of a planned run: when it was planned; set again when it starts
                "status": "planned", "takeovers": 0}])
        pausepoints.reached(f"schedule.planned:{spec.id}")
        return self.runner.runs([(spec.id, period)]).get((spec.id, period))

    def _start(self, job_id: str, fire: datetime, period: str) -> None:
        """Run it in a thread of its own (a month close may take minutes; the lease is renewed meanwhile)."""
        with self._running_lock:
            alive = self._running.get((job_id, period))
            if alive is not None and alive.is_alive():
                return
            thread = threading.Thread(target=self._run, args=[job_id, fire], name=f"job-{job_id}", daemon=True)
            self._running[(job_id, period)] = thread
        thread.start()

    def _run(self, job_id: str, fire: datetime) -> None:
        try:
            self.runner.run(job_id, fire)
        except Exception:  # noqa: BLE001 - already logged and recorded
            pass

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait (at most `timeout` seconds in all) for the job threads started so far to end."""
        with self._running_lock:
            threads = list(self._running.values())
        deadline = time_module.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time_module.monotonic()))

    def take_lease(self) -> bool:
        with transaction(self.bot.sessions) as session:
            return take_lease(session, SCHEDULER_LEASE, self.holder, self.bot.clock.now(), LEASE_DURATION)

    def release_lease(self) -> None:
        with transaction(self.bot.sessions) as session:
            release_lease(session, SCHEDULER_LEASE, self.holder)
