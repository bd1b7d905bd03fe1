"""End to end over real HTTP: encrypted callbacks in, replies out through the fake WeCom's message/send."""
from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from bot.storage.db import transaction
from bot.storage.models import InboxMessage, Member, OutboxMessage
from tests.harness import BotEnv


def count(env: BotEnv, model: type, *where: object) -> int:
    with transaction(env.bot.sessions) as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def test_help_is_answered_within_two_seconds(bot_env: BotEnv) -> None:
    started = time.monotonic()
    bot_env.chat.send("zhangwei", "/help")
    reply = bot_env.chat.expect_text("zhangwei", timeout=2.0)
    assert time.monotonic() - started < 2.0
    assert "张伟" in reply and "成员" in reply and "/help" in reply
    assert "/score" not in reply  # a member is not offered a manager's command


def test_help_differs_by_role(bot_env: BotEnv) -> None:
    assert "绩效管理员" in bot_env.chat.say("zhoumin", "/帮助")
    assert "主管" in bot_env.chat.say("lina", "/help")
    # someone WeCom knows (so messages reach them) who joined after the last org sync
    bot_env.fake.add_user("qianduo", "钱多", departments=(1,), main_department=1)
    assert "不在绩效考核范围内" in bot_env.chat.say("qianduo", "/help")


def test_text_that_is_no_command_gets_a_hint_and_unknown_commands_a_suggestion(bot_env: BotEnv) -> None:
    assert "/help" in bot_env.chat.say("liuyang", "你好")
    reply = bot_env.chat.say("liuyang", "/hepl")
    assert "/hepl" in reply and "/help" in reply


def test_the_same_callback_delivered_three_times_gives_one_reply(bot_env: BotEnv) -> None:
    sender = bot_env.chat.sender
    assert sender.text("chenjing", "/help").status == 200
    for _ in range(2):  # WeCom retries with the identical body and query
        assert sender.resend_last().status == 200
    bot_env.chat.expect("chenjing", 1)
    # a later, different message still gets through, so the worker had finished with the first
    bot_env.chat.send("chenjing", "/hlp")
    bot_env.chat.expect("chenjing", 1)
    assert len(bot_env.fake.delivered("chenjing")) == 2
    assert count(bot_env, InboxMessage) == 2


def test_messages_of_one_member_are_answered_in_the_order_sent(bot_env: BotEnv) -> None:
    for index in range(6):
        bot_env.chat.send("yangfan", f"/order{index}")
    replies = [m.payload["content"] for m in bot_env.chat.expect("yangfan", 6)]
    assert [f"/order{i}" in reply for i, reply in enumerate(replies)] == [True] * 6


@pytest.mark.parametrize("errcode", [-1, 42001, 45009])
def test_an_injected_wecom_error_still_ends_in_exactly_one_delivery(bot_env: BotEnv, errcode: int) -> None:
    bot_env.fake.inject("message/send", errcode=errcode, times=1)
    bot_env.chat.send("zhaolei", "/help")
    if errcode != 42001:  # a token error is retried at once; the others wait for their backoff
        assert bot_env.bot.sender.wait_for_outcomes(1) == {"sent": 0, "retry": 1, "failed": 0}
        bot_env.advance(seconds=61)
    bot_env.chat.expect("zhaolei", 1)
    bot_env.bot.sender.wait_for_outcomes(1 if errcode == 42001 else 2)  # the delivery is recorded as sent
    bot_env.advance(minutes=10)
    bot_env.bot.sender.send_due()  # one more pass finds nothing left to send
    assert len(bot_env.fake.delivered("zhaolei")) == 1
    assert count(bot_env, OutboxMessage, OutboxMessage.status == "sent") == 1


def test_an_http_502_is_retried_and_delivered_once(bot_env: BotEnv) -> None:
    bot_env.fake.inject("message/send", http_status=502, times=2)
    bot_env.chat.send("huangli", "/help")
    bot_env.bot.sender.wait_for_outcomes(1)
    bot_env.advance(seconds=2)  # first backoff: 1 s
    bot_env.bot.sender.wait_for_outcomes(2)
    bot_env.advance(seconds=3)  # second backoff: 2 s
    bot_env.chat.expect("huangli", 1)
    assert bot_env.bot.sender.wait_for_outcomes(3) == {"sent": 1, "retry": 2, "failed": 0}
    bot_env.advance(minutes=10)
    bot_env.bot.sender.send_due()
    assert len(bot_env.fake.delivered("huangli")) == 1


def test_url_verification_echoes_the_plaintext(bot_env: BotEnv) -> None:
    response = bot_env.chat.sender.verify("echo+1288432023552776189/=")
    assert response.status == 200
    assert response.text == "echo+1288432023552776189/="


