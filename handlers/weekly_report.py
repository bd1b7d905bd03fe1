"""/report: the weekly report (周报) question by question or pasted at once, its summary card, edits and history."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from bot.appraisal import okr
from bot.appraisal.weekly_paste import kr_progress_note, looks_pasted, parse_pasted_report, question_named
from bot.appraisal.weekly_reports import (FLOW, KR_QUESTION_KEY, Mode, ReportState, ReportStep, WeekView,
                                          answered_count, deadline_of, default_week, draft_report, editable_weeks,
                                          find_report, first_unanswered, is_past_deadline, missing_required,
                                          next_question, question_view, recent_reports,
                                          report_entry, save_answers, save_pasted, submit_report)
from bot.appraisal.periods import Week, parse_week
from bot.appraisal.workcalendar import local
from bot.chat.conversation import ConversationSpec
from bot.chat.routing import Context, Router
from bot.storage.models import WeeklyReport
from bot.templates import trim, words
from bot.wecom import cards, plain_text

router = Router("weekly_report")

CARD_PREFIX = "report:"
SNIPPET_CHARS = 20  # how much of what the member wrote an acknowledgement quotes back


def _normalise_word(text: str) -> str:
    return text.strip().strip("。.!！~～ ").lower()


# -- where the member is ---------------------------------------------------------------------------------------
def _step(ctx: Context) -> ReportStep:
    return ReportStep.from_dict(ctx.conversation.data)


def _go(ctx: Context, state: ReportState, step: ReportStep) -> None:
    """Move the open report conversation on; the member has answered, so it is no longer an untouched prompt."""
    ctx.conversation.move(state, **replace(step, untouched=False).to_dict())


def _open(ctx: Context, week: str, state: ReportState) -> None:
    ctx.conversation.start(FLOW, state, ReportStep(week).to_dict())


def _enter(ctx: Context, week: str, state: ReportState) -> None:
    """Go to `state` for `week`: in the open report conversation, else in a new one."""
    if ctx.conversation.flow == FLOW:
        _go(ctx, state, replace(_step(ctx), week=week))
    else:
        _open(ctx, week, state)


def _draft(ctx: Context, week: str) -> WeeklyReport:
    return draft_report(ctx.session, ctx.person.userid, week, ctx.now)


def _ask(ctx: Context, week: str, index: int, mode: Mode, report: WeeklyReport,
         template: str = "weekly/question.txt.j2", **extra: Any) -> None:
    editing = mode == Mode.EDIT
    question = ctx.config.weekly_report.questions[index]
    view = question_view(ctx.config, index, report.answers or {}, editing)
    asked = replace(_step(ctx), week=week, index=index, mode=mode)
    if question.key == KR_QUESTION_KEY:
        krs = okr.open_krs_for(ctx.session, ctx.person.userid, on=local(ctx.config, ctx.now).date())
        if krs:
            if template != "weekly/question.txt.j2":  # a start or paste preface still has to be read
                ctx.reply(template, **view, **extra)
            _go(ctx, ReportState.KR_PROGRESS, replace(asked, kr_ids=tuple(kr.id for kr in krs), kr_pos=0, kr_lines=()))
            ctx.reply("okr/weekly_kr_question.txt.j2", kr=krs[0], index=1, total=len(krs))
            return
    _go(ctx, ReportState.ANSWERING, replace(asked, parts=0, fresh=editing))
    ctx.reply(template, **view, **extra)


def _summary_vars(ctx: Context, report: WeeklyReport) -> dict[str, Any]:
    deadline = local(ctx.config, deadline_of(report.week, ctx.config))
    return {"who": ctx.person.name, "week": WeekView.of(report.week), "questions": ctx.config.weekly_report.questions,
            "answers": report.answers or {}, "deadline": deadline,
            "past_deadline": is_past_deadline(report.week, ctx.config, ctx.now),
            "submitted": report.status == "submitted"}


def _show_summary(ctx: Context, report: WeeklyReport, preface: str = "") -> None:
    """The whole report as text (with the 1/2 fallback), then the card with 提交 / 修改."""
    _enter(ctx, report.week, ReportState.REVIEWING)
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


def _ask_missing(ctx: Context, report: WeeklyReport, template: str, **extra: Any) -> bool:
    """Ask the first required question still empty (True), or do nothing when there is none (False)."""
    questions = ctx.config.weekly_report.questions
    missing = missing_required(report.answers or {}, questions)
    if not missing:
        return False
    _ask(ctx, report.week, questions.index(missing[0]), Mode.MISSING, report, template,
         missing=[q.title for q in missing], **extra)
    return True


def _advance(ctx: Context, report: WeeklyReport, index: int) -> None:
    """After a question: the next one the mode asks for, else the summary."""
    mode = _step(ctx).mode
    following = next_question(report.answers or {}, ctx.config.weekly_report.questions, index, mode)
    if following is not None:
        _ask(ctx, report.week, following, mode, report)
    elif not _ask_missing(ctx, report, "weekly/missing_required.txt.j2"):  # e.g. skipped back over one via an edit
        _show_summary(ctx, report)


def _apply_paste(ctx: Context, report: WeeklyReport, sections: dict[str, str]) -> None:
    questions = ctx.config.weekly_report.questions
    save_pasted(report, sections, questions, ctx.now)
    recognised = [q.title for q in questions if q.key in sections]
    if not _ask_missing(ctx, report, "weekly/pasted.txt.j2", recognised=recognised):
        _show_summary(ctx, report, preface=ctx.render("weekly/pasted_preface.txt.j2", recognised=recognised))


# -- the conversation's states ---------------------------------------------------------------------------------
def on_answer(ctx: Context) -> None:
    step = _step(ctx)
    questions = ctx.config.weekly_report.questions
    index = min(step.index, len(questions) - 1)  # the questions may have changed in config while this was open
    question = questions[index]
    report = _draft(ctx, step.week)
    text = ctx.update.content.strip()
    sections = parse_pasted_report(text, questions)
    if looks_pasted(sections):
        _apply_paste(ctx, report, sections)
        return
    word = _normalise_word(text)
    current = str((report.answers or {}).get(question.key, ""))
    if word in words("weekly.next"):
        if question.required and not current.strip():
            _go(ctx, ReportState.ANSWERING, step)
            ctx.reply("weekly/required_empty.txt.j2", **question_view(ctx.config, index, report.answers))
            return
        if question.key not in (report.answers or {}):
            save_answers(report, {question.key: ""}, ctx.now)
        _advance(ctx, report, index)
        return
    if word in words("weekly.skip"):
        if question.required:
            _go(ctx, ReportState.ANSWERING, step)
            ctx.reply("weekly/cannot_skip.txt.j2", **question_view(ctx.config, index, report.answers))
            return
        save_answers(report, {question.key: current if question.key in (report.answers or {}) else ""}, ctx.now)
        _advance(ctx, report, index)
        return
    if not text:
        ctx.reply("weekly/required_empty.txt.j2", **question_view(ctx.config, index, report.answers))
        return
    value = text if step.fresh or not current.strip() else f"{current}\n{text}"
    save_answers(report, {question.key: value}, ctx.now)
    parts = step.parts + 1
    _go(ctx, ReportState.ANSWERING, replace(step, parts=parts, fresh=False))
    back_to_summary = index == len(questions) - 1 or step.mode == Mode.EDIT
    ctx.reply("weekly/ack.txt.j2", question=question, parts=parts, snippet=trim(text, SNIPPET_CHARS),
              next_word=words("weekly.next")[0], last=back_to_summary)


def on_kr_progress(ctx: Context) -> None:
    """One open KR's progress: a number (with an optional note) recorded on the KR, or 跳过."""
    step = _step(ctx)
    report = _draft(ctx, step.week)
    text = ctx.update.content.strip()
    krs = {kr.id: kr for kr in okr.kr_views(ctx.session, [okr.get_kr(ctx.session, kr_id) for kr_id in step.kr_ids])}
    kr = krs[step.kr_ids[step.kr_pos]]
    if _normalise_word(text) not in words("weekly.skip"):
        value = okr.parse_number(text)
        if value is None:
            ctx.reply("weekly/kr_invalid.txt.j2", kr=kr, text=trim(text, SNIPPET_CHARS))
            return
        note = kr_progress_note(text)
        updated = okr.record_kr_progress(ctx.session, kr.id, value, note, ctx.now, by=ctx.person.userid)
        line = ctx.render("weekly/kr_line.txt.j2", kr=updated, before=kr, note=note)
    else:
        line = ctx.render("weekly/kr_line.txt.j2", kr=kr, before=kr, note="")
    step = replace(step, kr_pos=step.kr_pos + 1, kr_lines=(*step.kr_lines, line))
    if step.kr_pos < len(step.kr_ids):
        _go(ctx, ReportState.KR_PROGRESS, step)
        ctx.reply("okr/weekly_kr_question.txt.j2", kr=krs[step.kr_ids[step.kr_pos]], index=step.kr_pos + 1,
                  total=len(step.kr_ids))
        return
    save_answers(report, {KR_QUESTION_KEY: "\n".join(step.kr_lines)}, ctx.now)
    _advance(ctx, report, step.index)


