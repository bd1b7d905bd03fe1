"""The WeCom customer-contact sync: per-member daily behaviour figures, group figures by owner and customer counts, stored."""
from __future__ import annotations

import logging
import time as _time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.appraisal.numbers import NumberError, wecom_count, wecom_decimal
from bot.appraisal.people import active_members
from bot.config import Config
from bot.storage.models import Department, WeComBehaviorDay, WeComCustomerCount, WeComGroupDay, WeComStatsGap
from bot.wecom.client import WECOM_ZONE
from bot.wecom.contact_stats import NO_CONTACT_PERMISSION, Fetched, MemberPull, StatsApi, fetch_stats

log = logging.getLogger(__name__)
HUNDRED = Decimal(100)  # reply_percentage is in percent points
HORIZON_DAYS = 180  # WeCom keeps this many days of statistics


class SyncWindowError(ValueError):
    """Days WeCom will not give: in the future, today, more than 180 days back, or first after last."""

    def __init__(self, reason: str, first: date, last: date, earliest: date, latest: date) -> None:
        super().__init__(reason)
        self.reason = reason
        self.first, self.last, self.earliest, self.latest = first, last, earliest, latest


@dataclass(frozen=True)
class SyncReport:
    first: date
    last: date
    members: int
    behavior_rows: int
    group_rows: int
    customer_snapshots: int
    calls: int
    skipped: tuple[str, ...] = ()  # members WeCom does not know or would not give
    failed: tuple[str, ...] = ()  # members whose call failed for another reason
    stopped: str | None = None  # why the run stopped early, if it did
    no_permission: tuple[str, ...] = ()  # skipped members without customer-contact permission (84074)
    not_pulled: tuple[str, ...] = ()  # members a stopped run did not reach (the next run pulls them)
    serial: bool = False  # WeCom asked for less concurrency (45033) and the run went on one call at a time


def wecom_today(now: datetime) -> date:
    return now.astimezone(WECOM_ZONE).date()


def sync_window(today: date) -> tuple[date, date]:
    """The first and last day WeCom gives statistics for: the last 180 days, up to yesterday (today is not final)."""
    return today - timedelta(days=HORIZON_DAYS - 1), today - timedelta(days=1)


def check_window(first: date, last: date, today: date) -> None:
    earliest, latest = sync_window(today)
    if first > last:
        raise SyncWindowError("reversed", first, last, earliest, latest)
    if last > latest:
        raise SyncWindowError("too_late", first, last, earliest, latest)
    if first < earliest:
        raise SyncWindowError("too_early", first, last, earliest, latest)


def members_to_sync(session: Session, config: Config) -> list[str]:
    """Active members, limited to the configured departments' subtrees when [wecom_stats] departments is set."""
    members = active_members(session)
    roots = set(config.wecom_stats.departments)
    if not roots:
        return [member.userid for member in members]
    children: dict[int | None, list[int]] = {}
    for department in session.scalars(select(Department).where(Department.active.is_(True))):
        children.setdefault(department.parent_id, []).append(department.id)
    wanted: set[int] = set()
    stack = list(roots)
    while stack:
        current = stack.pop()
        if current in wanted:
            continue
        wanted.add(current)
        stack.extend(children.get(current, []))
    return [m.userid for m in members if wanted.intersection(m.department_ids or ())]


def _day_of(stat_time: Any) -> date:
    return datetime.fromtimestamp(int(stat_time), WECOM_ZONE).date()


def sync_stats(session: Session, client: Any, userids: Sequence[str], first: date, last: date, *, now: datetime,
               concurrency: int = 4, progress: Callable[[int, int], None] | None = None,
               sleep: Callable[[float], None] = _time.sleep) -> SyncReport:
    """Pull and store the days first..last for these members: one behaviour call per member (per 30 days), the
    group figures by owner one day at a time, and today's customer count as of yesterday when yesterday is pulled.

    Raises StatsNotPermitted on 48002 after one call and SyncWindowError for days WeCom will not give. All
    calls are made before `session` is first used, so the write that follows is short. Stored rows are
    replaced by what WeCom says now."""
    today = wecom_today(now)
    check_window(first, last, today)
    api = StatsApi(client, sleep)
    with_customers = last == today - timedelta(days=1)
    fetched = fetch_stats(api, userids, first, last, with_customers=with_customers, concurrency=concurrency,
                          progress=progress)
    pulls = fetched.pulls
    behavior_rows = _store_behavior(session, [p for p in pulls if p.ok], first, last, now)
    customer_rows = _store_customers(session, [p for p in pulls if p.ok and p.customers is not None], last, now)
    group_rows = _store_groups(session, fetched, first, last, now)
    _store_gaps(session, pulls, first, last, now)
    return SyncReport(first=first, last=last, members=len(userids), behavior_rows=behavior_rows,
                      group_rows=group_rows, customer_snapshots=customer_rows, calls=api.calls,
                      skipped=tuple(p.userid for p in pulls if p.skipped and p.errcode != NO_CONTACT_PERMISSION),
                      failed=tuple(p.userid for p in pulls if p.failed and not p.skipped and not p.again),
                      stopped=fetched.stopped,
                      no_permission=tuple(p.userid for p in pulls if p.errcode == NO_CONTACT_PERMISSION),
                      not_pulled=tuple(p.userid for p in pulls if p.again)
                      + tuple(userids[len(pulls):]), serial=api.serial)


