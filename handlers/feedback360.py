"""/360: feedback rounds, rater nomination and confirmation, the anonymous rating conversation, aggregate results."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from enum import StrEnum

from sqlalchemy.orm import Session

from bot.appraisal.feedback360 import (
    DEFAULT_DEADLINE_DAYS,
    MIN_RATERS,
    MIN_SHOWN,
    Feedback360Error,
    Send,
    aggregate,
    announce_close,
    answer,
    ask_view,
    confirm,
    decline,
    latest_closed_round,
    may_confirm,
    nominate,
    nomination_of,
    own_pending_ask,
    pending_asks,
    progress,
    rating_of_answer,
    require_open_round,
    resolve_people,
    split_names,
    start_round,
    suggested_raters,
)
from bot.appraisal.people import Org, Role, active_members, manager_or_admins, names_of
from bot.config.schemes import load_scheme
from bot.appraisal.workcalendar import local
from bot.chat.conversation import ConversationHandle, ConversationSpec
from bot.chat.routing import Context, Router
from bot.clock import Clock
from bot.storage.models import Conversation, Feedback360Ask, Feedback360Nomination, Member
from bot.templates import words
from bot.wecom import cards

router = Router("feedback360")

FLOW = "feedback360"
CONVERSATION_TIMEOUT = timedelta(hours=24)
_DATE = re.compile(r"^(?:(\d{4})-)?(\d{1,2})-(\d{1,2})$")


class RatingState(StrEnum):
    RATING = "rating"
    COMMENT = "comment"


def _today(ctx: Context) -> date:
    return local(ctx.config, ctx.now).date()


def parse_deadline(text: str, today: date) -> date | None:
    """ "2026-12-20" or "12-20" (the next such day); None when it is not a date."""
    match = _DATE.match(text.strip())
    if not match:
        return None
    year = int(match.group(1)) if match.group(1) else today.year
    try:
        day = date(year, int(match.group(2)), int(match.group(3)))
    except ValueError:
        return None
    if not match.group(1) and day < today:
        day = day.replace(year=year + 1)
    return day


@router.command("/360", *words("feedback360.aliases"), role=Role.MEMBER)
def feedback(ctx: Context) -> None:
    given = ctx.args.split()
    action = given[0].lower() if given else ""
    rest = given[1:]
    if action in words("feedback360.start"):
        _start(ctx, rest)
    elif action in words("feedback360.close"):
        _close(ctx)
    elif action in words("feedback360.raters"):
        _nominate_self(ctx, rest)
    elif action in words("feedback360.set"):
        _set_for_member(ctx, rest)
    elif action in words("feedback360.confirm"):
        _confirm_by_command(ctx, rest)
    elif action in words("feedback360.rate"):
        if not ask_next(ctx.session, ctx.clock, ctx.person.userid, ctx.send_to):
            raise Feedback360Error("nothing_to_rate")
    elif action in words("feedback360.result"):
        _results(ctx, rest)
    elif action in words("feedback360.status"):
        _status(ctx)
    elif action in words("feedback360.help"):
        ctx.reply("feedback360/usage.txt.j2", person=ctx.person, min_shown=MIN_SHOWN)
    elif not action:
        if not ask_next(ctx.session, ctx.clock, ctx.person.userid, ctx.send_to):
            _own_status(ctx)
    else:
        ctx.reply("feedback360/usage.txt.j2", person=ctx.person, min_shown=MIN_SHOWN)


def _start(ctx: Context, given: list[str]) -> None:
    ctx.require(Role.ADMIN, Feedback360Error.TEMPLATE, code="admins_only", p={"action": "start"})
    if not given:
        ctx.reply("feedback360/usage.txt.j2", person=ctx.person, min_shown=MIN_SHOWN)
        return
    period, rest = given[0], given[1:]
    today = _today(ctx)
    deadline = today + timedelta(days=DEFAULT_DEADLINE_DAYS)
    if rest and (parsed := parse_deadline(rest[0], today)) is not None:
        deadline, rest = parsed, rest[1:]
    elif rest and _DATE.match(rest[0]):
        raise Feedback360Error("bad_deadline", text=rest[0])
    round_, count = start_round(ctx.session, period=period, deadline=deadline, name=" ".join(rest),
                                by=ctx.person.userid, scheme=load_scheme(ctx.config.appraisal.default_scheme),
                                now=ctx.now, send=ctx.send_to)
    ctx.reply("feedback360/round_started.txt.j2", round=round_, subjects=count)


def _close(ctx: Context) -> None:
    ctx.require(Role.ADMIN, Feedback360Error.TEMPLATE, code="admins_only", p={"action": "close"})
    round_ = require_open_round(ctx.session)
    announce_close(ctx.session, round_, ctx.now, ctx.config.org.admins, ctx.send_to)


def _nominate_self(ctx: Context, given: list[str]) -> None:
    round_ = require_open_round(ctx.session)
    subject = ctx.session.get(Member, ctx.person.userid)
    if subject is None:
        raise Feedback360Error("unknown_person", name=ctx.person.name)
    if given:
        raters, proposed_by = resolve_people(ctx.session, split_names(" ".join(given))), "member"
    else:
        raters, proposed_by = suggested_raters(ctx.session, subject.userid, ctx.now), "bot"
        if len(raters) < MIN_RATERS:
            raise Feedback360Error("not_enough_suggestions", count=len(raters),
                                   names="、".join(m.name for m in raters))
    nomination = nominate(ctx.session, round_, subject, raters, proposed_by=proposed_by, now=ctx.now)
    reviewers = manager_or_admins(ctx.session, subject.userid, ctx.config.org.admins)
    names = [m.name for m in raters]
    for reviewer in reviewers:
        _send_nomination_card(ctx, reviewer, nomination, subject.name, names)
    reviewer_names = names_of(ctx.session, reviewers)
    ctx.reply("feedback360/nominated.txt.j2", raters=names, proposed_by=proposed_by,
              reviewers=[reviewer_names.get(r, r) for r in reviewers])


def _send_nomination_card(ctx: Context, reviewer: str, nomination: Feedback360Nomination, subject_name: str,
                          raters: list[str]) -> None:
    lines = ctx.render("feedback360/nomination_card.txt.j2", subject_name=subject_name, raters=raters,
                       proposed_by=nomination.proposed_by).splitlines()
    title, description, body, confirm = (lines + [""] * 4)[:4]
    card = cards.button_card(task_id=cards.new_task_id(f"f360_n{nomination.id}"), title=title,
                             description=description, body=body,
                             buttons=[cards.CardButton(confirm, f"360:confirm:{nomination.id}")])
    text = ctx.render("feedback360/nomination_text.txt.j2", subject_name=subject_name, raters=raters,
                      proposed_by=nomination.proposed_by)
    ctx.send_card_to(reviewer, card, nomination_subject(nomination), text)


def nomination_subject(nomination: Feedback360Nomination) -> str:
    """What a nomination card is about (bot.wecom.card_state): every reviewer's copy is finished together."""
    return f"360:{nomination.id}"


