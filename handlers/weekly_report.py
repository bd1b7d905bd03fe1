"""The weekly report (周报): the question-by-question conversation, pasted reports, edits, history, managers'
views, and the weekly prompt, reminder and escalation jobs."""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.appraisal import okr
from bot.wecom import cards, outbox, plain_text
from bot.config import Config, ReportQuestion
from bot.storage.models import Conversation, Member, WeeklyReport
from bot.wecom.outbox import Outgoing
from bot.chat.conversation import open_conversation
from bot.chat.routing import Context, ConversationSpec, Role, Router
from bot.templates import render
from bot.appraisal.workcalendar import (end_of_day, next_workday, parse_week, shift_week, week_days, week_of,
                              weekly_deadline, weekly_deadline_day, weekly_prompt_day, workdays_of_week)
from handlers import leave

if TYPE_CHECKING:
    from bot.jobs.context import JobContext

router = Router("weekly_report")

FLOW = "weekly_report"
CARD_PREFIX = "report:"
# The question whose answer is the member's key-result progress: with open KRs it becomes one
# question per KR, each recorded on the KR itself (bot/appraisal/okr.py).
KR_QUESTION_KEY = "kr_progress"
_LEADING_NUMBER = re.compile(r"^\s*[+]?\d[\d,，]*(?:\.\d+)?[^\s，,。；;]*[\s，,。；;]*")  # "3场，" before a note
HISTORY_COUNT = 4

# What a member types to finish a multi-message answer, to skip an optional question, and to answer
# the summary's "submit or edit" (the prompt templates quote the first of each).
NEXT_WORDS = ("好了", "好", "下一题", "下一个", "完成", "写完了", "n", "next", "ok")
SKIP_WORDS = ("跳过", "略过", "skip")
SUBMIT_WORDS = ("1", "提交", "确认", "确认提交", "submit")
EDIT_WORDS = ("2", "修改", "编辑", "edit")
BACK_WORDS = ("返回", "0", "back")


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
class WeekView:
    """An ISO week as templates show it."""

    key: str
    year: int
    number: int
    first: date
    last: date

    @classmethod
    def of(cls, week: str) -> WeekView:
        year, number = parse_week(week)
        days = week_days(week)
        return cls(week, year, number, days[0], days[-1])


# -- words and pasted reports ------------------------------------------------------------------------------
def normalise_word(text: str) -> str:
    return text.strip().strip("。.!！~～ ").lower()


_NUMBERING = r"(?:[0-9０-９]{1,2}|[一二三四五六七八九十]{1,3})"
_PREFIX = re.compile(rf"^\s*(?:#+\s*|\*\*|(?:{_NUMBERING}\s*[.、．)）:：]\s*)|[（(]{_NUMBERING}[)）]\s*)*")
_OPEN_BRACKETS = "【[「《〔"
_CLOSE_BRACKETS = "】]」》〕"


def _heading_names(questions: Sequence[ReportQuestion]) -> list[tuple[str, str]]:
    """(normalised heading, question key), longest first so "本周关键动作" wins over "关键动作"."""
    names: list[tuple[str, str]] = []
    for question in questions:
        for name in (question.title, *question.aliases):
            names.append((_squash(name), question.key))
    return sorted(names, key=lambda item: len(item[0]), reverse=True)


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text).lower()


def _match_heading(line: str, names: Sequence[tuple[str, str]]) -> tuple[str, str] | None:
    """(question key, rest of the line) when the line starts a section, e.g. "【结果与数据】…",
    "1. 本周关键动作", "KR 进展：…" or a heading alone on its line."""
    text = _PREFIX.sub("", line).strip()
    bracketed = bool(text) and text[0] in _OPEN_BRACKETS
    if bracketed:
        text = text[1:]
    squashed_positions = [i for i, ch in enumerate(text) if not ch.isspace()]
    squashed = "".join(text[i] for i in squashed_positions).lower()
    for name, key in names:
        if not squashed.startswith(name):
            continue
        end = squashed_positions[len(name) - 1] + 1  # where the heading ends in the original text
        rest = text[end:].lstrip()
        rest = rest.removeprefix("**").lstrip()
        closed = bool(rest) and rest[0] in _CLOSE_BRACKETS
        if closed:
            rest = rest[1:].lstrip()
        if rest[:1] in (":", "："):
            return key, rest[1:].strip()
        if bracketed and closed:
            return key, rest.strip(" :：")
        if not rest:
            return key, ""
    return None


def parse_pasted_report(text: str, questions: Sequence[ReportQuestion]) -> dict[str, str]:
    """Split a report pasted in one message into sections by their headings; text before the first
    heading is ignored, a heading repeated adds to its section."""
    names = _heading_names(questions)
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        found = _match_heading(line, names)
        if found is not None:
            current, rest = found
            sections.setdefault(current, [])
            if rest:
                sections[current].append(rest)
        elif current is not None:
            sections[current].append(line.rstrip())
    return {key: "\n".join(lines).strip() for key, lines in sections.items()}


def looks_pasted(sections: dict[str, str]) -> bool:
    return len(sections) >= 2


# -- the report cycle --------------------------------------------------------------------------------------
def deadline_of(week: str, config: Config) -> datetime | None:
    return weekly_deadline(week, config.weekly_report, config.schedule.zone)


