"""Waivers that mean what they say (a waived guardrail metric, a member with nothing left to score), partial
quarters and years over the months a member was appraised, and the unit bounds of entered values."""
from __future__ import annotations

from dataclasses import replace

from scoring import WAIVED, Guardrail, IndicatorStatus, Period, PeriodResults, compute_results
from scoring.bounds import BoundKind, value_bounds
from scoring.triggers import grade_distribution, idp_triggers
from scoring_builders import RATING, D, indicator, member, scheme

GUARDED = scheme(indicator("g", 70, target=5, guardrails=(Guardrail("quit", ">", D(15), D(20)),)),
                 indicator("r", 30, dimension="behavior", rule=RATING), metrics=("quit",))


def test_a_waived_guardrail_metric_deducts_nothing_and_leaves_the_result_complete() -> None:
    data = member("z", {("g", "2026-11"): 5, ("quit", "2026-11"): WAIVED, ("r", "2026-11"): 4})
    result = compute_results(GUARDED, "2026-11", [data]).get("z")
    assert result.complete and result.missing == () and result.indicator("g").deductions == ()
    assert result.indicator("g").score == D("100.00") and result.grade and not result.provisional


def test_a_member_with_everything_waived_is_not_appraised_and_counts_for_nothing() -> None:
    everyone = [member(f"p{n}", {("g", "2026-11"): n, ("quit", "2026-11"): 1, ("r", "2026-11"): 3})
                for n in (3, 4, 5)]
    away = member("away", {("g", "2026-11"): WAIVED, ("r", "2026-11"): WAIVED})
    results = compute_results(GUARDED, "2026-11", [*everyone, away])
    result = results.get("away")
    assert not result.appraised and result.complete and not result.counts
    assert (result.grade, result.bonus_class, result.bonus) == ("", None, None)
    assert result.rank_in_team is None and result.rank_in_department is None
    assert [r.member for r in results.complete] == ["p3", "p4", "p5"]
    assert sum(d.scored for d in grade_distribution(GUARDED, results)) == 3
    # Two months in a row: the lowest *appraised* member is the one with an IDP, never the one away.
    october = PeriodResults("test", Period.parse("2026-10"), tuple(
        replace(r, period=Period.parse("2026-10")) for r in results.results))
    assert {t.member for t in idp_triggers(GUARDED, [october, results])} == {"p3"}


YEARLY = scheme(indicator("m", 60, target=10), indicator("q", 20, target=100, cycle="quarter"),
                indicator("y", 20, dimension="behavior", rule=RATING, cycle="year"))
SECOND_HALF = frozenset(f"2026-{m:02d}" for m in range(7, 13))


def test_a_year_covers_only_the_months_the_member_was_appraised_in() -> None:
    values: dict[tuple[str, str], object] = {("m", f"2026-{m:02d}"): 8 for m in range(7, 13)}
    values.update({("q", "2026-Q3"): 100, ("q", "2026-Q4"): 100, ("y", "2026"): 4})
    data = replace(member("late", values), months=SECOND_HALF)
    result = compute_results(YEARLY, "2026", [data]).get("late")
    assert result.complete and result.missing == ()
    assert result.months == tuple(f"2026-{m:02d}" for m in range(7, 13))
    assert result.indicator("m").periods_scored == 6 and result.indicator("q").periods_scored == 2
    # Without the months, the first half is missing and the year cannot be published.
    assert not compute_results(YEARLY, "2026", [member("late", values)]).get("late").complete


def test_a_quarter_before_the_members_first_month_is_not_appraised() -> None:
    data = replace(member("late", {}), months=SECOND_HALF)
    result = compute_results(YEARLY, "2026-Q1", [data]).get("late")
    assert not result.appraised and result.missing == ()
    assert result.indicator("m").status is IndicatorStatus.WAIVED


def test_bounds_come_from_the_scheme_else_the_rule_and_unit() -> None:
    rate = replace(indicator("p", 50, target=10), unit="%")
    count = replace(indicator("c", 50, target=10), unit="篇")
    growth = replace(rate, minimum=D(-100), maximum=D(1000))
    assert value_bounds(rate).violation(D(150)) == "above" and value_bounds(rate).kind is BoundKind.PERCENT
    assert value_bounds(count).violation(D(-5)) == "below" and value_bounds(count).violation(D(10 ** 9)) is None
    assert value_bounds(growth).violation(D(-5)) is None and value_bounds(growth).kind is BoundKind.SCHEME
    assert value_bounds(indicator("r", 10, rule=RATING)).violation(D(6)) == "above"
