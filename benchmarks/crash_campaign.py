"""Crash campaign: real kpibot processes SIGKILLed at seeded random pause points lose, repeat and republish nothing.

Each kill copies a prepared SQLite database into a fresh directory, starts a fake WeCom on loopback, and runs a real
subprocess with KPIBOT_TEST_PAUSE_AT set to the chosen point and occurrence (bot/pausepoints.py):

* message path: `kpibot serve --no-scheduler` while members send signed `/help` callbacks; the point is one of
  callback.stored, inbox.claimed, outbox.enqueue:in:*, inbox.handled, sender.claimed, sender.answered. After the
  kill a fresh `serve` starts and every callback not answered 200 is sent again byte for byte, as WeCom retries.
  Then every message must have exactly one reply delivered, every inbox row be done and every reply row be sent.
* close/publish: `kpibot jobs run month_close|publish` paused at a results stage or at the N-th message it queues.
  After the kill the job's claim lapses, the job is run again, and `serve --no-scheduler` delivers what it queued.
  Then every member's result is stored (close) or published (publish) once, one audit entry records the job, and
  every recipient's message is delivered exactly once.

Duplicates that WeCom's duplicate check dropped (a resend after `sender.answered`) are the designed behaviour and
reported separately as `suppressed`. Prints a table per point family and a total line; exits 1 on any violation.

    python benchmarks/crash_campaign.py                  # 56 kills, 14 of them inside close or publish
    python benchmarks/crash_campaign.py --kills 20 --seed 7
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if __name__ == "__main__":  # run as a script: the repository's root on the path, for tests.harness
    sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from bot.clock import FileClock  # noqa: E402
from bot.fakes.callbacks import CallbackSender  # noqa: E402
from bot.fakes.wecom import FakeWeCom  # noqa: E402
from bot.jobs.runner import JOB_CLAIM, jitter  # noqa: E402
from bot.sandbox import demo_org  # noqa: E402
from bot.storage.db import make_engine, make_session_factory, transaction  # noqa: E402
from bot.storage.models import AuditEntry, InboxMessage, OutboxMessage, PeriodResult  # noqa: E402
from tests.harness import (AES_KEY, AGENT_ID, CORP_ID, CORP_SECRET, SHANGHAI, TOKEN,  # noqa: E402
                           KpibotProcess, ProcessWaitError, prepare_database, write_config_file)

PAUSED = "KPIBOT_TEST_PAUSED"
TIMEOUT = 30.0
SAMPLE = ROOT / "docs" / "sample-data.csv"
SAMPLE_MEMBERS = {"zhangwei", "lina", "wangfang", "liuyang", "chenjing", "zhaolei"}
TALKERS = ("zhangwei", "lina", "liuyang", "chenjing")
MESSAGES_EACH = 2
MESSAGE_TIME = datetime(2026, 11, 27, 10, 7, tzinfo=SHANGHAI)
CLOSE_FIRE = datetime(2026, 12, 7, 10, 5, tzinfo=SHANGHAI)
PUBLISH_FIRE = datetime(2026, 12, 9, 10, 5, tzinfo=SHANGHAI)
PERIOD = "2026-11"
# Past every claim a dead process left (a sender's rows, a job's run), so the survivor may take them over.
LAPSE = JOB_CLAIM + timedelta(minutes=5)

# Message-path points and the highest occurrence worth asking for (a pass may claim several rows at once), the
# riskiest first: a short campaign (the CI test's) kills at the first few of each list.
MESSAGE_POINTS = {"inbox.handled": len(TALKERS) * MESSAGES_EACH, "sender.answered": len(TALKERS) * MESSAGES_EACH,
                  "callback.stored": len(TALKERS) * MESSAGES_EACH, "inbox.claimed": len(TALKERS) * MESSAGES_EACH,
                  "outbox.enqueue:in:*": len(TALKERS) * MESSAGES_EACH, "sender.claimed": 2}
# Job points: (job, point, highest occurrence); the sample's six members make one chunk per stage.
JOB_POINTS = [("month_close", "results.save", 1), ("publish", "results.publish", 1),
              ("month_close", "outbox.enqueue:close:*", 4), ("publish", "outbox.enqueue:publish:*", 9),
              ("month_close", "results.drafts", 1), ("publish", "results.summaries", 1)]


class Violation(Exception):
    """A kill that lost, doubled or mis-published something (or never reached its point)."""


@dataclass
class Outcome:
    """What one kill found."""

    family: str
    point: str
    lost: int = 0
    twice: int = 0
    suppressed: int = 0
    published_once: bool = True
    seconds: float = 0.0
    problem: str = ""


@dataclass
class Campaign:
    """The working directory and the prepared databases every kill starts from a copy of."""

    workdir: Path
    bases: dict[str, Path] = field(default_factory=dict)

    # -- one kill's world ----------------------------------------------------------------------------------------
    @contextmanager
    def world(self, name: str, base: str, moment: datetime) -> Iterator[World]:
        directory = self.workdir / name
        directory.mkdir()
        if base:
            shutil.copyfile(self.bases[base], directory / "kpibot.db")
        world = World(directory, moment)
        try:
            yield world
        finally:
            world.close()

    # -- the prepared databases ----------------------------------------------------------------------------------
    def prepare(self) -> None:
        """The org (message path), plus November's data (close), plus the close done on its day (publish)."""
        with self.world("base", "", MESSAGE_TIME) as world:
            world.cli("org", "sync")
            self._keep(world, "message")
            world.set_time(CLOSE_FIRE - timedelta(seconds=30))
            world.cli("data", "import", str(SAMPLE))
            self._keep(world, "month_close")
            world.cli("jobs", "run", "month_close", "--at", CLOSE_FIRE.isoformat())
            self._keep(world, "publish")

    def _keep(self, world: World, name: str) -> None:
        world.engine.dispose()
        self.bases[name] = self.workdir / f"{name}.db"
        shutil.copyfile(world.directory / "kpibot.db", self.bases[name])


