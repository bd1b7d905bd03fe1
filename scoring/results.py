"""Period results: indicator roll-ups, waivers, completeness, renormalised totals, grades, bonus and ranks."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext
from enum import Enum, StrEnum
from functools import lru_cache

from scoring.decimals import ZERO, apportion, round2
from scoring.periods import Period, PeriodError, PeriodKind
from scoring.problems import Problem, error, sort_key, warning
from scoring.rules import COMPARISONS, Deduction, RuleFunction, Unscorable, rule_function
from scoring.scheme import Cycle, Dimension, Indicator, RatioRule, Scheme


class Waiver(Enum):
    """The one non-numeric value: the indicator does not apply to this member in this period."""

    WAIVED = "waived"

    def __repr__(self) -> str:
        return "WAIVED"


WAIVED = Waiver.WAIVED
Value = Decimal | Waiver
# Values and targets are keyed by (indicator or metric key, period text such as "2026-11", "2026-Q4", "2026").
DataKey = tuple[str, str]

# Every computation runs in this context so a caller's decimal settings cannot change a result.
DECIMAL_CONTEXT = Context(prec=28, rounding=ROUND_HALF_UP)
ZERO_SCORE = Decimal("0.00")


@dataclass(frozen=True, slots=True)
class MemberData:
    """What is known about one member: actuals (or WAIVED) and targets per (key, period)."""

    member: str
    team: str | None
    department: str | None
    values: Mapping[DataKey, Value] = field(default_factory=dict, hash=False)
    targets: Mapping[DataKey, Decimal] = field(default_factory=dict, hash=False)
    # The months ("2026-07") the member was appraised in; None = all of them. A quarter or year is scored over
    # these months only: sub-periods wholly outside them are neither scored nor missing.
    months: frozenset[str] | None = None


class IndicatorStatus(StrEnum):
    SCORED = "scored"    # has a score (provisional when `missing` is not empty)
    WAIVED = "waived"    # every period waived: drops out, its weight goes to the others
    MISSING = "missing"  # nothing scorable: the result is incomplete


@dataclass(frozen=True, slots=True)
class IndicatorResult:
    """One indicator in one member's period result.

    `value` and `target` are the means over the sub-periods that were scored; `score` is the mean of their
    rounded scores; `weight` is the renormalised weight in this result (0 when not counted)."""

    key: str
    dimension: Dimension
    cycle: Cycle
    status: IndicatorStatus
    value: Decimal | None
    target: Decimal | None
    score: Decimal | None
    weight: Decimal
    scheme_weight: Decimal
    deductions: tuple[Deduction, ...] = ()
    missing: tuple[str, ...] = ()
    periods_scored: int = 0
    periods_waived: int = 0


@dataclass(frozen=True, slots=True)
class DimensionSubtotals:
    """Each dimension's contribution to the total (Σ weight × score of its indicators / Σ weights counted)."""

    performance: Decimal
    behavior: Decimal


@dataclass(frozen=True, slots=True)
class Calibration:
    """A manager's adjustment of one member's total, with the reason and who made it."""

    member: str
    adjusted_total: Decimal
    reason: str
    author: str


@dataclass(frozen=True, slots=True)
class MemberResult:
    """One member's result for one period. `total` is final (calibrated when `calibration` is set);
    `original_total` is what the engine computed. Incomplete results have a provisional total and no rank."""

    member: str
    team: str | None
    department: str | None
    period: Period
    total: Decimal
    original_total: Decimal
    grade: str
    bonus_class: int | None
    bonus: Decimal | None
    complete: bool
    missing: tuple[str, ...]
    dimensions: DimensionSubtotals
    indicators: tuple[IndicatorResult, ...]
    rank_in_team: int | None = None
    rank_in_department: int | None = None
    calibration: Calibration | None = None
    # False when nothing was left to score (everything waived, or no month of the period appraised): no total,
    # grade, rank or bonus, and the result counts for nothing (IDPs, ranks, the distribution).
    appraised: bool = True
    # The months the result covers when fewer than the period's (a mid-year start); empty = the whole period.
    months: tuple[str, ...] = ()

    @property
    def counts(self) -> bool:
        """Whether the result takes part in ranks, IDPs, the distribution and the promotion list."""
        return self.complete and self.appraised

    @property
    def provisional(self) -> bool:
        """An incomplete result: its total is provisional (暂定) and it carries no grade-based bonus."""
        return not self.complete

    def indicator(self, key: str) -> IndicatorResult:
        for item in self.indicators:
            if item.key == key:
                return item
        raise KeyError(key)


