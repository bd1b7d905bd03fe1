"""Sending as WeCom really behaves: duplicate check, configuration pauses, tokens, due-only claims, ceilings."""
from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from bot.wecom import outbox
from bot.wecom.cards import CardButton, button_card, new_task_id
from bot.cli.main import main
from bot.clock import FakeClock
from bot.storage.db import transaction
from bot.storage.models import OutboxMessage
from bot.templates import render
from bot.wecom.outbox import Outgoing
from bot.wecom.sender import Sender
from bot.wecom.client import DatabaseTokenStore, token_lifetime
from tests.harness import CORP_SECRET, BotEnv, EnvFactory

ADMIN = "zhoumin"


def rows(env: BotEnv, *where: object) -> list[OutboxMessage]:
    with transaction(env.bot.sessions) as session:
        return list(session.scalars(select(OutboxMessage).where(*where).order_by(OutboxMessage.id)))


def queue(env: BotEnv, touser: str, text: str, key: str) -> None:
    with transaction(env.bot.sessions) as session:
        outbox.enqueue(session, key, Outgoing.text(touser, text), env.clock.now())
    env.bot.sender.wake()


def held_sender(env: BotEnv) -> Sender:
    """Stop the bot's own sender loop and hand back a second sender over the same database, driven by the
    test one pass at a time (as another process of the deployment would be)."""
    env.bot.sender.stop()
    return Sender(env.config, env.bot.sessions, env.bot.client, env.clock)


# ---------------------------------------------------------------- duplicate check


def test_help_twice_gives_two_replies(bot_env: BotEnv) -> None:
    first = bot_env.chat.say("zhangwei", "/help")
    second = bot_env.chat.say("zhangwei", "/help")
    assert first == second  # the very same text, yet both reached him
    assert bot_env.fake.suppressed() == []


def test_two_rows_with_the_same_text_differ_only_in_their_duplicate_window(bot_env: BotEnv) -> None:
    queue(bot_env, "lina", "已保存。", "same:1")
    bot_env.chat.expect("lina", 1)
    queue(bot_env, "lina", "已保存。", "same:2")
    bot_env.chat.expect("lina", 1)
    first, second = (call.body for call in bot_env.fake.calls("message/send")[-2:])
    assert first is not None and second is not None
    assert first["enable_duplicate_check"] == second["enable_duplicate_check"] == 1
    assert {k: v for k, v in first.items() if k != "duplicate_check_interval"} == \
        {k: v for k, v in second.items() if k != "duplicate_check_interval"}
    assert first["duplicate_check_interval"] != second["duplicate_check_interval"]
    assert 3600 <= first["duplicate_check_interval"] <= 14400


def test_a_crash_between_wecoms_answer_and_our_record_shows_the_message_once(bot_env: BotEnv) -> None:
    crashed = held_sender(bot_env)
    queue(bot_env, "liuyang", "本周周报已收到。", "crash:1")
    claim = crashed._claim()
    [(row, outcome)], _ = crashed._send_in_order(claim.batches["liuyang"], threading.Event())
    assert outcome.status == "sent"  # WeCom answered ... and the process died before recording it
    assert len(bot_env.fake.delivered("liuyang")) == 1

    bot_env.clock.advance(timedelta(seconds=30))  # the claim runs out; a restarted process finds the row
    restarted = Sender(bot_env.config, bot_env.bot.sessions, bot_env.bot.client, bot_env.clock)
    assert restarted.send_due() == 1
    assert len(bot_env.fake.delivered("liuyang")) == 1  # WeCom recognised the resend
    assert [m.touser for m in bot_env.fake.suppressed()] == ["liuyang"]
    [stored] = rows(bot_env, OutboxMessage.touser == "liuyang")
    assert stored.status == "sent"


