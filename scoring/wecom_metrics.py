"""Derived customer-contact metrics: WeCom's daily statistics turned into a period's figures, and suspicious patterns.

Pure: frozen dataclasses in, Decimal out (half-up, 2 places), no I/O, no clock. Every formula is in
docs/data-sources.md; `METRICS` lists the keys a scheme can name as `source = "wecom.<key>"`.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from statistics import median

from scoring.decimals import HUNDRED, ZERO, round2

ONE_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class BehaviorDay:
    """One member's figures for one day (externalcontact/get_user_behavior_data); the two averages are
    None on days without chats, as WeCom leaves them out then."""

    day: date
    chat_cnt: int = 0
    message_cnt: int = 0
    reply_percentage: Decimal | None = None
    avg_reply_time: Decimal | None = None  # minutes
    negative_feedback_cnt: int = 0  # customers who deleted or blocked the member
    new_apply_cnt: int = 0
    new_contact_cnt: int = 0


@dataclass(frozen=True, slots=True)
class GroupDay:
    """One owner's customer groups on one day (externalcontact/groupchat/statistic, by owner)."""

    day: date
    new_chat_cnt: int = 0
    chat_total: int = 0
    chat_has_msg: int = 0
    new_member_cnt: int = 0
    member_total: int = 0  # group members at the end of the day
    member_has_msg: int = 0  # group members who spoke that day
    msg_total: int = 0


@dataclass(frozen=True, slots=True)
class CustomerSnapshot:
    """How many customers (external contacts) a member had at the end of `as_of` (externalcontact/list)."""

    as_of: date
    customers: int


@dataclass(frozen=True, slots=True)
class MetricDef:
    key: str
    name: str
    unit: str
    direction: str  # "higher" | "lower": which way is better, for a scheme's indicator
    formula: str


METRICS: tuple[MetricDef, ...] = (
    MetricDef("net_follower_growth_rate", "粉丝净增长率", "%", "higher",
              "100 × net_follower_growth / customers_at_start"),
    MetricDef("net_follower_growth", "粉丝净增长", "人", "higher", "Σ new_contact_cnt − Σ negative_feedback_cnt"),
    MetricDef("customers_at_start", "期初客户数", "人", "higher",
              "customers at the end of the day before the period (externalcontact/list snapshot, moved by the "
              "daily net growth between the snapshot and that day)"),
    MetricDef("new_contacts", "新增客户数", "人", "higher", "Σ new_contact_cnt"),
    MetricDef("lost_contacts", "删除/拉黑成员的客户数", "人", "lower", "Σ negative_feedback_cnt"),
    MetricDef("avg_reply_time", "平均首次回复时长", "分钟", "lower",
              "Σ (avg_reply_time × chat_cnt) / Σ chat_cnt over the days with chats"),
    MetricDef("reply_rate", "回复率", "%", "higher",
              "Σ (reply_percentage × chat_cnt) / Σ chat_cnt over the days with chats"),
    MetricDef("chats", "聊天数", "个", "higher", "Σ chat_cnt"),
    MetricDef("messages_sent", "发送消息数", "条", "higher", "Σ message_cnt"),
    MetricDef("group_speaking_rate", "客户群发言率", "%", "higher",
              "100 × Σ member_has_msg / Σ member_total over the days"),
    MetricDef("group_quit_rate", "客户群退群率", "%", "lower",
              "100 × group_members_lost / group_members_at_start"),
    MetricDef("group_members_at_start", "期初群成员数", "人", "higher",
              "member_total at the end of the day before the period"),
    MetricDef("group_members_lost", "流失群成员数", "人", "lower",
              "max(0, group_members_at_start + Σ new_member_cnt − member_total on the last day)"),
    MetricDef("group_new_members", "新增群成员数", "人", "higher", "Σ new_member_cnt"),
    MetricDef("group_messages", "客户群消息数", "条", "higher", "Σ msg_total"),
)
METRIC_KEYS: frozenset[str] = frozenset(metric.key for metric in METRICS)


def metric_def(key: str) -> MetricDef:
    for metric in METRICS:
        if metric.key == key:
            return metric
    raise KeyError(key)


def _days(first: date, last: date) -> Iterable[date]:
    day = first
    while day <= last:
        yield day
        day += ONE_DAY


def _net(day: BehaviorDay) -> int:
    return day.new_contact_cnt - day.negative_feedback_cnt


def pick_snapshot(candidates: Iterable[CustomerSnapshot], boundary: date) -> CustomerSnapshot | None:
    """The snapshot to count customers at the end of `boundary` from: the one of that day, else the nearest
    (the later one on a tie, since today's count is the one WeCom gives most reliably)."""
    best: CustomerSnapshot | None = None
    for snapshot in candidates:
        if best is None:
            best = snapshot
            continue
        distance, best_distance = abs((snapshot.as_of - boundary).days), abs((best.as_of - boundary).days)
        if distance < best_distance or (distance == best_distance and snapshot.as_of > best.as_of):
            best = snapshot
    return best


def customers_at_end_of(boundary: date, snapshot: CustomerSnapshot | None,
                        behavior: Mapping[date, BehaviorDay]) -> int | None:
    """Customers at the end of `boundary`, from a snapshot of another day moved by the daily net growth in
    between. None without a snapshot or when a day in between has no figures (it cannot be reconstructed)."""
    if snapshot is None:
        return None
    if snapshot.as_of == boundary:
        return snapshot.customers
    if snapshot.as_of > boundary:
        between, sign = list(_days(boundary + ONE_DAY, snapshot.as_of)), -1
    else:
        between, sign = list(_days(snapshot.as_of + ONE_DAY, boundary)), 1
    if any(day not in behavior for day in between):
        return None
    return max(0, snapshot.customers + sign * sum(_net(behavior[day]) for day in between))


