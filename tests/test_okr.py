"""OKR end to end: a department objective, two members' KRs, approval, progress, quarter-end scores into an indicator."""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.storage.db import transaction
from bot.appraisal.indicator_sources import collect_values, member_values, okr_averages
from bot.storage.models import OkrKeyResult, OkrProgress
from bot.appraisal.okr import (
    KrView,
    ObjectiveView,
    OkrError,
    open_krs_for,
    parse_kr_text,
    parse_number,
    record_kr_progress,
)
from bot.appraisal.people import Person, Role
from bot.jobs.okr import quarter_close_period
from bot.templates import render
from scoring import MemberData, Period, check_scheme, compute_results
from tests.harness import BotEnv, Chat, assert_renders, standalone_env, templates_under

SHANGHAI = ZoneInfo("Asia/Shanghai")
D = Decimal

OKR_SCHEME = """
[scheme]
key = "okr-test"
name = "OKR 方案（测试）"

[[indicators]]
key = "okr_score"
name = "OKR 达成"
dimension = "performance"
weight = 75
cycle = "quarter"
source = "okr"
rule = { type = "bands", points = [[0, 0], [1, 100]] }

[[indicators]]
key = "collaboration"
name = "跨部门协作评分"
dimension = "behavior"
weight = 25
cycle = "year"
source = "360"
rule = { type = "bands", points = [[1, 20], [5, 100]] }
"""


def number_after(prefix: str, text: str) -> int:
    match = re.search(prefix + r"(\d+)", text)
    assert match, f"no {prefix}<n> in {text!r}"
    return int(match.group(1))


def card_to(chat: Chat, userid: str) -> dict[str, Any]:
    """The approval card, after its text form (sent first, so people on WeChat can approve too)."""
    text_form, message = chat.expect(userid, 2)
    assert text_form.msgtype == "text" and "回复 1 批准" in text_form.payload["content"], text_form
    assert message.msgtype == "template_card", message
    return message.payload


@dataclass
class OkrStory:
    """The story's one bot and the numbers the bot gave the objective and the two KRs."""

    env: BotEnv
    objective: int = 0
    kr_events: int = 0  # 张伟's "策划会员专属活动 2场"
    kr_rate: int = 0  # 杨帆's "复购率提升 15%", returned once
    card: dict[str, Any] = field(default_factory=dict)  # 李娜's approval card for kr_events


@pytest.fixture(scope="class")
def story(class_db_url: str) -> Iterator[OkrStory]:
    with standalone_env(class_db_url) as env:
        yield OkrStory(env)


