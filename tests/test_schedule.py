"""The job table on the team's calendar: fire times across 2026's holidays and make-up workdays (no sleeping),
catch-up windows, the scheduler lease, the jobs CLI, and the config sections the schedule reads."""
from __future__ import annotations

from datetime import datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.cli.main import main
from bot.config import (ConfigError, SelfReviewConfig, WeeklyReportConfig, load_config, parse_config)
from bot.fakes.wecom import FakeWeCom
from bot.storage.db import make_engine, make_session_factory, transaction
from bot.storage.models import JobRun
from bot.jobs.runner import BotScheduler
from bot.jobs.spec import next_effective_fire_time
from bot.jobs.table import HOUSEKEEPING, JOBS, all_jobs, job_by_id, next_fire_times
from tests.harness import BotEnv, make_config, write_config_file

SHANGHAI = ZoneInfo("Asia/Shanghai")
EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"
CONFIG = make_config("sqlite://", "http://127.0.0.1:1/cgi-bin/")
# The jobs this module is about (other modules add theirs to the same table).
REPORT_JOBS = ("weekly_prompt", "weekly_reminder", "weekly_escalation", "self_review_prompt", "self_review_reminder")


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=SHANGHAI)  # type: ignore[misc]


def next_fire(job_id: str, after: datetime, config=CONFIG) -> datetime | None:  # type: ignore[no-untyped-def]
    return next_effective_fire_time(job_by_id(job_id), config, after)


# -- fire times ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("after, expected", [
    (at(2026, 11, 23, 0, 0), at(2026, 11, 27, 16, 5)),  # an ordinary week: Friday
    (at(2026, 11, 27, 16, 5), at(2026, 11, 27, 16, 5)),  # at the fire time itself
    (at(2026, 11, 27, 16, 6), at(2026, 12, 4, 16, 5)),
    (at(2025, 12, 29, 0, 0), at(2026, 1, 4, 16, 5)),  # New Year: Sunday 4 January is a make-up workday
    (at(2026, 2, 9, 0, 0), at(2026, 2, 14, 16, 5)),  # Spring Festival: make-up Saturday 14 February
    (at(2026, 2, 14, 16, 6), at(2026, 2, 28, 16, 5)),  # the festival week has no workday: no prompt at all
    (at(2026, 4, 27, 0, 0), at(2026, 4, 30, 16, 5)),  # Labour Day from Friday 1 May
    (at(2026, 5, 4, 0, 0), at(2026, 5, 9, 16, 5)),  # make-up Saturday 9 May
    (at(2026, 6, 15, 0, 0), at(2026, 6, 18, 16, 5)),  # Dragon Boat Festival on Friday 19 June
    (at(2026, 9, 14, 0, 0), at(2026, 9, 20, 16, 5)),  # make-up Sunday 20 September
    (at(2026, 9, 21, 0, 0), at(2026, 9, 24, 16, 5)),  # Mid-Autumn Festival on Friday 25 September
    (at(2026, 9, 28, 0, 0), at(2026, 9, 30, 16, 5)),  # National Day week: Wednesday before 1 October
    (at(2026, 10, 1, 0, 0), at(2026, 10, 10, 16, 5)),  # the week after: make-up Saturday 10 October
])
def test_weekly_prompt_fire_times_across_2026_holidays(after: datetime, expected: datetime) -> None:
    assert next_fire("weekly_prompt", after) == expected


@pytest.mark.parametrize("job_id, after, expected", [
    ("weekly_reminder", at(2026, 11, 27, 16, 5), at(2026, 11, 30, 9, 5)),  # next workday, before 10:00
    ("weekly_escalation", at(2026, 11, 27, 16, 5), at(2026, 11, 30, 10, 5)),
    ("weekly_reminder", at(2026, 9, 30, 16, 5), at(2026, 10, 8, 9, 5)),  # after the National Day holiday
    ("weekly_escalation", at(2026, 2, 14, 16, 5), at(2026, 2, 24, 10, 5)),  # after the Spring Festival
    ("self_review_prompt", at(2026, 2, 1, 0, 0), at(2026, 2, 27, 10, 5)),  # second-last workday of February
    ("self_review_reminder", at(2026, 2, 1, 0, 0), at(2026, 2, 28, 15, 5)),  # its last: a make-up Saturday
    ("self_review_prompt", at(2026, 9, 1, 0, 0), at(2026, 9, 29, 10, 5)),
    ("self_review_reminder", at(2026, 9, 1, 0, 0), at(2026, 9, 30, 15, 5)),
    ("org_sync", at(2026, 11, 27, 10, 7), at(2026, 11, 28, 2, 40)),
    ("conversation_sweep", at(2026, 11, 27, 10, 7), at(2026, 11, 27, 10, 13)),
    ("inbox_prune", at(2026, 11, 27, 10, 7), at(2026, 11, 28, 3, 17)),
])
def test_other_jobs_fire_times(job_id: str, after: datetime, expected: datetime) -> None:
    assert next_fire(job_id, after) == expected