def test_a_timed_out_send_that_arrived_is_resent_without_showing_twice(bot_env: BotEnv) -> None:
    bot_env.fake.inject("message/send", delay=bot_env.config.wecom.request_timeout + 0.5)
    queue(bot_env, "chenjing", "提醒：今天提交周报。", "timeout:1")
    bot_env.bot.sender.wait_for_outcomes(1, timeout=10)  # the client gave up; WeCom had delivered
    bot_env.advance(seconds=2)
    bot_env.bot.sender.wait_for_outcomes(2)
    assert len(bot_env.fake.delivered("chenjing")) == 1
    assert len(bot_env.fake.suppressed()) == 1
    assert rows(bot_env, OutboxMessage.touser == "chenjing")[0].status == "sent"


def _card(touser: str) -> Outgoing:
    card = button_card(task_id=new_task_id("test"), title="周报", description="请确认", body="本周周报",
                       buttons=[CardButton("确认", "ok")])
    return Outgoing.card(touser, card)


def test_42014_on_a_resent_card_means_the_first_attempt_arrived(bot_env: BotEnv) -> None:
    crashed = held_sender(bot_env)
    with transaction(bot_env.bot.sessions) as session:
        outbox.enqueue(session, "card:1", _card("yangfan"), bot_env.clock.now())
    claim = crashed._claim()
    crashed._send_in_order(claim.batches["yangfan"], threading.Event())  # delivered, never recorded
    bot_env.clock.advance(timedelta(seconds=30))
    Sender(bot_env.config, bot_env.bot.sessions, bot_env.bot.client, bot_env.clock).send_due()
    [stored] = rows(bot_env, OutboxMessage.touser == "yangfan")
    assert stored.status == "sent" and stored.last_error and stored.last_error.startswith("42014")
    assert len(bot_env.fake.delivered("yangfan")) == 1


@pytest.mark.parametrize(("reason", "variables", "text"), [
    ("task_id_used", {"errcode": 42014}, "42014: 首次发送已送达 (task_id 已使用)"),
    ("not_visible", {}, "invaliduser: 不在应用可见范围内"),
    ("card_not_sent_yet", {}, "card not sent yet"),
    ("card_never_sent", {"status": "failed"}, "card never sent (failed): nothing to update"),
    ("response_code_expired", {}, "response_code expired (72 h): the card keeps its buttons"),
    ("update_resent", {"errcode": 40058}, "40058 on a resend: taken as done"),
    ("not_card_holder", {}, "invaliduser: not a holder of this card"),
])
def test_a_rows_last_error_in_the_senders_own_words(reason: str, variables: dict[str, object], text: str) -> None:
    assert render("sender/last_error.txt.j2", reason=reason, **variables) == text


# ---------------------------------------------------------------- configuration errors pause sending


def _health(env: BotEnv) -> dict[str, object]:
    return env.bot.flask.test_client().get("/healthz").get_json()


def _paused_then_fixed(env: BotEnv, caplog: pytest.LogCaptureFixture, break_it: object, fix_it: object,
                       code: str) -> None:
    caplog.set_level(logging.INFO, logger="bot.wecom.sender")
    break_it()  # type: ignore[operator]
    members = ["zhangwei", "liuyang", "chenjing", "yangfan", "huangli"]
    for index, member in enumerate(members):
        queue(env, member, f"第{index}条通知", f"pause:{index}")
    env.until_sent(lambda: _health(env)["status"] == "sending_paused")
    health = _health(env)
    assert str(health["sending_paused"]["reason"]).startswith(code)  # type: ignore[index]
    gettokens = len(env.fake.calls("gettoken"))
    sends = len(env.fake.calls("message/send"))

    for _ in range(3):  # passes while paused ask WeCom nothing at all
        assert env.bot.sender.send_due() == 0
    env.clock.advance(timedelta(seconds=61))  # the first retry fails too: still held, not failed
    env.until_sent(lambda: len(env.fake.calls("gettoken")) + len(env.fake.calls("message/send")) > gettokens + sends
                   and {row.status for row in rows(env)} == {"pending"})  # the retry's answer is recorded
    env.clock.advance(timedelta(seconds=61))  # the next retry is two minutes after, not one
    for _ in range(3):
        env.bot.sender.send_due()
    assert len(env.fake.calls("gettoken")) <= gettokens + 1
    assert len(env.fake.calls("message/send")) <= sends + 1
    assert {row.status for row in rows(env)} == {"pending"}
    assert env.fake.delivered(ADMIN) == []

    fix_it()  # type: ignore[operator]
    env.advance(seconds=60)
    for member in members:
        env.chat.expect(member, 1)
    [notice] = env.chat.expect(ADMIN, 1)
    assert "发送已恢复" in (notice.content or "") and code in (notice.content or "")
    assert _health(env)["status"] == "ok"
    env.until_sent(lambda: {row.status for row in rows(env)} == {"sent"})
    env.advance(minutes=20)
    env.bot.sender.send_due()
    assert len(env.fake.delivered(ADMIN)) == 1  # told once
    paused_lines = [r for r in caplog.records if r.getMessage().startswith("sending paused")]
    assert len(paused_lines) == 1 and code in paused_lines[0].getMessage()


