"""The weekly report asks progress for each of the member's open KRs and records it on the KR."""
from __future__ import annotations

import re

from sqlalchemy import select

from bot.storage.db import transaction
from bot.storage.models import OkrProgress
from bot.appraisal.okr import KrView
from bot.templates import render
from tests.harness import BotEnv
from tests.test_weekly_report import PROMPT_AT, report_of


def _approved_kr(env: BotEnv, owner: str, text: str) -> int:
    chat = env.chat
    chat.send("lina", "/okr objective add 提升用户复购率")
    objective = re.search(r"O(\d+)", chat.expect_text("lina")).group(1)  # type: ignore[union-attr]
    chat.send(owner, f"/kr add O{objective} {text}")
    kr = int(re.search(r"KR(\d+)", chat.expect_text(owner)).group(1))  # type: ignore[union-attr]
    chat.expect("lina", 2)  # the approval card, after its text form
    chat.send("lina", f"/kr approve {kr}")
    chat.expect("lina")
    chat.expect(owner)
    return kr


def test_the_kr_question_asks_each_open_kr_and_records_its_progress(bot_env: BotEnv) -> None:
    chat = bot_env.chat
    first = _approved_kr(bot_env, "zhangwei", "策划会员专属活动 2场")
    second = _approved_kr(bot_env, "zhangwei", "会员复购率提升 15%")
    assert bot_env.run_job("weekly_prompt", PROMPT_AT).ran
    chat.expect_text("zhangwei")
    chat.say("zhangwei", "策划并执行了会员日活动")
    chat.say("zhangwei", "好了")
    chat.say("zhangwei", "新增粉丝 320 人")
    question = chat.say("zhangwei", "好了")
    assert f"KR 进展（1/2）：KR{first}「策划会员专属活动」" in question and "目标 2场" in question
    question_two = chat.say("zhangwei", "1场 首场会员日已办")
    assert f"KR 进展（2/2）：KR{second}「会员复购率提升」" in question_two
    assert "第 4/5 题：问题与需要的支持" in chat.say("zhangwei", "跳过")
    report = report_of(bot_env, "zhangwei")
    assert report is not None
    assert report.answers["kr_progress"] == (f"KR{first}「策划会员专属活动」：0 → 1场（50%），首场会员日已办\n"
                                             f"KR{second}「会员复购率提升」：0%（本周无更新）")
    with transaction(bot_env.bot.sessions) as session:
        progress = [(p.kr_id, p.source) for p in session.scalars(select(OkrProgress))]
    assert progress == [(first, "weekly_report")]


def test_an_answer_without_a_number_gets_a_hint_and_the_same_kr_again(bot_env: BotEnv) -> None:
    chat = bot_env.chat
    kr = _approved_kr(bot_env, "liuyang", "社群拉新 100人")
    chat.send("liuyang", "/report")
    chat.expect("liuyang")
    chat.say("liuyang", "做了拉新活动")
    chat.say("liuyang", "好了")
    chat.say("liuyang", "新增 40 人")
    chat.say("liuyang", "好了")
    hint = chat.say("liuyang", "还在推进")
    assert "没看懂「还在推进」" in hint and f"KR{kr}「社群拉新」" in hint
    assert "第 4/5 题" in chat.say("liuyang", "40人")


def test_kr_templates_render() -> None:
    from decimal import Decimal
    kr = KrView(id=3, title="策划会员专属活动", owner="zhangwei", owner_name="张伟", target=Decimal(2), unit="场",
                current=Decimal(1), status="approved", score=None, review_note=None, objective_id=1,
                objective_title="提升用户复购率", quarter="2026-Q4")
    before = KrView(**{**kr.__dict__, "current": Decimal(0)})
    assert render("weekly/kr_line.txt.j2", kr=kr, before=before, note="首场已办") == \
        "KR3「策划会员专属活动」：0 → 1场（50%），首场已办"
    assert render("weekly/kr_line.txt.j2", kr=kr, before=kr, note="") == "KR3「策划会员专属活动」：1场（本周无更新）"
    assert "例如「1」" in render("weekly/kr_invalid.txt.j2", kr=kr, text="还没")
