"""The admin's calendar file for years chinese-calendar lacks: workdays, `kpibot calendar show`, errors, the warning."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest

from bot.appraisal import workcalendar as wc
from bot.cli.main import main
from bot.config import ConfigError, parse_config
from bot.fakes.wecom import FakeWeCom
from bot.jobs.spec import next_effective_fire_time
from bot.jobs.table import job_by_id
from bot.templates import render
from tests.harness import (AES_KEY, AGENT_ID, CORP_ID, CORP_SECRET, SHANGHAI, TOKEN, BotEnv, make_config,
                           write_config_file)

# Test data written for these tests only (not the official 2027 arrangement, which is not published).
TEST_CALENDAR = """
[2027]
source = "test notice"

[[2027.holiday]]
name = "元旦"
from = 2027-01-01
to = 2027-01-03
workdays = [2027-01-09]

[[2027.holiday]]
name = "测试节"
from = "2027-03-01"
"""


@pytest.fixture(autouse=True)
def no_calendar_file_after_the_test() -> Iterator[None]:
    """The calendar file is process-wide: leave none installed for the next test."""
    yield
    wc.use_calendar_file(None)


def _raw_config(**schedule: object) -> dict[str, object]:
    return {"wecom": {"corp_id": CORP_ID, "agent_id": AGENT_ID, "secret": CORP_SECRET, "token": TOKEN,
                      "encoding_aes_key": AES_KEY}, "schedule": dict(schedule)}


def _write_config(tmp_path: Path, calendar: str | None) -> Path:
    """A config file beside a calendar.toml holding `calendar` (none if None)."""
    if calendar is not None:
        (tmp_path / "calendar.toml").write_text(calendar, encoding="utf-8")
    return write_config_file(tmp_path, "http://127.0.0.1:1/cgi-bin/")  # no WeCom: these commands never call it


def test_new_years_day_2027_is_no_workday_once_the_calendar_file_says_so(tmp_path: Path) -> None:
    assert wc.is_workday(date(2027, 1, 1)) is True  # a Friday, and chinese-calendar 1.11 has no 2027
    (tmp_path / "calendar.toml").write_text(TEST_CALENDAR, encoding="utf-8")
    config = parse_config(_raw_config(), environ={}, base_dir=tmp_path)  # calendar.toml next to the config
    assert config.schedule.calendar_file == tmp_path / "calendar.toml"
    wc.use_calendar_file(config.calendar)

    assert wc.is_workday(date(2027, 1, 1)) is False
    assert wc.is_workday(date(2027, 1, 9)) is True  # the file's make-up Saturday
    assert wc.is_workday(date(2027, 1, 4)) is True  # an ordinary Monday of a year the file lists
    assert wc.is_workday(date(2027, 1, 16)) is False  # an ordinary Saturday
    assert wc.is_workday(date(2026, 10, 1)) is False  # years the file does not list still come from the library
    assert wc.calendar_source(2027) is wc.CalendarSource.FILE and wc.year_is_known(2027)
    assert wc.calendar_source(2026) is wc.CalendarSource.LIBRARY
    assert wc.calendar_source(2031) is wc.CalendarSource.MISSING and not wc.year_is_known(2031)
    assert wc.known_years()[2027] is wc.CalendarSource.FILE and 2031 not in wc.known_years()
    # The weekly prompt of the week holding New Year's Day moves to Thursday 31 December.
    weekly = job_by_id("weekly_prompt")
    fire = next_effective_fire_time(weekly, config, datetime(2026, 12, 28, tzinfo=SHANGHAI))
    assert fire == datetime(2026, 12, 31, 16, 5, tzinfo=SHANGHAI)


def test_without_the_file_the_same_week_would_prompt_on_new_years_day() -> None:
    config = parse_config(_raw_config(), environ={})
    fire = next_effective_fire_time(job_by_id("weekly_prompt"), config, datetime(2026, 12, 28, tzinfo=SHANGHAI))
    assert fire == datetime(2027, 1, 1, 16, 5, tzinfo=SHANGHAI)


def test_calendar_show_prints_the_files_holidays_and_the_jobs_on_them(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write_config(tmp_path, TEST_CALENDAR)
    assert main(["--config", str(path), "calendar", "show", "2027"]) == 0  # renders calendar/show.txt.j2
    out = capsys.readouterr().out
    assert "2027 年工作日历" in out
    assert f"节假日文件 {tmp_path / 'calendar.toml'}（test notice）" in out
    assert "元旦     01-01(五) 至 01-03(日)，共 3 天；调休上班 01-09(六)" in out
    assert "测试节" in out and "03-01(一) 至 03-01(一)，共 1 天" in out
    assert "weekly_prompt          2026-12-31(四) 16:05" in out  # the week before 元旦 prompts on Thursday
    assert "weekly_prompt          01-09(六) 16:05 *" in out  # near 元旦, on its make-up Saturday
    year_part = out.split("全年运行日期")[1].splitlines()
    header = next(i for i, line in enumerate(year_part) if line.strip().startswith("weekly_prompt"))
    assert year_part[header + 1].split() == ["1月", "09(六)*", "15(五)", "22(五)", "29(五)"]  # not 01-01


def test_calendar_show_of_a_library_year_names_the_package(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write_config(tmp_path, None)
    assert main(["--config", str(path), "calendar", "show", "2026"]) == 0
    out = capsys.readouterr().out
    assert f"chinese-calendar {wc.library_version()}" in out
    assert "春节     02-15(日) 至 02-23(一)，共 9 天；调休上班 02-14(六) 02-28(六)" in out
    assert "org_sync" in out and "每天（365 天）" in out


def test_calendar_show_of_an_unknown_year_is_one_clear_line_and_exit_1(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write_config(tmp_path, TEST_CALENDAR)
    assert main(["--config", str(path), "calendar", "show", "2031"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.strip().splitlines()
    assert "2031 年没有节假日数据" in line and "只有 2027 年" in line and "docs/calendar.md" in line


INVALID_CALENDAR = """
[2027]
sorce = "typo"

