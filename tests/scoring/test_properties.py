"""Properties that must hold for any input: monotone rules, bounded scores, weights to 100, order independence."""
from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from scoring import WAIVED, BandsRule, Guardrail, MemberData, RatioRule, compute_results, score_value
from scoring_builders import RATING, D, indicator, scheme

decimals = st.decimals(min_value=-1000, max_value=100000, places=2, allow_nan=False, allow_infinity=False)
positive = st.decimals(min_value=Decimal("0.01"), max_value=100000, places=2, allow_nan=False, allow_infinity=False)
caps = st.decimals(min_value=1, max_value=200, places=0)


@st.composite
def band_rules(draw, rising: bool = True) -> BandsRule:
    xs = sorted(set(draw(st.lists(st.integers(-100, 1000), min_size=2, max_size=6))))
    if len(xs) < 2:
        xs = [xs[0], xs[0] + 1]
    ys = sorted(draw(st.lists(st.integers(0, 150), min_size=len(xs), max_size=len(xs))), reverse=not rising)
    return BandsRule(tuple((D(x), D(y)) for x, y in zip(xs, ys)))


@st.composite
def higher_indicators(draw):
    if draw(st.booleans()):
        return indicator("k", 100, target=str(draw(positive)), rule=RatioRule(draw(caps)))
    return indicator("k", 100, rule=draw(band_rules(rising=True)))


@st.composite
def lower_indicators(draw):
    if draw(st.booleans()):
        return indicator("k", 100, target=str(draw(positive)), rule=RatioRule(draw(caps)), direction="lower")
    return indicator("k", 100, rule=draw(band_rules(rising=False)), direction="lower")


@given(higher_indicators(), decimals, decimals)
def test_a_higher_indicators_score_never_falls_as_the_actual_rises(item, a, b) -> None:
    low, high = sorted((a, b))
    assert score_value(item, low).score <= score_value(item, high).score


@given(lower_indicators(), decimals, decimals)
def test_a_lower_indicators_score_never_rises_as_the_actual_rises(item, a, b) -> None:
    low, high = sorted((a, b))
    assert score_value(item, low).score >= score_value(item, high).score


@given(st.one_of(higher_indicators(), lower_indicators()), decimals,
       st.lists(st.tuples(st.sampled_from([">", ">=", "<", "<="]), st.integers(0, 100), st.integers(1, 200)),
                max_size=3),
       st.integers(0, 100))
def test_scores_stay_between_zero_and_the_cap(item, actual, guards, metric) -> None:
    from dataclasses import replace

    guarded = replace(item, guardrails=tuple(Guardrail(f"m{i}", op, D(t), D(d)) for i, (op, t, d) in enumerate(guards)))
    result = score_value(guarded, actual, metrics={f"m{i}": D(metric) for i in range(len(guards))})
    assert Decimal(0) <= result.score <= item.rule.max_score
    assert result.score == result.score.quantize(Decimal("0.01"))


@given(st.integers(1, 10), st.integers(1, 12), st.lists(st.integers(1, 60), min_size=1, max_size=8),
       st.lists(st.sampled_from(["value", "waived", "missing"]), min_size=8, max_size=8), st.integers(1, 5))
def test_renormalised_weights_sum_to_100_and_the_total_is_a_weighted_mean(
        seed, month, weights, states, rating) -> None:
    items = [indicator(f"k{i}", w, target=10) for i, w in enumerate(weights)]
    items.append(indicator("r", 7, dimension="behavior", rule=RATING))
    period = f"2026-{month:02d}"
    values = {}
    for i, state in enumerate(states[:len(weights)]):
        if state == "value":
            values[(f"k{i}", period)] = D(seed * (i + 1))
        elif state == "waived":
            values[(f"k{i}", period)] = WAIVED
    values[("r", period)] = D(rating)
    result = compute_results(scheme(*items), period, [MemberData("m", "t", "d", values)]).get("m")
    counted = [i for i in result.indicators if i.score is not None]
    assert sum(i.weight for i in result.indicators) == D("100.00")
    scores = [i.score for i in counted]
    assert min(scores) <= result.total <= max(scores)
    assert result.complete == all(state != "missing" for state in states[:len(weights)])


VALUE_SCHEME = scheme(
    indicator("g", 40, target=5, guardrails=(Guardrail("quit", ">", D(15), D(20)),)),
    indicator("q", 35, target=100, cycle="quarter"),
    indicator("r", 25, dimension="behavior", rule=RATING),
    metrics=("quit",),
)


@st.composite
def member_rows(draw):
    count = draw(st.integers(1, 8))
    rows = []
    for number in range(count):
        name = f"p{number}"
        team = draw(st.sampled_from(["t1", "t2", None]))
        for month in ("2026-10", "2026-11", "2026-12"):
            if draw(st.integers(0, 9)):  # now and then a value is missing
                rows.append((name, team, ("g", month), draw(st.sampled_from([D(3), D(5), D("6.5"), WAIVED]))))
            rows.append((name, team, ("quit", month), D(draw(st.integers(0, 30)))))
            rows.append((name, team, ("r", month), D(draw(st.integers(1, 5)))))
        rows.append((name, team, ("q", "2026-Q4"), D(draw(st.integers(50, 150)))))
    return rows


def build(rows) -> list[MemberData]:
    members: dict[str, tuple[str | None, dict]] = {}
    for name, team, key, value in rows:
        members.setdefault(name, (team, {}))[1][key] = value
    return [MemberData(name, team, "d", values) for name, (team, values) in members.items()]


@settings(max_examples=60)
@given(member_rows(), st.randoms(use_true_random=False), st.sampled_from(["2026-11", "2026-Q4"]))
def test_results_do_not_depend_on_the_order_of_members_or_rows(rows, rng, period) -> None:
    shuffled = list(rows)
    rng.shuffle(shuffled)
    first = compute_results(VALUE_SCHEME, period, build(rows))
    second = compute_results(VALUE_SCHEME, period, list(reversed(build(shuffled))))
    assert first == second
