"""Failover of the scheduler inside one process (two schedulers on one database, a fake clock): the planned run
in the database, the same jitter everywhere, the lease's new holder catching up, and runs whose process died
taken over without reaching anyone twice."""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.wecom import outbox
from bot.cli.main import main
from bot.storage.db import transaction
from bot.storage.models import JobRun, Member, OutboxMessage
from bot.wecom.outbox import Outgoing
from bot.jobs.runner import JITTER_SECONDS, JOB_CLAIM, LEASE_DURATION, BotScheduler, jitter
from tests.harness import SHANGHAI, BotEnv

FIRE = datetime(2026, 11, 27, 16, 5, tzinfo=SHANGHAI)  # the weekly prompt of 2026-W48
PROMPT_KEYS = "job:weekly_prompt:2026-W48:"


def members(env: BotEnv) -> set[str]:
    with transaction(env.bot.sessions) as session:
        return set(session.scalars(select(Member.userid).where(Member.active.is_(True))))


def run_row(env: BotEnv, job_id: str, period: str) -> JobRun:
    with transaction(env.bot.sessions) as session:
        row = session.scalars(select(JobRun).where(JobRun.job_id == job_id, JobRun.period == period)).one()
        session.expunge(row)
        return row


def assert_prompted_once(env: BotEnv) -> None:
    """Every active member has exactly one prompt row and received its text exactly once."""
    env.settle(mark_read=True)
    with transaction(env.bot.sessions) as session:
        rows = session.scalars(select(OutboxMessage).where(OutboxMessage.idempotency_key.like(f"{PROMPT_KEYS}%"))).all()
        by_member = {row.touser: row.payload["content"] for row in rows}
    assert len(rows) == len(by_member) and set(by_member) == members(env)
    for userid, content in by_member.items():
        assert [m.payload.get("content") for m in env.fake.delivered(userid)].count(content) == 1, userid
    assert env.fake.suppressed() == []


def test_the_jitter_is_one_to_four_minutes_and_the_same_in_every_process() -> None:
    delays = {jitter("weekly_prompt", FIRE + timedelta(days=7 * week)) for week in range(50)}
    low, high = (timedelta(seconds=s) for s in JITTER_SECONDS)
    assert all(low <= delay <= high for delay in delays) and len(delays) > 40
    assert jitter("weekly_prompt", FIRE) == jitter("weekly_prompt", FIRE.astimezone(SHANGHAI))
    assert jitter("weekly_prompt", FIRE) != jitter("weekly_reminder", FIRE)


def test_a_fire_time_is_planned_in_the_database_and_run_once_its_jitter_is_over(bot_env: BotEnv) -> None:
    scheduler = BotScheduler(bot_env.bot.job_runner())
    bot_env.clock.set(FIRE + timedelta(seconds=1))
    wait = scheduler.tick()
    planned = run_row(bot_env, "weekly_prompt", "2026-W48")
    assert planned.status == "planned" and planned.due_at == FIRE + jitter("weekly_prompt", FIRE)
    assert 0 < wait <= bot_env.config.schedule.tick_seconds
    bot_env.clock.set(planned.due_at)
    scheduler.tick()
    scheduler.wait_idle()
    done = run_row(bot_env, "weekly_prompt", "2026-W48")
    assert done.status == "done" and done.takeovers == 0 and done.holder == scheduler.holder
    assert_prompted_once(bot_env)
    scheduler.tick()  # the period is done: nothing runs again
    scheduler.wait_idle()
    assert_prompted_once(bot_env)


