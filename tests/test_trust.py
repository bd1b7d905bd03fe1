"""Results a team can trust, end to end against the fake WeCom: absurd values refused at the door, closed months
guarded, leave and waivers that mean what they say, provisional results without a grade or bonus, a year that
starts in July, and the nudge before the close. Also the templates these add."""
from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.appraisal.entries import record
from bot.storage.db import transaction
from bot.storage.models import AuditEntry, DataEntry, Idp, Leave, OutboxMessage, PeriodResult, WeComBehaviorDay
from bot.jobs.nudges import nudge_day, nudge_period_of
from bot.appraisal.results.views import months_label
from bot.appraisal.numbers import NumberError, wecom_count, wecom_decimal
from bot.appraisal.wecom_stats import _store_behavior
from bot.wecom.contact_stats import MemberPull as _MemberPull, day_start as _day_start
from bot.templates import render
from scoring import WAIVED, Period
from tests.harness import (CLOSE_AT, EVERYONE, PUBLISH_AT, SHANGHAI, USUAL_VALUES, BotEnv, EnvFactory, assert_renders,
                           kpibot, score_preview, seed_month, write_data_file)
from tests.test_permissions import ADMIN, ADMIN_WUHAO

MONTHLY = ("net_follower_growth_rate", "event_participation_rate", "content_output", "response_time", "work_attitude")


@pytest.fixture
def env(make_env: EnvFactory) -> BotEnv:
    return make_env(**ADMIN_WUHAO)


def entries(env: BotEnv, period: str) -> int:
    with transaction(env.bot.sessions) as session:
        return session.scalar(select(func.count()).select_from(DataEntry).where(DataEntry.period == period)) or 0


# -- values at the door -----------------------------------------------------------------------------------------
def test_a_value_far_outside_the_history_waits_for_confirmation(env: BotEnv) -> None:
    seed_month(env, "2026-10")
    before = entries(env, "2026-11")
    asked = env.ask("lina", "/data liuyang 内容生产量 900")
    assert "刘洋 · 内容生产量（图文/视频/活动）（2026-11）填的是 900篇" in asked and "还没有保存" in asked
    assert "回复「确认」保存" in asked and entries(env, "2026-11") == before
    assert "已录入：刘洋 · 内容生产量（图文/视频/活动）（2026-11）900篇" in env.ask("lina", "确认")
    assert "还没有保存" in env.ask("lina", "/data chenjing 内容生产量 5000")  # 刘洋's 900 now counts as history
    assert "没有收到「确认」，这个数值未保存" in env.ask("lina", "算了")
    assert entries(env, "2026-11") == before + 1
    # A usual value is saved at once, and a growth rate may be negative (the scheme says so).
    assert "已录入：陈静 · 内容生产量（图文/视频/活动）（2026-11）24篇" in env.ask("lina", "/data chenjing 内容生产量 24")
    assert "已录入" in env.ask("lina", "/data chenjing 粉丝净增长率 -3%")


def test_a_closed_month_takes_what_fills_a_gap_but_a_change_needs_calibration_or_a_reopen(
        env: BotEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed_month(env, "2026-11", tuple(u for u in EVERYONE if u != "zhangwei"))
    assert env.run_job("month_close", CLOSE_AT, mark_read=True).ran
    assert "已录入" in env.ask("lina", "/data zhangwei 内容生产量 20 2026-11")  # a gap: filling it is welcome
    refused = env.ask("lina", "/data liuyang 内容生产量 30 2026-11")
    assert "2026-11 已结账，已有的数据不能再改：要调整总分请用 /calibrate" in refused
    assert "kpibot results reopen 2026-11" in refused
    config = env.write_config_file(tmp_path)
    code, _, err = kpibot(capsys, config, "results", "reopen", "2026-11", "--by", "lina", "--reason", "更正")
    assert code == 2 and "lina 不是绩效管理员" in err
    code, out, err = kpibot(capsys, config, "results", "reopen", "2026-11", "--by", ADMIN, "--reason", "刘洋的数据录错")
    assert code == 0 and "已重新开放 2026-11" in out, err
    assert "已录入" in env.ask("lina", "/data liuyang 内容生产量 30 2026-11")
    with transaction(env.bot.sessions) as session:
        audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "results.reopen")).one()
    assert (audit.actor, audit.subject, audit.detail["reason"]) == (ADMIN, "2026-11", "刘洋的数据录错")
    assert env.run_job("publish", PUBLISH_AT, mark_read=True).ran
    assert "已发布并冻结" in env.ask("lina", "/data liuyang 内容生产量 31 2026-11")
    code, _, err = kpibot(capsys, config, "results", "reopen", "2026-11", "--by", ADMIN, "--reason", "晚了")
    assert code == 2 and "已发布并冻结，不能重新开放" in err