def is_past_deadline(week: str, config: Config, now: datetime) -> bool:
    deadline = deadline_of(week, config)
    return deadline is not None and now > deadline


def find_report(session: Session, userid: str, week: str) -> WeeklyReport | None:
    return session.scalar(select(WeeklyReport).where(WeeklyReport.userid == userid, WeeklyReport.week == week))


def default_week(session: Session, userid: str, config: Config, now: datetime) -> str:
    """The week /report means: last week's until its deadline (and, still missing, until the end of
    that day: a late report); this week's otherwise."""
    zone = config.schedule.zone
    this_week = week_of(now.astimezone(zone).date())
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


_WEEK_ARG = re.compile(r"(?:(\d{4})\s*-?\s*)?[wW第]?\s*(\d{1,2})\s*周?")


def parse_week_argument(text: str, now_day: date) -> str | None:
    """"2026-W48", "W48", "48", "第48周", "本周", "上周", "上上周" → an ISO week; None if not a week."""
    word = text.strip()
    this_week = week_of(now_day)
    relative = {"本周": 0, "这周": 0, "上周": -1, "上上周": -2, "下周": 1}
    if word in relative:
        return shift_week(this_week, relative[word])
    match = _WEEK_ARG.fullmatch(word)
    if not match or (match.group(1) is None and not re.search(r"[wW第周]", word) and not word.isdigit()):
        return None
    number = int(match.group(2))
    year = int(match.group(1)) if match.group(1) else now_day.isocalendar()[0]
    if match.group(1) is None and number > now_day.isocalendar()[1] + 1:
        year -= 1  # "W50" in January means last December's
    candidate = f"{year}-W{number:02d}"
    try:
        parse_week(candidate)
    except ValueError:
        return None
    return candidate


# -- views for templates -----------------------------------------------------------------------------------
def _local(ctx_or_config: Context | Config, moment: datetime | None) -> datetime | None:
    config = ctx_or_config.config if isinstance(ctx_or_config, Context) else ctx_or_config
    return moment.astimezone(config.schedule.zone) if moment is not None else None


def _answered(report: WeeklyReport | None, questions: Sequence[ReportQuestion]) -> int:
    if report is None:
        return 0
    return sum(1 for q in questions if (report.answers or {}).get(q.key, "").strip())


def _first_unanswered(answers: dict[str, Any], questions: Sequence[ReportQuestion]) -> int | None:
    for index, question in enumerate(questions):
        if question.key not in answers:
            return index
    return None


def _missing_required(answers: dict[str, Any], questions: Sequence[ReportQuestion]) -> list[ReportQuestion]:
    return [q for q in questions if q.required and not str(answers.get(q.key, "")).strip()]


def _snippet(text: str, limit: int = 20) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"


def trim(text: str, limit: int) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit] + "…"


def question_vars(config: Config, index: int, answers: dict[str, Any], editing: bool = False) -> dict[str, Any]:
    questions = config.weekly_report.questions
    question = questions[index]
    return {"question": question, "number": index + 1, "total": len(questions),
            "existing": str(answers.get(question.key, "")) if editing else "",
            "next_word": NEXT_WORDS[0], "skip_word": SKIP_WORDS[0]}


# -- the conversation ----------------------------------------------------------------------------------------
def _draft(ctx: Context, week: str) -> WeeklyReport:
    report = find_report(ctx.session, ctx.person.userid, week)
    if report is None:
        now = ctx.now
        report = WeeklyReport(userid=ctx.person.userid, week=week, answers={}, status="draft", late=False,
                              created_at=now, updated_at=now)
        ctx.session.add(report)
        ctx.session.flush()
    return report


def _save_answers(ctx: Context, report: WeeklyReport, changes: dict[str, str]) -> None:
    report.answers = {**(report.answers or {}), **changes}  # a new dict, so the JSON column is written
    report.updated_at = ctx.now
    if report.status == "submitted":
        report.edited_at = ctx.now


def _ask(ctx: Context, week: str, index: int, mode: Mode, report: WeeklyReport,
         template: str = "weekly/question.txt.j2", **extra: Any) -> None:
    editing = mode == Mode.EDIT
    question = ctx.config.weekly_report.questions[index]
    if question.key == KR_QUESTION_KEY:
        today = ctx.now.astimezone(ctx.config.schedule.zone).date()
        krs = okr.open_krs_for(ctx.session, ctx.person.userid, on=today)
        if krs:
            if template != "weekly/question.txt.j2":  # a start or paste preface still has to be read
                ctx.reply(template, **question_vars(ctx.config, index, report.answers or {}, editing), **extra)
            ctx.conversation.move(ReportState.KR_PROGRESS, index=index, mode=mode, week=week, untouched=False,
                                  kr_ids=[kr.id for kr in krs], kr_pos=0, kr_lines=[])
            ctx.reply("okr/weekly_kr_question.txt.j2", kr=krs[0], index=1, total=len(krs))
            return
    ctx.conversation.move(ReportState.ANSWERING, index=index, mode=mode, parts=0, fresh=editing, untouched=False,
                          week=week)
    ctx.reply(template, **question_vars(ctx.config, index, report.answers or {}, editing), **extra)