class World:
    """One kill's database file, fake time, fake WeCom on loopback and config."""

    def __init__(self, directory: Path, moment: datetime) -> None:
        self.directory = directory
        self.url = f"sqlite:///{directory / 'kpibot.db'}"
        self.clock_file = directory / "clock"
        self.set_time(moment)
        self.fake = FakeWeCom(corp_id=CORP_ID, corp_secret=CORP_SECRET, agent_id=AGENT_ID,
                              clock=FileClock(str(self.clock_file)).now)
        demo_org.populate(self.fake)
        self.fake.add_user("wangfang", "Wang Fang", departments=(3,), main_department=3, direct_leader=("lina",))
        self.fake.start()
        self.engine = make_engine(self.url)
        if not (directory / "kpibot.db").exists():
            prepare_database(self.engine, self.url)
        self.port = _free_port()
        self.config = write_config_file(directory, self.fake.base_url, database_url=self.url,
                                        server={"host": "127.0.0.1", "port": self.port})
        self.processes: list[KpibotProcess] = []

    def set_time(self, moment: datetime) -> None:
        staged = self.clock_file.with_suffix(".tmp")
        staged.write_text(moment.isoformat(), encoding="utf-8")
        staged.replace(self.clock_file)  # atomic: a process never reads half a time

    def now(self) -> datetime:
        return datetime.fromisoformat(self.clock_file.read_text(encoding="utf-8"))

    def env(self, pause_at: str | None) -> dict[str, str]:
        env = {**os.environ, "KPIBOT_TEST_CLOCK_FILE": str(self.clock_file)}
        env.pop("KPIBOT_TEST_PAUSE_AT", None)
        if pause_at:
            env["KPIBOT_TEST_PAUSE_AT"] = pause_at
        return env

    def kpibot(self, *argv: str, pause_at: str | None = None) -> KpibotProcess:
        process = KpibotProcess(["--config", str(self.config), *argv], self.env(pause_at))
        self.processes.append(process)
        return process

    def serve(self, pause_at: str | None = None) -> KpibotProcess:
        process = self.kpibot("serve", "--no-scheduler", pause_at=pause_at)
        process.wait_for("/wecom/callback")
        return process

    def cli(self, *argv: str) -> None:
        """A kpibot command run to its end in a subprocess (the campaign's own environment stays untouched)."""
        process = self.kpibot(*argv)
        if process.popen.wait(timeout=120) != 0:
            raise Violation(f"kpibot {' '.join(argv)} failed:\n{process.output()[-3000:]}")

    def sender(self) -> CallbackSender:
        return CallbackSender(f"http://127.0.0.1:{self.port}/wecom/callback", token=TOKEN, encoding_aes_key=AES_KEY,
                              corp_id=CORP_ID, agent_id=AGENT_ID, clock=FileClock(str(self.clock_file)).now)

    def close(self) -> None:
        for process in self.processes:
            process.stop()
        self.fake.stop()
        self.engine.dispose()