@pytest.mark.steps
class TestObjectiveKrsApprovalProgressAndQuarterScores:
    def test_a_manager_adds_the_objective_of_her_department_and_a_member_sees_it(self, story: OkrStory) -> None:
        chat = story.env.chat
        added = chat.say("lina", "/okr objective add 提升用户复购率")
        story.objective = objective = number_after("O", added)
        assert "2026-Q4" in added and "社群一组" in added
        tree = chat.say("zhangwei", "/okr")
        assert f"O{objective} 提升用户复购率" in tree and "暂无 KR" in tree

    def test_members_add_krs_that_wait_for_their_managers_approval(self, story: OkrStory) -> None:
        chat, objective = story.env.chat, story.objective
        reply = chat.say("zhangwei", f"/kr add O{objective} 策划会员专属活动 2场")
        story.kr_events = kr_events = number_after("KR", reply)
        assert "目标 2场" in reply and "李娜" in reply
        story.card = card = card_to(chat, "lina")
        assert card["card_type"] == "button_interaction" and "张伟" in card["main_title"]["title"]
        assert [b["key"] for b in card["button_list"]] == [f"okr:approve:{kr_events}", f"okr:return:{kr_events}"]

        story.kr_rate = number_after("KR", chat.say("yangfan", f"/kr add {objective} 复购率提升 15%"))
        card_to(chat, "lina")

        # 社群二组 cannot align to 社群一组's objective
        assert "不属于你所在的部门" in chat.say("zhaolei", f"/kr add O{objective} 社群拉新 100人")
        assert "还没有被主管批准" in chat.say("zhangwei", f"/kr progress {kr_events} 1")  # not approved yet

    def test_the_manager_approves_one_by_the_card_and_sends_the_other_back_until_the_member_fixes_it(
            self, story: OkrStory) -> None:
        chat, kr_events, kr_rate = story.env.chat, story.kr_events, story.kr_rate
        chat.click("lina", f"okr:approve:{kr_events}", story.card["task_id"])
        assert f"已批准 张伟 的 KR{kr_events}" in chat.expect_text("lina")
        assert "李娜 已批准你的 KR" in chat.expect_text("zhangwei")
        assert "只有" in chat.say("wangqiang", f"/kr approve {kr_rate}")  # another team's manager may not
        assert "已退回" in chat.say("lina", f"/kr return {kr_rate} 请写清楚是会员复购率")
        returned = chat.expect_text("yangfan")
        assert "退回" in returned and "请写清楚是会员复购率" in returned
        assert "已修改" in chat.say("yangfan", f"/kr edit {kr_rate} 会员复购率提升 15%")
        card_to(chat, "lina")
        chat.say("lina", f"/kr approve {kr_rate}")
        chat.expect("yangfan")

    def test_progress_is_recorded_by_command_and_the_way_the_weekly_report_records_it(self, story: OkrStory) -> None:
        env, kr_events, kr_rate = story.env, story.kr_events, story.kr_rate
        assert "1/2场（50%）" in env.chat.say("zhangwei", f"/kr progress KR{kr_events} 1 首场会员日已办")
        with transaction(env.bot.sessions) as session:
            (open_kr,) = open_krs_for(session, "yangfan", env.clock.now().date())
            assert open_kr.id == kr_rate and open_kr.progress_percent == 0
            question = render("okr/weekly_kr_question.txt.j2", kr=open_kr, index=1, total=1)
            assert "会员复购率提升" in question and "目标 15%" in question
            view = record_kr_progress(session, kr_rate, D(12), "会员日复购 12%", env.clock.now(), by="yangfan")
            assert view.progress_percent == 80
            sources = [p.source for p in session.scalars(select(OkrProgress).order_by(OkrProgress.id))]
        assert sources == ["command", "weekly_report"]
        assert "不是你的关键结果" in env.chat.say("zhangwei", f"/kr progress {kr_rate} 13")

    def test_the_team_and_the_department_see_the_krs_and_a_member_not_the_team_view(self, story: OkrStory) -> None:
        chat = story.env.chat
        chat.send("lina", "/okr team")
        team = chat.expect("lina")[0]
        assert team.msgtype == "text" and "**" not in team.payload["content"]  # [bot] text_fallback: markdown as text
        assert "策划会员专属活动 · 张伟" in team.payload["content"] and "会员复购率提升 · 杨帆" in team.payload["content"]
        assert "12/15%（80%）" in team.payload["content"]
        assert "杨帆" in chat.say("zhangwei", "/okr dept")
        assert "只有主管或绩效管理员可以查看团队 OKR" in chat.say("zhangwei", "/okr team")

    def test_at_quarter_end_each_approved_kr_is_scored_the_members_told_and_the_indicator_takes_the_mean(
            self, story: OkrStory) -> None:
        env, chat = story.env, story.env.chat
        new_year = datetime(2027, 1, 1, 8, 55, tzinfo=SHANGHAI)
        assert quarter_close_period(new_year, env.config) == "2026-Q4"
        assert quarter_close_period(datetime(2027, 1, 9, 8, 55, tzinfo=SHANGHAI), env.config) is None
        env.clock.set(new_year)
        result = env.runner().run("okr_quarter_close", new_year)
        assert result.ran and result.period == "2026-Q4" and "2 个已批准的 KR" in result.detail
        assert "→ 0.50" in chat.expect_text("zhangwei") and "平均得分：0.80" in chat.expect_text("yangfan")
        assert env.runner().run("okr_quarter_close", new_year).detail == "already_ran"
        assert "已在 2026-Q4 季末评分" in chat.say("zhangwei", f"/kr progress {story.kr_events} 2")

        scheme, problems = check_scheme(OKR_SCHEME)
        assert scheme is not None and not [p for p in problems if p.severity.value == "error"]
        with transaction(env.bot.sessions) as session:
            found = collect_values(session, {"zhangwei": scheme, "yangfan": scheme, "zhaolei": scheme}, Period.parse("2026-Q4"))
            assert okr_averages(session, ["zhangwei", "yangfan"], "2026") == {"zhangwei": D("0.50"),
                                                                               "yangfan": D("0.80")}
        assert found == {("zhangwei", "okr_score", "2026-Q4"): D("0.50"),
                         ("yangfan", "okr_score", "2026-Q4"): D("0.80")}
        results = compute_results(scheme, "2026-Q4", [MemberData(u, "一组", "社群运营部", values=member_values(found, u))
                                                      for u in ("zhangwei", "yangfan")])
        assert results.get("zhangwei").indicator("okr_score").score == D("50.00")
        assert results.get("yangfan").total == D("80.00")  # the only indicator of a quarter here
        with transaction(env.bot.sessions) as session:
            scores = {kr.owner: kr.score for kr in session.scalars(select(OkrKeyResult))}
        assert scores == {"zhangwei": D("0.50"), "yangfan": D("0.80")}


def test_kr_text_and_numbers_are_read_as_people_write_them() -> None:
    assert parse_kr_text("策划会员专属活动 2场") == ("策划会员专属活动", D(2), "场")
    assert parse_kr_text("复购率提升15%") == ("复购率提升", D(15), "%")
    assert parse_kr_text("策划2场会员活动，目标：3 场") == ("策划2场会员活动", D(3), "场")
    assert parse_kr_text("用户访谈 30") == ("用户访谈", D(30), "")
    for bad in ("没有数字", "12", "目标 0场"):
        with pytest.raises(OkrError):
            parse_kr_text(bad)
    assert parse_number("3场") == D(3) and parse_number("12.5%") == D("12.5") and parse_number("1,200") == D(1200)
    assert parse_number("跳过") is None