def _open(ctx: Context, week: str, state: ReportState, **data: Any) -> None:
    ctx.conversation.start(FLOW, state, {"week": week, "index": 0, "mode": Mode.SEQUENTIAL, "parts": 0,
                                         "fresh": False, "untouched": False, **data})


def _summary_vars(ctx: Context, report: WeeklyReport) -> dict[str, Any]:
    deadline = _local(ctx, deadline_of(report.week, ctx.config))
    return {"who": ctx.person.name, "week": WeekView.of(report.week), "questions": ctx.config.weekly_report.questions,
            "answers": report.answers or {}, "deadline": deadline,
            "past_deadline": bool(deadline and ctx.now > deadline), "submitted": report.status == "submitted"}


def _show_summary(ctx: Context, report: WeeklyReport, preface: str = "") -> None:
    """The whole report as text (with the 1/2 fallback), then the card with 提交 / 修改."""
    if ctx.conversation.flow == FLOW:
        ctx.conversation.move(ReportState.REVIEWING, untouched=False, week=report.week)
    else:
        _open(ctx, report.week, ReportState.REVIEWING)
    variables = _summary_vars(ctx, report)
    ctx.reply("weekly/summary.txt.j2", preface=preface, with_card=plain_text.gets_cards(ctx.config, ctx.person.userid),
              **variables)
    ctx.reply_card(_summary_card(ctx, report, variables), report_subject(report))


def report_subject(report: WeeklyReport) -> str:
    """What a summary card is about (bot.wecom.card_state): one member's report for one week."""
    return f"report:{report.userid}:{report.week}"


def _summary_card(ctx: Context, report: WeeklyReport, variables: dict[str, Any]) -> dict[str, Any]:
    def piece(part: str) -> str:
        return ctx.render("weekly/card_text.txt.j2", part=part, **variables)

    return cards.button_card(
        task_id=cards.new_task_id(f"report_{report.week}"),
        title=piece("title"), description=piece("desc"), body=piece("body"), source=piece("source"),
        buttons=[cards.CardButton(piece("submit"), f"{CARD_PREFIX}submit:{report.week}", cards.ButtonStyle.PRIMARY),
                 cards.CardButton(piece("edit"), f"{CARD_PREFIX}edit:{report.week}", cards.ButtonStyle.SECONDARY)])


def _advance(ctx: Context, report: WeeklyReport, index: int) -> None:
    """After a question: the next one the mode asks for, else the summary."""
    questions = ctx.config.weekly_report.questions
    mode = Mode(ctx.conversation.data.get("mode", Mode.SEQUENTIAL))
    answers = report.answers or {}
    following: int | None = None
    if mode == Mode.SEQUENTIAL:
        following = next((i for i in range(index + 1, len(questions)) if questions[i].key not in answers), None)
    elif mode == Mode.MISSING:
        following = next((i for i in range(index + 1, len(questions))
                          if questions[i].required and not str(answers.get(questions[i].key, "")).strip()), None)
    if following is None:
        missing = _missing_required(answers, questions)
        if missing:  # e.g. the member skipped back over a required one via an edit
            first = questions.index(missing[0])
            _ask(ctx, report.week, first, Mode.MISSING, report, "weekly/missing_required.txt.j2",
                 missing=[q.title for q in missing])
            return
        _show_summary(ctx, report)
        return
    _ask(ctx, report.week, following, mode, report)


def _apply_paste(ctx: Context, report: WeeklyReport, sections: dict[str, str]) -> None:
    questions = ctx.config.weekly_report.questions
    changes = {key: value for key, value in sections.items()}
    for question in questions:  # an optional section left out of a pasted report counts as skipped
        if not question.required and question.key not in sections and question.key not in (report.answers or {}):
            changes[question.key] = ""
    _save_answers(ctx, report, changes)
    recognised = [q.title for q in questions if q.key in sections]
    missing = _missing_required(report.answers, questions)
    if missing:
        first = questions.index(missing[0])
        _ask(ctx, report.week, first, Mode.MISSING, report, "weekly/pasted.txt.j2", recognised=recognised,
             missing=[q.title for q in missing])
        return
    _show_summary(ctx, report, preface=ctx.render("weekly/pasted_preface.txt.j2", recognised=recognised))


