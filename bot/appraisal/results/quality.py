"""The data-quality checks: typed findings about a period's data, worst first, and each as the sentence people read.

A finding is one of FINDING_KINDS. Kinds that make a result untrustworthy (severity HOLD) keep the members they
name from being published until the data is fixed (the next run no longer finds it), the value is waived (a finding
whose keys are all waived is not raised), or an admin accepts it (bot.appraisal.results.gate). Other kinds (NOTE)
are shown and do not stop anything. A kind added elsewhere (a DataFlag of bot.appraisal.indicator_sources with a new
`kind`) comes through as a NOTE until it is registered here with its severity.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.appraisal.indicator_sources import data_quality_flags, period_days
from bot.appraisal.results.compute import chunks
from bot.appraisal.results.store import key_names
from bot.appraisal.workcalendar import is_workday
from bot.storage.models import WeComBehaviorDay, WeComGroupDay
from bot.templates import render
from scoring import WAIVED, MemberData, Period, RatingRule, Scheme
from scoring.quality import CollapseRule, collapse, out_of_bounds, peer_outliers
from scoring.wecom_metrics import METRIC_KEYS, metric_def

OUTAGE_SHARE = Decimal("0.5")  # a collapse shared by at least this share of the members checked is a sync outage


class Severity(StrEnum):
    HOLD = "hold"  # the result cannot be trusted: held back from publishing until fixed, waived or accepted
    NOTE = "note"  # worth a look; publishing goes ahead


@dataclass(frozen=True)
class KindSpec:
    severity: Severity
    rank: int  # lower is worse: the order of "the worst few"


# Every finding kind, worst first. Add a kind here (and a branch in templates/<locale>/quality/finding.txt.j2).
FINDING_KINDS: dict[str, KindSpec] = {
    "source_outage": KindSpec(Severity.HOLD, 10),  # every member's figures collapsed on the same days
    "impossible_metric": KindSpec(Severity.HOLD, 20),  # a derived metric outside what is possible (quit rate 100.34%)
    "source_collapsed": KindSpec(Severity.HOLD, 30),  # one member's figures collapsed to zero after a history
    "groups_without_members": KindSpec(Severity.HOLD, 40),  # owns customer groups, yet 0 group members
    "missing_days": KindSpec(Severity.HOLD, 50),  # days without stored statistics among days that have them
    "contact_burst": KindSpec(Severity.NOTE, 60),  # a burst of new contacts, then many deletions
    "jump_team": KindSpec(Severity.NOTE, 70),  # far from the peers' median
    "jump_own": KindSpec(Severity.NOTE, 80),  # far from the member's own month before
}
UNKNOWN_KIND = KindSpec(Severity.NOTE, 90)


def kind_spec(kind: str) -> KindSpec:
    return FINDING_KINDS.get(kind, UNKNOWN_KIND)


@dataclass(frozen=True)
class Finding:
    """One thing the gate found about a period: what kind, whom it concerns (one member, or every member an outage
    touched), which keys it affects, and the figures that explain it (`detail`, read by the finding template)."""

    kind: str
    period: str
    userids: tuple[str, ...]
    detail: Mapping[str, Any] = field(default_factory=dict)
    keys: tuple[str, ...] = ()  # indicator or metric keys the finding makes doubtful
    severity: Severity | None = None  # None: the kind's own

    @property
    def level(self) -> Severity:
        return self.severity or kind_spec(self.kind).severity

    @property
    def holds(self) -> bool:
        return self.level is Severity.HOLD

    @property
    def team_wide(self) -> bool:
        return len(self.userids) != 1

    def sort_key(self) -> tuple[int, int, int, str]:
        return (0 if self.holds else 1, kind_spec(self.kind).rank, -len(self.userids), ",".join(self.userids))


@dataclass(frozen=True)
class Jump:
    """A value that moved more than the threshold since the member's month before (gate.suspicious_jumps)."""

    userid: str
    key: str
    name: str
    before: str
    now: str
    percent: str


# -- checks ----------------------------------------------------------------------------------------------------
def _wecom_metric(scheme: Scheme, key: str) -> str | None:
    """The WeCom metric behind a value key: the key itself for a companion metric, the source for an indicator."""
    if key in METRIC_KEYS:
        return key
    for indicator in scheme.indicators:
        if indicator.key == key and (indicator.source or "").startswith("wecom."):
            metric = indicator.source[len("wecom."):]  # type: ignore[index]
            return metric if metric in METRIC_KEYS else None
    return None


def _wecom_keys(scheme: Scheme) -> tuple[str, ...]:
    keys = [i.key for i in scheme.indicators if (i.source or "").startswith("wecom.")]
    keys += [m.key for m in scheme.metrics if m.key in METRIC_KEYS]
    return tuple(keys)


