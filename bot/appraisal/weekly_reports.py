"""Weekly report rules: the week a report is for, deadline and lateness, drafts and submission, teams and history."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.appraisal import leave
from bot.appraisal.periods import Week
from bot.appraisal.workcalendar import (end_of_day, local, shift_week, week_days, week_of,
                                        weekly_deadline, weekly_deadline_day, weekly_prompt_day)
from bot.config import Config, ReportQuestion
from bot.storage.models import Member, WeeklyReport
from bot.templates import words

FLOW = "weekly_report"  # the conversation's name, in the member's Conversation row
# The question whose answer is the member's key-result progress: with open KRs it becomes one
# question per KR, each recorded on the KR itself (bot/appraisal/okr.py).
KR_QUESTION_KEY = "kr_progress"
HISTORY_COUNT = 4


class ReportState(StrEnum):
    ANSWERING = "answering"  # collecting the answer to questions[index]
    KR_PROGRESS = "kr_progress"  # the KR question: one progress value per open key result
    REVIEWING = "reviewing"  # the whole report is shown: submit or edit
    CHOOSING = "choosing"  # which question to edit


class Mode(StrEnum):
    SEQUENTIAL = "sequential"  # after a question, the next one not answered yet
    MISSING = "missing"  # after a question, the next required one still empty (after a paste)
    EDIT = "edit"  # one question reopened from the summary; back to the summary after it


@dataclass(frozen=True)
class ReportStep:
    """Where a member is in writing one week's report, kept as JSON in their open conversation
    (Conversation.data): to_dict and from_dict are the one place that knows that shape."""

    week: str
    index: int = 0  # the question being answered
    mode: Mode = Mode.SEQUENTIAL
    parts: int = 0  # messages given to this answer so far
    fresh: bool = False  # the next message replaces the answer (an edit) instead of adding to it
    untouched: bool = False  # opened by a scheduled prompt the member has not answered yet
    kr_ids: tuple[int, ...] = ()  # the KR question: the open key results asked, in order
    kr_pos: int = 0  # the one being asked
    kr_lines: tuple[str, ...] = ()  # what was recorded for those before it

    def to_dict(self) -> dict[str, Any]:
        return {"week": self.week, "index": self.index, "mode": self.mode.value, "parts": self.parts,
                "fresh": self.fresh, "untouched": self.untouched, "kr_ids": list(self.kr_ids),
                "kr_pos": self.kr_pos, "kr_lines": list(self.kr_lines)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReportStep:
        return cls(week=str(data.get("week", "")), index=int(data.get("index", 0)),
                   mode=Mode(data.get("mode", Mode.SEQUENTIAL)), parts=int(data.get("parts", 0)),
                   fresh=bool(data.get("fresh")), untouched=bool(data.get("untouched")),
                   kr_ids=tuple(int(kr_id) for kr_id in data.get("kr_ids", ())), kr_pos=int(data.get("kr_pos", 0)),
                   kr_lines=tuple(str(line) for line in data.get("kr_lines", ())))


@dataclass(frozen=True)
class WeekView:
    """An ISO week as templates show it."""

    key: str
    year: int
    number: int
    first: date
    last: date

    @classmethod
    def of(cls, week: str) -> WeekView:
        parsed = Week.parse(week)
        year, number = parsed.year, parsed.number
        days = week_days(week)
        return cls(week, year, number, days[0], days[-1])


# -- which week ------------------------------------------------------------------------------------------------
def deadline_of(week: str, config: Config) -> datetime | None:
    return weekly_deadline(week, config.weekly_report, config.schedule.zone)


def is_past_deadline(week: str, config: Config, now: datetime) -> bool:
    """Past the deadline a report is late, and a submitted one can no longer be changed."""
    deadline = deadline_of(week, config)
    return deadline is not None and now > deadline


def default_week(session: Session, userid: str, config: Config, now: datetime) -> str:
    """The week /report means: last week's until its deadline (and, still missing, until the end of
    that day: a late report); this week's otherwise."""
    zone = config.schedule.zone
    this_week = week_of(local(config, now).date())
    last_week = shift_week(this_week, -1)
    deadline = deadline_of(last_week, config)
    if deadline is None:
        return this_week
    report = find_report(session, userid, last_week)
    if report is not None and report.status == "submitted":
        return this_week
    if now <= deadline:
        return last_week
    # Late on the deadline day itself, the missing report is still what /report means; from the
    # next day on it is this week's, and last week's is reached with "/report 上周".
    deadline_day = weekly_deadline_day(last_week, config.weekly_report)
    prompt_day = weekly_prompt_day(last_week, config.weekly_report)
    if deadline_day is None or prompt_day is None or now > end_of_day(deadline_day, zone):
        return this_week
    excused = userid in leave.userids_on_leave_between(session, prompt_day, deadline_day, [userid])
    return this_week if excused else last_week


def current_week(config: Config, now: datetime) -> str:
    """The week a team's reports are about now: last week's until the end of its deadline day, then this week's."""
    zone = config.schedule.zone
    this_week = week_of(local(config, now).date())
    last_week = shift_week(this_week, -1)
    deadline_day = weekly_deadline_day(last_week, config.weekly_report)
    if deadline_day is not None and now <= end_of_day(deadline_day, zone):
        return last_week
    return this_week


def editable_weeks(today: date) -> list[str]:
    """The weeks `/report edit` looks at without a week named: this one, then last one."""
    this_week = week_of(today)
    return [this_week, shift_week(this_week, -1)]


