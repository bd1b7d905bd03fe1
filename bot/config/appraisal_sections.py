"""The appraisal's sections ([weekly_report] [self_review] [appraisal] [wecom_stats] [results]): shape and checks."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import time
from functools import lru_cache
from pathlib import Path

from bot.config.problems import SectionReader
from bot.config.schemes import SchemeLoadError, load_scheme
from bot.templates import DEFAULT_LOCALE, render, words

_QUESTION_KEY = re.compile(r"[a-z][a-z0-9_]{0,31}")
# The default weekly-report questions in their order, and whether each must be answered. Their titles and hints
# are texts of the locale (config/report_questions.txt.j2), the other headings that mean each one in a pasted
# report its words (words/config.toml).
_DEFAULT_QUESTIONS = (("key_actions", True), ("results", True), ("kr_progress", False), ("blockers", False),
                      ("next_week", True))


@dataclass(frozen=True)
class ReportQuestion:
    """One question of the weekly report; `aliases` are other headings that mean it in a pasted report."""

    key: str
    title: str
    hint: str = ""
    required: bool = True
    aliases: tuple[str, ...] = ()


@lru_cache(maxsize=None)
def default_report_questions(locale: str = DEFAULT_LOCALE) -> tuple[ReportQuestion, ...]:
    """The questions a config without [[weekly_report.questions]] asks (read on first use, not at import: a
    broken installation still gets as far as saying what it lacks)."""
    return tuple(ReportQuestion(key, render("config/report_questions.txt.j2", locale, key=key, part="title"),
                                render("config/report_questions.txt.j2", locale, key=key, part="hint"), required,
                                words(f"config.{key}", locale))
                 for key, required in _DEFAULT_QUESTIONS)


WEEKLY_PROMPT_RULES = ("last_workday",) + tuple(f"last_workday_before_{d}" for d in (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))
DEADLINE_RULES = ("next_workday", "same_day")


@dataclass(frozen=True)
class WeeklyReportConfig:
    questions: tuple[ReportQuestion, ...] = field(default_factory=default_report_questions)
    # Which day of each ISO week the prompt goes out (see config.example.toml).
    prompt_on: str = "last_workday"
    prompt_at: time = time(16, 5)
    # The deadline is on the prompt day ("same_day") or on the next workday ("next_workday").
    deadline: str = "next_workday"
    deadline_at: time = time(10, 0)
    # Reminder and escalation run on the deadline day.
    reminder_at: time = time(9, 5)
    escalation_at: time = time(10, 5)
    # Questions quoted in the manager's digest, and how many characters of each.
    digest_keys: tuple[str, ...] = ("key_actions", "blockers")
    digest_chars: int = 120

    def question(self, key: str) -> ReportQuestion:
        for question in self.questions:
            if question.key == key:
                return question
        raise KeyError(key)


@dataclass(frozen=True)
class SelfReviewConfig:
    # Workdays counted back from the month's end: 1 = its last workday, 2 = the one before.
    prompt_on: int = 2
    prompt_at: time = time(10, 5)
    reminder_on: int = 1
    reminder_at: time = time(15, 5)
    # Until this workday of the next month, /review still opens last month's review when it is unsubmitted.
    open_until_workday: int = 3


@dataclass(frozen=True)
class SchemeAssignment:
    scheme: str
    departments: tuple[int, ...] = ()
    userids: tuple[str, ...] = ()


@dataclass(frozen=True)
class AppraisalConfig:
    default_scheme: str = "seed-executor"
    assign: tuple[SchemeAssignment, ...] = ()


@dataclass(frozen=True)
class WeComStatsConfig:
    """The nightly pull of WeCom's customer-contact statistics (see docs/data-sources.md)."""

    enabled: bool = True
    # Local time of the daily pull of yesterday's figures; WeCom advises against hh:00 and hh:30.
    sync_at: time = time(7, 20)
    # Days before yesterday pulled again each night, because WeCom may still correct them.
    repull_days: int = 3
    # Departments whose members are pulled (sub-departments included); empty: every appraised member.
    departments: tuple[int, ...] = ()
    # Parallel API calls during a pull.
    concurrency: int = 4


@dataclass(frozen=True)
class ResultsConfig:
    """Month close and publication of results (see config.example.toml [results])."""

    # The month closes on this workday of the next month, after the review window ...
    close_on_workday: int = 5
    close_at: time = time(10, 5)
    # ... and is published (calibration ends) on this workday of the next month.
    publish_on_workday: int = 7
    publish_at: time = time(10, 5)
    # The data-quality check flags a value that moved more than this many percent from the month before.
    jump_percent: int = 50
    # Totals under this line are listed in the manager's team summary ("below the line").
    pass_line: int = 60
    # How many earlier published months /result shows as history.
    history_months: int = 6
    # The first month the company appraised with kpibot ("2026-07"; "" = no such limit): quarters and years
    # are scored from it on, and the months before it are not missing.
    start_month: str = ""
    # Managers get what is still open in their team this many workdays before the month closes (0 = never).
    nudge_workdays_before: int = 2
    nudge_at: time = time(10, 35)


