"""Period results by hand: totals, renormalisation, waivers, roll-ups, completeness, grades, bonus and ranks."""
from __future__ import annotations

import pytest

from scoring import (
    WAIVED,
    BonusClass,
    DuplicateMemberError,
    GradeBand,
    Guardrail,
    IndicatorStatus,
    Period,
    competition_ranks,
    compute_results,
)
from scoring_builders import RATING, D, indicator, member, scheme

MONTHLY = scheme(
    indicator("a", 40, target=10),
    indicator("b", 35, target=10),
    indicator("c", 25, dimension="behavior", rule=RATING),
)


def test_month_total_is_weighted_mean_with_dimension_subtotals_grade_and_bonus() -> None:
    x = member("x", {("a", "2026-11"): 9, ("b", "2026-11"): 12, ("c", "2026-11"): 4})
    result = compute_results(MONTHLY, "2026-11", [x]).get("x")
    # a: 9/10 = 90; b: 12/10 = 120 (cap 120); c: 4 × 20 = 80
    assert [i.score for i in result.indicators] == [D("90.00"), D("120.00"), D("80.00")]
    # (40×90 + 35×120 + 25×80) / 100 = (3600 + 4200 + 2000) / 100 = 98.00
    assert result.total == D("98.00") and result.original_total == D("98.00")
    assert (result.dimensions.performance, result.dimensions.behavior) == (D("78.00"), D("20.00"))
    # 98 ≥ 95 → S → class 1, 1,200 yuan
    assert (result.grade, result.bonus_class, result.bonus) == ("S", 1, D("1200.00"))
    assert result.complete and result.missing == ()
    assert [i.weight for i in result.indicators] == [D("40.00"), D("35.00"), D("25.00")]


def test_waived_indicator_drops_out_and_weights_renormalise() -> None:
    y = member("y", {("a", "2026-11"): 8, ("b", "2026-11"): WAIVED, ("c", "2026-11"): 3})
    result = compute_results(MONTHLY, "2026-11", [y]).get("y")
    # a: 80, c: 60; (40×80 + 25×60) / (40 + 25) = 4700 / 65 = 72.307… → 72.31
    assert result.total == D("72.31")
    # 3200/65 = 49.23 and 1500/65 = 23.08
    assert (result.dimensions.performance, result.dimensions.behavior) == (D("49.23"), D("23.08"))
    # 40/65 = 61.538…%, 25/65 = 38.461…%: largest remainder gives 61.54 + 38.46 = 100.00
    assert [i.weight for i in result.indicators] == [D("61.54"), D("0.00"), D("38.46")]
    assert result.indicator("b").status is IndicatorStatus.WAIVED
    # 72.31 → C: no bonus class, bonus 0.00
    assert result.complete and (result.grade, result.bonus_class, result.bonus) == ("C", None, D("0.00"))


ROLLUP = scheme(
    indicator("m", 50, target=10),
    indicator("q", 25, target=100, cycle="quarter"),
    indicator("y", 25, dimension="behavior", rule=RATING, cycle="year"),
)


def test_quarter_averages_monthly_indicators_over_the_months_not_waived() -> None:
    data = member("z", {("m", "2026-10"): 10, ("m", "2026-11"): WAIVED, ("m", "2026-12"): 8,
                        ("q", "2026-Q4"): 110})
    result = compute_results(ROLLUP, "2026-Q4", [data]).get("z")
    m = result.indicator("m")
    # m: Oct 10/10 = 100, Nov waived, Dec 8/10 = 80 → (100 + 80) / 2 = 90.00; value (10 + 8)/2 = 9
    assert (m.score, m.value, m.target, m.periods_scored, m.periods_waived) == (D("90.00"), D("9.00"), D("10.00"), 2, 1)
    # q: 110/100 = 110; y is annual and not part of a quarter
    assert [i.key for i in result.indicators] == ["m", "q"]
    # (50×90 + 25×110) / 75 = (4500 + 2750) / 75 = 96.666… → 96.67
    assert result.total == D("96.67") and result.grade == "S"
    # quarters and years pay no bonus
    assert (result.bonus_class, result.bonus) == (None, None)
    assert result.complete


def test_every_month_waived_drops_the_indicator_out_of_the_quarter() -> None:
    data = member("z", {("m", "2026-10"): WAIVED, ("m", "2026-11"): WAIVED, ("m", "2026-12"): WAIVED,
                        ("q", "2026-Q4"): 90})
    result = compute_results(ROLLUP, "2026-Q4", [data]).get("z")
    # only q counts: 90/100 = 90 → total 90.00, q weighs 100%
    assert result.total == D("90.00") and result.indicator("q").weight == D("100.00")
    assert result.indicator("m").status is IndicatorStatus.WAIVED and result.complete


