"""Validation: every problem at once, typed, errors apart from warnings."""
from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from scoring import (
    BonusClass,
    DistributionBand,
    GradeBand,
    Guardrail,
    RatioRule,
    ResultRules,
    Severity,
    WeightRange,
    check_scheme,
    preset_names,
    preset_text,
    validate,
)
from scoring_builders import ANCHORS, RATING, D, bands, indicator, scheme


def valid_scheme():
    # 30 + 25 + 20 = 75 performance, 15 + 10 = 25 behaviour, 100 in all.
    return scheme(
        indicator("a", 30, target=10),
        indicator("b", 25, target=10),
        indicator("c", 20, rule=bands((0, 0), (10, 100))),
        indicator("d", 15, dimension="behavior", rule=RATING),
        indicator("e", 10, dimension="behavior", rule=RATING, cycle="year"),
    )


def codes(problems) -> set[tuple[str, str]]:
    return {(p.code, p.path) for p in problems}


def test_a_valid_scheme_has_no_problem() -> None:
    assert validate(valid_scheme()) == []


def test_weights_must_total_100_and_split_70_80_and_20_30() -> None:
    # 30 + 25 + 20 + 15(perf) = 90 performance, 10 behaviour, 100 in all: both shares wrong, total right.
    s = valid_scheme()
    moved = replace(s, indicators=(*s.indicators[:3], replace(s.indicators[3], dimension="performance"),
                                   s.indicators[4]))
    problems = validate(moved)
    assert codes(problems) >= {("weights.performance_share", "indicators"), ("weights.behavior_share", "indicators")}
    share = next(p for p in problems if p.code == "weights.performance_share")
    assert share.params == {"total": Decimal(90), "low": Decimal(70), "high": Decimal(80)}
    assert ("weights.total", "indicators") not in codes(problems)

    # 30 + 25 + 20 + 15 + 11 = 101.
    heavier = replace(s, indicators=(*s.indicators[:4], replace(s.indicators[4], weight=D(11))))
    total = next(p for p in validate(heavier) if p.code == "weights.total")
    assert total.params["total"] == 101 and total.severity is Severity.ERROR


def test_performance_indicator_count_outside_3_to_5_is_a_warning() -> None:
    # Two performance indicators 40 + 35 = 75, behaviour 25.
    s = scheme(indicator("a", 40), indicator("b", 35), indicator("d", 25, dimension="behavior", rule=RATING))
    problems = validate(s)
    assert [(p.code, p.severity) for p in problems] == [("indicators.performance_count", Severity.WARNING)]
    assert problems[0].params["count"] == 2

    six = scheme(*(indicator(k, 12) for k in "abcdef"), indicator("x", 3),  # 6×12 + 3 = 75
                 indicator("z", 25, dimension="behavior", rule=RATING))
    count = [p for p in validate(six) if p.code == "indicators.performance_count"]
    assert count[0].params["count"] == 7 and count[0].severity is Severity.WARNING


def test_weight_outside_its_library_range_is_a_warning() -> None:
    s = valid_scheme()
    ranged = replace(s.indicators[0], weight_range=WeightRange(D(15), D(20)))  # weight 30 > 20
    problems = validate(replace(s, indicators=(ranged, *s.indicators[1:])))
    assert [(p.code, p.path, p.severity) for p in problems] == [
        ("indicator.weight_out_of_range", "indicators[0].weight", Severity.WARNING)]
    assert problems[0].params == {"weight": D(30), "low": D(15), "high": D(20)}


@pytest.mark.parametrize("rule, direction, code", [
    (RatioRule(D(0)), "higher", "rule.cap_not_positive"),
    (bands((5, 100)), "higher", "rule.bands_too_few"),
    (bands((5, 0), (5, 100)), "higher", "rule.bands_not_increasing"),
    (bands((0, -10), (10, 100)), "higher", "rule.bands_negative_score"),
    (bands((0, 100), (10, 0)), "higher", "rule.bands_direction"),
    (bands((0, 0), (10, 100)), "lower", "rule.bands_direction"),
    (RATING, "lower", "rule.rating_direction"),
])
def test_malformed_rules_are_errors(rule, direction, code) -> None:
    s = valid_scheme()
    broken = replace(s.indicators[0], rule=rule, direction=direction, anchors=ANCHORS)
    problems = validate(replace(s, indicators=(broken, *s.indicators[1:])))
    assert code in {p.code for p in problems}
    assert all(p.severity is Severity.ERROR for p in problems if p.code == code)


