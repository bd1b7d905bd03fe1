"""360-degree feedback: rounds, raters nominated and confirmed, anonymous ratings, aggregates shown only from 3 ratings.

Anonymity by construction: a rating row (feedback360_ratings) holds the round, the member rated, the 1-5 rating
and the comment, and nothing else: no rater, no time, a random id. The ask row (feedback360_asks) knows the
rater, only to remind them and to refuse a second answer. Nothing here returns a single rating; aggregates
(count and mean) are computed for closed rounds only, so no one can tell a rater's answer by watching the mean
move, and only from MIN_SHOWN ratings up.
"""
from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.storage import models
from bot.wecom import outbox
from bot.clock import Clock
from bot.storage.models import (
    Conversation,
    Feedback360Ask,
    Feedback360Nomination,
    Feedback360Rating,
    Feedback360Round,
    Member,
    OkrKeyResult,
    OkrProgress,
)
from bot.appraisal.okr import manages
from bot.wecom.outbox import Outgoing
from bot.chat.routing import ConversationHandle, Person, Role, UserFacingError
from bot.storage.sqlutil import insert_ignoring_duplicates
from bot.templates import render
from scoring import Indicator, Period, Scheme
from scoring.decimals import round2

MIN_RATERS = 3
MAX_RATERS = 5
MIN_SHOWN = 3  # no aggregate is shown from fewer ratings (product spec: peer feedback)
FEEDBACK_SOURCES = frozenset({"360", "feedback_360", "feedback_360.average"})
DEFAULT_DEADLINE_DAYS = 14
REMIND_EVERY = timedelta(hours=36)  # a reminder at most every other day-ish, whatever time the job runs
WORKED_WITH_LOOKBACK = timedelta(days=90)
FLOW = "feedback360"
CONVERSATION_TIMEOUT = timedelta(hours=24)
COMMENT_LIMIT = 500


class RatingState(StrEnum):
    RATING = "rating"
    COMMENT = "comment"


class Feedback360Error(UserFacingError):
    """A request the 360 rules refuse; `code` picks the sentence in feedback360/error.txt.j2."""

    def __init__(self, code: str, **params: Any) -> None:
        super().__init__("feedback360/error.txt.j2", code=code, p=params)
        self.code = code
        self.params = params


@dataclass(frozen=True)
class Aggregate:
    """What may be shown about one member's ratings in one round: a count, and a mean and the (unattributed,
    sorted) comments only from MIN_SHOWN ratings up."""

    subject: str
    subject_name: str
    count: int
    mean: Decimal | None
    comments: tuple[str, ...]

    @property
    def shown(self) -> bool:
        return self.mean is not None


@dataclass(frozen=True)
class RoundProgress:
    subjects: int
    nominated: int
    confirmed: int
    asks: int
    answered: int


# -- rounds -------------------------------------------------------------------------------------------------

def feedback_indicator(scheme: Scheme) -> Indicator | None:
    """The scheme's indicator fed by 360 feedback (source "feedback_360.average" or "360")."""
    return next((i for i in scheme.indicators if i.source in FEEDBACK_SOURCES), None)


def open_round(session: Session, *, period: str, deadline: date, name: str, by: str, scheme: Scheme,
               now: datetime) -> Feedback360Round:
    try:
        period = str(Period.parse(period))
    except ValueError:
        raise Feedback360Error("bad_period", period=period) from None
    if current_round(session) is not None:
        raise Feedback360Error("round_open", name=current_round(session).name)  # type: ignore[union-attr]
    indicator = feedback_indicator(scheme)
    if indicator is None:
        raise Feedback360Error("no_indicator", scheme=scheme.key)
    if deadline < now.date():
        raise Feedback360Error("deadline_past", deadline=deadline.isoformat())
    row = Feedback360Round(name=name.strip()[:128] or f"{period} 360", period=period, indicator_key=indicator.key,
                           indicator_name=indicator.name,
                           anchors={str(level): text for level, text in sorted(indicator.anchors.items())},
                           status="open", deadline=deadline, opened_by=by, opened_at=now)
    session.add(row)
    session.flush()
    return row


def start_round(session: Session, *, period: str, deadline: date, name: str, by: str, scheme: Scheme,
                now: datetime, send: Send) -> tuple[Feedback360Round, int]:
    """Open a round and ask every member to nominate raters (with suggestions); returns it and how many were asked."""
    round_ = open_round(session, period=period, deadline=deadline, name=name or f"{period} 跨部门协作 360 反馈",
                        by=by, scheme=scheme, now=now)
    people = subjects(session)
    for member in people:
        suggestions = [m.name for m in worked_with(session, member.userid, now, people=people)]
        send(member.userid, "feedback360/round_opened.txt.j2", round_name=round_.name,
             indicator=round_.indicator_name, deadline=round_.deadline, min_raters=MIN_RATERS,
             max_raters=MAX_RATERS, suggestions=suggestions)
    return round_, len(people)


