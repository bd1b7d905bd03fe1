"""The texts and words the results, quality and scoring commands read from templates/ instead of Python."""
from __future__ import annotations

from typing import Any

import pytest

from bot.cli import main as cli
from bot.templates import render, words

TEXTS: dict[str, tuple[dict[str, Any], str]] = {
    "results/job_label.txt.j2": ({"job": "close", "subject": "2026-11"}, "结账 2026-11"),
    "scoring/walk_skipped.txt.j2": ({"name": "公司文化契合度"}, "已跳过「公司文化契合度」。"),
    "scoring/rating_example.txt.j2": ({"member": "张伟", "name": "工作态度与执行力", "waive": False, "rating": 4},
                                      "/score 张伟 工作态度与执行力 4 按时完成三场活动"),
    "results/cli_help.txt.j2": ({"key": "results.accept.kind"}, "问题类型（见 results quality），all 表示全部"),
}


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_each_text_renders_exactly(name: str) -> None:
    variables, expected = TEXTS[name]
    assert render(name, **variables) == expected


def test_a_progress_label_names_each_job_and_a_rating_example_its_waiver() -> None:
    assert render("results/job_label.txt.j2", job="publish", subject="2026-11") == "发布 2026-11"
    assert render("results/job_label.txt.j2", job="import", subject="nov.csv") == "导入 nov.csv"
    assert render("scoring/rating_example.txt.j2", member="陈静", name="问题响应时效", waive=True,
                  rating=None) == "/score 陈静 问题响应时效 waive 本月不适用"


def test_the_results_commands_help_reads_from_its_template(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["results", "accept", "--help"])
    assert "记录为谁接受（默认 cli）" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["results", "--help"])
    out = capsys.readouterr().out
    assert "导出某期间的结果（含草稿）为 CSV 或 XLSX" in out and "核实后接受某期间的数据质量问题" in out


def test_the_words_people_type_keep_their_aliases() -> None:
    assert words("results.result") == ("/结果", "/成绩") and words("results.accept") == ("accept", "接受")
    assert words("scoring.skip") == ("跳过", "略过", "skip", "下一个", "下一项")
    assert words("scoring.calibrate") == ("/校准",) and "所有人" in words("scoring.all_members")