def test_a_wrong_secret_pauses_sending_until_it_is_fixed_and_the_admins_are_told_once(
        bot_env: BotEnv, caplog: pytest.LogCaptureFixture) -> None:
    def break_it() -> None:
        bot_env.fake.set_corp_secret("rotated-by-an-admin")
        bot_env.fake.expire_tokens()

    _paused_then_fixed(bot_env, caplog, break_it, lambda: bot_env.fake.set_corp_secret(CORP_SECRET), "40001")


def test_an_untrusted_ip_pauses_sending_names_the_ip_and_resumes_once_trusted(
        bot_env: BotEnv, caplog: pytest.LogCaptureFixture) -> None:
    _paused_then_fixed(bot_env, caplog, lambda: bot_env.fake.set_trusted_ips(["203.0.113.7"]),
                       lambda: bot_env.fake.set_trusted_ips(None), "60020")


def test_kpibot_outbox_shows_the_pause_its_reason_and_the_fix(bot_env: BotEnv, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    bot_env.fake.set_trusted_ips(["203.0.113.7"])
    queue(bot_env, "lina", "你好", "cli:1")
    bot_env.until_sent(lambda: _health(bot_env)["status"] == "sending_paused")
    config = bot_env.write_config_file(tmp_path)
    assert main(["--config", str(config), "outbox"]) == 0
    out = capsys.readouterr().out
    assert "发送已暂停" in out and "from ip: 127.0.0.1" in out and "企业可信IP" in out
    [listed] = [line for line in out.splitlines() if line.split()[:1] and line.split()[0].isdigit()]
    assert listed.split()[1] == "待发送"  # held, not failed


# ---------------------------------------------------------------- tokens


def test_a_token_is_reused_while_valid(bot_env: BotEnv) -> None:
    before = len(bot_env.fake.calls("gettoken"))
    queue(bot_env, "lina", "一", "token:1")
    bot_env.chat.expect("lina", 1)
    bot_env.advance(hours=1)
    queue(bot_env, "lina", "二", "token:2")
    bot_env.chat.expect("lina", 1)
    assert len(bot_env.fake.calls("gettoken")) == before


@pytest.mark.parametrize("times, outcome", [(1, "sent"), (2, "retry")])
def test_41001_gets_one_fresh_token_like_40014(bot_env: BotEnv, times: int, outcome: str) -> None:
    sender = held_sender(bot_env)
    bot_env.fake.inject("message/send", errcode=41001, times=times)
    before = len(bot_env.fake.calls("gettoken"))
    queue(bot_env, "wangqiang", "你好", "41001:1")
    sender.send_due()
    assert len(bot_env.fake.calls("gettoken")) == before + 1  # refreshed once, never in a loop
    assert len(bot_env.fake.calls("message/send")) == 2
    [stored] = rows(bot_env, OutboxMessage.touser == "wangqiang")
    assert stored.status == ("sent" if outcome == "sent" else "pending")


@pytest.mark.parametrize("expires_in", [0, 1, 60, 300, 301, 7200])
def test_a_short_lived_token_is_still_kept_for_a_while(engine: Engine, clock: FakeClock, expires_in: int) -> None:
    from bot.storage.db import make_session_factory
    store = DatabaseTokenStore(make_session_factory(engine), clock)
    store.set("k", "token-value", expires_in)
    if expires_in >= 2:
        assert store.get("k") == "token-value"
    lifetime = token_lifetime(expires_in)
    assert timedelta(0) <= lifetime <= timedelta(seconds=expires_in)
    assert lifetime >= timedelta(seconds=expires_in // 2)


# ---------------------------------------------------------------- claims and ceilings


def test_one_members_backlog_does_not_delay_another_members_reply(bot_env: BotEnv) -> None:
    with transaction(bot_env.bot.sessions) as session:
        for index in range(500):
            outbox.enqueue(session, f"backlog:{index}", Outgoing.text("wuhao", f"通知 {index}"), bot_env.clock.now())
    bot_env.bot.sender.wake()
    bot_env.chat.expect("wuhao", 25)  # his minute's worth; 475 wait for the limit, due later
    started = time.monotonic()
    bot_env.chat.send("zhangwei", "/help")
    bot_env.chat.expect_text("zhangwei", timeout=2.0)
    assert time.monotonic() - started < 2.0
    assert len(bot_env.fake.delivered("wuhao")) == 25 and bot_env.fake.dropped() == []


def test_more_members_at_their_limit_than_a_pass_holds_do_not_delay_anyone_else(make_env: EnvFactory) -> None:
    env = make_env(sender={"batch_size": 3})
    busy = ["liuyang", "chenjing", "yangfan", "huangli"]
    with transaction(env.bot.sessions) as session:
        for index in range(26):
            for member in busy:
                outbox.enqueue(session, f"fan:{member}:{index}", Outgoing.text(member, f"通知 {index}"),
                               env.clock.now())
    env.bot.sender.wake()
    for member in busy:
        env.chat.expect(member, 25, timeout=10)  # each one's minute; their 26th waits
    env.chat.send("zhangwei", "/help")
    env.chat.expect_text("zhangwei", timeout=2.0)


@pytest.fixture
def ceiling_env(make_env: EnvFactory) -> BotEnv:
    return make_env(sender={"company_calls_per_minute": 12, "company_calls_per_hour": 30, "account_limit": 1,
                            "daily_warning_percent": 10})


def test_the_company_wide_ceilings_hold_and_the_daily_volume_is_watched(
        ceiling_env: BotEnv, caplog: pytest.LogCaptureFixture) -> None:
    env = ceiling_env
    caplog.set_level(logging.WARNING, logger="bot.wecom.sender")
    env.fake.set_api_limits(per_minute=12, per_hour=30)  # WeCom's ceilings, scaled down like ours
    members = ["zhangwei", "liuyang", "chenjing", "yangfan", "huangli", "wuhao"]
    for index in range(5):
        for member in members:
            queue(env, member, f"第{index}轮", f"ceiling:{member}:{index}")

    def sends() -> int:
        return len(env.fake.calls("message/send"))

    env.fake.wait_for_calls("message/send", 12)
    env.bot.sender.send_due()
    assert sends() == 12  # the minute's ceiling: nothing more was even tried
    env.advance(seconds=75)  # our minute is counted in whole ten-second buckets: a little longer than WeCom's
    env.fake.wait_for_calls("message/send", 24)
    env.advance(seconds=75)
    env.fake.wait_for_calls("message/send", 30)
    env.bot.sender.send_due()
    assert sends() == 30  # the hour's ceiling
    assert len(env.fake.delivered()) == 30  # WeCom answered 45009 to none of them
    env.advance(hours=1)
    env.until_sent(lambda: not rows(env, OutboxMessage.status.in_(("pending", "sending"))))
    assert {row.status for row in rows(env)} == {"sent"}
    # The daily volume (1 account x 200) was watched: one warning to the admin at 10 %, i.e. 20 person-times.
    assert [m.touser for m in env.fake.delivered() if "每日上限" in (m.content or "")] == [ADMIN]
    assert len([r for r in caplog.records if "person-times a day" in r.getMessage()]) == 1
