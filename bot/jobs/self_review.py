"""The self-review's jobs: the month-end prompt and reminder to everyone who has not submitted the month's review."""
from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING

from sqlalchemy import select

from bot.appraisal.assignment import department_parents
from bot.appraisal.self_reviews import (FLOW, ReviewState, ReviewStep, excused_from_reminder, first_unrated,
                                        indicator_views, indicators_due, rating_view)
from bot.jobs.prompts import Ask, Waiting, ask_everyone_owing
from bot.storage.models import Member, SelfReview
from bot.templates import render

if TYPE_CHECKING:
    from bot.jobs.context import JobContext


def _ask_members(job: JobContext, kind: str, away: set[str]) -> str:
    """One message (review/<kind>.txt.j2) to each member who still owes the month's review and is not away."""
    session, config, month = job.session, job.config, job.period
    reviews = {r.userid: r for r in session.scalars(select(SelfReview).where(SelfReview.month == month))}
    parents = department_parents(session)

    def ask(member: Member) -> Ask | None:
        review = reviews.get(member.userid)
        if review is not None and review.submitted_at is not None:
            return None
        scheme_key, indicators = indicators_due(session, member.userid, member.department_ids or [], config, month,
                                                parents)
        views = indicator_views(indicators)
        first = first_unrated(views, review)
        state = ReviewState.RATING if first < len(views) else ReviewState.ACHIEVEMENTS
        waiting = Waiting(FLOW, state, ReviewStep(month, scheme_key, tuple(v.key for v in views), first).to_dict())
        return Ask(f"review/{kind}.txt.j2", {"who": member.name, "month": month,
                                             "started": bool(review is not None and review.ratings),
                                             **rating_view(views, first, review)}, waiting)

    asked = ask_everyone_owing(job, f"review_{kind}", away, ask)
    return render("review/job_detail.txt.j2", config.bot.locale, kind=kind, month=month, **asdict(asked))


def send_review_prompts(job: JobContext) -> str:
    """Near the month's end, to everyone not on leave today."""
    return _ask_members(job, "prompt", set())


def send_review_reminders(job: JobContext) -> str:
    """Away for every workday since the prompt: not reminded, as the leave promised."""
    return _ask_members(job, "reminder", excused_from_reminder(job.session, job.config, job.period, job.at.date()))