def test_fire_times_past_the_official_calendar_fall_back_to_monday_to_friday() -> None:
    assert next_fire("weekly_prompt", at(2031, 1, 6, 0, 0)) == at(2031, 1, 10, 16, 5)


def test_configured_times_and_rules_move_the_fire_times() -> None:
    config = make_config("sqlite://", "http://127.0.0.1:1/cgi-bin/", weekly_report={
        "prompt_on": "last_workday_before_friday", "prompt_at": "17:25", "deadline": "same_day",
        "deadline_at": "20:00", "reminder_at": "19:05", "escalation_at": "20:15"})
    assert next_fire("weekly_prompt", at(2026, 10, 5, 0, 0), config) == at(2026, 10, 9, 17, 25)  # not Saturday 10th
    assert next_fire("weekly_reminder", at(2026, 10, 5, 0, 0), config) == at(2026, 10, 9, 19, 5)
    assert next_fire("weekly_escalation", at(2026, 10, 5, 0, 0), config) == at(2026, 10, 9, 20, 15)


def test_default_times_stay_off_the_hour_and_the_half_hour() -> None:
    after = at(2026, 11, 1, 0, 0)
    for spec, fire in next_fire_times(CONFIG, after):
        if spec.id not in (*REPORT_JOBS, "org_sync", "conversation_sweep", "inbox_prune"):
            continue
        assert fire is not None, spec.id
        assert fire.minute not in (0, 30), f"{spec.id} fires at {fire:%H:%M}"


def test_every_job_has_a_unique_explicit_id() -> None:
    ids = [spec.id for spec in all_jobs()]
    assert len(ids) == len(set(ids))
    assert {spec.id for spec in JOBS} >= {"weekly_prompt", "weekly_reminder", "weekly_escalation",
                                          "self_review_prompt", "self_review_reminder", "org_sync"}
    assert [spec.id for spec in HOUSEKEEPING] == ["conversation_sweep", "calendar_warning", "inbox_prune",
                                                  "quality_release"]


# -- catch-up windows and the lease ---------------------------------------------------------------------------
def test_catch_up_windows(bot_env: BotEnv) -> None:
    runner = bot_env.runner()

    def missed(now: datetime) -> set[str]:
        return {spec.id for spec, _ in runner.missed_runs(now)} & set(REPORT_JOBS)

    assert missed(at(2026, 11, 27, 20, 0)) == {"weekly_prompt", "self_review_prompt"}
    assert missed(at(2026, 11, 28, 9, 0)) == set()  # 17 hours after the prompt: beyond the 12 h grace
    assert "weekly_reminder" in missed(at(2026, 11, 30, 9, 50))  # before the 10:00 deadline: still useful
    assert "weekly_reminder" not in missed(at(2026, 11, 30, 10, 30))  # after it: never
    assert "weekly_escalation" in missed(at(2026, 11, 30, 10, 30))
    runner.run("weekly_escalation", at(2026, 11, 30, 10, 5))
    assert "weekly_escalation" not in missed(at(2026, 11, 30, 10, 30))


def test_only_one_instance_holds_the_scheduler_lease(bot_env: BotEnv) -> None:
    first, second = BotScheduler(bot_env.bot.job_runner()), BotScheduler(bot_env.bot.job_runner())
    assert first.take_lease() and not second.take_lease()
    assert first.take_lease()  # renewing is fine
    first.release_lease()
    assert second.take_lease()
    bot_env.advance(seconds=91)  # a holder that stops renewing loses the lease
    assert first.take_lease()
    first.release_lease()


