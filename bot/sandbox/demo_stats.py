"""Sample customer-contact statistics for the demo team: daily figures the fake WeCom serves, before the sandbox's
start and on after it (the fake gives no day before it is over), and one deliberately broken day for the
data-quality gate to find."""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from bot.sandbox.demo_org import DEMO_PEOPLE


@dataclass(frozen=True)
class Profile:
    """How one person's numbers behave day to day (ranges are inclusive, drawn uniformly)."""

    story: str
    customers_at_start: int
    new_contacts: tuple[int, int]
    lost_contacts: tuple[int, int]
    chats: tuple[int, int]
    reply_minutes: tuple[int, int]
    reply_percent: tuple[int, int]
    group_members_at_start: int
    group_joins: tuple[int, int]
    group_quits: tuple[int, int]
    speaking_percent: tuple[int, int]
    groups: int = 6
    # (days before today, new contacts that day, deletions spread over the next week)
    burst: tuple[int, int, int] | None = None


NORMAL = Profile("稳定运营", 600, (1, 2), (0, 1), (10, 18), (6, 18), (88, 98), 450, (2, 6), (0, 2), (12, 22))

PROFILES: dict[str, Profile] = {
    "zhoumin": Profile("总监，客户少量", 300, (1, 3), (0, 1), (4, 8), (10, 25), (85, 95), 200, (1, 3), (0, 1),
                       (12, 20), groups=3),
    "lina": Profile("组长", 420, (2, 4), (0, 1), (8, 14), (8, 20), (88, 96), 320, (1, 4), (0, 1), (12, 22)),
    "wangqiang": Profile("组长", 400, (2, 4), (0, 1), (8, 14), (8, 20), (88, 96), 300, (1, 4), (0, 1), (12, 22)),
    "zhangwei": NORMAL,
    "liuyang": NORMAL,
    "chenjing": Profile("内容运营，群里活跃", 380, (1, 3), (0, 1), (8, 14), (8, 16), (90, 98), 520, (3, 7), (0, 2),
                        (18, 28)),
    # 杨帆: steady, genuine growth — many new contacts, almost nobody deletes him.
    "yangfan": Profile("增长最快：每天 10-16 位新客户，几乎无人删除", 900, (10, 16), (0, 1), (20, 30), (5, 12),
                       (92, 99), 600, (6, 12), (0, 2), (18, 26), groups=8),
    # 赵磊: pulls many people into his groups, who leave again and never speak — zombie groups.
    "zhaolei": Profile("僵尸群：拉人多、退群多、几乎没人说话", 700, (6, 10), (0, 2), (10, 16), (8, 18), (85, 95),
                       1500, (12, 20), (14, 22), (1, 3), groups=12),
    "huangli": NORMAL,
    # 吴昊: answers customers, but slowly and not always.
    "wuhao": Profile("回复慢：平均 1.5-2 小时才回复", 650, (1, 3), (0, 1), (14, 22), (80, 130), (60, 75), 380,
                     (2, 5), (0, 2), (10, 18)),
    # 孙悦: one day of bought follows, most of whom delete her within a week (the data-quality check flags it).
    "sunyue": Profile("某天突击加粉，一周内大量删除", 500, (1, 3), (0, 1), (8, 14), (8, 18), (88, 96), 420, (2, 5),
                      (0, 2), (12, 20), burst=(20, 80, 48)),
}


def _draw(rng: random.Random, bounds: tuple[int, int]) -> int:
    return rng.randint(bounds[0], bounds[1])


# Days of figures generated after the start: a sandbox is played for weeks, at most a few months.
AHEAD_DAYS = 400
# The broken day: one member's group statistics say 0 group members although they own groups (a WeCom glitch),
# mid-month so it spoils no period's start or end: the gate shows it and the month still publishes.
BROKEN_MEMBER = "huangli"
BROKEN_DAY_OF_MONTH = 12


def daily_figures(userid: str, today: date, days: int = 90) -> tuple[dict[date, dict[str, Any]],
                                                                      dict[date, dict[str, int]], int]:
    """One person's behaviour and group figures for the `days` days up to yesterday, and their customers now."""
    behavior, groups, counts = figure_series(userid, today, days)
    yesterday = today - timedelta(days=1)
    return ({d: v for d, v in behavior.items() if d <= yesterday}, {d: v for d, v in groups.items() if d <= yesterday},
            counts.get(yesterday, PROFILES.get(userid, NORMAL).customers_at_start))