def test_a_missing_month_makes_the_result_incomplete_with_a_provisional_total() -> None:
    data = member("z", {("m", "2026-10"): 10, ("m", "2026-12"): 8, ("q", "2026-Q4"): 110})
    results = compute_results(ROLLUP, "2026-Q4", [data])
    result = results.get("z")
    assert not result.complete and result.missing == ("m@2026-11",)
    # provisional: m = (100 + 80)/2 = 90 as above → 96.67, and no rank for an incomplete result
    assert result.total == D("96.67") and result.rank_in_team is None and result.rank_in_department is None
    assert result.indicator("m").missing == ("m@2026-11",)


def test_nothing_at_all_is_missing_everywhere() -> None:
    result = compute_results(ROLLUP, "2026-Q4", [member("z", {})]).get("z")
    assert result.missing == ("m@2026-10", "m@2026-11", "m@2026-12", "q@2026-Q4")
    assert result.total == D("0.00") and result.grade == "D"
    assert all(i.status is IndicatorStatus.MISSING for i in result.indicators)


def test_year_averages_months_and_quarters_and_scores_annual_indicators() -> None:
    values: dict = {("m", f"2026-{month:02d}"): (10 if month <= 6 else 8) for month in range(1, 13)}
    values.update({("q", "2026-Q1"): 100, ("q", "2026-Q2"): 90, ("q", "2026-Q3"): 110, ("q", "2026-Q4"): 130})
    values[("y", "2026")] = 4
    result = compute_results(ROLLUP, "2026", [member("z", values)]).get("z")
    # m: 6 × 100 + 6 × 80 over 12 = 90; q: (100 + 90 + 110 + 120 [130 capped]) / 4 = 105; y: 4 × 20 = 80
    assert [i.score for i in result.indicators] == [D("90.00"), D("105.00"), D("80.00")]
    # (50×90 + 25×105 + 25×80) / 100 = (4500 + 2625 + 2000) / 100 = 91.25
    assert result.total == D("91.25") and result.grade == "A"
    assert (result.dimensions.performance, result.dimensions.behavior) == (D("71.25"), D("20.00"))


def test_averages_of_rounded_monthly_scores_are_rounded_again() -> None:
    one = scheme(indicator("m", 100, target=3))
    data = member("z", {("m", "2026-10"): 2, ("m", "2026-11"): 3, ("m", "2026-12"): 3})
    # 2/3 → 66.67, 100, 100 → 266.67 / 3 = 88.89
    assert compute_results(one, "2026-Q4", [data]).get("z").total == D("88.89")


def test_month_result_uses_only_monthly_indicators() -> None:
    data = member("z", {("m", "2026-11"): 7, ("q", "2026-Q4"): 100, ("y", "2026"): 5})
    result = compute_results(ROLLUP, "2026-11", [data]).get("z")
    # only m: 7/10 = 70 at 100% weight
    assert [i.key for i in result.indicators] == ["m"] and result.total == D("70.00")
    assert result.complete


def test_guardrails_apply_per_month_and_a_missing_metric_is_listed_without_deduction() -> None:
    guarded = scheme(
        indicator("g", 100, target=5, guardrails=(Guardrail("quit", ">", D(15), D(20)),)), metrics=("quit",))
    data = member("z", {("g", "2026-10"): 5, ("quit", "2026-10"): 18,
                        ("g", "2026-11"): 5, ("quit", "2026-11"): 10,
                        ("g", "2026-12"): 5})
    result = compute_results(guarded, "2026-Q4", [data]).get("z")
    g = result.indicator("g")
    # Oct: 100 − 20 = 80; Nov: 100; Dec: 100 with quit unknown (no deduction) → (80 + 100 + 100)/3 = 93.33
    assert g.score == D("93.33") and [d.period for d in g.deductions] == ["2026-10"]
    assert result.missing == ("quit@2026-12",) and not result.complete


@pytest.mark.parametrize("total, grade, bonus_class, bonus", [
    ("95", "S", 1, "1200.00"), ("94.99", "A", 1, "1200.00"), ("85", "A", 1, "1200.00"),
    ("84.99", "B", 2, "1000.00"), ("75", "B", 2, "1000.00"), ("74.99", "C", None, "0.00"),
    ("60", "C", None, "0.00"), ("59.99", "D", None, "0.00"), ("0", "D", None, "0.00"),
])
def test_default_grade_bands_and_bonus_classes(total: str, grade: str, bonus_class, bonus: str) -> None:
    # One ratio indicator with target 100: the actual is the total.
    one = scheme(indicator("m", 100, target=100))
    result = compute_results(one, "2026-11", [member("z", {("m", "2026-11"): total})]).get("z")
    assert result.total == D(total).quantize(D("0.01"))
    assert (result.grade, result.bonus_class, result.bonus) == (grade, bonus_class, D(bonus))


