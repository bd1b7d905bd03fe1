"""Indicator health: missing rate, share at cap, spread, correlation and the flags they raise."""
from __future__ import annotations

from scoring import HealthFlag, compute_results, indicator_health
from scoring_builders import D, indicator, member, scheme

THREE = scheme(indicator("h1", 40, target=100), indicator("h2", 30, target=100), indicator("h3", 30, target=100))


def test_flags_saturated_flat_and_gappy_indicators() -> None:
    h1 = [120, 130, 125, 120, 100]        # scores 120 ×4 (capped) and 100
    h2 = [80, 81, 82, 80, 81]
    h3 = [50, 70, 90, None, None]         # two of five missing
    people = []
    for index in range(5):
        values = {("h1", "2026-11"): h1[index], ("h2", "2026-11"): h2[index]}
        if h3[index] is not None:
            values[("h3", "2026-11")] = h3[index]
        people.append(member(f"p{index}", values))
    report = {item.key: item for item in indicator_health(THREE, [compute_results(THREE, "2026-11", people)])}
    # h1: 4 of 5 at the cap = 0.8 → saturated; mean 116, deviations 4,4,4,4,−16 → variance 320/5 = 64 → std 8
    assert report["h1"].at_cap_share == D("0.8000") and report["h1"].spread == D("8.00")
    assert report["h1"].flags == (HealthFlag.SATURATED,) and report["h1"].actions == ("raise_target_or_lower_cap",)
    # h2: mean 80.8, squared deviations .64 .04 1.44 .64 .04 → 2.8/5 = 0.56 → std 0.748… → 0.75 < 5
    assert report["h2"].spread == D("0.75") and report["h2"].flags == (HealthFlag.DOES_NOT_DIFFERENTIATE,)
    # h3: 2 missing of 5 expected = 0.4 > 0.2; scored 50, 70, 90 → std √(800/3) = 16.33
    assert (report["h3"].missing_rate, report["h3"].observations, report["h3"].scored) == (D("0.4000"), 5, 3)
    assert report["h3"].spread == D("16.33") and report["h3"].flags == (HealthFlag.DATA_GAPS,)
    assert report["h3"].actions == ("fix_data_collection",)


def test_correlation_with_the_total_and_pooling_months() -> None:
    one = scheme(indicator("m", 100, target=100))
    months = [compute_results(one, period, [member(f"p{i}", {("m", period): 50 + 20 * i}) for i in range(3)])
              for period in ("2026-10", "2026-11")]
    (item,) = indicator_health(one, months)
    # the only indicator is the total: correlation 1; six observations pooled over two months
    assert item.correlation == D("1.0000") and item.scored == 6 and item.missing_rate == D("0.0000")
    assert item.flags == ()


def test_waived_values_are_not_counted_as_missing() -> None:
    from scoring import WAIVED

    one = scheme(indicator("m", 100, target=100))
    results = compute_results(one, "2026-11", [member("a", {("m", "2026-11"): WAIVED}),
                                               member("b", {("m", "2026-11"): 90})])
    (item,) = indicator_health(one, [results])
    assert (item.observations, item.missing_rate, item.spread, item.correlation) == (1, D("0.0000"), D("0.00"), None)
    assert item.flags == ()  # a single observation says nothing about spread
