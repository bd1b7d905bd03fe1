"""360 feedback end to end: nomination, confirmation, the anonymous rating conversation, aggregates only from 3."""
from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import inspect, select

from bot.sandbox import demo_org
from bot.cli.main import main
from bot.storage.db import transaction
from bot.appraisal.feedback360 import Aggregate, RoundProgress, averages_for, rating_of_answer
from bot.appraisal.worked_with import worked_with
from bot.appraisal.indicator_sources import collect_values, member_values
from bot.storage.models import Feedback360Ask, Feedback360Rating, Feedback360Round
from bot.appraisal.okr import add_kr, add_objective, record_kr_progress, review_kr
from bot.appraisal.people import Person, Role
from bot.jobs.feedback360 import DailyReport
from bot.config.schemes import load_scheme
from handlers.feedback360 import parse_deadline
from scoring import MemberData, Period, compute_results
from tests.harness import BotEnv, Chat, assert_renders, running_fake, standalone_env, templates_under, write_config_file

D = Decimal
SHANGHAI = ZoneInfo("Asia/Shanghai")
EVERYONE = sorted(person.userid for person in demo_org.DEMO_PEOPLE)
RATERS_OF_ZHANGWEI = ("huangli", "wuhao", "sunyue")
Q4 = Period.quarter(2026, 4)
NAMES = {person.userid: person.name for person in demo_org.DEMO_PEOPLE}


def rate(chat: Chat, rater: str, rating: str, comment: str) -> tuple[str, str]:
    prompt = chat.say(rater, rating)
    return prompt, chat.say(rater, comment)


def worked_together(env: BotEnv) -> None:
    """杨帆 mentions colleagues of 社群二组 in his KR progress notes: the bot can propose them as raters."""
    now = env.clock.now()
    lina = Person("lina", "李娜", Role.MANAGER, "zhoumin", (3,))
    with transaction(env.bot.sessions) as session:
        objective = add_objective(session, title="提升用户复购率", quarter=Q4, department_id=3, by="lina", now=now)
        kr = add_kr(session, owner="yangfan", objective_id=objective.id, title="会员日活动", target=D(3), unit="场",
                    now=now, current_quarter=Q4)
        review_kr(session, kr_id=kr.id, by=lina, approve=True, note="", now=now)
        record_kr_progress(session, kr.id, D(1), "和黄丽一起办了会员日，吴昊负责答疑，孙悦帮忙拉群；黄丽还借了场地",
                           now, by="yangfan")


@pytest.fixture(scope="class")
def round_env(class_db_url: str) -> Iterator[BotEnv]:
    """The one bot of the story, 杨帆's KR notes naming the colleagues he worked with already in it."""
    with standalone_env(class_db_url) as env:
        worked_together(env)
        yield env


