"""The plumbing under the flows: every job described in its template, a long job's chunked commits, a declared
conversation's entry and timeout, a prompt that never interrupts a conversation, and ctx.require's one refusal."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.appraisal.people import Role
from bot.chat.conversation import ConversationHandle, ConversationSpec, open_conversation
from bot.chat.dispatcher import Dispatcher
from bot.chat.routing import Context, Router
from bot.jobs import table
from bot.jobs.spec import JobSpec
from bot.storage.db import transaction
from bot.storage.models import Conversation, OutboxMessage
from bot.templates import render
from bot.wecom.updates import Update
from tests.harness import BotEnv


def _step(ctx: Context) -> None:
    """A conversation step that does nothing (these tests look at the conversation's row only)."""


def test_every_job_is_described_in_its_template() -> None:
    described = {spec.id: render("ops/job_description.txt.j2", job=spec.id) for spec in table.all_jobs()}
    assert {spec.id: spec.description for spec in table.all_jobs()} == described
    assert described["weekly_prompt"] == "周报提问（每周最后一个工作日）"
    assert described["conversation_sweep"] == "关闭超时的对话（保留草稿）"


def test_a_long_job_commits_each_chunk_by_itself(bot_env: BotEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    committed: list[int] = []  # how many rows another session sees after each chunk
    progress: list[tuple[int, int]] = []

    def write(session, userids):  # type: ignore[no-untyped-def]
        now = bot_env.clock.now()
        session.add_all(Conversation(userid=userid, flow="test", state="s", data={}, updated_at=now,
                                     expires_at=now + timedelta(hours=1)) for userid in userids)

    def job(ctx):  # type: ignore[no-untyped-def]
        def after(done: int, total: int) -> None:
            progress.append((done, total))
            with transaction(ctx.sessions) as other:
                committed.append(other.scalar(select(func.count()).select_from(Conversation)) or 0)
        ctx.in_chunks([f"user{n}" for n in range(5)], write, size=2, progress=after)
        return "written"

    chunked = JobSpec("test_chunks", "分块写入", lambda c: CronTrigger(minute=7, timezone=c.schedule.zone),
                      lambda at, c: at.date().isoformat(), job)
    monkeypatch.setattr(table, "HOUSEKEEPING", [*table.HOUSEKEEPING, chunked])
    result = bot_env.bot.job_runner().run("test_chunks")
    assert (result.ran, result.detail) == (True, "written")
    assert progress == [(2, 5), (4, 5), (5, 5)] and committed == [2, 4, 5]


def test_a_conversation_opens_at_its_entry_for_as_long_as_it_declares(bot_env: BotEnv) -> None:
    day = timedelta(hours=24)
    spec = ConversationSpec(name="test_flow", states={"first": _step, "second": _step}, timeout=day)
    assert spec.entry == "first"
    assert ConversationSpec(name="other", states={"first": _step, "second": _step}, entry="second").entry == "second"
    with pytest.raises(ValueError):
        ConversationSpec(name="broken", states={"first": _step}, entry="nowhere")
    now = bot_env.clock.now()
    default = timedelta(minutes=bot_env.config.bot.conversation_timeout_minutes)
    with transaction(bot_env.bot.sessions) as session:
        handle = ConversationHandle(session, "zhangwei", bot_env.clock, default, {spec.name: spec})
        handle.open(spec, {"draft": 1})
        assert (handle.flow, handle.state, handle.data, handle.expires_at) == ("test_flow", "first", {"draft": 1},
                                                                               now + day)
        handle.start("test_flow", "second")  # by name: the declared timeout still holds
        assert (handle.state, handle.expires_at) == ("second", now + day)
        handle.start("undeclared", "any")
        assert handle.expires_at == now + default
        session.flush()
        handle.end()
        handle.open(spec, state="second")  # again within the same transaction
        assert (handle.flow, handle.state) == ("test_flow", "second")
    with transaction(bot_env.bot.sessions) as session:
        row = session.get(Conversation, "zhangwei")
        assert row is not None and (row.flow, row.state) == ("test_flow", "second")


def test_a_prompt_opens_a_conversation_but_never_interrupts_one(bot_env: BotEnv) -> None:
    now = bot_env.clock.now()
    later = now + timedelta(hours=2)
    with transaction(bot_env.bot.sessions) as session:
        prompted = open_conversation(session, None, "lina", "weekly_report", "answering", {"week": "2026-W48"}, now,
                                     later, prompted=True)
        assert prompted is not None and prompted.data == {"week": "2026-W48", "untouched": True}
        # An unanswered prompt may be replaced by the next one...
        again = open_conversation(session, prompted, "lina", "self_review", "rating", {}, now, later, prompted=True)
        assert again is prompted and again.flow == "self_review"
        # ...but not a conversation the member is in the middle of, until it expires.
        busy = open_conversation(session, again, "lina", "scoring", "rating", {"index": 2}, now, later)
        assert busy is not None and "untouched" not in busy.data
        assert open_conversation(session, busy, "lina", "weekly_report", "answering", {}, now, later,
                                 prompted=True) is None
        assert open_conversation(session, busy, "lina", "weekly_report", "answering", {}, later, later,
                                 prompted=True) is busy


def test_require_refuses_with_the_one_error_the_dispatcher_answers(bot_env: BotEnv) -> None:
    router = Router("test")

    @router.command("/peek", role=Role.MEMBER)
    def peek(ctx: Context) -> None:
        if ctx.args == "all":
            ctx.require(Role.ADMIN)
        ctx.reply("hint.txt.j2", person=ctx.person)

    dispatcher = Dispatcher([router], bot_env.config, bot_env.clock)
    moment = int(bot_env.clock.now().timestamp())
    with transaction(bot_env.bot.sessions) as session:
        dispatcher.handle(session, Update(kind="text", from_user="zhangwei", create_time=moment,
                                          content="/peek all"), "test:1")
        dispatcher.handle(session, Update(kind="text", from_user="zhangwei", create_time=moment,
                                          content="/peek"), "test:2")
        sent = {row.idempotency_key: row.payload["content"] for row in session.scalars(select(OutboxMessage))}
    assert f"/peek 仅限{Role.ADMIN.label}使用" in sent["test:1:1"]  # not_allowed.txt.j2, as for a command's role
    assert "/help" in sent["test:2:1"] and "仅限" not in sent["test:2:1"]


def test_a_conversation_another_transaction_opened_meanwhile_is_ruled_on_not_collided_with(engine) -> None:  # type: ignore[no-untyped-def]
    """Two jobs prompting one member at once (taken over together): the second sees the first's row, no error."""
    now = datetime(2026, 11, 27, 8, 0, tzinfo=timezone.utc)
    with Session(engine) as session, session.begin():
        session.add(Conversation(userid="chenjing", flow="self_review", state="rating", data={"index": 1},
                                 updated_at=now, expires_at=now + timedelta(hours=2)))
    with Session(engine) as session, session.begin():  # it read no row before the other transaction committed
        assert open_conversation(session, None, "chenjing", "weekly_report", "answering", {"week": "2026-W48"},
                                 now, now + timedelta(days=1), prompted=True) is None  # she is in the middle of one
    with Session(engine) as session, session.begin():
        opened = open_conversation(session, None, "chenjing", "weekly_report", "answering", {"week": "2026-W48"},
                                   now, now + timedelta(days=1))
        assert opened is not None and (opened.flow, opened.data) == ("weekly_report", {"week": "2026-W48"})
    with Session(engine) as session:
        row = session.get(Conversation, "chenjing")
        assert row is not None and (row.flow, row.state) == ("weekly_report", "answering")
