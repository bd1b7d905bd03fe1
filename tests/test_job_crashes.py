"""Scheduled jobs survive SIGKILL: two `kpibot serve` processes with the scheduler on one database and one fake
time, the lease holder killed just after a fire time, during the jitter, or inside the job after part of its
messages were queued; and `kpibot jobs run` killed inside a job. Every job of the period runs exactly once and
every member is reached once, for the weekly prompt, the month close and the publication."""
from __future__ import annotations

import json
import os
import queue
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from bot.sandbox import demo_org
from bot.cli.main import main
from bot.clock import FileClock
from bot.storage.db import make_engine, make_session_factory, transaction
from bot.fakes.wecom import FakeWeCom
from bot.storage.models import AuditEntry, JobRun, Member, OutboxMessage, PeriodResult
from bot.jobs.runner import JOB_CLAIM, LEASE_DURATION, jitter
from tests.harness import (AGENT_ID, CORP_ID, CORP_SECRET, SHANGHAI, KpibotProcess, prepare_database,
                           write_config_file)

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "docs" / "sample-data.csv"
SAMPLE_MEMBERS = {"zhangwei", "lina", "wangfang", "liuyang", "chenjing", "zhaolei"}
PAUSED = "KPIBOT_TEST_PAUSED"
TIMEOUT = 30.0


@dataclass(frozen=True)
class Job:
    """A job under test: when it fires, for which period, and the outbox keys its messages carry."""

    id: str
    fire: datetime
    period: str
    keys: str  # the prefix of every outbox key the job queues

    def due(self) -> datetime:
        return self.fire + jitter(self.id, self.fire)


WEEKLY_PROMPT = Job("weekly_prompt", datetime(2026, 11, 27, 16, 5, tzinfo=SHANGHAI), "2026-W48",
                    "job:weekly_prompt:2026-W48:")
MONTH_CLOSE = Job("month_close", datetime(2026, 12, 7, 10, 5, tzinfo=SHANGHAI), "2026-11", "close:2026-11:")
PUBLISH = Job("publish", datetime(2026, 12, 9, 10, 5, tzinfo=SHANGHAI), "2026-11", "publish:2026-11:")


@dataclass
class World:
    """One database, one fake WeCom and one fake time shared by the test and every kpibot process it starts."""

    tmp_path: Path
    db_url: str
    engine: Engine
    fake: FakeWeCom
    clock_file: Path
    config: Path
    processes: list[KpibotProcess]
    lines: queue.Queue[tuple[KpibotProcess, str]]

    @property
    def pause_file(self) -> Path:
        return self.tmp_path / "pause-at"

    def pause_at(self, point: str) -> None:
        """Whichever process reaches this point next pauses there (`` lets them all go on)."""
        self.pause_file.write_text(point, encoding="utf-8")

    def first_to_say(self, text: str, timeout: float = TIMEOUT) -> KpibotProcess:
        """The process that printed a line containing text (waiting for one to)."""
        for process in self.processes:
            if any(text in line for line in process.lines):
                return process
        deadline = datetime.now() + timedelta(seconds=timeout)
        while (left := (deadline - datetime.now()).total_seconds()) > 0:
            try:
                process, line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if text in line:
                return process
        raise AssertionError(f"no process said {text!r} within {timeout}s:\n"
                             + "\n---\n".join("".join(p.lines)[-3000:] for p in self.processes))

    def set_time(self, moment: datetime) -> None:
        staged = self.clock_file.with_suffix(".tmp")
        staged.write_text(moment.isoformat(), encoding="utf-8")
        staged.replace(self.clock_file)  # atomic: a process never reads half a time

    def env(self, pause_at: str | None = None) -> dict[str, str]:
        env = {**os.environ, "KPIBOT_TEST_CLOCK_FILE": str(self.clock_file)}
        env.pop("KPIBOT_TEST_PAUSE_AT", None)
        if pause_at:
            env["KPIBOT_TEST_PAUSE_AT"] = pause_at
        return env

    def kpibot(self, *argv: str, pause_at: str | None = None) -> KpibotProcess:
        process = KpibotProcess(["--config", str(self.config), *argv], self.env(pause_at), self.lines)
        self.processes.append(process)
        return process

    def serve(self, *options: str, count: int = 1) -> list[KpibotProcess]:
        """Start `count` serve processes side by side (each takes seconds to start), pausing as pause_at says."""
        started = [self.kpibot("serve", *options, pause_at=f"file:{self.pause_file}") for _ in range(count)]
        for process in started:
            process.wait_for("/wecom/callback")
        return started

    def runs(self, job: Job) -> list[JobRun]:
        with transaction(make_session_factory(self.engine)) as session:
            rows = list(session.scalars(select(JobRun).where(JobRun.job_id == job.id, JobRun.period == job.period)))
            session.expunge_all()
            return rows


