"""Data in: numbers as people type them (15%, 3.2万, 1,234), members by name or userid, indicators by key or
name, periods; and the entries /data, /target, /score and `kpibot data import` write, each with its audit trail."""
from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.appraisal import periods, ratings
from bot.appraisal.assignment import cycles_due
from bot.appraisal.numbers import NumberError, parse_number
from bot.appraisal.people import Org
from bot.appraisal.workcalendar import local, nth_workday_of_month
from bot.config import Config
from bot.errors import CodedError
from bot.storage.models import AuditEntry, DataEntry, Member, PeriodResult, ResultPeriod
from bot.templates import words
from scoring import WAIVED, Cycle, Indicator, Metric, Period, PeriodError, PeriodKind, RatingRule, RatioRule, Scheme
from scoring.bounds import value_bounds
from scoring.results import Waiver

# Sources whose values a manager gives with /score (a 1-5 rating against the indicator's anchors).
MANAGER_SOURCES = frozenset({"manager", "manager_rating", "manager_review"})
_CYCLE_KIND = {Cycle.MONTH: PeriodKind.MONTH, Cycle.QUARTER: PeriodKind.QUARTER, Cycle.YEAR: PeriodKind.YEAR}
_RATING_CODES = {"out_of_range": "rating.out_of_range", "not_integer": "rating.not_integer",
                 "chinese_numeral": "rating.chinese", "not_a_number": "rating.invalid"}


class EntryError(CodedError):
    """Input a person must correct: `code` picks the sentence in templates/zh_CN/scoring/error.txt.j2."""

    TEMPLATE = "scoring/error.txt.j2"


# -- numbers, ratings, periods --------------------------------------------------------------------------------
def parse_amount(text: str) -> Decimal:
    """`1234.5`, `1,234.5`, `15%` (15: values stay in the scheme's unit), `3.2万` (32000); full-width digits too.
    Not a number, not finite or out of the parser's bounds: an EntryError naming which."""
    try:
        return parse_number(text)
    except NumberError as error:
        raise EntryError("value.invalid" if error.code == "number.invalid" else error.code,
                         text=text.strip()) from None


def is_waive_word(text: str) -> bool:
    return text.strip().lower() in words("data.waive")


def parse_value(text: str) -> Decimal | Waiver:
    return WAIVED if is_waive_word(text) else parse_amount(text)


def parse_rating(text: str) -> int:
    """A rating as /score takes it: the one rating parser (bot.appraisal.ratings), its problem raised as the
    EntryError that says what is wrong."""
    found = ratings.parse_rating(text)
    if isinstance(found, ratings.RatingProblem):
        params = {"suggestion": found.suggestion} if found.kind == "chinese_numeral" else {}
        raise EntryError(_RATING_CODES[found.kind], text=found.shown, **params)
    return found


def appraisal_month(config: Config, now: datetime) -> Period:
    """The month managers are scoring now: the previous month until its results are published (the
    configured workday of this month), this month after that."""
    here = local(config, now)
    this_month = Period.month(here.year, here.month)
    rules = config.results
    publish_day = nth_workday_of_month(here.year, here.month, rules.publish_on_workday)
    if publish_day is not None and (here.date(), here.time()) < (publish_day, rules.publish_at):
        return this_month.previous()
    return this_month