def on_reviewing(ctx: Context) -> None:
    step = _step(ctx)
    report = _draft(ctx, step.week)
    text = ctx.update.content.strip()
    sections = parse_pasted_report(text, ctx.config.weekly_report.questions)
    if looks_pasted(sections):
        _apply_paste(ctx, report, sections)
        return
    word = _normalise_word(text)
    if word in words("weekly.submit"):
        submit(ctx, report)
    elif word in words("weekly.edit"):
        _choose(ctx, report)
    else:
        _go(ctx, ReportState.REVIEWING, step)
        ctx.reply("weekly/review_hint.txt.j2", text=trim(text, SNIPPET_CHARS))


def _choose(ctx: Context, report: WeeklyReport, with_summary: bool = False) -> None:
    ctx.finish_cards(report_subject(report), "editing")
    _enter(ctx, report.week, ReportState.CHOOSING)
    variables = _summary_vars(ctx, report) if with_summary else {
        "questions": ctx.config.weekly_report.questions, "answers": report.answers or {}}
    ctx.reply("weekly/choose.txt.j2", with_summary=with_summary, **variables)


def on_choosing(ctx: Context) -> None:
    step = _step(ctx)
    report = _draft(ctx, step.week)
    questions = ctx.config.weekly_report.questions
    text = ctx.update.content.strip()
    word = _normalise_word(text)
    if word in words("weekly.back"):
        _show_summary(ctx, report)
        return
    digits = word.translate(str.maketrans("０１２３４５６７８９", "0123456789"))
    if digits.isdigit() and 1 <= int(digits) <= len(questions):
        chosen: int | None = int(digits) - 1
    else:
        chosen = question_named(text, questions)
    if chosen is None:
        _go(ctx, ReportState.CHOOSING, step)
        ctx.reply("weekly/choose_hint.txt.j2", text=trim(text, SNIPPET_CHARS), total=len(questions))
        return
    _ask(ctx, step.week, chosen, Mode.EDIT, report)