# -- one member's report ---------------------------------------------------------------------------------------
def find_report(session: Session, userid: str, week: str) -> WeeklyReport | None:
    return session.scalar(select(WeeklyReport).where(WeeklyReport.userid == userid, WeeklyReport.week == week))


def draft_report(session: Session, userid: str, week: str, now: datetime) -> WeeklyReport:
    """The member's report for the week, created as an empty draft the first time it is needed."""
    report = find_report(session, userid, week)
    if report is None:
        report = WeeklyReport(userid=userid, week=week, answers={}, status="draft", late=False,
                              created_at=now, updated_at=now)
        session.add(report)
        session.flush()
    return report


def save_answers(report: WeeklyReport, changes: Mapping[str, str], now: datetime) -> None:
    report.answers = {**(report.answers or {}), **changes}  # a new dict, so the JSON column is written
    report.updated_at = now
    if report.status == "submitted":
        report.edited_at = now


def save_pasted(report: WeeklyReport, sections: Mapping[str, str], questions: Sequence[ReportQuestion],
                now: datetime) -> None:
    """The sections of a pasted report as answers; an optional section left out counts as skipped."""
    changes = dict(sections)
    for question in questions:
        if not question.required and question.key not in sections and question.key not in (report.answers or {}):
            changes[question.key] = ""
    save_answers(report, changes, now)


def submit_report(report: WeeklyReport, config: Config, now: datetime) -> bool:
    """Submit (late after the deadline) or, already submitted, record the edit; True for a resubmission."""
    resubmitted = report.status == "submitted"
    if resubmitted:
        report.edited_at = now
    else:
        report.status = "submitted"
        report.submitted_at = now
        report.late = is_past_deadline(report.week, config, now)
    report.updated_at = now
    return resubmitted


def answered_count(report: WeeklyReport | None, questions: Sequence[ReportQuestion]) -> int:
    if report is None:
        return 0
    return sum(1 for q in questions if (report.answers or {}).get(q.key, "").strip())


def first_unanswered(answers: Mapping[str, Any], questions: Sequence[ReportQuestion]) -> int | None:
    for index, question in enumerate(questions):
        if question.key not in answers:
            return index
    return None


def missing_required(answers: Mapping[str, Any], questions: Sequence[ReportQuestion]) -> list[ReportQuestion]:
    return [q for q in questions if q.required and not str(answers.get(q.key, "")).strip()]


def next_question(answers: Mapping[str, Any], questions: Sequence[ReportQuestion], after: int,
                  mode: Mode) -> int | None:
    """The question the mode asks after questions[after]: the next unanswered one, the next required one still
    empty, or (editing one question) none."""
    later = range(after + 1, len(questions))
    if mode == Mode.SEQUENTIAL:
        return next((i for i in later if questions[i].key not in answers), None)
    if mode == Mode.MISSING:
        return next((i for i in later
                     if questions[i].required and not str(answers.get(questions[i].key, "")).strip()), None)
    return None


def question_view(config: Config, index: int | None, answers: Mapping[str, Any],
                  editing: bool = False) -> dict[str, Any]:
    """What weekly/_question.txt.j2 shows of questions[index] (question None: every question is answered)."""
    questions = config.weekly_report.questions
    question = questions[index] if index is not None else None
    return {"question": question, "number": index + 1 if index is not None else 0, "total": len(questions),
            "existing": str(answers.get(question.key, "")) if editing and question is not None else "",
            "next_word": words("weekly.next")[0], "skip_word": words("weekly.skip")[0]}


# -- history and teams -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReportEntry:
    """One report as the history and managers' views show it."""

    week: WeekView
    status: str  # submitted | draft | missing | leave
    late: bool
    submitted_at: datetime | None
    answers: dict[str, Any]


def report_entry(config: Config, report: WeeklyReport) -> ReportEntry:
    return ReportEntry(WeekView.of(report.week), report.status, report.late, local(config, report.submitted_at),
                       dict(report.answers or {}))


def recent_reports(session: Session, userid: str, week: str | None = None) -> list[WeeklyReport]:
    """The member's latest reports (only the named week's, when one is named), newest first."""
    query = select(WeeklyReport).where(WeeklyReport.userid == userid)
    if week is not None:
        query = query.where(WeeklyReport.week == week)
    return list(session.scalars(query.order_by(WeeklyReport.week.desc()).limit(HISTORY_COUNT)))


def excused_for_week(session: Session, config: Config, week: str) -> set[str]:
    """Who owes no report for the week (bot.appraisal.leave.userids_excused_for_week on its prompt and deadline)."""
    rules = config.weekly_report
    return leave.userids_excused_for_week(session, week, weekly_prompt_day(week, rules),
                                          weekly_deadline_day(week, rules))


def week_statuses(session: Session, config: Config, week: str, members: Sequence[Member]
                  ) -> list[tuple[Member, str, WeeklyReport | None]]:
    """Each member with where their report for the week stands: submitted | leave | draft | missing."""
    if not members:
        return []
    reports = {r.userid: r for r in session.scalars(select(WeeklyReport).where(WeeklyReport.week == week))}
    excused = excused_for_week(session, config, week)
    rows: list[tuple[Member, str, WeeklyReport | None]] = []
    for member in members:
        report = reports.get(member.userid)
        if report is not None and report.status == "submitted":
            status = "submitted"
        elif member.userid in excused:
            status = "leave"
        else:
            status = "draft" if report is not None else "missing"
        rows.append((member, status, report))
    return rows


@dataclass(frozen=True)
class DigestEntry:
    """A submitted report as a manager's digest shows it: the digest questions answered, trimmed."""

    name: str
    late: bool
    sections: list[tuple[str, str]]  # (question title, trimmed answer)
