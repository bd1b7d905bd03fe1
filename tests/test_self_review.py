"""The monthly self-review end to end (ratings with anchors, invalid answers, achievements, improvements), which
scheme and indicators apply to whom, and every review/* template rendered with realistic variables."""
from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.appraisal.assignment import behaviour_indicators_due, cached_scheme, cycles_due, scheme_name_for
from bot.config import AppraisalConfig, SchemeAssignment
from bot.storage.db import transaction
from bot.storage.models import SelfReview
from bot.templates import render
from bot.appraisal.ratings import RatingProblem, parse_rating
from bot.appraisal.self_reviews import IndicatorView, default_month, review_is_open
from scoring import Cycle, Dimension, Direction, Indicator, RatingRule, Scheme
from tests.harness import BotEnv, assert_renders, make_config

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOVEMBER_PROMPT = datetime(2026, 11, 27, 10, 5, tzinfo=SHANGHAI)  # second-last workday of November 2026


def review_of(env: BotEnv, userid: str, month: str) -> SelfReview | None:
    with transaction(env.bot.sessions) as session:
        return session.scalar(select(SelfReview).where(SelfReview.userid == userid, SelfReview.month == month))


def test_invalid_ratings_get_a_specific_hint_and_the_same_question_again(bot_env: BotEnv) -> None:
    chat = bot_env.chat
    result = bot_env.run_job("self_review_prompt", NOVEMBER_PROMPT)
    assert result.ran and result.period == "2026-11"
    prompt = chat.expect_text("zhangwei")
    assert "张伟" in prompt and "2026-11 的月度自评开始了" in prompt
    assert "第 1/1 项：工作态度与执行力" in prompt
    assert "1 分：经常拖延或推诿" in prompt and "5 分：以身作则推动团队目标" in prompt

    for answer, hint in (("五", "「五」请改用阿拉伯数字，例如回复 5"), ("6", "「6」超出范围"),
                         ("good", "没看懂「good」"), ("3.5", "「3.5」不是整数")):
        reply = chat.say("zhangwei", answer)
        assert hint in reply, reply
        assert "第 1/1 项：工作态度与执行力" in reply and "请回复 1-5 的数字" in reply  # the same question again
    assert review_of(bot_env, "zhangwei", "2026-11") is None or review_of(bot_env, "zhangwei", "2026-11").ratings == {}

    achievements = chat.say("zhangwei", "４")  # a full-width digit is fine
    assert "已记录 4 分" in achievements and "主要成果" in achievements
    assert "不能跳过" in chat.say("zhangwei", "跳过")
    assert "需要改进" in chat.say("zhangwei", "完成会员日 3 场，新增用户 320 人")
    done = chat.say("zhangwei", "活动复盘不够及时，下月每场活动 48 小时内复盘")
    assert "2026-11 的月度自评已提交" in done and "工作态度与执行力：4 分" in done
    review = review_of(bot_env, "zhangwei", "2026-11")
    assert review is not None and review.submitted_at is not None
    assert review.ratings == {"work_attitude": 4} and review.scheme_key == "seed-executor"
    assert review.achievements == "完成会员日 3 场，新增用户 320 人"
    assert review.improvements.startswith("活动复盘不够及时")
    assert "已于" in chat.say("zhangwei", "/review 2026-11")  # stored once per member and month


def test_december_asks_the_annual_behaviour_indicators_too_and_can_be_redone(bot_env: BotEnv) -> None:
    chat = bot_env.chat
    bot_env.clock.set(datetime(2026, 12, 30, 10, 10, tzinfo=SHANGHAI))
    start = chat.say("liuyang", "/review")
    assert "开始2026-12的月度自评" in start and "第 1/3 项：工作态度与执行力" in start
    assert "第 2/3 项：跨部门协作评分" in chat.say("liuyang", "5")
    third = chat.say("liuyang", "4分")
    assert "已记录 4 分" in third and "第 3/3 项：公司文化契合度" in third
    chat.say("liuyang", "3")
    chat.say("liuyang", "年终活动按期上线")
    chat.say("liuyang", "数据分析要更深入")
    review = review_of(bot_env, "liuyang", "2026-12")
    assert review is not None and review.ratings == {"work_attitude": 5, "cross_department_collaboration": 4,
                                                     "culture_fit": 3}
    redo = chat.say("liuyang", "/review edit")
    assert "重新填写" in redo and "（当前：5 分）" in redo
    chat.say("liuyang", "4")
    chat.send("liuyang", "/cancel")
    chat.expect("liuyang", 1)  # the review was submitted before: only the general "left" message
    review = review_of(bot_env, "liuyang", "2026-12")
    assert review is not None and review.ratings["work_attitude"] == 4 and review.submitted_at is not None


