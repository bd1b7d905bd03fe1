"""What results trigger: IDP, behaviour shortfall, the promotion list, grade distribution and leniency."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from scoring.decimals import HUNDRED, ZERO, round2
from scoring.periods import PeriodKind
from scoring.results import IndicatorStatus, MemberResult, PeriodResults
from scoring.scheme import Dimension, Scheme


class TriggerInputError(ValueError):
    """Results of the wrong kind for a trigger (e.g. a quarter for the promotion list)."""


@dataclass(frozen=True, slots=True)
class IdpTrigger:
    """Lowest total of a team of enough scored members in each of the consecutive months."""

    member: str
    team: str
    periods: tuple[str, ...]
    totals: tuple[Decimal, ...]


@dataclass(frozen=True, slots=True)
class BehaviorShortfall:
    member: str
    team: str | None
    indicator: str
    score: Decimal
    threshold: Decimal
    # Stable code the edge renders; the scheme's remedy for a weak behaviour is a cross-department project.
    suggestion: str = "cross_department_project"


@dataclass(frozen=True, slots=True)
class PromotionCandidate:
    member: str
    department: str | None
    total: Decimal
    rank: int


@dataclass(frozen=True, slots=True)
class GradeShare:
    grade: str
    count: int
    percent: Decimal
    min_percent: Decimal | None
    max_percent: Decimal | None
    status: str  # "within", "above", "below" or "no_guideline"


@dataclass(frozen=True, slots=True)
class GradeDistribution:
    department: str | None
    scored: int
    shares: tuple[GradeShare, ...]

    @property
    def deviations(self) -> tuple[GradeShare, ...]:
        return tuple(share for share in self.shares if share.status in ("above", "below"))


@dataclass(frozen=True, slots=True)
class Leniency:
    """team mean − department mean of the computed (uncalibrated) totals: > 0 scores more generously."""

    team: str
    manager: str | None
    department: str | None
    members: int
    team_mean: Decimal
    department_mean: Decimal
    index: Decimal


def _lowest_in_teams(scheme: Scheme, results: PeriodResults) -> dict[str, tuple[str, Decimal]]:
    teams: dict[str, list[MemberResult]] = defaultdict(list)
    for result in results.results:
        if result.counts and result.team is not None:
            teams[result.team].append(result)
    lowest: dict[str, tuple[str, Decimal]] = {}
    for team, members in teams.items():
        if len(members) < scheme.results.idp_min_team_size:
            continue
        bottom = min(result.total for result in members)
        for result in members:
            if result.total == bottom:
                lowest[result.member] = (team, result.total)
    return lowest


def idp_triggers(scheme: Scheme, months: Sequence[PeriodResults]) -> tuple[IdpTrigger, ...]:
    """Members last in their team (ties included, teams of at least `idp_min_team_size` complete results)
    in each of the last `idp_consecutive_months` months given, which must be consecutive published months."""
    needed = scheme.results.idp_consecutive_months
    if len(months) < needed:
        return ()
    recent = sorted(months, key=lambda results: (results.period.year, results.period.index))[-needed:]
    for results in recent:
        if results.period.kind is not PeriodKind.MONTH:
            raise TriggerInputError(f"IDP needs monthly results, got {results.period}")
    for earlier, later in zip(recent, recent[1:]):
        if later.period.previous() != earlier.period:
            raise TriggerInputError(f"{earlier.period} and {later.period} are not consecutive months")
    lowest = [_lowest_in_teams(scheme, results) for results in recent]
    members = set(lowest[0]).intersection(*lowest[1:])
    return tuple(
        IdpTrigger(member, lowest[-1][member][0], tuple(str(results.period) for results in recent),
                   tuple(month[member][1] for month in lowest))
        for member in sorted(members)
    )


def behavior_shortfalls(scheme: Scheme, results: PeriodResults) -> tuple[BehaviorShortfall, ...]:
    """Every scored behaviour indicator under the scheme's shortfall threshold (60 by default)."""
    threshold = scheme.results.shortfall_threshold
    found: list[BehaviorShortfall] = []
    for result in results.results:
        for item in result.indicators:
            if (item.dimension == Dimension.BEHAVIOR and item.status is IndicatorStatus.SCORED
                    and item.score is not None and item.score < threshold):
                found.append(BehaviorShortfall(result.member, result.team, item.key, item.score, threshold))
    return tuple(found)


