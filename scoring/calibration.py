"""Calibration as a layer over computed results: an adjusted total with reason and author; the grade follows."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from decimal import Decimal

from scoring.decimals import round2
from scoring.problems import Problem, error
from scoring.results import Calibration, MemberResult, PeriodResults, grade_and_bonus, rank_results
from scoring.scheme import Scheme


class CalibrationError(ValueError):
    """Calibrations that cannot be applied; carries every problem at once."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} calibration problem(s)")
        self.problems = tuple(problems)


def check_calibrations(scheme: Scheme, results: PeriodResults, calibrations: Iterable[Calibration]) -> list[Problem]:
    """Every problem with the calibrations: unknown or incomplete member, twice the same member, a total
    outside 0..the scheme's highest score, an empty reason or author."""
    known = {result.member: result for result in results.results}
    problems: list[Problem] = []
    seen: set[str] = set()
    for index, calibration in enumerate(calibrations):
        path = f"calibrations[{index}]"
        result = known.get(calibration.member)
        if result is None:
            problems.append(error("calibration.unknown_member", path, member=calibration.member))
        elif not result.complete:
            # A provisional total is not published, so there is nothing to calibrate yet.
            problems.append(error("calibration.incomplete_result", path, member=calibration.member))
        elif not result.appraised:
            # Not appraised this period: there is no total to adjust.
            problems.append(error("calibration.not_appraised", path, member=calibration.member))
        if calibration.member in seen:
            problems.append(error("calibration.duplicate_member", path, member=calibration.member))
        seen.add(calibration.member)
        if not Decimal(0) <= calibration.adjusted_total <= scheme.max_score:
            problems.append(error("calibration.total_out_of_range", path, member=calibration.member,
                                  total=calibration.adjusted_total, high=scheme.max_score))
        if not calibration.reason.strip():
            problems.append(error("calibration.reason_missing", path, member=calibration.member))
        if not calibration.author.strip():
            problems.append(error("calibration.author_missing", path, member=calibration.member))
    return problems


def apply_calibrations(scheme: Scheme, results: PeriodResults, calibrations: Iterable[Calibration]) -> PeriodResults:
    """Results with the calibrations applied: total, grade, bonus and ranks follow the adjusted total;
    `original_total` keeps what the engine computed. Applying to already calibrated results replaces the
    earlier calibration of the same member. Raises CalibrationError with every problem."""
    calibrations = list(calibrations)
    problems = check_calibrations(scheme, results, calibrations)
    if problems:
        raise CalibrationError(problems)
    by_member = {calibration.member: calibration for calibration in calibrations}
    updated: list[MemberResult] = []
    for result in results.results:
        calibration = by_member.get(result.member)
        if calibration is None:
            updated.append(result)
            continue
        total = round2(calibration.adjusted_total)
        grade, bonus_class, bonus = grade_and_bonus(scheme, results.period, total)
        updated.append(replace(result, total=total, grade=grade, bonus_class=bonus_class, bonus=bonus,
                               calibration=replace(calibration, adjusted_total=total)))
    return replace(results, results=tuple(rank_results(updated)))
