"""Results: the engine's input assembled from storage, the month close (drafts, data-quality check), publication
(frozen results, every push, IDPs, promotion list), quarter and year roll-ups, and what /result and /team read.

Everything a result is computed from goes through `gather_member_data`, so a total pushed to a member is what
`kpibot score preview` computes from the same values written to a CSV.
"""
from __future__ import annotations

import logging
import sys
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from bot import pausepoints
from bot.appraisal import data_quality
from bot.wecom import outbox, plain_text
from bot.appraisal.assignment import cached_scheme, department_parents, scheme_name_for
from bot.config import Config
from bot.storage.db import transaction
from bot.storage.models import (AuditEntry, DataEntry, Department, Idp, IdpItem, Leave, PeriodResult, ResultCalibration,
                        ResultPeriod, SelfReview)
from bot.appraisal.permissions import Org
from bot.templates import render
from bot.appraisal.workcalendar import at_local, month_days, nth_workday_of_month, workdays_of_month
from scoring import (
    WAIVED,
    Calibration,
    Cycle,
    Deduction,
    Dimension,
    DimensionSubtotals,
    IndicatorResult,
    IndicatorStatus,
    MemberData,
    MemberResult,
    Period,
    PeriodError,
    PeriodKind,
    PeriodResults,
    Problem,
    RatingRule,
    Scheme,
    behavior_shortfalls,
    check_calibrations,
    apply_calibrations,
    compute_results,
    grade_distribution,
    idp_triggers,
    leniency_indexes,
    promotion_list,
)
from scoring.decimals import round2
from scoring.results import Waiver, rank_results

if TYPE_CHECKING:
    from bot.jobs.context import JobContext

log = logging.getLogger(__name__)

CHUNK = 200  # members per write transaction: short enough for the callback to get the SQLite writer between
READ_CHUNK = 500  # userids per read (and per IN (...) list)
SELF_REVIEW_SOURCES = frozenset({"self_review", "self"})
IDP_ITEM_KINDS = ("training", "mentorship", "review")
# Rows of a team table shown in one chat reply; the full list is `kpibot results export`.
ROWS_SHOWN = 100
# Members named in an admin's close or publication message; the rest are counted and one command away.
ADMIN_NAMES_SHOWN = 5
# A performance indicator under this score is named in the member's suggestions (at most the two weakest).
IMPROVE_BELOW = Decimal(80)
Progress = Callable[[str, int, int], None]


class ResultsError(Exception):
    """A close or publication that cannot go ahead; the message is the sentence to show."""

    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(render("results/error.txt.j2", code=code, p=params))
        self.code = code
        self.params = params


# -- periods --------------------------------------------------------------------------------------------------
def sub_periods(period: Period) -> list[str]:
    """Every period text whose values feed `period`: its months, its quarters, itself."""
    texts = [str(month) for month in period.months()]
    if period.kind is not PeriodKind.MONTH:
        texts += [str(quarter) for quarter in period.quarters()]
    if period.kind is PeriodKind.YEAR:
        texts.append(str(period))
    return texts


