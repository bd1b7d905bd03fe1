"""Indicator values the bot measures itself: WeCom statistics (`wecom.<metric>`), OKR (`okr`), 360 feedback (`360`).

The month close (and the quarter and year closes) call one function and merge what it returns into each
member's `scoring.MemberData.values`; nobody types these numbers::

    schemes = {userid: scheme_for(...) for userid in appraised}          # the member's scheme
    found = collect_values(session, schemes, Period.parse("2026-11"))                  # {(userid, key, period): Decimal}
    values = {(key, period): value for (u, key, period), value in found.items() if u == userid}
    flags = data_quality_flags(session, schemes, Period.parse("2026-11"), today=...)    # for the data-quality check

Which keys come back:

- every indicator whose `source` is `wecom.<metric>` (any key of `scoring.wecom_metrics.METRICS`, e.g.
  `wecom.net_follower_growth_rate`, `wecom.avg_reply_time`), for each sub-period the engine scores it in
  (`scoring.indicator_periods`: a monthly indicator in a quarter gives one value per month);
- every companion metric (`[[metrics]]`) whose key is a WeCom metric key (`group_quit_rate`,
  `group_speaking_rate`...), for the sub-periods of the indicators whose guardrails read it;
- indicators with `source = "okr"` (or `okr.average`): the member's mean KR score, 0-1.00, of a scored quarter
  (a year: all its scored KRs);
- indicators with `source = "360"` (or `feedback_360`, `feedback_360.average`): the mean 1-5 rating over the
  closed 360 rounds of that period, only with at least 3 ratings.

A value the data cannot define (no chats, no customers at the start, no scored KR, fewer than 3 ratings) is
left out, so the result shows it as missing and the data-quality check lists it; nothing is made up.
"""
from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.appraisal import feedback360, okr
from bot.storage.models import OkrKeyResult, WeComBehaviorDay, WeComCustomerCount, WeComGroupDay, WeComStatsGap
from scoring import Period, PeriodKind, Scheme, indicator_periods
from scoring.okr_scores import okr_average
from scoring.wecom_metrics import (
    METRIC_KEYS,
    BehaviorDay,
    BurstRule,
    CustomerSnapshot,
    GroupDay,
    contact_bursts,
    missing_days,
    period_metrics,
    pick_snapshot,
)

WECOM_PREFIX = "wecom."
OKR_SOURCES = frozenset({"okr", "okr.average"})
FEEDBACK_SOURCES = feedback360.FEEDBACK_SOURCES
CHUNK = 500  # userids per IN (...) list
BURST_LOOKBACK = timedelta(days=28)  # the member's usual day is judged over the weeks before the period too

ValueKey = tuple[str, str, str]  # (userid, indicator or metric key, period text)


def source_kind(source: str) -> str | None:
    """"wecom", "okr" or "360" for a source this module provides; None for any other (typed in, imported...)."""
    if source.startswith(WECOM_PREFIX) and source[len(WECOM_PREFIX):] in METRIC_KEYS:
        return "wecom"
    if source in OKR_SOURCES:
        return "okr"
    if source in FEEDBACK_SOURCES:
        return "360"
    return None


@dataclass(frozen=True)
class Need:
    userid: str
    key: str  # the indicator or metric key the value is stored under
    period: str
    source: str


def needs_for(members: Mapping[str, Scheme], period: Period) -> list[Need]:
    """Every (member, key, sub-period) the schemes want from these sources for `period`."""
    needs: list[Need] = []
    for userid, scheme in members.items():
        metric_periods: dict[str, set[str]] = defaultdict(set)
        for indicator in scheme.indicators:
            subs = [str(sub) for sub in indicator_periods(indicator, period)]
            if indicator.source and source_kind(indicator.source):
                needs.extend(Need(userid, indicator.key, sub, indicator.source) for sub in subs)
            for guardrail in indicator.guardrails:
                metric_periods[guardrail.metric].update(subs)
        for metric in scheme.metrics:
            if metric.key in METRIC_KEYS:
                needs.extend(Need(userid, metric.key, sub, WECOM_PREFIX + metric.key)
                             for sub in sorted(metric_periods.get(metric.key, ())))
    return needs


def period_days(period: Period) -> tuple[date, date]:
    """The first and the last day of `period`."""
    months = period.months()
    first, last = months[0], months[-1]
    return date(first.year, first.index, 1), date(last.year, last.index, calendar.monthrange(last.year, last.index)[1])


