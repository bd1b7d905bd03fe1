"""The appraisal scheme as data: frozen dataclasses for indicators, rules, grades and result rules."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum


class Dimension(StrEnum):
    PERFORMANCE = "performance"
    BEHAVIOR = "behavior"


class Cycle(StrEnum):
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


class Direction(StrEnum):
    HIGHER = "higher"
    LOWER = "lower"


class RuleKind(StrEnum):
    RATIO = "ratio"
    BANDS = "bands"
    RATING = "rating"


GUARDRAIL_OPS: tuple[str, ...] = (">", ">=", "<", "<=")
RATING_LEVELS: tuple[int, ...] = (1, 2, 3, 4, 5)


@dataclass(frozen=True, slots=True)
class RatioRule:
    """score = min(cap, 100 × actual/target) for `higher`, 100 × target/actual for `lower`; floor 0."""

    cap: Decimal = Decimal(120)

    @property
    def kind(self) -> RuleKind:
        return RuleKind.RATIO

    @property
    def max_score(self) -> Decimal:
        return self.cap


@dataclass(frozen=True, slots=True)
class BandsRule:
    """Points (value, score), interpolated linearly between them and flat outside."""

    points: tuple[tuple[Decimal, Decimal], ...]

    @property
    def kind(self) -> RuleKind:
        return RuleKind.BANDS

    @property
    def max_score(self) -> Decimal:
        return max((score for _, score in self.points), default=Decimal(0))


@dataclass(frozen=True, slots=True)
class RatingRule:
    """A whole 1-5 rating scores rating × 20."""

    @property
    def kind(self) -> RuleKind:
        return RuleKind.RATING

    @property
    def max_score(self) -> Decimal:
        return Decimal(100)


Rule = RatioRule | BandsRule | RatingRule


@dataclass(frozen=True, slots=True)
class Guardrail:
    """Deduct `deduct` points from the indicator's score when `metric op threshold` holds in the same period."""

    metric: str
    op: str
    threshold: Decimal
    deduct: Decimal


@dataclass(frozen=True, slots=True)
class WeightRange:
    low: Decimal
    high: Decimal


@dataclass(frozen=True, slots=True)
class Indicator:
    key: str
    name: str
    dimension: Dimension
    category: str
    weight: Decimal
    cycle: Cycle
    source: str
    direction: Direction
    rule: Rule
    target: Decimal | None = None
    weight_range: WeightRange | None = None
    guardrails: tuple[Guardrail, ...] = ()
    # Level (1-5) → anchor text shown to whoever rates; required for `rating` rules.
    anchors: Mapping[int, str] = field(default_factory=dict, hash=False)
    unit: str = ""
    # Optional bounds on an entered value, replacing the unit's (see scoring/bounds.py).
    minimum: Decimal | None = None
    maximum: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Metric:
    """A companion metric that guardrails read (group quit rate, complaints...); it has no weight."""

    key: str
    name: str
    unit: str = ""
    minimum: Decimal | None = None
    maximum: Decimal | None = None


@dataclass(frozen=True, slots=True)
class GradeBand:
    grade: str
    min_total: Decimal


@dataclass(frozen=True, slots=True)
class BonusClass:
    number: int
    grades: tuple[str, ...]
    amount: Decimal


@dataclass(frozen=True, slots=True)
class DistributionBand:
    """Guideline share of a grade in percent of the scored members; reported, never enforced."""

    grade: str
    min_percent: Decimal | None = None
    max_percent: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ResultRules:
    idp_min_team_size: int = 3
    idp_consecutive_months: int = 2
    shortfall_threshold: Decimal = Decimal(60)
    promotion_share: Decimal = Decimal("0.10")
    promotion_min: int = 1
    distribution: tuple[DistributionBand, ...] = ()


DEFAULT_GRADES: tuple[GradeBand, ...] = (
    GradeBand("S", Decimal(95)),
    GradeBand("A", Decimal(85)),
    GradeBand("B", Decimal(75)),
    GradeBand("C", Decimal(60)),
    GradeBand("D", Decimal(0)),
)

DEFAULT_BONUS_CLASSES: tuple[BonusClass, ...] = (
    BonusClass(1, ("S", "A"), Decimal(1200)),
    BonusClass(2, ("B",), Decimal(1000)),
)


@dataclass(frozen=True, slots=True)
class Scheme:
    key: str
    name: str
    indicators: tuple[Indicator, ...]
    metrics: tuple[Metric, ...] = ()
    grades: tuple[GradeBand, ...] = DEFAULT_GRADES
    bonus_classes: tuple[BonusClass, ...] = DEFAULT_BONUS_CLASSES
    results: ResultRules = ResultRules()
    description: str = ""

    def indicator(self, key: str) -> Indicator:
        for indicator in self.indicators:
            if indicator.key == key:
                return indicator
        raise KeyError(key)

    def weight_of(self, dimension: Dimension) -> Decimal:
        return sum((i.weight for i in self.indicators if i.dimension == dimension), Decimal(0))

    @property
    def max_score(self) -> Decimal:
        """The highest total any result can reach: the largest cap among the indicators."""
        return max((i.rule.max_score for i in self.indicators), default=Decimal(100))

    def grade_for(self, total: Decimal) -> str:
        """The first band (highest minimum first) whose minimum the total reaches; else the lowest band."""
        bands = sorted(self.grades, key=lambda band: band.min_total, reverse=True)
        for band in bands:
            if total >= band.min_total:
                return band.grade
        return bands[-1].grade if bands else ""

    def bonus_class_for(self, grade: str) -> BonusClass | None:
        for bonus_class in self.bonus_classes:
            if grade in bonus_class.grades:
                return bonus_class
        return None
