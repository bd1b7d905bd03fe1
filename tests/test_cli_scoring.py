"""`kpibot scheme check` and `kpibot score preview` end to end through bot.cli.main.main, plus their templates."""
from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

from bot.templates import render
from scoring import preset_names
from tests.harness import run_cli

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = str(ROOT / "docs" / "sample-data.csv")
TWO_DECIMALS = re.compile(r"^-?\d+\.\d{2}$")


# --- scheme check --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", preset_names())
def test_scheme_check_passes_every_preset(capsys, name: str) -> None:
    code, out, _ = run_cli(capsys, "scheme", "check", name)
    assert code == 0
    assert f"方案检查：预设 {name}" in out and "没有发现问题。" in out and "结论：方案可以使用。" in out
    assert "| 指标 | 名称 | 维度 |" in out


def test_scheme_check_lists_indicators_with_weights_rules_and_guardrails(capsys) -> None:
    _, out, _ = run_cli(capsys, "scheme", "check", "seed-executor")
    assert "| net_follower_growth_rate | 粉丝净增长率 | 绩效 | 用户增长 | 15% | 15-20% | 月度 | 越高越好 | 比率（封顶 120） | 5% |" in out
    assert "group_quit_rate > 15 扣 20 分；group_speaking_rate < 10 扣 20 分" in out
    assert "| culture_fit | 公司文化契合度 | 行为 | 行为规范 | 10% | 10% | 年度 | 越高越好 | 评级 |" in out
    assert "分段（5→100 15→90 30→75 60→50 120→0）" in out


BROKEN = """
[scheme]
key = "broken"
name = "坏方案"

[[indicators]]
key = "a"
name = "甲"
dimension = "performance"
weight = 90
weight_range = [10, 20]
cycle = "month"
rule = { type = "bands", points = [[10, 100], [5, 0]] }
[[indicators.guardrails]]
metric = "ghost"
op = ">"
threshold = 1
deduct = 5

[[indicators]]
key = "b"
name = "乙"
dimension = "behavior"
weight = 5
cycle = "year"
rule = { type = "rating" }
"""