def collect_values(session: Session, members: Mapping[str, Scheme], period: Period) -> dict[ValueKey, Decimal]:
    """The values of every `wecom.*`, `okr` and `360` indicator and WeCom companion metric the members' schemes
    score in `period`, keyed (userid, key, sub-period). Undefined values are absent (see the module docstring)."""
    by_group: dict[tuple[str, str], list[Need]] = defaultdict(list)
    for need in needs_for(members, period):
        by_group[(source_kind(need.source) or "", need.period)].append(need)
    found: dict[ValueKey, Decimal] = {}
    for (kind, sub), needs in sorted(by_group.items()):
        userids = sorted({need.userid for need in needs})
        if kind == "wecom":
            first, last = period_days(Period.parse(sub))  # a Need keeps its sub-period as stored text
            metrics = wecom_metrics(session, userids, first, last)
            for need in needs:
                value = metrics.get(need.userid, {}).get(need.source[len(WECOM_PREFIX):])
                if value is not None:
                    found[(need.userid, need.key, sub)] = value
        elif kind == "okr":
            averages = okr_averages(session, userids, sub)
            found.update({(need.userid, need.key, sub): averages[need.userid] for need in needs
                          if need.userid in averages})
        elif kind == "360":
            averages = feedback360.averages_for(session, userids, sub)
            found.update({(need.userid, need.key, sub): averages[need.userid] for need in needs
                          if need.userid in averages})
    return found


def member_values(found: Mapping[ValueKey, Decimal], userid: str) -> dict[tuple[str, str], Decimal]:
    """One member's share of collect_values, keyed as scoring.MemberData.values wants: (key, period)."""
    return {(key, period): value for (owner, key, period), value in found.items() if owner == userid}


def okr_averages(session: Session, userids: Sequence[str], period: str) -> dict[str, Decimal]:
    """Mean KR score of a scored quarter, or of all scored KRs of a year's quarters; a month has none."""
    parsed = Period.parse(period)
    if parsed.kind is PeriodKind.QUARTER:
        return okr.averages_for(session, userids, parsed)
    if parsed.kind is PeriodKind.YEAR:
        scores: dict[str, list[Decimal]] = defaultdict(list)
        quarters = [str(q) for q in parsed.quarters()]
        for kr in session.scalars(select(OkrKeyResult).where(OkrKeyResult.quarter.in_(quarters),
                                                             OkrKeyResult.owner.in_(set(userids)),
                                                             OkrKeyResult.score.is_not(None))):
            scores[kr.owner].append(kr.score)  # type: ignore[arg-type]
        return {owner: avg for owner, values in scores.items() if (avg := okr_average(values)) is not None}
    return {}


# -- WeCom statistics from storage ----------------------------------------------------------------------------

def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), CHUNK):
        yield items[start:start + CHUNK]


def _behavior(session: Session, userids: Sequence[str], first: date, last: date) -> dict[str, list[BehaviorDay]]:
    rows: dict[str, list[BehaviorDay]] = defaultdict(list)
    for chunk in _chunks(userids):
        for row in session.scalars(select(WeComBehaviorDay).where(
                WeComBehaviorDay.userid.in_(chunk), WeComBehaviorDay.day >= first, WeComBehaviorDay.day <= last)):
            rows[row.userid].append(BehaviorDay(
                day=row.day, chat_cnt=row.chat_cnt, message_cnt=row.message_cnt,
                reply_percentage=row.reply_percentage, avg_reply_time=row.avg_reply_time,
                negative_feedback_cnt=row.negative_feedback_cnt, new_apply_cnt=row.new_apply_cnt,
                new_contact_cnt=row.new_contact_cnt))
    return rows


def _groups(session: Session, userids: Sequence[str], first: date, last: date) -> dict[str, list[GroupDay]]:
    rows: dict[str, list[GroupDay]] = defaultdict(list)
    for chunk in _chunks(userids):
        for row in session.scalars(select(WeComGroupDay).where(
                WeComGroupDay.owner.in_(chunk), WeComGroupDay.day >= first, WeComGroupDay.day <= last)):
            rows[row.owner].append(GroupDay(
                day=row.day, new_chat_cnt=row.new_chat_cnt, chat_total=row.chat_total,
                chat_has_msg=row.chat_has_msg, new_member_cnt=row.new_member_cnt, member_total=row.member_total,
                member_has_msg=row.member_has_msg, msg_total=row.msg_total))
    return rows


