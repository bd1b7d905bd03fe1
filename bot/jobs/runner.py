"""The runner: each job acting once per period (claimed, kept alive by a heartbeat, taken over when its process dies),
caught up after downtime, and the scheduler that only the lease's holder runs.

A JobRun row per (job, period) makes a job act once per period however often it is started: by the scheduler (which
plans the run in the database at the fire time), by catch-up after downtime or a failover, by taking over a run
whose process died, or by hand. The job table is handed in (bot/jobs/table.py), so the runner knows no job.
"""
from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time as time_module
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from bot import pausepoints
from bot.chat.dispatcher import Dispatcher
from bot.clock import Clock
from bot.config import Config
from bot.jobs.context import JobContext
from bot.jobs.spec import JobSpec, find_job, fire_times
from bot.storage.db import transaction
from bot.storage.leases import release_lease, take_lease
from bot.storage.models import JobRun
from bot.storage.sqlutil import insert_ignoring_duplicates
from bot.wecom.client import WeComClient

log = logging.getLogger(__name__)

SCHEDULER_LEASE = "scheduler"
LEASE_DURATION = timedelta(seconds=90)
# On stop, how long running jobs may take to finish before the process lets go of them (they are taken over).
STOP_WAITS_FOR_JOBS_SECONDS = 30.0


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

    def __init__(self, jobs: Callable[[], Sequence[JobSpec]], *, sessions: sessionmaker[Session], config: Config,
                 clock: Clock, client: WeComClient, dispatcher: Dispatcher, wake_sender: Callable[[], None],
                 holder: str | None = None) -> None:
        self.jobs = jobs  # the table, asked at every use (bot.jobs.table.all_jobs)
        self.sessions = sessions
        self.config = config
        self.clock = clock
        self.client = client
        self.dispatcher = dispatcher
        self.wake_sender = wake_sender  # what a job queued goes out now, not at the sender's next look
        self.holder = holder or process_holder()

    def run(self, job_id: str, at: datetime | None = None, *, force: bool = False,
            period: str | None = None) -> JobResult:
        spec = find_job(self.jobs(), job_id)
        zone = self.config.schedule.zone
        local = (at or self.clock.now()).astimezone(zone)
        period = period or spec.period_of(local, self.config)
        if period is None:
            return JobResult(job_id, None, False, "not_due")
        refused = self._claim(job_id, period, local, force)
        if refused is not None:
            return JobResult(job_id, period, False, refused)
        heartbeat = _Heartbeat(self, job_id, period)
        try:
            with transaction(self.sessions) as session:
                detail = spec.run(self._context(session, local, period)) or ""
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
        self.wake_sender()
        return JobResult(job_id, period, True, detail)

    def _context(self, session: Session, local: datetime, period: str) -> JobContext:
        return JobContext(session=session, at=local, period=period, config=self.config, clock=self.clock,
                          client=self.client, sessions=self.sessions, dispatcher=self.dispatcher)

    def _claim(self, job_id: str, period: str, local: datetime, force: bool) -> str | None:
        """Make the run ours; None when it is, else why not (already_ran, running)."""
        now = self.clock.now()
        claim = {"status": "running", "started_at": now, "finished_at": None, "detail": None,
                 "holder": self.holder, "claimed_until": now + JOB_CLAIM}
        with transaction(self.sessions) as session:
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
        with transaction(self.sessions) as session:
            return session.execute(
                update(JobRun).where(JobRun.job_id == job_id, JobRun.period == period, JobRun.status == "running",
                                     JobRun.holder == self.holder)
                .values(claimed_until=self.clock.now() + JOB_CLAIM)).rowcount == 1

    def _finish(self, job_id: str, period: str, status: str, detail: str) -> None:
        with transaction(self.sessions) as session:
            # Only while the run is still ours: a process that lost its claim leaves the row to its new holder.
            session.execute(update(JobRun).where(JobRun.job_id == job_id, JobRun.period == period,
                                                 JobRun.holder == self.holder)
                            .values(status=status, finished_at=self.clock.now(), detail=detail[:2000],
                                    claimed_until=None))

    def latest_fires(self, now: datetime) -> list[tuple[JobSpec, datetime, str]]:
        """Each job's latest effective fire time inside its catch-up window, with its period. Older fire times
        are stale once a newer one exists, so they are left."""
        config = self.config
        end = now.astimezone(config.schedule.zone)
        latest = []
        for spec in self.jobs():
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
        with transaction(self.sessions) as session:
            rows = session.scalars(select(JobRun).where(JobRun.job_id.in_({job for job, _ in wanted}),
                                                        JobRun.period.in_({period for _, period in wanted}))).all()
            session.expunge_all()
        return {(row.job_id, row.period): row for row in rows if (row.job_id, row.period) in wanted}

    def missed_runs(self, now: datetime | None = None) -> list[tuple[JobSpec, datetime]]:
        """For each job, the latest effective fire time inside its catch-up window, if its period has no
        finished run and nobody is running it (a run whose process died counts as missed)."""
        now = now or self.clock.now()
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


class BotScheduler:
    """Only the process holding the lease runs jobs; it looks every `schedule.tick_seconds` (and at each due time).

    Nothing of the schedule lives only in this process: at each look the holder finds every job's latest fire time
    inside its catch-up window and writes a planned run for it (due at the fire time plus its jitter) before
    waiting; it starts every planned run that is due and takes over every run whose process died. So a holder
    killed after a fire time, during the jitter or inside the job costs only the lease's 90 s: the process that
    takes the lease next finds the same fire time, the same due time and the same abandoned run."""

    def __init__(self, runner: JobRunner) -> None:
        self.runner = runner
        self.holder = runner.holder
        self.sessions, self.clock = runner.sessions, runner.clock
        self.tick_seconds = runner.config.schedule.tick_seconds
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
        tick = self.tick_seconds
        while not self._stopped.is_set():
            try:
                wait = self.tick()
            except Exception:  # noqa: BLE001 - the scheduler must survive a database hiccup
                log.exception("scheduler tick failed")
                wait = tick
            self._stopped.wait(min(tick, max(wait, 0.05)))

    def tick(self, now: datetime | None = None) -> float:
        """One look: renew or take the lease, plan, start what is due. Returns the seconds until the next due run."""
        tick = self.tick_seconds
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
        now = now or self.clock.now()
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
        with transaction(self.sessions) as session:
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
        with transaction(self.sessions) as session:
            return take_lease(session, SCHEDULER_LEASE, self.holder, self.clock.now(), LEASE_DURATION)

    def release_lease(self) -> None:
        with transaction(self.sessions) as session:
            release_lease(session, SCHEDULER_LEASE, self.holder)
