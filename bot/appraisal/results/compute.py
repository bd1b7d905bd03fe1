"""The engine's input assembled from storage (values, targets, ratings, months appraised) and the engine run over it."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.appraisal.indicator_sources import collect_values
from bot.appraisal.results.roster import Roster
from bot.appraisal.workcalendar import month_days, workdays_of_month
from bot.config import Config
from bot.storage.db import transaction
from bot.storage.models import DataEntry, Leave, PeriodResult, ResultCalibration, SelfReview
from scoring import (WAIVED, Calibration, Cycle, MemberData, MemberResult, Period, PeriodKind, Problem, Scheme,
                     apply_calibrations, check_calibrations, compute_results)
from scoring.results import Waiver, rank_results

READ_CHUNK = 500  # userids per read (and per IN (...) list)
SELF_REVIEW_SOURCES = frozenset({"self_review", "self"})
# What a long computation reports as it goes: (stage, done, total).
Progress = Callable[[str, int, int], None]


def chunks(items: Sequence[str], size: int = READ_CHUNK) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


@contextmanager
def reading(source: Session | sessionmaker[Session]) -> Iterator[Session]:
    """The handler's own session, or (in a job) a short transaction of its own per read."""
    if isinstance(source, Session):
        yield source
    else:
        with transaction(source) as session:
            yield session


# -- engine input from storage --------------------------------------------------------------------------------------
def sub_periods(period: Period) -> list[str]:
    """Every period text whose values feed `period`: its months, its quarters, itself."""
    texts = [str(month) for month in period.months()]
    if period.kind is not PeriodKind.MONTH:
        texts += [str(quarter) for quarter in period.quarters()]
    if period.kind is PeriodKind.YEAR:
        texts.append(str(period))
    return texts


@dataclass(frozen=True)
class Entry:
    """The entry that counts for one (member, key, period): its value and who gave it, with what reason."""

    value: Decimal | Waiver
    reason: str
    source: str
    by: str


def latest_entries(session: Session, userids: Sequence[str], periods: Sequence[str]
                   ) -> tuple[dict[tuple[str, str, str], Entry], dict[tuple[str, str, str], Decimal]]:
    """The latest value (or waiver) and the latest target per (userid, key, period): later entries win."""
    values: dict[tuple[str, str, str], Entry] = {}
    targets: dict[tuple[str, str, str], Decimal] = {}
    for chunk in chunks(list(userids)):
        rows = session.execute(
            select(DataEntry.userid, DataEntry.key, DataEntry.period, DataEntry.kind, DataEntry.value,
                   DataEntry.waived, DataEntry.reason, DataEntry.source, DataEntry.entered_by)
            .where(DataEntry.period.in_(list(periods)), DataEntry.userid.in_(list(chunk)))
            .order_by(DataEntry.id))
        for userid, key, period, kind, value, waived, reason, source, by in rows:
            if kind == "target":
                if value is not None:
                    targets[(userid, key, period)] = Decimal(value)
                else:
                    targets.pop((userid, key, period), None)
            else:
                values[(userid, key, period)] = Entry(WAIVED if waived else Decimal(value), reason or "", source, by)
    return values, targets


def _self_review_values(session: Session, userids: Sequence[str], schemes: Mapping[str, Scheme], period: Period
                        ) -> dict[tuple[str, str, str], Decimal]:
    """A scheme may make the self-review an input (source = "self_review"); the presets do not."""
    wanted = {u for u in userids if any(i.source in SELF_REVIEW_SOURCES for i in schemes[u].indicators)}
    if not wanted:
        return {}
    months = [str(m) for m in period.months()]
    found: dict[tuple[str, str, str], Decimal] = {}
    for review in session.scalars(select(SelfReview).where(SelfReview.userid.in_(sorted(wanted)),
                                                           SelfReview.month.in_(months),
                                                           SelfReview.submitted_at.is_not(None))):
        for indicator in schemes[review.userid].indicators:
            rating = (review.ratings or {}).get(indicator.key)
            if indicator.source in SELF_REVIEW_SOURCES and rating is not None and indicator.cycle == Cycle.MONTH:
                found[(review.userid, indicator.key, review.month)] = Decimal(int(rating))
    return found


