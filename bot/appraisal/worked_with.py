"""Colleagues a member worked with: those of other departments named in the member's recent weekly reports and
KR notes, most mentioned first (the raters a 360 round suggests)."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.appraisal.people import active_members
from bot.storage.models import Member, OkrKeyResult, OkrProgress, WeeklyReport

LOOKBACK = timedelta(days=90)

# What a member wrote recently, each source giving texts for (session, userid, since).
TextSource = Callable[[Session, str, datetime], Iterable[str]]


def _okr_texts(session: Session, userid: str, since: datetime) -> Iterable[str]:
    yield from session.scalars(select(OkrProgress.note).where(OkrProgress.recorded_by == userid,
                                                              OkrProgress.recorded_at >= since))
    yield from session.scalars(select(OkrKeyResult.title).where(OkrKeyResult.owner == userid))


def _weekly_report_texts(session: Session, userid: str, since: datetime) -> Iterable[str]:
    for answers in session.scalars(select(WeeklyReport.answers).where(WeeklyReport.userid == userid,
                                                                      WeeklyReport.updated_at >= since)):
        for value in (answers or {}).values():
            if isinstance(value, str):
                yield value


SOURCES: list[TextSource] = [_weekly_report_texts, _okr_texts]


def from_other_department(subject: Member, colleague: Member) -> bool:
    return set(subject.department_ids or ()).isdisjoint(colleague.department_ids or ())


def worked_with(session: Session, userid: str, now: datetime, limit: int | None = None,
                people: Sequence[Member] | None = None) -> list[Member]:
    """Colleagues from other departments the member mentioned in recent reports, most mentioned first (at most
    `limit`). `people` (every active member) may be passed in when asking for many members at once."""
    subject = session.get(Member, userid)
    if subject is None:
        return []
    everyone = active_members(session) if people is None else people
    candidates = [m for m in everyone if m.userid != userid and from_other_department(subject, m)]
    counts: dict[str, int] = {}
    since = now - LOOKBACK
    for source in SOURCES:
        for text in source(session, userid, since):
            for member in candidates:
                if member.name and member.name in (text or ""):
                    counts[member.userid] = counts.get(member.userid, 0) + (text or "").count(member.name)
    ranked = sorted((m for m in candidates if m.userid in counts), key=lambda m: (-counts[m.userid], m.userid))
    return ranked[:limit]
