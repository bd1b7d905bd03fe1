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
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.appraisal import ratings
from bot.appraisal.people import Org, Person, Role, active_members, manager_or_admins
from bot.appraisal.periods import parse_period
from bot.appraisal.worked_with import from_other_department, worked_with
from bot.errors import CodedError
from bot.storage.models import Feedback360Ask, Feedback360Nomination, Feedback360Rating, Feedback360Round, Member
from bot.storage.sqlutil import insert_ignoring_duplicates
from bot.templates import render
from scoring import Indicator, Scheme
from scoring.scheme import RATING_LEVELS
from scoring.decimals import round2

MIN_RATERS = 3
MAX_RATERS = 5
MIN_SHOWN = 3  # no aggregate is shown from fewer ratings (product spec: peer feedback)
FEEDBACK_SOURCES = frozenset({"360", "feedback_360", "feedback_360.average"})
DEFAULT_DEADLINE_DAYS = 14
REMIND_EVERY = timedelta(hours=36)  # a reminder at most every other day-ish, whatever time the job runs
COMMENT_LIMIT = 500
NAME_LIMIT = 128

Send = Callable[..., None]  # send(userid, template, **variables)


class Feedback360Error(CodedError):
    """A request the 360 rules refuse; `code` picks the sentence in feedback360/error.txt.j2."""

    TEMPLATE = "feedback360/error.txt.j2"


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
    """A round for the period as the admin wrote it (2026, 2026-Q4, 2026年...), with the scheme's 360 indicator."""
    parsed = parse_period(period)
    if parsed is None:
        raise Feedback360Error("bad_period", period=period)
    period = str(parsed)
    running = current_round(session)
    if running is not None:
        raise Feedback360Error("round_open", name=running.name)
    indicator = feedback_indicator(scheme)
    if indicator is None:
        raise Feedback360Error("no_indicator", scheme=scheme.key)
    if deadline < now.date():
        raise Feedback360Error("deadline_past", deadline=deadline.isoformat())
    row = Feedback360Round(name=name.strip()[:NAME_LIMIT] or f"{period} 360", period=period,
                           indicator_key=indicator.key, indicator_name=indicator.name,
                           anchors={str(level): text for level, text in sorted(indicator.anchors.items())},
                           status="open", deadline=deadline, opened_by=by, opened_at=now)
    session.add(row)
    session.flush()
    return row


def start_round(session: Session, *, period: str, deadline: date, name: str, by: str, scheme: Scheme,
                now: datetime, send: Send) -> tuple[Feedback360Round, int]:
    """Open a round and ask every member to nominate raters (with suggestions); returns it and how many were asked."""
    round_ = open_round(session, period=period, deadline=deadline, by=by, scheme=scheme, now=now,
                        name=name or render("feedback360/round_name.txt.j2", period=period))
    people = active_members(session)
    for member in people:
        suggestions = [m.name for m in suggested_raters(session, member.userid, now, people=people)]
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


def close_round(session: Session, round_: Feedback360Round, now: datetime) -> list[Aggregate]:
    """Close a round: unanswered asks expire, and the aggregates become visible (from MIN_SHOWN ratings)."""
    if round_.status != "open":
        raise Feedback360Error("round_closed", name=round_.name)
    round_.status, round_.closed_at = "closed", now
    for ask in session.scalars(select(Feedback360Ask).where(Feedback360Ask.round_id == round_.id,
                                                             Feedback360Ask.status == "pending")):
        ask.status = "expired"
    session.flush()
    return [aggregate(session, round_, member.userid) for member in active_members(session)]


# -- people -------------------------------------------------------------------------------------------------

def resolve_people(session: Session, words: Iterable[str]) -> list[Member]:
    """Active members by name or userid, in the order given; an unknown or ambiguous one is an error."""
    members = active_members(session)
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


def suggested_raters(session: Session, userid: str, now: datetime,
                     people: Sequence[Member] | None = None) -> list[Member]:
    """The colleagues of other departments the member worked with, as many as may be nominated."""
    return worked_with(session, userid, now, limit=MAX_RATERS, people=people)


