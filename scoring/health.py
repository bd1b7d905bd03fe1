"""Indicator health for the quarterly review: missing data, share at cap, spread, correlation, flags."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, localcontext
from enum import StrEnum

from scoring.decimals import ZERO, round2, round_to
from scoring.results import DECIMAL_CONTEXT, IndicatorStatus, PeriodResults
from scoring.scheme import Scheme


class HealthFlag(StrEnum):
    DOES_NOT_DIFFERENTIATE = "does_not_differentiate"
    SATURATED = "saturated"
    DATA_GAPS = "data_gaps"


# Suggested action per flag (a stable code; the edge renders the sentence).
SUGGESTED_ACTIONS: dict[HealthFlag, str] = {
    HealthFlag.DOES_NOT_DIFFERENTIATE: "revise_rule_or_drop",
    HealthFlag.SATURATED: "raise_target_or_lower_cap",
    HealthFlag.DATA_GAPS: "fix_data_collection",
}


@dataclass(frozen=True, slots=True)
class HealthThresholds:
    min_spread: Decimal = Decimal(5)          # standard deviation in points under which scores don't separate people
    saturated_share: Decimal = Decimal("0.8")  # share at cap from which the indicator no longer stretches anyone
    max_missing: Decimal = Decimal("0.2")      # missing rate above which the data source needs fixing


@dataclass(frozen=True, slots=True)
class IndicatorHealth:
    """Rates are fractions 0-1 (4 decimals); spread is the population standard deviation in points."""

    key: str
    observations: int
    scored: int
    missing_rate: Decimal
    at_cap_share: Decimal
    mean: Decimal | None
    spread: Decimal | None
    correlation: Decimal | None
    flags: tuple[HealthFlag, ...]
    actions: tuple[str, ...]


def _std(values: list[Decimal], mean: Decimal) -> Decimal:
    return (sum(((value - mean) ** 2 for value in values), ZERO) / len(values)).sqrt()


def _pearson(xs: list[Decimal], ys: list[Decimal]) -> Decimal | None:
    if len(xs) < 2:
        return None
    mean_x = sum(xs, ZERO) / len(xs)
    mean_y = sum(ys, ZERO) / len(ys)
    covariance = sum(((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)), ZERO)
    spread_x = sum(((x - mean_x) ** 2 for x in xs), ZERO)
    spread_y = sum(((y - mean_y) ** 2 for y in ys), ZERO)
    if spread_x == 0 or spread_y == 0:
        return None
    return covariance / (spread_x * spread_y).sqrt()


def indicator_health(scheme: Scheme, periods: Iterable[PeriodResults],
                     thresholds: HealthThresholds = HealthThresholds()) -> tuple[IndicatorHealth, ...]:
    """Pool every member-period of the given results (e.g. a quarter's three months) per indicator.

    Missing rate counts sub-periods without a value among those not waived; waived ones do not count."""
    caps = {indicator.key: indicator.rule.max_score for indicator in scheme.indicators}
    scores: dict[str, list[Decimal]] = {key: [] for key in caps}
    totals: dict[str, list[Decimal]] = {key: [] for key in caps}
    missing: dict[str, int] = dict.fromkeys(caps, 0)
    expected: dict[str, int] = dict.fromkeys(caps, 0)
    for results in periods:
        for result in results.results:
            for item in result.indicators:
                if item.key not in caps:
                    continue
                own_missing = sum(1 for label in item.missing if label.startswith(f"{item.key}@"))
                missing[item.key] += own_missing
                expected[item.key] += own_missing + item.periods_scored
                if item.status is IndicatorStatus.SCORED and item.score is not None:
                    scores[item.key].append(item.score)
                    totals[item.key].append(result.original_total)
    report: list[IndicatorHealth] = []
    with localcontext(DECIMAL_CONTEXT):
        for indicator in scheme.indicators:
            key = indicator.key
            values = scores[key]
            missing_rate = Decimal(missing[key]) / expected[key] if expected[key] else ZERO
            at_cap = Decimal(sum(1 for value in values if value >= caps[key])) / len(values) if values else ZERO
            mean = sum(values, ZERO) / len(values) if values else None
            spread = _std(values, mean) if mean is not None else None
            correlation = _pearson(values, totals[key])
            flags: list[HealthFlag] = []
            if spread is not None and len(values) >= 2 and spread < thresholds.min_spread:
                flags.append(HealthFlag.DOES_NOT_DIFFERENTIATE)
            if values and at_cap >= thresholds.saturated_share:
                flags.append(HealthFlag.SATURATED)
            if missing_rate > thresholds.max_missing:
                flags.append(HealthFlag.DATA_GAPS)
            report.append(IndicatorHealth(
                key=key, observations=expected[key], scored=len(values),
                missing_rate=round_to(missing_rate, 4), at_cap_share=round_to(at_cap, 4),
                mean=round2(mean) if mean is not None else None,
                spread=round2(spread) if spread is not None else None,
                correlation=round_to(correlation, 4) if correlation is not None else None,
                flags=tuple(flags), actions=tuple(SUGGESTED_ACTIONS[flag] for flag in flags),
            ))
    return tuple(report)