def test_members_on_leave_are_not_asked_and_the_reminder_skips_those_who_submitted(bot_env: BotEnv) -> None:
    chat = bot_env.chat
    chat.say("chenjing", "/leave 11-27")
    bot_env.run_job("self_review_prompt", NOVEMBER_PROMPT)
    chat.expect("zhaolei")
    chat.say("zhaolei", "5")
    chat.say("zhaolei", "新增社群 3 个")
    chat.say("zhaolei", "需要提高响应速度")
    reminder_at = datetime(2026, 11, 30, 15, 5, tzinfo=SHANGHAI)
    assert bot_env.run_job("self_review_reminder", reminder_at).ran  # every prompt is out before the clock moves on
    reminder = chat.expect_text("chenjing")  # back from leave on Monday: reminded now
    assert "还没有提交" in reminder and "第 1/1 项" in reminder
    bot_env.bot.sender.send_due()
    chen = [m.payload.get("content", "") for m in bot_env.fake.delivered("chenjing")]
    assert not any("月度自评开始了" in text for text in chen)  # not prompted on Friday, while on leave
    assert not any("提醒一下" in (m.payload.get("content") or "") for m in bot_env.fake.delivered("zhaolei"))


def test_the_cancelled_or_idle_review_keeps_its_ratings(bot_env: BotEnv) -> None:
    chat = bot_env.chat
    bot_env.clock.set(datetime(2026, 12, 30, 10, 10, tzinfo=SHANGHAI))
    chat.say("huangli", "/review")
    chat.say("huangli", "4")
    chat.send("huangli", "/cancel")
    saved, _left = chat.expect("huangli", 2)
    assert "自评草稿已保存" in saved.payload["content"]
    resumed = chat.say("huangli", "/review")
    assert "第 2/3 项" in resumed
    bot_env.settle()
    later = bot_env.clock.now() + timedelta(minutes=45)
    assert bot_env.runner().run("conversation_sweep", later.astimezone(SHANGHAI)).ran
    assert "自评对话已 30 分钟没有回复" in chat.expect_text("huangli")
    review = review_of(bot_env, "huangli", "2026-12")
    assert review is not None and review.ratings == {"work_attitude": 4} and review.submitted_at is None


# -- pieces ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("1", 1), (" 5 ", 5), ("3分", 3), ("５", 5), ("4。", 4),
    ("五", RatingProblem("chinese_numeral", "五", 5)), ("十", RatingProblem("chinese_numeral", "十", None)),
    ("6", RatingProblem("out_of_range", "6")), ("0", RatingProblem("out_of_range", "0")),
    ("-1", RatingProblem("out_of_range", "-1")), ("4.5", RatingProblem("not_integer", "4.5")),
    ("good", RatingProblem("not_a_number", "good")), ("4 因为表现不错", RatingProblem("not_a_number", "4 因为表现不错")),
])
def test_parse_rating(text: str, expected: object) -> None:
    assert parse_rating(text) == expected


def _indicator(key: str, cycle: Cycle, dimension: Dimension = Dimension.BEHAVIOR) -> Indicator:
    return Indicator(key=key, name=key, dimension=dimension, category="", weight=Decimal(10), cycle=cycle,
                     source="manager_rating", direction=Direction.HIGHER, rule=RatingRule(),
                     anchors={level: f"level {level}" for level in range(1, 6)})


def test_behaviour_indicators_due_by_month() -> None:
    scheme = Scheme("s", "s", (_indicator("monthly", Cycle.MONTH), _indicator("quarterly", Cycle.QUARTER),
                               _indicator("annual", Cycle.YEAR),
                               _indicator("sales", Cycle.MONTH, Dimension.PERFORMANCE)))
    due = {month: [i.key for i in behaviour_indicators_due(scheme, month)] for month in (1, 3, 11, 12)}
    assert due == {1: ["monthly"], 3: ["monthly", "quarterly"], 11: ["monthly"],
                   12: ["monthly", "quarterly", "annual"]}
    assert cycles_due(6) == {Cycle.MONTH, Cycle.QUARTER}
    preset = cached_scheme("seed-executor")
    assert [i.key for i in behaviour_indicators_due(preset, 11)] == ["work_attitude"]


def test_scheme_assignment_by_userid_then_nearest_department_then_default() -> None:
    config = AppraisalConfig(default_scheme="seed-executor", assign=(
        SchemeAssignment("startup-community", departments=(2,)),
        SchemeAssignment("mature-community", departments=(4,)),
        SchemeAssignment("seed-manager", userids=("lina",)),
    ))
    parents = {1: None, 2: 1, 3: 2, 4: 2, 5: 1}
    assert scheme_name_for("lina", (3,), parents, config) == "seed-manager"
    assert scheme_name_for("zhangwei", (3,), parents, config) == "startup-community"  # via parent 2
    assert scheme_name_for("zhaolei", (4,), parents, config) == "mature-community"  # its own beats the parent
    assert scheme_name_for("outsider", (5,), parents, config) == "seed-executor"