def current_round(session: Session) -> Feedback360Round | None:
    return session.scalars(select(Feedback360Round).where(Feedback360Round.status == "open")
                           .order_by(Feedback360Round.id.desc()).limit(1)).first()


def latest_closed_round(session: Session) -> Feedback360Round | None:
    return session.scalars(select(Feedback360Round).where(Feedback360Round.status == "closed")
                           .order_by(Feedback360Round.id.desc()).limit(1)).first()


def require_open_round(session: Session) -> Feedback360Round:
    found = current_round(session)
    if found is None:
        raise Feedback360Error("no_open_round")
    return found


def subjects(session: Session) -> list[Member]:
    """Who is rated in a round: every active member of the appraised departments."""
    return list(session.scalars(select(Member).where(Member.active.is_(True)).order_by(Member.userid)))


def close_round(session: Session, round_: Feedback360Round, now: datetime) -> list[Aggregate]:
    """Close a round: unanswered asks expire, and the aggregates become visible (from MIN_SHOWN ratings)."""
    if round_.status != "open":
        raise Feedback360Error("round_closed", name=round_.name)
    round_.status, round_.closed_at = "closed", now
    for ask in session.scalars(select(Feedback360Ask).where(Feedback360Ask.round_id == round_.id,
                                                             Feedback360Ask.status == "pending")):
        ask.status = "expired"
    session.flush()
    return [aggregate(session, round_, member.userid) for member in subjects(session)]


# -- people -------------------------------------------------------------------------------------------------

def resolve_people(session: Session, words: Iterable[str]) -> list[Member]:
    """Active members by name or userid, in the order given; an unknown or ambiguous one is an error."""
    members = subjects(session)
    found: list[Member] = []
    for word in words:
        word = word.strip("，,、;；")
        if not word:
            continue
        matches = [m for m in members if m.userid == word] or [m for m in members if m.name == word]
        if not matches:
            raise Feedback360Error("unknown_person", name=word)
        if len(matches) > 1:
            raise Feedback360Error("ambiguous_person", name=word, userids="、".join(m.userid for m in matches))
        found.append(matches[0])
    return found


def split_names(text: str) -> list[str]:
    return [word for word in re.split(r"[\s,，、;；]+", text) if word]


def from_other_department(subject: Member, rater: Member) -> bool:
    return set(subject.department_ids or ()).isdisjoint(rater.department_ids or ())


def check_raters(subject: Member, raters: Sequence[Member]) -> None:
    userids = [r.userid for r in raters]
    if len(set(userids)) != len(userids):
        raise Feedback360Error("duplicate_rater")
    if subject.userid in userids:
        raise Feedback360Error("self_rater")
    if not MIN_RATERS <= len(raters) <= MAX_RATERS:
        raise Feedback360Error("rater_count", count=len(raters), low=MIN_RATERS, high=MAX_RATERS)
    same = [r.name for r in raters if not from_other_department(subject, r)]
    if same:
        raise Feedback360Error("same_department", names="、".join(same))


def reviewers_of(session: Session, subject: str, admins: Sequence[str]) -> list[str]:
    """Who confirms a member's raters: their manager, else the admins."""
    member = session.get(Member, subject)
    if member is not None and member.manager_userid:
        return [member.manager_userid]
    return [admin for admin in admins if admin != subject] or list(admins)


def may_confirm(session: Session, person: Person, subject: str) -> bool:
    if person.role >= Role.ADMIN:
        return True
    member = session.get(Member, subject)
    return manages(session, person.userid, subject) or (member is not None and member.manager_userid == person.userid)


# What a member wrote recently, to find the colleagues they worked with. Each source gives texts for
# (session, userid, since); the weekly report's answers are read when that model exists.
TextSource = Callable[[Session, str, datetime], Iterable[str]]


def _okr_texts(session: Session, userid: str, since: datetime) -> Iterable[str]:
    yield from session.scalars(select(OkrProgress.note).where(OkrProgress.recorded_by == userid,
                                                              OkrProgress.recorded_at >= since))
    yield from session.scalars(select(OkrKeyResult.title).where(OkrKeyResult.owner == userid))