@pytest.mark.parametrize("died", ["just after the fire time", "during the jitter"])
def test_the_new_lease_holder_runs_the_fire_time_the_dead_holder_never_started(bot_env: BotEnv, died: str) -> None:
    dead, survivor = BotScheduler(bot_env.bot.job_runner()), BotScheduler(bot_env.bot.job_runner())
    bot_env.clock.set(FIRE - timedelta(minutes=1))
    assert dead.tick() and dead.leading
    survivor.tick()
    assert not survivor.leading  # the lease is the dead one's until it lapses
    last_renewed = bot_env.clock.now()
    bot_env.clock.set(FIRE + timedelta(seconds=1))
    if died == "during the jitter":
        dead.tick()
        last_renewed = bot_env.clock.now()
        assert run_row(bot_env, "weekly_prompt", "2026-W48").status == "planned"
    # ... and the holder dies without a word: no release, no more ticks.
    bot_env.clock.set(last_renewed + LEASE_DURATION)
    survivor.tick()
    assert not survivor.leading
    bot_env.clock.advance(timedelta(seconds=1))
    survivor.tick()
    assert survivor.leading
    bot_env.clock.set(FIRE + jitter("weekly_prompt", FIRE))
    survivor.tick()
    survivor.wait_idle()
    run = run_row(bot_env, "weekly_prompt", "2026-W48")
    assert run.status == "done" and run.holder == survivor.holder
    assert_prompted_once(bot_env)
    # The sweep of 16:03, planned or not by the dead holder, was caught up as well.
    assert run_row(bot_env, "conversation_sweep", "2026-11-27T16:03").status == "done"


def test_a_run_whose_process_died_inside_the_job_is_taken_over_and_reaches_everyone_once(bot_env: BotEnv) -> None:
    bot_env.clock.set(FIRE + timedelta(minutes=3))
    dead = bot_env.runner("web1:4242:deadbeef")
    assert dead._claim("weekly_prompt", "2026-W48", FIRE, force=False) is None
    # What the dead process had committed: the prompts of three members.
    with transaction(bot_env.bot.sessions) as session:
        for userid in sorted(members(bot_env))[:3]:
            outbox.enqueue(session, f"{PROMPT_KEYS}{userid}", Outgoing.text(userid, "第一次提问"), bot_env.clock.now())
    bot_env.settle(mark_read=True)
    scheduler = BotScheduler(bot_env.runner())
    assert scheduler.runner.run("weekly_prompt", FIRE).detail == "running"  # its claim has not lapsed yet
    bot_env.clock.advance(JOB_CLAIM + timedelta(seconds=1))
    scheduler.tick()
    scheduler.wait_idle()
    run = run_row(bot_env, "weekly_prompt", "2026-W48")
    assert (run.status, run.takeovers, run.holder) == ("done", 1, scheduler.holder)
    assert_prompted_once(bot_env)
    assert sum(m.payload.get("content") == "第一次提问" for m in bot_env.fake.delivered()) == 3


def test_a_failed_run_is_retried_by_a_new_lease_holder_not_by_every_tick(bot_env: BotEnv) -> None:
    bot_env.clock.set(FIRE + timedelta(minutes=5))
    first = bot_env.runner("web1:1:aaaa")
    first._claim("weekly_prompt", "2026-W48", FIRE, force=False)
    first._finish("weekly_prompt", "2026-W48", "failed", "OperationalError: gone")
    scheduler = BotScheduler(bot_env.bot.job_runner())
    scheduler.tick()  # taking the lease catches up, failed runs included
    scheduler.wait_idle()
    assert run_row(bot_env, "weekly_prompt", "2026-W48").status == "done"
    assert_prompted_once(bot_env)


def test_jobs_list_shows_a_stuck_run_and_one_that_was_taken_over(bot_env: BotEnv, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    clock_file = tmp_path / "clock"
    monkeypatch.setenv("KPIBOT_TEST_CLOCK_FILE", str(clock_file))
    bot_env.clock.set(FIRE + timedelta(minutes=3))
    bot_env.runner("web1:4242:deadbeef")._claim("weekly_prompt", "2026-W48", FIRE, force=False)
    clock_file.write_text((FIRE + timedelta(minutes=10)).isoformat())
    config = bot_env.write_config_file(tmp_path)
    capsys.readouterr()
    assert main(["--config", str(config), "jobs", "list", "--after", "2026-11-27T16:00"]) == 0
    out = capsys.readouterr().out
    assert "weekly_prompt          2026-W48     计划于 2026-11-27 16:05：卡住：运行它的进程 web1:4242:deadbeef 已失联" in out
    bot_env.clock.set(FIRE + timedelta(minutes=10))
    assert bot_env.runner().run("weekly_prompt", FIRE).ran
    assert main(["--config", str(config), "jobs", "list"]) == 0
    assert "2026-W48     计划于 2026-11-27 16:05：已完成，曾被接管 1 次" in capsys.readouterr().out