def test_the_configured_scheme_is_checked_when_the_config_loads(tmp_path: Any) -> None:
    from bot.config import ConfigError
    with pytest.raises(ConfigError) as caught:
        make_config("sqlite://", "http://127.0.0.1:1/cgi-bin/", appraisal={
            "default_scheme": "no-such-preset", "assign": [{"scheme": "seed-manager"}]})
    assert {p.key for p in caught.value.problems} == {"appraisal.default_scheme", "appraisal.assign[0]"}


def test_which_month_review_means() -> None:
    config = make_config("sqlite://", "http://127.0.0.1:1/cgi-bin/")

    class NoSession:
        def scalar(self, _query: object) -> None:
            return None

    # early December: November's unsubmitted review is still open until December's 3rd workday (the 3rd)
    assert default_month(NoSession(), "zhangwei", config, date(2026, 12, 2)) == "2026-11"  # type: ignore[arg-type]
    assert default_month(NoSession(), "zhangwei", config, date(2026, 12, 4)) == "2026-12"  # type: ignore[arg-type]
    assert review_is_open("2026-11", config, date(2026, 12, 3))
    assert not review_is_open("2026-10", config, date(2026, 12, 1))


# -- templates ------------------------------------------------------------------------------------------------
_ATTITUDE = IndicatorView("work_attitude", "工作态度与执行力", [(1, "经常拖延或推诿"), (3, "按时完成分内工作"),
                                                          (5, "以身作则推动团队目标")])
_RATING = {"indicator": _ATTITUDE, "number": 1, "total": 3, "current": 4}
_INTRO = {"name": "张伟", "month": "2026-12", "editing": True}

TEMPLATES: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "review/_rating.txt.j2": (_RATING, ("第 1/3 项：工作态度与执行力", "5 分：以身作则推动团队目标", "（当前：4 分）")),
    "review/rating.txt.j2": ({"recorded": None, "intro": _INTRO, **_RATING},
                             ("张伟，开始2026-12的月度自评（重新填写）", "第 1/3 项")),
    "review/invalid_rating.txt.j2": ({"problem": RatingProblem("chinese_numeral", "五", 5), **_RATING},
                                     ("「五」请改用阿拉伯数字，例如回复 5", "第 1/3 项")),
    "review/achievements.txt.j2": ({"current": "", "month": "2026-11", "recorded": 4, "intro": None},
                                   ("已记录 4 分，评分完成", "主要成果")),
    "review/improvements.txt.j2": ({"current": "复盘要及时", "month": "2026-11", "recorded": None, "intro": None},
                                   ("需要改进", "当前内容：复盘要及时")),
    "review/text_required.txt.j2": ({"state": "achievements", "text": "跳过"}, ("本月成果是必填的", "「跳过」")),
    "review/submitted.txt.j2": ({"who": "张伟", "month": "2026-11", "resubmitted": False,
                                 "ratings": [(_ATTITUDE, 4)], "achievements": "会员日 3 场", "improvements": "复盘"},
                                ("2026-11 的月度自评已提交", "工作态度与执行力：4 分", "本月成果：会员日 3 场")),
    "review/already_submitted.txt.j2": ({"month": "2026-11",
                                         "submitted_at": datetime(2026, 11, 27, 11, 30, tzinfo=SHANGHAI)},
                                        ("已于 11月27日（周五） 11:30 提交", "/review edit")),
    "review/closed.txt.j2": ({"month": "2026-10", "submitted": False}, ("2026-10 的月度自评已经关闭，未提交",)),
    "review/bad_argument.txt.j2": ({"text": "十一月"}, ("没看懂「十一月」",)),
    "review/cancelled.txt.j2": ({"month": "2026-11"}, ("2026-11 的自评草稿已保存",)),
    "review/timed_out.txt.j2": ({"who": "张伟", "month": "2026-11", "minutes": 30}, ("30 分钟没有回复",)),
    "review/prompt.txt.j2": ({"who": "张伟", "month": "2026-11", "opened": True, "total": 3, "started": False,
                              **_RATING, "current": None}, ("为 3 项行为指标各打 1-5 分", "直接回复即可作答")),
    "review/reminder.txt.j2": ({"who": "张伟", "month": "2026-11", "opened": False, "total": 1, "started": True,
                                **_RATING}, ("还没有提交", "发送 /review 继续填写")),
    "review/job_detail.txt.j2": ({"kind": "reminder", "month": "2026-11", "asked": 8, "on_leave": 1, "already": 2},
                                 ("自评催交已发给 8 人",)),
}


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_review_templates_render_with_realistic_variables(name: str) -> None:
    assert_renders(name, *TEMPLATES[name])


def test_a_prompt_with_no_behaviour_indicator_due_goes_straight_to_achievements() -> None:
    text = render("review/prompt.txt.j2", who="张伟", month="2026-11", opened=True, total=0, started=False,
                  indicator=None, number=0, current=None)
    assert "行为指标" not in text and "主要成果" in text