def _bad_requests(env: BotEnv) -> dict[str, tuple[int, object]]:
    sender = env.chat.sender
    return {
        "bad signature": (403, lambda: sender.text("zhangwei", "/help", tamper="signature")),
        "wrong corp id": (403, lambda: sender.text("zhangwei", "/help", tamper="corp_id")),
        "undecryptable": (400, lambda: sender.post_raw(
            b"<xml><Encrypt><![CDATA[bm90IGNpcGhlcnRleHQ=]]></Encrypt></xml>", sender.signed_query("bm90IGNpcGhlcnRleHQ="))),
        "not xml at all": (400, lambda: sender.post_raw(b"\x00\x01garbage", sender.signed_query(""))),
        "decrypts to non-xml": (400, lambda: sender.post_plain_xml("this is not xml")),
        "no sender": (400, lambda: sender.post_plain_xml("<xml><MsgType>text</MsgType></xml>")),
        "missing signature": (400, lambda: sender.post_raw(b"<xml/>", {})),
        "over 64 KiB": (413, lambda: sender.text("zhangwei", "长" * 30000)),
    }


def test_each_kind_of_bad_request_gets_a_4xx_stores_nothing_and_the_server_keeps_serving(bot_env: BotEnv) -> None:
    for name, (status, send) in _bad_requests(bot_env).items():
        response = send()  # type: ignore[operator]
        assert response.status == status, f"{name}: got {response.status}"
    assert count(bot_env, InboxMessage) == 0
    assert "/help" in bot_env.chat.say("zhangwei", "/help")


def test_org_sync_builds_the_right_manager_for_each_member(bot_env: BotEnv) -> None:
    with transaction(bot_env.bot.sessions) as session:
        managers = {m.userid: m.manager_userid for m in session.scalars(select(Member))}
    assert managers == {
        "zhoumin": None,  # leads 社群运营部; 星河科技 has no leader
        "lina": "zhoumin", "wangqiang": "zhoumin",  # direct leader
        "zhangwei": "lina", "liuyang": "lina",  # direct leader
        "chenjing": "lina", "yangfan": "lina",  # leader of their main department
        "zhaolei": "wangqiang", "huangli": "wangqiang", "wuhao": "wangqiang", "sunyue": "wangqiang",
    }


def test_a_member_who_left_is_deactivated_on_the_next_sync(bot_env: BotEnv) -> None:
    bot_env.fake.remove_user("sunyue")
    report = bot_env.bot.sync_org()
    assert report.deactivated == ("sunyue",)
    with transaction(bot_env.bot.sessions) as session:
        sunyue = session.get(Member, "sunyue")
        assert sunyue is not None and sunyue.active is False and sunyue.name == "孙悦"
    bot_env.fake.set_user("wuhao", status=2)  # disabled in WeCom: still listed, no longer appraised
    assert bot_env.bot.sync_org().deactivated == ("wuhao",)


def test_per_member_limit_is_respected_so_wecom_drops_nothing(bot_env: BotEnv) -> None:
    limit = bot_env.config.sender.per_member_per_minute
    assert limit == 25  # WeCom drops beyond 30 a minute; the default keeps a margin
    for index in range(limit + 5):
        bot_env.chat.send("wuhao", f"/limit{index}")
    bot_env.bot.inbox.wait_for_processed(limit + 5)
    bot_env.chat.expect("wuhao", limit)
    with transaction(bot_env.bot.sessions) as session:
        waiting = session.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.touser == "wuhao", OutboxMessage.status == "pending"))
    assert waiting == 5  # the rest wait for the minute to pass
    bot_env.advance(seconds=61)
    bot_env.chat.expect("wuhao", 5)
    assert bot_env.fake.dropped() == []
    contents = [m.payload["content"] for m in bot_env.fake.delivered("wuhao")]
    assert all(f"/limit{i}" in contents[i] for i in range(limit + 5))


def test_a_long_reply_is_split_at_2048_bytes_in_order(bot_env: BotEnv) -> None:
    from bot.wecom.outbox import Outgoing, enqueue, split_utf8
    text = "\n".join(f"第{i:03d}行：本周关键动作与结果数据汇总。" for i in range(200))
    with transaction(bot_env.bot.sessions) as session:
        enqueue(session, "test:long", Outgoing.text("lina", text), bot_env.clock.now())
    bot_env.bot.sender.wake()
    expected_pieces = len(split_utf8(text))
    assert expected_pieces > 2
    pieces = [m.payload["content"] for m in bot_env.chat.expect("lina", expected_pieces)]
    assert all(len(p.encode("utf-8")) <= 2048 for p in pieces)
    assert "\n".join(pieces) == text
