"""Sandbox time: a clock that flows like real time and moves on when asked, and the bot's job table run on it."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from bot.app import KpiBot
from bot.clock import FakeClock
from bot.jobs import table as schedule
from bot.jobs.spec import JobSpec, fire_times, next_effective_fire_time
from bot.storage.db import transaction
from bot.storage.models import JobRun, OutboxMessage

log = logging.getLogger(__name__)

MAX_TRIGGER_STEPS = 2_000  # periods already done, skipped one by one
OUTBOX_DRAIN_SECONDS = 10.0


class SandboxClock(FakeClock):
    """A FakeClock that also runs at real speed between moves.

    A frozen clock would keep WeCom's duplicate check and the per-member rate limits closed forever
    (the same /help answer twice would never arrive), and no conversation would ever time out; so
    sandbox time flows like real time, and advance()/set() move it on.
    """

    def __init__(self, start: datetime, *, running: bool = True,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__(start)
        self.running = running
        self._monotonic = monotonic
        self._anchor = monotonic()

    def _current(self) -> datetime:
        if not self.running:
            return self._now
        return self._now + timedelta(seconds=self._monotonic() - self._anchor)

    def now(self) -> datetime:
        with self._lock:
            return self._current()

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        step = delta if delta is not None else timedelta(**kwargs)
        with self._lock:
            self._now = self._current() + step
            self._anchor = self._monotonic()
            return self._now

    def set(self, moment: datetime) -> None:
        with self._lock:
            self._now = moment.astimezone(timezone.utc)
            self._anchor = self._monotonic()


# ---------------------------------------------------------------- the job table on sandbox time


@dataclass(frozen=True)
class ScheduledEvent:
    """A moment at which a job in bot.jobs.table.JOBS would act."""

    job_id: str
    description: str
    at: datetime  # aware, in the schedule's zone


@dataclass(frozen=True)
class JobOutcome:
    """A due job run for one moment: it ran, failed, or had already run for its period."""

    job_id: str
    description: str
    at: datetime
    period: str
    ran: bool
    failed: bool
    detail: str
    housekeeping: bool = False  # routine upkeep (schedule.HOUSEKEEPING): not worth a line in a summary


class SandboxScheduler:
    """The bot's job table run on sandbox time: the same JobRunner as `kpibot serve`, for every fire time
    the clock passes, in order.

    APScheduler fires on the wall clock; sandbox time jumps, so fire times are found by stepping each
    job's trigger. The job table is read from bot.jobs.table at every call, so jobs added there appear here.
    "What is coming" lists the calendar jobs (schedule.JOBS) only; housekeeping runs too, but when time
    jumps it is coalesced to one run before each calendar job and one at the end, as APScheduler's
    coalesce does for missed runs (sweeping every ten minutes of a skipped month would change nothing).
    """

    def __init__(self, bot: KpiBot, clock: SandboxClock, *, on_change: Callable[[], None] = lambda: None,
                 tick_seconds: float = 0.5) -> None:
        self.bot = bot
        self.clock = clock
        self.runner = bot.job_runner()
        self.on_change = on_change
        self.tick_seconds = tick_seconds
        self._lock = threading.RLock()
        self._checked_until = clock.now()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.version = 0  # bumped whenever sandbox time is moved on purpose

    @staticmethod
    def calendar_jobs() -> list[JobSpec]:
        return list(schedule.JOBS)

    @staticmethod
    def housekeeping_jobs() -> list[JobSpec]:
        return list(schedule.HOUSEKEEPING)

    @property
    def zone(self) -> ZoneInfo:
        return self.bot.config.schedule.zone

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._tick, name="sandbox-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    def _tick(self) -> None:
        """Sandbox time also flows by itself; run what comes due as it does."""
        while not self._stop.wait(self.tick_seconds):
            try:
                self.run_due()
            except Exception:  # noqa: BLE001 - the ticker must survive; the job itself was logged
                log.exception("sandbox scheduler tick failed")

    def run_due(self) -> list[JobOutcome]:
        """Run every job that came due up to the sandbox's now (one tick of the ticker)."""
        if not self._lock.acquire(blocking=False):
            return []  # an advance or jump is running the jobs itself
        try:
            return self._run_until(self.clock.now(), move_clock=False)
        finally:
            self._lock.release()

    # -- what is coming ---------------------------------------------------------------------------
    def upcoming(self) -> list[ScheduledEvent]:
        """For each calendar job, the next moment at which running it would do something, soonest first."""
        now = self.clock.now()
        events = []
        for spec in self.calendar_jobs():
            at = self._next_effective_fire(spec, now)
            if at is not None:
                events.append(ScheduledEvent(spec.id, spec.description, at))
        return sorted(events, key=lambda event: event.at)

    def next_event(self, job_id: str | None = None) -> ScheduledEvent | None:
        events = [e for e in self.upcoming() if job_id is None or e.job_id == job_id]
        return events[0] if events else None

    def _next_effective_fire(self, spec: JobSpec, after: datetime) -> datetime | None:
        """schedule.next_effective_fire_time, strictly after `after`, skipping periods already done."""
        config = self.bot.config
        done = self._done_periods(spec.id)
        moment = after
        for _ in range(MAX_TRIGGER_STEPS):
            fire = next_effective_fire_time(spec, config, moment)
            if fire is None:
                return None
            if fire > after and spec.period_of(fire, config) not in done:
                return fire
            moment = fire + timedelta(seconds=1)
        return None

    def _done_periods(self, job_id: str) -> set[str]:
        with transaction(self.bot.sessions) as session:
            return set(session.scalars(select(JobRun.period).where(JobRun.job_id == job_id,
                                                                   JobRun.status == "done")))

    # -- moving time --------------------------------------------------------------------------------
    def advance(self, delta: timedelta) -> list[JobOutcome]:
        """Move sandbox time on by `delta`, running every job whose time comes, in order, at its moment."""
        with self._lock:
            outcomes = self._run_until(self.clock.now() + delta, move_clock=True)
            self.version += 1
        self.on_change()
        return outcomes

    def jump_to(self, moment: datetime) -> list[JobOutcome]:
        with self._lock:
            outcomes = self._run_until(max(moment, self.clock.now()), move_clock=True)
            self.version += 1
        self.on_change()
        return outcomes

    def _fires_between(self, start: datetime, end: datetime) -> list[tuple[datetime, int, JobSpec]]:
        """(fire time, table order, job) with start < fire time <= end, in the order they run."""
        config = self.bot.config
        local_start, local_end = start.astimezone(self.zone), end.astimezone(self.zone)
        calendar_jobs = self.calendar_jobs()
        calendar = [(fire, order, spec) for order, spec in enumerate(calendar_jobs)
                    for fire in fire_times(spec.trigger(config), local_start, local_end) if fire > local_start]
        boundaries = sorted({fire for fire, _, _ in calendar} | {local_end})
        housekeeping = []
        for order, spec in enumerate(self.housekeeping_jobs(), start=len(calendar_jobs)):
            fires = [fire for fire in fire_times(spec.trigger(config), local_start, local_end) if fire > local_start]
            index = 0
            for boundary in boundaries:  # keep the last fire up to each boundary: the rest would change nothing
                last = None
                while index < len(fires) and fires[index] <= boundary:
                    last, index = fires[index], index + 1
                if last is not None:
                    housekeeping.append((last, order, spec))
        return sorted(calendar + housekeeping, key=lambda item: (item[0], item[1]))

    def _run_until(self, end: datetime, *, move_clock: bool) -> list[JobOutcome]:
        outcomes = []
        housekeeping = {spec.id for spec in self.housekeeping_jobs()}
        for fire, _, spec in self._fires_between(self._checked_until, end):
            local = fire.astimezone(self.zone)
            if move_clock and fire > self.clock.now():
                self.clock.set(fire)
            try:
                result = self.runner.run(spec.id, local)
            except Exception as error:  # noqa: BLE001 - JobRunner logged and recorded it; the others still run
                period = spec.period_of(local, self.bot.config) or ""
                outcomes.append(JobOutcome(spec.id, spec.description, local, period, False, True,
                                           f"{type(error).__name__}: {error}", spec.id in housekeeping))
            else:
                if result.period is not None:  # not due at this moment: nothing to report
                    outcomes.append(JobOutcome(spec.id, spec.description, local, result.period, result.ran,
                                               False, result.detail, spec.id in housekeeping))
                if result.ran:
                    self._drain_outbox()
            self._checked_until = fire
        if move_clock and end > self.clock.now():
            self.clock.set(end)
        self._checked_until = max(self._checked_until, end)
        return outcomes

    def _drain_outbox(self) -> None:
        """Let what a job queued go out before time moves on, so each message arrives at its moment."""
        deadline = time.monotonic() + OUTBOX_DRAIN_SECONDS
        while time.monotonic() < deadline and not self._stop.is_set():
            self.bot.sender.wake()
            with transaction(self.bot.sessions) as session:
                waiting = session.scalar(select(func.count()).select_from(OutboxMessage).where(
                    OutboxMessage.status.in_(("pending", "sending")),
                    OutboxMessage.next_attempt_at <= self.clock.now()))
            if not waiting:
                return
            self._stop.wait(0.05)
        log.warning("outbox not drained within %ss; moving time on anyway", OUTBOX_DRAIN_SECONDS)