def read_weekly_report(r: SectionReader) -> WeeklyReportConfig:
    defaults = WeeklyReportConfig()
    questions = _questions(r)
    prompt_on = r.get("prompt_on", str, default=defaults.prompt_on)
    if prompt_on not in WEEKLY_PROMPT_RULES:
        r.problem("prompt_on", "one_of", choices=" | ".join(WEEKLY_PROMPT_RULES[:2]) + " ...", got=repr(prompt_on))
        prompt_on = defaults.prompt_on
    prompt_at = r.time("prompt_at", defaults.prompt_at)
    deadline = r.get("deadline", str, default=defaults.deadline)
    if deadline not in DEADLINE_RULES:
        r.problem("deadline", "one_of", choices=" | ".join(DEADLINE_RULES), got=repr(deadline))
        deadline = defaults.deadline
    deadline_at = r.time("deadline_at", defaults.deadline_at)
    reminder_at = r.time("reminder_at", defaults.reminder_at)
    escalation_at = r.time("escalation_at", defaults.escalation_at)
    digest_keys = r.strings("digest_keys", list(defaults.digest_keys))
    digest_chars = r.get("digest_chars", int, default=defaults.digest_chars)
    r.positive("digest_chars", digest_chars, 1000)
    r.check_unknown()
    if not reminder_at < deadline_at:
        r.problem("reminder_at", "reminder_after_deadline", deadline_at=deadline_at)
    if not deadline_at <= escalation_at:
        r.problem("escalation_at", "escalation_before_deadline", deadline_at=deadline_at)
    if deadline == "same_day" and not prompt_at < reminder_at:
        r.problem("reminder_at", "reminder_before_prompt", prompt_at=prompt_at)
    keys = {q.key for q in questions}
    if "digest_keys" not in r.data:  # custom questions without digest_keys: quote those that still exist
        digest_keys = tuple(k for k in defaults.digest_keys if k in keys) or (questions[0].key,)
    for key in digest_keys:
        if key not in keys:
            r.problem("digest_keys", "no_such_question", question=repr(key))
    return WeeklyReportConfig(questions=questions, prompt_on=prompt_on, prompt_at=prompt_at, deadline=deadline,
                              deadline_at=deadline_at, reminder_at=reminder_at, escalation_at=escalation_at,
                              digest_keys=tuple(k for k in digest_keys if k in keys),
                              digest_chars=digest_chars or defaults.digest_chars)


def _questions(reader: SectionReader) -> tuple[ReportQuestion, ...]:
    raw = reader.get("questions", list, default=None)
    if raw is None:
        return default_report_questions()
    questions: list[ReportQuestion] = []
    seen: set[str] = set()
    if not raw:
        reader.problem("questions", "no_questions")
    for q in reader.tables("questions", raw):
        key = q.get("key", str, required=True)
        title = q.get("title", str, required=True)
        hint = q.get("hint", str, default="")
        required = q.get("required", bool, default=True)
        aliases = q.strings("aliases", [])
        q.check_unknown()
        if key is not None and not _QUESTION_KEY.fullmatch(key):
            q.problem("key", "not_a_question_key", got=repr(key))
        elif key in seen:
            q.problem("key", "question_key_twice", question=repr(key))
        if title is not None and not title.strip():
            q.problem("title", "empty")
        if key and title and title.strip():
            seen.add(key)
            questions.append(ReportQuestion(key, title.strip(), hint or "", bool(required), aliases))
    return tuple(questions) or default_report_questions()


def read_self_review(r: SectionReader) -> SelfReviewConfig:
    defaults = SelfReviewConfig()
    prompt_on = r.get("prompt_on", int, default=defaults.prompt_on)
    prompt_at = r.time("prompt_at", defaults.prompt_at)
    reminder_on = r.get("reminder_on", int, default=defaults.reminder_on)
    reminder_at = r.time("reminder_at", defaults.reminder_at)
    open_until = r.get("open_until_workday", int, default=defaults.open_until_workday)
    r.check_unknown()
    r.positive("prompt_on", prompt_on, 10)
    r.positive("reminder_on", reminder_on, 10)
    r.positive("open_until_workday", open_until, 15)
    if isinstance(prompt_on, int) and isinstance(reminder_on, int):
        if reminder_on > prompt_on or (reminder_on == prompt_on and not prompt_at < reminder_at):
            r.problem("reminder_on", "review_reminder_before_prompt")
    return SelfReviewConfig(prompt_on=prompt_on or defaults.prompt_on, prompt_at=prompt_at,
                            reminder_on=reminder_on or defaults.reminder_on, reminder_at=reminder_at,
                            open_until_workday=open_until or defaults.open_until_workday)