def _set_for_member(ctx: Context, given: list[str]) -> None:
    ctx.require(Role.MANAGER, Feedback360Error.TEMPLATE, code="admins_only", p={"action": "set_raters"})
    round_ = require_open_round(ctx.session)
    if len(given) < 2:
        ctx.reply("feedback360/usage.txt.j2", person=ctx.person, min_shown=MIN_SHOWN)
        return
    subject = resolve_people(ctx.session, [given[0]])[0]
    if not may_confirm(ctx.session, ctx.person, subject.userid):
        raise Feedback360Error("not_reviewer", name=subject.name)
    raters = resolve_people(ctx.session, split_names(" ".join(given[1:])))
    nomination = nominate(ctx.session, round_, subject, raters, proposed_by="manager", now=ctx.now)
    _confirm(ctx, nomination)


def _confirm_by_command(ctx: Context, given: list[str]) -> None:
    ctx.require(Role.MANAGER, Feedback360Error.TEMPLATE, code="admins_only", p={"action": "confirm_raters"})
    round_ = require_open_round(ctx.session)
    if not given:
        ctx.reply("feedback360/usage.txt.j2", person=ctx.person, min_shown=MIN_SHOWN)
        return
    subject = resolve_people(ctx.session, [given[0]])[0]
    nomination = nomination_of(ctx.session, round_.id, subject.userid)
    if nomination is None:
        raise Feedback360Error("no_nomination", name=subject.name)
    _confirm(ctx, nomination)


