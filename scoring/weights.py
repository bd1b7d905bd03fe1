"""Weight design: the weight-factor judgment table, dimension scoring, Delphi rounds and whole-percent weights."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, localcontext

from scoring.decimals import ZERO, apportion, round2, round_to
from scoring.problems import Problem, error
from scoring.results import DECIMAL_CONTEXT
from scoring.scheme import Dimension
from scoring.validation import BEHAVIOR_SHARE, PERFORMANCE_SHARE

# 权值因子判断表: 4 = far more important than the other, 3 = more, 2 = as important, 1 = less, 0 = far less.
JUDGMENT_SCALE = (0, 1, 2, 3, 4)
DEFAULT_CV_THRESHOLD = Decimal("0.2")


class WeightDesignError(ValueError):
    """Expert input that cannot be used; carries every problem at once."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} problem(s) in the experts' input")
        self.problems = tuple(problems)


def _shares(raw: Sequence[Decimal]) -> list[Decimal]:
    total = sum(raw, ZERO)
    if total == 0:
        return [ZERO for _ in raw]
    return [value / total for value in raw]


def factor_judgment_weights(keys: Sequence[str], tables: Sequence[Sequence[Sequence[int]]]) -> dict[str, Decimal]:
    """Relative weights (adding up to 1) from every expert's judgment table.

    `tables[e][i][j]` is expert e's judgment of indicator i against j on the 0-4 scale; the diagonal is
    ignored and a pair must add up to 4. Row sums are averaged over the experts, then normalised."""
    size = len(keys)
    problems: list[Problem] = []
    if size < 2:
        problems.append(error("weights.too_few_indicators", "keys", count=size))
    if not tables:
        problems.append(error("weights.no_experts", "tables"))
    for e, table in enumerate(tables):
        if len(table) != size or any(len(row) != size for row in table):
            problems.append(error("judgment.shape", f"tables[{e}]", size=size))
            continue
        for i in range(size):
            for j in range(size):
                if i == j:
                    continue
                value = table[i][j]
                if value not in JUDGMENT_SCALE or isinstance(value, bool):
                    problems.append(error("judgment.value", f"tables[{e}][{i}][{j}]", value=value))
                elif j > i and table[j][i] in JUDGMENT_SCALE and value + table[j][i] != 4:
                    problems.append(error("judgment.inconsistent", f"tables[{e}][{i}][{j}]",
                                          first=keys[i], second=keys[j], value=value, mirror=table[j][i]))
    if problems:
        raise WeightDesignError(problems)
    with localcontext(DECIMAL_CONTEXT):
        row_means = [
            Decimal(sum(sum(table[i][j] for j in range(size) if j != i) for table in tables)) / len(tables)
            for i in range(size)
        ]
        return dict(zip(keys, _shares(row_means)))


def dimension_scoring_weights(
    keys: Sequence[str],
    dimension_weights: Mapping[str, Decimal],
    scores: Sequence[Mapping[str, Mapping[str, Decimal]]],
) -> dict[str, Decimal]:
    """Relative weights (adding up to 1) from experts scoring each indicator on weighted dimensions.

    `scores[e][indicator][dimension]`, e.g. dimensions {"strategic_relevance": 0.6, "urgency": 0.4}.
    Each indicator's value is Σ dimension weight × the experts' mean score; the values are normalised."""
    problems: list[Problem] = []
    if not keys:
        problems.append(error("weights.too_few_indicators", "keys", count=0))
    if not scores:
        problems.append(error("weights.no_experts", "scores"))
    if not dimension_weights or any(weight <= 0 for weight in dimension_weights.values()):
        problems.append(error("dimension.weights", "dimension_weights"))
    for e, expert in enumerate(scores):
        for key in keys:
            for dimension in dimension_weights:
                value = expert.get(key, {}).get(dimension)
                if value is None:
                    problems.append(error("dimension.score_missing", f"scores[{e}].{key}.{dimension}",
                                          indicator=key, dimension=dimension))
                elif value < 0:
                    problems.append(error("dimension.score_negative", f"scores[{e}].{key}.{dimension}",
                                          indicator=key, dimension=dimension, value=value))
    if problems:
        raise WeightDesignError(problems)
    with localcontext(DECIMAL_CONTEXT):
        composite = [
            sum((weight * sum((expert[key][dimension] for expert in scores), ZERO) / len(scores)
                 for dimension, weight in dimension_weights.items()), ZERO)
            for key in keys
        ]
        return dict(zip(keys, _shares(composite)))


@dataclass(frozen=True, slots=True)
class DelphiStats:
    """One indicator's ratings in one round; `cv` = sample standard deviation / mean (None if mean is 0)."""

    key: str
    mean: Decimal
    median: Decimal
    q1: Decimal
    q3: Decimal
    std: Decimal
    cv: Decimal | None
    converged: bool


@dataclass(frozen=True, slots=True)
class DelphiRound:
    stats: tuple[DelphiStats, ...]
    kendall_w: Decimal | None
    cv_threshold: Decimal
    converged: bool


