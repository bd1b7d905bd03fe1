"""Small builders for hand-computed scoring tests: schemes and members in a line each."""
from __future__ import annotations

from decimal import Decimal

from scoring import (
    WAIVED,
    BandsRule,
    Cycle,
    Dimension,
    Direction,
    Guardrail,
    Indicator,
    MemberData,
    Metric,
    RatingRule,
    RatioRule,
    Rule,
    Scheme,
)

ANCHORS = {1: "差", 2: "较差", 3: "合格", 4: "良好", 5: "优秀"}


def D(value: str | int) -> Decimal:
    return Decimal(str(value))


def indicator(key: str, weight: int | str, *, dimension: str = "performance", cycle: str = "month",
              rule: Rule | None = None, target: int | str | None = None, direction: str = "higher",
              guardrails: tuple[Guardrail, ...] = ()) -> Indicator:
    rule = rule if rule is not None else RatioRule()
    return Indicator(
        key=key, name=key, dimension=Dimension(dimension), category="", weight=D(weight), cycle=Cycle(cycle),
        source="test", direction=Direction(direction), rule=rule,
        target=D(target) if target is not None else None, guardrails=guardrails,
        anchors=ANCHORS if isinstance(rule, RatingRule) else {},
    )


def scheme(*indicators: Indicator, metrics: tuple[str, ...] = (), key: str = "test") -> Scheme:
    return Scheme(key=key, name=key, indicators=tuple(indicators),
                  metrics=tuple(Metric(name, name) for name in metrics))


def member(name: str, values: dict[tuple[str, str], object], *, team: str | None = "t",
           department: str | None = "d", targets: dict[tuple[str, str], object] | None = None) -> MemberData:
    def convert(value: object) -> object:
        return value if value is WAIVED else D(value)  # type: ignore[arg-type]

    return MemberData(name, team, department, {k: convert(v) for k, v in values.items()},
                      {k: D(v) for k, v in (targets or {}).items()})  # type: ignore[arg-type]


def bands(*points: tuple[int | str, int | str]) -> BandsRule:
    return BandsRule(tuple((D(x), D(y)) for x, y in points))


RATING = RatingRule()
