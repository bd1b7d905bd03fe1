"""The monthly self-review (自评): a 1-5 rating per behaviour indicator due, achievements and points to improve;
and the month-end prompt and reminder jobs."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.wecom import outbox
from bot.appraisal.assignment import behaviour_indicators_due, cached_scheme, department_parents, scheme_name_for
from bot.config import Config
from bot.storage.models import Conversation, Member, SelfReview
from bot.wecom.outbox import Outgoing
from bot.chat.routing import Context, ConversationSpec, Router
from bot.templates import render
from bot.appraisal.workcalendar import (end_of_day, is_workday, month_of, next_workday, nth_workday_of_month,
                              review_prompt_day)
from handlers import leave
from handlers.weekly_report import open_waiting_conversation
from scoring import Indicator

if TYPE_CHECKING:
    from bot.jobs.context import JobContext

router = Router("self_review")

FLOW = "self_review"
RATING_LEVELS = (1, 2, 3, 4, 5)
SKIP_WORDS = ("跳过", "略过", "skip")
_MONTH = re.compile(r"(\d{4})\s*[-/.年]\s*(\d{1,2})\s*月?")
_FULL_WIDTH_DIGITS = str.maketrans("０１２３４５６７８９．", "0123456789.")
_CHINESE_NUMERALS = {"零": 0, "一": 1, "壹": 1, "二": 2, "两": 2, "贰": 2, "三": 3, "叁": 3, "四": 4, "肆": 4,
                     "五": 5, "伍": 5, "六": 6, "陆": 6, "七": 7, "八": 8, "九": 9, "十": 10}


class ReviewState(StrEnum):
    RATING = "rating"  # rating indicators[index]
    ACHIEVEMENTS = "achievements"
    IMPROVEMENTS = "improvements"


# -- ratings -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RatingProblem:
    """Why an answer is not a rating: out_of_range | not_integer | chinese_numeral | not_a_number."""

    kind: str
    shown: str
    suggestion: int | None = None


def parse_rating(text: str) -> int | RatingProblem:
    shown = text.strip()
    value = shown.translate(_FULL_WIDTH_DIGITS).strip("。.!！~ ")
    value = re.sub(r"\s*(分|星)$", "", value).strip()
    if re.fullmatch(r"-?\d+", value):
        number = int(value)
        return number if number in RATING_LEVELS else RatingProblem("out_of_range", shown)
    if re.fullmatch(r"-?\d+\.\d+", value):
        return RatingProblem("not_integer", shown)
    if value and all(char in _CHINESE_NUMERALS for char in value):
        number = _CHINESE_NUMERALS[value] if len(value) == 1 else None
        return RatingProblem("chinese_numeral", shown, number if number in RATING_LEVELS else None)
    return RatingProblem("not_a_number", shown)


# -- which month, which indicators ----------------------------------------------------------------------------
def previous_month(day: date) -> str:
    first = day.replace(day=1)
    return month_of(first - timedelta(days=1))


def review_is_open(month: str, config: Config, today: date) -> bool:
    """A month's review may be filled or changed during the month and until the configured workday after it."""
    if month == month_of(today):
        return True
    cutoff = nth_workday_of_month(today.year, today.month, config.self_review.open_until_workday)
    return month == previous_month(today) and cutoff is not None and today <= cutoff


def find_review(session: Session, userid: str, month: str) -> SelfReview | None:
    return session.scalar(select(SelfReview).where(SelfReview.userid == userid, SelfReview.month == month))


def default_month(session: Session, userid: str, config: Config, today: date) -> str:
    last_month = previous_month(today)
    review = find_review(session, userid, last_month)
    if (review is None or review.submitted_at is None) and review_is_open(last_month, config, today):
        return last_month
    return month_of(today)