def test_rating_anchors_must_cover_every_level() -> None:
    s = valid_scheme()
    partial = replace(s.indicators[3], anchors={1: "差", 2: "较差", 4: "良好"})
    problems = validate(replace(s, indicators=(*s.indicators[:3], partial, s.indicators[4])))
    assert [(p.code, p.path, p.params) for p in problems] == [
        ("indicator.anchors_missing", "indicators[3].anchors", {"levels": "3, 5"})]


def test_guardrails_need_declared_metrics_known_ops_and_positive_deductions() -> None:
    s = valid_scheme()
    guarded = replace(s.indicators[0], guardrails=(
        Guardrail("group_quit_rate", ">", D(15), D(20)),  # declared below: fine
        Guardrail("speaking", "=>", D(10), D(0)),          # undeclared, bad op, no deduction
    ))
    with_metric = replace(s, indicators=(guarded, *s.indicators[1:]),
                          metrics=(*s.metrics, *scheme(metrics=("group_quit_rate",)).metrics))
    assert codes(validate(with_metric)) == {
        ("guardrail.unknown_metric", "indicators[0].guardrails[1].metric"),
        ("guardrail.op", "indicators[0].guardrails[1].op"),
        ("guardrail.deduct_not_positive", "indicators[0].guardrails[1].deduct"),
    }


def test_duplicate_keys_and_clashing_metric_keys() -> None:
    s = valid_scheme()
    dup = replace(s, indicators=(*s.indicators, replace(s.indicators[1], weight=D(0))),
                  metrics=scheme(metrics=("m", "m", "a")).metrics)
    found = codes(validate(dup))
    assert ("indicator.duplicate_key", "indicators[5].key") in found
    assert ("indicator.weight_not_positive", "indicators[5].weight") in found
    assert ("metric.duplicate_key", "metrics[1].key") in found
    assert ("metric.key_clash", "metrics[2].key") in found


def test_grades_bonus_and_result_rules_are_checked() -> None:
    s = replace(
        valid_scheme(),
        grades=(GradeBand("S", D(95)), GradeBand("S", D(80)), GradeBand("C", D(80))),
        bonus_classes=(BonusClass(1, ("S", "X"), D(100)), BonusClass(1, ("S",), D(-5))),
        results=ResultRules(idp_min_team_size=1, promotion_share=D("1.5"),
                            distribution=(DistributionBand("Z", max_percent=D(10)),
                                          DistributionBand("S", D(30), D(10)))),
    )
    found = {p.code for p in validate(s)}
    assert found == {"grades.duplicate", "grades.duplicate_min", "bonus.unknown_grade", "bonus.duplicate_class",
                     "bonus.amount_negative", "bonus.duplicate_grade", "results.idp_min_team_size",
                     "results.promotion_share", "distribution.unknown_grade", "distribution.bounds"}


def test_everything_wrong_at_once_comes_back_in_one_list() -> None:
    s = valid_scheme()
    many = replace(s, indicators=(replace(s.indicators[0], rule=RatioRule(D(-1))), s.indicators[0],
                                  replace(s.indicators[3], anchors={})))
    found = {p.code for p in validate(many)}
    # 30 + 30 + 15 = 75: total wrong; 60 performance; 15 behaviour; 2 performance indicators.
    assert {"weights.total", "weights.performance_share", "weights.behavior_share", "indicators.performance_count",
            "rule.cap_not_positive", "indicator.duplicate_key", "indicator.anchors_missing"} <= found


def test_check_scheme_never_raises_on_bad_text() -> None:
    assert check_scheme("key = ")[1][0].code == "toml.syntax"
    scheme_or_none, problems = check_scheme('[scheme]\nkey = "x"\nname = "x"\n[[indicators]]\nkey = "a"\n')
    assert scheme_or_none is None and {p.code for p in problems} == {"field.missing"}


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_is_valid_without_warnings(name: str) -> None:
    scheme_or_none, problems = check_scheme(preset_text(name))
    assert scheme_or_none is not None and scheme_or_none.key == name
    assert problems == []