def _weekly_report_texts(session: Session, userid: str, since: datetime) -> Iterable[str]:
    report = getattr(models, "WeeklyReport", None)  # owned by the weekly-report work; absent before it lands
    if report is None:
        return
    for answers in session.scalars(select(report.answers).where(report.userid == userid,
                                                                report.updated_at >= since)):
        for value in (answers or {}).values():
            if isinstance(value, str):
                yield value


WORKED_WITH_SOURCES: list[TextSource] = [_weekly_report_texts, _okr_texts]


def worked_with(session: Session, userid: str, now: datetime, limit: int = MAX_RATERS,
                people: Sequence[Member] | None = None) -> list[Member]:
    """Colleagues from other departments the member mentioned in recent reports, most mentioned first.
    `people` (every active member) may be passed in when asking for many members at once."""
    subject = session.get(Member, userid)
    if subject is None:
        return []
    everyone = subjects(session) if people is None else people
    candidates = [m for m in everyone if m.userid != userid and from_other_department(subject, m)]
    counts: dict[str, int] = {}
    since = now - WORKED_WITH_LOOKBACK
    for source in WORKED_WITH_SOURCES:
        for text in source(session, userid, since):
            for member in candidates:
                if member.name and member.name in (text or ""):
                    counts[member.userid] = counts.get(member.userid, 0) + (text or "").count(member.name)
    ranked = sorted((m for m in candidates if m.userid in counts), key=lambda m: (-counts[m.userid], m.userid))
    return ranked[:limit]


# -- nominations --------------------------------------------------------------------------------------------

def nominate(session: Session, round_: Feedback360Round, subject: Member, raters: Sequence[Member], *,
             proposed_by: str, now: datetime) -> Feedback360Nomination:
    check_raters(subject, raters)
    row = nomination_of(session, round_.id, subject.userid)
    if row is not None and row.status == "confirmed":
        raise Feedback360Error("already_confirmed", name=subject.name)
    if row is None:
        row = Feedback360Nomination(round_id=round_.id, subject=subject.userid, proposed_at=now)
        session.add(row)
    row.raters, row.proposed_by, row.status, row.proposed_at = [r.userid for r in raters], proposed_by, "proposed", now
    session.flush()
    return row


def nomination_of(session: Session, round_id: int, subject: str) -> Feedback360Nomination | None:
    return session.scalars(select(Feedback360Nomination).where(Feedback360Nomination.round_id == round_id,
                                                                Feedback360Nomination.subject == subject)).first()


def confirm(session: Session, nomination: Feedback360Nomination, by: str, now: datetime) -> list[str]:
    """The manager agrees: every rater now owes the member a rating. Returns the raters' userids."""
    if nomination.status == "confirmed":
        raise Feedback360Error("already_confirmed", name=nomination.subject)
    nomination.status, nomination.confirmed_by, nomination.confirmed_at = "confirmed", by, now
    insert_ignoring_duplicates(session, Feedback360Ask.__table__, [
        {"round_id": nomination.round_id, "subject": nomination.subject, "rater": rater, "status": "pending",
         "asked_at": now} for rater in nomination.raters])
    session.flush()
    return list(nomination.raters)


# -- answering ----------------------------------------------------------------------------------------------

def pending_asks(session: Session, rater: str) -> list[Feedback360Ask]:
    open_ids = select(Feedback360Round.id).where(Feedback360Round.status == "open")
    return list(session.scalars(select(Feedback360Ask).where(
        Feedback360Ask.rater == rater, Feedback360Ask.status == "pending", Feedback360Ask.round_id.in_(open_ids))
        .order_by(Feedback360Ask.id)))


def own_pending_ask(session: Session, ask_id: int, rater: str) -> tuple[Feedback360Ask, Feedback360Round]:
    """The rater's unanswered ask in an open round; Feedback360Error otherwise."""
    ask = session.get(Feedback360Ask, ask_id)
    if ask is None or ask.rater != rater:
        raise Feedback360Error("no_such_ask")
    round_ = session.get(Feedback360Round, ask.round_id)
    if round_ is None or round_.status != "open":
        raise Feedback360Error("round_closed", name=round_.name if round_ else "")
    if ask.status != "pending":
        raise Feedback360Error("already_answered")
    return ask, round_