def on_answer(ctx: Context) -> None:
    data = ctx.conversation.data
    week, index = data["week"], int(data.get("index", 0))
    questions = ctx.config.weekly_report.questions
    if index >= len(questions):  # the questions were changed in config while this was open
        index = len(questions) - 1
    question = questions[index]
    report = _draft(ctx, week)
    text = ctx.update.content.strip()
    sections = parse_pasted_report(text, questions)
    if looks_pasted(sections):
        _apply_paste(ctx, report, sections)
        return
    word = normalise_word(text)
    current = str((report.answers or {}).get(question.key, ""))
    if word in NEXT_WORDS:
        if question.required and not current.strip():
            ctx.conversation.move(ReportState.ANSWERING, untouched=False)
            ctx.reply("weekly/required_empty.txt.j2", **question_vars(ctx.config, index, report.answers))
            return
        if question.key not in (report.answers or {}):
            _save_answers(ctx, report, {question.key: ""})
        _advance(ctx, report, index)
        return
    if word in SKIP_WORDS:
        if question.required:
            ctx.conversation.move(ReportState.ANSWERING, untouched=False)
            ctx.reply("weekly/cannot_skip.txt.j2", **question_vars(ctx.config, index, report.answers))
            return
        _save_answers(ctx, report, {question.key: current if question.key in (report.answers or {}) else ""})
        _advance(ctx, report, index)
        return
    if not text:
        ctx.reply("weekly/required_empty.txt.j2", **question_vars(ctx.config, index, report.answers))
        return
    fresh = bool(data.get("fresh"))
    value = text if fresh or not current.strip() else f"{current}\n{text}"
    _save_answers(ctx, report, {question.key: value})
    parts = int(data.get("parts", 0)) + 1
    ctx.conversation.move(ReportState.ANSWERING, parts=parts, fresh=False, untouched=False)
    back_to_summary = index == len(questions) - 1 or data.get("mode") == Mode.EDIT
    ctx.reply("weekly/ack.txt.j2", question=question, parts=parts, snippet=_snippet(text),
              next_word=NEXT_WORDS[0], last=back_to_summary)


def on_kr_progress(ctx: Context) -> None:
    """One open KR's progress: a number (with an optional note) recorded on the KR, or 跳过."""
    data = ctx.conversation.data
    week, index = data["week"], int(data.get("index", 0))
    kr_ids: list[int] = list(data.get("kr_ids", []))
    position = int(data.get("kr_pos", 0))
    lines: list[str] = list(data.get("kr_lines", []))
    report = _draft(ctx, week)
    text = ctx.update.content.strip()
    krs = {kr.id: kr for kr in okr.kr_views(ctx.session, [okr.get_kr(ctx.session, kr_id) for kr_id in kr_ids])}
    kr = krs[kr_ids[position]]
    if normalise_word(text) not in SKIP_WORDS:
        value = okr.parse_number(text)
        if value is None:
            ctx.reply("weekly/kr_invalid.txt.j2", kr=kr, text=_snippet(text))
            return
        note = _LEADING_NUMBER.sub("", text, count=1).strip()
        updated = okr.record_kr_progress(ctx.session, kr.id, value, note, ctx.now, by=ctx.person.userid)
        lines.append(ctx.render("weekly/kr_line.txt.j2", kr=updated, before=kr, note=note))
    else:
        lines.append(ctx.render("weekly/kr_line.txt.j2", kr=kr, before=kr, note=""))
    position += 1
    if position < len(kr_ids):
        ctx.conversation.move(ReportState.KR_PROGRESS, kr_pos=position, kr_lines=lines, untouched=False)
        ctx.reply("okr/weekly_kr_question.txt.j2", kr=krs[kr_ids[position]], index=position + 1, total=len(kr_ids))
        return
    _save_answers(ctx, report, {KR_QUESTION_KEY: "\n".join(lines)})
    _advance(ctx, report, index)


def on_reviewing(ctx: Context) -> None:
    week = ctx.conversation.data["week"]
    report = _draft(ctx, week)
    text = ctx.update.content.strip()
    sections = parse_pasted_report(text, ctx.config.weekly_report.questions)
    if looks_pasted(sections):
        _apply_paste(ctx, report, sections)
        return
    word = normalise_word(text)
    if word in SUBMIT_WORDS:
        submit(ctx, report)
    elif word in EDIT_WORDS:
        _choose(ctx, report)
    else:
        ctx.conversation.move(ReportState.REVIEWING, untouched=False)
        ctx.reply("weekly/review_hint.txt.j2", text=_snippet(text))


def _choose(ctx: Context, report: WeeklyReport, with_summary: bool = False) -> None:
    ctx.finish_cards(report_subject(report), "editing")
    if ctx.conversation.flow == FLOW:
        ctx.conversation.move(ReportState.CHOOSING, untouched=False, week=report.week)
    else:
        _open(ctx, report.week, ReportState.CHOOSING)
    variables = _summary_vars(ctx, report) if with_summary else {
        "questions": ctx.config.weekly_report.questions, "answers": report.answers or {}}
    ctx.reply("weekly/choose.txt.j2", with_summary=with_summary, **variables)


def on_choosing(ctx: Context) -> None:
    week = ctx.conversation.data["week"]
    report = _draft(ctx, week)
    questions = ctx.config.weekly_report.questions
    text = ctx.update.content.strip()
    word = normalise_word(text)
    if word in BACK_WORDS:
        _show_summary(ctx, report)
        return
    chosen: int | None = None
    digits = word.translate(str.maketrans("０１２３４５６７８９", "0123456789"))
    if digits.isdigit() and 1 <= int(digits) <= len(questions):
        chosen = int(digits) - 1
    else:
        squashed = _squash(text)
        chosen = next((i for i, q in enumerate(questions)
                       if squashed in (_squash(q.title), *(_squash(a) for a in q.aliases))), None)
    if chosen is None:
        ctx.conversation.move(ReportState.CHOOSING, untouched=False)
        ctx.reply("weekly/choose_hint.txt.j2", text=_snippet(text), total=len(questions))
        return
    _ask(ctx, week, chosen, Mode.EDIT, report)