def parse_month_argument(text: str) -> str | None:
    match = _MONTH.fullmatch(text.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        return None
    return f"{int(match.group(1)):04d}-{int(match.group(2)):02d}"


def indicators_due(session: Session, userid: str, department_ids: list[int] | tuple[int, ...], config: Config,
                   month: str, parents: dict[int, int | None] | None = None) -> tuple[str, tuple[Indicator, ...]]:
    """(scheme key, behaviour indicators the member rates this month)."""
    name = scheme_name_for(userid, department_ids, parents if parents is not None else department_parents(session),
                           config.appraisal)
    scheme = cached_scheme(name)
    return scheme.key, behaviour_indicators_due(scheme, int(month[5:7]))


@dataclass(frozen=True)
class IndicatorView:
    key: str
    name: str
    anchors: list[tuple[int, str]]


def _views(indicators: tuple[Indicator, ...]) -> list[IndicatorView]:
    return [IndicatorView(i.key, i.name, [(level, i.anchors[level]) for level in RATING_LEVELS if level in i.anchors])
            for i in indicators]


# -- the conversation ----------------------------------------------------------------------------------------
def _indicators_of(ctx: Context) -> list[IndicatorView]:
    data = ctx.conversation.data
    _, indicators = indicators_due(ctx.session, ctx.person.userid, ctx.person.department_ids, ctx.config, data["month"])
    by_key = {view.key: view for view in _views(indicators)}
    # The keys chosen when the review opened, so a scheme change mid-conversation cannot shift the questions.
    return [by_key[key] for key in data.get("keys", []) if key in by_key]


def _draft(ctx: Context, month: str, scheme_key: str) -> SelfReview:
    review = find_review(ctx.session, ctx.person.userid, month)
    if review is None:
        review = SelfReview(userid=ctx.person.userid, month=month, scheme_key=scheme_key, ratings={},
                            achievements="", improvements="", created_at=ctx.now, updated_at=ctx.now)
        ctx.session.add(review)
        ctx.session.flush()
    return review


def _rating_vars(indicators: list[IndicatorView], index: int, review: SelfReview | None) -> dict[str, Any]:
    indicator = indicators[index]
    current = (review.ratings or {}).get(indicator.key) if review is not None else None
    return {"indicator": indicator, "number": index + 1, "total": len(indicators), "current": current}


def _ask_rating(ctx: Context, indicators: list[IndicatorView], index: int, review: SelfReview,
                recorded: int | None = None, intro: dict[str, Any] | None = None) -> None:
    ctx.conversation.move(ReviewState.RATING, index=index, untouched=False)
    ctx.reply("review/rating.txt.j2", recorded=recorded, intro=intro, **_rating_vars(indicators, index, review))


def _ask_text(ctx: Context, state: ReviewState, review: SelfReview, recorded: int | None = None,
              intro: dict[str, Any] | None = None) -> None:
    ctx.conversation.move(state, untouched=False)
    current = review.achievements if state == ReviewState.ACHIEVEMENTS else review.improvements
    ctx.reply(f"review/{state.value}.txt.j2", current=current or "", month=review.month, recorded=recorded,
              intro=intro)


def on_rating(ctx: Context) -> None:
    data = ctx.conversation.data
    indicators = _indicators_of(ctx)
    review = _draft(ctx, data["month"], data.get("scheme", ""))
    index = int(data.get("index", 0))
    if index >= len(indicators):
        _ask_text(ctx, ReviewState.ACHIEVEMENTS, review)
        return
    answer = parse_rating(ctx.update.content)
    if isinstance(answer, RatingProblem):
        ctx.conversation.move(ReviewState.RATING, untouched=False)
        ctx.reply("review/invalid_rating.txt.j2", problem=answer, **_rating_vars(indicators, index, review))
        return
    review.ratings = {**(review.ratings or {}), indicators[index].key: answer}  # a new dict: the JSON column is written
    review.updated_at = ctx.now
    if index + 1 < len(indicators):
        _ask_rating(ctx, indicators, index + 1, review, recorded=answer)
    else:
        _ask_text(ctx, ReviewState.ACHIEVEMENTS, review, recorded=answer)


def _text_answer(ctx: Context, state: ReviewState) -> str | None:
    text = ctx.update.content.strip()
    if not text or text.lower().strip("。. ") in SKIP_WORDS:
        ctx.conversation.move(state, untouched=False)
        ctx.reply("review/text_required.txt.j2", state=state.value, text=text)
        return None
    return text


def on_achievements(ctx: Context) -> None:
    data = ctx.conversation.data
    review = _draft(ctx, data["month"], data.get("scheme", ""))
    text = _text_answer(ctx, ReviewState.ACHIEVEMENTS)
    if text is None:
        return
    review.achievements, review.updated_at = text, ctx.now
    _ask_text(ctx, ReviewState.IMPROVEMENTS, review)


def on_improvements(ctx: Context) -> None:
    data = ctx.conversation.data
    review = _draft(ctx, data["month"], data.get("scheme", ""))
    text = _text_answer(ctx, ReviewState.IMPROVEMENTS)
    if text is None:
        return
    indicators = _indicators_of(ctx)
    review.improvements, review.updated_at = text, ctx.now
    resubmitted = review.submitted_at is not None
    review.submitted_at = ctx.now
    ctx.conversation.end()
    ctx.reply("review/submitted.txt.j2", who=ctx.person.name, month=review.month, resubmitted=resubmitted,
              ratings=[(i, (review.ratings or {}).get(i.key)) for i in indicators],
              achievements=review.achievements, improvements=review.improvements)


def on_timeout(ctx: Context) -> None:
    data = ctx.conversation.data
    if data.get("untouched"):
        return
    review = find_review(ctx.session, ctx.person.userid, data.get("month", ""))
    if review is None or review.submitted_at is not None:
        return
    ctx.reply("review/timed_out.txt.j2", who=ctx.person.name, month=review.month,
              minutes=ctx.config.bot.conversation_timeout_minutes)


def on_cancel(ctx: Context) -> None:
    data = ctx.conversation.data
    review = find_review(ctx.session, ctx.person.userid, data.get("month", ""))
    if review is not None and review.submitted_at is None:
        ctx.reply("review/cancelled.txt.j2", month=review.month)


CONVERSATION = router.conversation(ConversationSpec(
    name=FLOW,
    states={ReviewState.RATING: on_rating, ReviewState.ACHIEVEMENTS: on_achievements,
            ReviewState.IMPROVEMENTS: on_improvements},
    on_cancel=on_cancel,
    on_timeout=on_timeout,
))


# -- the command ------------------------------------------------------------------------------------------------
@router.command("/review", "/自评")
def review_command(ctx: Context) -> None:
    today = ctx.now.astimezone(ctx.config.schedule.zone).date()
    args = ctx.args.strip()
    head, _, rest = args.partition(" ")
    editing = head.lower() in ("edit", "修改", "重填")
    month_text = rest.strip() if editing else args
    month = None
    if month_text:
        month = parse_month_argument(month_text)
        if month is None:
            ctx.reply("review/bad_argument.txt.j2", text=month_text)
            return
    conversation = ctx.conversation
    if conversation.flow == FLOW and not editing and (month is None or conversation.data.get("month") == month):
        _resume(ctx)
        return
    month = month or default_month(ctx.session, ctx.person.userid, ctx.config, today)
    review = find_review(ctx.session, ctx.person.userid, month)
    if not review_is_open(month, ctx.config, today):
        ctx.reply("review/closed.txt.j2", month=month, submitted=review is not None and review.submitted_at is not None)
        return
    if review is not None and review.submitted_at is not None and not editing:
        ctx.reply("review/already_submitted.txt.j2", month=month,
                  submitted_at=review.submitted_at.astimezone(ctx.config.schedule.zone))
        return
    scheme_key, indicators = indicators_due(ctx.session, ctx.person.userid, ctx.person.department_ids, ctx.config,
                                            month)
    views = _views(indicators)
    conversation.start(FLOW, ReviewState.RATING, {"month": month, "scheme": scheme_key,
                                                  "keys": [v.key for v in views], "index": 0, "untouched": False})
    review = _draft(ctx, month, scheme_key)
    ratings = review.ratings or {}
    first = 0 if editing else next((i for i, v in enumerate(views) if v.key not in ratings), len(views))
    intro = {"name": ctx.person.name, "month": month, "editing": editing}
    if first < len(views):
        _ask_rating(ctx, views, first, review, intro=intro)
    elif editing or not review.achievements:
        _ask_text(ctx, ReviewState.ACHIEVEMENTS, review, intro=intro)
    else:
        _ask_text(ctx, ReviewState.IMPROVEMENTS, review, intro=intro)


def _resume(ctx: Context) -> None:
    data = ctx.conversation.data
    review = _draft(ctx, data["month"], data.get("scheme", ""))
    state = ctx.conversation.state
    if state == ReviewState.RATING:
        indicators = _indicators_of(ctx)
        index = int(data.get("index", 0))
        if index < len(indicators):
            _ask_rating(ctx, indicators, index, review)
            return
        state = ReviewState.ACHIEVEMENTS
    _ask_text(ctx, ReviewState(state), review)


# -- scheduled jobs ----------------------------------------------------------------------------------------------
def _ask_members(job: JobContext, kind: str) -> str:
    session, config, month = job.session, job.config, job.period
    now = job.clock.now()
    day = job.at.date()
    expires = max(end_of_day(next_workday(day), config.schedule.zone),
                  now + timedelta(minutes=config.bot.conversation_timeout_minutes))
    members = list(session.scalars(select(Member).where(Member.active.is_(True)).order_by(Member.userid)))
    on_leave = leave.userids_on_leave(session, day)
    if kind == "reminder":
        # Away for the whole review window (prompt to reminder): no reminder, as the leave promised.
        year, index = (int(part) for part in month.split("-"))
        prompt_day = review_prompt_day(year, index, config.self_review)
        if prompt_day is not None and prompt_day <= day:
            window = [prompt_day + timedelta(days=n) for n in range((day - prompt_day).days + 1)]
            on_leave |= leave.userids_on_leave_all_of(session, [d for d in window if is_workday(d)])
    reviews = {r.userid: r for r in session.scalars(select(SelfReview).where(SelfReview.month == month))}
    conversations = {c.userid: c for c in session.scalars(select(Conversation))}
    parents = department_parents(session)
    asked = skipped_leave = already = 0
    for member in members:
        review = reviews.get(member.userid)
        if member.userid in on_leave:
            skipped_leave += 1
            continue
        if review is not None and review.submitted_at is not None:
            already += 1
            continue
        scheme_key, indicators = indicators_due(session, member.userid, member.department_ids or [], config, month,
                                                parents)
        views = _views(indicators)
        ratings = (review.ratings or {}) if review is not None else {}
        first = next((i for i, v in enumerate(views) if v.key not in ratings), len(views))
        state = ReviewState.RATING if first < len(views) else ReviewState.ACHIEVEMENTS
        opened = open_waiting_conversation(
            session, conversations.get(member.userid), member.userid, FLOW, state,
            {"month": month, "scheme": scheme_key, "keys": [v.key for v in views], "index": first}, now, expires)
        question = (_rating_vars(views, first, review) if first < len(views) else
                    {"indicator": None, "number": 0, "total": 0, "current": None})
        text = render(f"review/{kind}.txt.j2", config.bot.locale, who=member.name, month=month, opened=opened,
                      started=bool(ratings), **question)
        outbox.enqueue(session, f"job:review_{kind}:{month}:{member.userid}", Outgoing.text(member.userid, text), now)
        asked += 1
    return render("review/job_detail.txt.j2", config.bot.locale, kind=kind, month=month, asked=asked,
                  on_leave=skipped_leave, already=already)


def send_review_prompts(job: JobContext) -> str:
    return _ask_members(job, "prompt")


def send_review_reminders(job: JobContext) -> str:
    return _ask_members(job, "reminder")