def answer(session: Session, ask_id: int, rater: str, rating: int, comment: str | None) -> None:
    """Store one rating, anonymously, and mark the ask done so the rater cannot answer twice."""
    if rating not in (1, 2, 3, 4, 5):
        raise Feedback360Error("bad_rating")
    ask, round_ = own_pending_ask(session, ask_id, rater)
    ask.status = "answered"
    session.add(Feedback360Rating(id=uuid.uuid4().hex, round_id=round_.id, subject=ask.subject, rating=rating,
                                  comment=(comment or "").strip()[:COMMENT_LIMIT] or None))
    session.flush()


def decline(session: Session, ask_id: int, rater: str) -> None:
    """The rater does not know the member's work well enough: no rating, no more reminders."""
    ask, _ = own_pending_ask(session, ask_id, rater)
    ask.status = "declined"
    session.flush()


_RATING_WORDS = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5}


def parse_rating(text: str) -> int | None:
    """ "4", "4分", "４", "四分" → 4; anything else None."""
    cleaned = text.strip().translate(str.maketrans("１２３４５", "12345")).removesuffix("分").strip()
    if cleaned in ("1", "2", "3", "4", "5"):
        return int(cleaned)
    return _RATING_WORDS.get(cleaned)


def ask_view(session: Session, ask: Feedback360Ask) -> dict[str, Any]:
    """What the rater reads for one ask: who, which indicator, its behaviour anchors."""
    round_ = session.get(Feedback360Round, ask.round_id)
    subject = session.get(Member, ask.subject)
    anchors = dict(round_.anchors or {}) if round_ else {}
    return {"subject_name": subject.name if subject else ask.subject,
            "indicator_name": round_.indicator_name if round_ else "",
            "anchors": [(level, anchors.get(str(level), "")) for level in range(5, 0, -1)],
            "round_name": round_.name if round_ else "", "deadline": round_.deadline if round_ else None}


Send = Callable[..., None]  # send(userid, template, **variables)


def has_open_conversation(session: Session, userid: str, now: datetime) -> bool:
    row = session.get(Conversation, userid)
    return row is not None and row.expires_at > now


def ask_next(session: Session, clock: Clock, rater: str, send: Send, *, start: bool = True) -> bool:
    """Put the rater's next pending ask to them in the rating conversation; False when none is left."""
    asks = pending_asks(session, rater)
    if not asks:
        return False
    ask = asks[0]
    if start:
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


# -- what may be shown --------------------------------------------------------------------------------------

def aggregate(session: Session, round_: Feedback360Round, subject: str) -> Aggregate:
    member = session.get(Member, subject)
    name = member.name if member else subject
    count = session.scalar(select(func.count()).select_from(Feedback360Rating).where(
        Feedback360Rating.round_id == round_.id, Feedback360Rating.subject == subject)) or 0
    if round_.status != "closed" or count < MIN_SHOWN:
        return Aggregate(subject, name, count if round_.status == "closed" else 0, None, ())
    total = session.scalar(select(func.sum(Feedback360Rating.rating)).where(
        Feedback360Rating.round_id == round_.id, Feedback360Rating.subject == subject)) or 0
    comments = sorted(c for c in session.scalars(select(Feedback360Rating.comment).where(
        Feedback360Rating.round_id == round_.id, Feedback360Rating.subject == subject)) if c)
    return Aggregate(subject, name, count, round2(Decimal(int(total)) / count), tuple(comments))


def averages_for(session: Session, userids: Iterable[str], period: str) -> dict[str, Decimal]:
    """Each member's mean 360 rating over the closed rounds of `period` (the `360` indicator source), only for
    members with at least MIN_SHOWN ratings."""
    wanted = set(userids)
    closed = select(Feedback360Round.id).where(Feedback360Round.status == "closed",
                                               Feedback360Round.period == period)
    rows = session.execute(select(Feedback360Rating.subject, func.count(), func.sum(Feedback360Rating.rating))
                           .where(Feedback360Rating.round_id.in_(closed)).group_by(Feedback360Rating.subject))
    return {subject: round2(Decimal(int(total)) / count) for subject, count, total in rows
            if subject in wanted and count >= MIN_SHOWN}


def progress(session: Session, round_: Feedback360Round, among: Iterable[str] | None = None) -> RoundProgress:
    """Counts only: how far a round got, never who answered what."""
    people = [m.userid for m in subjects(session)] if among is None else list(among)
    wanted = set(people)
    nominations = [n for n in session.scalars(select(Feedback360Nomination).where(
        Feedback360Nomination.round_id == round_.id)) if n.subject in wanted]
    asks = [a for a in session.scalars(select(Feedback360Ask).where(Feedback360Ask.round_id == round_.id))
            if a.subject in wanted]
    return RoundProgress(subjects=len(people), nominated=len(nominations),
                         confirmed=sum(1 for n in nominations if n.status == "confirmed"),
                         asks=len(asks), answered=sum(1 for a in asks if a.status == "answered"))