def periods_closing_with(month: Period) -> list[Period]:
    """A month, and the quarter and year it ends: they roll up with their last month."""
    closing = [month]
    if month.index % 3 == 0:
        closing.append(Period.quarter(month.year, month.index // 3))
    if month.index == 12:
        closing.append(Period.whole_year(month.year))
    return closing


def last_month_of(period: Period) -> Period:
    return period.months()[-1]


def period_label(period: Period | str) -> str:
    period = Period.parse(period) if isinstance(period, str) else period
    return render("results/_period.txt.j2", kind=period.kind.value, year=period.year, index=period.index)


def _in_following_month(config: Config, period: Period, workday: int, clock_time: time) -> datetime | None:
    last = last_month_of(period)
    year, month = (last.year + 1, 1) if last.index == 12 else (last.year, last.index + 1)
    day = nth_workday_of_month(year, month, workday)
    return at_local(day, clock_time, config.schedule.zone) if day else None


def close_moment(config: Config, period: Period) -> datetime | None:
    """When a period (closed with its last month) closes: the configured workday of the month after it."""
    return _in_following_month(config, period, config.results.close_on_workday, config.results.close_at)


def publish_moment(config: Config, period: Period) -> datetime | None:
    """When a period's results are published, ending the calibration window."""
    return _in_following_month(config, period, config.results.publish_on_workday, config.results.publish_at)


def close_period_of(at: datetime, config: Config) -> str | None:
    """The month closed at `at` (local): the previous month, on the configured workday of this one."""
    day = at.date()
    if day == nth_workday_of_month(day.year, day.month, config.results.close_on_workday):
        return str(Period.month(day.year, day.month).previous())
    return None


def publish_period_of(at: datetime, config: Config) -> str | None:
    day = at.date()
    if day == nth_workday_of_month(day.year, day.month, config.results.publish_on_workday):
        return str(Period.month(day.year, day.month).previous())
    return None


def _month_to_close(text: str, config: Config, now: datetime) -> Period:
    try:
        period = Period.parse(text)
    except PeriodError:
        raise ResultsError("period.invalid", period=text) from None
    if period.kind is not PeriodKind.MONTH:
        raise ResultsError("period.not_month", period=str(period))
    today = now.astimezone(config.schedule.zone).date()
    if month_days(period.year, period.index)[-1] >= today:
        raise ResultsError("period.not_over", period=str(period))
    return period


# -- who is appraised, under which scheme, in which team and department --------------------------------------------
@dataclass
class Roster:
    """The appraised members (every active member) with their scheme, team (their manager) and department
    (the first-level department under the company their main department belongs to)."""

    org: Org
    scheme_names: dict[str, str]
    departments: dict[str, str | None]
    department_names: dict[str, str]
    main_departments: dict[str, str | None] = field(default_factory=dict)  # the member's own (team's) department

    @classmethod
    def load(cls, session: Session, config: Config) -> Roster:
        org = Org.load(session, config)
        parents = department_parents(session)
        names = {str(d.id): d.name for d in session.scalars(select(Department))}
        scheme_names: dict[str, str] = {}
        departments: dict[str, str | None] = {}
        mains: dict[str, str | None] = {}
        for userid, member in org.members.items():
            department_ids = list(member.department_ids or ())
            scheme_names[userid] = scheme_name_for(userid, department_ids, parents, config.appraisal)
            main = member.main_department or (department_ids[0] if department_ids else None)
            departments[userid] = str(_first_level(main, parents)) if main is not None else None
            mains[userid] = str(main) if main is not None else None
        return cls(org, scheme_names, departments, names, mains)

    @property
    def userids(self) -> list[str]:
        return list(self.org.members)

    def scheme(self, userid: str) -> Scheme:
        return cached_scheme(self.scheme_names[userid])

    def team(self, userid: str) -> str | None:
        return self.org.manager_of(userid)

    def department_name(self, department: str | None) -> str:
        return self.department_names.get(department or "", department or "")


def _first_level(department: int, parents: Mapping[int, int | None]) -> int:
    chain = [department]
    while parents.get(chain[-1]) not in (None, 0) and chain[-1] in parents and len(chain) < 64:
        chain.append(parents[chain[-1]])  # type: ignore[arg-type]
    return chain[-2] if len(chain) >= 2 else chain[-1]


# -- engine input from storage --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    """The entry that counts for one (member, key, period): its value and who gave it, with what reason."""

    value: Decimal | Waiver
    reason: str
    source: str
    by: str


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def latest_entries(session: Session, userids: Sequence[str], periods: Sequence[str]
                   ) -> tuple[dict[tuple[str, str, str], Entry], dict[tuple[str, str, str], Decimal]]:
    """The latest value (or waiver) and the latest target per (userid, key, period): later entries win."""
    values: dict[tuple[str, str, str], Entry] = {}
    targets: dict[tuple[str, str, str], Decimal] = {}
    for chunk in _chunks(list(userids), READ_CHUNK):
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


def _collected(session: Session, schemes: Mapping[str, Scheme], period: Period) -> dict[tuple[str, str, str], Decimal]:
    """Values the bot measures itself (WeCom statistics, OKR, 360), when that module is installed."""
    try:
        from bot.appraisal.indicator_sources import collect_values
    except ImportError:  # the data sources are optional: typed-in and imported values still count
        return {}
    return collect_values(session, schemes, period)


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


def _gather(session: Session, config: Config, period: Period, roster: Roster, userids: Sequence[str]) -> Gathered:
    texts = sub_periods(period)
    schemes = {u: roster.scheme(u) for u in userids}
    entries, targets = latest_entries(session, userids, texts)
    collected = _collected(session, schemes, period)
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
        for chunk in _chunks(list(userids), READ_CHUNK):
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
    for chunk in _chunks(list(userids), READ_CHUNK):
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


def months_label(months: Sequence[str]) -> str:
    """"7-12" for the months a partial quarter or year covers, "10、12" when they are not contiguous ("" for all)."""
    if not months:
        return ""
    numbers = [int(month[5:]) for month in months]
    if numbers == list(range(numbers[0], numbers[-1] + 1)):
        return f"{numbers[0]}-{numbers[-1]}" if len(numbers) > 1 else str(numbers[0])
    return "、".join(str(number) for number in numbers)


def gather_member_data(session: Session, config: Config, period: Period | str,
                       userids: Iterable[str] | None = None) -> dict[str, tuple[Scheme, list[MemberData]]]:
    """Every appraised member's engine input for `period`, grouped by scheme name: what the close computes from."""
    period = Period.parse(period) if isinstance(period, str) else period
    roster = Roster.load(session, config)
    wanted = [u for u in (userids if userids is not None else roster.userids) if u in roster.org.members]
    gathered = _gather(session, config, period, roster, wanted)
    grouped: dict[str, tuple[Scheme, list[MemberData]]] = {}
    for userid in wanted:
        name = gathered.scheme_names[userid]
        grouped.setdefault(name, (gathered.schemes[userid], []))[1].append(gathered.members[userid])
    return grouped


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
    for chunk in _chunks(list(userids), READ_CHUNK):
        for row in session.scalars(select(ResultCalibration).where(ResultCalibration.period == period,
                                                                   ResultCalibration.userid.in_(list(chunk)))
                                   .order_by(ResultCalibration.id)):
            found[row.userid] = row
    return found


@contextmanager
def _reading(source: Session | sessionmaker[Session]) -> Iterator[Session]:
    """The handler's own session, or (in a job) a short transaction of its own per read."""
    if isinstance(source, Session):
        yield source
    else:
        with transaction(source) as session:
            yield session


def compute(source: Session | sessionmaker[Session], config: Config, period: Period, *,
            roster: Roster | None = None, userids: Sequence[str] | None = None, calibrate: bool = True,
            progress: Progress | None = None) -> Computed:
    """The engine over stored data. Ranks are right for every team whose members are all among `userids`.

    Given a session factory (a job), the data is read a few hundred members per transaction and the engine runs
    outside any transaction, so a year's close never holds the database for long."""
    if roster is None:
        with _reading(source) as session:
            roster = Roster.load(session, config)
    wanted = [u for u in (userids if userids is not None else roster.userids) if u in roster.org.members]
    members: dict[str, MemberData] = {}
    schemes: dict[str, Scheme] = {}
    names: dict[str, str] = {}
    comments: dict[str, list[dict[str, str]]] = {}
    done = 0
    for chunk in _chunks(wanted, READ_CHUNK):
        with _reading(source) as session:
            gathered = _gather(session, config, period, roster, chunk)
        members.update(gathered.members)
        schemes.update(gathered.schemes)
        names.update(gathered.scheme_names)
        comments.update(gathered.comments)
        done += len(chunk)
        if progress:
            progress("gather", done, len(wanted))
    with _reading(source) as session:
        calibrations = latest_calibrations(session, str(period), wanted) if calibrate else {}
    results: list[MemberResult] = []
    problems: list[Problem] = []
    ignored: list[str] = []
    by_scheme: dict[str, list[str]] = defaultdict(list)
    for userid in wanted:
        by_scheme[names[userid]].append(userid)
    for name, group in sorted(by_scheme.items()):
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


# -- frozen results ------------------------------------------------------------------------------------------------
def _d(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _dd(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)


def result_to_json(result: MemberResult) -> dict[str, Any]:
    """A MemberResult as JSON with exact decimal strings; result_from_json gives the same result back."""
    return {
        "member": result.member, "team": result.team, "department": result.department,
        "period": str(result.period), "total": str(result.total), "original_total": str(result.original_total),
        "grade": result.grade, "bonus_class": result.bonus_class, "bonus": _d(result.bonus),
        "complete": result.complete, "missing": list(result.missing),
        "dimensions": {"performance": str(result.dimensions.performance),
                       "behavior": str(result.dimensions.behavior)},
        "rank_in_team": result.rank_in_team, "rank_in_department": result.rank_in_department,
        "appraised": result.appraised, "provisional": result.provisional, "months": list(result.months),
        "calibration": None if result.calibration is None else {
            "adjusted_total": str(result.calibration.adjusted_total), "reason": result.calibration.reason,
            "author": result.calibration.author},
        "indicators": [{
            "key": item.key, "dimension": item.dimension.value, "cycle": item.cycle.value,
            "status": item.status.value, "value": _d(item.value), "target": _d(item.target),
            "score": _d(item.score), "weight": str(item.weight), "scheme_weight": str(item.scheme_weight),
            "missing": list(item.missing), "periods_scored": item.periods_scored,
            "periods_waived": item.periods_waived,
            "deductions": [{"metric": d.metric, "op": d.op, "threshold": str(d.threshold), "actual": str(d.actual),
                            "points": str(d.points), "period": d.period} for d in item.deductions],
        } for item in result.indicators],
    }


def result_from_json(data: Mapping[str, Any]) -> MemberResult:
    calibration = data.get("calibration")
    return MemberResult(
        member=data["member"], team=data.get("team"), department=data.get("department"),
        period=Period.parse(data["period"]), total=Decimal(data["total"]),
        original_total=Decimal(data["original_total"]), grade=data["grade"], bonus_class=data.get("bonus_class"),
        bonus=_dd(data.get("bonus")), complete=bool(data["complete"]), missing=tuple(data.get("missing", ())),
        dimensions=DimensionSubtotals(Decimal(data["dimensions"]["performance"]),
                                      Decimal(data["dimensions"]["behavior"])),
        indicators=tuple(IndicatorResult(
            key=item["key"], dimension=Dimension(item["dimension"]), cycle=Cycle(item["cycle"]),
            status=IndicatorStatus(item["status"]), value=_dd(item.get("value")), target=_dd(item.get("target")),
            score=_dd(item.get("score")), weight=Decimal(item["weight"]), scheme_weight=Decimal(item["scheme_weight"]),
            deductions=tuple(Deduction(d["metric"], d["op"], Decimal(d["threshold"]), Decimal(d["actual"]),
                                       Decimal(d["points"]), d["period"]) for d in item.get("deductions", ())),
            missing=tuple(item.get("missing", ())), periods_scored=int(item.get("periods_scored", 0)),
            periods_waived=int(item.get("periods_waived", 0)),
        ) for item in data.get("indicators", ())),
        rank_in_team=data.get("rank_in_team"), rank_in_department=data.get("rank_in_department"),
        appraised=bool(data.get("appraised", True)), months=tuple(data.get("months", ())),
        calibration=None if calibration is None else Calibration(
            data["member"], Decimal(calibration["adjusted_total"]), calibration["reason"], calibration["author"]),
    )


def _frozen(result: MemberResult, scheme: Scheme, roster: Roster, comments: Sequence[Mapping[str, str]],
            team_size: int, suggestions: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """What a stored result keeps besides the engine's numbers: names as they were, comments, team size."""
    return {
        "result": result_to_json(result),
        "scheme": {"key": scheme.key, "name": scheme.name},
        "name": roster.org.name(result.member),
        "team_name": roster.org.name(result.team) if result.team else "",
        "team_department_name": roster.department_name(roster.main_departments.get(result.member)),
        "department_name": roster.department_name(result.department),
        "not_due": _not_due(result, scheme),
        "scheme_behavior_share": str(_behavior_share(scheme)),
        "team_size": team_size,
        "names": {**{m.key: m.name for m in scheme.metrics}, **{i.key: i.name for i in scheme.indicators}},
        "units": {**{m.key: m.unit for m in scheme.metrics}, **{i.key: i.unit for i in scheme.indicators}},
        "ratings": [i.key for i in scheme.indicators if isinstance(i.rule, RatingRule)],
        "comments": list(comments),
        "suggestions": list(suggestions),
    }


def _not_due(result: MemberResult, scheme: Scheme) -> list[dict[str, str]]:
    """The scheme's indicators this period does not score (an annual one in a month): their weight went to the
    others, so the dimension shares differ from the scheme's."""
    scored = {item.key for item in result.indicators}
    return [{"key": i.key, "name": i.name, "cycle": i.cycle.value, "dimension": i.dimension.value}
            for i in scheme.indicators if i.key not in scored]


def _behavior_share(scheme: Scheme) -> Decimal:
    total = sum((i.weight for i in scheme.indicators), Decimal(0))
    behavior = sum((i.weight for i in scheme.indicators if i.dimension != Dimension.PERFORMANCE), Decimal(0))
    return round2(behavior * 100 / total) if total > 0 else Decimal(0)


def _team_sizes(results: Iterable[MemberResult]) -> dict[str | None, int]:
    sizes: dict[str | None, int] = defaultdict(int)
    for result in results:
        if result.counts and result.team is not None:
            sizes[result.team] += 1
    return sizes


# -- views for templates -------------------------------------------------------------------------------------------
def number_text(value: Decimal | str | None) -> str:
    """A value as people write it: 4.6, 22, 32000 (no exponent, no trailing zeros)."""
    if value is None:
        return ""
    value = Decimal(value) if isinstance(value, str) else value
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def result_view(frozen: Mapping[str, Any], *, status: str = "published") -> dict[str, Any]:
    """The variables results/*.j2 templates read about one member's result, from its frozen form."""
    result = frozen["result"]
    names, units = frozen.get("names", {}), frozen.get("units", {})
    comments = [{**c, "name": names.get(c["key"], c["key"]), "period_label": period_label(c["period"])}
                for c in frozen.get("comments", ())]
    indicators = []
    for item in result["indicators"]:
        unit = units.get(item["key"], "")
        indicators.append({
            "key": item["key"], "name": names.get(item["key"], item["key"]), "status": item["status"],
            "rating": item["key"] in frozen.get("ratings", ()),
            "dimension": item["dimension"], "score": item["score"], "weight": item["weight"],
            "value": number_text(item["value"]), "target": number_text(item["target"]), "unit": unit,
            "missing": item["missing"],
            "deductions": [{"name": names.get(d["metric"], d["metric"]), "op": d["op"],
                            "threshold": number_text(d["threshold"]), "actual": number_text(d["actual"]),
                            "points": number_text(d["points"]), "unit": units.get(d["metric"], ""),
                            "period": d["period"]} for d in item["deductions"]],
        })
    calibration = result.get("calibration")
    period = Period.parse(result["period"])
    return {
        "userid": result["member"], "name": frozen.get("name", result["member"]),
        "period": result["period"], "period_label": period_label(period), "kind": period.kind.value,
        "status": status, "scheme_name": frozen.get("scheme", {}).get("name", ""),
        "total": result["total"], "original_total": result["original_total"], "grade": result["grade"],
        "calibrated": calibration is not None,
        "calibration_reason": calibration["reason"] if calibration else "",
        "bonus_class": result["bonus_class"], "bonus": result["bonus"],
        "complete": result["complete"], "appraised": result.get("appraised", True),
        "provisional": not result["complete"], "months": list(result.get("months", ())),
        "months_label": months_label(result.get("months", ())),
        "missing": [_missing_label(label, names) for label in result["missing"]],
        "performance": result["dimensions"]["performance"], "behavior": result["dimensions"]["behavior"],
        "rank_in_team": result["rank_in_team"], "team_size": frozen.get("team_size", 0),
        "rank_in_department": result["rank_in_department"], "team_name": frozen.get("team_name", ""),
        "indicators": indicators, "comments": comments, "suggestions": list(frozen.get("suggestions", ())),
        "not_due": list(frozen.get("not_due", ())), "scheme_behavior_share": frozen.get("scheme_behavior_share", ""),
    }


def _missing_label(label: str, names: Mapping[str, str]) -> str:
    key, _, sub = label.partition("@")
    return f"{names.get(key, key)}（{sub}）" if sub else names.get(key, key)


# -- data-quality check --------------------------------------------------------------------------------------------
Jump = data_quality.Jump


def suspicious_jumps(session: Session, computed: Computed, threshold_percent: int) -> list[Jump]:
    """Values that moved more than the threshold since the month before (typos such as 4.6 → 46)."""
    if computed.period.kind is not PeriodKind.MONTH:
        return []
    month, before = str(computed.period), str(computed.period.previous())
    previous, _ = latest_entries(session, list(computed.members), [before])
    limit = Decimal(threshold_percent)
    jumps: list[Jump] = []
    for userid, data in computed.members.items():
        scheme = computed.schemes[userid]
        names = {**{m.key: m.name for m in scheme.metrics}, **{i.key: i.name for i in scheme.indicators}}
        for (key, sub), value in sorted(data.values.items()):
            earlier = previous.get((userid, key, before))
            if sub != month or value is WAIVED or earlier is None or earlier.value is WAIVED or earlier.value == 0:
                continue
            change = (value - earlier.value) * 100 / abs(earlier.value)  # type: ignore[operator]
            if abs(change) > limit and key in names:
                jumps.append(Jump(userid, key, names[key], number_text(earlier.value), number_text(value),  # type: ignore[arg-type]
                                  number_text(round(change, 0))))
    return jumps


def _wecom_flags(session: Session, config: Config, computed: Computed, now: datetime) -> list[Any]:
    try:
        from bot.appraisal.indicator_sources import data_quality_flags
    except ImportError:
        return []
    today = now.astimezone(config.schedule.zone).date()
    return data_quality_flags(session, computed.schemes, computed.period, today=today)


def _no_contact_permission(flags: Sequence[Any], roster: Roster) -> list[str]:
    """Members the statistics sync skipped for lack of customer-contact permission (84074), by name."""
    return [roster.org.name(flag.userid) for flag in flags if getattr(flag, "kind", None) == "no_contact_permission"]
def quality_findings(session: Session, config: Config, computed: Computed, now: datetime, *,
                     jumps: Sequence[Jump] | None = None, flags: Sequence[Any] | None = None
                     ) -> list[data_quality.Finding]:
    """The data-quality gate over a computed period (bot.appraisal.data_quality): what the close reports and what holds
    results back at publication."""
    if jumps is None:
        jumps = suspicious_jumps(session, computed, config.results.jump_percent)
    if flags is None:
        flags = _wecom_flags(session, config, computed, now)
    return data_quality.check(session, computed.period, computed.members, computed.schemes,
                              today=now.astimezone(config.schedule.zone).date(),
                              jump_percent=config.results.jump_percent, jumps=jumps, flags=flags)


def quality_summary(findings: Sequence[data_quality.Finding], accepted: Sequence[Any], roster: Roster,
                    config: Config) -> dict[str, Any]:
    names = {u: roster.org.name(u) for f in findings for u in f.userids}
    return data_quality.summary(findings, accepted, names, config.bot.locale)


# -- writing results ---------------------------------------------------------------------------------------------
def _upsert(session: Session, existing: PeriodResult | None, result: MemberResult, scheme: Scheme,
            frozen: dict[str, Any], status: str, now: datetime) -> PeriodResult:
    if existing is None:
        existing = PeriodResult(userid=result.member, period=str(result.period))
        session.add(existing)
    existing.scheme_key = scheme.key
    existing.team, existing.department = result.team, result.department
    existing.status, existing.total, existing.grade = status, str(result.total), result.grade
    existing.complete, existing.data, existing.computed_at = result.complete, frozen, now
    existing.published_at = now if status == "published" else None
    return existing


def _stored(session: Session, period: str, userids: Sequence[str]) -> dict[str, PeriodResult]:
    found: dict[str, PeriodResult] = {}
    for chunk in _chunks(list(userids), READ_CHUNK):
        for row in session.scalars(select(PeriodResult).where(PeriodResult.period == period,
                                                              PeriodResult.userid.in_(list(chunk)))):
            found[row.userid] = row
    return found


def _set_state(session: Session, period: str, state: str, now: datetime) -> None:
    row = session.get(ResultPeriod, period)
    if row is None:
        row = ResultPeriod(period=period, state=state, closed_at=None, published_at=None)
        session.add(row)
    if state == "closed" and row.state != "published":
        row.state, row.closed_at = "closed", now
    elif state == "published" and row.state != "published":  # a forced re-run keeps the first publication
        row.state, row.published_at = "published", now


def period_state(session: Session, period: str) -> ResultPeriod | None:
    return session.get(ResultPeriod, period)


def _send(session: Session, config: Config, key: str, userid: str, template: str, now: datetime,
          **variables: Any) -> None:
    text = render(template, config.bot.locale, **variables)
    outbox.enqueue(session, key, plain_text.message(config, userid, text, markdown=".md." in template), now)


def _admins(roster: Roster) -> list[str]:
    return sorted(roster.org.admins)


class _Writer:
    """Runs chunks of writes in their own short transactions: between them the database's writer lock is free
    for the callback (on SQLite one writer at a time), however long the whole job takes."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def chunked(self, items: Sequence[Any], work: Callable[[Session, Sequence[Any]], None],
                progress: Progress | None = None, stage: str = "") -> None:
        done = 0
        for chunk in _chunks(list(items), CHUNK):
            with transaction(self.sessions) as session:
                work(session, chunk)
            pausepoints.reached(f"results.{stage}")
            done += len(chunk)
            if progress:
                progress(stage, done, len(items))

    def once(self, work: Callable[[Session], Any]) -> Any:
        with transaction(self.sessions) as session:
            return work(session)


# -- the month close ---------------------------------------------------------------------------------------------
@dataclass
class CloseReport:
    periods: list[str]
    members: int
    complete: int
    incomplete: int
    jumps: int
    managers: int
    skipped: list[str]  # periods already published
    findings: int = 0  # the data-quality gate's findings
    doubtful: int = 0  # results its findings would hold back


def close_month(sessions: sessionmaker[Session], config: Config, now: datetime, month_text: str, *,
                as_of: datetime | None = None, progress: Progress | None = None) -> CloseReport:
    """Compute every member's result of the month (and the quarter and year it ends) as drafts, run the
    data-quality check and send each manager the draft team table with what is missing."""
    month = _month_to_close(month_text, config, as_of or now)
    writer = _Writer(sessions)
    report = CloseReport([], 0, 0, 0, 0, 0, [])
    for period in periods_closing_with(month):
        text = str(period)
        with transaction(sessions) as session:
            state = period_state(session, text)
            if state is not None and state.state == "published":
                report.skipped.append(text)
                continue
            roster = Roster.load(session, config)
        computed = compute(sessions, config, period, roster=roster, progress=progress)
        with transaction(sessions) as session:
            jumps = suspicious_jumps(session, computed, config.results.jump_percent)
            flags = _wecom_flags(session, config, computed, now)
            findings = quality_findings(session, config, computed, now, jumps=jumps, flags=flags)
            accepted = data_quality.acceptances(session, text)
        doubtful = data_quality.held(findings, accepted)
        report.periods.append(text)
        sizes = _team_sizes(computed.results.values())

        def save(session: Session, chunk: Sequence[str]) -> None:
            stored = _stored(session, text, chunk)
            for userid in chunk:
                row = stored.get(userid)
                if row is not None and row.status == "published":
                    continue  # frozen
                result = computed.results[userid]
                frozen = _frozen(result, computed.schemes[userid], roster, computed.comments.get(userid, ()),
                                 sizes.get(result.team, 0))
                _upsert(session, row, result, computed.schemes[userid], frozen, "draft", now)

        writer.chunked(list(computed.results), save, progress, "save")
        results = list(computed.results.values())
        report.members += len(results)
        report.complete += sum(1 for r in results if r.complete)
        report.incomplete += sum(1 for r in results if not r.complete)
        report.jumps += len(jumps)
        report.findings += len(findings)
        report.doubtful += len(doubtful)
        jumps_by_member: dict[str, list[Jump]] = defaultdict(list)
        for jump in jumps:
            jumps_by_member[jump.userid].append(jump)
        publish_at = publish_moment(config, period)
        if publish_at is not None and publish_at <= now:
            publish_at = None  # closed late by hand: the scheduled time has passed, say nothing about it
        managers = sorted({m for m in (roster.team(u) for u in computed.results) if m})

        def send_drafts(session: Session, chunk: Sequence[str]) -> None:
            for manager in chunk:
                rows = [_draft_row(computed, roster, userid, jumps_by_member.get(userid, []),
                                   held=userid in doubtful)
                        for userid in roster.org.only_visible(manager, roster.org.direct_team(manager))
                        if userid in computed.results]
                rows.sort(key=lambda row: (not row["complete"], -Decimal(row["total"]), row["userid"]))
                _send(session, config, f"close:{text}:manager:{manager}", manager, "results/close_manager.md.j2",
                      now, manager=roster.org.name(manager), period=text, period_label=period_label(period),
                      rows=rows, publish_at=_local(config, publish_at), pass_line=config.results.pass_line)

        writer.chunked(managers, send_drafts, progress, "drafts")
        report.managers += len(managers)

        def finish(session: Session) -> None:
            _set_state(session, text, "closed", now)
            incomplete = [_draft_row(computed, roster, r.member, jumps_by_member.get(r.member, []))
                          for r in results if not r.complete]
            quality = quality_summary(findings, accepted, roster, config)
            # One message per admin: counts and the worst few; the full lists are a command (or an export) away.
            for admin in _admins(roster):
                _send(session, config, f"close:{text}:admin:{admin}", admin, "results/close_admin.md.j2", now,
                      admin=roster.org.name(admin), period=text, period_label=period_label(period),
                      members=len(results), complete=len(results) - len(incomplete),
                      incomplete=incomplete[:ADMIN_NAMES_SHOWN], more=max(0, len(incomplete) - ADMIN_NAMES_SHOWN),
                      problems=_problem_views(computed.problems), quality=quality,
                      no_contact_permission=_no_contact_permission(flags, roster),
                      ignored=[roster.org.name(u) for u in computed.ignored_calibrations],
                      publish_at=_local(config, publish_at))
            session.add(AuditEntry(at=now, actor="system", action="results.close", subject=text, detail={
                "members": len(results), "complete": len(results) - len(incomplete), "jumps": len(jumps),
                "findings": len(findings), "doubtful": len(doubtful)}))

        writer.once(finish)
    return report


def _local(config: Config, moment: datetime | None) -> datetime | None:
    return moment.astimezone(config.schedule.zone) if moment is not None else None


def missing_labels(computed: Computed, userid: str) -> list[str]:
    """What a member's result still lacks, as people read it: 内容生产量（2026-11）."""
    scheme = computed.schemes[userid]
    names = {**{m.key: m.name for m in scheme.metrics}, **{i.key: i.name for i in scheme.indicators}}
    return [_missing_label(label, names) for label in computed.results[userid].missing]


def _draft_row(computed: Computed, roster: Roster, userid: str, jumps: Sequence[Jump], *, held: bool = False
               ) -> dict[str, Any]:
    result = computed.results[userid]
    return {"userid": userid, "name": roster.org.name(userid), "total": str(result.total), "grade": result.grade,
            "complete": result.complete, "calibrated": result.calibration is not None, "held": held,
            "appraised": result.appraised, "provisional": result.provisional,
            "rank": result.rank_in_team, "missing": missing_labels(computed, userid),
            "jumps": [{"name": j.name, "before": j.before, "now": j.now, "percent": j.percent} for j in jumps]}


def _problem_views(problems: Sequence[Problem]) -> list[dict[str, Any]]:
    return [{"code": p.code, "params": {k: str(v) for k, v in p.params.items()}} for p in problems
            if p.code in ("data.no_target", "data.invalid_rating", "data.unknown_key")][:10]


# -- publication -------------------------------------------------------------------------------------------------
@dataclass
class PublishReport:
    periods: list[str]
    published: int
    frozen_before: int
    held_back: int
    idps: int
    members_messaged: int
    managers_messaged: int
    doubtful: int = 0  # of held_back: complete, but held by the data-quality gate


def _suggestions(result: MemberResult, scheme: Scheme, shortfall_keys: Sequence[str], idp_opened: bool
                 ) -> list[dict[str, Any]]:
    names = {i.key: i.name for i in scheme.indicators}
    found: list[dict[str, Any]] = []
    performance = [i for i in result.indicators if i.dimension == Dimension.PERFORMANCE
                   and i.status is IndicatorStatus.SCORED and i.score is not None and i.score < IMPROVE_BELOW]
    for item in sorted(performance, key=lambda i: (i.score, i.key))[:2]:
        found.append({"kind": "improve", "name": names.get(item.key, item.key), "score": str(item.score)})
    for key in shortfall_keys:
        found.append({"kind": "project", "name": names.get(key, key), "score": str(result.indicator(key).score),
                      "threshold": number_text(scheme.results.shortfall_threshold)})
    if idp_opened:
        found.append({"kind": "idp", "name": "", "score": ""})
    return found


def _weakest_performance(result: MemberResult) -> str | None:
    scored = [i for i in result.indicators if i.dimension == Dimension.PERFORMANCE
              and i.status is IndicatorStatus.SCORED and i.score is not None]
    return min(scored, key=lambda i: (i.score, i.key)).key if scored else None


def _published_results(session: Session, period: Period) -> list[MemberResult]:
    rows = session.scalars(select(PeriodResult).where(PeriodResult.period == str(period),
                                                      PeriodResult.status == "published"))
    return [result_from_json(row.data["result"]) for row in rows]


def publish(sessions: sessionmaker[Session], config: Config, now: datetime, month_text: str, *,
            as_of: datetime | None = None, progress: Progress | None = None) -> PublishReport:
    """Freeze and push the month's results (and the quarter's and year's it ends): each member their own result,
    each manager a team summary, the admins a department overview (and, for a year, the promotion list); open
    IDPs. Every message has a per-recipient key, so running this again (forced, after a restart, from a second
    instance) sends nothing twice; results already published are never recomputed."""
    month = _month_to_close(month_text, config, as_of or now)
    writer = _Writer(sessions)
    report = PublishReport([], 0, 0, 0, 0, 0, 0)
    for period in periods_closing_with(month):
        _publish_period(sessions, config, now, period, writer, report, progress)
    return report


def _publish_period(sessions: sessionmaker[Session], config: Config, now: datetime, period: Period,
                    writer: _Writer, report: PublishReport, progress: Progress | None) -> None:
    text = str(period)
    with transaction(sessions) as session:
        roster = Roster.load(session, config)
    computed = compute(sessions, config, period, roster=roster, progress=progress)
    with transaction(sessions) as session:
        stored = _stored(session, text, list(computed.results))
        previous = (_published_results(session, period.previous())
                    if period.kind is PeriodKind.MONTH else [])
        findings = quality_findings(session, config, computed, now)
        accepted = data_quality.acceptances(session, text)
    # Results the gate doubts wait, like incomplete ones, until the data is fixed, waived or accepted.
    doubtful = data_quality.held(findings, accepted)
    report.periods.append(text)

    # The results that count: frozen ones stay as they are; complete new ones are published now.
    final: dict[str, MemberResult] = {}
    held_back: list[str] = []
    for userid, result in computed.results.items():
        row = stored.get(userid)
        if row is not None and row.status == "published":
            final[userid] = result_from_json(row.data["result"])
            report.frozen_before += 1
        elif result.complete and userid not in doubtful:
            final[userid] = result
        else:
            held_back.append(userid)
    report.held_back += len(held_back)
    report.doubtful += sum(1 for u in held_back if computed.results[u].complete)
    sizes = _team_sizes(final.values())
    combined = PeriodResults("all", period, tuple(final[u] for u in sorted(final)))

    # What the results trigger, each under the member's own scheme's rules.
    shortfalls: dict[str, list[str]] = defaultdict(list)
    idps: dict[str, Any] = {}
    promotions: list[Any] = []
    by_scheme: dict[str, list[str]] = defaultdict(list)
    for userid in final:
        by_scheme[computed.schemes[userid].key].append(userid)
    for group in by_scheme.values():
        scheme = computed.schemes[group[0]]
        members = set(group)
        for shortfall in behavior_shortfalls(scheme, combined):
            if shortfall.member in members:
                shortfalls[shortfall.member].append(shortfall.indicator)
        if period.kind is PeriodKind.MONTH and previous:
            earlier = PeriodResults("all", period.previous(), tuple(previous))
            for trigger in idp_triggers(scheme, [earlier, combined]):
                if trigger.member in members:
                    idps[trigger.member] = trigger
        if period.kind is PeriodKind.YEAR:
            promotions.extend(c for c in promotion_list(scheme, combined) if c.member in members)

    waiting = set(held_back)

    def save(session: Session, chunk: Sequence[str]) -> None:
        existing = _stored(session, text, chunk)
        for userid in chunk:
            if userid in waiting:
                draft = computed.results[userid]
                frozen = _frozen(draft, computed.schemes[userid], roster, computed.comments.get(userid, ()), 0)
                _upsert(session, existing.get(userid), draft, computed.schemes[userid], frozen, "draft", now)
                continue
            result = final[userid]
            scheme = computed.schemes[userid]
            row = existing.get(userid)
            if row is not None and row.status == "published":
                frozen = row.data
            else:
                opened = userid in idps and _open_idp(session, userid, roster, idps[userid], result, text, now)
                frozen = _frozen(result, scheme, roster, computed.comments.get(userid, ()), sizes.get(result.team, 0),
                                 _suggestions(result, scheme, shortfalls.get(userid, ()), bool(opened)))
                _upsert(session, row, result, scheme, frozen, "published", now)
                report.published += 1
                if opened:
                    report.idps += 1
                    _announce_idp(session, config, roster, userid, opened, result, scheme, now)
            # Only the member themself receives their result (permissions: a member sees only their own).
            if roster.org.can_see(userid, userid):
                _send(session, config, f"publish:{text}:member:{userid}", userid, "results/member_result.md.j2",
                      now, r=result_view(frozen), pass_line=config.results.pass_line)
                report.members_messaged += 1

    writer.chunked(list(computed.results), save, progress, "publish")

    managers = sorted({m for m in (roster.team(u) for u in computed.results) if m})
    leniency = {item.team: item for item in leniency_indexes(combined)}

    def summaries(session: Session, chunk: Sequence[str]) -> None:
        for manager in chunk:
            team = roster.org.only_visible(manager, roster.org.direct_team(manager))
            rows = [_summary_row(final[u], roster, shortfalls.get(u, ()), u in idps, computed.schemes[u])
                    for u in team if u in final]
            rows.sort(key=lambda row: (row["rank"] or 10 ** 6, row["userid"]))
            missing = [roster.org.name(u) for u in team if u in waiting and not computed.results[u].complete]
            doubted = [roster.org.name(u) for u in team if u in waiting and computed.results[u].complete]
            grades = _grade_counts(final[u] for u in team if u in final)
            _send(session, config, f"publish:{text}:manager:{manager}", manager, "results/team_summary.md.j2", now,
                  manager=roster.org.name(manager), period=text, period_label=period_label(period), rows=rows,
                  grades=grades, leniency=_leniency_view(leniency.get(manager)), held_back=missing,
                  doubtful=doubted,
                  below=[row for row in rows if row["appraised"] and Decimal(row["total"]) < config.results.pass_line],
                  pass_line=config.results.pass_line)
            report.managers_messaged += 1

    writer.chunked(managers, summaries, progress, "summaries")

    def overview(session: Session) -> None:
        _set_state(session, text, "published", now)
        data_quality.mark_released(session, accepted, now)
        departments = _department_views(roster, final, computed, leniency, held_back, idps, shortfalls)
        quality = quality_summary(findings, accepted, roster, config)
        held_doubtful = sum(1 for u in held_back if computed.results[u].complete)
        for admin in _admins(roster):
            _send(session, config, f"publish:{text}:admin:{admin}", admin, "results/admin_overview.md.j2", now,
                  admin=roster.org.name(admin), period=text, period_label=period_label(period),
                  departments=departments, published=len(final), held_back=len(held_back) - held_doubtful,
                  doubtful=held_doubtful, quality=quality)
            if period.kind is PeriodKind.YEAR:
                candidates = [{"name": roster.org.name(c.member), "department": roster.department_name(c.department),
                               "total": str(c.total), "rank": c.rank,
                               "team": roster.org.name(roster.team(c.member))} for c in promotions]
                _send(session, config, f"publish:{text}:promotion:{admin}", admin, "results/promotion.md.j2", now,
                      admin=roster.org.name(admin), period=text, period_label=period_label(period),
                      candidates=candidates)
        session.add(AuditEntry(at=now, actor="system", action="results.publish", subject=text, detail={
            "published": len(final), "held_back": len(held_back), "idps": len(idps),
            "findings": len(findings), "doubtful": held_doubtful}))

    writer.once(overview)


GRADE_ORDER = "SABCDE"


def _grade_counts(results: Iterable[MemberResult]) -> list[tuple[str, int]]:
    """Counts per grade, best grade first (S, A, B, C, D; any other grade names after them)."""
    counts: dict[str, int] = defaultdict(int)
    for result in results:
        if result.appraised:  # a member not appraised this period has no grade to count
            counts[result.grade] += 1
    return sorted(counts.items(), key=lambda item: (GRADE_ORDER.find(item[0]) % (len(GRADE_ORDER) + 1), item[0]))


def _leniency_view(item: Any) -> dict[str, str] | None:
    if item is None:
        return None
    return {"index": str(item.index), "team_mean": str(item.team_mean), "department_mean": str(item.department_mean)}


def _summary_row(result: MemberResult, roster: Roster, shortfall_keys: Sequence[str], idp: bool,
                 scheme: Scheme) -> dict[str, Any]:
    names = {i.key: i.name for i in scheme.indicators}
    return {"userid": result.member, "name": roster.org.name(result.member), "total": str(result.total),
            "appraised": result.appraised,
            "original_total": str(result.original_total), "grade": result.grade, "rank": result.rank_in_team,
            "calibrated": result.calibration is not None, "bonus": str(result.bonus) if result.bonus is not None else "",
            "shortfalls": [names.get(k, k) for k in shortfall_keys], "idp": idp,
            "threshold": number_text(scheme.results.shortfall_threshold)}


def _department_views(roster: Roster, final: Mapping[str, MemberResult], computed: Computed,
                      leniency: Mapping[str, Any], held_back: Sequence[str], idps: Mapping[str, Any],
                      shortfalls: Mapping[str, Sequence[str]]) -> list[dict[str, Any]]:
    by_department: dict[str | None, list[MemberResult]] = defaultdict(list)
    for result in final.values():
        if result.appraised:  # not appraised: no total to average, no grade to count
            by_department[result.department].append(result)
    views = []
    for department in sorted(by_department, key=lambda d: d or ""):
        results = by_department[department]
        totals = [r.total for r in results]
        deviations: list[dict[str, str]] = []
        schemes = {computed.schemes[r.member].key: computed.schemes[r.member] for r in results}
        for scheme in schemes.values():
            group = PeriodResults("all", results[0].period, tuple(r for r in results
                                                                   if computed.schemes[r.member].key == scheme.key))
            # Each scheme has its own guidance, so a deviation is said per scheme, of its members only.
            for distribution in grade_distribution(scheme, group):
                deviations.extend({"grade": s.grade, "percent": str(s.percent), "status": s.status,
                                   "limit": str(s.max_percent if s.status == "above" else s.min_percent),
                                   "scheme": scheme.name, "members": distribution.scored}
                                  for s in distribution.deviations)
        teams = sorted((item for item in leniency.values() if item.department == department),
                       key=lambda item: -item.index)
        originals = [r.original_total for r in results]
        views.append({
            "name": roster.department_name(department), "members": len(results),
            "mean": str(round2(sum(totals, Decimal(0)) / len(totals))),
            # The leniency index (and the team summaries) use the totals before calibration: the same number here.
            "original_mean": str(round2(sum(originals, Decimal(0)) / len(originals))),
            "calibrated": sum(1 for r in results if r.calibration is not None),
            "schemes": sorted({computed.schemes[r.member].name for r in results}),
            "grades": _grade_counts(results), "deviations": deviations,
            "teams": [{"manager": roster.org.name(item.manager or item.team), "members": item.members,
                       "mean": str(item.team_mean), "index": str(item.index)} for item in teams],
            "held_back": [roster.org.name(u) for u in held_back if roster.departments.get(u) == department],
            "idps": [roster.org.name(u) for u in sorted(idps) if roster.departments.get(u) == department],
            "shortfalls": sum(1 for r in results if shortfalls.get(r.member)),
        })
    return views


def _open_idp(session: Session, userid: str, roster: Roster, trigger: Any, result: MemberResult, period: str,
              now: datetime) -> Idp | None:
    """Open the IDP a trigger calls for, once: the unique (member, month) makes a re-run find it instead."""
    existing = session.scalar(select(Idp).where(Idp.userid == userid, Idp.opened_for == period))
    if existing is not None:
        return existing
    idp = Idp(userid=userid, manager_userid=roster.team(userid), opened_for=period, periods=list(trigger.periods),
              totals=[str(total) for total in trigger.totals], status="open", opened_at=now, closed_at=None)
    session.add(idp)
    session.flush()
    weakest = _weakest_performance(result)
    for kind in IDP_ITEM_KINDS:
        session.add(IdpItem(idp_id=idp.id, kind=kind, indicator=weakest if kind == "training" else None,
                            status="open", created_at=now, done_at=None))
    session.add(AuditEntry(at=now, actor="system", action="idp.open", subject=userid,
                           detail={"periods": list(trigger.periods), "totals": [str(t) for t in trigger.totals]}))
    return idp


def idp_view(session: Session, idp: Idp, names: Mapping[str, str], member_name: str, manager_name: str
             ) -> dict[str, Any]:
    items = session.scalars(select(IdpItem).where(IdpItem.idp_id == idp.id).order_by(IdpItem.id)).all()
    return {"id": idp.id, "member": member_name, "manager": manager_name, "opened_for": idp.opened_for,
            "periods": list(idp.periods), "totals": list(idp.totals), "status": idp.status,
            "steps": [{"kind": item.kind, "indicator": names.get(item.indicator or "", item.indicator or ""),
                       "status": item.status} for item in items]}


def _announce_idp(session: Session, config: Config, roster: Roster, userid: str, idp: Idp, result: MemberResult,
                  scheme: Scheme, now: datetime) -> None:
    names = {i.key: i.name for i in scheme.indicators}
    view = idp_view(session, idp, names, roster.org.name(userid), roster.org.name(idp.manager_userid))
    _send(session, config, f"idp:{idp.opened_for}:{userid}:member", userid, "results/idp_opened.txt.j2", now,
          idp=view, audience="member")
    manager = idp.manager_userid
    if manager and roster.org.can_see(manager, userid):
        _send(session, config, f"idp:{idp.opened_for}:{userid}:manager", manager, "results/idp_opened.txt.j2", now,
              idp=view, audience="manager")


# -- views for /result and /team -------------------------------------------------------------------------------------
def stored_result(session: Session, userid: str, period: str) -> PeriodResult | None:
    return session.scalar(select(PeriodResult).where(PeriodResult.userid == userid, PeriodResult.period == period))


def latest_published_period(session: Session, userid: str, kind: PeriodKind = PeriodKind.MONTH) -> str | None:
    periods = session.scalars(select(PeriodResult.period).where(PeriodResult.userid == userid,
                                                                PeriodResult.status == "published")).all()
    matching = sorted((Period.parse(p) for p in periods if Period.parse(p).kind is kind),
                      key=lambda p: (p.year, p.index))
    return str(matching[-1]) if matching else None


def history(session: Session, userid: str, period: Period, count: int) -> list[dict[str, str]]:
    """The member's published results of the same kind before `period`, oldest first, with the trend."""
    rows = session.scalars(select(PeriodResult).where(PeriodResult.userid == userid,
                                                      PeriodResult.status == "published")).all()
    same = sorted((row for row in rows if Period.parse(row.period).kind is period.kind
                   and (Period.parse(row.period).year, Period.parse(row.period).index) <= (period.year, period.index)),
                  key=lambda row: (Period.parse(row.period).year, Period.parse(row.period).index))
    same = same[-(count + 1):]
    found: list[dict[str, str]] = []
    before: Decimal | None = None
    for row in same:
        total = Decimal(row.total)
        trend = "" if before is None else ("up" if total > before else "down" if total < before else "flat")
        found.append({"period": row.period, "total": row.total, "grade": row.grade, "trend": trend})
        before = total
    return found


def team_rows(session: Session, config: Config, org: Org, viewer: str, period: Period) -> tuple[str, list[dict[str, Any]]]:
    """(status, rows) of the viewer's team for /team: frozen results once published, live drafts during the
    calibration window, nothing before the close."""
    team = org.visible(viewer)
    state = period_state(session, str(period))
    if state is None:
        return "open", []
    if state.state == "published":
        stored = _stored(session, str(period), list(team))
        rows = []
        for userid in team:
            row = stored.get(userid)
            if row is None:
                continue
            view = result_view(row.data, status=row.status)
            rows.append({"userid": userid, "name": view["name"], "team_name": view["team_name"],
                         "total": view["total"], "grade": view["grade"], "rank": view["rank_in_team"],
                         "complete": view["complete"], "calibrated": view["calibrated"],
                         "appraised": view["appraised"], "provisional": view["provisional"],
                         "published": row.status == "published", "missing": view["missing"]})
        return "published", _sorted_rows(rows)
    roster = Roster.load(session, config)
    computed = compute(session, config, period, roster=roster, userids=list(team))
    rows = []
    for userid in team:
        result = computed.results.get(userid)
        if result is None:
            continue
        draft = _draft_row(computed, roster, userid, [])
        draft.update(team_name=org.name(result.team), published=False)
        rows.append(draft | {"rank": result.rank_in_team})
    return "closed", _sorted_rows(rows)


def _sorted_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (r["team_name"], not r["complete"], -Decimal(r["total"]), r["userid"]))


# -- calibration -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Calibrated:
    period: str
    original_total: str
    adjusted_total: str
    original_grade: str
    adjusted_grade: str
    previous: str | None  # the total of an earlier calibration this one replaces


def calibrate(session: Session, config: Config, roster: Roster, *, userid: str, period: Period,
              total: Decimal, reason: str, actor: str, now: datetime) -> Calibrated:
    """Record an adjusted total during the calibration window; raises ResultsError saying why not otherwise."""
    text = str(period)
    state = period_state(session, text)
    if state is None:
        raise ResultsError("calibrate.not_closed", period=text,
                           close_at=_local(config, close_moment(config, period)))
    if state.state == "published":
        raise ResultsError("calibrate.published", period=text)
    if not reason.strip():
        raise ResultsError("calibrate.reason_missing")
    computed = compute(session, config, period, roster=roster, userids=[userid], calibrate=False)
    result = computed.results[userid]
    scheme = computed.schemes[userid]
    rounded = total.quantize(Decimal("0.01"))
    problems = check_calibrations(scheme, PeriodResults(scheme.key, period, (result,)),
                                  [Calibration(userid, rounded, reason, actor)])
    for problem in problems:
        if problem.code == "calibration.incomplete_result":
            names = {**{m.key: m.name for m in scheme.metrics}, **{i.key: i.name for i in scheme.indicators}}
            raise ResultsError("calibrate.incomplete", name=roster.org.name(userid),
                               missing=[_missing_label(label, names) for label in result.missing])
        if problem.code == "calibration.not_appraised":
            raise ResultsError("calibrate.not_appraised", name=roster.org.name(userid), period=text)
        if problem.code == "calibration.total_out_of_range":
            raise ResultsError("calibrate.out_of_range", total=str(rounded), high=number_text(scheme.max_score))
    earlier = latest_calibrations(session, text, [userid]).get(userid)
    session.add(ResultCalibration(userid=userid, period=text, adjusted_total=str(rounded),
                                  original_total=str(result.total), reason=reason.strip(), author=actor,
                                  created_at=now))
    session.add(AuditEntry(at=now, actor=actor, action="calibrate", subject=userid, detail={
        "period": text, "original_total": str(result.total), "adjusted_total": str(rounded), "reason": reason.strip(),
        "previous": earlier.adjusted_total if earlier else None}))
    return Calibrated(text, str(result.total), str(rounded), result.grade, scheme.grade_for(rounded),
                      earlier.adjusted_total if earlier else None)


def calibration_period(session: Session) -> Period | None:
    """The month in its calibration window (closed, not yet published), the latest if several."""
    rows = session.scalars(select(ResultPeriod.period).where(ResultPeriod.state == "closed")).all()
    months = sorted((Period.parse(p) for p in rows if Period.parse(p).kind is PeriodKind.MONTH),
                    key=lambda p: (p.year, p.index))
    return months[-1] if months else None


# -- the scheduled jobs ------------------------------------------------------------------------------------------------
def terminal_progress(label: str) -> Progress | None:
    """A progress line on stderr when a person runs the job by hand in a terminal (never from the scheduler)."""
    if threading.current_thread() is not threading.main_thread() or not sys.stderr.isatty():
        return None

    def show(stage: str, done: int, total: int) -> None:
        line = render("results/progress.txt.j2", label=label, stage=stage, done=done, total=total)
        print("\r" + line, end="\n" if done >= total else "", file=sys.stderr, flush=True)

    return show


def run_close_job(ctx: JobContext) -> str:
    report = close_month(ctx.sessions, ctx.config, ctx.clock.now(), ctx.period, as_of=ctx.at,
                         progress=terminal_progress(f"结账 {ctx.period}"))
    return render("results/job_detail.txt.j2", ctx.config.bot.locale, job="close", report=report)


def run_publish_job(ctx: JobContext) -> str:
    report = publish(ctx.sessions, ctx.config, ctx.clock.now(), ctx.period, as_of=ctx.at,
                     progress=terminal_progress(f"发布 {ctx.period}"))
    return render("results/job_detail.txt.j2", ctx.config.bot.locale, job="publish", report=report)


def member_view(computed: Computed, roster: Roster, userid: str) -> dict[str, Any]:
    """A computed (not yet published) result in the shape result_view gives, for /score's breakdown."""
    result = computed.results[userid]
    sizes = _team_sizes(computed.results.values())
    frozen = _frozen(result, computed.schemes[userid], roster, computed.comments.get(userid, ()),
                     sizes.get(result.team, 0))
    return result_view(frozen, status="draft")


def default_calibration_month(session: Session, month: Period) -> Period:
    """The month /calibrate means: the one in its calibration window; else the appraisal month, or the month
    before it when only that one has been closed (so a late calibration hears that it was published)."""
    open_month = calibration_period(session)
    if open_month is not None:
        return open_month
    if period_state(session, str(month)) is None and period_state(session, str(month.previous())) is not None:
        return month.previous()
    return month


# -- the data-quality gate: findings on demand, acceptances, release ----------------------------------------------------
@dataclass
class PeriodQuality:
    period: Period
    findings: list[data_quality.Finding]
    accepted: list[Any]
    roster: Roster

    def names(self) -> dict[str, str]:
        return {u: self.roster.org.name(u) for f in self.findings for u in f.userids}


def period_quality(source: Session | sessionmaker[Session], config: Config, period: Period, now: datetime
                   ) -> PeriodQuality:
    """The gate's findings about a period as of now, with the acceptances recorded for it."""
    with _reading(source) as session:
        roster = Roster.load(session, config)
    computed = compute(source, config, period, roster=roster)
    with _reading(source) as session:
        findings = quality_findings(session, config, computed, now)
        accepted = data_quality.acceptances(session, str(period))
    return PeriodQuality(period, findings, accepted, roster)


def release_accepted(sessions: sessionmaker[Session], config: Config, now: datetime) -> list[str]:
    """Publish what acceptances released in periods already published (publishing again is idempotent: only the
    results now free go out); returns the periods re-published. Acceptances of periods not yet published wait for
    the scheduled publication, which reads them."""
    with transaction(sessions) as session:
        pending = data_quality.pending_releases(session)
        states = {row.period: period_state(session, row.period) for row in pending}
    periods = sorted({row.period for row in pending
                      if (state := states[row.period]) is not None and state.state == "published"})
    for text in periods:
        publish(sessions, config, now, str(last_month_of(Period.parse(text))))  # marks the acceptances released
    return periods


def run_release_job(ctx: JobContext) -> str:
    from bot.storage.models import JobRun

    now = ctx.clock.now()
    released = release_accepted(ctx.sessions, ctx.config, now)
    # It runs every few minutes; its own run records are only worth keeping for a week.
    ctx.session.execute(delete(JobRun).where(JobRun.job_id == "quality_release",
                                             JobRun.started_at < now - timedelta(days=7)))
    return render("quality/job_detail.txt.j2", ctx.config.bot.locale, periods=released)
