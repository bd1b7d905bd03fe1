"""Dedupe keys: kept dedupe_keep_days, pruned by the inbox_prune job; a signed callback older than that is refused."""
from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select

from bot.config import ConfigError
from bot.storage.models import InboxMessage
from bot.templates import render
from tests.harness import BotEnv, make_config

MEMBER = "zhangwei"


def inbox_rows(env: BotEnv) -> int:
    with env.bot.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(InboxMessage)) or 0)


def add_row(env: BotEnv, key: str, status: str, age: timedelta) -> None:
    with env.bot.sessions.begin() as session:
        session.execute(insert(InboxMessage).values(dedupe_key=key, from_user=MEMBER, msg_type="text", payload={},
                                                    status=status, received_at=env.clock.now() - age))


def test_the_prune_job_deletes_handled_rows_past_the_window_and_keeps_the_rest(bot_env: BotEnv) -> None:
    add_row(bot_env, "msg:old-done", "done", timedelta(days=8, hours=1))
    add_row(bot_env, "msg:old-failed", "failed", timedelta(days=30))
    add_row(bot_env, "msg:within-margin", "done", timedelta(days=7, hours=12))  # window + a day's margin
    add_row(bot_env, "msg:recent", "done", timedelta(days=2))
    add_row(bot_env, "msg:old-pending", "pending", timedelta(days=30))  # never handled: never deleted
    result = bot_env.runner().run("inbox_prune")
    assert result.ran and "删除了 2 条 7 天前已处理的消息记录" in result.detail
    with bot_env.bot.sessions() as session:
        keys = set(session.scalars(select(InboxMessage.dedupe_key)))
    assert {"msg:within-margin", "msg:recent", "msg:old-pending"} <= keys
    assert not keys & {"msg:old-done", "msg:old-failed"}


def test_a_replay_after_its_key_was_pruned_is_refused_not_handled_again(bot_env: BotEnv,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="bot.wecom.edge")
    bot_env.chat.send(MEMBER, "/help")
    bot_env.chat.expect_text(MEMBER)
    bot_env.advance(days=9)
    bot_env.runner().run("inbox_prune")
    assert inbox_rows(bot_env) == 0
    replay = bot_env.chat.sender.resend_last()
    assert replay.status == 403
    assert inbox_rows(bot_env) == 0
    assert bot_env.bot.rejections.counts()["stale_timestamp"] == 1
    assert any("stale_timestamp" in record.getMessage() for record in caplog.records)


def test_a_callback_within_the_window_is_still_taken(bot_env: BotEnv) -> None:
    bot_env.chat.send(MEMBER, "/help")
    bot_env.chat.expect_text(MEMBER)
    bot_env.advance(days=6)
    assert bot_env.chat.sender.resend_last().status == 200  # a late retry: 200, and still only one row
    assert inbox_rows(bot_env) == 1


def test_the_window_is_at_least_a_week() -> None:
    with pytest.raises(ConfigError, match="dedupe_keep_days"):
        make_config("sqlite://", "http://127.0.0.1:1/cgi-bin/", bot={"dedupe_keep_days": 3})
    assert make_config("sqlite://", "http://127.0.0.1:1/cgi-bin/", bot={"dedupe_keep_days": 30}).bot.dedupe_keep_days == 30


def test_prune_template_renders() -> None:
    assert render("ops/inbox_prune.txt.j2", deleted=3, keep_days=7) == "删除了 3 条 7 天前已处理的消息记录（去重键）"