def impossible_metrics(period: str, members: Mapping[str, MemberData], schemes: Mapping[str, Scheme]) -> list[Finding]:
    found = []
    for userid, data in sorted(members.items()):
        scheme = schemes[userid]
        for (key, sub), value in sorted(data.values.items()):
            if value is WAIVED:
                continue
            metric = _wecom_metric(scheme, key)
            bounds = out_of_bounds(metric, value) if metric else None  # type: ignore[arg-type]
            if bounds is not None:
                found.append(Finding("impossible_metric", period, (userid,), {
                    "key": key, "name": key_names(scheme).get(key, key), "sub": sub, "value": value,
                    "unit": metric_def(metric).unit, "low": bounds[0], "high": bounds[1]}, (key,)))  # type: ignore[arg-type]
    return found


@dataclass
class Activity:
    """Per member and day: whether the behaviour figures were non-zero, whether the group figures were; the days
    on which the member owned groups but WeCom said they had no group members (day, groups owned)."""

    behavior: dict[str, dict[date, bool]] = field(default_factory=lambda: defaultdict(dict))
    groups: dict[str, dict[date, bool]] = field(default_factory=lambda: defaultdict(dict))
    empty_groups: dict[str, list[tuple[date, int]]] = field(default_factory=lambda: defaultdict(list))


def read_activity(session: Session, userids: Sequence[str], first: date, last: date) -> Activity:
    found = Activity()
    for chunk in chunks(list(userids)):
        # Plain columns, not ORM objects: a close reads two months of days for every member.
        b = WeComBehaviorDay
        for userid, day, *counts in session.execute(select(
                b.userid, b.day, b.chat_cnt, b.message_cnt, b.new_contact_cnt, b.new_apply_cnt,
                b.negative_feedback_cnt).where(b.userid.in_(chunk), b.day >= first, b.day <= last)):
            found.behavior[userid][day] = any(counts)
        g = WeComGroupDay
        for owner, day, chats, members in session.execute(select(g.owner, g.day, g.chat_total, g.member_total).where(
                g.owner.in_(chunk), g.day >= first, g.day <= last)):
            found.groups[owner][day] = bool(chats or members)
            if chats > 0 and members == 0:
                found.empty_groups[owner].append((day, chats))
    for days in found.empty_groups.values():
        days.sort()
    return found


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def source_findings(period: str, userids: Sequence[str], keys: Mapping[str, tuple[str, ...]], activity: Activity,
                    first: date, until: date, rule: CollapseRule = CollapseRule()) -> list[Finding]:
    """Collapsed sources (one member, or most of them at once: a sync outage) and groups without members, in the
    period's days first..until. Behaviour figures are flows, silent on holidays: only workdays count for them."""
    every_day = _days(first, until)
    found: list[Finding] = []
    for source, series, days in (("behavior", activity.behavior, [d for d in every_day if is_workday(d)]),
                                 ("groups", activity.groups, every_day)):
        collapsed = {u: c for u in userids if (c := collapse(series.get(u, {}), days, rule)) is not None}
        with_history = [u for u in userids if any(was for d, was in series.get(u, {}).items() if d < first)]
        if len(collapsed) >= 2 and Decimal(len(collapsed)) >= OUTAGE_SHARE * max(1, len(with_history)):
            found.append(Finding("source_outage", period, tuple(sorted(collapsed)), {
                "source": source, "first": min(c.first for c in collapsed.values()),
                "last": max(c.last for c in collapsed.values()), "members": len(collapsed),
                "checked": len(with_history)}, tuple(sorted({k for u in collapsed for k in keys.get(u, ())}))))
            continue
        for userid, run in sorted(collapsed.items()):
            found.append(Finding("source_collapsed", period, (userid,), {
                "source": source, "first": run.first, "last": run.last, "days": run.days,
                "active_before": run.active_before}, keys.get(userid, ())))
    # The period's start (the day before it) and end are what the group quit rate and members-at-start read:
    # an empty day there spoils the result; one inside only blurs the speaking rate a little.
    boundaries = {first - timedelta(days=1), until}
    for userid in userids:
        empty = [(d, n) for d, n in activity.empty_groups.get(userid, []) if first - timedelta(days=1) <= d <= until]
        if empty:
            found.append(Finding("groups_without_members", period, (userid,), {
                "days": len(empty), "first": empty[0][0], "last": empty[-1][0], "groups": max(n for _, n in empty),
                "boundary": any(d in boundaries for d, _ in empty)}, keys.get(userid, ()),
                None if any(d in boundaries for d, _ in empty) else Severity.NOTE))
    return found


def flag_findings(flags: Iterable[Any], keys: Mapping[str, tuple[str, ...]], activity: Activity, first: date,
                  quiet: set[str]) -> list[Finding]:
    """bot.appraisal.indicator_sources' DataFlags as findings. Missing days are a gap in synced data only when the member has
    some figures in the period; with none at all (no sync, or a member it does not cover) the values are simply
    missing, which the result says, and a vanished source after a history is a collapse."""
    found = []
    for flag in flags:
        if flag.kind == "missing_days" and (flag.userid in quiet or not any(
                d >= first for d in activity.behavior.get(flag.userid, {}))):
            continue
        found.append(Finding(flag.kind, flag.period, (flag.userid,), dict(flag.detail), keys.get(flag.userid, ())))
    return found