@pytest.fixture
def world(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    clock_file = tmp_path / "clock"
    fake = FakeWeCom(corp_id=CORP_ID, corp_secret=CORP_SECRET, agent_id=AGENT_ID, clock=FileClock(str(clock_file)).now)
    demo_org.populate(fake)
    fake.add_user("wangfang", "王芳", departments=(3,), main_department=3, direct_leader=("lina",))
    fake.start()
    engine = make_engine(db_url)
    prepare_database(engine, db_url)
    config = write_config_file(tmp_path, fake.base_url, database_url=db_url, server={"host": "127.0.0.1", "port": 0},
                               schedule={"tick_seconds": 0.1})
    world = World(tmp_path, db_url, engine, fake, clock_file, config, [], queue.Queue())
    monkeypatch.setenv("KPIBOT_TEST_CLOCK_FILE", str(clock_file))  # the in-process CLI calls below, too
    monkeypatch.delenv("KPIBOT_TEST_PAUSE_AT", raising=False)
    try:
        yield world
    finally:
        for process in world.processes:
            process.stop()
        fake.stop()
        engine.dispose()


def prepare(world: World, job: Job, capsys: pytest.CaptureFixture[str]) -> None:
    """The org and the year's data in the database, the time half a minute before the job's fire time."""
    world.set_time(job.fire - timedelta(seconds=30))
    config = ["--config", str(world.config)]
    assert main([*config, "org", "sync"]) == 0
    if job is not WEEKLY_PROMPT:
        assert main([*config, "data", "import", str(SAMPLE)]) == 0
    if job is PUBLISH:  # closed on its day, as the schedule would have
        assert main([*config, "jobs", "run", "month_close", "--at", MONTH_CLOSE.fire.isoformat()]) == 0
    capsys.readouterr()


def expected_recipients(world: World, job: Job) -> set[str]:
    """Whom the job must reach, from the database: every member for the prompt; for the results jobs the
    members (published) or managers (drafts) and the admins."""
    with transaction(make_session_factory(world.engine)) as session:
        active = set(session.scalars(select(Member.userid).where(Member.active.is_(True))))
        managers = set(session.scalars(select(Member.manager_userid).where(
            Member.active.is_(True), Member.userid.in_(SAMPLE_MEMBERS | active)))) - {None}
    if job is WEEKLY_PROMPT:
        return {f"{job.keys}{userid}" for userid in active}
    admins = {f"{job.keys}admin:{admin}" for admin in demo_org.DEMO_ADMINS}
    if job is MONTH_CLOSE:
        return admins | {f"{job.keys}manager:{manager}" for manager in managers}
    return (admins | {f"{job.keys}member:{userid}" for userid in SAMPLE_MEMBERS}
            | {f"{job.keys}manager:{manager}" for manager in managers})


def assert_reached_exactly_once(world: World, job: Job, survivor: KpibotProcess | None, *, takeovers: int) -> None:
    """The job is done (by the survivor, or already), queued one message per recipient, each delivered once."""
    if survivor is not None:
        survivor.wait_for(f"job {job.id} for {job.period} done")
    with transaction(make_session_factory(world.engine)) as session:
        rows = [(row.idempotency_key, row.touser, row.payload) for row in session.scalars(
            select(OutboxMessage).where(OutboxMessage.idempotency_key.like(f"{job.keys}%")))]
        run = session.scalars(select(JobRun).where(JobRun.job_id == job.id, JobRun.period == job.period)).one()
        audits = session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == f"results.{'close' if job is MONTH_CLOSE else 'publish'}",
            AuditEntry.subject == job.period))
        published = set(session.scalars(select(PeriodResult.userid).where(
            PeriodResult.period == job.period, PeriodResult.status == "published")))
    assert {key.partition("#")[0] for key, _, _ in rows} == expected_recipients(world, job)
    wanted = {(touser, json.dumps(payload, sort_keys=True)) for _, touser, payload in rows}
    world.fake.wait_for(lambda m: (m.touser, json.dumps(m.payload, sort_keys=True)) in wanted, count=len(wanted),
                        timeout=TIMEOUT)
    for process in world.processes:
        process.stop()  # every send under way ends before the count
    delivered = [(m.touser, json.dumps(m.payload, sort_keys=True)) for m in world.fake.delivered()]
    assert all(delivered.count(pair) == 1 for pair in wanted), "a message of the job was shown twice"
    assert (run.status, run.takeovers) == ("done", takeovers)
    if job is not WEEKLY_PROMPT:
        assert audits == 1
    if job is PUBLISH:
        assert published == SAMPLE_MEMBERS