def _free_port() -> int:
    # The port is fixed for the kill so WeCom's retries go to the restarted bot at the same address.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- the message path ------------------------------------------------------------------------------------------------
def kill_on_message_path(world: World, point: str) -> Outcome:
    outcome = Outcome("message", point)
    with world.sender() as sender:
        deliveries = [sender.prepare_text(userid, "/help") for _ in range(MESSAGES_EACH) for userid in TALKERS]
        answered: set[int] = set()
        bot = world.serve(pause_at=point)

        def talk() -> None:  # stops at the first callback not answered 200, as the paused or killed bot drops it
            for index, delivery in enumerate(deliveries):
                try:
                    if sender.send(delivery).status != 200:
                        return
                except Exception:  # noqa: BLE001 - a connection the kill cut
                    return
                answered.add(index)

        talker = threading.Thread(target=talk, daemon=True)
        talker.start()
        bot.wait_for(PAUSED)
        bot.kill()
        talker.join(timeout=TIMEOUT)
        world.set_time(world.now() + LAPSE)
        survivor = world.serve()
        for index, delivery in enumerate(deliveries):
            if index not in answered:  # WeCom's retry of what was never acknowledged
                response = sender.send(delivery)
                if response.status != 200:
                    raise Violation(f"the restarted bot answered {response.status} to a retry")
    for userid in TALKERS:
        with suppress(AssertionError):  # a reply that never comes is counted below as lost
            world.fake.wait_for(userid, count=MESSAGES_EACH, timeout=TIMEOUT)
    survivor.stop()
    for userid in TALKERS:
        got = len(world.fake.delivered(userid))
        outcome.lost += max(0, MESSAGES_EACH - got)
        outcome.twice += max(0, got - MESSAGES_EACH)
    outcome.suppressed = len(world.fake.suppressed())
    with transaction(make_session_factory(world.engine)) as session:
        inbox = Counter(session.scalars(select(InboxMessage.status)))
        replies = Counter(session.scalars(select(OutboxMessage.status).where(
            OutboxMessage.idempotency_key.like("in:%"))))
    if inbox != {"done": len(deliveries)} or replies != {"sent": len(deliveries)}:
        outcome.lost += max(1, len(deliveries) - replies["sent"])
        outcome.problem = f"inbox {dict(inbox)}, replies {dict(replies)}"
    return outcome


# -- inside the month close and the publication ----------------------------------------------------------------------
def kill_inside_job(world: World, job: str, point: str) -> Outcome:
    outcome = Outcome(job, point)
    fire = CLOSE_FIRE if job == "month_close" else PUBLISH_FIRE
    due = fire + jitter(job, fire)
    world.set_time(due)
    run = ("jobs", "run", job, "--at", fire.isoformat())
    first = world.kpibot(*run, pause_at=point)
    first.wait_for(PAUSED)
    first.kill()
    world.set_time(due + LAPSE)  # the dead run's claim has lapsed: the next run takes it over
    world.cli(*run)
    keys = "close:2026-11:" if job == "month_close" else "publish:2026-11:"
    with transaction(make_session_factory(world.engine)) as session:
        queued = list(session.scalars(select(OutboxMessage).where(OutboxMessage.idempotency_key.like(f"{keys}%"))))
        rows = [(row.touser, repr(sorted(row.payload.items()))) for row in queued]
        told = {row.idempotency_key.partition("#")[0] for row in queued}
        audits = session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == f"results.{'close' if job == 'month_close' else 'publish'}",
            AuditEntry.subject == PERIOD))
        results = Counter(session.scalars(select(PeriodResult.userid).where(PeriodResult.period == PERIOD)))
        published = Counter(session.scalars(select(PeriodResult.userid).where(
            PeriodResult.period == PERIOD, PeriodResult.status == "published")))
    wanted = set(rows)
    survivor = world.serve()
    with suppress(AssertionError):  # a message that never comes is counted below as lost
        world.fake.wait_for(lambda m: (m.touser, repr(sorted(m.payload.items()))) in wanted, count=len(wanted),
                            timeout=TIMEOUT)
    survivor.stop()
    delivered = Counter((m.touser, repr(sorted(m.payload.items()))) for m in world.fake.delivered())
    outcome.lost = sum(1 for pair in wanted if delivered[pair] == 0)
    outcome.twice = sum(delivered[pair] - 1 for pair in wanted if delivered[pair] > 1) + len(rows) - len(wanted)
    outcome.suppressed = len(world.fake.suppressed())
    # The close keeps a result for every active member; those with data are the ones published.
    stored_once = set(results) >= SAMPLE_MEMBERS and set(results.values()) == {1}
    members_told = told >= {f"{keys}member:{userid}" for userid in SAMPLE_MEMBERS} if job == "publish" else True
    once = published == Counter(SAMPLE_MEMBERS) if job == "publish" else not published
    outcome.published_once = stored_once and once and audits == 1 and members_told
    if not outcome.published_once:
        outcome.problem = f"results {dict(results)}, published {dict(published)}, audits {audits}"
    return outcome