def promotion_list(scheme: Scheme, results: PeriodResults) -> tuple[PromotionCandidate, ...]:
    """The annual top share of each department (10%, rounded up, at least `promotion_min`) by final total.

    Members tied with the last place in the list are included too, so a tie never decides by accident."""
    if results.period.kind is not PeriodKind.YEAR:
        raise TriggerInputError(f"the promotion list needs annual results, got {results.period}")
    departments: dict[str | None, list[MemberResult]] = defaultdict(list)
    for result in results.results:
        if result.counts and result.rank_in_department is not None:
            departments[result.department].append(result)
    chosen: list[PromotionCandidate] = []
    for department in sorted(departments, key=lambda name: (name is not None, name or "")):
        members = departments[department]
        share = (scheme.results.promotion_share * len(members)).to_integral_value(rounding=ROUND_CEILING)
        places = max(int(share), scheme.results.promotion_min)
        for result in sorted(members, key=lambda r: (r.rank_in_department, r.member)):
            if result.rank_in_department <= places:  # type: ignore[operator]
                chosen.append(PromotionCandidate(result.member, department, result.total,
                                                 result.rank_in_department))  # type: ignore[arg-type]
    return tuple(chosen)


def grade_distribution(scheme: Scheme, results: PeriodResults) -> tuple[GradeDistribution, ...]:
    """Share of each grade among complete results per department, against the scheme's guideline.

    Reported only: nothing is changed when a share is outside the guideline."""
    guideline = {band.grade: band for band in scheme.results.distribution}
    departments: dict[str | None, list[MemberResult]] = defaultdict(list)
    for result in results.results:
        if result.counts:
            departments[result.department].append(result)
    reports: list[GradeDistribution] = []
    grades = [band.grade for band in sorted(scheme.grades, key=lambda band: band.min_total, reverse=True)]
    for department in sorted(departments, key=lambda name: (name is not None, name or "")):
        members = departments[department]
        counts = defaultdict(int)
        for result in members:
            counts[result.grade] += 1
        shares: list[GradeShare] = []
        for grade in grades:
            percent = round2(Decimal(counts[grade]) * HUNDRED / len(members))
            band = guideline.get(grade)
            if band is None:
                status = "no_guideline"
            elif band.max_percent is not None and percent > band.max_percent:
                status = "above"
            elif band.min_percent is not None and percent < band.min_percent:
                status = "below"
            else:
                status = "within"
            shares.append(GradeShare(grade, counts[grade], percent,
                                     band.min_percent if band else None, band.max_percent if band else None, status))
        reports.append(GradeDistribution(department, len(members), tuple(shares)))
    return tuple(reports)


def leniency_indexes(results: PeriodResults, managers: Mapping[str, str] | None = None) -> tuple[Leniency, ...]:
    """Per team (and its manager when `managers` maps team → manager): the team's mean computed total minus
    its department's. Uses the original totals: calibration is the remedy, not the thing measured."""
    managers = managers or {}
    departments: dict[str | None, list[Decimal]] = defaultdict(list)
    teams: dict[tuple[str | None, str], list[Decimal]] = defaultdict(list)
    for result in results.results:
        if not result.counts:
            continue
        departments[result.department].append(result.original_total)
        if result.team is not None:
            teams[(result.department, result.team)].append(result.original_total)
    found: list[Leniency] = []
    for (department, team), totals in sorted(teams.items(), key=lambda item: (item[0][0] or "", item[0][1])):
        team_mean = sum(totals, ZERO) / len(totals)
        department_totals = departments[department]
        department_mean = sum(department_totals, ZERO) / len(department_totals)
        found.append(Leniency(team, managers.get(team), department, len(totals), round2(team_mean),
                              round2(department_mean), round2(team_mean - department_mean)))
    return tuple(found)