@dataclass
class Gathered:
    """Engine input for some members and one period, plus the manager's comments found on the way."""

    period: Period
    members: dict[str, MemberData]
    schemes: dict[str, Scheme]
    scheme_names: dict[str, str]
    comments: dict[str, list[dict[str, str]]]


def gather(session: Session, config: Config, period: Period, roster: Roster, userids: Sequence[str]) -> Gathered:
    """These members' engine input for `period`: what the close computes from."""
    texts = sub_periods(period)
    schemes = {u: roster.scheme(u) for u in userids}
    entries, targets = latest_entries(session, userids, texts)
    # Values the bot measures itself (WeCom statistics, OKR, 360).
    collected = collect_values(session, schemes, period)
    collected.update(_self_review_values(session, userids, schemes, period))
    values: dict[str, dict[tuple[str, str], Decimal | Waiver]] = defaultdict(dict)
    member_targets: dict[str, dict[tuple[str, str], Decimal]] = defaultdict(dict)
    comments: dict[str, list[dict[str, str]]] = defaultdict(list)
    # Measured values first; a value typed in or imported for the same key wins (it is a deliberate correction).
    for (userid, key, sub), value in collected.items():
        if userid in schemes:
            values[userid][(key, sub)] = value
    for (userid, key, sub), entry in entries.items():
        values[userid][(key, sub)] = entry.value
        if entry.source == "score" and entry.reason:
            comments[userid].append({"key": key, "period": sub, "by": entry.by, "reason": entry.reason,
                                     "rating": "" if entry.value is WAIVED else str(entry.value)})
    for (userid, key, sub), target in targets.items():
        member_targets[userid][(key, sub)] = target
    months = appraised_months(session, config, period, userids)
    members = {u: MemberData(u, roster.team(u), roster.departments.get(u), dict(values.get(u, {})),
                             dict(member_targets.get(u, {})), months.get(u)) for u in userids}
    return Gathered(period, members, schemes, {u: roster.scheme_names[u] for u in userids}, dict(comments))


def appraised_months(session: Session, config: Config, period: Period, userids: Sequence[str]
                     ) -> dict[str, frozenset[str]]:
    """The months each member was appraised in, for members appraised in fewer than all of the period's: from the
    company's start month (config) or the member's first month (the first with a value entered or a result
    closed), whichever is later, to the period's end; less any month the member was on leave for every workday
    of (a month wholly on leave leaves nothing to score: not appraised). Members appraised throughout are left
    out."""
    months = [str(month) for month in period.months()]
    start = config.results.start_month
    first: dict[str, str] = {}
    if period.kind is not PeriodKind.MONTH:
        for chunk in chunks(list(userids)):
            for model in (PeriodResult, DataEntry):
                for userid, text in session.execute(
                        select(model.userid, func.min(model.period)).where(
                            model.userid.in_(list(chunk)), model.period.like("____-__"),
                            model.period.not_like("%Q%")).group_by(model.userid)):
                    if text and (userid not in first or text < first[userid]):
                        first[userid] = text
    away = _months_on_leave(session, period, userids)
    found: dict[str, frozenset[str]] = {}
    for userid in userids:
        since = max(start, first.get(userid, "")) if period.kind is not PeriodKind.MONTH else ""
        kept = [month for month in months if month >= since and month not in away.get(userid, ())]
        if len(kept) < len(months):
            found[userid] = frozenset(kept)
    return found