def test_scheme_check_reports_every_problem_and_exits_1(capsys, tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text(BROKEN, encoding="utf-8")
    code, out, _ = run_cli(capsys, "scheme", "check", str(path))
    assert code == 1
    assert "问题（错误 7 项，提醒 2 项）" in out
    for line in [
        "错误 [indicators]：权重合计为 95，应为 100",
        "错误 [indicators]：绩效指标权重合计为 90，应在 70-80 之间",
        "错误 [indicators]：行为指标权重合计为 5，应在 20-30 之间",
        "提醒 [indicators]：绩效指标有 1 项，建议聚焦 3-5 项，避免权重稀释",
        "提醒 [indicators[0].weight]：权重 90 超出指标库建议范围 10-20",
        "错误 [indicators[0].rule.points]：分段规则各点的取值必须严格递增",
        "错误 [indicators[0].rule.points]：分段规则的得分走向与指标方向（越高越好）不一致",
        "错误 [indicators[0].guardrails[0].metric]：护栏引用了未声明的指标 ghost（请在 [[metrics]] 中声明）",
        "错误 [indicators[1].anchors]：评级指标缺少等级 1, 2, 3, 4, 5 的行为锚定描述",
        "结论：方案有错误，不能使用。",
    ]:
        assert line in out


def test_scheme_check_on_text_that_is_not_toml(capsys, tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[scheme\nkey = 1\n", encoding="utf-8")
    code, out, _ = run_cli(capsys, "scheme", "check", str(path))
    assert code == 1 and "不是有效的 TOML（第 1 行" in out


def test_scheme_check_unknown_file_or_preset_is_one_line_exit_2(capsys) -> None:
    code, out, err = run_cli(capsys, "scheme", "check", "no/such/file.toml")
    assert code == 2 and out == "" and err == "kpibot: 找不到方案文件 no/such/file.toml\n"
    code, _, err = run_cli(capsys, "scheme", "check", "seed-director")
    assert code == 2 and err.startswith("kpibot: 没有名为“seed-director”的预设方案")
    assert "seed-executor" in err and err.count("\n") == 1


# --- score preview -------------------------------------------------------------------------------------


def preview(capsys, period: str) -> dict:
    code, out, err = run_cli(capsys, "score", "preview", "--scheme", "seed-executor", "--data", SAMPLE,
                             "--period", period, "--format", "json")
    assert code == 0, err
    return json.loads(out)


def assert_contract_shape(document: dict) -> None:
    assert set(document) >= {"period", "results", "problems"}
    for result in document["results"]:
        assert set(result) >= {"member", "team", "total", "grade", "bonus_class", "bonus", "complete", "missing",
                               "rank_in_team", "dimensions", "indicators"}
        assert TWO_DECIMALS.match(result["total"])
        assert set(result["dimensions"]) == {"performance", "behavior"}
        assert all(TWO_DECIMALS.match(value) for value in result["dimensions"].values())
        assert result["bonus_class"] is None or isinstance(result["bonus_class"], int)
        for item in result["indicators"]:
            assert set(item) >= {"key", "value", "target", "score", "weight", "deductions"}
            assert TWO_DECIMALS.match(item["weight"])
            assert item["score"] is None or TWO_DECIMALS.match(item["score"])


def test_month_preview_json_on_the_sample(capsys) -> None:
    document = preview(capsys, "2026-11")
    assert_contract_shape(document)
    assert document["period"] == "2026-11" and document["problems"] == []
    results = {r["member"]: r for r in document["results"]}
    assert len(results) == 6 and all(r["complete"] and r["missing"] == [] for r in results.values())
    zhaolei = results["zhaolei"]
    # growth 3.7/5 = 74 − 20 (quit rate 18.5 > 15) = 54; participation 22/30 = 73.33; content 15/20 = 75;
    # response 33.3 min: 75 + (50 − 75) × 3.3/30 = 72.25; attitude 2 × 20 = 40.
    # (15×54 + 20×73.33 + 15×75 + 10×72.25 + 10×40) / 70 = 4524.1 / 70 = 64.63 → C, no bonus, last of 6
    scores = {i["key"]: i["score"] for i in zhaolei["indicators"]}
    assert scores == {"net_follower_growth_rate": "54.00", "event_participation_rate": "73.33",
                      "content_output": "75.00", "response_time": "72.25", "work_attitude": "40.00"}
    growth = zhaolei["indicators"][0]
    assert growth["deductions"] == [{"metric": "group_quit_rate", "period": "2026-11", "value": "18.50", "op": ">",
                                     "threshold": "15.00", "points": "20.00"}]
    assert (zhaolei["total"], zhaolei["grade"], zhaolei["bonus_class"], zhaolei["bonus"], zhaolei["rank_in_team"]) == (
        "64.63", "C", None, "0.00", 6)
    lina = results["lina"]
    # response_time waived: (15×98 + 20×94.67 + 15×90 + 10×60) / 60 = 5313.4 / 60 = 88.56 → A, class 1, 1200
    assert (lina["total"], lina["grade"], lina["bonus_class"], lina["bonus"]) == ("88.56", "A", 1, "1200.00")
    weights = {i["key"]: (i["status"], i["weight"]) for i in lina["indicators"]}
    assert weights["response_time"] == ("waived", "0.00")
    # 15/60, 20/60, 15/60, 10/60 → 25.00, 33.33, 25.00, 16.67 (largest remainder: exactly 100.00)
    assert [weights[k][1] for k in ("net_follower_growth_rate", "event_participation_rate", "content_output",
                                    "work_attitude")] == ["25.00", "33.33", "25.00", "16.67"]


@pytest.mark.parametrize("period", ["2026-Q4", "2026"])
def test_quarter_and_year_preview_json_on_the_sample(capsys, period: str) -> None:
    document = preview(capsys, period)
    assert_contract_shape(document)
    assert document["period"] == period and document["problems"] == []
    results = document["results"]
    assert all(r["complete"] for r in results) and all(r["bonus"] is None and r["bonus_class"] is None
                                                       for r in results)
    assert sorted(r["rank_in_team"] for r in results) == [1, 2, 3, 4, 5, 6]
    keys = {i["key"] for i in results[0]["indicators"]}
    assert "prospect_retention" in keys
    assert ("culture_fit" in keys) == (period == "2026")


def test_preview_table_format(capsys) -> None:
    code, out, _ = run_cli(capsys, "score", "preview", "--scheme", "seed-executor", "--data", SAMPLE,
                           "--period", "2026-11")
    assert code == 0
    assert "执行层考核方案（seed-executor） · 期间 2026-11 · 6 人（预览，未保存）" in out
    assert "| zhaolei | community-a | 64.63 |" in out and "| C | - | 0.00 | 6 | 6 | 是 |" in out
    assert "粉丝净增长率 54.00（2026-11 group_quit_rate 18.50 > 15.00，扣 20.00 分）" in out
    assert "问题响应时效 -（豁免）" in out


def test_incomplete_results_and_data_problems_in_the_preview(capsys, tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("member,team,indicator,period,value,target\n"
                    "amy,t,content_output,2026-11,20,\n"
                    "amy,t,mystery,2026-11,1,\n", encoding="utf-8")
    code, out, _ = run_cli(capsys, "score", "preview", "--scheme", "seed-executor", "--data", str(path),
                           "--period", "2026-11", "--format", "json")
    document = json.loads(out)
    (amy,) = document["results"]
    assert code == 0 and amy["complete"] is False and amy["rank_in_team"] is None
    assert "net_follower_growth_rate@2026-11" in amy["missing"] and amy["total"] == "100.00"
    assert document["problems"] == [{"severity": "warning", "code": "data.unknown_key", "path": "data.mystery",
                                     "params": {"key": "mystery", "members": "1", "first_member": "amy"}}]
    code, out, _ = run_cli(capsys, "score", "preview", "--scheme", "seed-executor", "--data", str(path),
                           "--period", "2026-11")
    assert "缺少数据（暂定总分，补齐或豁免后才能发布）：net_follower_growth_rate@2026-11" in out
    assert "数据中有方案未定义的指标 mystery（1 人，如 amy），已忽略" in out


def test_a_bad_data_file_lists_every_bad_row_and_computes_nothing(capsys, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("member,team,indicator,period,value,target\n"
                    "amy,t,content_output,2026-11,20,\n"
                    "amy,t,content_output,2026-14,20,\n"
                    "bob,t,response_time,2026-11,fast,\n", encoding="utf-8")
    code, out, err = run_cli(capsys, "score", "preview", "--scheme", "seed-executor", "--data", str(path),
                             "--period", "2026-11", "--format", "json")
    assert code == 2 and out == ""
    assert f"kpibot: 数据文件 {path} 有 2 处问题，未做任何计算：" in err
    assert "第 3 行：期间“2026-14”无效" in err and "第 4 行：数值“fast”不是数字、1-5 的评级或 waived" in err


def test_bad_period_and_invalid_scheme(capsys, tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "score", "preview", "--scheme", "seed-executor", "--data", SAMPLE,
                           "--period", "2026-13")
    assert code == 2 and err == "kpibot: 无效的期间“2026-13”，应为 2026-11、2026-Q4 或 2026 这样的格式\n"
    broken = tmp_path / "broken.toml"
    broken.write_text(BROKEN, encoding="utf-8")
    code, out, err = run_cli(capsys, "score", "preview", "--scheme", str(broken), "--data", SAMPLE,
                             "--period", "2026-11")
    assert code == 1 and out == "" and f"方案 {broken} 有错误，无法计分：" in err
    assert "权重合计为 95，应为 100" in err


# --- templates (StrictUndefined: a missing variable fails the render) ---------------------------------


def scoring_codes() -> set[str]:
    codes: set[str] = set()
    for path in (ROOT / "scoring").rglob("*.py"):
        codes |= set(re.findall(r'(?:error|warning)\(\s*"([a-z_]+\.[a-z_]+)"', path.read_text(encoding="utf-8")))
    return codes


def test_every_problem_code_the_engine_emits_has_a_sentence() -> None:
    codes = scoring_codes() | {"toml.syntax"}
    assert len(codes) > 60
    for code in sorted(codes):
        params = defaultdict(lambda: "7")
        line = render("cli/problem.txt.j2", problem={"severity": "error", "code": code, "path": "", "params": params})
        assert line.startswith("错误：") and code not in line, code


def test_problem_template_with_realistic_values() -> None:
    warning = {"severity": "warning", "code": "indicator.weight_out_of_range", "path": "indicators[2].weight",
               "params": {"weight": "25", "low": "10", "high": "15"}}
    assert render("cli/problem.txt.j2", problem=warning) == \
        "提醒 [indicators[2].weight]：权重 25 超出指标库建议范围 10-15"
    unknown = {"severity": "error", "code": "brand.new", "path": "", "params": {}}
    assert render("cli/problem.txt.j2", problem=unknown).startswith("错误：brand.new")


def test_error_template() -> None:
    assert render("cli/error.txt.j2", code="scheme.unreadable", params={"path": "a.toml", "detail": "denied"}) == \
        "无法读取方案文件 a.toml：denied"


def test_datafile_error_template() -> None:
    text = render("cli/datafile_error.txt.j2", path="d.csv", errors=[
        {"line": 1, "code": "header_missing", "params": {"columns": "team"}},
        {"line": 9, "code": "team_conflict", "params": {"member": "amy", "team": "b", "other_team": "a",
                                                         "other_line": "2"}},
        {"line": 0, "code": "file_not_found", "params": {}},
    ])
    assert text.splitlines() == ["数据文件 d.csv 有 3 处问题，未做任何计算：", "  第 1 行：表头缺少列 team",
                                 "  第 9 行：amy 的团队是 b，但第 2 行是 a", "  找不到文件"]


def test_scheme_invalid_template() -> None:
    text = render("cli/scheme_invalid.txt.j2", scheme_name="x.toml", problems=[
        {"severity": "error", "code": "grades.empty", "path": "grades", "params": {}}])
    assert text.splitlines() == ["方案 x.toml 有错误，无法计分：", "- 错误 [grades]：没有定义等级",
                                 "请先运行 kpibot scheme check x.toml 查看全部问题。"]


def test_scheme_check_template_without_a_scheme() -> None:
    text = render("cli/scheme_check.txt.j2", source={"kind": "file", "name": "x.toml"}, scheme=None, indicators=[],
                  problems=[{"severity": "error", "code": "field.missing", "path": "scheme", "params": {"field": "scheme"}}],
                  error_count=1, warning_count=0)
    assert "方案检查：文件 x.toml" in text and "- 错误 [scheme]：缺少字段 scheme" in text
    assert "| 指标 |" not in text and text.endswith("结论：方案有错误，不能使用。")


def test_score_preview_template() -> None:
    result = {"member": "amy", "team": None, "total": "88.00", "grade": None, "bonus_class": None, "bonus": None,
              "complete": False, "provisional": True, "appraised": True, "missing": ["a@2026-11"],
              "rank_in_team": None, "rank_in_department": None,
              "dimensions": {"performance": "70.00", "behavior": "18.00"},
              "indicators": [{"key": "a", "status": "missing", "value": None, "target": None, "score": None,
                              "weight": "0.00", "deductions": []},
                             {"key": "b", "status": "scored", "value": "9.00", "target": "10.00", "score": "88.00",
                              "weight": "100.00", "deductions": []}]}
    text = render("cli/score_preview.txt.j2", scheme={"key": "s", "name": "方案"}, period="2026-11",
                  results=[result], names={"a": "甲", "b": "乙"}, problems=[])
    assert "| amy | - | 88.00（暂定） | 70.00 | 18.00 | - | - | - | - | - | 否 |" in text
    assert "amy：甲 -（缺失）；乙 88.00" in text and "缺少数据（暂定总分，补齐或豁免后才能发布）：a@2026-11" in text
    assert "数据问题" not in text