@pytest.mark.steps
class TestARoundFromNominationToTheIndicatorShowingOnlyAggregates:
    def test_only_an_admin_opens_a_round_and_everyone_is_told_with_suggestions(self, round_env: BotEnv) -> None:
        chat = round_env.chat
        assert "只有绩效管理员可以发起 360 反馈" in chat.say("zhangwei", "/360 start 2026")
        chat.send("zhoumin", "/360 start 2026 12-20")
        opened = {userid: chat.expect_text(userid) for userid in EVERYONE}
        assert all("12-20" in message and "/360 raters" in message for message in opened.values())
        assert "推荐：黄丽、孙悦、吴昊" in opened["yangfan"]
        assert "已通知 11 位成员" in chat.expect_text("zhoumin")

    def test_a_member_nominates_the_manager_confirms_on_the_card_and_the_raters_are_asked_at_once(
            self, round_env: BotEnv) -> None:
        chat = round_env.chat
        assert "不能提名自己" in chat.say("zhangwei", "/360 raters 黄丽 张伟 吴昊")
        assert "需要 3-5 位" in chat.say("zhangwei", "/360 raters 黄丽 吴昊")
        assert "刘洋 与被评价人同部门" in chat.say("zhangwei", "/360 raters 黄丽 刘洋 吴昊")
        assert "等待 李娜 确认" in chat.say("zhangwei", "/360 raters 黄丽 吴昊 孙悦")
        text_form, card = chat.expect("lina", 2)  # the card's text form first: readable in WeChat too
        assert text_form.msgtype == "text" and "回复 1 确认" in text_form.payload["content"]
        assert card.msgtype == "template_card" and "黄丽、吴昊、孙悦" in card.payload["sub_title_text"]
        assert "只有 张伟 的主管" in chat.say("wangqiang", "/360 confirm 张伟")
        chat.click("lina", card.payload["button_list"][0]["key"], card.payload["task_id"])
        assert "已确认 张伟 的 360 评价人" in chat.expect_text("lina")
        assert "李娜 已确认你的 360 评价人：黄丽、吴昊、孙悦" in chat.expect_text("zhangwei")
        asks = {rater: chat.expect_text(rater) for rater in RATERS_OF_ZHANGWEI}
        assert all("请为 张伟 的「跨部门协作评分」评分" in ask and "5 分：牵头跨部门项目" in ask for ask in asks.values())

    def test_the_raters_answer_by_conversation_and_nothing_they_are_told_repeats_their_number(
            self, round_env: BotEnv) -> None:
        chat = round_env.chat
        prompt, saved = rate(chat, "huangli", "5", "协作积极，周末活动也主动支援")
        assert "收到" in prompt and "已匿名记录你对 张伟 的评价" in saved and "5" not in prompt + saved
        assert "1-5 的整数" in chat.say("wuhao", "六")
        prompt, saved = rate(chat, "wuhao", "四分", "无")
        assert "4" not in prompt + saved and "四" not in prompt + saved
        rate(chat, "sunyue", "3", "对接需求时沟通及时")
        # nothing left to rate: her own (empty) status, no second answer
        assert "还没有提名评价人" in chat.say("huangli", "/360")

    def test_a_manager_sets_the_raters_directly_and_two_of_three_answer(self, round_env: BotEnv) -> None:
        chat = round_env.chat
        assert "与被评价人同部门" in chat.say("wangqiang", "/360 set 赵磊 黄丽 吴昊 孙悦")
        assert "已确认 赵磊 的 360 评价人：张伟、刘洋、陈静" in chat.say("wangqiang", "/360 set 赵磊 张伟 刘洋 陈静")
        assert "王强 已确认你的 360 评价人" in chat.expect_text("zhaolei")
        for rater in ("zhangwei", "liuyang", "chenjing"):
            assert "请为 赵磊" in chat.expect_text(rater)
        rate(chat, "zhangwei", "4", "无")
        rate(chat, "liuyang", "2", "需要更主动同步进度")

    def test_a_member_who_gives_no_names_is_proposed_the_people_he_reported_working_with(
            self, round_env: BotEnv) -> None:
        chat = round_env.chat
        assert "黄丽、孙悦、吴昊（根据你近期的周报推荐）" in chat.say("yangfan", "/360 raters")
        assert "根据周报推荐" in chat.expect("lina", 2)[1].payload["main_title"]["desc"]  # after its text form

    def test_while_the_round_is_open_nobody_sees_a_mean_only_counts(self, round_env: BotEnv) -> None:
        chat = round_env.chat
        status = chat.say("zhoumin", "/360 status")
        assert "已提名 3/11 人，已确认 2 人" in status and "评价邀请 6 份，已完成 5 份" in status
        assert not any(NAMES[r] in status for r in (*RATERS_OF_ZHANGWEI, "liuyang", "chenjing"))
        assert "还没有已结束的 360 反馈" in chat.say("lina", "/360 result 张伟")

    def test_the_daily_job_reminds_whoever_still_owes_something_once(self, round_env: BotEnv) -> None:
        env, chat = round_env, round_env.chat
        result = env.runner().run("feedback360_daily", env.clock.now())
        assert result.ran and "提醒评价人 1 人" in result.detail and "待确认的主管 1 人" in result.detail
        chenjing = [m.payload["content"] for m in chat.expect("chenjing", 2)]  # she owes a rating and a nomination
        assert "你还没有提名评价人" in chenjing[0] and "还有 1 份 360 评价待完成" in chenjing[1]
        assert "杨帆 的评价人等待你确认" in chat.expect("lina", 2)[1].payload["content"]
        assert "你还没有提名评价人" in chat.expect_text("huangli")
        for userid in ("zhoumin", "wangqiang", "liuyang", "wuhao", "sunyue"):  # the others not yet nominated
            assert "你还没有提名评价人" in chat.expect_text(userid)
        env.settle()
        assert len(env.fake.delivered("zhangwei")) == chat.seen["zhangwei"]  # 张伟 owes nothing: no reminder
        assert env.runner().run("feedback360_daily", env.clock.now()).detail == "already_ran"

    def test_closing_gives_each_member_their_own_aggregate_shown_only_from_3_ratings(self, round_env: BotEnv) -> None:
        chat = round_env.chat
        chat.send("zhoumin", "/360 close")
        own = {userid: chat.expect_text(userid) for userid in EVERYONE}
        assert "张伟：平均 4.00 分（3 份评价）" in own["zhangwei"]
        comments = own["zhangwei"].split("评语（匿名，按文字排序）：", 1)[1].split("\n· ")[1:]
        assert comments == sorted(["协作积极，周末活动也主动支援", "对接需求时沟通及时"])
        assert "赵磊：评价不足 3 份，不显示结果" in own["zhaolei"] and "平均" not in own["zhaolei"]
        assert "1/11 位成员有至少 3 份评价" in chat.expect_text("zhoumin")
        assert "已经结束" in chat.say("chenjing", "5")  # too late: the round is closed and her ask expired

        team = chat.say("lina", "/360 result team")
        assert "张伟：平均 4.00 分（3 份评价）" in team and "杨帆：评价不足 3 份" in team and "评语" not in team
        assert "你只能查看自己的结果" in chat.say("zhaolei", "/360 result 张伟")
        assert "评价不足 3 份" in chat.say("zhoumin", "/360 result 赵磊")

    def test_nothing_anyone_received_ties_a_rater_to_a_rating(self, round_env: BotEnv) -> None:
        # The only figure ever shown is 张伟's mean.
        for userid in EVERYONE:
            for message in round_env.fake.delivered(userid):
                for line in (message.payload.get("content") or "").splitlines():
                    if re.search(r"平均 \d", line):
                        assert line == "张伟：平均 4.00 分（3 份评价）", line

    def test_the_mean_feeds_the_collaboration_indicator_of_the_year(self, round_env: BotEnv) -> None:
        scheme = load_scheme("seed-executor")
        with transaction(round_env.bot.sessions) as session:
            found = collect_values(session, {"zhangwei": scheme, "zhaolei": scheme}, Period.parse("2026"))
            assert averages_for(session, EVERYONE, "2026") == {"zhangwei": D("4.00")}
        collaboration = {k: v for k, v in found.items() if k[1] == "cross_department_collaboration"}
        assert collaboration == {("zhangwei", "cross_department_collaboration", "2026"): D("4.00")}
        result = compute_results(scheme, "2026", [MemberData("zhangwei", "一组", "部",
                                                             values=member_values(found, "zhangwei"))])
        assert result.get("zhangwei").indicator("cross_department_collaboration").score == D("80.00")  # 20 + 3 × 20


