"""The pure data-quality rules: bounds of derived metrics, a collapsed source, a value far from its peers."""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal as D

from scoring.quality import CollapseRule, collapse, out_of_bounds, peer_outliers

FIRST = date(2026, 12, 1)


def days(first: date, count: int) -> list[date]:
    return [first + timedelta(days=n) for n in range(count)]


def test_a_quit_rate_over_100_percent_is_impossible_and_a_negative_growth_rate_is_not() -> None:
    assert out_of_bounds("group_quit_rate", D("100.34")) == (D(0), D(100))
    assert out_of_bounds("group_quit_rate", D("100")) is None
    assert out_of_bounds("reply_rate", D("-1")) == (D(0), D(100))
    assert out_of_bounds("net_follower_growth_rate", D("-12.5")) is None
    assert out_of_bounds("net_follower_growth_rate", D("-100.01")) is not None
    assert out_of_bounds("new_contacts", D("-5")) is None  # not a derived rate with bounds here


def test_zeros_from_the_start_of_a_month_after_a_busy_history_are_a_collapse() -> None:
    active = {day: True for day in days(FIRST - timedelta(days=28), 29)}  # busy up to 1 December
    active.update({day: False for day in days(date(2026, 12, 2), 30)})  # then all zeros
    found = collapse(active, days(FIRST, 31))
    assert found is not None
    assert (found.first, found.last, found.days) == (date(2026, 12, 2), date(2026, 12, 31), 30)
    assert found.active_before == 28


def test_days_without_figures_after_a_busy_history_count_as_silent() -> None:
    active = {day: True for day in days(FIRST - timedelta(days=28), 28)}
    found = collapse(active, days(FIRST, 5))  # no rows at all in December
    assert found is not None and found.days == 5


def test_a_short_pause_or_a_member_who_was_never_active_is_no_collapse() -> None:
    busy = {day: True for day in days(FIRST - timedelta(days=28), 28 + 31)}
    busy[date(2026, 12, 5)] = busy[date(2026, 12, 6)] = False  # a quiet weekend
    assert collapse(busy, days(FIRST, 31)) is None
    never = {day: False for day in days(FIRST - timedelta(days=28), 28 + 31)}
    assert collapse(never, days(FIRST, 31)) is None
    mostly_idle = {day: index % 5 == 0 for index, day in enumerate(days(FIRST - timedelta(days=28), 28))}
    mostly_idle.update({day: False for day in days(FIRST, 31)})
    assert collapse(mostly_idle, days(FIRST, 31), CollapseRule(min_days=3)) is None  # 6 of 28 days: no history


def test_a_value_far_from_its_peers_is_flagged_and_an_ordinary_spread_is_not() -> None:
    values = {"a": D(10), "b": D(12), "c": D(11), "d": D(13), "e": D(9), "f": D(110)}
    [outlier] = peer_outliers(values, percent=50)
    assert (outlier.member, outlier.value, outlier.median, outlier.peers) == ("f", D(110), D("11.50"), 6)
    assert peer_outliers({"a": D(10), "b": D(14), "c": D(12), "d": D(16)}, percent=50) == ()
    assert peer_outliers({"a": D(10), "b": D(100)}, percent=50) == ()  # too few peers to say
