"""Pure data-quality rules: bounds of derived metrics, a source that collapsed, a value far from its peers.

No I/O, no clock: day-by-day activity and values in, frozen findings out (bot.appraisal.data_quality stores and explains them).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from statistics import median

from scoring.decimals import ZERO, round2

# Derived metrics whose value cannot lie outside these bounds whatever happened (None: no bound on that side).
# A quit rate over 100% means more people left the groups than were ever in them: the figures are wrong.
METRIC_BOUNDS: dict[str, tuple[Decimal | None, Decimal | None]] = {
    "group_quit_rate": (Decimal(0), Decimal(100)),
    "group_speaking_rate": (Decimal(0), Decimal(100)),
    "reply_rate": (Decimal(0), Decimal(100)),
    "net_follower_growth_rate": (Decimal(-100), None),
    "group_members_lost": (Decimal(0), None),
    "avg_reply_time": (Decimal(0), None),
}


def out_of_bounds(metric: str, value: Decimal) -> tuple[Decimal | None, Decimal | None] | None:
    """The metric's bounds when `value` breaks them, else None (also for a metric without bounds)."""
    bounds = METRIC_BOUNDS.get(metric)
    if bounds is None:
        return None
    low, high = bounds
    if (low is not None and value < low) or (high is not None and value > high):
        return bounds
    return None


@dataclass(frozen=True, slots=True)
class CollapseRule:
    min_days: int = 3  # a run of at least this many silent days...
    lookback: int = 28  # ...after this many days before it...
    min_active_share: Decimal = Decimal("0.5")  # ...on at least this share of which (of those with figures) it was active


@dataclass(frozen=True, slots=True)
class Collapse:
    """A run of days on which a source gave nothing (all zeros, or no figures at all) after a history of figures."""

    first: date
    last: date
    days: int
    active_before: int  # active days in the lookback before `first`


def collapse(active: Mapping[date, bool], days: Sequence[date], rule: CollapseRule = CollapseRule()
             ) -> Collapse | None:
    """The longest silent run among `days` (in order; a day absent from `active` counts as silent), when the
    `rule.lookback` calendar days before it were mostly active; None when there is no such run.

    The caller leaves out days on which silence is normal (holidays, for figures that are flows)."""
    best: tuple[int, int] | None = None
    start: int | None = None
    for index in range(len(days) + 1):
        silent = index < len(days) and not active.get(days[index], False)
        if silent and start is None:
            start = index
        elif not silent and start is not None:
            if best is None or index - start > best[1] - best[0] + 1:
                best = (start, index - 1)
            start = None
    if best is None or best[1] - best[0] + 1 < rule.min_days:
        return None
    first, last = days[best[0]], days[best[1]]
    history = [active[d] for d in (first - timedelta(days=n) for n in range(1, rule.lookback + 1)) if d in active]
    active_days = sum(1 for was in history if was)
    if active_days < rule.min_days or Decimal(active_days) < rule.min_active_share * len(history):
        return None
    return Collapse(first, last, best[1] - best[0] + 1, active_days)


@dataclass(frozen=True, slots=True)
class PeerOutlier:
    member: str
    value: Decimal
    median: Decimal
    peers: int


def peer_outliers(values: Mapping[str, Decimal], *, percent: int, min_peers: int = 4) -> tuple[PeerOutlier, ...]:
    """Values far from their peers' median: more than `percent`% of the median away, and beyond three robust
    standard deviations (1.4826 × the median absolute deviation), so an ordinary spread is never flagged."""
    if len(values) < min_peers:
        return ()
    numbers = sorted(values.values())
    middle = Decimal(str(median(numbers)))
    if middle == ZERO:
        return ()
    spread = Decimal(str(median(sorted(abs(v - middle) for v in numbers)))) * Decimal("1.4826")
    limit = max(abs(middle) * Decimal(percent) / 100, 3 * spread)
    return tuple(PeerOutlier(member, value, round2(middle), len(values)) for member, value in sorted(values.items())
                 if abs(value - middle) > limit)