# -- the campaign ----------------------------------------------------------------------------------------------------
def plan(kills: int, inside: int, seed: int) -> list[tuple[str, str, str]]:
    """(family, base database, pause point with occurrence) for each kill, seeded; every point family is used."""
    chooser = random.Random(seed)
    chosen: list[tuple[str, str, str]] = []
    names = list(MESSAGE_POINTS)
    for index in range(kills - inside):
        name = names[index] if index < len(names) else chooser.choice(names)
        chosen.append(("message", "message", f"{name}#{chooser.randint(1, MESSAGE_POINTS[name])}"))
    for index in range(inside):
        job, name, most = JOB_POINTS[index] if index < len(JOB_POINTS) else chooser.choice(JOB_POINTS)
        chosen.append((job, job, f"{name}#{chooser.randint(1, most)}"))
    chooser.shuffle(chosen)
    return chosen


def run_campaign(kills: int, inside: int, seed: int, workdir: Path, echo: bool = True) -> list[Outcome]:
    campaign = Campaign(workdir)
    started = time.monotonic()
    campaign.prepare()
    if echo:
        print(f"prepared the databases in {time.monotonic() - started:.1f}s; {kills} kills, seed {seed}", flush=True)
    outcomes: list[Outcome] = []
    for number, (family, base, point) in enumerate(plan(kills, inside, seed), 1):
        began = time.monotonic()
        moment = MESSAGE_TIME if family == "message" else CLOSE_FIRE
        with campaign.world(f"kill-{number:03d}", base, moment) as world:
            try:
                outcome = (kill_on_message_path(world, point) if family == "message"
                           else kill_inside_job(world, family, point))
            except (Violation, ProcessWaitError) as error:
                outcome = Outcome(family, point, lost=1, published_once=family == "message",
                                  problem=str(error)[:1500])
        outcome.seconds = time.monotonic() - began
        outcomes.append(outcome)
        if echo and (outcome.problem or outcome.lost or outcome.twice):
            print(f"kill {number} at {point}: {outcome}", flush=True)
    return outcomes


def report(outcomes: list[Outcome]) -> str:
    families: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        families[f"{outcome.family} {outcome.point.split('#')[0]}"].append(outcome)
    head = ("point", "kills", "lost", "twice", "suppressed", "published once", "s/kill")
    lines = [f"{head[0]:<40} " + " ".join(f"{name:>{max(5, len(name))}}" for name in head[1:])]
    for name, group in sorted(families.items()):
        once = "yes" if all(o.published_once for o in group) else "NO"
        lines.append(f"{name:<40} {len(group):>5} {sum(o.lost for o in group):>5} {sum(o.twice for o in group):>5} "
                     f"{sum(o.suppressed for o in group):>10} {once:>14} "
                     f"{sum(o.seconds for o in group) / len(group):>6.1f}")
    inside = sum(1 for o in outcomes if o.family != "message")
    lines.append(f"kills {len(outcomes)} (close/publish {inside}): lost {sum(o.lost for o in outcomes)}, "
                 f"shown twice {sum(o.twice for o in outcomes)}, results published once: "
                 f"{'yes' if all(o.published_once for o in outcomes) else 'no'}")
    return "\n".join(lines)


def failed(outcomes: list[Outcome]) -> bool:
    return any(o.lost or o.twice or not o.published_once or o.problem for o in outcomes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=56)
    parser.add_argument("--inside", type=int, default=None, help="how many of the kills are inside close/publish")
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    inside = args.inside if args.inside is not None else max(10, args.kills // 4)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kpibot-crash-") as workdir:
        outcomes = run_campaign(args.kills, min(inside, args.kills), args.seed, Path(workdir))
    print(report(outcomes))
    print(f"took {time.monotonic() - started:.0f}s")
    return 1 if failed(outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