@dataclass(frozen=True, slots=True)
class PeriodResults:
    """Every member's result for one period (sorted by member) and the data problems found on the way."""

    scheme_key: str
    period: Period
    results: tuple[MemberResult, ...]
    problems: tuple[Problem, ...] = ()

    def get(self, member: str) -> MemberResult:
        for result in self.results:
            if result.member == member:
                return result
        raise KeyError(member)

    @property
    def complete(self) -> tuple[MemberResult, ...]:
        return tuple(result for result in self.results if result.counts)


class DuplicateMemberError(ValueError):
    """The same member appears twice in one computation."""

    def __init__(self, member: str) -> None:
        super().__init__(member)
        self.member = member


# --- planning: what each indicator needs for a period, computed once per (scheme, period) -------------


@dataclass(frozen=True, slots=True)
class _SubPeriod:
    key: DataKey                      # (indicator key, period text) for the value and the target
    label: str                        # "indicator@period", as listed in `missing`
    period: str
    guards: tuple[tuple[DataKey, str, Decimal, Decimal, str], ...]  # (metric key, op, threshold, deduct, label)


@dataclass(frozen=True, slots=True)
class _IndicatorPlan:
    indicator: Indicator
    subperiods: tuple[_SubPeriod, ...]
    uses_target: bool


def indicator_periods(indicator: Indicator, period: Period) -> tuple[Period, ...]:
    """The sub-periods whose values make up the indicator in `period`; empty when it is not scored then.

    A month scores monthly indicators; a quarter its quarterly ones and monthly ones over its months;
    a year everything, monthly and quarterly ones over its months and quarters."""
    if indicator.cycle == Cycle.MONTH:
        return period.months()
    if indicator.cycle == Cycle.QUARTER:
        return period.quarters()
    return (period,) if period.kind is PeriodKind.YEAR else ()


@lru_cache(maxsize=64)
def _plan(scheme: Scheme, period: Period) -> tuple[_IndicatorPlan, ...]:
    plans: list[_IndicatorPlan] = []
    for indicator in scheme.indicators:
        subs: list[_SubPeriod] = []
        for sub in indicator_periods(indicator, period):
            text = str(sub)
            guards = tuple(((g.metric, text), g.op, g.threshold, g.deduct, f"{g.metric}@{text}")
                           for g in indicator.guardrails)
            subs.append(_SubPeriod((indicator.key, text), f"{indicator.key}@{text}", text, guards))
        if subs:
            plans.append(_IndicatorPlan(indicator, tuple(subs), isinstance(indicator.rule, RatioRule)))
    return tuple(plans)


@lru_cache(maxsize=256)
def _renormalised(weights: tuple[Decimal, ...]) -> tuple[Decimal, ...]:
    """Weights of the indicators counted, scaled to 100.00 exactly (largest remainder in hundredths)."""
    hundredths = apportion(list(weights), 10000)
    return tuple(Decimal(units).scaleb(-2) for units in hundredths)


# --- computing -------------------------------------------------------------------------------------


def compute_results(scheme: Scheme, period: Period | str, members: Iterable[MemberData]) -> PeriodResults:
    """Every member's result for `period`: scores, totals, grades, bonus (months only) and ranks.

    The scheme should be valid (see `validate`). Unknown keys in the data are reported as problems."""
    if isinstance(period, str):
        period = Period.parse(period)
    with localcontext(DECIMAL_CONTEXT):
        plan = _plan(scheme, period)
        functions = [rule_function(item.indicator) for item in plan]
        checker = _DataChecker(scheme, period, plan)
        results: list[MemberResult] = []
        seen: set[str] = set()
        for data in members:
            if data.member in seen:
                raise DuplicateMemberError(data.member)
            seen.add(data.member)
            checker.check(data)
            results.append(_member_result(scheme, period, plan, functions, data, checker))
        results.sort(key=lambda result: result.member)
        ranked = rank_results(results)
    return PeriodResults(scheme.key, period, tuple(ranked), tuple(sorted(checker.problems(), key=sort_key)))


def _mean(values: list[Decimal]) -> Decimal:
    return round2(sum(values, ZERO) / len(values))


