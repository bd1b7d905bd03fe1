"""Calibration: an adjusted total with reason and author; grade, bonus and ranks follow; the original stays."""
from __future__ import annotations

import pytest

from scoring import Calibration, CalibrationError, apply_calibrations, compute_results
from scoring_builders import D, indicator, member, scheme

ONE = scheme(indicator("m", 100, target=100))


def results():
    return compute_results(ONE, "2026-11", [
        member("a", {("m", "2026-11"): 90}), member("b", {("m", "2026-11"): 80}),
        member("c", {("m", "2026-11"): 70}), member("d", {}),
    ])


def test_grade_bonus_and_ranks_follow_the_adjusted_total_and_the_original_is_kept() -> None:
    calibrated = apply_calibrations(ONE, results(), [Calibration("c", D("95.5"), "季度大促贡献未计入", "boss")])
    c = calibrated.get("c")
    # 70 (C, no bonus, rank 3) → 95.50 (S, class 1, 1200, rank 1)
    assert (c.total, c.original_total, c.grade, c.bonus_class, c.bonus) == (D("95.50"), D("70.00"), "S", 1, D("1200.00"))
    assert c.calibration is not None and (c.calibration.reason, c.calibration.author) == ("季度大促贡献未计入", "boss")
    assert [calibrated.get(m).rank_in_team for m in "abc"] == [2, 3, 1]
    # the uncalibrated input is unchanged: results are values
    assert results().get("c").total == D("70.00")


def test_every_problem_with_calibrations_at_once() -> None:
    bad = [
        Calibration("zz", D(80), "x", "boss"),   # unknown member
        Calibration("d", D(80), "x", "boss"),    # incomplete result
        Calibration("a", D(130), "", " "),       # above the cap (120), no reason, no author
        Calibration("a", D(-1), "x", "boss"),    # twice, negative
    ]
    with pytest.raises(CalibrationError) as caught:
        apply_calibrations(ONE, results(), bad)
    assert sorted(p.code for p in caught.value.problems) == sorted([
        "calibration.unknown_member", "calibration.incomplete_result", "calibration.total_out_of_range",
        "calibration.reason_missing", "calibration.author_missing", "calibration.duplicate_member",
        "calibration.total_out_of_range"])