def period_of_cycle(cycle: Cycle, month: Period) -> Period:
    """The period an indicator of this cycle is entered for when the month being appraised is `month`."""
    if cycle == Cycle.MONTH:
        return month
    if cycle == Cycle.QUARTER:
        return Period.quarter(month.year, (month.index - 1) // 3 + 1)
    return Period.whole_year(month.year)


def due_ratings(scheme: Scheme, month: Period) -> list[tuple[Indicator, str]]:
    """The manager-rated indicators due in the month (quarterly ones at quarter end, annual ones in December),
    each with the period its rating is entered for."""
    due = cycles_due(month.index)
    return [(i, str(period_of_cycle(i.cycle, month))) for i in scheme.indicators
            if is_manager_rated(i) and i.cycle in due]


# -- indicators and companion metrics --------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyRef:
    """What a /data, /target or /score names: an indicator of the member's scheme, or a companion metric."""

    key: str
    name: str
    unit: str
    cycles: tuple[Cycle, ...]  # the period kinds its values are entered for
    indicator: Indicator | None = None
    metric: Metric | None = None

    @property
    def is_rating(self) -> bool:
        return self.indicator is not None and isinstance(self.indicator.rule, RatingRule)

    @property
    def manager_rated(self) -> bool:
        return self.indicator is not None and is_manager_rated(self.indicator)

    @property
    def takes_target(self) -> bool:
        return self.indicator is not None and isinstance(self.indicator.rule, RatioRule)


def is_manager_rated(indicator: Indicator) -> bool:
    return isinstance(indicator.rule, RatingRule) and (indicator.source or "manager") in MANAGER_SOURCES


def key_refs(scheme: Scheme) -> list[KeyRef]:
    refs = [KeyRef(i.key, i.name, i.unit, (i.cycle,), indicator=i) for i in scheme.indicators]
    for metric in scheme.metrics:
        cycles = tuple(dict.fromkeys(i.cycle for i in scheme.indicators
                                     if any(g.metric == metric.key for g in i.guardrails))) or (Cycle.MONTH,)
        refs.append(KeyRef(metric.key, metric.name, metric.unit, cycles, metric=metric))
    return refs


def _short_name(name: str) -> str:
    return re.split(r"[（(]", name, maxsplit=1)[0].strip()


def find_key(scheme: Scheme, text: str) -> KeyRef:
    """By key (any case), full name, name without its parenthesis, or a unique start of the name."""
    wanted = text.strip()
    lowered = wanted.lower()
    refs = key_refs(scheme)
    for matches in (
        [r for r in refs if r.key.lower() == lowered],
        [r for r in refs if r.name == wanted],
        [r for r in refs if _short_name(r.name) == wanted],
        [r for r in refs if len(wanted) >= 2 and r.name.startswith(wanted)],
    ):
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise EntryError("key.ambiguous", text=wanted, names=[r.name for r in matches])
    raise EntryError("key.unknown", text=wanted, scheme=scheme.name,
                     names=[_short_name(r.name) for r in refs if r.indicator is not None])


def period_for(ref: KeyRef, text: str | None, month: Period) -> str:
    """The period an entry is for: the one given (checked against the indicator's cycle) or the default."""
    if text is None:
        return str(period_of_cycle(ref.cycles[0], month))
    period = periods.parse_period(text, month)
    if period is None:
        raise EntryError("period.invalid", text=text)
    allowed = {_CYCLE_KIND[cycle] for cycle in ref.cycles}
    if period.kind not in allowed:
        raise EntryError("period.mismatch", name=ref.name, period=str(period),
                         cycle=ref.cycles[0].value, example=str(period_of_cycle(ref.cycles[0], month)))
    return str(period)


# -- members ----------------------------------------------------------------------------------------------------
def find_member(org: Org, text: str, *, viewer: str) -> Member:
    """An active member by userid (any case) or name whom the viewer may manage."""
    wanted = text.strip()
    lowered = wanted.lower()
    matches = [m for m in org.members.values() if m.userid.lower() == lowered] or \
              [m for m in org.members.values() if m.name == wanted]
    if not matches:
        raise EntryError("member.unknown", text=wanted)
    allowed = [m for m in matches if org.can_manage(viewer, m.userid)]
    if not allowed:
        raise EntryError("member.not_in_team", text=wanted, own=any(m.userid == viewer for m in matches))
    if len(allowed) > 1:
        raise EntryError("member.ambiguous", text=wanted, members=[(m.name, m.userid) for m in allowed])
    return allowed[0]


def find_member_anywhere(session: Session, text: str) -> list[Member]:
    """Active members by userid or name, for imports (no viewer)."""
    wanted = text.strip()
    found = session.scalars(select(Member).where(Member.active.is_(True), Member.userid == wanted)).all()
    if not found:
        found = session.scalars(select(Member).where(Member.active.is_(True), Member.name == wanted)).all()
    return list(found)


# -- writing ----------------------------------------------------------------------------------------------------
def published_periods(session: Session, periods: Collection[str]) -> set[str]:
    if not periods:
        return set()
    return set(session.scalars(select(ResultPeriod.period).where(ResultPeriod.period.in_(list(periods)),
                                                                 ResultPeriod.state == "published")))


def ensure_open(session: Session, period: str, userid: str | None = None, *, replaces: bool = False) -> None:
    """Published results are frozen: nothing entered for their period may change them any more. A closed period
    (drafts out, calibration running) still takes what fills a gap, but changing a value it was closed with
    needs /calibrate or an admin's `kpibot results reopen` (audited)."""
    state = session.get(ResultPeriod, period)
    if state is None:
        return
    row = session.scalar(select(PeriodResult).where(PeriodResult.userid == userid, PeriodResult.period == period)
                         ) if userid is not None else None
    if (row is not None and row.status == "published") or (row is None and state.state == "published"):
        raise EntryError("period.published", period=period)
    if replaces and state.state in ("closed", "published"):
        raise EntryError("period.closed", period=period)


def check_value(ref: KeyRef, value: Decimal, kind: str) -> None:
    """Inside the indicator's bounds (the scheme's min/max, else its unit's); a ratio rule's target above 0."""
    if kind == "target":
        if value <= 0:
            raise EntryError("target.zero", name=ref.name, text=decimal_text(value))
        return
    item = ref.indicator if ref.indicator is not None else ref.metric
    if item is None:
        return
    bounds = value_bounds(item)
    side = bounds.violation(value)
    if side is not None:
        raise EntryError("value.out_of_bounds", name=ref.name, text=decimal_text(value), unit=ref.unit,
                         side=side, bound=bounds.kind.value,
                         low=None if bounds.low is None else decimal_text(bounds.low),
                         high=None if bounds.high is None else decimal_text(bounds.high))


# A value this many times above (or below) everything the member and the team had is asked about before saving.
UNUSUAL_FACTOR = Decimal(5)
HISTORY_ENTRIES = 24


def unusual_against_history(session: Session, ref: KeyRef, userid: str, team: Collection[str], period: str,
                            value: Decimal) -> Decimal | None:
    """The largest earlier value when `value` is far outside the member's and the team's history (at least 3
    earlier values of the key, other periods of the member or this period of the team); else None."""
    rows = session.scalars(select(DataEntry.value).where(
        DataEntry.key == ref.key, DataEntry.kind == "value", DataEntry.waived.is_(False),
        DataEntry.value.is_not(None), DataEntry.userid.in_(sorted({userid, *team})),
        ~((DataEntry.userid == userid) & (DataEntry.period == period)))
        .order_by(DataEntry.id.desc()).limit(HISTORY_ENTRIES)).all()
    history = [Decimal(text) for text in rows]
    if len(history) < 3:
        return None
    high, low = max(history), min(history)
    if high > 0 and value > high * UNUSUAL_FACTOR:
        return high
    if value >= 0 and low > 0 and value * UNUSUAL_FACTOR < low:
        return low
    return None


def decimal_text(value: Decimal) -> str:
    """Exact, without exponent noise: 32000 not 3.2E+4."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def latest_entry(session: Session, userid: str, key: str, period: str, kind: str) -> DataEntry | None:
    return session.scalar(select(DataEntry).where(DataEntry.userid == userid, DataEntry.key == key,
                                                  DataEntry.period == period, DataEntry.kind == kind)
                          .order_by(DataEntry.id.desc()).limit(1))


def record(session: Session, *, userid: str, key: str, period: str, kind: str, value: Decimal | Waiver,
           reason: str, source: str, actor: str, now: datetime, audit: bool = True) -> DataEntry | None:
    """Store one entry (the history keeps every earlier one) and audit it; returns the entry it replaces."""
    previous = latest_entry(session, userid, key, period, kind) if audit else None
    waived = value is WAIVED
    session.add(DataEntry(userid=userid, key=key, period=period, kind=kind,
                          value=None if waived else decimal_text(value),  # type: ignore[arg-type]
                          waived=waived, reason=reason, source=source, entered_by=actor, entered_at=now))
    if audit:
        action = {"target": "data.target", "score": "score.rating"}.get(source, "data.value")
        if waived:
            action = "score.waive" if source == "score" else "data.waive"
        session.add(AuditEntry(at=now, actor=actor, action=action, subject=userid, detail={
            "key": key, "period": period, "kind": kind, "value": None if waived else decimal_text(value),  # type: ignore[arg-type]
            "waived": waived, "reason": reason, "source": source,
            "previous": None if previous is None else ("waived" if previous.waived else previous.value)}))
    return previous


# -- bulk waivers (admins) ----------------------------------------------------------------------------------------
# /waive and `kpibot data waive` answer a part that is no period with the data-entry refusal of their own.
def parse_periods(text: str, month: Period) -> list[Period]:
    """bot.appraisal.periods.parse_periods, a part that is no period raised as EntryError("period.invalid")."""
    try:
        return periods.parse_periods(text, month)
    except PeriodError as error:
        raise EntryError("period.invalid", text=error.text) from None


@dataclass(frozen=True)
class BulkWaiver:
    """What `waive_in_bulk` wrote: the waived (member, period) pairs and those left as they were (already waived)."""

    key: str
    name: str
    waived: tuple[tuple[str, str], ...]
    unchanged: tuple[tuple[str, str], ...]


def waive_in_bulk(session: Session, schemes: dict[str, Scheme], *, key: str, periods: list[Period], reason: str,
                  actor: str, now: datetime) -> BulkWaiver:
    """Waive one indicator for several members and periods at once (e.g. months before a team used kpibot): every
    pair is checked first (the indicator in each member's scheme, the period of its cycle, the result not frozen),
    so nothing is written unless all are fine; one audit entry lists them all."""
    if not reason.strip():
        raise EntryError("reason.missing_waive", key=key)
    plan: list[tuple[str, KeyRef, str]] = []
    for userid, scheme in schemes.items():
        ref = find_key(scheme, key)
        for period in periods:
            text = period_for(ref, str(period), period.months()[-1])
            ensure_open(session, text, userid)
            plan.append((userid, ref, text))
    waived: list[tuple[str, str]] = []
    unchanged: list[tuple[str, str]] = []
    for userid, ref, text in plan:
        existing = latest_entry(session, userid, ref.key, text, "value")
        if existing is not None and existing.waived:
            unchanged.append((userid, text))
            continue
        record(session, userid=userid, key=ref.key, period=text, kind="value", value=WAIVED, reason=reason.strip(),
               source="bulk_waive", actor=actor, now=now, audit=False)
        waived.append((userid, text))
    name = plan[0][1].name if plan else key
    session.add(AuditEntry(at=now, actor=actor, action="data.bulk_waive", subject=key, detail={
        "key": key, "reason": reason.strip(), "pairs": [list(pair) for pair in waived],
        "unchanged": [list(pair) for pair in unchanged]}))
    return BulkWaiver(key, name, tuple(waived), tuple(unchanged))