def test_ratings_cannot_be_traced_to_a_rater(bot_env: BotEnv) -> None:
    columns = {c["name"] for c in inspect(bot_env.bot.engine).get_columns("feedback360_ratings")}
    assert columns == {"id", "round_id", "subject", "rating", "comment"}  # no rater, no time
    ask_columns = {c["name"] for c in inspect(bot_env.bot.engine).get_columns("feedback360_asks")}
    assert not ask_columns & {"rating", "comment", "answered_at", "rating_id"}

    chat = bot_env.chat
    chat.send("zhoumin", "/360 start 2026")
    for userid in EVERYONE:
        chat.expect_text(userid)
    chat.expect_text("zhoumin")
    chat.say("wangqiang", "/360 set 黄丽 张伟 刘洋 陈静 杨帆")
    chat.expect_text("huangli")
    for rater, rating in (("zhangwei", "5"), ("liuyang", "1"), ("chenjing", "4"), ("yangfan", "2")):
        assert "请为 黄丽" in chat.expect_text(rater)
        rate(chat, rater, rating, "无")
    chat.send("zhangwei", "/360 rate")  # answered already: cannot answer twice
    assert "没有待完成" in chat.expect_text("zhangwei")
    with transaction(bot_env.bot.sessions) as session:
        rows = list(session.scalars(select(Feedback360Rating)))
        assert sorted(r.rating for r in rows) == [1, 2, 4, 5]
        assert all(re.fullmatch(r"[0-9a-f]{32}", r.id) for r in rows)
        statuses = {a.rater: a.status for a in session.scalars(select(Feedback360Ask))}
    assert statuses == {"zhangwei": "answered", "liuyang": "answered", "chenjing": "answered", "yangfan": "answered"}
    # Even the admin sees counts only while the round is open, so a moving mean cannot give an answer away.
    assert "还没有已结束" in chat.say("zhoumin", "/360 result 黄丽")


