"""Data in: numbers as people type them, members and indicators by name, periods; and every kind of bad input to
/data, /target, /score and /calibrate answered precisely with nothing stored. Also the scoring/* templates."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.appraisal.assignment import cached_scheme
from bot.config import ResultsConfig
from bot.appraisal.entries import EntryError, appraisal_month, find_key, parse_amount, parse_rating, period_for
from bot.appraisal.periods import parse_period
from bot.storage.db import transaction
from bot.fakes.wecom import FakeWeCom
from bot.storage.models import AuditEntry, DataEntry, ResultCalibration
from bot.appraisal.results.calibrate import Calibrated
from bot.templates import render
from scoring import Period
from tests.harness import CLOSE_AT, PUBLISH_AT, SHANGHAI, BotEnv, EnvFactory, assert_renders, make_config, seed_month

EXECUTOR = cached_scheme("seed-executor")
NOVEMBER = Period.month(2026, 11)


# -- parsing ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("12", "12"), ("12.5", "12.5"), ("1,200", "1200"), ("1，200.5", "1200.5"), ("15%", "15"), ("15.3 %", "15.3"),
    ("3.2万", "32000"), ("１２", "12"), ("-4.5%", "-4.5"), ("0", "0"),
])
def test_numbers_as_people_type_them(text: str, expected: str) -> None:
    assert parse_amount(text) == Decimal(expected)


@pytest.mark.parametrize("text", ["很多", "1,2", "12..5", "", "5%%", "1.2.3"])
def test_text_that_is_no_number_is_refused(text: str) -> None:
    with pytest.raises(EntryError) as caught:
        parse_amount(text)
    assert caught.value.code == "value.invalid"


@pytest.mark.parametrize("text, code", [
    ("nan", "number.not_finite"), ("-Infinity", "number.not_finite"), ("1e30", "number.too_large"),
    ("1e999", "number.too_large"), ("9" * 38, "number.too_large"), ("0.00000001", "number.too_precise"),
])
def test_numbers_that_are_not_finite_or_absurdly_large_are_refused_by_name(text: str, code: str) -> None:
    with pytest.raises(EntryError) as caught:
        parse_amount(text)
    assert caught.value.code == code


@pytest.mark.parametrize("text, code, params", [
    ("6", "rating.out_of_range", {"text": "6"}), ("0", "rating.out_of_range", {"text": "0"}),
    ("五", "rating.chinese", {"text": "五", "suggestion": 5}), ("十", "rating.chinese", {"text": "十"}),
    ("3.5", "rating.not_integer", {"text": "3.5"}), ("good", "rating.invalid", {"text": "good"}),
])
def test_ratings_other_than_1_to_5_say_what_is_wrong(text: str, code: str, params: dict[str, Any]) -> None:
    with pytest.raises(EntryError) as caught:
        parse_rating(text)
    assert caught.value.code == code
    assert params.items() <= caught.value.params.items()


def test_ratings_accept_digits_with_a_unit() -> None:
    assert [parse_rating(text) for text in ("1", "５", "4分", " 3 ")] == [1, 5, 4, 3]


@pytest.mark.parametrize("text, expected", [
    ("2026-11", "2026-11"), ("2026-Q4", "2026-Q4"), ("2026q4", "2026-Q4"), ("2026", "2026"), ("2026年11月", "2026-11"),
    ("11月", "2026-11"), ("12月", "2025-12"), ("Q4", "2026-Q4"), ("2026年第四季度", "2026-Q4"), ("2026年度", "2026"),
    ("本周", None), ("2026-13", None),
])
def test_periods(text: str, expected: str | None) -> None:
    found = parse_period(text, NOVEMBER)
    assert (str(found) if found else None) == expected


def test_indicators_by_key_name_short_name_or_a_unique_start() -> None:
    assert find_key(EXECUTOR, "content_output").key == "content_output"
    assert find_key(EXECUTOR, "CONTENT_OUTPUT").key == "content_output"
    assert find_key(EXECUTOR, "内容生产量（图文/视频/活动）").key == "content_output"
    assert find_key(EXECUTOR, "活动参与率").key == "event_participation_rate"
    assert find_key(EXECUTOR, "工作态度").key == "work_attitude"
    assert find_key(EXECUTOR, "退群率").metric is not None
    with pytest.raises(EntryError) as caught:
        find_key(EXECUTOR, "销售额")
    assert caught.value.code == "key.unknown" and "粉丝净增长率" in caught.value.params["names"]


def test_the_period_must_fit_the_indicators_cycle() -> None:
    growth = find_key(EXECUTOR, "粉丝净增长率")
    retention = find_key(EXECUTOR, "潜在客户留存率")
    culture = find_key(EXECUTOR, "公司文化契合度")
    assert period_for(growth, None, NOVEMBER) == "2026-11"
    assert period_for(retention, None, NOVEMBER) == "2026-Q4"
    assert period_for(culture, None, NOVEMBER) == "2026"
    with pytest.raises(EntryError) as caught:
        period_for(growth, "2026-Q4", NOVEMBER)
    assert caught.value.code == "period.mismatch" and caught.value.params["example"] == "2026-11"


def test_the_appraisal_month_is_the_previous_one_until_it_is_published() -> None:
    config = make_config("sqlite://", "http://127.0.0.1:9/cgi-bin/")
    assert config.results == ResultsConfig()
    assert str(appraisal_month(config, datetime(2026, 11, 27, 10, 0, tzinfo=SHANGHAI))) == "2026-11"
    assert str(appraisal_month(config, datetime(2026, 12, 9, 10, 4, tzinfo=SHANGHAI))) == "2026-11"
    assert str(appraisal_month(config, datetime(2026, 12, 9, 10, 5, tzinfo=SHANGHAI))) == "2026-12"


# -- bad input in the chat ----------------------------------------------------------------------------------------
@pytest.fixture
def env(make_env: EnvFactory, fake_wecom: FakeWeCom) -> BotEnv:
    fake_wecom.add_user("zhangwei2", "张伟", departments=(3,), main_department=3, direct_leader=("lina",))
    return make_env()


def stored(env: BotEnv) -> int:
    with transaction(env.bot.sessions) as session:
        return session.scalar(select(func.count()).select_from(DataEntry)) or 0


BAD_INPUT = [
    ("/data 王小明 内容生产量 20", "没有找到成员「王小明」"),
    ("/data 张伟 内容生产量 20", "有 2 位成员叫「张伟」：张伟（zhangwei）、张伟（zhangwei2）"),
    ("/data zhangwei 销售额 20", "「销售额」不是执行层考核方案的指标"),
    ("/data zhangwei 内容生产量 很多", "「很多」不是数字"),
    ("/data zhangwei 内容生产量 20 2026-Q4", "「内容生产量（图文/视频/活动）」按月度考核，期间 2026-Q4 不适用"),
    ("/data zhangwei 内容生产量 20 2026-13", "没看懂期间「2026-13」"),
    ("/data zhangwei 工作态度 4", "由主管评分，请用 /score"),
    ("/data zhangwei 内容生产量 waive", "豁免需要理由"),
    ("/target zhangwei 问题响应时效 10", "不需要目标值"),
    ("/data zhangwei 内容生产量", "/data 的用法"),
    ("/score zhangwei 工作态度 6 很好", "「6」超出范围"),
    ("/score zhangwei 工作态度 五 很好", "「五」请改用阿拉伯数字，例如 5"),
    ("/score zhangwei 工作态度 3.5 很好", "「3.5」不是整数"),
    ("/score zhangwei 工作态度 4", "请写上理由，例如 /score 张伟 工作态度与执行力 4"),
    ("/score zhangwei 问题响应时效 waive", "请写上理由"),
    ("/score zhangwei 内容生产量 4 很好", "不是主管评分的指标，请用 /data"),
    ("/score zhangwei 退群率 4 很好", "「退群率」不是主管评分的指标，请用 /data"),
    ("/score zhangwei 工作态度", "/score 的用法"),
    ("/calibrate zhangwei 90 很好", "还没有结账"),
    ("/data zhangwei 内容生产量 -5", "「内容生产量（图文/视频/活动）」是数量或金额，不能为负数（填的是 -5篇），未保存"),
    ("/data zhangwei 内容生产量 1e30", "「1e30」大得不合常理（超过 12 位整数）"),
    ("/data zhangwei 内容生产量 " + "9" * 38, "大得不合常理"),
    ("/data zhangwei 内容生产量 nan", "不是一个确定的数"),
    ("/data zhangwei 活动参与率 150%", "是百分比，只能在 0 到 100 之间（填 150% 不合理）"),
    ("/target zhangwei 内容生产量 0", "按目标完成率计分，目标值必须大于 0（填的是 0），未保存"),
]


@pytest.mark.parametrize("command, expected", BAD_INPUT, ids=[command for command, _ in BAD_INPUT])
def test_each_kind_of_bad_input_gets_a_precise_answer_and_stores_nothing(env: BotEnv, command: str,
                                                                         expected: str) -> None:
    assert expected in env.chat.say("lina", command)
    assert stored(env) == 0


def test_good_input_is_stored_with_who_and_when_and_every_change_is_audited(env: BotEnv) -> None:
    assert "（2026-11）22篇" in env.ask("lina", "/data zhangwei 内容生产量 22")
    assert "（原为 22篇）" in env.ask("lina", "/data zhangwei content_output 24 2026年11月 补录漏算的两篇")
    assert "已记录" in env.ask("lina", "/score zhangwei 工作态度 4 按时完成三场活动")
    assert "已豁免" in env.ask("lina", "/score zhangwei 问题响应时效 豁免 本月不负责客服")
    with transaction(env.bot.sessions) as session:
        entries = session.scalars(select(DataEntry).where(DataEntry.userid == "zhangwei").order_by(DataEntry.id)).all()
        audit = session.scalars(select(AuditEntry).where(AuditEntry.subject == "zhangwei").order_by(AuditEntry.id)).all()
    assert [(e.key, e.value, e.waived, e.source, e.entered_by) for e in entries] == [
        ("content_output", "22", False, "data", "lina"), ("content_output", "24", False, "data", "lina"),
        ("work_attitude", "4", False, "score", "lina"), ("response_time", None, True, "score", "lina")]
    assert entries[1].reason == "补录漏算的两篇" and all(e.entered_at is not None for e in entries)
    assert [(a.actor, a.action) for a in audit] == [("lina", "data.value"), ("lina", "data.value"),
                                                    ("lina", "score.rating"), ("lina", "score.waive")]
    assert audit[1].detail["previous"] == "22" and audit[3].detail["reason"] == "本月不负责客服"


def test_the_guided_walk_asks_again_after_a_bad_answer_and_can_skip(make_env: EnvFactory) -> None:
    schemes = {"assign": [{"scheme": "seed-executor", "userids": ["zhangwei"]}]}
    env = make_env(appraisal=schemes)
    env.clock.set(datetime(2026, 12, 30, 10, 10, tzinfo=SHANGHAI))  # December: the annual culture fit is due too
    opening = env.chat.say("lina", "/score 张伟", replies=2)
    assert "第 1/2 项：工作态度与执行力（2026-12）" in opening
    again = env.chat.say("lina", "五 很好")  # the problem and the same question again, in one message
    assert "「五」请改用阿拉伯数字" in again and "第 1/2 项：工作态度与执行力" in again
    again = env.chat.say("lina", "4")
    assert "请写上理由" in again and "第 1/2 项" in again
    second = env.chat.say("lina", "4，年终活动执行到位")
    assert "已记录：张伟 · 工作态度与执行力（2026-12）4 分" in second
    assert "第 2/2 项：公司文化契合度（2026）" in second
    done = env.chat.say("lina", "跳过")
    assert "已跳过「公司文化契合度」" in done and "公司文化契合度：未评" in done
    assert "没有进行中的对话" in env.chat.say("lina", "/cancel")


def test_calibrating_outside_the_window_or_beyond_the_rules_is_refused(env: BotEnv) -> None:
    seed_month(env, "2026-11", ("zhangwei2", "liuyang", "chenjing", "yangfan"))
    assert "还没有结账，结账后才能校准（结账时间 12-07 10:05）" in env.ask("lina", "/calibrate liuyang 90 带队完成双十一")
    env.run_job("month_close", CLOSE_AT, mark_read=True)
    assert "缺数据" in env.ask("lina", "/calibrate zhangwei 90 带队完成双十一")  # nothing stored for 张伟 (zhangwei)
    assert "超出范围，应在 0 到 120 之间" in env.ask("lina", "/calibrate liuyang 130 带队完成双十一")
    assert "「很高」不是有效的总分" in env.ask("lina", "/calibrate liuyang 很高 带队完成双十一")
    assert "校准需要填写理由" in env.ask("lina", "/calibrate liuyang 90")
    assert "/calibrate 的用法" in env.ask("lina", "/calibrate liuyang")
    first = env.ask("lina", "/calibrate liuyang 90 带队完成双十一")
    assert "已校准：刘洋（2026-11）" in first and "→ 90.00" in first
    assert "替换此前的校准 90.00" in env.ask("lina", "/calibrate 2026-11 liuyang 92 复核后再上调")
    env.run_job("publish", PUBLISH_AT, mark_read=True)
    assert "已发布，已冻结" in env.ask("lina", "/calibrate liuyang 95 晚了")
    assert "已发布并冻结" in env.ask("lina", "/data liuyang 内容生产量 30 2026-11")
    with transaction(env.bot.sessions) as session:
        assert [c.adjusted_total for c in session.scalars(select(ResultCalibration).order_by(ResultCalibration.id))] \
            == ["90.00", "92.00"]


# -- the scoring/* templates --------------------------------------------------------------------------------------
INDICATOR = EXECUTOR.indicator("work_attitude")
VIEW = {"total": "64.12", "grade": "C", "complete": True, "indicators": [
    {"name": "粉丝净增长率", "status": "scored", "score": "42.00", "rating": False, "value": "3.1", "target": "5",
     "unit": "%", "deductions": [{"name": "退群率", "actual": "16.2", "unit": "%", "points": "20"}]},
    {"name": "问题响应时效", "status": "waived", "score": None, "rating": False, "value": "", "target": "", "unit": "分钟",
     "deductions": []},
    {"name": "工作态度与执行力", "status": "missing", "score": None, "rating": True, "value": "", "target": "",
     "unit": "", "deductions": []}]}
SCORING_TEMPLATES: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "scoring/error.txt.j2": ({"code": "member.ambiguous", "p": {"text": "张伟", "members": [("张伟", "zhangwei"),
                                                                                          ("张伟", "zhangwei2")]}},
                             ("有 2 位成员叫「张伟」", "张伟（zhangwei2）")),
    "scoring/usage.txt.j2": ({"command": "/data"}, ("/data 成员 指标 数值 [期间]", "3.2万")),
    "scoring/saved.txt.j2": ({"kind": "rating", "member": "张伟", "name": "工作态度与执行力", "period": "2026-11",
                              "value": 4, "unit": "", "anchor": INDICATOR.anchors[4], "reason": "按时完成三场活动",
                              "note": "", "previous": "3"},
                             ("已记录：张伟 · 工作态度与执行力（2026-11）4 分：主动承担额外任务", "理由：按时完成三场活动",
                              "（原为 3）")),
    "scoring/status.md.j2": ({"viewer": "李娜", "period_label": "2026年11月", "counts": {"scored": 1, "complete": 1,
                                                                                         "reviewed": 2},
                              "rows": [{"name": "张伟", "scored": True, "unrated": [], "missing": [], "reviewed": True,
                                        "appraised": True},
                                       {"name": "刘洋", "scored": False, "unrated": ["工作态度与执行力"],
                                        "missing": ["工作态度与执行力（2026-11）"], "reviewed": True,
                                        "appraised": True},
                                       {"name": "杨帆", "scored": True, "unrated": [], "missing": [], "reviewed": False,
                                        "appraised": False}],
                              "total": 102, "more": 100},
                             ("已评 1/102 人", "待评：工作态度与执行力", "缺：工作态度与执行力（2026-11）",
                              "杨帆：本期不参与考核（请假或指标均已豁免）",
                              "另有 100 人未列出")),
    "scoring/breakdown.md.j2": ({"member": "张伟", "period_label": "2026年11月", "scheme_name": "执行层考核方案",
                                 "r": VIEW, "review": {"ratings": [("工作态度与执行力", 3)], "achievements": "会员日 3 场",
                                                       "improvements": "复盘要及时"},
                                 "highlights": [{"week": "2026-W48", "text": "组织线下读书会"}]},
                                ("42.00 分（3.1%/5%） 扣 20（退群率 16.2%）", "问题响应时效：已豁免", "成果：会员日 3 场",
                                 "2026-W48：组织线下读书会")),
    "scoring/walk_question.txt.j2": ({"recorded": None, "member": "张伟", "number": 1, "total": 2,
                                      "indicator": INDICATOR, "period": "2026-12", "current": {"waived": False, "value": "3"},
                                      "anchors": sorted(INDICATOR.anchors.items())},
                                     ("张伟 · 第 1/2 项：工作态度与执行力（2026-12），当前 3 分", "5 分：以身作则")),
    "scoring/walk_done.txt.j2": ({"recorded": "已跳过「公司文化契合度」。", "member": "张伟", "total": 2, "period": "2026-12",
                                  "ratings": [("工作态度与执行力", {"waived": False, "value": "4"}),
                                              ("公司文化契合度", None), ("问题响应时效", {"waived": True, "value": ""})]},
                                 ("已跳过", "工作态度与执行力：4 分", "公司文化契合度：未评", "问题响应时效：豁免")),
    "scoring/calibrated.txt.j2": ({"member": "杨帆", "period": "2026-11", "reason": "一次性大促",
                                   "c": Calibrated("2026-11", "111.57", "90.00", "S", "A", None),
                                   "publish_at": datetime(2026, 12, 9, 10, 5, tzinfo=SHANGHAI)},
                                  ("111.57 → 90.00，等级 S → A", "12-09 10:05 发布前")),
}


@pytest.mark.parametrize("name", sorted(SCORING_TEMPLATES))
def test_scoring_templates_render_with_realistic_variables(name: str) -> None:
    assert_renders(name, *SCORING_TEMPLATES[name])


def test_every_scoring_error_code_has_its_own_sentence() -> None:
    codes = {"value.invalid": {"text": "x"}, "value.use_waive": {}, "rating.out_of_range": {"text": "6"},
             "rating.not_integer": {"text": "3.5"}, "rating.chinese": {"text": "五", "suggestion": 5},
             "rating.invalid": {"text": "好"}, "period.invalid": {"text": "x"},
             "period.mismatch": {"name": "x", "period": "2026", "cycle": "month", "example": "2026-11"},
             "period.published": {"period": "2026-11"}, "key.unknown": {"text": "x", "scheme": "s", "names": ["a"]},
             "key.ambiguous": {"text": "x", "names": ["a", "b"]}, "key.use_score": {"name": "x"},
             "key.not_rated": {"name": "x"}, "key.not_indicator": {"name": "x"}, "target.unused": {"name": "x"},
             "member.unknown": {"text": "x"}, "member.not_in_team": {"text": "x", "own": False},
             "reason.missing": {"example": "/score 张伟 工作态度 4 理由"}, "total.invalid": {"text": "x"},
             "calibrate.nothing_open": {}, "reason.missing_waive": {"key": "退群率"},
             "period.closed": {"period": "2026-11"}, "target.zero": {"name": "x", "text": "0"},
             "value.out_of_bounds": {"name": "x", "text": "-5", "unit": "篇", "side": "below", "bound": "amount",
                                     "low": "0", "high": None},
             "number.too_large": {"text": "1e30"}, "number.not_finite": {"text": "nan"},
             "number.too_precise": {"text": "0.0000001"}}
    sentences = {render("scoring/error.txt.j2", code=code, p=params) for code, params in codes.items()}
    assert len(sentences) == len(codes) and not any(s in codes for s in sentences)
