"""The command line (`data import`, `jobs run month_close|publish`, `results export`), the quarter and year roll-ups
with the promotion list, the schedule of the two jobs, the [results] config, frozen results, and every results/*
template rendered with realistic variables."""
from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlalchemy import func, select

from bot.config import ConfigError
from bot.storage.db import transaction
from bot.fakes.wecom import FakeWeCom
from bot.storage.models import AuditEntry, DataEntry, PeriodResult
from bot.appraisal.results.close import CloseReport
from bot.appraisal.results.publish import PublishReport
from bot.appraisal.results.store import result_from_json, result_to_json
from bot.appraisal.results.views import period_label, result_view
from bot.jobs.results import close_period_of, publish_period_of
from bot.jobs.spec import next_effective_fire_time
from bot.jobs.table import job_by_id
from bot.templates import render
from scoring import (WAIVED, Calibration, MemberData, Period, apply_calibrations, compute_results, parse_scheme,
                     preset_text)
from tests.harness import (DATA_FILE_HEADER, SHANGHAI, BotEnv, EnvFactory, assert_renders, kpibot, make_config,
                           score_preview, write_data_file)

SAMPLE = Path(__file__).resolve().parent.parent / "docs" / "sample-data.csv"
SAMPLE_MEMBERS = ("zhangwei", "lina", "wangfang", "liuyang", "chenjing", "zhaolei")


@pytest.fixture
def env(make_env: EnvFactory, fake_wecom: FakeWeCom) -> BotEnv:
    fake_wecom.add_user("wangfang", "王芳", departments=(3,), main_department=3, direct_leader=("lina",))
    return make_env()


def entries(env: BotEnv) -> int:
    with transaction(env.bot.sessions) as session:
        return session.scalar(select(func.count()).select_from(DataEntry)) or 0


# -- data import ------------------------------------------------------------------------------------------------
def test_a_file_with_bad_rows_writes_nothing_and_reports_each_row_with_its_line(
        env: BotEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = env.write_config_file(tmp_path)
    bad = write_data_file(tmp_path / "bad.csv", [
        ["zhangwei", "", "content_output", "2026-11", "22", "25"],         # line 2: fine
        ["王小明", "", "content_output", "2026-11", "22", ""],               # 3: nobody of that name
        ["liuyang", "", "sales", "2026-11", "22", ""],                       # 4: not in the scheme
        ["chenjing", "", "content_output", "2026-Q4", "22", ""],            # 5: a monthly indicator by quarter
        ["yangfan", "", "work_attitude", "2026-11", "6", ""],               # 6: a rating out of range
        ["张伟", "", "event_participation_rate", "2026-11", "150", ""],     # 7: a percentage over 100
        ["liuyang", "", "content_output", "2026-11", "-5", ""],             # 8: a negative count
        ["chenjing", "", "content_output", "2026-11", "20", "0"],           # 9: a target of 0 for a ratio
        ["张伟", "", "group_quit_rate", "2026-11", "waived", ""],            # 10: a companion metric may be waived
    ])
    code, out, err = kpibot(capsys, config, "data", "import", str(bad))
    assert code == 2 and out == ""
    assert "有 7 行不能导入，未写入任何数据" in err
    for line, text in ((3, "没有成员「王小明」"), (4, "「sales」不是 liuyang 所用方案（执行层考核方案）的指标"),
                       (5, "content_output 按月度考核，期间 2026-Q4 不适用"), (6, "work_attitude 是 1-5 的评分，「6」无效"),
                       (7, "「活动参与率（评论/签到/分享）」是百分比，只能在 0 到 100 之间"),
                       (8, "「内容生产量（图文/视频/活动）」是数量或金额，不能为负数（填的是 -5篇）"),
                       (9, "content_output 按目标完成率计分，目标值必须大于 0")):
        assert f"第 {line} 行：{text}" in err
    assert "第 2 行" not in err and "第 10 行" not in err and entries(env) == 0

    unreadable = write_data_file(tmp_path / "unreadable.csv", [
        ["zhangwei", "", "content_output", "2026-11", "很多", ""],
        ["zhangwei", "", "content_output", "2026-13", "3", ""],
        ["liuyang", "", "content_output", "2026-11", "1e999", ""],
        ["chenjing", "", "content_output", "2026-11", "3", "nan"]])
    code, _, err = kpibot(capsys, config, "data", "import", str(unreadable))
    assert code == 2 and "第 2 行：数值“很多”不是数字" in err and "第 3 行：期间“2026-13”无效" in err
    assert "第 4 行：数值「1e999」大得不合常理（超过 12 位整数）" in err
    assert "第 5 行：目标值「nan」不是一个确定的数" in err
    assert entries(env) == 0


def test_an_xlsx_file_is_imported_with_percent_cells_and_names(env: BotEnv, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    config = env.write_config_file(tmp_path)
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(DATA_FILE_HEADER)
    sheet.append(["张伟", "", "net_follower_growth_rate", "2026-11", 0.046, None])
    sheet["E2"].number_format = "0.0%"  # 4.6% as Excel stores it
    sheet.append(["liuyang", "", "content_output", datetime(2026, 11, 1), 22, 25])
    sheet.append(["chenjing", "", "response_time", "2026-11", "waived", None])
    path = tmp_path / "data.xlsx"
    workbook.save(path)
    code, out, err = kpibot(capsys, config, "data", "import", str(path), "--dry-run")
    assert code == 0 and "3 行全部通过校验" in out and entries(env) == 0
    code, out, err = kpibot(capsys, config, "data", "import", str(path), "--by", "zhoumin")
    assert code == 0, err
    with transaction(env.bot.sessions) as session:
        rows = {(e.userid, e.key, e.kind): (e.value, e.waived, e.entered_by, e.source)
                for e in session.scalars(select(DataEntry))}
        audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "data.import")).one()
    assert rows == {("zhangwei", "net_follower_growth_rate", "value"): ("4.6", False, "zhoumin", "import"),
                    ("liuyang", "content_output", "value"): ("22", False, "zhoumin", "import"),
                    ("liuyang", "content_output", "target"): ("25", False, "zhoumin", "import"),
                    ("chenjing", "response_time", "value"): (None, True, "zhoumin", "import")}
    assert audit.actor == "zhoumin" and audit.detail["rows"] == 3


