"""Self-review rules: the month a review is for and while it is open, indicators due, ratings, drafts, submission."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.appraisal.assignment import behaviour_indicators_due, cached_scheme, department_parents, scheme_name_for
from bot.appraisal.leave import userids_on_leave_all_of
from bot.appraisal.workcalendar import is_workday, month_of, nth_workday_of_month, review_prompt_day
from bot.config import Config
from bot.storage.models import SelfReview
from scoring import Indicator
from scoring.scheme import RATING_LEVELS

FLOW = "self_review"  # the conversation's name, in the member's Conversation row



class ReviewState(StrEnum):
    RATING = "rating"  # rating indicators[index]
    ACHIEVEMENTS = "achievements"
    IMPROVEMENTS = "improvements"


@dataclass(frozen=True)
class ReviewStep:
    """Where a member is in filling in one month's review, kept as JSON in their open conversation
    (Conversation.data): to_dict and from_dict are the one place that knows that shape."""

    month: str
    scheme: str = ""  # the scheme's key when the review opened
    # The indicator keys chosen when the review opened, so a scheme change mid-conversation cannot shift the questions.
    keys: tuple[str, ...] = ()
    index: int = 0  # the indicator being rated
    untouched: bool = False  # opened by a scheduled prompt the member has not answered yet

    def to_dict(self) -> dict[str, Any]:
        return {"month": self.month, "scheme": self.scheme, "keys": list(self.keys), "index": self.index,
                "untouched": self.untouched}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReviewStep:
        return cls(month=str(data.get("month", "")), scheme=str(data.get("scheme", "")),
                   keys=tuple(str(key) for key in data.get("keys", ())), index=int(data.get("index", 0)),
                   untouched=bool(data.get("untouched")))


# -- a rating as written ----------------------------------------------------------------------------------------
# -- which month, which indicators ------------------------------------------------------------------------------
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
    """The month /review means: last month's while it is open and not submitted, this month's otherwise."""
    last_month = previous_month(today)
    review = find_review(session, userid, last_month)
    if (review is None or review.submitted_at is None) and review_is_open(last_month, config, today):
        return last_month
    return month_of(today)


def indicators_due(session: Session, userid: str, department_ids: Sequence[int], config: Config,
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


def indicator_views(indicators: Sequence[Indicator]) -> list[IndicatorView]:
    return [IndicatorView(i.key, i.name, [(level, i.anchors[level]) for level in RATING_LEVELS if level in i.anchors])
            for i in indicators]


def first_unrated(views: Sequence[IndicatorView], review: SelfReview | None) -> int:
    """The first indicator without a rating yet; len(views) when every one has one."""
    ratings = (review.ratings or {}) if review is not None else {}
    return next((i for i, v in enumerate(views) if v.key not in ratings), len(views))


def rating_view(indicators: Sequence[IndicatorView], index: int, review: SelfReview | None) -> dict[str, Any]:
    """What review/_rating.txt.j2 shows of indicators[index] (index past the end: no indicator left)."""
    if index >= len(indicators):
        return {"indicator": None, "number": 0, "total": 0, "current": None}
    indicator = indicators[index]
    current = (review.ratings or {}).get(indicator.key) if review is not None else None
    return {"indicator": indicator, "number": index + 1, "total": len(indicators), "current": current}


def excused_from_reminder(session: Session, config: Config, month: str, day: date) -> set[str]:
    """Away for every workday of the review window (prompt to `day`): no reminder, as the leave promised."""
    year, index = (int(part) for part in month.split("-"))
    prompt_day = review_prompt_day(year, index, config.self_review)
    if prompt_day is None or prompt_day > day:
        return set()
    window = [prompt_day + timedelta(days=n) for n in range((day - prompt_day).days + 1)]
    return userids_on_leave_all_of(session, [d for d in window if is_workday(d)])


# -- one member's review --------------------------------------------------------------------------------------
def draft_review(session: Session, userid: str, month: str, scheme_key: str, now: datetime) -> SelfReview:
    """The member's review for the month, created as an empty draft the first time it is needed."""
    review = find_review(session, userid, month)
    if review is None:
        review = SelfReview(userid=userid, month=month, scheme_key=scheme_key, ratings={},
                            achievements="", improvements="", created_at=now, updated_at=now)
        session.add(review)
        session.flush()
    return review


def record_rating(review: SelfReview, key: str, rating: int, now: datetime) -> None:
    review.ratings = {**(review.ratings or {}), key: rating}  # a new dict: the JSON column is written
    review.updated_at = now


def submit_review(review: SelfReview, now: datetime) -> bool:
    """Submit (again, after an edit); True for a resubmission."""
    resubmitted = review.submitted_at is not None
    review.submitted_at = now
    return resubmitted