[[2027.holiday]]
name = "元旦"
from = 2027-01-03
to = 2027-01-01

[[2027.holiday]]
name = "春节"
from = 2027-02-06
to = "2027-02-31"
workdays = [2027-02-08, 2027-01-02]

[[2027.holiday]]
from = 2028-03-01

[nineteen]
"""


def test_an_invalid_calendar_file_names_every_problem_by_its_key(tmp_path: Path) -> None:
    (tmp_path / "calendar.toml").write_text(INVALID_CALENDAR, encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        parse_config(_raw_config(), environ={}, base_dir=tmp_path)
    problems = {problem.key: problem.message for problem in raised.value.problems}
    assert problems == {
        "calendar.toml:2027.sorce": "未知项 (unknown key)",
        "calendar.toml:2027.holiday[0].to": "结束日期 2027-01-01 早于开始日期 from 2027-01-03",
        "calendar.toml:2027.holiday[1].to": "应为日期 YYYY-MM-DD (got 2027-02-31)",
        "calendar.toml:2027.holiday[1].workdays[0]": "调休上班日 2027-02-08 是周一：调休上班日应为周六或周日",
        "calendar.toml:2027.holiday[2].from": "2028-03-01 不在 2027 年（最多可到相邻年份的 12 月或 1 月）",
        "calendar.toml:nineteen": "应为年份表，例如 [2027]（2000..2100）",
    }
    # 2027-01-02 (a Saturday) is fine as a workday here: holiday[0] was refused, so it is not listed twice.


def test_a_day_listed_twice_is_refused_and_a_missing_file_is_no_data(tmp_path: Path) -> None:
    (tmp_path / "twice.toml").write_text("""