def _weighted(days: Sequence[BehaviorDay], field: str) -> Decimal | None:
    weight = ZERO
    total = ZERO
    for day in days:
        value = getattr(day, field)
        if day.chat_cnt > 0 and value is not None:
            total += value * day.chat_cnt
            weight += day.chat_cnt
    return round2(total / weight) if weight > 0 else None


def _rate(numerator: Decimal | int, denominator: Decimal | int) -> Decimal | None:
    return round2(HUNDRED * Decimal(numerator) / Decimal(denominator)) if denominator > 0 else None


def period_metrics(first: date, last: date, behavior: Iterable[BehaviorDay], groups: Iterable[GroupDay],
                   snapshot: CustomerSnapshot | None = None) -> dict[str, Decimal]:
    """One member's metrics for the days first..last (both included), by key; a metric whose formula has no
    defined value (no chats, no customers or group members at the start) is left out.

    `behavior` may hold days outside the period: they serve to move a customer snapshot to the period's start.
    `groups` should include the day before the period (its member_total is the start)."""
    by_day = {day.day: day for day in behavior}
    group_by_day = {day.day: day for day in groups}
    inside = [by_day[day] for day in _days(first, last) if day in by_day]
    group_inside = [group_by_day[day] for day in _days(first, last) if day in group_by_day]
    values: dict[str, Decimal] = {}

    if inside:
        new = sum(day.new_contact_cnt for day in inside)
        lost = sum(day.negative_feedback_cnt for day in inside)
        values["new_contacts"] = Decimal(new)
        values["lost_contacts"] = Decimal(lost)
        values["net_follower_growth"] = Decimal(new - lost)
        values["chats"] = Decimal(sum(day.chat_cnt for day in inside))
        values["messages_sent"] = Decimal(sum(day.message_cnt for day in inside))
        for key, field in (("avg_reply_time", "avg_reply_time"), ("reply_rate", "reply_percentage")):
            weighted = _weighted(inside, field)
            if weighted is not None:
                values[key] = weighted
        start = customers_at_end_of(first - ONE_DAY, snapshot, by_day)
        if start is not None:
            values["customers_at_start"] = Decimal(start)
            rate = _rate(new - lost, start)
            if rate is not None:
                values["net_follower_growth_rate"] = rate

    if group_inside:
        values["group_new_members"] = Decimal(sum(day.new_member_cnt for day in group_inside))
        values["group_messages"] = Decimal(sum(day.msg_total for day in group_inside))
        speaking = _rate(sum(day.member_has_msg for day in group_inside), sum(day.member_total for day in group_inside))
        if speaking is not None:
            values["group_speaking_rate"] = speaking
        before = group_by_day.get(first - ONE_DAY)
        first_day = group_inside[0]
        # Without the day before, the first day's total less its newcomers stands in (it misses that day's quits).
        at_start = before.member_total if before is not None else first_day.member_total - first_day.new_member_cnt
        lost_members = max(0, at_start + sum(day.new_member_cnt for day in group_inside) - group_inside[-1].member_total)
        values["group_members_at_start"] = Decimal(max(at_start, 0))
        values["group_members_lost"] = Decimal(lost_members)
        quit_rate = _rate(lost_members, at_start)
        if quit_rate is not None:
            values["group_quit_rate"] = quit_rate
    return values


def missing_days(first: date, last: date, present: Iterable[date]) -> tuple[date, ...]:
    """The days of first..last without figures (a sync gap the data-quality check should show)."""
    have = set(present)
    return tuple(day for day in _days(first, last) if day not in have)


# --- suspicious patterns ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContactBurst:
    """A day of unusually many new contacts followed by many of the member's customers deleting or blocking
    them: the signature of bought or forced follows (the scheme: growth by low-quality traffic loses points)."""

    day: date
    new_contacts: int
    baseline: Decimal  # the member's median daily new contacts on the other days looked at
    deletions_after: int  # negative feedback on the burst day and the `window` days after it
    window: int


@dataclass(frozen=True, slots=True)
class BurstRule:
    min_new: int = 20  # a burst has at least this many new contacts in a day...
    factor: Decimal = Decimal(3)  # ...and at least this many times the member's usual day
    window: int = 7  # deletions counted on the burst day and this many days after it
    deletion_share: Decimal = Decimal("0.5")  # flagged when deletions reach this share of the burst


def contact_bursts(behavior: Iterable[BehaviorDay], rule: BurstRule = BurstRule()) -> tuple[ContactBurst, ...]:
    """Every burst-then-deletions day in the series, in date order."""
    days = sorted(behavior, key=lambda item: item.day)
    by_day = {item.day: item for item in days}
    found: list[ContactBurst] = []
    for item in days:
        if item.new_contact_cnt < rule.min_new:
            continue
        others = [other.new_contact_cnt for other in days if other.day != item.day]
        baseline = Decimal(str(median(others))) if others else ZERO
        if item.new_contact_cnt < rule.factor * baseline:
            continue
        deletions = sum(by_day[day].negative_feedback_cnt
                        for day in _days(item.day, item.day + timedelta(days=rule.window)) if day in by_day)
        if deletions >= rule.deletion_share * item.new_contact_cnt:
            found.append(ContactBurst(item.day, item.new_contact_cnt, baseline, deletions, rule.window))
    return tuple(found)