def test_the_cli_opens_and_closes_a_round(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with running_fake() as fake:  # on the real clock, like the CLI
        config = write_config_file(tmp_path, fake.base_url, org={"admins": ["zhoumin"]})
        assert main(["--config", str(config), "db", "upgrade"]) == 0
        assert main(["--config", str(config), "org", "sync"]) == 0
        capsys.readouterr()
        deadline = (datetime.now(SHANGHAI).date() + timedelta(days=10)).isoformat()
        assert main(["--config", str(config), "360", "start", "--period", "2026", "--deadline", deadline]) == 0
        assert "已通知 11 位成员" in capsys.readouterr().out
        assert len(fake.delivered()) == 11 and "/360 raters" in fake.delivered("lina")[0].payload["content"]
        assert main(["--config", str(config), "360", "start", "--period", "2026"]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "已有进行中的 360 反馈" in err[0]
        assert main(["--config", str(config), "360", "status"]) == 0
        assert "已提名 0/11 人" in capsys.readouterr().out
        assert main(["--config", str(config), "360", "close"]) == 0
        assert "0/11 位成员有至少 3 份评价" in capsys.readouterr().out
        assert main(["--config", str(config), "360", "close"]) == 1
        assert "目前没有进行中的 360 反馈" in capsys.readouterr().err


def test_small_parsers() -> None:
    assert [rating_of_answer(t) for t in ("5", "４", "四分", " 3分 ", "6", "很好", "0")] == [5, 4, 4, 3, None, None, None]
    today = date(2026, 11, 27)
    assert parse_deadline("12-20", today) == date(2026, 12, 20)
    assert parse_deadline("01-10", today) == date(2027, 1, 10)  # the next such day
    assert parse_deadline("2026-12-31", today) == date(2026, 12, 31)
    assert parse_deadline("12-40", today) is None and parse_deadline("下周", today) is None


def test_worked_with_finds_colleagues_of_other_departments_most_mentioned_first(bot_env: BotEnv) -> None:
    worked_together(bot_env)
    with transaction(bot_env.bot.sessions) as session:
        found = [m.name for m in worked_with(session, "yangfan", bot_env.clock.now())]
        assert found == ["黄丽", "孙悦", "吴昊"]  # 黄丽 is mentioned twice; then by userid
        assert worked_with(session, "zhangwei", bot_env.clock.now()) == []  # 张伟 wrote nothing


ROUND = Feedback360Round(id=3, name="2026 跨部门协作 360 反馈", period="2026", indicator_key="cross_department_collaboration",
                         indicator_name="跨部门协作评分", anchors={}, status="open", deadline=date(2026, 12, 20),
                         opened_by="zhoumin", opened_at=datetime(2026, 11, 27, 2, 7, tzinfo=SHANGHAI))
SHOWN = Aggregate("zhangwei", "张伟", 3, D("4.00"), ("协作积极", "沟通及时"))
HIDDEN = Aggregate("zhaolei", "赵磊", 2, None, ())
ZHANG = Person("zhangwei", "张伟", Role.MEMBER, "lina", (3,))
ADMIN = Person("zhoumin", "周敏", Role.ADMIN, None, (2,))
ANCHORS = [(5, "牵头跨部门项目并取得成果"), (4, "主动对齐其他部门的目标"), (3, "按约定配合其他部门"),
           (2, "被动配合"), (1, "拒绝配合其他部门")]

TEMPLATE_CASES: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "feedback360/error.txt.j2": ({"code": "rater_count", "p": {"count": 2, "low": 3, "high": 5}},
                                 ("需要 3-5 位，你提名了 2 位",)),
    "feedback360/usage.txt.j2": ({"person": ADMIN, "min_shown": 3}, ("/360 start 期间", "/360 confirm 成员",
                                                                     "看不到某位评价人给出的具体分数")),
    "feedback360/round_opened.txt.j2": ({"round_name": "2026 跨部门协作 360 反馈", "indicator": "跨部门协作评分",
                                         "deadline": date(2026, 12, 20), "min_raters": 3, "max_raters": 5,
                                         "suggestions": ["黄丽", "吴昊"]},
                                        ("2026-12-20 前提名 3-5 位", "推荐：黄丽、吴昊")),
    "feedback360/round_started.txt.j2": ({"round": ROUND, "subjects": 11}, ("已通知 11 位成员", "截止 2026-12-20")),
    "feedback360/nomination_card.txt.j2": ({"subject_name": "张伟", "raters": ["黄丽", "吴昊", "孙悦"],
                                            "proposed_by": "member"},
                                           ("张伟 的 360 评价人待确认\n张伟 提名，共 3 位\n评价人：黄丽、吴昊、孙悦",)),
    "feedback360/nomination_text.txt.j2": ({"subject_name": "张伟", "raters": ["黄丽", "吴昊", "孙悦"],
                                            "proposed_by": "bot"},
                                           ("张伟 的 360 评价人待你确认（根据周报推荐，共 3 位）：\n黄丽、吴昊、孙悦",
                                            "回复 1 确认（或发送 /360 confirm 张伟）")),
    "feedback360/nominated.txt.j2": ({"raters": ["黄丽", "吴昊", "孙悦"], "proposed_by": "bot", "reviewers": ["李娜"]},
                                     ("根据你近期的周报推荐", "等待 李娜 确认")),
    "feedback360/confirmed.txt.j2": ({"audience": "subject", "subject_name": "张伟", "raters": ["黄丽", "吴昊", "孙悦"],
                                      "reviewer": "李娜"}, ("李娜 已确认你的 360 评价人：黄丽、吴昊、孙悦",)),
    "feedback360/ask.txt.j2": ({"round_name": "2026 360", "subject_name": "张伟", "indicator_name": "跨部门协作评分",
                                "anchors": ANCHORS, "left": 2, "deadline": date(2026, 12, 20)},
                               ("请为 张伟 的「跨部门协作评分」评分", "5 分：牵头跨部门项目", "还有 2 份")),
    "feedback360/comment_prompt.txt.j2": ({"subject_name": "张伟"}, ("不写请回复“无”",)),
    "feedback360/rating_invalid.txt.j2": ({}, ("1-5 的整数",)),
    "feedback360/rating_saved.txt.j2": ({"subject_name": "张伟", "declined": False, "more": False},
                                        ("已匿名记录你对 张伟 的评价", "都已完成")),
    "feedback360/invitation.txt.j2": ({"count": 2}, ("2 份 360 评价待完成",)),
    "feedback360/reminder_nominate.txt.j2": ({"round_name": "2026 360", "deadline": date(2026, 12, 20),
                                              "suggestions": ["黄丽"]}, ("还没有提名评价人", "推荐：黄丽")),
    "feedback360/reminder_confirm.txt.j2": ({"round_name": "2026 360", "names": ["张伟", "杨帆"]},
                                            ("张伟、杨帆 的评价人等待你确认",)),
    "feedback360/reminder_rate.txt.j2": ({"count": 1, "deadline": date(2026, 12, 20)}, ("还有 1 份", "2026-12-20 截止")),
    "feedback360/result.txt.j2": ({"round_name": "2026 360", "indicator": "跨部门协作评分", "results": [SHOWN, HIDDEN],
                                   "min_shown": 3, "scope": "member"},
                                  ("张伟：平均 4.00 分（3 份评价）", "· 协作积极", "赵磊：评价不足 3 份，不显示结果")),
    "feedback360/round_closed.txt.j2": ({"round_name": "2026 360", "period": "2026", "shown": 9, "total": 11,
                                         "min_shown": 3}, ("9/11 位成员",)),
    "feedback360/status.txt.j2": ({"round": ROUND, "progress": RoundProgress(11, 8, 6, 20, 13), "scope": "all"},
                                  ("已提名 8/11 人，已确认 6 人", "已完成 13 份")),
    "feedback360/own_status.txt.j2": ({"round": ROUND, "nomination": None, "raters": [], "suggestions": ["黄丽"]},
                                      ("你还没有提名评价人", "推荐：黄丽")),
    "feedback360/cli_result.txt.j2": ({"action": "close", "round": ROUND, "count": 11, "shown": 9, "min_shown": 3},
                                      ("已结束 2026 跨部门协作 360 反馈（第 3 轮）：9/11 位成员",)),
    "feedback360/job_detail.txt.j2": ({"report": DailyReport(("2026 360",), 2, 3, 1)},
                                      ("已结束：2026 360", "提醒评价人 2 人")),
    "feedback360/round_name.txt.j2": ({"period": "2026"}, ("2026 跨部门协作 360 反馈",)),
}


@pytest.mark.parametrize("name", sorted(TEMPLATE_CASES))
def test_feedback360_templates_render(name: str) -> None:
    assert_renders(name, *TEMPLATE_CASES[name], blank_runs=False)


def test_every_feedback360_template_has_a_case() -> None:
    assert templates_under("feedback360/") == set(TEMPLATE_CASES)


def test_colleagues_named_in_weekly_reports_are_proposed(bot_env: BotEnv) -> None:
    from bot.storage import models
    report = getattr(models, "WeeklyReport", None)
    if report is None:
        pytest.skip("the weekly report has not landed")
    now = bot_env.clock.now()
    with transaction(bot_env.bot.sessions) as session:
        session.add(report(userid="zhaolei", week="2026-W48", status="submitted", created_at=now, updated_at=now,
                           answers={"key_actions": "和陈静一起策划了双十二群活动，张伟帮忙做海报",
                                    "blockers": "需要陈静和刘洋支持文案；王强审批"}))
    with transaction(bot_env.bot.sessions) as session:
        # 王强 is in 赵磊's own department, so he is not proposed
        assert [m.name for m in worked_with(session, "zhaolei", now)] == ["陈静", "刘洋", "张伟"]