def submit(ctx: Context, report: WeeklyReport) -> None:
    if missing_required(report.answers or {}, ctx.config.weekly_report.questions):
        if ctx.conversation.flow != FLOW:
            _open(ctx, report.week, ReportState.ANSWERING)
        _ask_missing(ctx, report, "weekly/missing_required.txt.j2")
        return
    resubmitted = submit_report(report, ctx.config, ctx.now)
    if ctx.conversation.flow == FLOW and _step(ctx).week == report.week:
        ctx.conversation.end()
    ctx.finish_cards(report_subject(report), "submitted")
    ctx.reply("weekly/submitted.txt.j2", who=ctx.person.name, week=WeekView.of(report.week), late=report.late,
              resubmitted=resubmitted, deadline=local(ctx.config, deadline_of(report.week, ctx.config)),
              can_edit=not is_past_deadline(report.week, ctx.config, ctx.now))


def _already_submitted(ctx: Context, report: WeeklyReport) -> None:
    ctx.reply("weekly/already_submitted.txt.j2", week=WeekView.of(report.week),
              submitted_at=local(ctx.config, report.submitted_at), late=report.late,
              deadline=local(ctx.config, deadline_of(report.week, ctx.config)),
              can_edit=not is_past_deadline(report.week, ctx.config, ctx.now))