def _store_behavior(session: Session, pulls: list[MemberPull], first: date, last: date, now: datetime) -> int:
    wanted = {pull.userid for pull in pulls}
    existing = {(row.userid, row.day): row for row in session.scalars(
        select(WeComBehaviorDay).where(WeComBehaviorDay.day >= first, WeComBehaviorDay.day <= last))
        if row.userid in wanted}
    stored = 0
    for pull in pulls:
        for item in pull.days:
            day = _day_of(item["stat_time"])
            if not first <= day <= last:
                continue
            try:
                values = dict(
                    chat_cnt=wecom_count(item.get("chat_cnt")), message_cnt=wecom_count(item.get("message_cnt")),
                    reply_percentage=wecom_decimal(item.get("reply_percentage"), high=HUNDRED),
                    avg_reply_time=wecom_decimal(item.get("avg_reply_time")),
                    negative_feedback_cnt=wecom_count(item.get("negative_feedback_cnt")),
                    new_apply_cnt=wecom_count(item.get("new_apply_cnt")),
                    new_contact_cnt=wecom_count(item.get("new_contact_cnt")), fetched_at=now)
            except NumberError as error:
                # A figure no day can have (negative, not finite, absurdly large): the day is left unstored, so
                # the data-quality check sees a gap instead of scoring on it.
                log.warning("wecom stats: %s on %s refused (%s)", pull.userid, day, error.code)
                continue
            row = existing.get((pull.userid, day))
            if row is None:
                row = WeComBehaviorDay(userid=pull.userid, day=day, **values)
                session.add(row)
                existing[(pull.userid, day)] = row
            else:
                for name, value in values.items():
                    setattr(row, name, value)
            stored += 1
    session.flush()
    return stored


def _store_customers(session: Session, pulls: list[MemberPull], as_of: date, now: datetime) -> int:
    existing = {row.userid: row for row in session.scalars(
        select(WeComCustomerCount).where(WeComCustomerCount.as_of == as_of))}
    for pull in pulls:
        row = existing.get(pull.userid)
        if row is None:
            session.add(WeComCustomerCount(userid=pull.userid, as_of=as_of, customers=pull.customers,
                                           fetched_at=now))
        else:
            row.customers, row.fetched_at = pull.customers or 0, now
    session.flush()
    return len(pulls)


GROUP_FIELDS = ("new_chat_cnt", "chat_total", "chat_has_msg", "new_member_cnt", "member_total", "member_has_msg",
                "msg_total")


def _store_groups(session: Session, fetched: Fetched, first: date, last: date, now: datetime) -> int:
    """Group figures one row per owner and day. An owner WeCom leaves out had no customer groups that day:
    stored as zeros, so "no groups" is told apart from "not pulled"."""
    owners = fetched.group_owners
    if not owners or not fetched.group_days:
        return 0
    owner_set = set(owners)
    existing = {(row.owner, row.day): row for row in session.scalars(
        select(WeComGroupDay).where(WeComGroupDay.day >= first, WeComGroupDay.day <= last))
        if row.owner in owner_set}
    stored = 0
    for day in fetched.group_days:
        for owner in owners:
            data = fetched.groups.get((owner, day)) or {}
            try:
                values = {name: wecom_count(data.get(name)) for name in GROUP_FIELDS}
            except NumberError as error:
                log.warning("wecom stats: groups of %s on %s refused (%s)", owner, day, error.code)
                continue
            row = existing.get((owner, day))
            if row is None:
                session.add(WeComGroupDay(owner=owner, day=day, fetched_at=now, **values))
            else:
                for name, value in values.items():
                    setattr(row, name, value)
                row.fetched_at = now
            stored += 1
    session.flush()
    return stored


def _store_gaps(session: Session, pulls: list[MemberPull], first: date, last: date, now: datetime) -> None:
    """Note each day a member could not be pulled for lack of customer-contact permission; a later pull that
    works clears the note."""
    denied = {p.userid for p in pulls if p.errcode == NO_CONTACT_PERMISSION}
    pulled = {p.userid for p in pulls if p.ok}
    existing = {(row.userid, row.day): row for row in session.scalars(
        select(WeComStatsGap).where(WeComStatsGap.day >= first, WeComStatsGap.day <= last))}
    for (userid, _day), row in existing.items():
        if userid in pulled:
            session.delete(row)
    for userid in sorted(denied):
        day = first
        while day <= last:
            row = existing.get((userid, day))
            if row is None:
                session.add(WeComStatsGap(userid=userid, day=day, errcode=NO_CONTACT_PERMISSION, noted_at=now))
            else:
                row.noted_at = now
            day += timedelta(days=1)
    session.flush()

