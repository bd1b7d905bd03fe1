"""What results trigger: IDP, behaviour shortfall, promotion list, grade distribution, leniency."""
from __future__ import annotations

from dataclasses import replace

import pytest

from scoring import (
    Calibration,
    DistributionBand,
    ResultRules,
    TriggerInputError,
    apply_calibrations,
    behavior_shortfalls,
    compute_results,
    grade_distribution,
    idp_triggers,
    leniency_indexes,
    promotion_list,
)
from scoring_builders import RATING, D, indicator, member, scheme

ONE = scheme(indicator("m", 100, target=100))


def month(period: str, totals: dict[str, object], team_of=lambda name: "t"):
    return compute_results(ONE, period, [member(name, {("m", period): value} if value is not None else {},
                                                team=team_of(name)) for name, value in totals.items()])


def test_idp_for_last_place_two_consecutive_months_ties_included() -> None:
    october = month("2026-10", {"a": 90, "b": 60, "c": 60, "d": 80})   # b and c tie for last
    november = month("2026-11", {"a": 90, "b": 55, "c": 55, "d": 70})  # again both last
    found = idp_triggers(ONE, [october, november])
    assert [(t.member, t.team, t.periods, t.totals) for t in found] == [
        ("b", "t", ("2026-10", "2026-11"), (D("60.00"), D("55.00"))),
        ("c", "t", ("2026-10", "2026-11"), (D("60.00"), D("55.00"))),
    ]


def test_idp_needs_last_place_both_months() -> None:
    october = month("2026-10", {"a": 90, "b": 60, "c": 70})
    november = month("2026-11", {"a": 90, "b": 75, "c": 70})  # b recovered, c last only once
    assert idp_triggers(ONE, [october, november]) == ()


def test_idp_needs_a_team_of_three_scored_members() -> None:
    # the team has three members but one result is incomplete: only two are scored
    october = month("2026-10", {"a": 90, "b": 60, "c": None})
    november = month("2026-11", {"a": 90, "b": 60, "c": None})
    assert idp_triggers(ONE, [october, november]) == ()
    assert idp_triggers(ONE, [october]) == ()  # one month is not two


def test_idp_months_must_be_consecutive_and_monthly() -> None:
    with pytest.raises(TriggerInputError):
        idp_triggers(ONE, [month("2026-09", {"a": 1}), month("2026-11", {"a": 1})])
    quarter = compute_results(ONE, "2026-Q4", [])
    with pytest.raises(TriggerInputError):
        idp_triggers(ONE, [quarter, quarter])


def test_idp_uses_calibrated_totals() -> None:
    october = month("2026-10", {"a": 90, "b": 60, "c": 70})
    november = month("2026-11", {"a": 90, "b": 60, "c": 70})
    lifted = apply_calibrations(ONE, november, [Calibration("b", D(80), "补录数据", "boss")])
    # after calibration c (70) is last in November, b was last in October: nobody twice
    assert idp_triggers(ONE, [october, lifted]) == ()


def test_behaviour_indicator_under_60_suggests_a_cross_department_project() -> None:
    s = scheme(indicator("m", 75, target=100), indicator("collab", 25, dimension="behavior", rule=RATING))
    results = compute_results(s, "2026-11", [
        member("a", {("m", "2026-11"): 50, ("collab", "2026-11"): 2}),  # 2 × 20 = 40 < 60
        member("b", {("m", "2026-11"): 50, ("collab", "2026-11"): 3}),  # 60 is not under 60
    ])
    found = behavior_shortfalls(s, results)
    # m scores 50 but is a performance indicator: not a behaviour shortfall
    assert [(f.member, f.indicator, f.score, f.suggestion) for f in found] == [
        ("a", "collab", D("40.00"), "cross_department_project")]


def year(totals: dict[str, int], department=lambda name: "d"):
    s = scheme(indicator("y", 100, target=100, cycle="year"))
    return s, compute_results(s, "2026", [member(n, {("y", "2026"): v}, department=department(n))
                                          for n, v in totals.items()])


def test_promotion_is_top_ten_percent_rounded_up() -> None:
    # 11 members: 10% of 11 = 1.1 → 2 places
    s, results = year({f"p{i:02d}": 100 - i for i in range(11)})
    assert [c.member for c in promotion_list(s, results)] == ["p00", "p01"]
    # 5 members: 0.5 → 1 place (and at least one anyway)
    s, results = year({f"p{i}": 100 - i for i in range(5)})
    assert [(c.member, c.rank) for c in promotion_list(s, results)] == [("p0", 1)]


def test_promotion_includes_ties_at_the_cut_and_works_per_department() -> None:
    s, results = year({"a": 95, "b": 95, "c": 80, "x": 70, "y": 60},
                      department=lambda n: "north" if n in "abc" else "south")
    found = promotion_list(s, results)
    # north: 3 members → 1 place, a and b tie at rank 1; south: 1 place → x
    assert [(c.department, c.member, c.rank) for c in found] == [
        ("north", "a", 1), ("north", "b", 1), ("south", "x", 1)]


def test_promotion_needs_annual_results() -> None:
    with pytest.raises(TriggerInputError):
        promotion_list(ONE, month("2026-11", {"a": 1}))


def test_grade_distribution_is_checked_against_the_guideline() -> None:
    guided = replace(ONE, results=ResultRules(distribution=(
        DistributionBand("S", max_percent=D(10)), DistributionBand("C", min_percent=D(10), max_percent=D(50)))))
    # 4 complete: S, S, A, C → S 50% (> 10: above), A 25% (no guideline), C 25% (within)
    results = month("2026-11", {"a": 99, "b": 96, "c": 86, "d": 65, "e": None})
    (report,) = grade_distribution(guided, results)
    shares = {share.grade: (share.count, share.percent, share.status) for share in report.shares}
    assert report.scored == 4
    assert shares == {"S": (2, D("50.00"), "above"), "A": (1, D("25.00"), "no_guideline"),
                      "B": (0, D("0.00"), "no_guideline"), "C": (1, D("25.00"), "within"),
                      "D": (0, D("0.00"), "no_guideline")}
    assert [share.grade for share in report.deviations] == ["S"]


def test_leniency_is_team_mean_minus_department_mean() -> None:
    results = month("2026-11", {"a1": 90, "a2": 80, "b1": 70, "b2": 60, "b3": 65},
                    team_of=lambda name: "A" if name.startswith("a") else "B")
    found = {item.team: item for item in leniency_indexes(results, managers={"A": "boss-a"})}
    # department: (90 + 80 + 70 + 60 + 65) / 5 = 73; A: 85 → +12; B: 65 → −8
    assert (found["A"].team_mean, found["A"].department_mean, found["A"].index) == (D("85.00"), D("73.00"), D("12.00"))
    assert found["B"].index == D("-8.00") and found["A"].manager == "boss-a" and found["B"].manager is None