# -- the daily job ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DailyReport:
    closed: tuple[str, ...]
    reminded_raters: int
    reminded_members: int
    reminded_managers: int


def daily(session: Session, clock: Clock, today: date, admins: Sequence[str],
          send_for: Callable[[str], Send]) -> DailyReport:
    """Close rounds past their deadline and remind whoever still owes something, at most every REMIND_EVERY.

    `send_for(purpose)` gives a sender whose messages are idempotent per purpose and day."""
    now = clock.now()
    closed: list[str] = []
    raters = members = managers = 0
    for round_ in session.scalars(select(Feedback360Round).where(Feedback360Round.status == "open")).all():
        if today > round_.deadline:
            announce_close(session, round_, now, admins, send_for(f"close{round_.id}"))
            closed.append(round_.name)
            continue
        send = send_for(f"remind{round_.id}")
        nominations = {n.subject: n for n in session.scalars(select(Feedback360Nomination).where(
            Feedback360Nomination.round_id == round_.id))}
        people = subjects(session)
        for member in people:
            if member.userid not in nominations:
                suggestions = [m.name for m in worked_with(session, member.userid, now, people=people)]
                send(member.userid, "feedback360/reminder_nominate.txt.j2", round_name=round_.name,
                     deadline=round_.deadline, suggestions=suggestions)
                members += 1
        waiting: dict[str, list[str]] = {}
        for nomination in nominations.values():
            if nomination.status == "proposed":
                for reviewer in reviewers_of(session, nomination.subject, admins):
                    subject = session.get(Member, nomination.subject)
                    waiting.setdefault(reviewer, []).append(subject.name if subject else nomination.subject)
        for reviewer, names in waiting.items():
            send(reviewer, "feedback360/reminder_confirm.txt.j2", round_name=round_.name, names=names)
            managers += 1
        owing: dict[str, list[Feedback360Ask]] = {}
        for ask in session.scalars(select(Feedback360Ask).where(Feedback360Ask.round_id == round_.id,
                                                                Feedback360Ask.status == "pending")):
            if ask.reminded_at is None or now - ask.reminded_at >= REMIND_EVERY:
                owing.setdefault(ask.rater, []).append(ask)
        for rater, asks in owing.items():
            for ask in asks:
                ask.reminded_at = now
            if has_open_conversation(session, rater, now):
                send(rater, "feedback360/reminder_rate.txt.j2", count=len(pending_asks(session, rater)),
                     deadline=round_.deadline)
            else:
                ask_next(session, clock, rater, send)
            raters += 1
    session.flush()
    return DailyReport(tuple(closed), raters, members, managers)


def announce_close(session: Session, round_: Feedback360Round, now: datetime, admins: Sequence[str],
                   send: Send) -> list[Aggregate]:
    """Close the round and tell each member their own aggregate, and the admins how many can be shown."""
    results = close_round(session, round_, now)
    for result in results:
        send(result.subject, "feedback360/result.txt.j2", round_name=round_.name, indicator=round_.indicator_name,
             results=[result], min_shown=MIN_SHOWN, scope="own")
    shown = sum(1 for result in results if result.shown)
    for admin in admins:
        send(admin, "feedback360/round_closed.txt.j2", round_name=round_.name, period=round_.period,
             shown=shown, total=len(results), min_shown=MIN_SHOWN)
    return results


# -- the daily job (bot.jobs.runner.JOBS "feedback360_daily") ----------------------------------------------------

DAILY_AT_HOUR, DAILY_AT_MINUTE = 10, 20


def daily_period(at: datetime, _config: Any) -> str:
    return at.date().isoformat()


def run_daily_job(ctx: Any) -> str:
    """Close overdue rounds, remind the late (each message idempotent per job period, purpose and person)."""
    locale = ctx.config.bot.locale
    clock = ctx.clock

    def send_for(purpose: str) -> Send:
        def send(userid: str, template: str, **variables: Any) -> None:
            text = render(template, locale, **variables)
            outbox.enqueue(ctx.session, f"job:feedback360:{ctx.period}:{purpose}:{userid}:{template}",
                           Outgoing.text(userid, text), clock.now())
        return send

    report = daily(ctx.session, clock, ctx.at.date(), ctx.config.org.admins, send_for)
    return render("feedback360/job_detail.txt.j2", locale, report=report)