def _edit_closed(ctx: Context, week: str) -> None:
    ctx.reply("weekly/edit_unavailable.txt.j2", week=WeekView.of(week), reason="closed",
              deadline=local(ctx.config, deadline_of(week, ctx.config)))


def start_or_resume(ctx: Context, week: str | None = None) -> None:
    """`/report`: continue the open report conversation, else open the report for the week."""
    conversation = ctx.conversation
    if conversation.flow == FLOW and not conversation.is_expired(ctx.now) and (
            week is None or _step(ctx).week == week):
        _resume(ctx)
        return
    week = week or default_week(ctx.session, ctx.person.userid, ctx.config, ctx.now)
    report = find_report(ctx.session, ctx.person.userid, week)
    if report is not None and report.status == "submitted":
        _already_submitted(ctx, report)
        return
    answers = report.answers if report is not None else {}
    first = first_unanswered(answers, ctx.config.weekly_report.questions)
    _open(ctx, week, ReportState.ANSWERING)
    if first is None:
        _show_summary(ctx, report or _draft(ctx, week))
        return
    _ask(ctx, week, first, Mode.SEQUENTIAL, report or _draft(ctx, week), "weekly/start.txt.j2",
         week_view=WeekView.of(week), who=ctx.person.name, deadline=local(ctx.config, deadline_of(week, ctx.config)),
         past_deadline=is_past_deadline(week, ctx.config, ctx.now),
         answered=answered_count(report, ctx.config.weekly_report.questions))


def _resume(ctx: Context) -> None:
    step = _step(ctx)
    report = _draft(ctx, step.week)
    state = ctx.conversation.state
    if state == ReportState.REVIEWING:
        _show_summary(ctx, report)
    elif state == ReportState.CHOOSING:
        _choose(ctx, report, with_summary=True)
    elif state == ReportState.KR_PROGRESS:
        kr = okr.kr_views(ctx.session, [okr.get_kr(ctx.session, step.kr_ids[step.kr_pos])])[0]
        _go(ctx, ReportState.KR_PROGRESS, step)
        ctx.reply("okr/weekly_kr_question.txt.j2", kr=kr, index=step.kr_pos + 1, total=len(step.kr_ids))
    else:
        _go(ctx, ReportState.ANSWERING, step)
        ctx.reply("weekly/question.txt.j2", resumed=True,
                  **question_view(ctx.config, step.index, report.answers or {}, step.mode == Mode.EDIT))


def on_cancel(ctx: Context) -> None:
    report = find_report(ctx.session, ctx.person.userid, _step(ctx).week)
    if report is not None and report.status == "draft":
        ctx.reply("weekly/cancelled.txt.j2", week=WeekView.of(report.week),
                  answered=answered_count(report, ctx.config.weekly_report.questions),
                  total=len(ctx.config.weekly_report.questions))


def on_timeout(ctx: Context) -> None:
    """An idle conversation closes; every answer was saved as it came, so the draft is kept as it is."""
    step = _step(ctx)
    if step.untouched:
        return  # a prompt nobody answered: nothing to report
    report = find_report(ctx.session, ctx.person.userid, step.week)
    if report is None or report.status == "submitted":
        return
    ctx.reply("weekly/timed_out.txt.j2", who=ctx.person.name, week=WeekView.of(report.week),
              answered=answered_count(report, ctx.config.weekly_report.questions),
              total=len(ctx.config.weekly_report.questions), minutes=ctx.config.bot.conversation_timeout_minutes)