def _quantile(ordered: list[Decimal], fraction: Decimal) -> Decimal:
    """Linear interpolation between order statistics at (n − 1) × fraction (the common "type 7")."""
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _ranks(values: list[Decimal]) -> tuple[list[Decimal], int]:
    """Ascending ranks with ties given their average rank, and Σ(t³ − t) over the tie groups."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [ZERO] * len(values)
    ties = 0
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        average = Decimal(start + end + 2) / 2
        for position in range(start, end + 1):
            ranks[order[position]] = average
        size = end - start + 1
        ties += size ** 3 - size
        start = end + 1
    return ranks, ties


def kendall_w(keys: Sequence[str], ratings: Sequence[Mapping[str, Decimal]]) -> Decimal | None:
    """Kendall's coefficient of concordance across experts (tie-corrected), 0 = no agreement, 1 = full."""
    m, n = len(ratings), len(keys)
    if m < 2 or n < 2:
        return None
    with localcontext(DECIMAL_CONTEXT):
        rank_sums = [ZERO] * n
        tie_total = 0
        for expert in ratings:
            ranks, ties = _ranks([expert[key] for key in keys])
            tie_total += ties
            rank_sums = [total + rank for total, rank in zip(rank_sums, ranks)]
        mean = sum(rank_sums, ZERO) / n
        spread = sum(((total - mean) ** 2 for total in rank_sums), ZERO)
        denominator = Decimal(m * m * (n ** 3 - n) - m * tie_total)
        if denominator == 0:
            return None
        return round_to(12 * spread / denominator, 4)


def delphi_round(keys: Sequence[str], ratings: Sequence[Mapping[str, Decimal]],
                 cv_threshold: Decimal = DEFAULT_CV_THRESHOLD) -> DelphiRound:
    """Statistics of one Delphi round: per indicator mean, median, quartiles, sample std dev and CV;
    Kendall's W; converged when every CV is under `cv_threshold` (0.2 by default)."""
    problems: list[Problem] = []
    if len(ratings) < 2:
        problems.append(error("delphi.too_few_experts", "ratings", count=len(ratings)))
    for e, expert in enumerate(ratings):
        for key in keys:
            if key not in expert:
                problems.append(error("delphi.rating_missing", f"ratings[{e}].{key}", indicator=key))
    if problems:
        raise WeightDesignError(problems)
    stats: list[DelphiStats] = []
    with localcontext(DECIMAL_CONTEXT):
        for key in keys:
            values = sorted(expert[key] for expert in ratings)
            mean = sum(values, ZERO) / len(values)
            std = (sum(((value - mean) ** 2 for value in values), ZERO) / (len(values) - 1)).sqrt()
            cv = std / mean if mean != 0 else None
            stats.append(DelphiStats(
                key=key, mean=round2(mean), median=round2(_quantile(values, Decimal("0.5"))),
                q1=round2(_quantile(values, Decimal("0.25"))), q3=round2(_quantile(values, Decimal("0.75"))),
                std=round2(std), cv=round_to(cv, 4) if cv is not None else None,
                converged=cv is not None and abs(cv) < cv_threshold,
            ))
    return DelphiRound(tuple(stats), kendall_w(keys, ratings), cv_threshold,
                       bool(stats) and all(item.converged for item in stats))


@dataclass(frozen=True, slots=True)
class WeightProposal:
    """Whole-percent weights adding up to exactly 100, and any problem with the 70-80 / 20-30 split."""

    weights: Mapping[str, int] = field(hash=False)
    problems: tuple[Problem, ...] = ()


def propose_weights(shares: Mapping[str, Decimal], dimensions: Mapping[str, Dimension],
                    split: Mapping[Dimension, int] | None = None) -> WeightProposal:
    """Turn relative weights into whole percents (largest remainder, exactly 100 in all).

    Without `split` the shares are apportioned over 100 as they are; with a split such as
    {PERFORMANCE: 75, BEHAVIOR: 25} each dimension's shares are apportioned over its own budget."""
    problems: list[Problem] = []
    keys = list(shares)
    for key in keys:
        if key not in dimensions:
            problems.append(error("weights.unknown_dimension", f"dimensions.{key}", indicator=key))
    if problems:
        raise WeightDesignError(problems)
    weights: dict[str, int] = {}
    if split is None:
        weights = dict(zip(keys, apportion([shares[key] for key in keys], 100)))
    else:
        if sum(split.values()) != 100:
            raise WeightDesignError([error("weights.split_total", "split", total=sum(split.values()))])
        for dimension, budget in split.items():
            members = [key for key in keys if dimensions[key] == dimension]
            if members:
                weights.update(zip(members, apportion([shares[key] for key in members], budget)))
        weights = {key: weights.get(key, 0) for key in keys}
    for dimension, (low, high), code in (
        (Dimension.PERFORMANCE, PERFORMANCE_SHARE, "weights.performance_share"),
        (Dimension.BEHAVIOR, BEHAVIOR_SHARE, "weights.behavior_share"),
    ):
        total = sum(weight for key, weight in weights.items() if dimensions[key] == dimension)
        if not low <= total <= high:
            problems.append(error(code, "weights", total=Decimal(total), low=low, high=high))
    for key, weight in weights.items():
        if weight == 0:
            problems.append(error("weights.zero", f"weights.{key}", indicator=key))
    return WeightProposal(weights, tuple(problems))