# Kill points: (job, where the holder is paused and killed, takeovers expected on the run).
KILLS = [
    (WEEKLY_PROMPT, "schedule.seen:weekly_prompt", 0),  # just after the fire time: nothing written
    (WEEKLY_PROMPT, "schedule.planned:weekly_prompt", 0),  # during the jitter: the planned run is written
    (WEEKLY_PROMPT, "outbox.enqueue:job:weekly_prompt:*#4", 1),  # inside the job: 4 prompts queued, uncommitted
    (MONTH_CLOSE, "schedule.seen:month_close", 0),
    (MONTH_CLOSE, "schedule.planned:month_close", 0),
    (MONTH_CLOSE, "results.drafts", 1),  # inside: every manager's draft queued, the admins' not
    (PUBLISH, "schedule.seen:publish", 0),
    (PUBLISH, "schedule.planned:publish", 0),
    (PUBLISH, "results.publish", 1),  # inside: results published and members' messages queued, managers' not
]


@pytest.mark.parametrize("job, pause_at, takeovers", KILLS, ids=[f"{job.id}-{point}" for job, point, _ in KILLS])
def test_the_scheduler_holder_killed_at_a_point_costs_nobody_a_message(
        world: World, capsys: pytest.CaptureFixture[str], job: Job, pause_at: str, takeovers: int) -> None:
    prepare(world, job, capsys)
    world.serve(count=2)
    world.first_to_say("took the scheduler lease")
    world.pause_at(pause_at)
    world.set_time(job.fire + timedelta(seconds=1))
    if takeovers:
        # The jitter may outlast the lease: then the other process takes it and runs (and pauses in) the job.
        world.set_time(job.due())
    holder = world.first_to_say(f"{PAUSED} {pause_at.split('*')[0].split('#')[0]}")
    other, = (process for process in world.processes if process is not holder)
    holder.kill()
    world.pause_at("")
    if pause_at.startswith("schedule.seen"):
        assert world.runs(job) == []
    else:
        assert world.runs(job)[0].status == ("planned" if pause_at.startswith("schedule.planned") else "running")
    # The dead holder's lease and its job's claim lapse; the other process takes over and catches up.
    world.set_time(job.due() + max(LEASE_DURATION, JOB_CLAIM) + timedelta(seconds=5))
    other.wait_for("took the scheduler lease")
    assert_reached_exactly_once(world, job, other, takeovers=takeovers)


@pytest.mark.parametrize("job, pause_at", [(WEEKLY_PROMPT, "outbox.enqueue:job:weekly_prompt:*#4"),
                                           (PUBLISH, "results.publish")], ids=["weekly_prompt", "publish"])
def test_jobs_run_killed_inside_a_job_is_completed_by_the_next_run_without_duplicates(
        world: World, capsys: pytest.CaptureFixture[str], job: Job, pause_at: str) -> None:
    prepare(world, job, capsys)
    world.set_time(job.due())
    at = ["--config", str(world.config), "jobs", "run", job.id, "--at", job.fire.isoformat()]
    first = world.kpibot(*at[2:], pause_at=pause_at)
    # A bot without a scheduler sends what `jobs run` queues (it leaves that to a running bot); it starts side by
    # side, and on SQLite waits for the paused job's open transaction to end with its process.
    deliverer = world.kpibot("serve", "--no-scheduler") if job is WEEKLY_PROMPT else None
    first.wait_for(PAUSED)
    first.kill()
    if deliverer is not None:
        deliverer.wait_for("/wecom/callback")
    assert world.runs(job)[0].status == "running"
    assert main(at) == 0
    assert "正由另一个进程运行" in capsys.readouterr().out  # its claim has not lapsed: a live run never runs twice
    world.set_time(job.due() + JOB_CLAIM + timedelta(seconds=1))
    if job is WEEKLY_PROMPT:  # completed by hand
        assert main(at) == 0
        assert "已运行" in capsys.readouterr().out
        finisher = None
    else:  # completed by the scheduler of a bot started afterwards
        finisher, = world.serve()
    assert_reached_exactly_once(world, job, finisher, takeovers=1)