def read_appraisal(r: SectionReader, base_dir: Path | None) -> AppraisalConfig:
    defaults = AppraisalConfig()
    default_scheme = _scheme_name(r, "default_scheme", r.get("default_scheme", str, default=defaults.default_scheme),
                                  base_dir)
    raw = r.get("assign", list, default=[])
    r.check_unknown()
    assignments: list[SchemeAssignment] = []
    for a in r.tables("assign", raw or []):
        scheme = _scheme_name(a, "scheme", a.get("scheme", str, required=True), base_dir)
        departments = a.get("departments", list, default=[])
        userids = a.strings("userids", [])
        a.check_unknown()
        departments = a.department_ids("departments", departments, [])
        if not departments and not userids:
            a.problem("", "nobody_assigned")
        if scheme:
            assignments.append(SchemeAssignment(scheme, tuple(departments or ()), userids))
    return AppraisalConfig(default_scheme=default_scheme or defaults.default_scheme, assign=tuple(assignments))


def _scheme_name(reader: SectionReader, key: str, value: str | None, base_dir: Path | None) -> str | None:
    """A preset name, or a scheme file (relative to the config file); checked by loading it."""
    if value is None:
        return None
    name = value.strip()
    looks_like_file = name.endswith(".toml") or "/" in name or "\\" in name
    if looks_like_file and base_dir is not None and not Path(name).is_absolute():
        name = str((base_dir / name).resolve())
    try:
        load_scheme(name)
    except SchemeLoadError as error:
        # A scheme with errors stops the bot with the problems themselves, not just their count.
        errors = [render("cli/problem.txt.j2", problem=problem) for problem in error.problems
                  if problem.severity.value == "error"]
        reader.problem(key, "scheme_unusable", name=repr(value), errors=errors, reason=str(error))
    except Exception as error:  # noqa: BLE001 - any failure to load is one problem with this key
        reader.problem(key, "scheme_unusable", name=repr(value), errors=[], reason=str(error))
    return name


def read_wecom_stats(r: SectionReader) -> WeComStatsConfig:
    defaults = WeComStatsConfig()
    enabled = r.get("enabled", bool, default=defaults.enabled)
    sync_at = r.time("sync_at", defaults.sync_at)
    repull_days = r.get("repull_days", int, default=defaults.repull_days)
    departments = r.get("departments", list, default=[])
    concurrency = r.get("concurrency", int, default=defaults.concurrency)
    r.check_unknown()
    if sync_at.minute in (0, 30):
        r.problem("sync_at", "on_the_hour", instead=f"{sync_at.hour:02d}:20", got=f"{sync_at:%H:%M}")
    if repull_days is not None and not 0 <= repull_days <= 29:
        r.problem("repull_days", "repull_too_long", got=repull_days)
    departments = r.department_ids("departments", departments, [])
    r.positive("concurrency", concurrency, 32)
    return WeComStatsConfig(enabled=bool(enabled), sync_at=sync_at,
                            repull_days=defaults.repull_days if repull_days is None else repull_days,
                            departments=tuple(departments or ()), concurrency=concurrency or defaults.concurrency)


def read_results(r: SectionReader) -> ResultsConfig:
    defaults = ResultsConfig()
    close_on = r.get("close_on_workday", int, default=defaults.close_on_workday)
    close_at = r.time("close_at", defaults.close_at)
    publish_on = r.get("publish_on_workday", int, default=defaults.publish_on_workday)
    publish_at = r.time("publish_at", defaults.publish_at)
    jump = r.get("jump_percent", int, default=defaults.jump_percent)
    pass_line = r.get("pass_line", int, default=defaults.pass_line)
    history = r.get("history_months", int, default=defaults.history_months)
    start_month = r.get("start_month", str, default=defaults.start_month)
    nudge_before = r.get("nudge_workdays_before", int, default=defaults.nudge_workdays_before)
    nudge_at = r.time("nudge_at", defaults.nudge_at)
    if start_month and not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", start_month):
        r.problem("start_month", "not_a_month", got=repr(start_month))
    if isinstance(nudge_before, int) and not 0 <= nudge_before <= 10:
        r.problem("nudge_workdays_before", "between", range="0..10", unit=None, got=nudge_before)
    r.check_unknown()
    r.positive("close_on_workday", close_on, 15)
    r.positive("publish_on_workday", publish_on, 20)
    r.positive("jump_percent", jump, 10000)
    r.positive("history_months", history, 36)
    if pass_line is not None and not 0 <= pass_line <= 120:
        r.problem("pass_line", "between", range="0..120", unit=None, got=pass_line)
    if isinstance(close_on, int) and isinstance(publish_on, int):
        if publish_on < close_on or (publish_on == close_on and not close_at < publish_at):
            r.problem("publish_on_workday", "publish_before_close")
    return ResultsConfig(close_on_workday=close_on or defaults.close_on_workday, close_at=close_at,
                         publish_on_workday=publish_on or defaults.publish_on_workday, publish_at=publish_at,
                         jump_percent=jump or defaults.jump_percent,
                         pass_line=defaults.pass_line if pass_line is None else pass_line,
                         history_months=history or defaults.history_months, start_month=start_month or "",
                         nudge_workdays_before=defaults.nudge_workdays_before if nudge_before is None
                         else nudge_before, nudge_at=nudge_at)
