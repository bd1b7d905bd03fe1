"""The shipped presets: drawn from the scheme's library, leaning as the scheme says, guarded against its pitfalls."""
from __future__ import annotations

from decimal import Decimal

import pytest

from scoring import Cycle, Dimension, RatingRule, UnknownPresetError, parse_scheme, preset_names, preset_text

# The library of appraisal-scheme.md: key → (weight range, cycle).
LIBRARY = {
    "net_follower_growth_rate": ((15, 20), Cycle.MONTH),
    "new_customer_conversions": ((10, 15), Cycle.MONTH),
    "event_participation_rate": ((15, 20), Cycle.MONTH),
    "content_interaction_rate": ((10, 15), Cycle.MONTH),
    "community_sales": ((20, 25), Cycle.QUARTER),
    "community_roi": ((20, 25), Cycle.QUARTER),
    "prospect_retention": ((5, 10), Cycle.QUARTER),
    "content_output": ((10, 15), Cycle.MONTH),
    "response_time": ((5, 10), Cycle.MONTH),
    "cross_department_collaboration": ((10, 10), Cycle.YEAR),
    "culture_fit": ((10, 10), Cycle.YEAR),
}


def load(name: str):
    return parse_scheme(preset_text(name))


def test_the_four_presets_are_shipped() -> None:
    assert preset_names() == ("mature-community", "seed-executor", "seed-manager", "startup-community")
    with pytest.raises(UnknownPresetError):
        preset_text("nope")


@pytest.mark.parametrize("name", ["mature-community", "seed-executor", "seed-manager", "startup-community"])
def test_library_indicators_keep_their_ranges_and_cycles(name: str) -> None:
    scheme = load(name)
    for item in scheme.indicators:
        if item.key in LIBRARY:
            (low, high), cycle = LIBRARY[item.key]
            assert item.weight_range is not None
            assert (item.weight_range.low, item.weight_range.high, item.cycle) == (low, high, cycle), item.key
        assert item.name and not item.name.isascii()  # names in Chinese
        if isinstance(item.rule, RatingRule):
            assert sorted(item.anchors) == [1, 2, 3, 4, 5]
    # a monthly behaviour indicator, so every month has a behaviour dimension
    assert any(i.dimension == Dimension.BEHAVIOR and i.cycle == Cycle.MONTH for i in scheme.indicators)


def weight(scheme, *keys: str) -> Decimal:
    return sum((i.weight for i in scheme.indicators if i.key in keys), Decimal(0))


def test_executor_leans_to_efficiency_and_manager_to_business_value() -> None:
    executor, manager = load("seed-executor"), load("seed-manager")
    efficiency = ("content_output", "response_time", "event_participation_rate")
    business = ("community_sales", "community_roi", "prospect_retention")
    assert weight(executor, *efficiency) > weight(manager, *efficiency)
    assert weight(manager, *business) > weight(executor, *business)


def test_stage_presets_carry_their_kpis() -> None:
    assert {"user_interviews", "profile_completeness"} <= {i.key for i in load("startup-community").indicators}
    assert {"referral_rate", "community_roi"} <= {i.key for i in load("mature-community").indicators}


def guards(scheme, key: str) -> set[tuple[str, str]]:
    return {(g.metric, g.op) for i in scheme.indicators if i.key == key for g in i.guardrails}


def test_guardrails_from_the_schemes_pitfalls() -> None:
    for name in preset_names():
        scheme = load(name)
        keys = {i.key for i in scheme.indicators}
        if "net_follower_growth_rate" in keys:
            assert guards(scheme, "net_follower_growth_rate") == {("group_quit_rate", ">"),
                                                                  ("group_speaking_rate", "<")}
        if "new_customer_conversions" in keys:
            assert guards(scheme, "new_customer_conversions") == {("complaint_count", ">"),
                                                                  ("satisfaction_score", "<")}
    assert guards(load("seed-manager"), "new_customer_conversions")
    assert guards(load("seed-executor"), "net_follower_growth_rate")