def figure_series(userid: str, today: date, days: int = 90, ahead: int = 0
                  ) -> tuple[dict[date, dict[str, Any]], dict[date, dict[str, int]], dict[date, int]]:
    """One person's behaviour and group figures from `days` days before today to `ahead` days after it, and their
    customer count at the end of each of those days. The days after today continue the same story (the same
    draws in the same order), so history is the same whatever `ahead` is."""
    profile = PROFILES.get(userid, NORMAL)
    rng = random.Random(f"kpibot-demo-stats:{userid}")
    first = today - timedelta(days=days)
    behavior: dict[date, dict[str, Any]] = {}
    groups: dict[date, dict[str, int]] = {}
    customers = profile.customers_at_start
    members = profile.group_members_at_start
    burst_day = today - timedelta(days=profile.burst[0]) if profile.burst else None
    burst_deletions: dict[date, int] = {}
    counts: dict[date, int] = {}
    if profile.burst and burst_day is not None:
        left = profile.burst[2]
        for offset in range(1, 7):  # spread over the six days after the burst
            share = left // (7 - offset)
            burst_deletions[burst_day + timedelta(days=offset)] = share
            left -= share
    for offset in range(days + ahead):
        day = first + timedelta(days=offset)
        new = _draw(rng, profile.new_contacts)
        lost = _draw(rng, profile.lost_contacts)
        if day == burst_day and profile.burst:
            new = profile.burst[1]
        lost += burst_deletions.get(day, 0)
        chats = _draw(rng, profile.chats)
        entry: dict[str, Any] = {"chat_cnt": chats, "message_cnt": chats * _draw(rng, (3, 6)),
                                 "negative_feedback_cnt": lost, "new_apply_cnt": new + _draw(rng, (0, 2)),
                                 "new_contact_cnt": new}
        if chats:
            entry["avg_reply_time"] = _draw(rng, profile.reply_minutes)
            entry["reply_percentage"] = float(_draw(rng, profile.reply_percent))
        behavior[day] = entry
        customers = max(0, customers + new - lost)
        counts[day] = customers
        joins, quits = _draw(rng, profile.group_joins), _draw(rng, profile.group_quits)
        members = max(0, members + joins - quits)
        speakers = round(members * _draw(rng, profile.speaking_percent) / 100)
        groups[day] = {"new_chat_cnt": 1 if rng.random() < 0.05 else 0, "chat_total": profile.groups,
                       "chat_has_msg": max(1, round(profile.groups * min(1.0, speakers / 15))),
                       "new_member_cnt": joins, "member_total": members, "member_has_msg": speakers,
                       "msg_total": speakers * _draw(rng, (2, 5))}
    return behavior, groups, counts


def populate(fake: Any, today: date, days: int = 90, ahead: int = 0) -> None:
    """Load the sample team's statistics for the `days` days before `today` (and the `ahead` days from it on)
    into a FakeWeCom (after demo_org). With `ahead`, the customer count follows the fake's clock day by day."""
    for person in DEMO_PEOPLE:
        behavior, groups, counts = figure_series(person.userid, today, days, ahead)
        for day, fields in behavior.items():
            fake.set_behavior_data(person.userid, day, **fields)
        for day, fields in groups.items():
            fake.set_group_statistic(person.userid, day, **fields)
        yesterday = today - timedelta(days=1)
        fake.set_customer_count(person.userid, counts.get(yesterday, PROFILES.get(person.userid,
                                                                                  NORMAL).customers_at_start))
        if ahead:
            fake.set_customer_counts(person.userid, counts)


def broken_day(today: date) -> date:
    """The day of the sandbox's month whose group figures are broken (before or after the start)."""
    return today.replace(day=BROKEN_DAY_OF_MONTH)


def break_one_day(fake: Any, today: date) -> date:
    """One member's group figures of one day say they own groups with nobody in them: the data-quality gate
    reports it (a typed finding in the close's one admin message); the rest of the month is untouched."""
    day = broken_day(today)
    fake.set_group_statistic(BROKEN_MEMBER, day, member_total=0, member_has_msg=0, msg_total=0)
    return day