def _confirm(ctx: Context, nomination: Feedback360Nomination) -> None:
    subject = ctx.session.get(Member, nomination.subject)
    subject_name = subject.name if subject else nomination.subject
    if not may_confirm(ctx.session, ctx.person, nomination.subject):
        raise Feedback360Error("not_reviewer", name=subject_name)
    raters = confirm(ctx.session, nomination, ctx.person.userid, ctx.now)
    ctx.finish_cards(nomination_subject(nomination), "confirmed")
    names = names_of(ctx.session, raters)
    rater_names = [names.get(r, r) for r in raters]
    ctx.reply("feedback360/confirmed.txt.j2", audience="reviewer", subject_name=subject_name, raters=rater_names,
              reviewer=ctx.person.name)
    if nomination.subject != ctx.person.userid:
        ctx.send_to(nomination.subject, "feedback360/confirmed.txt.j2", audience="subject",
                    subject_name=subject_name, raters=rater_names, reviewer=ctx.person.name)
    invite_raters(ctx.session, ctx.clock, raters, ctx.send_to)


@router.card("360:")
def confirm_by_card(ctx: Context) -> None:
    _, action, raw_id = (ctx.update.event_key.split(":") + ["", ""])[:3]
    nomination = ctx.session.get(Feedback360Nomination, int(raw_id)) if raw_id.isdigit() else None
    if action != "confirm" or nomination is None:
        ctx.reply("card_expired.txt.j2")
        return
    _confirm(ctx, nomination)


def _results(ctx: Context, given: list[str]) -> None:
    round_ = latest_closed_round(ctx.session)
    if round_ is None:
        raise Feedback360Error("no_closed_round")
    scope = "own"
    if not given:
        people = [ctx.person.userid]
    elif given[0].lower() in words("feedback360.team"):
        ctx.require(Role.MANAGER, Feedback360Error.TEMPLATE, code="not_allowed_result", p={"manager": False})
        people = [m.userid for m in active_members(ctx.session)] if ctx.person.role >= Role.ADMIN \
            else list(Org.load(ctx.session).team(ctx.person.userid))
        scope = "team"
    else:
        people = [m.userid for m in resolve_people(ctx.session, given)]
        for userid in people:
            if userid != ctx.person.userid and not may_confirm(ctx.session, ctx.person, userid):
                raise Feedback360Error("not_allowed_result", manager=ctx.person.role >= Role.MANAGER)
        scope = "member"
    results = [aggregate(ctx.session, round_, userid) for userid in people]
    ctx.reply("feedback360/result.txt.j2", round_name=round_.name, indicator=round_.indicator_name,
              results=results, min_shown=MIN_SHOWN, scope=scope)


def _status(ctx: Context) -> None:
    ctx.require(Role.MANAGER, Feedback360Error.TEMPLATE, code="admins_only", p={"action": "status"})
    round_ = require_open_round(ctx.session)
    if ctx.person.role >= Role.ADMIN:
        counts, scope = progress(ctx.session, round_), "all"
    else:
        counts, scope = progress(ctx.session, round_, Org.load(ctx.session).team(ctx.person.userid)), "team"
    ctx.reply("feedback360/status.txt.j2", round=round_, progress=counts, scope=scope)


def _own_status(ctx: Context) -> None:
    round_ = require_open_round(ctx.session)
    nomination = nomination_of(ctx.session, round_.id, ctx.person.userid)
    raters: list[str] = []
    if nomination is not None:
        names = names_of(ctx.session, nomination.raters)
        raters = [names.get(r, r) for r in nomination.raters]
    suggestions = [m.name for m in suggested_raters(ctx.session, ctx.person.userid, ctx.now)] \
        if nomination is None else []
    ctx.reply("feedback360/own_status.txt.j2", round=round_, nomination=nomination, raters=raters,
              suggestions=suggestions)


# -- the rating conversation ----------------------------------------------------------------------------------

def has_open_conversation(session: Session, userid: str, now: datetime) -> bool:
    row = session.get(Conversation, userid)
    return row is not None and row.expires_at > now