def may_confirm(session: Session, person: Person, subject: str) -> bool:
    """An admin, a manager above the member, or the member's own manager (even one no longer active)."""
    if person.role >= Role.ADMIN:
        return True
    member = session.get(Member, subject)
    return subject in Org.load(session).team(person.userid) or (
        member is not None and member.manager_userid == person.userid)


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
    if rating not in RATING_LEVELS:
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


def rating_of_answer(text: str) -> int | None:
    """A rater's answer read by the one rating parser; None when it is no rating 1-5.

    A Chinese numeral ("四分") is taken as the rating it names, where /score and the self-review ask for the digit:
    the rating conversation never repeats a rater's number back, so it cannot ask "did you mean 4?"."""
    found = ratings.parse_rating(text)
    if isinstance(found, ratings.RatingProblem):
        return found.suggestion if found.kind == "chinese_numeral" else None
    return found


def ask_view(session: Session, ask: Feedback360Ask) -> dict[str, Any]:
    """What the rater reads for one ask: who, which indicator, its behaviour anchors."""
    round_ = session.get(Feedback360Round, ask.round_id)
    subject = session.get(Member, ask.subject)
    anchors = dict(round_.anchors or {}) if round_ else {}
    return {"subject_name": subject.name if subject else ask.subject,
            "indicator_name": round_.indicator_name if round_ else "",
            "anchors": [(level, anchors.get(str(level), "")) for level in range(5, 0, -1)],
            "round_name": round_.name if round_ else "", "deadline": round_.deadline if round_ else None}


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
    people = [m.userid for m in active_members(session)] if among is None else list(among)
    wanted = set(people)
    nominations = [n for n in session.scalars(select(Feedback360Nomination).where(
        Feedback360Nomination.round_id == round_.id)) if n.subject in wanted]
    asks = [a for a in session.scalars(select(Feedback360Ask).where(Feedback360Ask.round_id == round_.id))
            if a.subject in wanted]
    return RoundProgress(subjects=len(people), nominated=len(nominations),
                         confirmed=sum(1 for n in nominations if n.status == "confirmed"),
                         asks=len(asks), answered=sum(1 for a in asks if a.status == "answered"))


# -- who still owes something -------------------------------------------------------------------------------

def open_rounds(session: Session) -> list[Feedback360Round]:
    return list(session.scalars(select(Feedback360Round).where(Feedback360Round.status == "open")))


@dataclass(frozen=True)
class Owed:
    """Who still owes an open round something: nominations (with suggested raters), confirmations by reviewer
    (the members waiting), and the raters due a reminder about their ratings."""

    nominations: dict[str, list[str]]
    confirmations: dict[str, list[str]]
    raters: list[str]


def owed(session: Session, round_: Feedback360Round, now: datetime, admins: Sequence[str]) -> Owed:
    """What the round still waits for; the raters' asks are marked reminded, so each is reminded at most every
    REMIND_EVERY."""
    nominations = {n.subject: n for n in session.scalars(select(Feedback360Nomination).where(
        Feedback360Nomination.round_id == round_.id))}
    people = active_members(session)
    unnominated = {member.userid: [m.name for m in suggested_raters(session, member.userid, now, people=people)]
                   for member in people if member.userid not in nominations}
    waiting: dict[str, list[str]] = {}
    for nomination in nominations.values():
        if nomination.status == "proposed":
            for reviewer in manager_or_admins(session, nomination.subject, admins):
                subject = session.get(Member, nomination.subject)
                waiting.setdefault(reviewer, []).append(subject.name if subject else nomination.subject)
    raters: dict[str, None] = {}
    for ask in session.scalars(select(Feedback360Ask).where(Feedback360Ask.round_id == round_.id,
                                                            Feedback360Ask.status == "pending")):
        if ask.reminded_at is None or now - ask.reminded_at >= REMIND_EVERY:
            ask.reminded_at = now
            raters[ask.rater] = None
    session.flush()
    return Owed(unnominated, waiting, list(raters))


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
