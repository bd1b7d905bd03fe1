"""The sandbox: the real bot, the built-in fake WeCom with the sample organisation and a WeCom-like page, in one process."""
from __future__ import annotations

import errno
import json
import logging
import os
import threading
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, jsonify, request, send_from_directory
from sqlalchemy import func, select

from bot.sandbox import demo_org
from bot.app import KpiBot
from bot.clock import FakeClock
from bot.config import Config, ConfigError, parse_config
from bot.storage.db import make_engine, transaction, upgrade_database
from bot.chat.dispatcher import load_person
from bot.fakes.wecom import CardUpdate, DeliveredMessage, FakeWeCom
from bot.storage.models import Department, JobRun, Member, OutboxMessage
from bot.chat.routing import Role
from bot.shipped_files import EXAMPLE_CONFIG
from bot.templates import render, render_error
from bot.fakes.callbacks import CallbackSender

if TYPE_CHECKING:
    from bot.jobs.spec import JobSpec

log = logging.getLogger(__name__)

__all__ = [
    "Sandbox",
    "SandboxClock",
    "SandboxScheduler",
    "SandboxStartError",
    "ScheduledEvent",
    "Transcript",
    "TranscriptEntry",
    "create_sandbox_blueprint",
    "default_start",
    "sandbox_config",
    "start_sandbox",
]

SANDBOX_HOST = "127.0.0.1"  # never anything else: the page acts as anyone in the organisation
STATIC_DIR = Path(__file__).resolve().parent / "static"
PAGE = "sandbox.html"
SHANGHAI = ZoneInfo("Asia/Shanghai")
START_HOUR = 9

# The demo values: config.example.toml works as it is with the built-in fake, so the sandbox uses it
# (every section a flow adds appears there with a demo value; a wheel ships a copy). Without it, the bare
# minimum below: the demo app's values, which only ever meet the built-in fake.
SANDBOX_WECOM: dict[str, Any] = {
    "corp_id": "wwkpibotdemo00001",
    "agent_id": 1000002,
    "secret": "demo-secret-for-the-built-in-fake-wecom",
    "token": "kpibotDemoToken",
    "encoding_aes_key": "kpibotDemoEncodingAesKey0123456789abcdefghi",
}

MAX_ADVANCE_HOURS = 24 * 62  # two months per request: long enough to play a month, short enough to answer
MAX_TEXT_CHARS = 2000
LONG_POLL_SECONDS = 25.0
MAX_TRIGGER_STEPS = 2_000  # periods already done, skipped one by one
OUTBOX_DRAIN_SECONDS = 10.0


class SandboxStartError(Exception):
    """The sandbox could not start; `code` and `params` render templates/<locale>/sandbox/start_error.txt.j2."""

    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.params = params

    def message(self) -> str:
        return render_error("sandbox/start_error.txt.j2", f"sandbox could not start ({self.code})", **self.params,
                            code=self.code)


# ---------------------------------------------------------------- the clock


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


# ---------------------------------------------------------------- the scheduler on sandbox time


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
        from bot.jobs import table as schedule
        return list(schedule.JOBS)

    @staticmethod
    def housekeeping_jobs() -> list[JobSpec]:
        from bot.jobs import table as schedule
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
        from bot.jobs.spec import next_effective_fire_time

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
        from bot.jobs.spec import fire_times

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


# ---------------------------------------------------------------- the conversation record


@dataclass(frozen=True)
class TranscriptEntry:
    """One message in a person's conversation with the bot: typed by them (to_bot) or delivered (from_bot)."""

    seq: int
    userid: str
    direction: str  # to_bot | from_bot
    msgtype: str
    payload: dict[str, Any]
    at: datetime
    task_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "userid": self.userid, "direction": self.direction, "msgtype": self.msgtype,
                "payload": self.payload, "task_id": self.task_id, "at": self.at.isoformat(),
                "at_ms": int(self.at.timestamp() * 1000)}


@dataclass
class CardState:
    """What became of a card after it was delivered: clicked, its button renamed, or replaced."""

    seq: int
    clicked_key: str | None = None
    replace_name: str | None = None
    card: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "clicked_key": self.clicked_key, "replace_name": self.replace_name,
                "card": self.card}