def test_only_managers_add_objectives_and_admins_may_pick_the_department(bot_env: BotEnv) -> None:
    chat = bot_env.chat
    assert "只有主管或绩效管理员可以添加部门目标" in chat.say("zhangwei", "/okr objective add 我的目标")
    reply = chat.say("zhoumin", "/okr objective add @社群二组 2027-Q1 新客转化提升")
    assert "2027-Q1" in reply and "社群二组" in reply
    assert "新客转化提升" in chat.say("zhaolei", "/okr 2027-Q1")
    assert "/kr add O目标编号" in chat.say("zhangwei", "/kr")


KR = KrView(id=7, title="策划会员专属活动", owner="zhangwei", owner_name="张伟", target=D("2.00"), unit="场",
            current=D("1.00"), status="approved", score=None, review_note=None, objective_id=3,
            objective_title="提升用户复购率", quarter="2026-Q4")
RETURNED = KrView(id=8, title="复购率提升", owner="yangfan", owner_name="杨帆", target=D(15), unit="%",
                  current=D(0), status="returned", score=None, review_note="请写清楚是会员复购率", objective_id=3,
                  objective_title="提升用户复购率", quarter="2026-Q4")
SCORED = KrView(id=7, title="策划会员专属活动", owner="zhangwei", owner_name="张伟", target=D(2), unit="场",
                current=D(1), status="approved", score=D("0.50"), review_note=None, objective_id=3,
                objective_title="提升用户复购率", quarter="2026-Q4")
LINA = Person("lina", "李娜", Role.MANAGER, "zhoumin", (3,))
ZHANG = Person("zhangwei", "张伟", Role.MEMBER, "lina", (3,))
TREE = [ObjectiveView(3, "提升用户复购率", "社群一组", "2026-Q4", (KR, RETURNED)),
        ObjectiveView(4, "提高社群活跃度", "社群运营部", "2026-Q4", ())]

TEMPLATE_CASES: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "okr/error.txt.j2": ({"code": "objective_not_aligned", "p": {"id": 3, "title": "提升用户复购率"}},
                         ("O3「提升用户复购率」不属于你所在的部门",)),
    "okr/tree.md.j2": ({"scope": "team", "quarter": "2026-Q4", "objectives": TREE, "person": LINA},
                       ("**2026-Q4 OKR · 李娜的团队**", "KR7 策划会员专属活动 · 张伟", "1/2场（50%）· 已批准",
                        "退回原因：请写清楚是会员复购率", "暂无 KR")),
    "okr/objective_added.txt.j2": ({"objective": TREE[0], "department": "社群一组"},
                                   ("O3「提升用户复购率」（社群一组）", "/kr add O3")),
    "okr/kr_submitted.txt.j2": ({"kr": KR, "edited": False, "approvers": ["李娜"]},
                                ("已添加 KR7「策划会员专属活动」，目标 2场", "已提交给 李娜 批准")),
    "okr/approval_card.txt.j2": ({"kr": KR}, ("张伟 的 KR 待批准\n对齐 O3 提升用户复购率",)),
    "okr/approval_text.txt.j2": ({"kr": KR}, ("张伟 提交了一个 KR，等你批准", "KR7「策划会员专属活动」，目标 2场",
                                             "回复 1 批准，回复 2 退回", "/kr approve 7 批准", "/kr return 7 原因")),
    "okr/kr_reviewed.txt.j2": ({"kr": RETURNED, "reviewer": "李娜"},
                               ("李娜 退回了你的 KR8", "原因：请写清楚是会员复购率", "/kr edit 8")),
    "okr/review_done.txt.j2": ({"kr": KR}, ("已批准 张伟 的 KR7",)),
    "okr/progress_recorded.txt.j2": ({"kr": KR}, ("1/2场（50%）",)),
    "okr/kr_usage.txt.j2": ({"person": ZHANG, "krs": [KR]}, ("/kr add O目标编号", "KR7 策划会员专属活动　1/2场 · 已批准")),
    "okr/kr_status.txt.j2": ({"status": "pending"}, ("待主管批准",)),
    "okr/weekly_kr_question.txt.j2": ({"kr": KR, "index": 1, "total": 2},
                                      ("KR 进展（1/2）", "目标 2场，目前记录 1场（50%）", "现在达到多少（场）")),
    "okr/quarter_scores.txt.j2": ({"quarter": "2026-Q4", "krs": [SCORED], "average": "0.50"},
                                  ("2026-Q4 已结束", "1/2场 → 0.50", "平均得分：0.50")),
    "okr/quarter_closed.txt.j2": ({"quarter": "2026-Q4", "scored": 2, "members": 2}, ("2 个已批准的 KR",)),
}


@pytest.mark.parametrize("name", sorted(TEMPLATE_CASES))
def test_okr_templates_render(name: str) -> None:
    assert_renders(name, *TEMPLATE_CASES[name], blank_runs=False)


def test_every_okr_template_has_a_case() -> None:
    assert templates_under("okr/") == set(TEMPLATE_CASES)
