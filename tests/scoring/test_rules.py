"""Indicator scores by hand: ratio, bands, rating and guardrails, each with its arithmetic written out."""
from __future__ import annotations

from decimal import Decimal

import pytest

from scoring import Guardrail, RatioRule, Unscorable, score_value
from scoring.rules import bands_score, ratio_score, rating_score
from scoring_builders import RATING, D, bands, indicator


def test_ratio_higher_is_actual_over_target() -> None:
    # 4.6 / 5 = 0.92 → 92.00
    assert score_value(indicator("g", 10, target=5), D("4.6")).score == D("92.00")
    # 7 / 3 = 2.333… → 233.33 → capped at the default 120
    assert score_value(indicator("g", 10, target=3), D(7)).score == D("120.00")
    # 2 / 3 = 0.6666… → 66.666… → half-up 66.67
    assert score_value(indicator("g", 10, target=3), D(2)).score == D("66.67")


def test_ratio_lower_is_target_over_actual_and_zero_actual_scores_the_cap() -> None:
    low = indicator("t", 10, target=30, direction="lower", rule=RatioRule(D(110)))
    # 30 / 40 = 0.75 → 75.00
    assert score_value(low, D(40)).score == D("75.00")
    # 30 / 20 = 1.5 → 150 → cap 110
    assert score_value(low, D(20)).score == D("110.00")
    # an actual of 0 (instant answers) cannot be divided by: it is as good as it gets → the cap
    assert score_value(low, D(0)).score == D("110.00")


def test_ratio_floor_is_zero_and_target_comes_from_data_before_default() -> None:
    growth = indicator("g", 10, target=5)
    # -1 / 5 = -0.2 → -20 → floor 0
    assert score_value(growth, D(-1)).score == D("0.00")
    # the member's own target 8 beats the default 5: 6 / 8 = 75.00
    assert score_value(growth, D(6), target=D(8)).score == D("75.00")


@pytest.mark.parametrize("target", [None, "0", "-5"])
def test_ratio_without_a_positive_target_cannot_be_scored(target) -> None:
    result = score_value(indicator("g", 10), D(6), target=D(target) if target else None)
    assert result.score is None and result.unscorable is Unscorable.NO_TARGET


def test_bands_interpolate_linearly_and_stay_flat_outside() -> None:
    rule = bands((5, 100), (15, 90), (30, 75), (60, 50), (120, 0))
    minutes = indicator("r", 10, direction="lower", rule=rule)
    assert score_value(minutes, D(2)).score == D("100.00")      # below the first point: flat 100
    assert score_value(minutes, D(5)).score == D("100.00")      # on a point
    assert score_value(minutes, D(10)).score == D("95.00")      # 100 + (90 − 100) × (10 − 5)/(15 − 5) = 95
    assert score_value(minutes, D(40)).score == D("66.67")      # 75 + (50 − 75) × 10/30 = 66.666… → 66.67
    assert score_value(minutes, D(90)).score == D("25.00")      # 50 + (0 − 50) × 30/60 = 25
    assert score_value(minutes, D(500)).score == D("0.00")      # beyond the last point: flat 0
    assert bands_score(D("3.7"), rule.points) == D(100)


def test_rating_scores_rating_times_twenty_whole_ratings_only() -> None:
    culture = indicator("c", 10, dimension="behavior", rule=RATING)
    assert [score_value(culture, D(r)).score for r in (1, 3, 5)] == [D("20.00"), D("60.00"), D("100.00")]
    assert score_value(culture, D("4.0")).score == D("80.00")  # 4.0 is a whole rating
    for bad in ("3.5", "0", "6", "-1"):
        assert score_value(culture, D(bad)).unscorable is Unscorable.INVALID_RATING
    assert rating_score(D("2.5")) is Unscorable.INVALID_RATING


GROWTH = indicator("net_follower_growth_rate", 15, target=5, guardrails=(
    Guardrail("group_quit_rate", ">", D(15), D(20)),
    Guardrail("group_speaking_rate", "<", D(10), D(20)),
))


def test_guardrail_deducts_when_the_quit_rate_exceeds_15() -> None:
    # 5.5 / 5 = 110; quit rate 18.5 > 15 → −20 → 90.00; speaking 25 ≥ 10 → nothing
    result = score_value(GROWTH, D("5.5"), metrics={"group_quit_rate": D("18.5"), "group_speaking_rate": D(25)},
                         period="2026-11")
    assert result.score == D("90.00") and result.raw_score == D(110)
    assert [(d.metric, d.points, d.actual, d.period) for d in result.deductions] == [
        ("group_quit_rate", D(20), D("18.5"), "2026-11")]


def test_both_guardrails_stack_and_the_score_never_goes_below_zero() -> None:
    # 1.5 / 5 = 30; −20 (quit 16 > 15) −20 (speaking 9.9 < 10) = −10 → floor 0.00
    result = score_value(GROWTH, D("1.5"), metrics={"group_quit_rate": D(16), "group_speaking_rate": D("9.9")})
    assert result.score == D("0.00") and len(result.deductions) == 2


def test_guardrail_thresholds_are_strict_or_inclusive_as_written() -> None:
    # exactly 15 is not "> 15", exactly 10 is not "< 10": no deduction, 5/5 = 100
    at_threshold = score_value(GROWTH, D(5), metrics={"group_quit_rate": D(15), "group_speaking_rate": D(10)})
    assert at_threshold.score == D("100.00") and at_threshold.deductions == ()
    inclusive = indicator("x", 10, target=5, guardrails=(
        Guardrail("m", ">=", D(15), D(10)), Guardrail("n", "<=", D(4), D(5))))
    # 5/5 = 100 − 10 (15 ≥ 15) − 5 (4 ≤ 4) = 85
    assert score_value(inclusive, D(5), metrics={"m": D(15), "n": D(4)}).score == D("85.00")


def test_conversions_guardrails_complaints_and_satisfaction() -> None:
    conversions = indicator("new_customer_conversions", 10, target=20, guardrails=(
        Guardrail("complaint_count", ">", D(2), D(20)), Guardrail("satisfaction_score", "<", D("4.0"), D(20))))
    # 24 / 20 = 120 (cap) − 20 (3 complaints > 2) − 20 (3.8 < 4.0) = 80
    hit = score_value(conversions, D(24), metrics={"complaint_count": D(3), "satisfaction_score": D("3.8")})
    assert hit.score == D("80.00")
    clean = score_value(conversions, D(24), metrics={"complaint_count": D(2), "satisfaction_score": D("4.0")})
    assert clean.score == D("120.00")


def test_a_missing_companion_metric_deducts_nothing_but_is_reported() -> None:
    # 4 / 5 = 80; quit rate unknown → listed; speaking 30 → fine
    result = score_value(GROWTH, D(4), metrics={"group_speaking_rate": D(30)})
    assert result.score == D("80.00") and result.missing_metrics == ("group_quit_rate",)


def test_ratio_score_function_directly() -> None:
    assert ratio_score(D(3), D(4), "higher", D(120)) == D(75)  # type: ignore[arg-type]
    assert ratio_score(D(3), None, "higher", D(120)) is Unscorable.NO_TARGET  # type: ignore[arg-type]
    assert isinstance(ratio_score(D(1), D(3), "higher", D(120)), Decimal)  # type: ignore[arg-type]
