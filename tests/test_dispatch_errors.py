"""A handler that breaks: the member gets an apology, the callback was already a 200, the queue goes on."""
from __future__ import annotations


import pytest
from sqlalchemy import select

from bot.storage.db import transaction
from bot.storage.models import InboxMessage, OutboxMessage
from bot.wecom.outbox import Outgoing, enqueue
from bot.appraisal.people import Role
from bot.chat.routing import Context, Router
from handlers import ROUTERS
from tests.harness import BotEnv, EnvFactory

broken = Router("broken")


@broken.command("/boom", role=Role.MEMBER)
def boom(ctx: Context) -> None:
    ctx.reply("hint.txt.j2", person=ctx.person)  # written, then rolled back with the failure
    raise RuntimeError("a bug in a handler")


@pytest.fixture
def env_with_broken_handler(make_env: EnvFactory) -> BotEnv:
    return make_env(routers=[*ROUTERS, broken])


def test_an_unexpected_error_gets_an_apology_and_the_next_message_still_works(env_with_broken_handler: BotEnv,
                                                                              caplog: pytest.LogCaptureFixture) -> None:
    env = env_with_broken_handler
    response = env.chat.send("zhangwei", "/boom")
    assert response.status == 200 and response.text == ""
    assert "抱歉" in env.chat.expect_text("zhangwei")
    assert "/help" in env.chat.say("zhangwei", "/help")
    with transaction(env.bot.sessions) as session:
        statuses = [(row.status, row.error) for row in session.scalars(select(InboxMessage).order_by(InboxMessage.id))]
        hint_rows = session.scalars(select(OutboxMessage).where(OutboxMessage.idempotency_key == "in:1:1")).all()
    assert statuses[0][0] == "failed" and "a bug in a handler" in (statuses[0][1] or "")
    assert statuses[1] == ("done", None)
    assert hint_rows == []  # the broken handler's own reply was rolled back with it
    assert any("/boom" in record.getMessage() for record in caplog.records)  # logged with the update


def test_a_permanent_wecom_error_is_marked_failed_with_its_reason_and_not_retried(bot_env: BotEnv) -> None:
    # (a configuration error such as 60020 pauses sending instead: tests/test_outbox_sending.py)
    bot_env.fake.inject("message/send", errcode=81013, errmsg="user & party & tag all invalid", times=1)
    bot_env.chat.send("liuyang", "/help")
    assert bot_env.bot.sender.wait_for_outcomes(1) == {"sent": 0, "retry": 0, "failed": 1}
    bot_env.advance(hours=1)
    bot_env.bot.sender.send_due()
    assert bot_env.fake.delivered("liuyang") == []
    with transaction(bot_env.bot.sessions) as session:
        row = session.scalars(select(OutboxMessage)).one()
    assert (row.status, row.attempts) == ("failed", 1)
    assert row.last_error is not None and row.last_error.startswith("81013")


def test_markdown_and_template_cards_are_delivered_as_such(bot_env: BotEnv) -> None:
    card = {"card_type": "button_interaction", "task_id": "kpibot-test-card-1",
            "main_title": {"title": "本周周报", "desc": "2026-W48"},
            "button_list": [{"text": "提交", "style": 1, "key": "report:submit:2026-W48"}]}
    with transaction(bot_env.bot.sessions) as session:
        enqueue(session, "t:md", Outgoing.markdown("chenjing", "**加粗** <font color=\"info\">绿色</font>"),
                bot_env.clock.now())
        enqueue(session, "t:card", Outgoing.card("chenjing", card), bot_env.clock.now())
    bot_env.bot.sender.wake()
    markdown, delivered_card = bot_env.chat.expect("chenjing", 2)
    assert markdown.msgtype == "markdown" and "**加粗**" in markdown.payload["content"]
    assert delivered_card.msgtype == "template_card" and delivered_card.task_id == "kpibot-test-card-1"
    assert delivered_card.response_code  # WeCom hands back a response code for interactive cards
    bot_env.bot.sender.wait_for_outcomes(2)
    with transaction(bot_env.bot.sessions) as session:
        stored = session.scalars(select(OutboxMessage).where(OutboxMessage.idempotency_key == "t:card")).one()
    assert stored.response_code == delivered_card.response_code