def submit(ctx: Context, report: WeeklyReport) -> None:
    questions = ctx.config.weekly_report.questions
    missing = _missing_required(report.answers or {}, questions)
    if missing:
        if ctx.conversation.flow != FLOW:
            _open(ctx, report.week, ReportState.ANSWERING)
        _ask(ctx, report.week, questions.index(missing[0]), Mode.MISSING, report, "weekly/missing_required.txt.j2",
             missing=[q.title for q in missing])
        return
    now = ctx.now
    deadline = deadline_of(report.week, ctx.config)
    resubmitted = report.status == "submitted"
    if resubmitted:
        report.edited_at = now
    else:
        report.status = "submitted"
        report.submitted_at = now
        report.late = deadline is not None and now > deadline
    report.updated_at = now
    if ctx.conversation.flow == FLOW and ctx.conversation.data.get("week") == report.week:
        ctx.conversation.end()
    ctx.finish_cards(report_subject(report), "submitted")
    ctx.reply("weekly/submitted.txt.j2", who=ctx.person.name, week=WeekView.of(report.week), late=report.late,
              resubmitted=resubmitted, deadline=_local(ctx, deadline),
              can_edit=deadline is None or now <= deadline)


def start_or_resume(ctx: Context, week: str | None = None) -> None:
    """`/report`: continue the open report conversation, else open the report for the week."""
    conversation = ctx.conversation
    if conversation.flow == FLOW and not conversation.is_expired(ctx.now) and (
            week is None or conversation.data.get("week") == week):
        _resume(ctx)
        return
    week = week or default_week(ctx.session, ctx.person.userid, ctx.config, ctx.now)
    report = find_report(ctx.session, ctx.person.userid, week)
    if report is not None and report.status == "submitted":
        deadline = _local(ctx, deadline_of(week, ctx.config))
        ctx.reply("weekly/already_submitted.txt.j2", week=WeekView.of(week),
                  submitted_at=_local(ctx, report.submitted_at), late=report.late, deadline=deadline,
                  can_edit=deadline is None or ctx.now <= deadline)
        return
    answers = report.answers if report is not None else {}
    first = _first_unanswered(answers, ctx.config.weekly_report.questions)
    _open(ctx, week, ReportState.ANSWERING)
    if first is None:
        _show_summary(ctx, report or _draft(ctx, week))
        return
    _ask(ctx, week, first, Mode.SEQUENTIAL, report or _draft(ctx, week), "weekly/start.txt.j2",
         week_view=WeekView.of(week), who=ctx.person.name, deadline=_local(ctx, deadline_of(week, ctx.config)),
         past_deadline=is_past_deadline(week, ctx.config, ctx.now),
         answered=_answered(report, ctx.config.weekly_report.questions))


def _resume(ctx: Context) -> None:
    data = ctx.conversation.data
    report = _draft(ctx, data["week"])
    state = ctx.conversation.state
    if state == ReportState.REVIEWING:
        _show_summary(ctx, report)
    elif state == ReportState.CHOOSING:
        _choose(ctx, report, with_summary=True)
    elif state == ReportState.KR_PROGRESS:
        kr_ids, position = list(data.get("kr_ids", [])), int(data.get("kr_pos", 0))
        kr = okr.kr_views(ctx.session, [okr.get_kr(ctx.session, kr_ids[position])])[0]
        ctx.conversation.move(ReportState.KR_PROGRESS, untouched=False)
        ctx.reply("okr/weekly_kr_question.txt.j2", kr=kr, index=position + 1, total=len(kr_ids))
    else:
        index = int(data.get("index", 0))
        ctx.conversation.move(ReportState.ANSWERING, untouched=False)
        ctx.reply("weekly/question.txt.j2", resumed=True,
                  **question_vars(ctx.config, index, report.answers or {}, data.get("mode") == Mode.EDIT))


def on_cancel(ctx: Context) -> None:
    data = ctx.conversation.data
    report = find_report(ctx.session, ctx.person.userid, data.get("week", ""))
    if report is not None and report.status == "draft":
        ctx.reply("weekly/cancelled.txt.j2", week=WeekView.of(report.week),
                  answered=_answered(report, ctx.config.weekly_report.questions),
                  total=len(ctx.config.weekly_report.questions))


def on_timeout(ctx: Context) -> None:
    """An idle conversation closes; every answer was saved as it came, so the draft is kept as it is."""
    data = ctx.conversation.data
    if data.get("untouched"):
        return  # a prompt nobody answered: nothing to report
    report = find_report(ctx.session, ctx.person.userid, data.get("week", ""))
    if report is None or report.status == "submitted":
        return
    ctx.reply("weekly/timed_out.txt.j2", who=ctx.person.name, week=WeekView.of(report.week),
              answered=_answered(report, ctx.config.weekly_report.questions),
              total=len(ctx.config.weekly_report.questions), minutes=ctx.config.bot.conversation_timeout_minutes)


CONVERSATION = router.conversation(ConversationSpec(
    name=FLOW,
    states={ReportState.ANSWERING: on_answer, ReportState.KR_PROGRESS: on_kr_progress,
            ReportState.REVIEWING: on_reviewing, ReportState.CHOOSING: on_choosing},
    on_cancel=on_cancel,
    on_timeout=on_timeout,
))


