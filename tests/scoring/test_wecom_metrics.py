"""Derived WeCom metrics and KR scores against values worked out by hand."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from scoring.okr_scores import kr_progress, kr_score, okr_average
from scoring.wecom_metrics import (
    METRIC_KEYS,
    METRICS,
    BehaviorDay,
    BurstRule,
    CustomerSnapshot,
    GroupDay,
    contact_bursts,
    customers_at_end_of,
    metric_def,
    missing_days,
    period_metrics,
    pick_snapshot,
)

D = Decimal
OCT31, NOV1, NOV2, NOV3 = date(2026, 10, 31), date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)

BEHAVIOR = [
    BehaviorDay(OCT31, chat_cnt=5, message_cnt=20, reply_percentage=D(90), avg_reply_time=D(12),
                negative_feedback_cnt=1, new_contact_cnt=4),
    BehaviorDay(NOV1, chat_cnt=10, message_cnt=40, reply_percentage=D(80), avg_reply_time=D(30),
                negative_feedback_cnt=2, new_contact_cnt=12),
    BehaviorDay(NOV2, chat_cnt=0, message_cnt=0, negative_feedback_cnt=0, new_contact_cnt=5),  # no chats: no averages
    BehaviorDay(NOV3, chat_cnt=30, message_cnt=90, reply_percentage=D(100), avg_reply_time=D(10),
                negative_feedback_cnt=3, new_contact_cnt=6),
]
GROUPS = [
    GroupDay(OCT31, member_total=400),
    GroupDay(NOV1, new_member_cnt=10, member_total=405, member_has_msg=40, msg_total=120),
    GroupDay(NOV2, new_member_cnt=5, member_total=398, member_has_msg=20, msg_total=50),
    GroupDay(NOV3, new_member_cnt=5, member_total=390, member_has_msg=39, msg_total=100),
]


def test_three_days_worked_out_by_hand() -> None:
    values = period_metrics(NOV1, NOV3, BEHAVIOR, GROUPS, CustomerSnapshot(OCT31, 200))
    assert values == {
        "new_contacts": D(23),                   # 12 + 5 + 6
        "lost_contacts": D(5),                   # 2 + 0 + 3
        "net_follower_growth": D(18),            # 23 − 5
        "customers_at_start": D(200),            # the snapshot of Oct 31, the day before
        "net_follower_growth_rate": D("9.00"),   # 100 × 18 / 200
        "chats": D(40),
        "messages_sent": D(130),
        "avg_reply_time": D("15.00"),            # (30×10 + 10×30) / 40; Nov 2 had no chats and does not count
        "reply_rate": D("95.00"),                # (80×10 + 100×30) / 40
        "group_new_members": D(20),
        "group_messages": D(270),
        "group_speaking_rate": D("8.30"),        # 100 × (40+20+39) / (405+398+390) = 8.298…
        "group_members_at_start": D(400),        # member_total of Oct 31
        "group_members_lost": D(30),             # 400 + 20 − 390
        "group_quit_rate": D("7.50"),            # 100 × 30 / 400
    }


def test_customers_at_the_start_are_moved_from_a_later_or_an_earlier_snapshot() -> None:
    by_day = {day.day: day for day in BEHAVIOR}
    # 218 at the end of Nov 3, less the net growth of Nov 1-3 (10 + 5 + 3)
    assert customers_at_end_of(OCT31, CustomerSnapshot(NOV3, 218), by_day) == 200
    # 197 at the end of Oct 30, plus Oct 31's net growth (4 − 1)
    assert customers_at_end_of(OCT31, CustomerSnapshot(date(2026, 10, 30), 197), by_day) == 200
    # a day in between without figures: it cannot be reconstructed, so it is not guessed
    del by_day[NOV2]
    assert customers_at_end_of(OCT31, CustomerSnapshot(NOV3, 218), by_day) is None
    assert customers_at_end_of(OCT31, None, by_day) is None
    values = period_metrics(NOV1, NOV3, BEHAVIOR, GROUPS, CustomerSnapshot(NOV3, 218))
    assert values["net_follower_growth_rate"] == D("9.00")


def test_the_nearest_snapshot_is_used_and_the_later_one_on_a_tie() -> None:
    early, late, far = (CustomerSnapshot(date(2026, 10, 29), 1), CustomerSnapshot(NOV2, 2),
                        CustomerSnapshot(date(2026, 11, 20), 3))
    assert pick_snapshot([early, late, far], OCT31) == late
    assert pick_snapshot([far, early], OCT31) == early
    assert pick_snapshot([CustomerSnapshot(OCT31, 9), late], OCT31) == CustomerSnapshot(OCT31, 9)
    assert pick_snapshot([], OCT31) is None


def test_undefined_metrics_are_left_out_not_zero() -> None:
    quiet = [BehaviorDay(NOV1, new_contact_cnt=2)]
    values = period_metrics(NOV1, NOV1, quiet, [GroupDay(OCT31, member_total=0), GroupDay(NOV1)], None)
    # no chats: no reply figures; no snapshot: no growth rate; no members: no group rates
    for key in ("avg_reply_time", "reply_rate", "net_follower_growth_rate", "customers_at_start",
                "group_speaking_rate", "group_quit_rate"):
        assert key not in values
    assert values["net_follower_growth"] == D(2)
    assert period_metrics(NOV1, NOV3, [], [], None) == {}


def test_without_the_day_before_the_first_day_stands_in_for_the_start() -> None:
    values = period_metrics(NOV1, NOV3, [], GROUPS[1:], None)
    # 405 − 10 newcomers of Nov 1 = 395 at the start; lost = 395 + 20 − 390 = 25; 100 × 25 / 395 = 6.329…
    assert values["group_members_at_start"] == D(395)
    assert values["group_quit_rate"] == D("6.33")


def test_a_burst_of_new_contacts_then_deletions_is_flagged() -> None:
    start = date(2026, 10, 1)
    days = [BehaviorDay(start + timedelta(days=i), new_contact_cnt=3) for i in range(14)]
    days[4] = BehaviorDay(days[4].day, new_contact_cnt=40)  # Oct 5: 40 in a day; the usual day is 3
    for i in range(5, 10):  # Oct 6-10: 5 deletions a day = 25 ≥ half of 40
        days[i] = BehaviorDay(days[i].day, new_contact_cnt=3, negative_feedback_cnt=5)
    (burst,) = contact_bursts(days)
    assert (burst.day, burst.new_contacts, burst.baseline, burst.deletions_after) == (date(2026, 10, 5), 40, D(3), 25)
    # the same burst with few deletions afterwards is just a good day
    honest = [BehaviorDay(d.day, new_contact_cnt=d.new_contact_cnt) for d in days]
    assert contact_bursts(honest) == ()
    # a steady strong grower is never a burst: 15 a day is his usual day
    assert contact_bursts([BehaviorDay(start + timedelta(days=i), new_contact_cnt=15, negative_feedback_cnt=8)
                           for i in range(30)]) == ()
    assert contact_bursts(days, BurstRule(min_new=50)) == ()


def test_missing_days_are_the_sync_gaps() -> None:
    assert missing_days(NOV1, NOV3, [NOV1, NOV3]) == (NOV2,)
    assert missing_days(NOV1, NOV3, [NOV1, NOV2, NOV3]) == ()


def test_every_metric_is_documented_with_a_formula() -> None:
    assert len(METRIC_KEYS) == len(METRICS)
    assert {"net_follower_growth_rate", "avg_reply_time", "reply_rate", "group_speaking_rate", "group_quit_rate",
            "messages_sent"} <= METRIC_KEYS
    assert metric_def("avg_reply_time").direction == "lower"
    with pytest.raises(KeyError):
        metric_def("nope")
    assert all(metric.formula and metric.name and metric.direction in ("higher", "lower") for metric in METRICS)


@pytest.mark.parametrize(("current", "target", "score"), [
    (D(1), D(2), D("0.50")), (D(2), D(3), D("0.67")), (D(5), D(2), D("1.00")), (D(0), D(2), D("0.00")),
    (D("12.5"), D(15), D("0.83")),
])
def test_a_kr_scores_its_progress_from_0_to_1(current: Decimal, target: Decimal, score: Decimal) -> None:
    assert kr_score(current, target) == score


def test_kr_progress_needs_a_target_and_averages_round_half_up() -> None:
    with pytest.raises(ValueError):
        kr_progress(D(1), D(0))
    assert okr_average([D("0.50"), D("0.67"), D("1.00")]) == D("0.72")  # 2.17 / 3 = 0.7233…
    assert okr_average([D("0.50"), D("0.75")]) == D("0.63")  # 0.625 → 0.63, half-up
    assert okr_average([]) is None