def _member_result(scheme: Scheme, period: Period, plan: tuple[_IndicatorPlan, ...], functions: list[RuleFunction],
                   data: MemberData, checker: _DataChecker) -> MemberResult:
    values = data.values
    targets = data.targets
    appraised_months = data.months
    rows: list[tuple[_IndicatorPlan, IndicatorStatus, Decimal | None, Decimal | None, Decimal | None,
                     tuple[Deduction, ...], tuple[str, ...], int, int]] = []
    all_missing: list[str] = []
    for item, function in zip(plan, functions):
        indicator = item.indicator
        default_target = indicator.target
        scores: list[Decimal] = []
        actuals: list[Decimal] = []
        used_targets: list[Decimal] = []
        deductions: list[Deduction] = []
        missing: list[str] = []
        waived = 0
        for sub in item.subperiods:
            if appraised_months is not None and not _overlaps(sub.period, appraised_months):
                continue  # before the member's first month (or after their last): not expected
            actual = values.get(sub.key)
            if actual is None:
                missing.append(sub.label)
                continue
            if actual is WAIVED:
                waived += 1
                continue
            target = targets.get(sub.key, default_target) if item.uses_target else None
            score = function(actual, target)
            if isinstance(score, Unscorable):
                missing.append(sub.label)
                checker.unscorable(data.member, sub.label, score, actual)
                continue
            for metric_key, op, threshold, deduct, label in sub.guards:
                metric_value = values.get(metric_key)
                if metric_value is WAIVED:
                    continue  # waived on purpose: no deduction, and nothing is missing
                if metric_value is None:
                    # Reported as missing so the data-quality check sees it; it deducts nothing.
                    if label not in missing:
                        missing.append(label)
                elif COMPARISONS[op](metric_value, threshold):
                    score -= deduct
                    deductions.append(Deduction(metric_key[0], op, threshold, metric_value, deduct, sub.period))
            scores.append(round2(score) if score > 0 else ZERO_SCORE)
            actuals.append(actual)
            if target is not None:
                used_targets.append(target)
        if scores:
            status = IndicatorStatus.SCORED
            if len(scores) == 1:
                score_value: Decimal | None = scores[0]
                value: Decimal | None = actuals[0]
                target_value = used_targets[0] if used_targets else None
            else:
                score_value = _mean(scores)
                value = _mean(actuals)
                target_value = _mean(used_targets) if len(used_targets) == len(actuals) else None
        else:
            status = IndicatorStatus.MISSING if missing else IndicatorStatus.WAIVED
            score_value = value = target_value = None
        all_missing.extend(missing)
        rows.append((item, status, value, target_value, score_value, tuple(deductions), tuple(missing),
                     len(scores), waived))

    counted = [(row[0].indicator, row[4]) for row in rows if row[1] is IndicatorStatus.SCORED]
    weight_sum = sum((indicator.weight for indicator, _ in counted), ZERO)
    performance = behavior = ZERO
    if weight_sum > 0:
        for indicator, score in counted:
            if indicator.dimension == Dimension.PERFORMANCE:
                performance += indicator.weight * score  # type: ignore[operator]
            else:
                behavior += indicator.weight * score  # type: ignore[operator]
        total = round2((performance + behavior) / weight_sum)
        subtotals = DimensionSubtotals(round2(performance / weight_sum), round2(behavior / weight_sum))
        shares = iter(_renormalised(tuple(indicator.weight for indicator, _ in counted)))
    else:
        total = ZERO_SCORE
        subtotals = DimensionSubtotals(ZERO_SCORE, ZERO_SCORE)
        shares = iter(())

    indicators = tuple(
        IndicatorResult(
            key=item.indicator.key, dimension=item.indicator.dimension, cycle=item.indicator.cycle,
            status=status, value=value, target=target_value, score=score_value,
            weight=next(shares) if status is IndicatorStatus.SCORED else ZERO_SCORE,
            scheme_weight=item.indicator.weight, deductions=deductions, missing=missing,
            periods_scored=scored, periods_waived=waived,
        )
        for item, status, value, target_value, score_value, deductions, missing, scored, waived in rows
    )
    appraised = bool(counted) or bool(all_missing)
    if appraised:
        grade, bonus_class, bonus = grade_and_bonus(scheme, period, total)
    else:
        grade, bonus_class, bonus = "", None, None
    covered: tuple[str, ...] = ()
    if appraised_months is not None:
        inside = tuple(str(month) for month in period.months() if str(month) in appraised_months)
        covered = inside if len(inside) < len(period.months()) else ()
    return MemberResult(
        member=data.member, team=data.team, department=data.department, period=period,
        total=total, original_total=total, grade=grade, bonus_class=bonus_class, bonus=bonus,
        complete=not all_missing, missing=tuple(all_missing), dimensions=subtotals, indicators=indicators,
        appraised=appraised, months=covered,
    )


@lru_cache(maxsize=256)
def _months_of(period_text: str) -> frozenset[str]:
    return frozenset(str(month) for month in Period.parse(period_text).months())


def _overlaps(period_text: str, months: frozenset[str]) -> bool:
    return not _months_of(period_text).isdisjoint(months)


def grade_and_bonus(scheme: Scheme, period: Period, total: Decimal) -> tuple[str, int | None, Decimal | None]:
    """The grade of a total and, for a month, its bonus class and amount (0.00 when no class applies).

    Quarters and years carry no bonus: the scheme pays a monthly bonus only (bonus class and amount None)."""
    grade = scheme.grade_for(total)
    if period.kind is not PeriodKind.MONTH:
        return grade, None, None
    bonus_class = scheme.bonus_class_for(grade)
    if bonus_class is None:
        return grade, None, ZERO_SCORE
    return grade, bonus_class.number, round2(bonus_class.amount)