def _snapshots(session: Session, userids: Sequence[str], boundary: date) -> dict[str, CustomerSnapshot]:
    """For each member, the customer count nearest to the end of `boundary` (see pick_snapshot)."""
    nearest: dict[str, set[date]] = defaultdict(set)
    table = WeComCustomerCount
    for chunk in _chunks(userids):
        for query in (select(table.userid, func.max(table.as_of)).where(table.as_of <= boundary),
                      select(table.userid, func.min(table.as_of)).where(table.as_of >= boundary)):
            for userid, as_of in session.execute(query.where(table.userid.in_(chunk)).group_by(table.userid)):
                if as_of is not None:
                    nearest[userid].add(as_of)
    candidates: dict[str, list[CustomerSnapshot]] = defaultdict(list)
    days = {day for found in nearest.values() for day in found}
    for chunk in _chunks(sorted(nearest)):
        for row in session.scalars(select(table).where(table.userid.in_(chunk), table.as_of.in_(days))):
            if row.as_of in nearest[row.userid]:
                candidates[row.userid].append(CustomerSnapshot(row.as_of, row.customers))
    return {userid: chosen for userid, found in candidates.items()
            if (chosen := pick_snapshot(found, boundary)) is not None}


def wecom_metrics(session: Session, userids: Sequence[str], first: date, last: date) -> dict[str, dict[str, Decimal]]:
    """Each member's derived metrics (scoring.wecom_metrics.period_metrics) for the days first..last."""
    boundary = first - timedelta(days=1)
    snapshots = _snapshots(session, userids, boundary)
    low = min([first, *(s.as_of + timedelta(days=1) for s in snapshots.values())])
    high = max([last, *(s.as_of for s in snapshots.values())])
    behavior = _behavior(session, userids, low, high)
    groups = _groups(session, userids, boundary, last)
    return {userid: period_metrics(first, last, behavior.get(userid, ()), groups.get(userid, ()),
                                   snapshots.get(userid)) for userid in userids}


# -- the data-quality check ------------------------------------------------------------------------------------

def permission_gaps(session: Session, userids: Sequence[str], first: date, last: date) -> dict[str, set[date]]:
    """The days the statistics sync skipped each member because WeCom answered 84074 (no customer-contact
    permission); a later pull that works removes them."""
    found: dict[str, set[date]] = defaultdict(set)
    for chunk in _chunks(userids):
        for row in session.scalars(select(WeComStatsGap).where(
                WeComStatsGap.userid.in_(chunk), WeComStatsGap.day >= first, WeComStatsGap.day <= last)):
            found[row.userid].add(row.day)
    return found


@dataclass(frozen=True)
class DataFlag:
    """Something the data-quality check should show about one member's WeCom figures in a period."""

    userid: str
    kind: str  # "contact_burst" | "missing_days" | "no_contact_permission"
    period: str
    detail: Mapping[str, Any] = field(default_factory=dict)


def data_quality_flags(session: Session, members: Mapping[str, Scheme] | Iterable[str], period: Period, *,
                       today: date, rule: BurstRule = BurstRule()) -> list[DataFlag]:
    """Suspicious growth (a burst of new contacts followed by many deletions) and days the sync has not stored,
    for members whose schemes use WeCom figures (or every userid given as a plain list)."""
    if isinstance(members, Mapping):
        userids = sorted({need.userid for need in needs_for(members, period) if need.source.startswith(WECOM_PREFIX)})
    else:
        userids = sorted(set(members))
    text = str(period)  # a DataFlag names its period as text, as findings do
    first, last = period_days(period)
    until = min(last, today - timedelta(days=1))
    flags: list[DataFlag] = []
    if not userids or until < first:
        return flags
    behavior = _behavior(session, userids, first - BURST_LOOKBACK, min(last + timedelta(days=rule.window), until))
    denied = permission_gaps(session, userids, first, until)
    for userid in userids:
        days = behavior.get(userid, [])
        gaps = missing_days(first, until, (d.day for d in days))
        # Days WeCom refused for lack of customer-contact permission are named as such, not as "not pulled".
        no_permission = [day for day in gaps if day in denied.get(userid, ())]
        if no_permission:
            flags.append(DataFlag(userid, "no_contact_permission", text, {
                "days": len(no_permission), "first": no_permission[0], "last": no_permission[-1]}))
            gaps = [day for day in gaps if day not in denied[userid]]
        if gaps:
            flags.append(DataFlag(userid, "missing_days", text, {"days": len(gaps), "first": gaps[0],
                                                                 "last": gaps[-1]}))
        for burst in contact_bursts(days, rule):
            if first <= burst.day <= last:
                flags.append(DataFlag(userid, "contact_burst", text, {
                    "day": burst.day, "new_contacts": burst.new_contacts, "baseline": burst.baseline,
                    "deletions_after": burst.deletions_after, "window": burst.window}))
    return flags
