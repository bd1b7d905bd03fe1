"""Cards that finish, text forms for people on WeChat, and the welcome once: end to end against the fake WeCom."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

import pytest
from sqlalchemy import select

from bot.wecom import card_state
from bot.storage.db import transaction
from bot.fakes.wecom import DeliveredMessage
from bot.storage.models import MemberVisit, OkrKeyResult, OutboxMessage, TemplateCard
from bot.wecom.plain_text import markdown_as_text
from bot.templates import render, template_names
from tests.harness import BotEnv, EnvFactory, assert_renders


def click(env: BotEnv, userid: str, card: DeliveredMessage, button: int = 0) -> str:
    """Press a button as WeCom does: the callback carries a fresh ResponseCode for this card. Returns it."""
    code = env.fake.issue_response_code(card.task_id or "")
    response = env.chat.sender.card_click(userid, event_key=card.payload["button_list"][button]["key"],
                                          task_id=card.task_id or "", response_code=code)
    assert response.status == 200
    return code


def flush(env: BotEnv) -> None:
    """Send whatever is still queued now (the sender loop may be between passes)."""
    env.bot.sender.send_due()


def add_objective(env: BotEnv, manager: str) -> int:
    objective = re.search(r"O(\d+)", env.chat.say(manager, "/okr objective add 提升社群活跃度"))
    assert objective is not None
    return int(objective.group(1))


def add_kr(env: BotEnv, owner: str, objective: int, title: str) -> int:
    reply = env.chat.say(owner, f"/kr add O{objective} {title}")
    kr = re.search(r"KR(\d+)", reply)
    assert kr is not None, reply
    return int(kr.group(1))


# ---------------------------------------------------------------- cards that finish


def test_one_approver_acts_and_every_approvers_card_shows_it_once(make_env: EnvFactory) -> None:
    env = make_env(org={"admins": ["zhoumin", "wangqiang", "lina"]})  # 周敏 has no manager: the admins approve
    chat = env.chat
    kr = add_kr(env, "zhoumin", add_objective(env, "zhoumin"), "每周社群早报 12期")
    text_lina, card_lina = chat.expect("lina", 2)
    text_wang, card_wang = chat.expect("wangqiang", 2)
    assert "回复 1 批准，回复 2 退回" in (text_lina.content or "") and f"/kr approve {kr}" in (text_wang.content or "")
    assert card_lina.msgtype == card_wang.msgtype == "template_card" and card_lina.task_id != card_wang.task_id

    click_code = click(env, "lina", card_lina)
    assert "已批准" in chat.expect_text("lina")
    assert f"李娜 已批准你的 KR{kr}" in chat.expect_text("zhoumin")
    env.fake.wait_for_calls("message/update_template_card", 2)
    updates = {u.task_id: u for u in env.fake.card_updates()}
    assert set(updates) == {card_lina.task_id, card_wang.task_id}
    assert updates[card_lina.task_id].response_code == click_code  # the click's own code for the clicked card
    assert updates[card_wang.task_id].response_code == card_wang.response_code  # the send's code for the copy
    assert {u.button_replace_name for u in updates.values()} == {"已批准 · 李娜"}
    assert (updates[card_lina.task_id].userids, updates[card_wang.task_id].userids) == (("lina",), ("wangqiang",))

    # 王强's card still looked live on a slow phone: his click is answered, nothing changes, no card is sent.
    click(env, "wangqiang", card_wang)
    assert "已经处理过了：「已批准 · 李娜」（李娜" in chat.expect_text("wangqiang")
    env.advance(seconds=5)  # a later click, not WeCom retrying the first callback (same sender and time)
    click(env, "lina", card_lina)  # and a second click by 李娜 herself
    assert "已经处理过了" in chat.expect_text("lina")
    flush(env)
    assert len(env.fake.card_updates()) == 2
    assert [m.msgtype for m in env.fake.delivered("wangqiang")].count("template_card") == 1
    with transaction(env.bot.sessions) as session:
        row = session.get(OkrKeyResult, kr)
        assert row is not None and (row.status, row.reviewed_by) == ("approved", "lina")


def test_acting_by_command_finishes_the_cards_too_and_an_expired_code_is_not_tried(make_env: EnvFactory) -> None:
    env = make_env(org={"admins": ["zhoumin", "wangqiang", "lina"]})
    chat = env.chat
    kr = add_kr(env, "zhoumin", add_objective(env, "zhoumin"), "社群拉新 300人")
    chat.expect("lina", 2)
    chat.expect("wangqiang", 2)
    env.settle()  # the sends are recorded before the clock moves on
    env.advance(hours=73)  # past the 72 h a response_code lives
    assert "已退回" in chat.say("wangqiang", f"/kr return {kr} 目标太低")
    assert "王强 退回了你的 KR" in chat.expect_text("zhoumin")
    flush(env)
    with transaction(env.bot.sessions) as session:
        updates = [row for row in session.scalars(select(OutboxMessage)) if row.msgtype == "card_update"]
        assert sorted(row.touser for row in updates) == ["lina", "wangqiang"]
        assert {(row.status, row.last_error) for row in updates} == {
            ("failed", "response_code expired (72 h): the card keeps its buttons")}
        cards = session.scalars(select(TemplateCard).where(TemplateCard.subject == f"okr:{kr}")).all()
        assert {(c.status, c.finished_label) for c in cards} == {("finished", "已退回 · 王强")}
    assert env.fake.calls("message/update_template_card") == []  # WeCom would refuse both codes: not called
    click(env, "lina", chat.fake.delivered("lina")[1])  # her card still shows buttons: the click is answered
    assert "已经处理过了：「已退回 · 王强」（王强" in chat.expect_text("lina")


def test_a_card_finished_before_its_own_send_is_recorded_is_updated_right_after(make_env: EnvFactory) -> None:
    env = make_env()
    card = {"card_type": "button_interaction", "task_id": "same-pass-1", "main_title": {"title": "请确认"},
            "button_list": [{"text": "确认", "style": 1, "key": "same-pass:ok"}]}
    with transaction(env.bot.sessions) as session:  # queued and finished at once: both rows go in one pass
        card_state.send(session, env.config, "t:same-pass", "zhangwei", card, "t:same-pass", env.clock.now())
        card_state.finish(session, "t:same-pass", "已确认 · 李娜", "lina", env.clock.now())
    env.bot.sender.wake()
    [call] = env.fake.wait_for_calls("message/update_template_card", 1)
    [sent] = [m for m in env.fake.delivered("zhangwei") if m.task_id == "same-pass-1"]
    assert call.body is not None and call.body["response_code"] == sent.response_code
    assert env.fake.card_updates()[0].userids == ("zhangwei",)


def test_an_update_whose_answer_was_lost_is_not_shown_twice(make_env: EnvFactory) -> None:
    env = make_env()
    card = {"card_type": "button_interaction", "task_id": "lost-answer-1", "main_title": {"title": "请确认"},
            "button_list": [{"text": "确认", "style": 1, "key": "lost:ok"}]}
    with transaction(env.bot.sessions) as session:
        card_state.send(session, env.config, "t:lost", "zhangwei", card, "t:lost", env.clock.now())
    env.settle()
    env.fake.inject("message/update_template_card", delay=2.5)  # WeCom updates it; we time out (2 s) first
    with transaction(env.bot.sessions) as session:
        card_state.finish(session, "t:lost", "已确认 · 李娜", "lina", env.clock.now())
    recorded = sum(env.bot.sender.outcomes.values())
    env.bot.sender.wake()
    env.bot.sender.wait_for_outcomes(recorded + 1, timeout=10)
    env.advance(seconds=5)  # past the retry's backoff: the resend meets a spent response_code
    env.bot.sender.wait_for_outcomes(recorded + 2, timeout=10)
    assert len(env.fake.calls("message/update_template_card")) == 2 and len(env.fake.card_updates()) == 1
    with transaction(env.bot.sessions) as session:
        [row] = [r for r in session.scalars(select(OutboxMessage)) if r.msgtype == card_state.CARD_UPDATE]
        assert (row.status, row.attempts, row.last_error) == ("sent", 2, "40058 on a resend: taken as done")


def test_a_submitted_summary_card_is_updated_once_and_a_second_click_sends_no_card(make_env: EnvFactory) -> None:
    env = make_env()
    chat = env.chat
    chat.send("zhangwei", "/report")
    chat.expect("zhangwei")
    chat.send("zhangwei", "本周关键动作：会员日活动 3 场\n结果与数据：新增粉丝 320\n下周计划：双十二")
    summary, card = chat.expect("zhangwei", 2)
    assert "回复 1 提交，回复 2 修改（也可以点下面卡片上的按钮）" in (summary.content or "")
    click(env, "zhangwei", card)
    assert "已提交" in chat.expect_text("zhangwei")
    [update] = env.fake.wait_for_calls("message/update_template_card", 1)
    assert update.body is not None and update.body["button"] == {"replace_name": "已提交"}
    env.advance(seconds=5)
    click(env, "zhangwei", card)
    assert "已经处理过了：「已提交」（张伟" in chat.expect_text("zhangwei")
    flush(env)
    assert len(env.fake.card_updates()) == 1
    assert [m.msgtype for m in env.fake.delivered("zhangwei")].count("template_card") == 1


# ---------------------------------------------------------------- everyone can read it


def test_a_wechat_user_gets_text_only_and_acts_by_replying_a_number(make_env: EnvFactory) -> None:
    # 李娜 uses WeCom through WeChat; the company has switched the text copies off for everyone else.
    env = make_env(bot={"text_fallback": False, "wechat_users": ["lina"]})
    chat = env.chat
    objective = add_objective(env, "lina")
    kr = add_kr(env, "zhangwei", objective, "策划会员专属活动 2场")
    [approval] = chat.expect("lina")
    assert approval.msgtype == "text" and f"KR{kr}「策划会员专属活动」" in (approval.content or "")
    assert "回复 1 批准" in (approval.content or "")
    assert "已批准" in chat.say("lina", "1")
    assert "批准" in chat.expect_text("zhangwei")
    env.advance(seconds=5)
    assert "已经处理过了：「已批准 · 李娜」" in chat.say("lina", "1")  # nothing left waiting: said so, once
    with transaction(env.bot.sessions) as session:
        row = session.get(OkrKeyResult, kr)
        assert row is not None and row.status == "approved"

    # A second KR, returned by replying 2; a markdown reply reaches her as text, and 王强 (in the app) gets markdown.
    add_kr(env, "zhangwei", objective, "会员复购率 15%")
    [approval] = chat.expect("lina")
    assert approval.msgtype == "text"
    assert "已退回" in chat.say("lina", "2")
    assert "李娜 退回了你的 KR" in chat.expect_text("zhangwei")
    chat.send("lina", "/okr team")
    [tree] = chat.expect("lina")
    assert tree.msgtype == "text" and "**" not in (tree.content or "") and "团队" in (tree.content or "")
    chat.send("wangqiang", "/okr team")
    assert chat.expect("wangqiang")[0].msgtype == "markdown"
    assert env.fake.card_updates() == []  # she never had a card to update
    assert all(m.msgtype == "text" for m in env.fake.delivered("lina"))


def test_a_wechat_user_writes_the_weekly_report_without_cards(make_env: EnvFactory) -> None:
    env = make_env(bot={"wechat_users": ["zhangwei"]})
    chat = env.chat
    chat.send("zhangwei", "/report")
    chat.expect("zhangwei")
    chat.send("zhangwei", "本周关键动作：会员日活动 3 场\n结果与数据：新增粉丝 320\n下周计划：双十二")
    [summary] = chat.expect("zhangwei")
    assert summary.msgtype == "text" and "回复 1 提交，回复 2 修改。" in (summary.content or "")
    assert "已提交" in chat.say("zhangwei", "1")
    assert all(m.msgtype == "text" for m in env.fake.delivered("zhangwei"))


def test_a_wechat_user_confirms_360_raters_by_replying_1(make_env: EnvFactory) -> None:
    env = make_env(bot={"wechat_users": ["lina"]})
    chat = env.chat
    chat.send("zhoumin", "/360 start 2026 12-20")
    for userid in ("zhoumin", "lina", "zhangwei", "huangli"):
        chat.expect(userid)  # the round's announcement
    assert "已通知" in chat.expect_text("zhoumin")
    assert "等待 李娜 确认" in chat.say("zhangwei", "/360 raters 黄丽 吴昊 孙悦")
    [nomination] = chat.expect("lina")
    assert nomination.msgtype == "text" and "黄丽、吴昊、孙悦" in (nomination.content or "")
    assert "回复 1 确认" in (nomination.content or "")
    assert "已确认 张伟 的 360 评价人" in chat.say("lina", "1")
    assert "李娜 已确认你的 360 评价人：黄丽、吴昊、孙悦" in chat.expect_text("zhangwei")
    assert "请为 张伟" in chat.expect_text("huangli")
    assert all(m.msgtype == "text" for m in env.fake.delivered("lina"))


def test_a_number_cannot_choose_between_two_waiting_cards(make_env: EnvFactory) -> None:
    env = make_env()
    chat = env.chat
    objective = add_objective(env, "lina")
    first = add_kr(env, "zhangwei", objective, "策划会员专属活动 2场")
    chat.expect("lina", 2)
    add_kr(env, "zhangwei", objective, "会员复购率 15%")
    chat.expect("lina", 2)
    assert "你有 2 项待处理的事项" in chat.say("lina", "1")
    assert "已批准" in chat.say("lina", f"/kr approve {first}")
    chat.expect("zhangwei")
    assert "没有第 3 个选项" in chat.say("lina", "3")
    assert "已批准" in chat.say("lina", "1")  # one left: the number answers it
    assert "已批准" in chat.expect_text("zhangwei")
    flush(env)
    assert [u.button_replace_name for u in env.fake.card_updates()] == ["已批准 · 李娜", "已批准 · 李娜"]


def test_markdown_as_text_keeps_every_word_and_drops_the_markup() -> None:
    markdown = ('**11月考核结果 · 张伟**\n总分 **86.5** · 等级 **B**\n> <font color="warning">扣 5 分</font>：迟交\n'
                '## 建议\n详见 [结果页](https://example.invalid/r) 与 `/idp`')
    assert markdown_as_text(markdown) == ("11月考核结果 · 张伟\n总分 86.5 · 等级 B\n  扣 5 分：迟交\n"
                                          "建议\n详见 结果页 https://example.invalid/r 与 /idp")


def _markdown_cases() -> dict[str, tuple[dict[str, Any], tuple[str, ...]]]:
    """Every markdown template's rendering case, from the tests that own them."""
    from tests.test_data_entry import SCORING_TEMPLATES
    from tests.test_okr import TEMPLATE_CASES
    from tests.test_results_cli import RESULT_TEMPLATES
    from tests.test_weekly_report import TEMPLATES

    cases = {**SCORING_TEMPLATES, **TEMPLATE_CASES, **RESULT_TEMPLATES, **TEMPLATES}
    return {name: case for name, case in cases.items() if name.endswith(".md.j2")}