[2027]
[[2027.holiday]]
from = 2027-01-01
to = 2027-01-03
[[2027.holiday]]
from = 2027-01-03
workdays = ["2027-01-02"]
""", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        parse_config(_raw_config(calendar_file="twice.toml"), environ={}, base_dir=tmp_path)
    messages = [str(problem) for problem in raised.value.problems]
    assert messages == ["twice.toml:2027.holiday[1].workdays[0]: 2027-01-02 已在 2027.holiday[0].from 中出现，每一天只能写一次",
                        "twice.toml:2027.holiday[1].from: 2027-01-03 已在 2027.holiday[0].from 中出现，每一天只能写一次"]
    # A missing file is no data: the warning and `calendar show` name where it is expected.
    config = parse_config(_raw_config(calendar_file="nowhere.toml"), environ={}, base_dir=tmp_path)
    assert config.schedule.calendar_file == tmp_path / "nowhere.toml" and config.calendar is None


def test_an_invalid_calendar_file_stops_every_command_with_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write_config(tmp_path, INVALID_CALENDAR)
    assert main(["--config", str(path), "jobs", "list"]) == 2
    err = capsys.readouterr().err
    assert "配置无效" in err and "calendar.toml:2027.holiday[0].to: 结束日期" in err and len(err.splitlines()) == 1


# -- the warning -------------------------------------------------------------------------------------------
def _at(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)


def test_the_warning_is_due_30_days_before_a_year_without_data_and_inside_it() -> None:
    config = parse_config(_raw_config(), environ={})
    spec = job_by_id("calendar_warning")
    assert spec.period_of(_at(2026, 12, 1, 9, 45), config) is None  # 31 days before
    assert spec.period_of(_at(2026, 12, 2, 9, 45), config) == "2027"
    assert spec.period_of(_at(2027, 6, 1, 9, 45), config) == "2027"
    assert spec.period_of(_at(2026, 6, 1, 9, 45), config) is None
    assert next_effective_fire_time(spec, config, _at(2026, 11, 27, 10, 7)) == _at(2026, 12, 2, 9, 45)


def test_the_admins_are_warned_once_a_year_and_never_when_the_file_has_the_year(bot_env: BotEnv) -> None:
    runner = bot_env.runner()
    bot_env.clock.set(_at(2026, 12, 5, 9, 50))
    first = runner.run("calendar_warning")
    assert first.ran and first.period == "2027" and "zhoumin" in first.detail
    text = bot_env.chat.expect_text("zhoumin")
    assert "2027 年" in text and "还有 27 天开始" in text and "pip install -U chinese-calendar" in text
    assert "docs/calendar.md" in text and "kpibot calendar show 2027" in text
    assert runner.run("calendar_warning", _at(2026, 12, 6, 9, 45)).detail == "already_ran"
    forced = runner.run("calendar_warning", _at(2026, 12, 7, 9, 45), force=True)
    assert forced.ran  # the job ran again, but the outbox key lets the message out once
    bot_env.advance(minutes=5)
    assert len(bot_env.fake.delivered("zhoumin")) == 1


def test_a_start_up_inside_a_year_without_data_warns_at_once(bot_env: BotEnv) -> None:
    runner = bot_env.runner()
    bot_env.clock.set(_at(2027, 1, 6, 8, 0))  # before the day's 09:45: the start-up catch-up does it
    ran = {result.job_id: result for result in runner.catch_up()}
    assert ran["calendar_warning"].ran and ran["calendar_warning"].period == "2027"
    assert "现在，" in bot_env.chat.expect_text("zhoumin", timeout=10)
    assert "calendar_warning" not in {result.job_id for result in runner.catch_up()}


def test_with_the_year_in_the_file_nothing_is_due(tmp_path: Path, db_url: str, fake_wecom: FakeWeCom) -> None:
    (tmp_path / "calendar.toml").write_text(TEST_CALENDAR, encoding="utf-8")
    config = make_config(db_url, fake_wecom.base_url, schedule={"calendar_file": str(tmp_path / "calendar.toml")})
    wc.use_calendar_file(config.calendar)
    assert job_by_id("calendar_warning").period_of(_at(2026, 12, 5, 9, 45), config) is None
    assert job_by_id("calendar_warning").period_of(_at(2027, 12, 5, 9, 45), config) == "2028"


def test_the_warning_templates_render() -> None:
    common = {"year": 2027, "library_version": "1.11.0", "library_last": 2026, "calendar_file": "/etc/kpibot/calendar.toml"}
    before = render("calendar/missing_year.txt.j2", starts_in_days=30, today=date(2026, 12, 2), **common)
    assert "还有 30 天开始" in before and "/etc/kpibot/calendar.toml" in before
    assert "已提醒管理员 zhoumin" in render("calendar/warning_detail.txt.j2", year=2027, admins=["zhoumin"])
    assert "没有配置管理员" in render("calendar/warning_detail.txt.j2", year=2027, admins=[])
    assert "找不到节假日文件 x.toml" in render("calendar/problem.txt.j2", code="missing_file", path="x.toml")
    assert "2031 年没有节假日数据" in render("calendar/unknown_year.txt.j2", year=2031, library_version="1.11.0",
                                          library_first=2004, library_last=2026, calendar_file="c.toml", file_years=[],
                                          file_exists=False)