# -- commands --------------------------------------------------------------------------------------------------
@router.command("/report", "/周报", "/zb")
def report_command(ctx: Context) -> None:
    args = ctx.args.strip()
    head, _, rest = args.partition(" ")
    sub = head.lower()
    if sub in ("edit", "修改", "编辑"):
        edit_report(ctx, rest.strip())
        return
    if sub in ("history", "历史", "记录"):
        show_history(ctx)
        return
    sections = parse_pasted_report(args, ctx.config.weekly_report.questions)
    if looks_pasted(sections):  # "/report" followed by a whole pasted report
        week = default_week(ctx.session, ctx.person.userid, ctx.config, ctx.now)
        if ctx.conversation.flow == FLOW:
            week = ctx.conversation.data.get("week", week)
        report = _draft(ctx, week)
        if report.status == "submitted" and is_past_deadline(week, ctx.config, ctx.now):
            ctx.reply("weekly/edit_unavailable.txt.j2", week=WeekView.of(week), reason="closed",
                      deadline=_local(ctx, deadline_of(week, ctx.config)))
            return
        if ctx.conversation.flow != FLOW:
            _open(ctx, week, ReportState.ANSWERING)
        _apply_paste(ctx, report, sections)
        return
    week = None
    if args:
        week = parse_week_argument(args, ctx.now.astimezone(ctx.config.schedule.zone).date())
        if week is None:
            ctx.reply("weekly/bad_argument.txt.j2", text=_snippet(args))
            return
    start_or_resume(ctx, week)


def edit_report(ctx: Context, argument: str) -> None:
    """`/report edit [week]`: reopen a submitted report until its deadline."""
    today = ctx.now.astimezone(ctx.config.schedule.zone).date()
    if argument:
        week = parse_week_argument(argument, today)
        if week is None:
            ctx.reply("weekly/bad_argument.txt.j2", text=_snippet(argument))
            return
        candidates = [week]
    else:
        this_week = week_of(today)
        candidates = [this_week, shift_week(this_week, -1)]
    reports = [r for r in (find_report(ctx.session, ctx.person.userid, w) for w in candidates) if r is not None]
    open_reports = [r for r in reports if not is_past_deadline(r.week, ctx.config, ctx.now)]
    submitted = [r for r in open_reports if r.status == "submitted"]
    if submitted:
        _choose(ctx, submitted[0], with_summary=True)
        return
    drafts = [r for r in reports if r.status == "draft"]
    if drafts:
        start_or_resume(ctx, drafts[0].week)
        return
    if reports:
        closed = reports[0]
        ctx.reply("weekly/edit_unavailable.txt.j2", week=WeekView.of(closed.week), reason="closed",
                  deadline=_local(ctx, deadline_of(closed.week, ctx.config)))
        return
    ctx.reply("weekly/edit_unavailable.txt.j2", week=WeekView.of(candidates[0]), reason="none", deadline=None)


def show_history(ctx: Context) -> None:
    reports = ctx.session.scalars(select(WeeklyReport).where(WeeklyReport.userid == ctx.person.userid)
                                  .order_by(WeeklyReport.week.desc()).limit(HISTORY_COUNT)).all()
    ctx.reply("weekly/history.md.j2", who=ctx.person.name, entries=[_entry(ctx.config, r) for r in reports],
              questions=ctx.config.weekly_report.questions, limit=60)


@dataclass(frozen=True)
class ReportEntry:
    """One report as the history and managers' views show it."""

    week: WeekView
    status: str  # submitted | draft | missing | leave
    late: bool
    submitted_at: datetime | None
    answers: dict[str, Any]


def _entry(config: Config, report: WeeklyReport) -> ReportEntry:
    return ReportEntry(WeekView.of(report.week), report.status, report.late, _local(config, report.submitted_at),
                       dict(report.answers or {}))


# -- card clicks -------------------------------------------------------------------------------------------------
@router.card(CARD_PREFIX)
def on_card(ctx: Context) -> None:
    _, action, week = (ctx.update.event_key.split(":", 2) + ["", ""])[:3]
    try:
        parse_week(week)
    except ValueError:
        ctx.reply("card_expired.txt.j2")
        return
    report = find_report(ctx.session, ctx.person.userid, week)
    if report is None or action not in ("submit", "edit"):
        ctx.reply("card_expired.txt.j2")
        return
    editing_this = ctx.conversation.flow == FLOW and ctx.conversation.data.get("week") == week
    past_deadline = is_past_deadline(week, ctx.config, ctx.now)
    if action == "submit":
        if report.status == "submitted" and not editing_this:
            # A second click (or a click on an old card) changes nothing.
            ctx.reply("weekly/already_submitted.txt.j2", week=WeekView.of(week),
                      submitted_at=_local(ctx, report.submitted_at), late=report.late,
                      deadline=_local(ctx, deadline_of(week, ctx.config)), can_edit=not past_deadline)
            return
        submit(ctx, report)
        return
    if report.status == "submitted" and past_deadline:
        ctx.reply("weekly/edit_unavailable.txt.j2", week=WeekView.of(week), reason="closed",
                  deadline=_local(ctx, deadline_of(week, ctx.config)))
        return
    _choose(ctx, report)


