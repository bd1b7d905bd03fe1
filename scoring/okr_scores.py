"""Key-result scores: a KR's 0-1.0 score from its progress, and the average a scheme can use (`source = "okr"`)."""
from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from scoring.decimals import ZERO, round2

ONE = Decimal(1)


def kr_progress(current: Decimal, target: Decimal) -> Decimal:
    """How far a KR got: current / target, between 0 and 1 (a target above 0 is required when the KR is set)."""
    if target <= 0:
        raise ValueError("a key result's target must be above 0")
    return min(ONE, max(ZERO, current / target))


def kr_score(current: Decimal, target: Decimal) -> Decimal:
    """The quarter-end score of a KR: its progress, 0.00-1.00, half-up to 2 places (2 of 3 events → 0.67)."""
    return round2(kr_progress(current, target))


def okr_average(scores: Iterable[Decimal]) -> Decimal | None:
    """The mean of a member's KR scores in a quarter, half-up to 2 places; None without any scored KR."""
    values = list(scores)
    if not values:
        return None
    return round2(sum(values, ZERO) / len(values))
