"""The range an entered value may take: the scheme's `min`/`max`, else its rule's and unit's natural bounds."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from scoring.scheme import Indicator, Metric, RatingRule

PERCENT_UNITS = frozenset({"%", "％"})
HUNDRED = Decimal(100)
ZERO = Decimal(0)


class BoundKind(StrEnum):
    SCHEME = "scheme"    # the scheme gives min and/or max
    RATING = "rating"    # a 1-5 rating
    PERCENT = "percent"  # a rate in percent points, 0-100
    AMOUNT = "amount"    # a count or an amount, never negative


@dataclass(frozen=True, slots=True)
class Bounds:
    low: Decimal | None
    high: Decimal | None
    kind: BoundKind

    def violation(self, value: Decimal) -> str | None:
        """"below" or "above" when the value lies outside, else None."""
        if self.low is not None and value < self.low:
            return "below"
        if self.high is not None and value > self.high:
            return "above"
        return None


def value_bounds(item: Indicator | Metric) -> Bounds:
    """Scheme bounds win (a growth rate may be negative or above 100%); one side given keeps the unit's other."""
    if isinstance(item, Indicator) and isinstance(item.rule, RatingRule):
        natural = Bounds(Decimal(1), Decimal(5), BoundKind.RATING)
    elif item.unit.strip() in PERCENT_UNITS:
        natural = Bounds(ZERO, HUNDRED, BoundKind.PERCENT)
    else:
        natural = Bounds(ZERO, None, BoundKind.AMOUNT)
    if item.minimum is None and item.maximum is None:
        return natural
    return Bounds(item.minimum if item.minimum is not None else natural.low,
                  item.maximum if item.maximum is not None else natural.high, BoundKind.SCHEME)