def ask_next(session: Session, clock: Clock, rater: str, send: Send) -> bool:
    """Put the rater's next pending ask to them in the rating conversation; False when none is left."""
    asks = pending_asks(session, rater)
    if not asks:
        return False
    ask = asks[0]
    handle = ConversationHandle(session, rater, clock, CONVERSATION_TIMEOUT)
    handle.start(FLOW, RatingState.RATING, {"ask_id": ask.id}, timeout=CONVERSATION_TIMEOUT)
    send(rater, "feedback360/ask.txt.j2", left=len(asks), **ask_view(session, ask))
    return True


def invite_raters(session: Session, clock: Clock, raters: Iterable[str], send: Send) -> None:
    """Ask each rater at once when they are not in another conversation; otherwise tell them how to start."""
    now = clock.now()
    for rater in raters:
        if has_open_conversation(session, rater, now):
            row = session.get(Conversation, rater)
            if row is not None and row.flow == FLOW:
                continue  # already answering: the new ask comes after the current one
            send(rater, "feedback360/invitation.txt.j2", count=len(pending_asks(session, rater)))
        else:
            ask_next(session, clock, rater, send)


def _subject_name(ctx: Context, ask_id: int) -> str:
    ask = ctx.session.get(Feedback360Ask, ask_id)
    if ask is None:
        return ""
    return ask_view(ctx.session, ask)["subject_name"]


def _ending_on_refusal(handler: Callable[[Context], None]) -> Callable[[Context], None]:
    """A refused answer (the round closed meanwhile, the ask was answered) ends the conversation too."""
    def run(ctx: Context) -> None:
        try:
            handler(ctx)
        except Feedback360Error:
            ctx.conversation.end()
            raise
    return run


@_ending_on_refusal
def on_rating(ctx: Context) -> None:
    ask_id = int(ctx.conversation.data["ask_id"])
    own_pending_ask(ctx.session, ask_id, ctx.person.userid)  # the round may have closed since the question
    text = ctx.update.content.strip()
    if text.lower() in words("feedback360.skip"):
        decline(ctx.session, ask_id, ctx.person.userid)
        _next_or_done(ctx, _subject_name(ctx, ask_id), declined=True)
        return
    rating = rating_of_answer(text)
    if rating is None:
        ctx.reply("feedback360/rating_invalid.txt.j2")
        return
    # The rating waits in the rater's own conversation until the comment; it is never echoed back.
    ctx.conversation.move(RatingState.COMMENT, timeout=CONVERSATION_TIMEOUT, rating=rating)
    ctx.reply("feedback360/comment_prompt.txt.j2", subject_name=_subject_name(ctx, ask_id))


@_ending_on_refusal
def on_comment(ctx: Context) -> None:
    data = ctx.conversation.data
    ask_id = int(data["ask_id"])
    text = ctx.update.content.strip()
    comment = None if text.lower() in words("feedback360.no_comment") else text
    answer(ctx.session, ask_id, ctx.person.userid, int(data["rating"]), comment)
    _next_or_done(ctx, _subject_name(ctx, ask_id), declined=False)


def _next_or_done(ctx: Context, subject_name: str, *, declined: bool) -> None:
    more = bool(pending_asks(ctx.session, ctx.person.userid))
    ctx.reply("feedback360/rating_saved.txt.j2", subject_name=subject_name, declined=declined, more=more)
    if not ask_next(ctx.session, ctx.clock, ctx.person.userid, ctx.send_to):
        ctx.conversation.end()


def _keep_given_rating(ctx: Context) -> None:
    """A rating given before /cancel or a timeout is kept (without a comment), as everything typed is."""
    data = ctx.conversation.data
    if ctx.conversation.state == RatingState.COMMENT and "rating" in data:
        try:
            answer(ctx.session, int(data["ask_id"]), ctx.person.userid, int(data["rating"]), None)
        except Feedback360Error:
            pass  # the round closed or the ask was answered meanwhile: nothing to keep


RATING_CONVERSATION = router.conversation(ConversationSpec(
    name=FLOW,
    states={RatingState.RATING: on_rating, RatingState.COMMENT: on_comment},
    on_cancel=_keep_given_rating,
    on_timeout=_keep_given_rating,
    timeout=CONVERSATION_TIMEOUT,
))
