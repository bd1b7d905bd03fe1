"""Parsing schemes from TOML: typed dataclasses out, syntax and format problems as typed errors."""
from __future__ import annotations

from decimal import Decimal

import pytest

from scoring import (
    BandsRule,
    Cycle,
    Dimension,
    Direction,
    RatingRule,
    RatioRule,
    SchemeFormatError,
    SchemeSyntaxError,
    parse_scheme,
)
from scoring.scheme import DEFAULT_BONUS_CLASSES, DEFAULT_GRADES

FULL = """
[scheme]
key = "demo"
name = "示例"

[[metrics]]
key = "group_quit_rate"
name = "退群率"
unit = "%"

[[indicators]]
key = "growth"
name = "粉丝净增长率"
dimension = "performance"
category = "用户增长"
weight = 17.5
weight_range = [15, 20]
cycle = "month"
source = "wecom"
target = 5
unit = "%"
rule = { type = "ratio", cap = 110 }
[[indicators.guardrails]]
metric = "group_quit_rate"
op = ">="
threshold = 15.5
deduct = 20

[[indicators]]
key = "response"
name = "响应时效"
dimension = "performance"
weight = 10
cycle = "month"
direction = "lower"
rule = { type = "bands", points = [[5, 100], [60, 0]] }

[[indicators]]
key = "culture"
name = "文化契合度"
dimension = "behavior"
weight = 20
cycle = "year"
rule = { type = "rating" }
anchors = { 1 = "一", 2 = "二", 3 = "三", 4 = "四", 5 = "五" }

[[grades]]
grade = "优"
min = 90
[[grades]]
grade = "良"
min = 0

[[bonus_classes]]
class = 1
grades = ["优"]
amount = 800

[results]
promotion_share = 0.2
shortfall_threshold = 50
[[results.distribution]]
grade = "优"
max = 15
"""


def test_full_scheme_parses_into_typed_values() -> None:
    scheme = parse_scheme(FULL)
    growth, response, culture = scheme.indicators
    assert scheme.key == "demo" and scheme.metrics[0].unit == "%"
    assert growth.weight == Decimal("17.5") and growth.dimension is Dimension.PERFORMANCE
    assert growth.weight_range is not None and (growth.weight_range.low, growth.weight_range.high) == (15, 20)
    assert growth.rule == RatioRule(Decimal(110)) and growth.target == 5 and growth.cycle is Cycle.MONTH
    assert growth.guardrails[0].op == ">=" and growth.guardrails[0].threshold == Decimal("15.5")
    assert response.direction is Direction.LOWER
    assert response.rule == BandsRule(((Decimal(5), Decimal(100)), (Decimal(60), Decimal(0))))
    assert isinstance(culture.rule, RatingRule) and culture.anchors[5] == "五"
    assert [g.grade for g in scheme.grades] == ["优", "良"]
    assert scheme.bonus_classes[0].amount == 800
    # A TOML float becomes the Decimal it reads as, not its binary expansion.
    assert scheme.results.promotion_share == Decimal("0.2") and scheme.results.shortfall_threshold == 50
    assert scheme.results.distribution[0].max_percent == 15


def test_defaults_for_ratio_cap_direction_grades_bonus_and_results() -> None:
    text = FULL.split("[[grades]]")[0].replace(", cap = 110", "")
    scheme = parse_scheme(text)
    assert scheme.indicators[0].rule == RatioRule(Decimal(120))
    assert scheme.indicators[0].direction is Direction.HIGHER
    assert scheme.grades == DEFAULT_GRADES and scheme.bonus_classes == DEFAULT_BONUS_CLASSES
    assert scheme.results.idp_min_team_size == 3 and scheme.results.promotion_share == Decimal("0.10")


def test_toml_syntax_error_carries_line_and_column() -> None:
    with pytest.raises(SchemeSyntaxError) as caught:
        parse_scheme('[scheme]\nkey = "x"\nname = \n')
    assert caught.value.line == 3
    assert caught.value.problem.code == "toml.syntax"


def test_every_format_problem_is_reported_at_once() -> None:
    text = """
[scheme]
key = "bad"
name = "bad"

[[indicators]]
key = "a"
name = "A"
dimension = "perf"
wieght = 10
cycle = "month"
rule = { type = "ratio" }

[[indicators]]
key = "b"
name = "B"
dimension = "behavior"
weight = "ten"
cycle = "daily"
rule = { type = "bands", points = [[1, 2, 3]] }

[[indicators]]
key = "c"
name = "C"
dimension = "behavior"
weight = 5
cycle = "year"
rule = { type = "formula" }
anchors = { 6 = "?" }
"""
    with pytest.raises(SchemeFormatError) as caught:
        parse_scheme(text)
    found = {(p.code, p.path) for p in caught.value.problems}
    assert found == {
        ("field.choice", "indicators[0].dimension"),
        ("field.unknown", "indicators[0].wieght"),
        ("field.missing", "indicators[0].weight"),
        ("field.type", "indicators[1].weight"),
        ("field.choice", "indicators[1].cycle"),
        ("field.type", "indicators[1].rule.points[0]"),
        ("field.choice", "indicators[2].rule.type"),
        ("field.choice", "indicators[2].anchors.6"),
    }
    assert all(p.is_error for p in caught.value.problems)


def test_missing_scheme_head_and_indicators() -> None:
    with pytest.raises(SchemeFormatError) as caught:
        parse_scheme("[results]\npromotion_min = 1\n")
    assert {p.path for p in caught.value.problems} == {"scheme", "indicators"}