# -- the jobs from the command line, roll-ups, export ------------------------------------------------------------
def test_december_closes_and_publishes_the_month_the_quarter_and_the_year_from_the_command_line(
        env: BotEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = env.write_config_file(tmp_path)
    code, out, err = kpibot(capsys, config, "data", "import", str(SAMPLE))
    assert code == 0, err
    code, _, err = kpibot(capsys, config, "jobs", "run", "month_close", "--period", "2026-12")
    assert code == 1 and "2026-12 还没有结束" in err  # the clock says 2026-11-27: December is not over
    code, out, err = kpibot(capsys, config, "jobs", "run", "month_close", "--period", "2026-12",
                            "--at", "2027-01-08T10:05")
    assert code == 0, err
    assert "2026-12、2026-Q4、2026" in out and "缺数据" in out
    code, out, err = kpibot(capsys, config, "jobs", "run", "publish", "--at", "2027-01-11T10:05")
    assert code == 0, err  # no --period: the job's own calendar picks December on the 7th workday of January
    assert "发布 2026-12、2026-Q4、2026" in out
    code, out, _ = kpibot(capsys, config, "jobs", "run", "publish", "--at", "2027-01-11T10:05")
    assert code == 0 and "已经运行过" in out
    # The command-line runs send with the wall clock and leave what is past zhoumin's per-minute limit (the
    # admin gets 30 messages here) queued for the running bot: let its clock reach their minute.
    env.clock.set(datetime.now(SHANGHAI) + timedelta(minutes=2))
    env.bot.sender.wake()
    promotion = env.fake.wait_for(lambda m: m.touser == "zhoumin" and "晋升候选名单" in m.payload.get("content", ""))
    with transaction(env.bot.sessions) as session:
        stored = {(r.userid, r.period): r for r in session.scalars(select(PeriodResult).where(
            PeriodResult.userid.in_(SAMPLE_MEMBERS)))}
    for period in ("2026-12", "2026-Q4", "2026"):
        expected = score_preview(capsys, config, SAMPLE, period)
        for userid in SAMPLE_MEMBERS:
            row = stored[(userid, period)]
            assert row.status == "published" and row.total == expected[userid]["total"], (userid, period)
    year = score_preview(capsys, config, SAMPLE, "2026")
    best = max(SAMPLE_MEMBERS, key=lambda u: Decimal(year[u]["total"]))
    assert f"1. {stored[(best, '2026')].data['name']} · {year[best]['total']} 分" in promotion[0].payload["content"]
    for label in ("2026年12月", "2026年第4季度", "2026年度"):
        env.fake.wait_for(lambda m, label=label: m.touser == "zhangwei"
                          and m.payload.get("content", "").startswith(f"{label}考核结果 · 张伟"))

    code, out, err = kpibot(capsys, config, "results", "export", "--period", "2026")
    assert code == 0, err
    table = list(csv.DictReader(io.StringIO(out)))
    assert {row["userid"]: row["total"] for row in table if row["status"] == "published"} == \
        {u: year[u]["total"] for u in SAMPLE_MEMBERS}
    assert "score:cross_department_collaboration" in table[0]
    target = tmp_path / "results.xlsx"
    code, out, err = kpibot(capsys, config, "results", "export", "--period", "2026-Q4", "--format", "xlsx",
                            "--output", str(target))
    assert code == 0 and f"到 {target}" in out
    sheet = openpyxl.load_workbook(target).active
    header = [cell.value for cell in sheet[1]]
    totals = {row[0]: row[header.index("total")] for row in sheet.iter_rows(min_row=2, values_only=True)}
    quarter = score_preview(capsys, config, SAMPLE, "2026-Q4")
    assert all(totals[u] == float(quarter[u]["total"]) for u in SAMPLE_MEMBERS)
    code, _, err = kpibot(capsys, config, "results", "export", "--period", "2025-01")
    assert code == 1 and "没有 2025-01 的结果" in err
    code, _, err = kpibot(capsys, config, "results", "export", "--period", "2025-13")
    assert code == 2 and "无效的期间" in err


def test_importing_into_a_published_period_is_refused(env: BotEnv, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    config = env.write_config_file(tmp_path)
    assert kpibot(capsys, config, "data", "import", str(SAMPLE))[0] == 0
    assert kpibot(capsys, config, "jobs", "run", "publish", "--period", "2026-10")[0] == 0
    before = entries(env)
    late = write_data_file(tmp_path / "late.csv", [["zhangwei", "", "content_output", "2026-10", "30", ""]])
    code, _, err = kpibot(capsys, config, "data", "import", str(late))
    assert code == 2 and "第 2 行：2026-10 的结果已发布并冻结" in err and entries(env) == before


# -- schedule and config --------------------------------------------------------------------------------------------
def test_the_close_and_the_publication_fall_on_the_configured_workdays() -> None:
    config = make_config("sqlite://", "http://127.0.0.1:9/cgi-bin/")
    after = datetime(2026, 12, 1, 0, 0, tzinfo=SHANGHAI)
    assert next_effective_fire_time(job_by_id("month_close"), config, after) == datetime(2026, 12, 7, 10, 5,
                                                                                         tzinfo=SHANGHAI)
    assert next_effective_fire_time(job_by_id("publish"), config, after) == datetime(2026, 12, 9, 10, 5,
                                                                                     tzinfo=SHANGHAI)
    # October 2026 has the National Day holiday: its 5th workday is the 12th (the 10th is a make-up Saturday).
    october = next_effective_fire_time(job_by_id("month_close"), config, datetime(2026, 10, 1, tzinfo=SHANGHAI))
    assert october is not None and close_period_of(october, config) == "2026-09"
    assert close_period_of(datetime(2026, 12, 8, 10, 5, tzinfo=SHANGHAI), config) is None
    assert publish_period_of(datetime(2026, 12, 9, 10, 5, tzinfo=SHANGHAI), config) == "2026-11"
    later = make_config("sqlite://", "http://127.0.0.1:9/cgi-bin/", results={"close_on_workday": 3,
                                                                              "publish_on_workday": 4})
    assert close_period_of(datetime(2026, 12, 3, 10, 5, tzinfo=SHANGHAI), later) == "2026-11"


def test_the_results_config_is_validated_with_every_problem_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        make_config("sqlite://", "http://127.0.0.1:9/cgi-bin/", results={
            "close_on_workday": 5, "publish_on_workday": 4, "pass_line": 150, "close_at": "25:00", "surprise": 1})
    text = str(caught.value)
    for fragment in ("results.publish_on_workday: 发布应在结账之后", "results.pass_line: 应在 0..120", "results.close_at",
                     "results.surprise: 未知配置项"):
        assert fragment in text


# -- frozen results and the results/* templates ---------------------------------------------------------------------
SCHEME = parse_scheme(preset_text("seed-executor"))


def _results() -> Any:
    values = {("net_follower_growth_rate", "2026-11"): Decimal("3.1"), ("group_quit_rate", "2026-11"): Decimal("16.2"),
              ("group_speaking_rate", "2026-11"): Decimal("21"), ("event_participation_rate", "2026-11"): Decimal(25),
              ("content_output", "2026-11"): Decimal(15), ("work_attitude", "2026-11"): Decimal(2)}
    members = [MemberData("zhangwei", "lina", "2", {**values, ("response_time", "2026-11"): Decimal(40)}),
               MemberData("chenjing", "lina", "2", {**values, ("response_time", "2026-11"): WAIVED,
                                                    ("work_attitude", "2026-11"): Decimal(4)})]
    results = compute_results(SCHEME, "2026-11", members)
    return apply_calibrations(SCHEME, results, [Calibration("chenjing", Decimal(90), "复核上调", "lina")])


def test_a_frozen_result_reads_back_exactly() -> None:
    for result in _results().results:
        assert result_from_json(json.loads(json.dumps(result_to_json(result)))) == result


def frozen(userid: str) -> dict[str, Any]:
    result = next(r for r in _results().results if r.member == userid)
    return {"result": result_to_json(result), "scheme": {"key": SCHEME.key, "name": SCHEME.name},
            "name": {"zhangwei": "张伟", "chenjing": "陈静"}[userid], "team_name": "李娜", "department_name": "社群运营部",
            "team_size": 2, "names": {**{m.key: m.name for m in SCHEME.metrics}, **{i.key: i.name for i in SCHEME.indicators}},
            "units": {**{m.key: m.unit for m in SCHEME.metrics}, **{i.key: i.unit for i in SCHEME.indicators}},
            "ratings": ["work_attitude"],
            "comments": [{"key": "work_attitude", "period": "2026-11", "by": "lina", "reason": "两次复盘延误",
                          "rating": "2"}],
            "suggestions": [{"kind": "improve", "name": "粉丝净增长率", "score": "42.00"},
                            {"kind": "project", "name": "工作态度与执行力", "score": "40.00",
                             "threshold": "60"},
                            {"kind": "idp", "name": "", "score": ""}]}


NOW = datetime(2026, 12, 9, 10, 5, tzinfo=SHANGHAI)
DRAFT_ROW = {"userid": "zhangwei", "name": "张伟", "total": "64.12", "grade": "C", "complete": True,
             "calibrated": False, "rank": 6, "missing": [], "appraised": True, "provisional": False, "held": False,
             "jumps": [{"name": "退群率", "before": "6", "now": "16.2", "percent": "170"}]}
INCOMPLETE_ROW = {**DRAFT_ROW, "name": "王强", "complete": False, "provisional": True, "rank": None, "total": "0.00",
                  "missing": ["粉丝净增长率（2026-11）"], "jumps": []}
SUMMARY_ROW = {"userid": "zhangwei", "name": "张伟", "total": "64.12", "original_total": "64.12", "grade": "C",
               "rank": 2, "calibrated": False, "bonus": "0.00", "shortfalls": ["工作态度与执行力"], "idp": True,
               "threshold": "60", "appraised": True}
QUALITY = {"total": 2, "open": 2, "held": 11, "more": 1,
           "kinds": [{"kind": "source_outage", "count": 1, "accepted": 0, "holds": True},
                     {"kind": "jump_own", "count": 1, "accepted": 0, "holds": False}],
           "worst": ["张伟：退群率 由上月 6 变为 16.2（170%），请核对"]}
IDP = {"id": 1, "member": "张伟", "manager": "李娜", "opened_for": "2026-11", "periods": ["2026-10", "2026-11"],
       "totals": ["68.21", "64.12"], "status": "open",
       "steps": [{"kind": "training", "indicator": "粉丝净增长率", "status": "open"},
                 {"kind": "mentorship", "indicator": "", "status": "open"},
                 {"kind": "review", "indicator": "", "status": "done"}]}
RESULT_TEMPLATES: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "results/member_result.md.j2": ({"r": result_view(frozen("zhangwei"))},
                                    ("**2026年11月考核结果 · 张伟**", "团队第 2/2 名", "扣 20 分</font>：退群率 16.2%，高于 15%",
                                     "评分 2/5", "工作态度与执行力（2 分）：两次复盘延误", "重点提升「粉丝净增长率」",
                                     "建议参与一个跨部门项目", "发送 /idp 查看", "本月未达到奖金档")),
    "results/result_view.md.j2": ({"r": result_view(frozen("chenjing")),
                                   "history": [{"period": "2026-10", "total": "99.38", "grade": "S", "trend": ""},
                                               {"period": "2026-11", "total": "90.00", "grade": "A", "trend": "down"}]},
                                  ("总分经主管校准（原始", "复核上调", "问题响应时效：不适用（已豁免）", "一类，1200.00 元",
                                   "- 2026-10：99.38 S\n- 2026-11：90.00 A ↓")),
    "results/team_summary.md.j2": ({"manager": "李娜", "period": "2026-11", "period_label": "2026年11月",
                                    "rows": [{**SUMMARY_ROW, "userid": "chenjing", "name": "陈静", "total": "90.00",
                                              "original_total": "97.39", "grade": "A", "rank": 1, "calibrated": True,
                                              "bonus": "1200.00", "shortfalls": [], "idp": False}, SUMMARY_ROW],
                                    "grades": [("A", 1), ("C", 1)],
                                    "leniency": {"index": "3.59", "team_mean": "93.59", "department_mean": "90.00"},
                                    "held_back": ["马晓"], "doubtful": ["赵磊"], "below": [], "pass_line": 60},
                                   ("待补数据 1 人：马晓", "数据存疑暂不发布 1 人：赵磊", "校准前：团队均分 93.59，部门均分 90.00", "1. 陈静 90.00 A（校准，原 97.39） · 奖金 1200.00", "2. 张伟 64.12 C",
                                    "**等级分布**：A 1 人 · C 1 人", "宽严指数**：3.59", "**低于 60 分**：无",
                                    "张伟 的行为指标「工作态度与执行力」低于 60 分", "张伟 连续两个月位于团队末位")),
    "results/admin_overview.md.j2": ({"admin": "周敏", "period": "2026-11", "period_label": "2026年11月",
                                      "published": 6, "held_back": 7, "doubtful": 0, "quality": QUALITY,
                                      "departments": [{"name": "社群运营部", "members": 6, "mean": "90.00",
                                                       "original_mean": "89.50", "calibrated": 1,
                                                       "schemes": ["种子期执行者"],
                                                       "grades": [("S", 3), ("A", 2), ("C", 1)],
                                                       "deviations": [{"grade": "S", "percent": "50.00",
                                                                       "status": "above", "limit": "10",
                                                                       "scheme": "种子期执行者", "members": 6}],
                                                       "teams": [{"manager": "李娜", "members": 6, "mean": "90.00",
                                                                  "index": "0.00"}],
                                                       "held_back": ["王强"], "idps": ["张伟"], "shortfalls": 1}]},
                                     ("已发布 6 人", "待补数据 7 人", "均分 90.00（校准后，1 人经校准）· 校准前 89.50",
                                      "等级分布（校准后，各方案合计）：S 3 · A 2 · C 1",
                                      "方案「种子期执行者」（6 人）：S 占 50.00%，高于该方案指导上限 10%",
                                      "部门均分 89.50）：李娜 0.00", "新开 IDP：张伟", "**数据质量**：2 条（疑似同步中断 1",
                                      "/quality accept 2026-11",
                                      "kpibot results export --period 2026-11")),
    "quality/_block.md.j2": ({"quality": QUALITY, "period": "2026-11"},
                             ("**数据质量**：2 条（疑似同步中断 1 · 与上月相比波动过大 1）", "11 人的结果因此暂不发布",
                              "- 张伟：退群率 由上月 6 变为 16.2（170%），请核对", "- 另有 1 条", "/quality 2026-11")),
    "results/promotion.md.j2": ({"admin": "周敏", "period": "2026", "period_label": "2026年度",
                                 "candidates": [{"name": "陈静", "department": "社群运营部", "total": "98.12", "rank": 1,
                                                 "team": "李娜"}]},
                                ("**2026年度晋升候选名单**", "1. 陈静 · 98.12 分 · 社群运营部 · 李娜团队")),
    "results/close_manager.md.j2": ({"manager": "李娜", "period": "2026-11", "period_label": "2026年11月",
                                     "rows": [DRAFT_ROW, INCOMPLETE_ROW, {**DRAFT_ROW, "name": "赵磊", "held": True}],
                                     "publish_at": NOW, "pass_line": 60},
                                    ("将于 12-09 10:05 发布", "张伟：64.12 分 C · 第 6 名", "退群率 由 6 变为 16.2（170%）",
                                     "王强：暂定 0.00 分 · <font color=\"warning\">数据不全，暂不发布",
                                     "缺 1 项：粉丝净增长率（2026-11）", "赵磊：64.12 分 C · 第 6 名 · <font color=\"warning\">数据存疑")),
    "results/close_admin.md.j2": ({"admin": "周敏", "period": "2026-11", "period_label": "2026年11月", "members": 13,
                                   "complete": 12, "incomplete": [INCOMPLETE_ROW], "more": 3, "quality": QUALITY,
                                   "problems": [{"code": "data.no_target", "params": {"key": "content_output",
                                                                                     "count": "2",
                                                                                     "first_member": "zhangwei"}}],
                                   "ignored": ["杨帆"], "publish_at": NOW, "no_contact_permission": ["孙悦"]},
                                  ("共 13 人：完整 12 人", "缺数据 4 人", "数据存疑 11 人", "王强：缺 1 项（粉丝净增长率（2026-11））",
                                   "另有 3 人", "kpibot results export --period 2026-11",
                                   "**数据质量**：2 条（疑似同步中断 1 · 与上月相比波动过大 1）",
                                   "11 人的结果因此暂不发布", "- 张伟：退群率 由上月 6 变为 16.2（170%），请核对", "另有 1 条",
                                   "kpibot results quality --period 2026-11", "content_output 缺少目标值：2 处",
                                   "校准因数据变化暂不生效：杨帆", "没有客户联系权限（企业微信 84074），客户联系统计已跳过：孙悦")),
    "results/idp_opened.txt.j2": ({"idp": IDP, "audience": "manager"},
                                  ("李娜，张伟 在 2026-10 和 2026-11 连续两个月位于团队末位（总分 68.21、64.12）",
                                   "1. 培训：参加一次与「粉丝净增长率」相关的培训", "3. 复盘：一个月后与主管复盘改进情况，决定是否结束计划（已完成）")),
    "results/idp_view.md.j2": ({"name": "李娜", "own": [], "team": [IDP]},
                               ("张伟（2026-11 开启，主管 李娜）", "2. 辅导：由主管指定一位导师")),
    "results/team_view.md.j2": ({"viewer": "周敏", "period": "2026-11", "period_label": "2026年11月", "status": "closed",
                                 "rows": [{**DRAFT_ROW, "team_name": "李娜", "published": False},
                                          {**INCOMPLETE_ROW, "team_name": "王强", "published": False}],
                                 "multiple_teams": True, "publish_at": NOW, "close_at": None, "more": 1900},
                                ("（草稿，12-09 10:05 发布）", "**李娜的团队**", "6. 张伟 64.12 C",
                                 "王强 暂定 0.00 <font color=\"warning\">缺：粉丝净增长率（2026-11）",
                                 "另有 1900 人未列出")),
    "results/view_error.txt.j2": ({"code": "own_only", "name": "张伟", "text": "刘洋", "manager": False, "period": "",
                                   "publish_at": None, "publish_workday": 7},
                                  ("张伟，/result 只能查看你自己的结果，不能查看「刘洋」的。",)),
    "results/error.txt.j2": ({"code": "calibrate.incomplete", "p": {"name": "张伟", "missing": ["粉丝净增长率（2026-11）"]}},
                             ("张伟 的结果还缺数据（粉丝净增长率（2026-11））",)),
    "results/job_detail.txt.j2": ({"job": "publish", "report": PublishReport(["2026-11"], 6, 0, 7, 1, 6, 3, 2)},
                                  ("发布 2026-11：新发布 6 人", "待补数据 5 人，数据存疑暂不发布 2 人，开启 IDP 1 个")),
    "results/progress.txt.j2": ({"label": "发布 2026-11", "stage": "publish", "done": 200, "total": 2001},
                                ("发布 2026-11：发布结果 200/2001",)),
    "results/cli_import.txt.j2": ({"path": "nov.csv", "rows": 42, "dry_run": False, "members": 6,
                                   "periods": ["2026-11"]}, ("已导入 nov.csv：42 行（6 名成员，期间 2026-11）",)),
    "results/cli_import_error.txt.j2": ({"path": "nov.csv", "errors": [{"line": 3, "code": "member_ambiguous",
                                                                        "params": {"member": "张伟",
                                                                                   "userids": "zhangwei、zhangwei2"}}]},
                                        ("第 3 行：有多位成员叫「张伟」（zhangwei、zhangwei2）",)),
    "results/cli_export.txt.j2": ({"code": "done", "period": "2026-11", "rows": 13, "path": "r.xlsx"},
                                  ("已导出 2026-11 的 13 条结果到 r.xlsx",)),
    "results/_period.txt.j2": ({"kind": "quarter", "year": 2026, "index": 4}, ("2026年第4季度",)),
}


@pytest.mark.parametrize("name", sorted(RESULT_TEMPLATES))
def test_results_templates_render_with_realistic_variables(name: str) -> None:
    assert_renders(name, *RESULT_TEMPLATES[name])


def test_every_results_error_and_view_error_has_its_sentence() -> None:
    """Including the macros of results/_macros.j2, which the templates above use."""
    for code, params in (("period.invalid", {"period": "x"}), ("period.not_month", {"period": "2026-Q4"}),
                         ("period.not_over", {"period": "2026-12"}),
                         ("calibrate.not_closed", {"period": "2026-11", "close_at": NOW}),
                         ("calibrate.published", {"period": "2026-11"}), ("calibrate.reason_missing", {}),
                         ("calibrate.out_of_range", {"total": "130", "high": "120"}),
                         ("calibrate.not_appraised", {"name": "杨帆", "period": "2026-11"})):
        assert code not in render("results/error.txt.j2", code=code, p=params)
    for code in ("none_published", "not_published", "held_back", "period_invalid"):
        text = render("results/view_error.txt.j2", code=code, name="张伟", text="x", manager=True, period="2026-11",
                      publish_at=NOW, publish_workday=7)
        assert code not in text and "张伟" in text or "期间" in text
    close = render("results/job_detail.txt.j2", job="close", report=CloseReport(["2026-11"], 13, 12, 1, 2, 3, [], 4, 2))
    assert close.startswith("结账 2026-11：13 人") and "数据质量问题 4 条（2 人的结果因此暂不发布）" in close
    assert period_label(Period.parse("2026")) == "2026年度" and period_label(Period.parse("2026-11")) == "2026年11月"