def jump_findings(period: str, jumps: Iterable[Jump]) -> list[Finding]:
    return [Finding("jump_own", period, (j.userid,), {"key": j.key, "name": j.name, "before": j.before,
                                                       "now": j.now, "percent": j.percent}, (j.key,))
            for j in jumps]


def team_jumps(period: str, members: Mapping[str, MemberData], schemes: Mapping[str, Scheme], percent: int
               ) -> list[Finding]:
    """Values far from the same scheme's other members' values of the same key and period (ratings excepted)."""
    groups: dict[tuple[str, str, str], dict[str, Decimal]] = defaultdict(dict)
    for userid, data in members.items():
        scheme = schemes[userid]
        ratings = {i.key for i in scheme.indicators if isinstance(i.rule, RatingRule)}
        names = key_names(scheme)
        for (key, sub), value in data.values.items():
            if value is not WAIVED and key in names and key not in ratings:
                groups[(scheme.key, key, sub)][userid] = value  # type: ignore[assignment]
    found = []
    for (_, key, sub), values in sorted(groups.items()):
        for outlier in peer_outliers(values, percent=percent):
            scheme = schemes[outlier.member]
            found.append(Finding("jump_team", period, (outlier.member,), {
                "key": key, "name": key_names(scheme).get(key, key), "sub": sub, "value": outlier.value,
                "median": outlier.median, "peers": outlier.peers, "scheme": scheme.name}, (key,)))
    return found


def _all_waived(userid: str, keys: tuple[str, ...], members: Mapping[str, MemberData]) -> bool:
    """Every value of these keys is waived for the member: nothing left for a finding about them to spoil."""
    data = members.get(userid)
    if data is None or not keys:
        return False
    doubted = [value for (key, _), value in data.values.items() if key in keys]
    return bool(doubted) and all(value is WAIVED for value in doubted)


def _unwaived(finding: Finding, members: Mapping[str, MemberData]) -> Finding | None:
    """The finding without the members for whom it doubts only waived values; None when nobody is left."""
    left = tuple(u for u in finding.userids if not _all_waived(u, finding.keys, members))
    if not left:
        return None
    return finding if left == finding.userids else replace(finding, userids=left)


def check(session: Session, period: Period, members: Mapping[str, MemberData], schemes: Mapping[str, Scheme],
          *, today: date, jump_percent: int, jumps: Iterable[Jump] = (), flags: Iterable[Any] | None = None
          ) -> list[Finding]:
    """Every finding about `period` for these members, worst first."""
    text = str(period)
    keys = {u: _wecom_keys(schemes[u]) for u in members}
    wecom_members = sorted(u for u, k in keys.items() if k)
    if flags is None:
        flags = data_quality_flags(session, {u: schemes[u] for u in members}, period, today=today)
    first, last = period_days(period)
    until = min(last, today - timedelta(days=1))
    activity = (read_activity(session, wecom_members, first - timedelta(days=CollapseRule().lookback + 1), until)
                if wecom_members and until >= first else Activity())
    sources = source_findings(text, wecom_members, keys, activity, first, until) if until >= first else []
    quiet = {u for f in sources if f.kind in ("source_outage", "source_collapsed") for u in f.userids}
    found = [*impossible_metrics(text, members, schemes), *sources,
             *flag_findings(flags, keys, activity, first, quiet),
             *team_jumps(text, members, schemes, jump_percent), *jump_findings(text, jumps)]
    return sorted((f for f in (_unwaived(f, members) for f in found) if f is not None), key=Finding.sort_key)


def wecom_findings(session: Session, period: str, userids: Sequence[str],
                   values: Mapping[str, Mapping[str, Decimal]], *, today: date) -> list[Finding]:
    """What the gate finds in the WeCom figures alone (for `kpibot data wecom-metrics`): derived metrics outside
    their bounds and collapsed sources; the DataFlags are shown beside them."""
    found: list[Finding] = []
    for userid in userids:
        for metric, value in sorted(values.get(userid, {}).items()):
            bounds = out_of_bounds(metric, value)
            if bounds is not None:
                found.append(Finding("impossible_metric", period, (userid,), {
                    "key": metric, "name": metric_def(metric).name, "sub": period, "value": value,
                    "unit": metric_def(metric).unit, "low": bounds[0], "high": bounds[1]}, (metric,)))
    first, last = period_days(Period.parse(period))
    until = min(last, today - timedelta(days=1))
    if userids and until >= first:
        activity = read_activity(session, userids, first - timedelta(days=CollapseRule().lookback + 1), until)
        found.extend(source_findings(period, userids, {}, activity, first, until))
    return sorted(found, key=Finding.sort_key)


# -- what people read ------------------------------------------------------------------------------------------
def finding_text(finding: Finding, names: Mapping[str, str], locale: str = "zh_CN") -> str:
    """One finding as one explained sentence (quality/finding.txt.j2)."""
    return render("quality/finding.txt.j2", locale, f=finding, who=[names.get(u, u) for u in finding.userids],
                  spec=kind_spec(finding.kind))