def competition_ranks(totals: Sequence[Decimal]) -> list[int]:
    """Standard competition ranking, highest first: equal totals share a rank and leave a gap (1, 2, 2, 4)."""
    ordered = sorted(totals, reverse=True)
    first_position: dict[Decimal, int] = {}
    for position, total in enumerate(ordered, start=1):
        first_position.setdefault(total, position)
    return [first_position[total] for total in totals]


def rank_results(results: Sequence[MemberResult]) -> list[MemberResult]:
    """Ranks within team and department by final total; incomplete results and members without a team
    get no team rank. Members without a department are ranked together as one group."""
    team_groups: dict[str, list[int]] = defaultdict(list)
    department_groups: dict[str | None, list[int]] = defaultdict(list)
    for index, result in enumerate(results):
        if not result.counts:
            continue
        if result.team is not None:
            team_groups[result.team].append(index)
        department_groups[result.department].append(index)
    team_rank: dict[int, int] = {}
    department_rank: dict[int, int] = {}
    for groups, ranks in ((team_groups, team_rank), (department_groups, department_rank)):
        for indexes in groups.values():
            for index, rank in zip(indexes, competition_ranks([results[i].total for i in indexes])):
                ranks[index] = rank
    return [
        _replace_ranks(result, team_rank.get(index), department_rank.get(index))
        for index, result in enumerate(results)
    ]


def _replace_ranks(result: MemberResult, team: int | None, department: int | None) -> MemberResult:
    if result.rank_in_team == team and result.rank_in_department == department:
        return result
    return replace(result, rank_in_team=team, rank_in_department=department)


# --- data problems -----------------------------------------------------------------------------------


class _DataChecker:
    """Collects data problems across members: unknown keys, values in a period the indicator does not use,
    unscorable values. One problem per unknown key (with a member count) keeps reports short."""

    def __init__(self, scheme: Scheme, period: Period, plan: tuple[_IndicatorPlan, ...]) -> None:
        self._indicator_keys = {indicator.key for indicator in scheme.indicators}
        self._known_keys = self._indicator_keys | {metric.key for metric in scheme.metrics}
        self._expected: set[DataKey] = {sub.key for item in plan for sub in item.subperiods}
        self._months = {str(month) for month in period.months()}
        self._inside: dict[str, bool | None] = {}
        self._unknown: dict[str, list[str]] = defaultdict(list)
        self._misplaced: dict[DataKey, list[str]] = defaultdict(list)
        self._bad_periods: dict[str, list[str]] = defaultdict(list)
        self._no_target: dict[str, list[tuple[str, str]]] = defaultdict(list)
        self._problems: list[Problem] = []

    def _is_inside(self, text: str) -> bool | None:
        """Whether a period text lies inside the period computed; None when it is not a period."""
        if text not in self._inside:
            try:
                parsed = Period.parse(text)
            except PeriodError:
                self._inside[text] = None
            else:
                self._inside[text] = all(str(month) in self._months for month in parsed.months())
        return self._inside[text]

    def check(self, data: MemberData) -> None:
        expected = self._expected
        for key in data.values:
            if key in expected:
                continue
            name, text = key
            if name not in self._known_keys:
                self._unknown[name].append(data.member)
                continue
            inside = self._is_inside(text)
            if inside is None:
                self._bad_periods[text].append(data.member)
            elif inside and name in self._indicator_keys:
                self._misplaced[key].append(data.member)

    def unscorable(self, member: str, label: str, reason: Unscorable, actual: Decimal) -> None:
        if reason is Unscorable.NO_TARGET:
            self._no_target[label.split("@", 1)[0]].append((member, label))
        else:
            self._problems.append(error("data.invalid_rating", f"data.{member}.{label}", member=member,
                                        item=label, value=actual))

    def problems(self) -> list[Problem]:
        found = list(self._problems)
        for name, members in self._unknown.items():
            found.append(warning("data.unknown_key", f"data.{name}", key=name, members=len(members),
                                 first_member=min(members)))
        for name, cases in self._no_target.items():
            member, label = min(cases)
            found.append(error("data.no_target", f"data.{name}", key=name, count=len(cases),
                               first_member=member, first_item=label))
        for text, members in self._bad_periods.items():
            found.append(error("data.invalid_period", f"data.{text}", period=text, members=len(members),
                               first_member=min(members)))
        for (name, text), members in self._misplaced.items():
            found.append(warning("data.unexpected_period", f"data.{name}@{text}", key=name, period=text,
                                 members=len(members), first_member=min(members)))
        return found
