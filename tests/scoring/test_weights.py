"""Weight design: judgment table, dimension scoring, Delphi statistics, Kendall's W, whole percents."""
from __future__ import annotations

from decimal import Decimal

import pytest

from scoring import (
    Dimension,
    WeightDesignError,
    apportion,
    delphi_round,
    dimension_scoring_weights,
    factor_judgment_weights,
    kendall_w,
    propose_weights,
)
from scoring_builders import D

P, B = Dimension.PERFORMANCE, Dimension.BEHAVIOR


def test_judgment_table_row_sums_averaged_over_experts_and_normalised() -> None:
    expert1 = [[0, 3, 4], [1, 0, 3], [0, 1, 0]]  # row sums 7, 4, 1
    expert2 = [[0, 2, 3], [2, 0, 2], [1, 2, 0]]  # row sums 5, 4, 3
    weights = factor_judgment_weights(["A", "B", "C"], [expert1, expert2])
    # means 6, 4, 2 of 12 → 1/2, 1/3, 1/6
    assert weights["A"] == D("0.5")
    assert round(weights["B"], 4) == D("0.3333") and round(weights["C"], 4) == D("0.1667")
    proposal = propose_weights(weights, {"A": P, "B": P, "C": B})
    # 50, 33.33, 16.67 → floors 50 + 33 + 16 = 99, the last unit to C (.67 > .33) → 50, 33, 17
    assert proposal.weights == {"A": 50, "B": 33, "C": 17}
    # performance 83 > 80, behaviour 17 < 20: both reported
    assert {p.code for p in proposal.problems} == {"weights.performance_share", "weights.behavior_share"}


def test_judgment_tables_are_checked_all_at_once() -> None:
    with pytest.raises(WeightDesignError) as caught:
        factor_judgment_weights(["A", "B", "C"], [
            [[0, 3, 4], [2, 0, 3], [0, 1, 0]],  # A→B 3 but B→A 2: 3 + 2 ≠ 4
            [[0, 5, 2], [-1, 0, 2], [2, 2, 0]],  # 5 and -1 are off the scale
            [[0, 2], [2, 0]],                    # wrong shape
        ])
    assert sorted(p.code for p in caught.value.problems) == [
        "judgment.inconsistent", "judgment.shape", "judgment.value", "judgment.value"]


def test_dimension_scoring_weights() -> None:
    scores = [{"X": {"s": D(8), "u": D(6)}, "Y": {"s": D(4), "u": D(10)}},
              {"X": {"s": D(10), "u": D(6)}, "Y": {"s": D(6), "u": D(8)}}]
    weights = dimension_scoring_weights(["X", "Y"], {"s": D("0.6"), "u": D("0.4")}, scores)
    # X: 0.6 × 9 + 0.4 × 6 = 7.8; Y: 0.6 × 5 + 0.4 × 9 = 6.6; of 14.4 → 0.541666…, 0.458333…
    assert round(weights["X"], 6) == D("0.541667") and round(weights["Y"], 6) == D("0.458333")
    with pytest.raises(WeightDesignError) as caught:
        dimension_scoring_weights(["X", "Y"], {"s": D(1)}, [{"X": {"s": D(-1)}}])
    assert sorted(p.code for p in caught.value.problems) == ["dimension.score_missing", "dimension.score_negative"]


def test_delphi_round_statistics_and_convergence() -> None:
    ratings = [{"P": D(8), "Q": D(2)}, {"P": D(9), "Q": D(6)}, {"P": D(10), "Q": D(4)}, {"P": D(9), "Q": D(8)}]
    result = delphi_round(["P", "Q"], ratings)
    p, q = result.stats
    # P sorted 8 9 9 10: mean 9, median 9, q1 = 8 + 0.75 × 1 = 8.75, q3 = 9 + 0.25 × 1 = 9.25,
    # sample variance (1 + 0 + 0 + 1)/3 → std 0.8165, cv 0.8165/9 = 0.0907
    assert (p.mean, p.median, p.q1, p.q3, p.std, p.cv, p.converged) == (
        D("9.00"), D("9.00"), D("8.75"), D("9.25"), D("0.82"), D("0.0907"), True)
    # Q sorted 2 4 6 8: mean 5, q1 = 2 + 0.75 × 2 = 3.5, q3 = 6 + 0.25 × 2 = 6.5, std √(20/3) = 2.58, cv 0.5164
    assert (q.mean, q.median, q.q1, q.q3, q.std, q.cv, q.converged) == (
        D("5.00"), D("5.00"), D("3.50"), D("6.50"), D("2.58"), D("0.5164"), False)
    # every expert ranks P above Q: W = 1
    assert result.kendall_w == D("1.0000") and not result.converged
    assert delphi_round(["P", "Q"], ratings, cv_threshold=D("0.6")).converged


def test_kendall_w_partial_agreement_and_ties() -> None:
    agree_two = [{"a": D(1), "b": D(2), "c": D(3)}] * 2
    # rank sums 5, 6, 7 → S = 1 + 0 + 1 = 2; W = 12 × 2 / (9 × 24) = 0.1111
    assert kendall_w("abc", [*agree_two, {"a": D(3), "b": D(2), "c": D(1)}]) == D("0.1111")
    # ties: ranks 1,2,3 and 1.5,1.5,3 → sums 2.5, 3.5, 6, S = 6.5; T = 2³ − 2 = 6;
    # W = 12 × 6.5 / (4 × 24 − 2 × 6) = 78 / 84 = 0.9286
    assert kendall_w("abc", [{"a": D(1), "b": D(2), "c": D(3)}, {"a": D(1), "b": D(1), "c": D(3)}]) == D("0.9286")
    assert kendall_w("abc", [{"a": D(1), "b": D(2), "c": D(3)}]) is None


def test_delphi_needs_two_experts_and_every_rating() -> None:
    with pytest.raises(WeightDesignError) as caught:
        delphi_round(["P", "Q"], [{"P": D(1)}])
    assert sorted(p.code for p in caught.value.problems) == ["delphi.rating_missing", "delphi.too_few_experts"]


def test_whole_percents_add_up_to_exactly_100_and_respect_a_split() -> None:
    shares = {"X": D("0.5"), "Y": D("0.3"), "Z": D("0.2")}
    plain = propose_weights(shares, {"X": P, "Y": P, "Z": B})
    assert plain.weights == {"X": 50, "Y": 30, "Z": 20} and plain.problems == ()
    split = propose_weights(shares, {"X": P, "Y": P, "Z": B}, split={P: 75, B: 25})
    # performance: 0.5/0.8 × 75 = 46.875, 0.3/0.8 × 75 = 28.125 → 46 + 28 = 74, last unit to X → 47, 28; Z 25
    assert split.weights == {"X": 47, "Y": 28, "Z": 25} and sum(split.weights.values()) == 100
    assert split.problems == ()


def test_apportion_largest_remainder() -> None:
    assert apportion([D(1), D(1), D(1)], 100) == [34, 33, 33]  # 33.33 each, the first gets the last unit
    assert apportion([D(2), D(1)], 10) == [7, 3]               # 6.67 → 7, 3.33 → 3
    assert sum(apportion([D("0.1")] * 7, 100)) == 100
    with pytest.raises(ValueError):
        apportion([D(0)], 10)
    assert Decimal(0) not in apportion([D(5), D(5)], 2)