class Transcript:
    """Every person's conversation with the bot, kept server-side (and in the data dir) so a reload shows it."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._condition = threading.Condition()
        self._entries: list[TranscriptEntry] = []
        self._cards: dict[tuple[str, str], CardState] = {}
        self._seq = 0
        self._closing = False
        if path is not None and path.exists():
            self._load(path)

    @property
    def seq(self) -> int:
        with self._condition:
            return self._seq

    def _load(self, path: Path) -> None:
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
                if record["type"] == "message":
                    entry = TranscriptEntry(record["seq"], record["userid"], record["direction"], record["msgtype"],
                                            record["payload"], datetime.fromisoformat(record["at"]),
                                            record.get("task_id"))
                    self._entries.append(entry)
                    self._seq = max(self._seq, entry.seq)
                elif record["type"] == "card":
                    state = CardState(record["seq"], record.get("clicked_key"), record.get("replace_name"),
                                      record.get("card"))
                    self._cards[(record["userid"], record["task_id"])] = state
                    self._seq = max(self._seq, state.seq)
            except (KeyError, TypeError, ValueError):
                log.warning("skipping an unreadable line of %s", path)

    def _append_record(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        with self.path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(record, ensure_ascii=False) + "\n")

    def add(self, userid: str, direction: str, msgtype: str, payload: dict[str, Any], at: datetime,
            task_id: str | None = None) -> TranscriptEntry:
        with self._condition:
            self._seq += 1
            entry = TranscriptEntry(self._seq, userid, direction, msgtype, payload, at, task_id)
            self._entries.append(entry)
            self._append_record({"type": "message", **entry.to_json()})
            self._condition.notify_all()
            return entry

    def add_delivery(self, message: DeliveredMessage) -> None:
        self.add(message.touser, "from_bot", message.msgtype, message.payload, message.at, message.task_id)

    def card(self, userid: str, task_id: str) -> TranscriptEntry | None:
        with self._condition:
            for entry in reversed(self._entries):
                if entry.userid == userid and entry.task_id == task_id and entry.msgtype == "template_card":
                    return entry
            return None

    def card_state(self, userid: str, task_id: str) -> CardState | None:
        with self._condition:
            return self._cards.get((userid, task_id))

    def holders(self, task_id: str) -> list[str]:
        with self._condition:
            return sorted({e.userid for e in self._entries if e.task_id == task_id})

    def update_card(self, userid: str, task_id: str, **changes: Any) -> CardState:
        with self._condition:
            self._seq += 1
            current = self._cards.get((userid, task_id)) or CardState(self._seq)
            state = replace(current, seq=self._seq, **changes)
            self._cards[(userid, task_id)] = state
            self._append_record({"type": "card", "userid": userid, "task_id": task_id, **state.to_json()})
            self._condition.notify_all()
            return state

    def touch(self) -> None:
        """Wake waiting readers without a new message (time moved, for instance)."""
        with self._condition:
            self._seq += 1
            self._condition.notify_all()

    def close(self) -> None:
        with self._condition:
            self._closing = True
            self._condition.notify_all()

    def changes_since(self, after: int, userid: str | None = None,
                      wait: float = 0.0) -> tuple[int, list[TranscriptEntry], dict[str, dict[str, CardState]]]:
        """(cursor, entries, card states) newer than `after`, waiting up to `wait` seconds for something new."""
        with self._condition:
            if wait > 0:
                self._condition.wait_for(lambda: self._seq > after or self._closing, timeout=wait)
            entries = [e for e in self._entries if e.seq > after and (userid is None or e.userid == userid)]
            cards: dict[str, dict[str, CardState]] = {}
            for (owner, task_id), state in self._cards.items():
                if state.seq > after and (userid is None or owner == userid):
                    cards.setdefault(owner, {})[task_id] = state
            return self._seq, entries, cards

    def has_conversation(self, userid: str) -> bool:
        with self._condition:
            return any(e.userid == userid for e in self._entries)


# ---------------------------------------------------------------- persisted sandbox state


@dataclass
class SandboxState:
    """What survives a restart besides the database: where sandbox time was, which seed steps ran."""

    path: Path
    now: datetime | None = None
    seeded: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> SandboxState:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            now = datetime.fromisoformat(raw["now"]) if raw.get("now") else None
            return cls(path, now if now is None or now.tzinfo else None, list(raw.get("seeded", [])))
        except FileNotFoundError:
            return cls(path)
        except (ValueError, TypeError, KeyError, AttributeError):
            log.warning("ignoring unreadable sandbox state %s", path)
            return cls(path)

    def save(self) -> None:
        data = {"now": self.now.isoformat() if self.now else None, "seeded": self.seeded}
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
        os.replace(temporary, self.path)


# ---------------------------------------------------------------- composition


def default_start(today: date | None = None) -> datetime:
    """09:00 of today's date in Asia/Shanghai: a working morning, before the day's prompts go out."""
    day = today or datetime.now(SHANGHAI).date()
    return datetime(day.year, day.month, day.day, START_HOUR, 0, tzinfo=SHANGHAI)


def demo_settings() -> dict[str, Any]:
    """The demo configuration as parsed TOML: config.example.toml, else the bare minimum in code."""
    try:
        return tomllib.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"wecom": dict(SANDBOX_WECOM), "org": {"admins": list(demo_org.DEMO_ADMINS)}}


def sandbox_config(settings: dict[str, Any], data_dir: Path, api_base_url: str, port: int) -> Config:
    """The demo config with the sandbox's own parts: the fake's URL, a SQLite file in the data dir, loopback."""
    raw = {name: dict(value) if isinstance(value, dict) else value for name, value in settings.items()}
    raw["wecom"] = {**raw.get("wecom", {}), "api_base_url": api_base_url}
    raw["database"] = {"url": f"sqlite:///{(data_dir / 'kpibot.db').resolve()}"}
    # Long-polls from the page hold a thread each; callbacks and the fake's calls need theirs.
    raw["server"] = {**raw.get("server", {}), "host": SANDBOX_HOST, "port": port, "threads": 24}
    org = raw.setdefault("org", {})
    org["admins"] = sorted(set(org.get("admins", [])) | set(demo_org.DEMO_ADMINS))
    # environ={}: a KPIBOT_DATABASE_URL meant for a real deployment must never reach the sandbox.
    try:
        return parse_config(raw, environ={}, base_dir=EXAMPLE_CONFIG.parent)
    except ConfigError as error:
        raise SandboxStartError("config_invalid", reason=str(error)) from None


def _prepare_data_dir(data_dir: Path) -> Path:
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / ".write-test"
        probe.write_text("ok", encoding="utf-8")
        probe.unlink()
    except OSError as error:
        raise SandboxStartError("data_dir_unwritable", path=str(data_dir),
                                reason=error.strerror or type(error).__name__) from None
    return data_dir.resolve()


class Sandbox:
    """A running sandbox: `url` is the page; `bot`, `fake`, `clock`, `scheduler` are the live parts."""

    def __init__(self, *, bot: KpiBot, fake: FakeWeCom, clock: SandboxClock, data_dir: Path,
                 state: SandboxState) -> None:
        self.bot = bot
        self.fake = fake
        self.clock = clock
        self.data_dir = data_dir
        self.state = state
        self.transcript = Transcript(data_dir / "transcript.jsonl")
        self.scheduler = SandboxScheduler(bot, clock, on_change=self._time_moved)
        self.port = 0
        self.callbacks: CallbackSender | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._card_updates_seen = 0
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self._stopped = False

    @property
    def url(self) -> str:
        return f"http://{SANDBOX_HOST}:{self.port}/"

    @property
    def callback_url(self) -> str:
        return f"http://{SANDBOX_HOST}:{self.port}/wecom/callback"

    @property
    def zone(self) -> ZoneInfo:
        return self.bot.config.schedule.zone

    def now(self) -> datetime:
        return self.clock.now().astimezone(self.zone)

    # -- lifecycle ----------------------------------------------------------------------------------
    def _connect(self, port: int) -> None:
        self.port = port
        wecom = self.bot.config.wecom
        self.callbacks = CallbackSender(self.callback_url, token=wecom.token.reveal(),
                                        encoding_aes_key=wecom.encoding_aes_key.reveal(), corp_id=wecom.corp_id,
                                        agent_id=wecom.agent_id, clock=self.clock.now, timeout=10.0)
        self._unsubscribe = self.fake.subscribe(self.transcript.add_delivery)
        self._watcher = threading.Thread(target=self._watch_card_updates, name="sandbox-cards", daemon=True)
        self._watcher.start()

    def _time_moved(self) -> None:
        self.save_state()
        self.transcript.touch()

    def save_state(self) -> None:
        self.state.now = self.clock.now()
        try:
            self.state.save()
        except OSError as error:
            log.warning("could not save sandbox state: %s", error)

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.save_state()
        self._stop.set()
        self.transcript.close()  # long-polls return now instead of holding the server's threads
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        try:
            self.bot.stop()  # HTTP, then the scheduler (ours), inbox, sender, engine
        except OSError as error:
            # Rarely waitress's wake-up pipe is already gone when KpiBot.stop_http pulls it (seen about
            # once in 25 runs of the browser tests, never reproduced under instrumentation). HTTP is
            # down either way; stop the rest, which KpiBot.stop would have done after it.
            log.warning("stopping the HTTP server failed (%s); stopping the other parts", error)
            self.scheduler.stop()
            self.bot.inbox.stop()
            self.bot.sender.stop()
            self.bot.engine.dispose()
        self.fake.stop()
        if self.callbacks is not None:
            self.callbacks.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _watch_card_updates(self) -> None:
        """FakeWeCom records update_template_card calls; show each on the card it changes."""
        while not self._stop.wait(0.2):
            updates = self.fake.card_updates()
            for update in updates[self._card_updates_seen:]:
                self._apply_card_update(update)
            self._card_updates_seen = len(updates)

    def _apply_card_update(self, update: CardUpdate) -> None:
        for userid in update.userids or tuple(self.transcript.holders(update.task_id)):
            if update.template_card is not None:
                self.transcript.update_card(userid, update.task_id, card=update.template_card,
                                            clicked_key=None, replace_name=None)
            else:
                self.transcript.update_card(userid, update.task_id, replace_name=update.button_replace_name)

    # -- people -------------------------------------------------------------------------------------
    def people(self) -> list[dict[str, Any]]:
        """Everyone the bot knows from the org sync, with role, team (main department) and appraisal scheme."""
        from bot.appraisal.assignment import department_parents, scheme_name_for

        demo_order = {person.userid: index for index, person in enumerate(demo_org.DEMO_PEOPLE)}
        rows: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        with transaction(self.bot.sessions) as session:
            departments = {d.id: d for d in session.scalars(select(Department))}
            parents = department_parents(session)
            for member in session.scalars(select(Member).where(Member.active.is_(True))):
                person = load_person(session, member.userid, self.bot.config)
                department = departments.get(member.main_department or 0)
                scheme = scheme_name_for(member.userid, member.department_ids or (), parents,
                                         self.bot.config.appraisal)
                order = ((department.sort_order, department.id) if department else (0, 0), -int(person.role),
                         demo_order.get(member.userid, len(demo_order)), member.name)
                rows.append((order, {
                    "userid": member.userid, "name": member.name, "position": member.position,
                    "role": person.role.name.lower(), "role_label": person.role.label,
                    "team": department.name if department else "", "team_id": member.main_department,
                    "scheme": scheme, "scheme_name": _scheme_name(scheme),
                }))
        return [person for _, person in sorted(rows, key=lambda row: row[0])]

    def knows(self, userid: str) -> bool:
        try:
            self.fake.member(userid)
        except KeyError:
            return False
        return True

    # -- talking to the bot -------------------------------------------------------------------------
    def send_text(self, userid: str, text: str) -> TranscriptEntry:
        """Type `text` as `userid`: a real encrypted callback to the bot's own /wecom/callback."""
        assert self.callbacks is not None
        entry = self.transcript.add(userid, "to_bot", "text", {"content": text}, self.now())
        response = self.callbacks.text(userid, text)
        if response.status != 200:
            raise CallbackRefused(response.status)
        return entry

    def enter(self, userid: str) -> bool:
        """The person opens the app for the first time: WeCom's enter_agent event (the bot welcomes them)."""
        assert self.callbacks is not None
        if self.transcript.has_conversation(userid):
            return False
        response = self.callbacks.event(userid, "enter_agent", "")
        if response.status != 200:
            raise CallbackRefused(response.status)
        return True

    def click(self, userid: str, task_id: str, event_key: str,
              selected_items: dict[str, list[str]] | None = None) -> CardState:
        """Press a card's button (or submit its choices): a real template_card_event callback."""
        assert self.callbacks is not None
        entry = self.transcript.card(userid, task_id)
        if entry is None:
            raise UnknownCard(task_id)
        state = self.transcript.card_state(userid, task_id)
        if state is not None and (state.clicked_key is not None or state.replace_name is not None):
            raise CardAlreadyHandled(task_id)
        card = state.card if state is not None and state.card is not None else entry.payload
        if event_key not in _card_keys(card):
            raise UnknownCard(task_id)
        try:
            response_code = self.fake.issue_response_code(task_id)
        except ValueError:
            response_code = ""  # sent by the fake of an earlier run: the click still reaches the bot
        state = self.transcript.update_card(userid, task_id, clicked_key=event_key)
        response = self.callbacks.card_click(userid, event_key=event_key, task_id=task_id,
                                             card_type=str(card.get("card_type") or "button_interaction"),
                                             response_code=response_code, selected_items=selected_items or None)
        if response.status != 200:
            self.transcript.update_card(userid, task_id, clicked_key=None)
            raise CallbackRefused(response.status)
        return state

    def banner(self) -> str:
        """What `kpibot sandbox` prints once everything is up."""
        people = self.people()
        roles: dict[str, int] = {}
        for person in people:  # already ordered admin, managers, members within each team
            roles[person["role_label"]] = roles.get(person["role_label"], 0) + 1
        order = [role.label for role in sorted(Role, reverse=True)]
        with transaction(self.bot.sessions) as session:
            admin = session.get(Member, demo_org.DEMO_ADMINS[0])
            department = session.get(Department, admin.main_department) if admin and admin.main_department else None
        return render("sandbox/banner.txt.j2", self.bot.config.bot.locale, url=self.url, people=people,
                      roles=sorted(roles.items(), key=lambda item: order.index(item[0])),
                      organisation=department.name if department else "", now=self.now(),
                      data_dir=str(self.data_dir))

    # -- time ---------------------------------------------------------------------------------------
    def time_info(self) -> dict[str, Any]:
        now = self.now()
        locale = self.bot.config.bot.locale
        upcoming = self.scheduler.upcoming()
        return {
            "now": now.isoformat(), "now_ms": _ms(now), "offset_minutes": _offset_minutes(now),
            "running": self.clock.running, "text": render("sandbox/moment.txt.j2", locale, at=now, style="long"),
            "version": self.scheduler.version,
            "next": _event_json(upcoming[0], locale) if upcoming else None,
            "upcoming": [_event_json(event, locale) for event in upcoming],
        }


