"""The scheduler: one table of jobs, each acting once per period, caught up after downtime, led by one process."""
from __future__ import annotations

import logging
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.config import Config
from bot.db import transaction
from bot.models import JobRun, Lease
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


@dataclass(frozen=True)
class JobSpec:
    id: str
    description: str
    trigger: Callable[[Config], BaseTrigger]
    period_of: Callable[[datetime, Config], str | None]  # None: nothing to do at that moment
    run: Callable[[JobContext], str | None]
    catch_up_within: timedelta = timedelta(hours=12)


def _daily_period(at: datetime, _config: Config) -> str:
    return at.date().isoformat()


def _org_sync(ctx: JobContext) -> str:
    from bot.org import sync_org

    report = sync_org(ctx.session, ctx.bot.client, ctx.config, ctx.bot.clock.now())
    return render("ops/org_sync.txt.j2", ctx.config.bot.locale, report=report)


def _org_sync_trigger(config: Config) -> BaseTrigger:
    return CronTrigger(hour=config.org.sync_at.hour, minute=config.org.sync_at.minute, timezone=config.schedule.zone)


# Every scheduled job, in one place.
JOBS: list[JobSpec] = [
    JobSpec("org_sync", "每晚同步通讯录", _org_sync_trigger, _daily_period, _org_sync),
]


def job_by_id(job_id: str) -> JobSpec:
    for spec in JOBS:
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
        """Fire times that passed (within each job's catch-up window) without a recorded run."""
        now = now or self.bot.clock.now()
        zone = self.bot.config.schedule.zone
        missed: list[tuple[JobSpec, datetime]] = []
        for spec in JOBS:
            trigger = spec.trigger(self.bot.config)
            last = last_fire_time(trigger, now.astimezone(zone) - spec.catch_up_within, now.astimezone(zone))
            if last is None:
                continue
            period = spec.period_of(last, self.bot.config)
            if period is None:
                continue
            with transaction(self.bot.sessions) as session:
                done = session.scalar(select(JobRun.status).where(JobRun.job_id == spec.id, JobRun.period == period))
            if done != "done":
                missed.append((spec, last))
        return missed

    def catch_up(self, now: datetime | None = None) -> list[JobResult]:
        results = []
        for spec, fire_time in self.missed_runs(now):
            log.info("catching up %s missed at %s", spec.id, fire_time.isoformat())
            try:
                results.append(self.run(spec.id, fire_time))
            except Exception:  # noqa: BLE001 - logged in run(); the others still get their turn
                continue
        return results


def last_fire_time(trigger: BaseTrigger, start: datetime, end: datetime) -> datetime | None:
    """The last time the trigger fires in [start, end], found by stepping forward from start."""
    last = None
    fire = trigger.get_next_fire_time(None, start)
    while fire is not None and fire <= end:
        last = fire
        fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return last


def next_fire_times(config: Config, now: datetime) -> list[tuple[JobSpec, datetime | None]]:
    zone = config.schedule.zone
    return [(spec, spec.trigger(config).get_next_fire_time(None, now.astimezone(zone))) for spec in JOBS]


class BotScheduler:
    """APScheduler drives the real-time firing; only the process holding the lease runs jobs."""

    def __init__(self, bot: KpiBot) -> None:
        self.bot = bot
        self.runner = JobRunner(bot)
        self.holder = uuid.uuid4().hex[:12]
        self._scheduler = BackgroundScheduler(timezone=bot.config.schedule.zone)

    def start(self) -> None:
        for spec in JOBS:
            self._scheduler.add_job(self._fire, spec.trigger(self.bot.config), args=[spec.id], id=spec.id,
                                    replace_existing=True, misfire_grace_time=3600, coalesce=True)
        self._scheduler.add_job(self._renew_lease, "interval", seconds=30, id="lease", replace_existing=True)
        self._scheduler.start()
        if self.take_lease():
            self.runner.catch_up()

    def stop(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self.release_lease()

    def _fire(self, job_id: str) -> None:
        if not self.take_lease():
            return
        # Spread sends away from the congested top and half of the hour (wecom.md §2).
        # The period is fixed now, at the fire time; only the sending waits.
        timer = threading.Timer(random.uniform(60, 240), self._run_now, args=[job_id, self.bot.clock.now()])
        timer.daemon = True
        timer.start()

    def _run_now(self, job_id: str, at: datetime) -> None:
        try:
            self.runner.run(job_id, at)
        except Exception:  # noqa: BLE001 - already logged and recorded
            pass

    def _renew_lease(self) -> None:
        self.take_lease()

    def take_lease(self) -> bool:
        now = self.bot.clock.now()
        with transaction(self.bot.sessions) as session:
            if session.get(Lease, SCHEDULER_LEASE) is None:
                insert_ignoring_duplicates(session, Lease.__table__, [
                    {"name": SCHEDULER_LEASE, "holder": None, "expires_at": None}])
            taken = session.execute(
                update(Lease).where(Lease.name == SCHEDULER_LEASE)
                .where((Lease.holder.is_(None)) | (Lease.holder == self.holder) | (Lease.expires_at < now))
                .values(holder=self.holder, expires_at=now + LEASE_DURATION)).rowcount
            return taken == 1

    def release_lease(self) -> None:
        with transaction(self.bot.sessions) as session:
            session.execute(update(Lease).where(Lease.name == SCHEDULER_LEASE, Lease.holder == self.holder)
                            .values(holder=None, expires_at=None))
