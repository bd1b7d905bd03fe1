"""Leave: the dates a member writes, registering and ending a leave, and who is away when (no prompts, not missing)."""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.appraisal.workcalendar import is_workday, workdays_of_week
from bot.errors import UserFacingError
from bot.storage.models import Leave
from bot.templates import words, words_pattern

MAX_LEAVE_DAYS = 92
BACKDATE_DAYS = 31  # a leave forgotten last week can still be entered; older ones are a data fix

_RELATIVE_DAYS = words("leave.relative_days")  # position = days from today
_DATE = re.compile(
    rf"(?P<relative>{words_pattern('leave.relative_days')})"
    rf"|(?:(?P<year>\d{{4}})\s*(?:[-/.]|{words_pattern('leave.year_marks')})\s*)?"
    rf"(?P<month>\d{{1,2}})\s*(?:[-/.]|{words_pattern('leave.month_marks')})\s*(?P<day>\d{{1,2}})\s*"
    rf"(?:{words_pattern('leave.day_marks')})?")
_SEPARATOR = re.compile(rf"(?:[\s~～—–\-－,，、]|{words_pattern('leave.range_words')})*")


class LeaveDateError(UserFacingError):
    """Text that does not give a usable leave; `reason` picks the hint the member reads (leave/invalid.txt.j2)."""

    def __init__(self, reason: str, text: str, **details: object) -> None:
        super().__init__("leave/invalid.txt.j2", reason=reason, text=text, **details)
        self.reason = reason


def _infer_year(month: int, day: int, today: date) -> date:
    """A month-day without a year is the occurrence nearest to today (so "01-03" typed in December is next January)."""
    candidate = date(today.year, month, day)
    if candidate < today - timedelta(days=183):
        return date(today.year + 1, month, day)
    if candidate > today + timedelta(days=183):
        return date(today.year - 1, month, day)
    return candidate


def parse_leave_dates(text: str, today: date) -> tuple[date, date]:
    """"2026-12-01 2026-12-05", "12-01 12-05", "12月1日至12月5日", "12/1", "明天" → (first, last day)."""
    found: list[tuple[date, bool]] = []  # (date, year given)
    position = 0
    for match in _DATE.finditer(text):
        if not _SEPARATOR.fullmatch(text[position:match.start()]):
            raise LeaveDateError("unreadable", text)
        position = match.end()
        if match.group("relative"):
            found.append((today + timedelta(days=_RELATIVE_DAYS.index(match.group("relative"))), True))
            continue
        year, month, day = match.group("year"), int(match.group("month")), int(match.group("day"))
        try:
            found.append((date(int(year), month, day), True) if year else (_infer_year(month, day, today), False))
        except ValueError:
            raise LeaveDateError("no_such_date", text, date_text=match.group(0).strip()) from None
    if not _SEPARATOR.fullmatch(text[position:]) or not 1 <= len(found) <= 2:
        raise LeaveDateError("unreadable", text)
    first = found[0][0]
    last, last_has_year = found[-1]
    if len(found) == 2 and not last_has_year and last < first:
        wrapped = last.replace(year=last.year + 1)  # "12-30 01-02" spans the new year...
        if (wrapped - first).days < MAX_LEAVE_DAYS:  # ...but "12-05 12-01" is a typo, not a year off
            last = wrapped
    if last < first:
        raise LeaveDateError("reversed", text, first=first, last=last)
    if (last - first).days + 1 > MAX_LEAVE_DAYS:
        raise LeaveDateError("too_long", text, days=(last - first).days + 1, limit=MAX_LEAVE_DAYS)
    if first < today - timedelta(days=BACKDATE_DAYS):
        raise LeaveDateError("too_old", text, first=first, limit=BACKDATE_DAYS)
    return first, last


# -- one member's leaves ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LeaveView:
    start: date
    end: date
    days: int
    workdays: int
    ongoing: bool


def leave_view(start: date, end: date, today: date) -> LeaveView:
    days = [start + timedelta(days=offset) for offset in range((end - start).days + 1)]
    return LeaveView(start, end, len(days), sum(1 for day in days if is_workday(day)), start <= today <= end)


def current_and_upcoming(session: Session, userid: str, today: date) -> list[Leave]:
    return list(session.scalars(select(Leave).where(
        Leave.userid == userid, Leave.cancelled_at.is_(None), Leave.end_date >= today).order_by(Leave.start_date)))


def register_leave(session: Session, userid: str, first: date, last: date, now: datetime) -> None:
    session.add(Leave(userid=userid, start_date=first, end_date=last, created_at=now))


def end_leaves(session: Session, userid: str, today: date, now: datetime) -> tuple[list[LeaveView], list[LeaveView]]:
    """销假: a leave under way ends yesterday (or is dropped if it started today); upcoming ones are cancelled.
    Returns (ended, cancelled)."""
    ended: list[LeaveView] = []
    cancelled: list[LeaveView] = []
    for leave in current_and_upcoming(session, userid, today):
        if leave.start_date < today:
            leave.end_date = today - timedelta(days=1)
            ended.append(leave_view(leave.start_date, leave.end_date, today))
        else:
            leave.cancelled_at = now
            cancelled.append(leave_view(leave.start_date, leave.end_date, today))
    return ended, cancelled


# -- who is away: for the jobs and the reports views ---------------------------------------------------------
def userids_on_leave(session: Session, day: date, userids: Iterable[str] | None = None) -> set[str]:
    return userids_on_leave_between(session, day, day, userids)


def userids_on_leave_between(session: Session, first: date, last: date,
                             userids: Iterable[str] | None = None) -> set[str]:
    """Members with a leave overlapping [first, last]."""
    query = select(Leave.userid).where(Leave.cancelled_at.is_(None), Leave.start_date <= last,
                                       Leave.end_date >= first)
    if userids is not None:
        query = query.where(Leave.userid.in_(list(userids)))
    return set(session.scalars(query))


def userids_on_leave_all_of(session: Session, days: Iterable[date], userids: Iterable[str] | None = None) -> set[str]:
    """Members whose leaves together cover every one of `days` (e.g. a report week's workdays)."""
    wanted = sorted(set(days))
    if not wanted:
        return set()
    query = select(Leave.userid, Leave.start_date, Leave.end_date).where(
        Leave.cancelled_at.is_(None), Leave.start_date <= wanted[-1], Leave.end_date >= wanted[0])
    if userids is not None:
        query = query.where(Leave.userid.in_(list(userids)))
    covered: dict[str, set[date]] = {}
    for userid, start, end in session.execute(query):
        covered.setdefault(userid, set()).update(day for day in wanted if start <= day <= end)
    return {userid for userid, days_off in covered.items() if len(days_off) == len(wanted)}


def userids_excused_for_week(session: Session, week: str, prompt_day: date | None, deadline_day: date | None
                             ) -> set[str]:
    """Who owes no report for `week`: on leave all of its workdays, or on leave between its prompt and its
    deadline (the leave confirmation promises no reminder then)."""
    excused = userids_on_leave_all_of(session, workdays_of_week(week))
    if prompt_day is not None and deadline_day is not None:
        excused |= userids_on_leave_between(session, prompt_day, deadline_day)
    return excused
