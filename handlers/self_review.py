"""/review: the monthly self-review (自评): a 1-5 rating per behaviour indicator due, achievements, improvements."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from bot.appraisal.self_reviews import (FLOW, IndicatorView, ReviewState, ReviewStep, default_month,
                                        draft_review, find_review, first_unrated, indicator_views, indicators_due,
                                        rating_view, record_rating,
                                        review_is_open, submit_review)
from bot.appraisal.periods import parse_period
from scoring import PeriodKind
from bot.appraisal.ratings import RatingProblem, parse_rating
from bot.appraisal.workcalendar import local
from bot.chat.conversation import ConversationSpec
from bot.chat.routing import Context, Router
from bot.storage.models import SelfReview
from bot.templates import words

router = Router("self_review")


def _step(ctx: Context) -> ReviewStep:
    return ReviewStep.from_dict(ctx.conversation.data)


def _go(ctx: Context, state: ReviewState, step: ReviewStep) -> None:
    """Move the open review conversation on; the member has answered, so it is no longer an untouched prompt."""
    ctx.conversation.move(state, **replace(step, untouched=False).to_dict())


def _indicators_of(ctx: Context) -> list[IndicatorView]:
    step = _step(ctx)
    _, indicators = indicators_due(ctx.session, ctx.person.userid, ctx.person.department_ids, ctx.config, step.month)
    by_key = {view.key: view for view in indicator_views(indicators)}
    return [by_key[key] for key in step.keys if key in by_key]  # as chosen when the review opened


def _draft(ctx: Context) -> SelfReview:
    step = _step(ctx)
    return draft_review(ctx.session, ctx.person.userid, step.month, step.scheme, ctx.now)


def _ask_rating(ctx: Context, indicators: list[IndicatorView], index: int, review: SelfReview,
                recorded: int | None = None, intro: dict[str, Any] | None = None) -> None:
    _go(ctx, ReviewState.RATING, replace(_step(ctx), index=index))
    ctx.reply("review/rating.txt.j2", recorded=recorded, intro=intro, **rating_view(indicators, index, review))


def _ask_text(ctx: Context, state: ReviewState, review: SelfReview, recorded: int | None = None,
              intro: dict[str, Any] | None = None) -> None:
    _go(ctx, state, _step(ctx))
    current = review.achievements if state == ReviewState.ACHIEVEMENTS else review.improvements
    ctx.reply(f"review/{state.value}.txt.j2", current=current or "", month=review.month, recorded=recorded,
              intro=intro)


def on_rating(ctx: Context) -> None:
    step = _step(ctx)
    indicators = _indicators_of(ctx)
    review = _draft(ctx)
    if step.index >= len(indicators):
        _ask_text(ctx, ReviewState.ACHIEVEMENTS, review)
        return
    answer = parse_rating(ctx.update.content)
    if isinstance(answer, RatingProblem):
        _go(ctx, ReviewState.RATING, step)
        ctx.reply("review/invalid_rating.txt.j2", problem=answer, **rating_view(indicators, step.index, review))
        return
    record_rating(review, indicators[step.index].key, answer, ctx.now)
    if step.index + 1 < len(indicators):
        _ask_rating(ctx, indicators, step.index + 1, review, recorded=answer)
    else:
        _ask_text(ctx, ReviewState.ACHIEVEMENTS, review, recorded=answer)


def _text_answer(ctx: Context, state: ReviewState) -> str | None:
    text = ctx.update.content.strip()
    if not text or text.lower().strip("。. ") in words("review.skip"):
        _go(ctx, state, _step(ctx))
        ctx.reply("review/text_required.txt.j2", state=state.value, text=text)
        return None
    return text


def on_achievements(ctx: Context) -> None:
    review = _draft(ctx)
    text = _text_answer(ctx, ReviewState.ACHIEVEMENTS)
    if text is None:
        return
    review.achievements, review.updated_at = text, ctx.now
    _ask_text(ctx, ReviewState.IMPROVEMENTS, review)


def on_improvements(ctx: Context) -> None:
    review = _draft(ctx)
    text = _text_answer(ctx, ReviewState.IMPROVEMENTS)
    if text is None:
        return
    indicators = _indicators_of(ctx)
    review.improvements, review.updated_at = text, ctx.now
    resubmitted = submit_review(review, ctx.now)
    ctx.conversation.end()
    ctx.reply("review/submitted.txt.j2", who=ctx.person.name, month=review.month, resubmitted=resubmitted,
              ratings=[(i, (review.ratings or {}).get(i.key)) for i in indicators],
              achievements=review.achievements, improvements=review.improvements)


def on_timeout(ctx: Context) -> None:
    step = _step(ctx)
    if step.untouched:
        return
    review = find_review(ctx.session, ctx.person.userid, step.month)
    if review is None or review.submitted_at is not None:
        return
    ctx.reply("review/timed_out.txt.j2", who=ctx.person.name, month=review.month,
              minutes=ctx.config.bot.conversation_timeout_minutes)


def on_cancel(ctx: Context) -> None:
    review = find_review(ctx.session, ctx.person.userid, _step(ctx).month)
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
@router.command("/review", *words("review.aliases"))
def review_command(ctx: Context) -> None:
    today = local(ctx.config, ctx.now).date()
    args = ctx.args.strip()
    head, _, rest = args.partition(" ")
    editing = head.lower() in words("review.edit_command")
    month_text = rest.strip() if editing else args
    month = None
    if month_text:
        named = parse_period(month_text, kind=PeriodKind.MONTH)
        month = str(named) if named else None
        if month is None:
            ctx.reply("review/bad_argument.txt.j2", text=month_text)
            return
    conversation = ctx.conversation
    if conversation.flow == FLOW and not editing and (month is None or _step(ctx).month == month):
        _resume(ctx)
        return
    month = month or default_month(ctx.session, ctx.person.userid, ctx.config, today)
    review = find_review(ctx.session, ctx.person.userid, month)
    if not review_is_open(month, ctx.config, today):
        ctx.reply("review/closed.txt.j2", month=month, submitted=review is not None and review.submitted_at is not None)
        return
    if review is not None and review.submitted_at is not None and not editing:
        ctx.reply("review/already_submitted.txt.j2", month=month, submitted_at=local(ctx.config, review.submitted_at))
        return
    scheme_key, indicators = indicators_due(ctx.session, ctx.person.userid, ctx.person.department_ids, ctx.config,
                                            month)
    views = indicator_views(indicators)
    conversation.start(FLOW, ReviewState.RATING, ReviewStep(month, scheme_key, tuple(v.key for v in views)).to_dict())
    review = _draft(ctx)
    first = 0 if editing else first_unrated(views, review)
    intro = {"name": ctx.person.name, "month": month, "editing": editing}
    if first < len(views):
        _ask_rating(ctx, views, first, review, intro=intro)
    elif editing or not review.achievements:
        _ask_text(ctx, ReviewState.ACHIEVEMENTS, review, intro=intro)
    else:
        _ask_text(ctx, ReviewState.IMPROVEMENTS, review, intro=intro)


def _resume(ctx: Context) -> None:
    step = _step(ctx)
    review = _draft(ctx)
    state = ctx.conversation.state
    if state == ReviewState.RATING:
        indicators = _indicators_of(ctx)
        if step.index < len(indicators):
            _ask_rating(ctx, indicators, step.index, review)
            return
        state = ReviewState.ACHIEVEMENTS
    _ask_text(ctx, ReviewState(state), review)