def _months_on_leave(session: Session, period: Period, userids: Sequence[str]) -> dict[str, set[str]]:
    """Per member, the months of `period` whose every workday lies inside one of their (uncancelled) leaves."""
    months = period.months()
    first_day = month_days(months[0].year, months[0].index)[0]
    last_day = month_days(months[-1].year, months[-1].index)[-1]
    leaves: dict[str, list[tuple[Any, Any]]] = defaultdict(list)
    for chunk in chunks(list(userids)):
        for userid, start, end in session.execute(select(Leave.userid, Leave.start_date, Leave.end_date).where(
                Leave.userid.in_(list(chunk)), Leave.cancelled_at.is_(None), Leave.start_date <= last_day,
                Leave.end_date >= first_day)):
            leaves[userid].append((start, end))
    found: dict[str, set[str]] = {}
    for userid, spans in leaves.items():
        for month in months:
            workdays = workdays_of_month(month.year, month.index)
            if workdays and all(any(start <= day <= end for start, end in spans) for day in workdays):
                found.setdefault(userid, set()).add(str(month))
    return found


# -- computing ---------------------------------------------------------------------------------------------------
@dataclass
class Computed:
    """Results of one period for some members, calibrated and ranked across schemes (teams may mix schemes)."""

    period: Period
    results: dict[str, MemberResult]
    schemes: dict[str, Scheme]
    comments: dict[str, list[dict[str, str]]]
    problems: list[Problem]
    members: dict[str, MemberData]
    ignored_calibrations: list[str] = field(default_factory=list)


def latest_calibrations(session: Session, period: str, userids: Sequence[str]) -> dict[str, ResultCalibration]:
    found: dict[str, ResultCalibration] = {}
    for chunk in chunks(list(userids)):
        for row in session.scalars(select(ResultCalibration).where(ResultCalibration.period == period,
                                                                   ResultCalibration.userid.in_(list(chunk)))
                                   .order_by(ResultCalibration.id)):
            found[row.userid] = row
    return found


def compute(source: Session | sessionmaker[Session], config: Config, period: Period, *,
            roster: Roster | None = None, userids: Sequence[str] | None = None, calibrate: bool = True,
            progress: Progress | None = None) -> Computed:
    """The engine over stored data. Ranks are right for every team whose members are all among `userids`.

    Given a session factory (a job), the data is read a few hundred members per transaction and the engine runs
    outside any transaction, so a year's close never holds the database for long."""
    if roster is None:
        with reading(source) as session:
            roster = Roster.load(session, config)
    wanted = [u for u in (userids if userids is not None else roster.userids) if u in roster.org.members]
    members: dict[str, MemberData] = {}
    schemes: dict[str, Scheme] = {}
    names: dict[str, str] = {}
    comments: dict[str, list[dict[str, str]]] = {}
    done = 0
    for chunk in chunks(wanted):
        with reading(source) as session:
            gathered = gather(session, config, period, roster, chunk)
        members.update(gathered.members)
        schemes.update(gathered.schemes)
        names.update(gathered.scheme_names)
        comments.update(gathered.comments)
        done += len(chunk)
        if progress:
            progress("gather", done, len(wanted))
    with reading(source) as session:
        calibrations = latest_calibrations(session, str(period), wanted) if calibrate else {}
    results: list[MemberResult] = []
    problems: list[Problem] = []
    ignored: list[str] = []
    by_scheme: dict[str, list[str]] = defaultdict(list)
    for userid in wanted:
        by_scheme[names[userid]].append(userid)
    for _, group in sorted(by_scheme.items()):
        scheme = schemes[group[0]]
        computed = compute_results(scheme, period, [members[u] for u in group])
        problems.extend(computed.problems)
        wanted_calibrations = [Calibration(row.userid, Decimal(row.adjusted_total), row.reason, row.author)
                               for u in group if (row := calibrations.get(u)) is not None]
        usable = []
        for calibration in wanted_calibrations:
            # A calibration made on data that has since changed may no longer apply (e.g. the result became
            # incomplete); it is left out and reported rather than stopping the whole close.
            if check_calibrations(scheme, computed, [calibration]):
                ignored.append(calibration.member)
            else:
                usable.append(calibration)
        if usable:
            computed = apply_calibrations(scheme, computed, usable)
        results.extend(computed.results)
    ranked = rank_results(results)
    return Computed(period, {r.member: r for r in ranked}, schemes, comments, problems, members, ignored)