# -- managers ------------------------------------------------------------------------------------------------------
def team_of(session: Session, manager: str, role: Role) -> list[Member]:
    """Active members a manager may see: their reports, and reports' reports; an admin sees everyone."""
    members = session.scalars(select(Member).where(Member.active.is_(True)).order_by(Member.userid)).all()
    if role >= Role.ADMIN:
        return [m for m in members if m.userid != manager]
    reports_to: dict[str, list[Member]] = {}
    for member in members:
        if member.manager_userid:
            reports_to.setdefault(member.manager_userid, []).append(member)
    team: list[Member] = []
    seen = {manager}
    queue = [manager]
    while queue:
        for member in reports_to.get(queue.pop(0), []):
            if member.userid not in seen:
                seen.add(member.userid)
                team.append(member)
                queue.append(member.userid)
    return team


def resolve_member(session: Session, text: str, within: Iterable[Member]) -> tuple[list[Member], list[Member]]:
    """Members named by userid or name: (matches inside `within`, matches anywhere)."""
    wanted = text.strip()
    everyone = session.scalars(select(Member).where(
        (Member.userid == wanted) | (Member.name == wanted))).all()
    lowered = wanted.lower()
    everyone = list(everyone) or [m for m in session.scalars(select(Member).where(Member.active.is_(True)))
                                  if m.userid.lower() == lowered]
    allowed = {m.userid for m in within}
    return [m for m in everyone if m.userid in allowed], list(everyone)


def current_week(config: Config, now: datetime) -> str:
    """The week a team's reports are about now: last week's until the end of its deadline day, then this week's."""
    zone = config.schedule.zone
    this_week = week_of(now.astimezone(zone).date())
    last_week = shift_week(this_week, -1)
    deadline_day = weekly_deadline_day(last_week, config.weekly_report)
    if deadline_day is not None and now <= end_of_day(deadline_day, zone):
        return last_week
    return this_week


@router.command("/reports", "/团队周报", role=Role.MANAGER)
def team_reports_command(ctx: Context) -> None:
    today = ctx.now.astimezone(ctx.config.schedule.zone).date()
    member_text, week = "", None
    for token in ctx.args.split():
        parsed = parse_week_argument(token, today)
        if parsed is not None and week is None:
            week = parsed
        else:
            member_text = f"{member_text} {token}".strip()
    team = team_of(ctx.session, ctx.person.userid, ctx.person.role)
    if member_text:
        inside, anywhere = resolve_member(ctx.session, member_text, team)
        if not inside:
            template = "weekly/not_your_team.txt.j2" if anywhere else "weekly/member_not_found.txt.j2"
            ctx.reply(template, who=ctx.person.name, text=member_text)
            return
        if len(inside) > 1:
            ctx.reply("weekly/member_ambiguous.txt.j2", text=member_text, members=inside)
            return
        _member_reports(ctx, inside[0], week)
        return
    _team_week(ctx, team, week or current_week(ctx.config, ctx.now))


def _member_reports(ctx: Context, member: Member, week: str | None) -> None:
    query = select(WeeklyReport).where(WeeklyReport.userid == member.userid)
    if week is not None:
        query = query.where(WeeklyReport.week == week)
    reports = ctx.session.scalars(query.order_by(WeeklyReport.week.desc()).limit(HISTORY_COUNT)).all()
    ctx.reply("weekly/member_reports.md.j2", member=member, entries=[_entry(ctx.config, r) for r in reports],
              questions=ctx.config.weekly_report.questions, week=WeekView.of(week) if week else None, limit=300)


def _team_week(ctx: Context, team: Sequence[Member], week: str) -> None:
    rules = ctx.config.weekly_report
    reports = {r.userid: r for r in ctx.session.scalars(select(WeeklyReport).where(
        WeeklyReport.week == week, WeeklyReport.userid.in_([m.userid for m in team])))} if team else {}
    prompt_day, deadline_day = weekly_prompt_day(week, rules), weekly_deadline_day(week, rules)
    excused = leave.userids_excused_for_week(ctx.session, week, prompt_day, deadline_day) if team else set()
    rows = []
    for member in team:
        report = reports.get(member.userid)
        if report is not None and report.status == "submitted":
            status = "submitted"
        elif member.userid in excused:
            status = "leave"
        else:
            status = "draft" if report is not None else "missing"
        rows.append((member, status, report))
    ctx.reply("weekly/team_reports.md.j2", week=WeekView.of(week), rows=rows, key=rules.questions[0].key,
              deadline=_local(ctx, deadline_of(week, ctx.config)), limit=40,
              counts={s: sum(1 for _, st, _ in rows if st == s) for s in ("submitted", "draft", "missing", "leave")})


# -- scheduled jobs ----------------------------------------------------------------------------------------------
def _waiting_until(day: date, config: Config) -> datetime:
    """A prompt waits for its answer until the end of the next workday, then is quietly closed."""
    return end_of_day(next_workday(day), config.schedule.zone)


def open_waiting_conversation(session: Session, existing: Conversation | None, userid: str, flow: str, state: str,
                              data: dict[str, Any], now: datetime, expires: datetime) -> bool:
    """Let a scheduled prompt open the member's conversation, so their next message answers it.

    Never over a conversation the member is in the middle of; an expired one or a prompt they
    never answered may be replaced (what they entered lives in its own table, not in the conversation).
    """
    return open_conversation(session, existing, userid, flow, state, data, now, expires, prompted=True) is not None