def test_grades_and_bonus_classes_come_from_the_scheme() -> None:
    from dataclasses import replace

    custom = replace(scheme(indicator("m", 100, target=100)),
                     grades=(GradeBand("优", D(90)), GradeBand("良", D(70)), GradeBand("差", D(0))),
                     bonus_classes=(BonusClass(1, ("优", "良"), D(500)),))
    result = compute_results(custom, "2026-11", [member("z", {("m", "2026-11"): 72})]).get("z")
    assert (result.grade, result.bonus_class, result.bonus) == ("良", 1, D("500.00"))


def test_competition_ranking_ties_share_a_rank() -> None:
    assert competition_ranks([D(90), D(85), D(85), D(80)]) == [1, 2, 2, 4]
    assert competition_ranks([D(70), D(70), D(70)]) == [1, 1, 1]
    assert competition_ranks([]) == []


def test_ranks_in_team_and_department_skip_incomplete_results() -> None:
    one = scheme(indicator("m", 100, target=100))
    people = [
        member("p1", {("m", "2026-11"): 90}, team="t1"),
        member("p2", {("m", "2026-11"): 85}, team="t1"),
        member("p3", {("m", "2026-11"): 85}, team="t1"),
        member("p4", {("m", "2026-11"): 80}, team="t1"),
        member("p5", {}, team="t1"),                              # incomplete: no rank
        member("q1", {("m", "2026-11"): 88}, team="t2"),
        member("r1", {("m", "2026-11"): 99}, team=None),          # no team: department rank only
        member("s1", {("m", "2026-11"): 50}, team="t3", department="other"),
    ]
    results = compute_results(one, "2026-11", people)
    team = {r.member: r.rank_in_team for r in results.results}
    department = {r.member: r.rank_in_department for r in results.results}
    assert team == {"p1": 1, "p2": 2, "p3": 2, "p4": 4, "p5": None, "q1": 1, "r1": None, "s1": 1}
    # department d: 99, 90, 88, 85, 85, 80 → 1, 2, 3, 4, 4, 6; department "other" alone → 1
    assert department == {"r1": 1, "p1": 2, "q1": 3, "p2": 4, "p3": 4, "p4": 6, "p5": None, "s1": 1}


def test_data_problems_are_reported_not_raised() -> None:
    data = member("z", {("a", "2026-11"): 9, ("b", "2026-11"): 10, ("c", "2026-11"): "3.5",
                        ("mystery", "2026-11"): 1, ("a", "2026-Q4"): 5, ("a", "2026-10"): 1})
    results = compute_results(MONTHLY, "2026-11", [data, member("w", {("mystery", "2026-11"): 2})])
    by_code = {p.code: p for p in results.problems}
    assert by_code["data.invalid_rating"].params == {"member": "z", "item": "c@2026-11", "value": D("3.5")}
    assert by_code["data.unknown_key"].params == {"key": "mystery", "members": 2, "first_member": "w"}
    # a monthly indicator given a quarter value inside the period? 2026-Q4 is not inside 2026-11: ignored;
    # 2026-10 is outside the month too. Neither is reported.
    assert "data.unexpected_period" not in by_code
    z = results.get("z")
    assert "c@2026-11" in z.missing and not z.complete


def test_values_in_the_wrong_period_form_are_reported_and_missing_targets_listed() -> None:
    no_default = scheme(indicator("a", 100))
    data = member("z", {("a", "2026-Q4"): 5, ("a", "2026-10"): 5, ("a", "2026-11"): 5, ("a", "2026-12"): 5},
                  targets={("a", "2026-10"): 5, ("a", "2026-12"): 4})
    results = compute_results(no_default, "2026-Q4", [data])
    codes = {p.code: p.params for p in results.problems}
    assert codes["data.unexpected_period"] == {"key": "a", "period": "2026-Q4", "members": 1, "first_member": "z"}
    assert codes["data.no_target"] == {"key": "a", "count": 1, "first_member": "z", "first_item": "a@2026-11"}
    z = results.get("z")
    # Oct 5/5 = 100, Dec 5/4 = 125 → cap 120; Nov has no target → missing; provisional (100 + 120)/2 = 110
    assert z.missing == ("a@2026-11",) and z.total == D("110.00")


def test_a_member_given_twice_is_an_error() -> None:
    with pytest.raises(DuplicateMemberError):
        compute_results(MONTHLY, Period.parse("2026-11"), [member("z", {}), member("z", {})])


def test_results_are_sorted_by_member() -> None:
    people = [member(name, {}) for name in ("carol", "alice", "bob")]
    assert [r.member for r in compute_results(MONTHLY, "2026-11", people).results] == ["alice", "bob", "carol"]