# -- the CLI --------------------------------------------------------------------------------------------------
def test_jobs_list_shows_each_jobs_next_effective_fire_time(tmp_path: Path, fake_wecom: FakeWeCom,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config_file(tmp_path, fake_wecom.base_url)
    assert main(["--config", str(path), "jobs", "list", "--after", "2026-09-30T12:00"]) == 0
    out = capsys.readouterr().out
    table, _, runs = out.partition("\n\n")
    lines = {line.split()[0]: line for line in table.splitlines()[1:] if line.strip()}
    assert set(lines) == {spec.id for spec in all_jobs()}
    assert "2026-09-30 16:05" in lines["weekly_prompt"]
    assert "2026-10-08 09:05" in lines["weekly_reminder"]
    assert "2026-10-29 10:05" in lines["self_review_prompt"]


def test_jobs_run_acts_once_per_period_unless_forced(tmp_path: Path, fake_wecom: FakeWeCom,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config_file(tmp_path, fake_wecom.base_url)
    config = ["--config", str(path)]
    assert main([*config, "db", "upgrade"]) == 0
    assert main([*config, "org", "sync"]) == 0
    capsys.readouterr()
    assert main([*config, "jobs", "run", "weekly_prompt", "--at", "2026-11-27T16:05"]) == 0
    assert "周期 2026-W48" in capsys.readouterr().out and "已发给 11 人" in fake_wecom_detail(path)
    assert main([*config, "jobs", "run", "weekly_prompt", "--at", "2026-11-27T16:09"]) == 0
    assert "已经运行过" in capsys.readouterr().out
    assert main([*config, "jobs", "run", "weekly_prompt", "--at", "2026-11-27T16:09", "--force"]) == 0
    assert "已运行" in capsys.readouterr().out
    assert main([*config, "jobs", "run", "weekly_prompt", "--at", "2026-11-26T16:05"]) == 0
    assert "没有需要做的事" in capsys.readouterr().out  # Thursday is not the week's last workday
    assert main([*config, "jobs", "run", "no_such_job"]) == 2
    assert "weekly_prompt" in capsys.readouterr().err


def fake_wecom_detail(path: Path) -> str:
    """The recorded detail of the weekly prompt's run, read back from the database."""
    engine = make_engine(load_config(path, environ={}).database.url.reveal())
    try:
        with transaction(make_session_factory(engine)) as session:
            return session.scalar(select(JobRun.detail).where(JobRun.job_id == "weekly_prompt")) or ""
    finally:
        engine.dispose()


# -- config ---------------------------------------------------------------------------------------------------
def test_the_example_config_documents_every_schedule_key() -> None:
    config = load_config(EXAMPLE, environ={})
    text = EXAMPLE.read_text(encoding="utf-8")
    for section in (config.schedule, config.weekly_report, config.self_review, config.appraisal):
        for name in section.__dataclass_fields__:
            if name in ("questions", "assign"):
                continue  # arrays of tables, documented below
            assert f"\n{name} = " in text, f"config.example.toml does not document {name}"
    assert text.count("[[weekly_report.questions]]") == len(config.weekly_report.questions) == 5
    for name in ("key", "title", "hint", "required", "aliases"):
        assert f"\n{name} = " in text and f"#   {name} " in text
    assert "[[appraisal.assign]]" in text
    assert config.weekly_report == WeeklyReportConfig()  # the example spells out the defaults
    assert config.self_review == SelfReviewConfig()


def test_schedule_config_problems_are_all_reported_at_once() -> None:
    raw = {
        "wecom": {"corp_id": "ww1", "agent_id": 1, "secret": "s", "token": "t", "encoding_aes_key": "a" * 43},
        "schedule": {"catch_up_grace_hours": 500, "tick_seconds": 0},
        "weekly_report": {"prompt_on": "friday", "deadline": "tomorrow", "reminder_at": "11:00",
                          "digest_keys": ["nope"], "colour": "red",
                          "questions": [{"key": "Bad Key", "title": ""}, {"key": "x", "title": "X", "extra": 1}]},
        "self_review": {"prompt_on": 1, "reminder_on": 2},
        "appraisal": {"default_scheme": "missing-preset"},
    }
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, environ={})
    keys = {problem.key for problem in caught.value.problems}
    assert keys == {"schedule.catch_up_grace_hours", "schedule.tick_seconds", "weekly_report.prompt_on", "weekly_report.deadline",
                    "weekly_report.reminder_at", "weekly_report.digest_keys", "weekly_report.colour",
                    "weekly_report.questions[0].key", "weekly_report.questions[0].title",
                    "weekly_report.questions[1].extra", "self_review.reminder_on", "appraisal.default_scheme"}


def test_custom_questions_replace_the_defaults() -> None:
    config = make_config("sqlite://", "http://127.0.0.1:1/cgi-bin/", weekly_report={
        "questions": [{"key": "done", "title": "本周完成"}, {"key": "help", "title": "求助", "required": False,
                                                              "aliases": ["需要帮助"]}],
        "digest_keys": ["done", "help"]})
    assert [(q.key, q.required, q.aliases) for q in config.weekly_report.questions] == [
        ("done", True, ()), ("help", False, ("需要帮助",))]
    assert config.weekly_report.prompt_at == time(16, 5)
    own = make_config("sqlite://", "http://127.0.0.1:1/cgi-bin/", weekly_report={
        "questions": [{"key": "done", "title": "本周完成"}, {"key": "blockers", "title": "卡点", "required": False}]})
    assert own.weekly_report.digest_keys == ("blockers",)  # the default digest keys that still exist
    assert timedelta(hours=config.schedule.catch_up_grace_hours) == timedelta(hours=12)