def test_every_markdown_template_has_a_text_form_check() -> None:
    assert set(_markdown_cases()) == {name for name in template_names() if name.endswith(".md.j2")}


@pytest.mark.parametrize("name", sorted(_markdown_cases()))
def test_the_text_form_of_each_markdown_template_reads_without_markup(name: str) -> None:
    variables, fragments = _markdown_cases()[name]
    text = markdown_as_text(render(name, **variables))
    assert not re.search(r"\*\*|</?font|^\s*[>#]", text, re.M), text
    for fragment in fragments:  # the owners' fragments, without their markup (some hold half a ** pair)
        plain = markdown_as_text(fragment).replace("**", "")
        assert plain in text, f"{name}: {plain!r} not in {text!r}"


# ---------------------------------------------------------------- welcome once


def test_entering_the_app_twice_welcomes_once_and_again_after_a_long_absence(make_env: EnvFactory) -> None:
    env = make_env(bot={"welcome_again_after_days": 90})
    chat = env.chat
    assert chat.sender.event("sunyue", "enter_agent", "").status == 200
    assert "欢迎使用绩效助手" in chat.expect_text("sunyue")
    env.advance(minutes=5)
    assert chat.sender.event("sunyue", "enter_agent", "").status == 200
    assert "/help" in chat.say("sunyue", "/help")  # the reply to /help is the next thing she receives
    env.advance(days=89)
    chat.sender.event("sunyue", "enter_agent", "")
    env.advance(days=89)  # she kept opening the app: never away for 90 days (each visit counts when it happened,
    # even if the bot handles the event later)
    chat.sender.event("sunyue", "enter_agent", "")
    assert "/help" in chat.say("sunyue", "/help")
    env.advance(days=91)
    chat.sender.event("sunyue", "enter_agent", "")
    assert "欢迎使用绩效助手" in chat.expect_text("sunyue")
    assert sum("欢迎使用绩效助手" in (m.content or "") for m in env.fake.delivered("sunyue")) == 2
    with transaction(env.bot.sessions) as session:
        visit = session.get(MemberVisit, "sunyue")
        assert visit is not None and visit.welcomed_at == visit.last_entered_at


# ---------------------------------------------------------------- templates


CASES: dict[str, tuple[dict[str, object], tuple[str, ...]]] = {
    "cards/finished.txt.j2": ({"outcome": "approved", "by": "李娜"}, ("已批准 · 李娜",)),
    "cards/already_done.txt.j2": ({"label": "已批准 · 李娜", "by": "李娜",
                                   "at": datetime(2026, 11, 27, 9, 5, tzinfo=timezone.utc)},
                                  ("已经处理过了：「已批准 · 李娜」（李娜，11月27日 09:05）",)),
    "cards/which_one.txt.j2": ({"count": 2}, ("你有 2 项待处理的事项", "/kr approve")),
    "cards/no_such_choice.txt.j2": ({"number": 3, "choices": 2}, ("没有第 3 个选项：请回复 1 到 2",)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_card_templates_render(name: str) -> None:
    assert_renders(name, *CASES[name])


@pytest.mark.parametrize(("outcome", "label"), [("submitted", "已提交"), ("editing", "修改中"),
                                                ("returned", "已退回 · 王强"), ("confirmed", "已确认 · 王强")])
def test_every_finished_state_says_what_happened(outcome: str, label: str) -> None:
    assert render("cards/finished.txt.j2", outcome=outcome, by="王强") == label