def _active_members(session: Session) -> list[Member]:
    return list(session.scalars(select(Member).where(Member.active.is_(True)).order_by(Member.userid)))


def _ask_members(job: JobContext, kind: str) -> str:
    """The prompt ("prompt") or the reminder ("reminder"): one message to each member who still owes the report."""
    session, config, week = job.session, job.config, job.period
    now = job.clock.now()
    day = job.at.date()
    questions = config.weekly_report.questions
    members = _active_members(session)
    on_leave = leave.userids_on_leave(session, day) | leave.userids_on_leave_all_of(session, workdays_of_week(week))
    if kind == "reminder":
        # Away at any time between the prompt and the deadline: the leave confirmation promised no reminder.
        on_leave |= leave.userids_excused_for_week(session, week, weekly_prompt_day(week, config.weekly_report),
                                                   weekly_deadline_day(week, config.weekly_report))
    reports = {r.userid: r for r in session.scalars(select(WeeklyReport).where(WeeklyReport.week == week))}
    conversations = {c.userid: c for c in session.scalars(select(Conversation))}
    deadline = deadline_of(week, config)
    expires = max(_waiting_until(day, config), now + timedelta(minutes=config.bot.conversation_timeout_minutes))
    asked = skipped_leave = already = 0
    for member in members:
        report = reports.get(member.userid)
        if member.userid in on_leave:
            skipped_leave += 1
            continue
        if report is not None and report.status == "submitted":
            already += 1
            continue
        answers = dict(report.answers or {}) if report is not None else {}
        first = _first_unanswered(answers, questions)
        opened = False
        if first is not None:
            opened = open_waiting_conversation(
                session, conversations.get(member.userid), member.userid, FLOW, ReportState.ANSWERING,
                {"week": week, "index": first, "mode": Mode.SEQUENTIAL, "parts": 0, "fresh": False}, now, expires)
        text = render(f"weekly/{kind}.txt.j2", config.bot.locale, who=member.name, week_view=WeekView.of(week),
                      deadline=_local(config, deadline), opened=opened, answered=_answered(report, questions),
                      **(question_vars(config, first, answers) if first is not None else
                         {"question": None, "number": 0, "total": len(questions), "existing": "",
                          "next_word": NEXT_WORDS[0], "skip_word": SKIP_WORDS[0]}))
        outbox.enqueue(session, f"job:weekly_{kind}:{week}:{member.userid}", Outgoing.text(member.userid, text), now)
        asked += 1
    return render("weekly/job_detail.txt.j2", config.bot.locale, kind=kind, week=week, asked=asked,
                  on_leave=skipped_leave, already=already)


def send_weekly_prompts(job: JobContext) -> str:
    return _ask_members(job, "prompt")


def send_weekly_reminders(job: JobContext) -> str:
    return _ask_members(job, "reminder")


@dataclass(frozen=True)
class DigestEntry:
    name: str
    late: bool
    sections: list[tuple[str, str]]  # (question title, trimmed answer)


def send_weekly_escalations(job: JobContext) -> str:
    """After the deadline each manager gets who in their team is missing and a digest of the submitted reports."""
    session, config, week = job.session, job.config, job.period
    rules = config.weekly_report
    now = job.clock.now()
    members = _active_members(session)
    by_id = {m.userid: m for m in members}
    prompt_day, deadline_day = weekly_prompt_day(week, rules), weekly_deadline_day(week, rules)
    excused = leave.userids_excused_for_week(session, week, prompt_day, deadline_day)
    reports = {r.userid: r for r in session.scalars(select(WeeklyReport).where(
        WeeklyReport.week == week, WeeklyReport.status == "submitted"))}
    teams: dict[str, list[Member]] = {}
    for member in members:
        if member.manager_userid in by_id:
            teams.setdefault(member.manager_userid, []).append(member)
    digest_questions = [rules.question(key) for key in rules.digest_keys]
    sent = 0
    for manager_id, team in sorted(teams.items()):
        missing = [m for m in team if m.userid not in reports and m.userid not in excused]
        on_leave = [m for m in team if m.userid not in reports and m.userid in excused]
        entries = []
        for member in team:
            report = reports.get(member.userid)
            if report is None:
                continue
            sections = [(q.title, trim(str((report.answers or {}).get(q.key, "")), rules.digest_chars))
                        for q in digest_questions if str((report.answers or {}).get(q.key, "")).strip()]
            entries.append(DigestEntry(member.name, report.late, sections))
        text = render("weekly/escalation.md.j2", config.bot.locale, manager=by_id[manager_id],
                      week_view=WeekView.of(week), deadline=_local(config, deadline_of(week, config)),
                      team_size=len(team), missing=missing, on_leave=on_leave, entries=entries)
        outbox.enqueue(session, f"job:weekly_escalation:{week}:{manager_id}",
                       plain_text.message(config, manager_id, text, markdown=True), now)
        sent += 1
    return render("weekly/job_detail.txt.j2", config.bot.locale, kind="escalation", week=week, asked=sent,
                  on_leave=0, already=0)