# -- leave --------------------------------------------------------------------------------------------------------
def test_leave_over_a_report_week_means_no_prompt_no_reminder_and_not_missing(env: BotEnv) -> None:
    assert "已登记请假" in env.chat.say("zhangwei", "/leave 11-30 12-04")  # all of week 49
    assert env.run_job("weekly_prompt", datetime(2026, 12, 4, 16, 5, tzinfo=SHANGHAI), mark_read=True).ran
    assert env.run_job("weekly_reminder", datetime(2026, 12, 7, 9, 5, tzinfo=SHANGHAI), mark_read=True).ran
    assert env.run_job("weekly_escalation", datetime(2026, 12, 7, 10, 35, tzinfo=SHANGHAI), mark_read=True).ran
    assert not any("周报" in text for text in env.chat.texts_to("zhangwei")[1:])  # only the leave confirmation
    assert any("还没有提交" in text for text in env.chat.texts_to("liuyang"))  # the others are reminded
    digest = next(text for text in env.chat.texts_to("lina") if "张伟" in text and "第49周" in text)
    assert "请假" in digest and "未提交：张伟" not in digest


# -- waivers, not appraised, provisional -------------------------------------------------------------------------
def test_waivers_not_appraised_members_and_provisional_results(env: BotEnv, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    config = env.write_config_file(tmp_path)
    present = tuple(u for u in EVERYONE if u not in ("yangfan", "sunyue"))
    for month in ("2026-10", "2026-11"):
        seed_month(env, month, present)
    # 杨帆 is on leave both months: every indicator waived, by the admin in bulk (chat and command line).
    reply = env.ask(ADMIN, "/waive 内容生产量 杨帆 2026-10..2026-11 整月请假")
    assert "已豁免「内容生产量（图文/视频/活动）」：1 名成员，2026-10、2026-11，新写入 2 项" in reply
    assert "/waive 的用法" in env.ask(ADMIN, "/waive 内容生产量 杨帆")
    assert "仅限" in env.ask("lina", "/waive 内容生产量 杨帆 2026-10 请假")
    for key in MONTHLY:
        code, out, err = kpibot(capsys, config, "data", "waive", "--indicator", key, "--members", "yangfan",
                                "--periods", "2026-10,2026-11", "--reason", "整月请假", "--by", ADMIN)
        assert code == 0, err
    assert "另有 2 项此前已豁免" in out or "新写入 2 项" in out
    code, _, err = kpibot(capsys, config, "data", "waive", "--indicator", "content_output", "--members", "yangfan",
                          "--periods", "2026-10", "--reason", "x", "--by", "lina")
    assert code == 2 and "不是绩效管理员" in err
    # 张伟's quit rate is waived (his groups were handed over): no deduction, and the result stays complete.
    assert "已豁免" in env.ask("lina", "/score 张伟 退群率 waive 社群本月移交，不适用")
    # 孙悦 has a gap in November: her result is provisional.
    with transaction(env.bot.sessions) as session:
        for month in ("2026-10", "2026-11"):
            for key, value in USUAL_VALUES.items():
                if month == "2026-11" and key == "response_time":
                    continue
                record(session, userid="sunyue", key=key, period=month, kind="value", value=Decimal(value),
                       reason="", source="import", actor="test", now=env.clock.now(), audit=False)
    assert env.run_job("month_close", period="2026-10", mark_read=True).ran
    assert env.run_job("publish", period="2026-10", mark_read=True).ran
    assert env.run_job("month_close", CLOSE_AT, mark_read=True).ran

    draft = next(text for text in env.chat.texts_to("lina") if text.startswith("2026年11月结果草稿"))
    assert "杨帆：本期不参与考核" in draft
    assert "杨帆 2026-11 本期不参与考核（没有需要考核的指标），没有总分可以校准" in env.ask("lina", "/calibrate 杨帆 90 请假")
    code, out, err = kpibot(capsys, config, "results", "export", "--period", "2026-11")
    assert code == 0, err
    rows = {row["userid"]: row for row in csv.DictReader(io.StringIO(out))}
    assert (rows["sunyue"]["provisional"], rows["sunyue"]["grade"], rows["sunyue"]["bonus"]) == ("yes", "", "")
    assert (rows["yangfan"]["total"], rows["yangfan"]["grade"], rows["yangfan"]["bonus"]) == ("", "", "")
    assert rows["zhangwei"]["provisional"] == "no" and rows["zhangwei"]["grade"]

    assert env.run_job("publish", PUBLISH_AT, mark_read=True).ran
    yangfan = next(text for text in env.chat.texts_to("yangfan") if text.startswith("2026年11月考核结果"))
    assert "本期不参与考核" in yangfan and "等级 " not in yangfan and "奖金：" not in yangfan
    summary = next(text for text in env.chat.texts_to("lina") if text.startswith("2026年11月团队考核结果"))
    assert "杨帆 本期不参与考核" in summary
    with transaction(env.bot.sessions) as session:
        stored = {r.userid: r for r in session.scalars(select(PeriodResult).where(PeriodResult.period == "2026-11"))}
        idps = [(i.userid, i.opened_for) for i in session.scalars(select(Idp))]
    zhangwei = stored["zhangwei"].data["result"]
    assert zhangwei["complete"] and not zhangwei["provisional"]
    assert all(not item["deductions"] for item in zhangwei["indicators"])
    assert stored["yangfan"].status == "published" and stored["yangfan"].data["result"]["appraised"] is False
    assert stored["sunyue"].status == "draft" and stored["sunyue"].data["result"]["provisional"] is True
    # The lowest appraised member of 李娜's team gets the IDP, never the member who was away.
    assert idps == [("zhangwei", "2026-11")]


def test_score_preview_json_carries_provisional_and_no_grade_or_bonus_for_it(
        env: BotEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = env.write_config_file(tmp_path)
    rows = [["amy", "t", key, "2026-11", value, ""] for key, value in USUAL_VALUES.items()]
    rows += [["ben", "t", key, "2026-11", value, ""] for key, value in USUAL_VALUES.items() if key != "content_output"]
    rows += [["cat", "t", key, "2026-11", "waived", ""] for key in MONTHLY]
    data = write_data_file(tmp_path / "preview.csv", rows)
    found = score_preview(capsys, config, data, "2026-11")
    assert found["amy"]["provisional"] is False and found["amy"]["grade"] and found["amy"]["bonus"] is not None
    assert found["ben"]["provisional"] is True and found["ben"]["total"] is not None
    assert (found["ben"]["grade"], found["ben"]["bonus_class"], found["ben"]["bonus"]) == (None, None, None)
    assert found["cat"]["appraised"] is False and found["cat"]["total"] is None and found["cat"]["grade"] is None


# -- a year that starts in July --------------------------------------------------------------------------------
def test_a_team_that_starts_in_july_publishes_its_year_and_a_promotion_list(env: BotEnv, tmp_path: Path,
                                                                             capsys: pytest.CaptureFixture[str]) -> None:
    with transaction(env.bot.sessions) as session:
        for index, userid in enumerate(EVERYONE):
            values: dict[tuple[str, str], Any] = {}
            for month in range(7, 13):
                for key, value in USUAL_VALUES.items():
                    values[(key, f"2026-{month:02d}")] = Decimal(value) + (index if key == "content_output" else 0)
            for quarter in ("2026-Q3", "2026-Q4"):
                values[("prospect_retention", quarter)] = Decimal(40)
            values[("cross_department_collaboration", "2026")] = Decimal(4)
            values[("culture_fit", "2026")] = Decimal(4)
            for (key, period), value in values.items():
                record(session, userid=userid, key=key, period=period, kind="value", value=value, reason="",
                       source="import", actor="test", now=env.clock.now(), audit=False)
    config = env.write_config_file(tmp_path)
    code, out, err = kpibot(capsys, config, "jobs", "run", "month_close", "--period", "2026-12", "--at",
                            "2027-01-08T10:05")
    assert code == 0, err
    code, out, err = kpibot(capsys, config, "jobs", "run", "publish", "--at", "2027-01-11T10:05")
    assert code == 0 and "发布 2026-12、2026-Q4、2026" in out, err
    with transaction(env.bot.sessions) as session:
        year = {r.userid: r for r in session.scalars(select(PeriodResult).where(PeriodResult.period == "2026"))}
        # What was queued for WeCom (the sender's delivery is tested elsewhere; here it may lag on a busy machine).
        queued = {m.idempotency_key: m.payload for m in session.scalars(select(OutboxMessage))}
    assert all(row.status == "published" and row.complete for row in year.values()), [
        (u, r.data["result"]["missing"][:3]) for u, r in year.items() if not r.complete]
    assert year["liuyang"].data["result"]["months"] == [f"2026-{m:02d}" for m in range(7, 13)]
    promotion = json.dumps(queued[f"publish:2026:promotion:{ADMIN}"], ensure_ascii=False)
    assert "晋升候选名单" in promotion
    text = json.dumps(queued["publish:2026:member:liuyang"], ensure_ascii=False)
    assert "2026年度（7-12 月，共 6 个月）考核结果 · 刘洋\\n" in text
    assert "按你实际参与考核的 6 个月计算" in text


# -- the nudge before the close ---------------------------------------------------------------------------------
def test_managers_with_something_open_are_nudged_before_the_close_and_the_others_are_not(env: BotEnv) -> None:
    november = Period.month(2026, 11)
    assert nudge_day(env.config, november).isoformat() == "2026-12-03"  # two workdays before 12-07
    assert nudge_period_of(datetime(2026, 12, 3, 10, 35, tzinfo=SHANGHAI), env.config) == "2026-11"
    assert nudge_period_of(datetime(2026, 12, 4, 10, 35, tzinfo=SHANGHAI), env.config) is None
    seed_month(env, "2026-11", tuple(u for u in EVERYONE if u != "zhangwei"))
    with transaction(env.bot.sessions) as session:
        for key in ("content_output", "group_quit_rate"):
            record(session, userid="zhangwei", key=key, period="2026-11", kind="value", value=Decimal(20),
                   reason="", source="import", actor="test", now=env.clock.now(), audit=False)
        record(session, userid="liuyang", key="work_attitude", period="2026-11", kind="value", value=WAIVED,
               reason="x", source="score", actor="lina", now=env.clock.now(), audit=False)
    result = env.run_job("close_nudge", datetime(2026, 12, 3, 10, 35, tzinfo=SHANGHAI), mark_read=True)
    assert result.ran and "1 位主管，1 名成员" in result.detail
    nudge = next(text for text in env.chat.texts_to("lina") if "将于 12-07 10:05 结账" in text)
    assert "张伟：待评分「工作态度与执行力」；缺数据「粉丝净增长率（2026-11）" in nudge
    assert "评分：/score 张伟" in nudge and "录入：/data 张伟 粉丝净增长率 数值" in nudge
    assert "刘洋" not in nudge and "陈静" not in nudge
    assert not any("结账" in text for text in env.chat.texts_to("wangqiang"))  # all done in 王强's team
    assert not any("结账" in text for text in env.chat.texts_to("zhoumin"))


# -- templates ------------------------------------------------------------------------------------------------------
TRUST_TEMPLATES: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "scoring/confirm_unusual.txt.j2": ({"member": "刘洋", "name": "内容生产量", "period": "2026-11", "value": "900",
                                        "unit": "篇", "usual": "25"}, ("填的是 900篇", "最多约 25篇", "回复「确认」")),
    "scoring/bulk_waived.txt.j2": ({"name": "退群率", "waived": 12, "unchanged": 1, "members": 2,
                                    "periods": ["2026-01", "2026-02"]},
                                   ("已豁免「退群率」：2 名成员，2026-01、2026-02，新写入 12 项（另有 1 项此前已豁免）",)),
    "results/cli_admin.txt.j2": ({"code": "reopened", "userid": "wuhao", "period": "2026-11"},
                                 ("已重新开放 2026-11", "--force")),
    "results/nudge.txt.j2": ({"manager": "李娜", "period": "2026-11", "closes": datetime(2026, 12, 7, 10, 5),
                              "items": [{"name": "张伟", "unrated": ["工作态度"],
                                         "data": [{"name": "留存率", "period": "2026-Q4", "short": "留存率"}]}]},
                             ("2026-11 将于 12-07 10:05 结账，你的团队还有 1 人没有完成",
                              "张伟：待评分「工作态度」；缺数据「留存率（2026-Q4）」", "录入：/data 张伟 留存率 数值 2026-Q4")),
    "results/nudge_detail.txt.j2": ({"period": "2026-11", "closed": False, "managers": 2, "members": 3},
                                    ("2 位主管，3 名成员",)),
}


@pytest.mark.parametrize("name", sorted(TRUST_TEMPLATES))
def test_trust_templates_render(name: str) -> None:
    assert_renders(name, *TRUST_TEMPLATES[name])


@pytest.mark.parametrize("code, text", [
    ("number.not_finite", "不是一个确定的数"), ("number.too_large", "大得不合常理"),
    ("number.too_precise", "最多保留 6 位小数"), ("number.out_of_range", "超出了这项数据可能的范围"),
])
def test_every_number_refusal_has_one_sentence_in_chat_and_in_imports(code: str, text: str) -> None:
    # scoring/_number.txt.j2 is the one place these sentences live; the chat and the import both use it.
    chat = render("scoring/error.txt.j2", code=code, p={"text": "1e999"})
    imported = render("cli/datafile_error.txt.j2", path="x.csv", errors=[
        {"line": 2, "code": "number_refused", "params": {"column": "value", "reason": code, "text": "1e999"}}])
    assert "「1e999」" in chat and text in chat and chat.endswith("未保存。")
    assert "第 2 行：数值「1e999」" in imported and text in imported


# -- numbers from WeCom's statistics --------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [-1, 1.5, "1e30", float("nan"), float("inf"), "9" * 38, True])
def test_a_count_from_wecom_that_no_day_can_have_is_refused(value: object) -> None:
    with pytest.raises(NumberError):
        wecom_count(value)


def test_a_statistics_day_with_an_impossible_figure_is_not_stored(env: BotEnv) -> None:
    assert (wecom_count(None), wecom_count("12"), wecom_decimal("87.456", high=Decimal(100))) == (0, 12, Decimal("87.46"))
    first, second = datetime(2026, 11, 20).date(), datetime(2026, 11, 21).date()
    pull = _MemberPull("zhangwei", days=[
        {"stat_time": _day_start(first), "chat_cnt": 3, "message_cnt": 10, "reply_percentage": 90},
        {"stat_time": _day_start(second), "chat_cnt": 3, "message_cnt": "1e30", "reply_percentage": 150}])
    with transaction(env.bot.sessions) as session:
        assert _store_behavior(session, [pull], first, second, env.clock.now()) == 1
        days = [row.day for row in session.scalars(select(WeComBehaviorDay))]
    assert days == [first]


def test_a_member_on_leave_for_the_whole_month_is_not_appraised_and_a_quarter_skips_that_month(env: BotEnv) -> None:
    seed_month(env, "2026-11", tuple(u for u in EVERYONE if u != "zhaolei"))
    assert "已登记请假" in env.chat.say("zhaolei", "/leave 11-27 11-30")
    with transaction(env.bot.sessions) as session:  # and the rest of November, registered earlier
        session.add(Leave(userid="zhaolei", start_date=datetime(2026, 11, 1).date(),
                          end_date=datetime(2026, 11, 26).date(), created_at=env.clock.now(), cancelled_at=None))
    assert "赵磊：本期不参与考核（请假或指标均已豁免）" in env.ask("wangqiang", "/score")
    assert env.run_job("month_close", CLOSE_AT, mark_read=True).ran
    draft = next(text for text in env.chat.texts_to("wangqiang") if text.startswith("2026年11月结果草稿"))
    assert "赵磊：本期不参与考核" in draft and "数据不全" not in draft.split("赵磊")[1].split("\n")[0]
    assert months_label(["2026-10", "2026-12"]) == "10、12" and months_label(["2026-07", "2026-08"]) == "7-8"