class CallbackRefused(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class UnknownCard(Exception):
    pass


class CardAlreadyHandled(Exception):
    pass


def _scheme_name(key: str) -> str:
    """The scheme's own display name (e.g. 执行层考核方案), or its key when it cannot be read."""
    from bot.appraisal.assignment import cached_scheme

    try:
        return cached_scheme(key).name or key
    except Exception:  # noqa: BLE001 - a display nicety; the key still identifies the scheme
        return key


def _card_keys(card: dict[str, Any]) -> set[str]:
    keys = {str(button.get("key")) for button in card.get("button_list") or [] if isinstance(button, dict)}
    submit = card.get("submit_button")
    if isinstance(submit, dict) and submit.get("key"):
        keys.add(str(submit["key"]))
    return keys


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _offset_minutes(moment: datetime) -> int:
    offset = moment.utcoffset() or timedelta(0)
    return int(offset.total_seconds() // 60)


def _event_json(event: ScheduledEvent, locale: str) -> dict[str, Any]:
    return {"job_id": event.job_id, "description": event.description, "at": event.at.isoformat(),
            "at_ms": _ms(event.at), "text": render("sandbox/moment.txt.j2", locale, at=event.at, style="short")}


def start_sandbox(*, port: int, data_dir: Path | str, start_at: datetime | None = None, seed: bool = True) -> Sandbox:
    """Start everything, bound to 127.0.0.1, and return the running sandbox (the CLI and the tests use this).

    `start_at` sets sandbox time for a new data dir (default: today 09:00 Asia/Shanghai); an existing data
    dir resumes where its time was left. Raises SandboxStartError with a user-facing reason.
    """
    from bot.sandbox import seed as sandbox_seed

    data_dir = _prepare_data_dir(Path(data_dir))
    state = SandboxState.load(data_dir / "sandbox-state.json")
    clock = SandboxClock(state.now or start_at or default_start())
    settings = demo_settings()
    wecom = {**SANDBOX_WECOM, **settings.get("wecom", {})}
    fake = FakeWeCom(corp_id=wecom["corp_id"], corp_secret=wecom["secret"], agent_id=wecom["agent_id"],
                     clock=clock.now)
    demo_org.populate(fake)
    fake.start()
    engine = None
    bot: KpiBot | None = None
    try:
        config = sandbox_config(settings, data_dir, fake.base_url, port)
        engine = make_engine(config.database.url.reveal(), pool_size=config.server.threads + 8)
        try:
            upgrade_database(engine)
        except Exception as error:  # noqa: BLE001 - a locked, foreign or read-only file: one clear line
            raise SandboxStartError("database_failed", path=str(data_dir / "kpibot.db"),
                                    reason=str(error).splitlines()[0][:200]) from None
        bot = KpiBot(config, clock=clock, engine=engine)
        sandbox = Sandbox(bot=bot, fake=fake, clock=clock, data_dir=data_dir, state=state)
        bot.flask.register_blueprint(create_sandbox_blueprint(sandbox))
        try:
            bound = bot.start_http(SANDBOX_HOST, port)
        except OSError as error:
            code = {errno.EADDRINUSE: "port_in_use", errno.EACCES: "port_denied"}.get(error.errno or 0, "port_failed")
            raise SandboxStartError(code, port=port, reason=error.strerror or str(error)) from None
        sandbox._connect(bound)
        bot.start(scheduler=False, sync_org_now=False)
        if seed:
            sandbox_seed.run_seed_steps(sandbox_seed.SeedContext(bot=bot, fake=fake, clock=clock), state)
        bot.scheduler = sandbox.scheduler  # KpiBot.stop() stops it like the real one
        sandbox.scheduler.start()
        sandbox.save_state()
        return sandbox
    except BaseException:
        if bot is not None:
            bot.stop()
        elif engine is not None:
            engine.dispose()
        fake.stop()
        raise


# ---------------------------------------------------------------- HTTP: the page and its JSON API


def create_sandbox_blueprint(sandbox: Sandbox) -> Blueprint:
    """The page at / and its JSON API under /sandbox/api/, on the bot's own Flask app (one port)."""
    blueprint = Blueprint("sandbox", __name__, static_folder=str(STATIC_DIR), static_url_path="/sandbox/static")
    locale = sandbox.bot.config.bot.locale

    def error(code: str, status: int, **params: Any) -> tuple[Response, int]:
        return jsonify(error=code, message=render("sandbox/api_error.txt.j2", locale, code=code, **params)), status

    def body() -> dict[str, Any]:
        data = request.get_json(silent=True)
        return data if isinstance(data, dict) else {}

    def person_of(data: dict[str, Any]) -> str | None:
        userid = data.get("userid")
        return userid if isinstance(userid, str) and sandbox.knows(userid) else None

    @blueprint.get("/")
    def page() -> Response:
        response = send_from_directory(STATIC_DIR, PAGE, mimetype="text/html")
        response.headers["Cache-Control"] = "no-store"
        return response

    @blueprint.get("/sandbox/api/people")
    def people() -> Any:
        return jsonify(people=sandbox.people(), bot_name=render("sandbox/bot_name.txt.j2", locale))

    @blueprint.get("/sandbox/api/messages")
    def messages() -> Any:
        try:
            after = int(request.args.get("after", "0"))
            wait = min(max(float(request.args.get("wait", "0")), 0.0), LONG_POLL_SECONDS)
        except ValueError:
            return error("bad_cursor", 400)
        userid = request.args.get("userid") or None
        if userid is not None and not sandbox.knows(userid):
            return error("unknown_person", 404, userid=userid)
        cursor, entries, cards = sandbox.transcript.changes_since(after, userid, wait)
        return jsonify(cursor=cursor, entries=[e.to_json() for e in entries],
                       cards={owner: {task: state.to_json() for task, state in states.items()}
                              for owner, states in cards.items()},
                       clock_version=sandbox.scheduler.version)

    @blueprint.post("/sandbox/api/send")
    def send() -> Any:
        data = body()
        userid = person_of(data)
        if userid is None:
            return error("unknown_person", 404, userid=str(data.get("userid", "")))
        text = data.get("text")
        if not isinstance(text, str) or not text.strip():
            return error("empty_text", 400)
        if len(text) > MAX_TEXT_CHARS:
            return error("text_too_long", 400, limit=MAX_TEXT_CHARS)
        try:
            entry = sandbox.send_text(userid, text)
        except CallbackRefused as refused:
            return error("callback_refused", 502, status=refused.status)
        return jsonify(entry=entry.to_json())

    @blueprint.post("/sandbox/api/enter")
    def enter() -> Any:
        data = body()
        userid = person_of(data)
        if userid is None:
            return error("unknown_person", 404, userid=str(data.get("userid", "")))
        try:
            return jsonify(sent=sandbox.enter(userid))
        except CallbackRefused as refused:
            return error("callback_refused", 502, status=refused.status)

    @blueprint.post("/sandbox/api/click")
    def click() -> Any:
        data = body()
        userid = person_of(data)
        if userid is None:
            return error("unknown_person", 404, userid=str(data.get("userid", "")))
        task_id, event_key = data.get("task_id"), data.get("event_key")
        if not isinstance(task_id, str) or not isinstance(event_key, str):
            return error("unknown_card", 404)
        selected = data.get("selected_items") or {}
        if not isinstance(selected, dict) or not all(
                isinstance(k, str) and isinstance(v, list) and all(isinstance(o, str) for o in v)
                for k, v in selected.items()):
            return error("bad_selection", 400)
        try:
            state = sandbox.click(userid, task_id, event_key, selected)
        except UnknownCard:
            return error("unknown_card", 404)
        except CardAlreadyHandled:
            return error("card_already_handled", 409)
        except CallbackRefused as refused:
            return error("callback_refused", 502, status=refused.status)
        return jsonify(card=state.to_json())

    @blueprint.get("/sandbox/api/time")
    def get_time() -> Any:
        return jsonify(sandbox.time_info())

    @blueprint.post("/sandbox/api/time/advance")
    def advance() -> Any:
        hours = body().get("hours")
        if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not 0 < hours <= MAX_ADVANCE_HOURS:
            return error("bad_hours", 400, limit=MAX_ADVANCE_HOURS)
        before = sandbox.now()
        outcomes = sandbox.scheduler.advance(timedelta(hours=hours))
        return jsonify(_moved(sandbox, before, outcomes, locale))

    @blueprint.post("/sandbox/api/time/jump")
    def jump() -> Any:
        job_id = body().get("job_id")
        if job_id is not None and (not isinstance(job_id, str)
                                   or job_id not in {spec.id for spec in sandbox.scheduler.calendar_jobs()}):
            return error("unknown_job", 404, job_id=str(job_id))
        event = sandbox.scheduler.next_event(job_id)
        if event is None:
            return error("no_upcoming_event", 409)
        before = sandbox.now()
        outcomes = sandbox.scheduler.jump_to(event.at)
        return jsonify(_moved(sandbox, before, outcomes, locale, target=event))

    return blueprint


def _moved(sandbox: Sandbox, before: datetime, outcomes: list[JobOutcome], locale: str,
           target: ScheduledEvent | None = None) -> dict[str, Any]:
    after = sandbox.now()
    worth_telling = [o for o in outcomes if o.failed or (o.ran and not o.housekeeping)]
    return {
        "time": sandbox.time_info(),
        "ran": [{"job_id": o.job_id, "description": o.description, "at": o.at.isoformat(), "period": o.period,
                 "ran": o.ran, "failed": o.failed, "detail": o.detail} for o in worth_telling],
        "summary": render("sandbox/time_moved.txt.j2", locale, before=before, after=after, target=target,
                          ran=[o for o in worth_telling if o.ran], failed=[o for o in worth_telling if o.failed]),
    }