CONVERSATION = router.conversation(ConversationSpec(
    name=FLOW,
    states={ReportState.ANSWERING: on_answer, ReportState.KR_PROGRESS: on_kr_progress,
            ReportState.REVIEWING: on_reviewing, ReportState.CHOOSING: on_choosing},
    on_cancel=on_cancel,
    on_timeout=on_timeout,
))


# -- commands --------------------------------------------------------------------------------------------------
@router.command("/report", *words("weekly.report_aliases"))
def report_command(ctx: Context) -> None:
    args = ctx.args.strip()
    head, _, rest = args.partition(" ")
    sub = head.lower()
    if sub in words("weekly.edit_command"):
        edit_report(ctx, rest.strip())
        return
    if sub in words("weekly.history_command"):
        show_history(ctx)
        return
    sections = parse_pasted_report(args, ctx.config.weekly_report.questions)
    if looks_pasted(sections):  # "/report" followed by a whole pasted report
        week = default_week(ctx.session, ctx.person.userid, ctx.config, ctx.now)
        if ctx.conversation.flow == FLOW:
            week = _step(ctx).week or week
        report = _draft(ctx, week)
        if report.status == "submitted" and is_past_deadline(week, ctx.config, ctx.now):
            _edit_closed(ctx, week)
            return
        if ctx.conversation.flow != FLOW:
            _open(ctx, week, ReportState.ANSWERING)
        _apply_paste(ctx, report, sections)
        return
    week = None
    if args:
        named = parse_week(args, local(ctx.config, ctx.now).date())
        week = str(named) if named else None
        if week is None:
            ctx.reply("weekly/bad_argument.txt.j2", text=trim(args, SNIPPET_CHARS))
            return
    start_or_resume(ctx, week)


def edit_report(ctx: Context, argument: str) -> None:
    """`/report edit [week]`: reopen a submitted report until its deadline."""
    today = local(ctx.config, ctx.now).date()
    if argument:
        named = parse_week(argument, today)
        week = str(named) if named else None
        if week is None:
            ctx.reply("weekly/bad_argument.txt.j2", text=trim(argument, SNIPPET_CHARS))
            return
        candidates = [week]
    else:
        candidates = editable_weeks(today)
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
        _edit_closed(ctx, reports[0].week)
        return
    ctx.reply("weekly/edit_unavailable.txt.j2", week=WeekView.of(candidates[0]), reason="none", deadline=None)


def show_history(ctx: Context) -> None:
    reports = recent_reports(ctx.session, ctx.person.userid)
    ctx.reply("weekly/history.md.j2", who=ctx.person.name, entries=[report_entry(ctx.config, r) for r in reports],
              questions=ctx.config.weekly_report.questions, limit=60)


# -- card clicks -------------------------------------------------------------------------------------------------
@router.card(CARD_PREFIX)
def on_card(ctx: Context) -> None:
    _, action, week = (ctx.update.event_key.split(":", 2) + ["", ""])[:3]
    try:
        Week.parse(week)
    except ValueError:
        ctx.reply("card_expired.txt.j2")
        return
    report = find_report(ctx.session, ctx.person.userid, week)
    if report is None or action not in ("submit", "edit"):
        ctx.reply("card_expired.txt.j2")
        return
    editing_this = ctx.conversation.flow == FLOW and _step(ctx).week == week
    if action == "submit":
        if report.status == "submitted" and not editing_this:
            _already_submitted(ctx, report)  # a second click (or a click on an old card) changes nothing
            return
        submit(ctx, report)
        return
    if report.status == "submitted" and is_past_deadline(week, ctx.config, ctx.now):
        _edit_closed(ctx, week)
        return
    _choose(ctx, report)
