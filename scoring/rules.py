"""Indicator scores: the `ratio`, `bands` and `rating` rules and guardrail deductions for one value."""
from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from scoring.decimals import HUNDRED, ZERO, round2
from scoring.scheme import BandsRule, Direction, Guardrail, Indicator, RatingRule, RatioRule

_TWENTY = Decimal(20)
_ONE = Decimal(1)
_FIVE = Decimal(5)

COMPARISONS: Mapping[str, Callable[[Decimal, Decimal], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}


class Unscorable(StrEnum):
    """Why a present value yields no score; the result lists it as missing."""

    NO_TARGET = "no_target"          # ratio rule without a positive target
    INVALID_RATING = "invalid_rating"  # rating rule given something other than a whole 1-5


@dataclass(frozen=True, slots=True)
class Deduction:
    """A guardrail that bit: `metric` (value `actual`) crossed `op threshold` in `period`."""

    metric: str
    op: str
    threshold: Decimal
    actual: Decimal
    points: Decimal
    period: str


@dataclass(frozen=True, slots=True)
class IndicatorScore:
    """One value scored: the rounded score (None when unscorable), what was deducted and what was missing."""

    score: Decimal | None
    raw_score: Decimal | None
    deductions: tuple[Deduction, ...] = ()
    missing_metrics: tuple[str, ...] = ()
    unscorable: Unscorable | None = None


RuleFunction = Callable[[Decimal, "Decimal | None"], "Decimal | Unscorable"]


def ratio_score(actual: Decimal, target: Decimal | None, direction: Direction, cap: Decimal) -> Decimal | Unscorable:
    """100 × achievement, capped at `cap`, floored at 0. A `lower` actual of 0 or less is as good as it gets."""
    if target is None or target <= 0:
        return Unscorable.NO_TARGET
    if direction == Direction.HIGHER:
        score = actual * HUNDRED / target
    elif actual <= 0:
        return cap
    else:
        score = target * HUNDRED / actual
    if score > cap:
        return cap
    if score < 0:
        return ZERO
    return score


def bands_score(actual: Decimal, points: tuple[tuple[Decimal, Decimal], ...]) -> Decimal:
    """Linear interpolation between the points (sorted by value), flat beyond the first and the last."""
    first_x, first_y = points[0]
    if actual <= first_x:
        return first_y
    previous_x, previous_y = first_x, first_y
    for x, y in points[1:]:
        if actual <= x:
            return previous_y + (y - previous_y) * (actual - previous_x) / (x - previous_x)
        previous_x, previous_y = x, y
    return previous_y


def rating_score(actual: Decimal) -> Decimal | Unscorable:
    """A whole rating 1-5 scores rating × 20; anything else cannot be scored."""
    if actual != actual.to_integral_value() or not _ONE <= actual <= _FIVE:
        return Unscorable.INVALID_RATING
    return actual * _TWENTY


def rule_function(indicator: Indicator) -> RuleFunction:
    """The indicator's rule as a function (actual, target) → raw score, built once per indicator."""
    rule = indicator.rule
    if isinstance(rule, RatioRule):
        direction, cap = indicator.direction, rule.cap
        return lambda actual, target: ratio_score(actual, target, direction, cap)
    if isinstance(rule, BandsRule):
        points = rule.points
        return lambda actual, target: bands_score(actual, points)
    if isinstance(rule, RatingRule):
        return lambda actual, target: rating_score(actual)
    raise TypeError(f"unknown rule {rule!r}")  # pragma: no cover - Rule is a closed union


def guardrail_bites(guardrail: Guardrail, metric_value: Decimal) -> bool:
    return COMPARISONS[guardrail.op](metric_value, guardrail.threshold)


def score_value(
    indicator: Indicator,
    actual: Decimal,
    target: Decimal | None = None,
    metrics: Mapping[str, Decimal] | None = None,
    period: str = "",
) -> IndicatorScore:
    """Score one actual of one indicator in one period, guardrails included.

    `target` falls back to the indicator's default target. `metrics` holds the companion metrics of the
    same period; a guardrail whose metric is absent deducts nothing and is reported in `missing_metrics`."""
    raw = rule_function(indicator)(actual, target if target is not None else indicator.target)
    if isinstance(raw, Unscorable):
        return IndicatorScore(None, None, unscorable=raw)
    metrics = metrics or {}
    deductions: list[Deduction] = []
    missing: list[str] = []
    score = raw
    for guardrail in indicator.guardrails:
        value = metrics.get(guardrail.metric)
        if value is None:
            if guardrail.metric not in missing:
                missing.append(guardrail.metric)
        elif guardrail_bites(guardrail, value):
            deductions.append(Deduction(guardrail.metric, guardrail.op, guardrail.threshold, value,
                                        guardrail.deduct, period))
            score -= guardrail.deduct
    return IndicatorScore(round2(max(score, ZERO)), raw, tuple(deductions), tuple(missing))
