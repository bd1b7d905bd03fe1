"""Scheme validation: every semantic problem of a parsed scheme at once, as typed Problem values."""
from __future__ import annotations

from collections import Counter
from decimal import Decimal

from scoring.problems import Problem, error, warning
from scoring.scheme import (
    GUARDRAIL_OPS,
    RATING_LEVELS,
    BandsRule,
    Cycle,
    Dimension,
    Direction,
    Indicator,
    RatingRule,
    RatioRule,
    Scheme,
)
from scoring.scheme_toml import SchemeSyntaxError, parse_scheme_problems

# The scheme's framework (appraisal-scheme.md, 一、二): the split of weights and the focus on 3-5 KPIs.
TOTAL_WEIGHT = Decimal(100)
PERFORMANCE_SHARE = (Decimal(70), Decimal(80))
BEHAVIOR_SHARE = (Decimal(20), Decimal(30))
PERFORMANCE_COUNT = (3, 5)


def validate(scheme: Scheme) -> list[Problem]:
    """Every problem of the scheme, errors and warnings, in the order of the scheme's parts."""
    problems: list[Problem] = []
    problems += _check_keys(scheme)
    problems += _check_weights(scheme)
    for index, indicator in enumerate(scheme.indicators):
        problems += _check_indicator(scheme, index, indicator)
    problems += _check_grades_and_bonus(scheme)
    problems += _check_result_rules(scheme)
    return problems


def check_scheme(text: str) -> tuple[Scheme | None, list[Problem]]:
    """Parse and validate TOML text: (scheme or None, every problem). Never raises on bad input."""
    try:
        scheme, problems = parse_scheme_problems(text)
    except SchemeSyntaxError as exc:
        return None, [exc.problem]
    if scheme is None:
        return None, problems
    return scheme, validate(scheme)


def _check_keys(scheme: Scheme) -> list[Problem]:
    problems: list[Problem] = []
    if not scheme.key.strip():
        problems.append(error("field.empty", "scheme.key", field="key"))
    if not scheme.indicators:
        problems.append(error("indicators.empty", "indicators"))
    seen: set[str] = set()
    for index, indicator in enumerate(scheme.indicators):
        if not indicator.key.strip():
            problems.append(error("field.empty", f"indicators[{index}].key", field="key"))
        elif indicator.key in seen:
            problems.append(error("indicator.duplicate_key", f"indicators[{index}].key", key=indicator.key))
        seen.add(indicator.key)
    metric_keys: set[str] = set()
    for index, metric in enumerate(scheme.metrics):
        if not metric.key.strip():
            problems.append(error("field.empty", f"metrics[{index}].key", field="key"))
        elif metric.key in metric_keys:
            problems.append(error("metric.duplicate_key", f"metrics[{index}].key", key=metric.key))
        elif metric.key in seen:
            problems.append(error("metric.key_clash", f"metrics[{index}].key", key=metric.key))
        if metric.minimum is not None and metric.maximum is not None and metric.minimum >= metric.maximum:
            problems.append(error("indicator.bounds_invalid", f"metrics[{index}].min", min=metric.minimum,
                                  max=metric.maximum))
        metric_keys.add(metric.key)
    return problems


def _check_weights(scheme: Scheme) -> list[Problem]:
    problems: list[Problem] = []
    if not scheme.indicators:
        return problems
    total = sum((i.weight for i in scheme.indicators), Decimal(0))
    if total != TOTAL_WEIGHT:
        problems.append(error("weights.total", "indicators", total=total, expected=TOTAL_WEIGHT))
    for dimension, (low, high), code in (
        (Dimension.PERFORMANCE, PERFORMANCE_SHARE, "weights.performance_share"),
        (Dimension.BEHAVIOR, BEHAVIOR_SHARE, "weights.behavior_share"),
    ):
        share = scheme.weight_of(dimension)
        if not low <= share <= high:
            problems.append(error(code, "indicators", total=share, low=low, high=high))
    count = sum(1 for i in scheme.indicators if i.dimension == Dimension.PERFORMANCE)
    low_count, high_count = PERFORMANCE_COUNT
    if not low_count <= count <= high_count:
        problems.append(warning("indicators.performance_count", "indicators", count=count,
                                low=low_count, high=high_count))
    if not any(i.cycle == Cycle.MONTH for i in scheme.indicators):
        # The monthly appraisal and its bonus would have nothing to score.
        problems.append(warning("indicators.no_monthly", "indicators"))
    return problems


def _check_indicator(scheme: Scheme, index: int, indicator: Indicator) -> list[Problem]:
    path = f"indicators[{index}]"
    problems: list[Problem] = []
    if not indicator.name.strip():
        problems.append(error("field.empty", f"{path}.name", field="name"))
    if indicator.weight <= 0:
        problems.append(error("indicator.weight_not_positive", f"{path}.weight", weight=indicator.weight))
    if indicator.weight_range is not None:
        low, high = indicator.weight_range.low, indicator.weight_range.high
        if low > high or low < 0:
            problems.append(error("indicator.weight_range_invalid", f"{path}.weight_range", low=low, high=high))
        elif not low <= indicator.weight <= high:
            problems.append(warning("indicator.weight_out_of_range", f"{path}.weight",
                                    weight=indicator.weight, low=low, high=high))
    if indicator.target is not None and indicator.target <= 0:
        problems.append(error("indicator.target_not_positive", f"{path}.target", target=indicator.target))
    if indicator.minimum is not None and indicator.maximum is not None and indicator.minimum >= indicator.maximum:
        problems.append(error("indicator.bounds_invalid", f"{path}.min", min=indicator.minimum,
                              max=indicator.maximum))
    problems += _check_rule(indicator, path)
    metric_keys = {metric.key for metric in scheme.metrics}
    for g_index, guardrail in enumerate(indicator.guardrails):
        g_path = f"{path}.guardrails[{g_index}]"
        if guardrail.metric not in metric_keys:
            problems.append(error("guardrail.unknown_metric", f"{g_path}.metric", metric=guardrail.metric))
        if guardrail.op not in GUARDRAIL_OPS:
            problems.append(error("guardrail.op", f"{g_path}.op", op=guardrail.op, choices=" ".join(GUARDRAIL_OPS)))
        if guardrail.deduct <= 0:
            problems.append(error("guardrail.deduct_not_positive", f"{g_path}.deduct", deduct=guardrail.deduct))
    return problems


def _check_rule(indicator: Indicator, path: str) -> list[Problem]:
    rule_path = f"{path}.rule"
    rule = indicator.rule
    problems: list[Problem] = []
    if isinstance(rule, RatioRule):
        if rule.cap <= 0:
            problems.append(error("rule.cap_not_positive", f"{rule_path}.cap", cap=rule.cap))
    elif isinstance(rule, BandsRule):
        points = rule.points
        if len(points) < 2:
            problems.append(error("rule.bands_too_few", f"{rule_path}.points", count=len(points)))
        xs = [x for x, _ in points]
        if any(b <= a for a, b in zip(xs, xs[1:])):
            problems.append(error("rule.bands_not_increasing", f"{rule_path}.points"))
        scores = [s for _, s in points]
        if any(s < 0 for s in scores):
            problems.append(error("rule.bands_negative_score", f"{rule_path}.points"))
        # A `higher` indicator whose score can fall as the actual rises would contradict its direction.
        rising = all(b >= a for a, b in zip(scores, scores[1:]))
        falling = all(b <= a for a, b in zip(scores, scores[1:]))
        if (indicator.direction == Direction.HIGHER and not rising) or (
                indicator.direction == Direction.LOWER and not falling):
            problems.append(error("rule.bands_direction", f"{rule_path}.points", direction=indicator.direction))
    elif isinstance(rule, RatingRule):
        if indicator.direction != Direction.HIGHER:
            problems.append(error("rule.rating_direction", f"{path}.direction"))
        missing = [level for level in RATING_LEVELS if not indicator.anchors.get(level, "").strip()]
        if missing:
            problems.append(error("indicator.anchors_missing", f"{path}.anchors",
                                  levels=", ".join(str(level) for level in missing)))
    return problems


def _check_grades_and_bonus(scheme: Scheme) -> list[Problem]:
    problems: list[Problem] = []
    if not scheme.grades:
        problems.append(error("grades.empty", "grades"))
    grade_names = Counter(band.grade for band in scheme.grades)
    for index, band in enumerate(scheme.grades):
        if not band.grade.strip():
            problems.append(error("field.empty", f"grades[{index}].grade", field="grade"))
        if grade_names[band.grade] > 1:
            problems.append(error("grades.duplicate", f"grades[{index}].grade", grade=band.grade))
    minimums = Counter(band.min_total for band in scheme.grades)
    for index, band in enumerate(scheme.grades):
        if minimums[band.min_total] > 1:
            problems.append(error("grades.duplicate_min", f"grades[{index}].min", min=band.min_total))
    known = set(grade_names)
    seen_grades: set[str] = set()
    numbers = Counter(bonus.number for bonus in scheme.bonus_classes)
    for index, bonus in enumerate(scheme.bonus_classes):
        path = f"bonus_classes[{index}]"
        if bonus.number < 1:
            problems.append(error("bonus.class_number", f"{path}.class", number=bonus.number))
        elif numbers[bonus.number] > 1:
            problems.append(error("bonus.duplicate_class", f"{path}.class", number=bonus.number))
        if bonus.amount < 0:
            problems.append(error("bonus.amount_negative", f"{path}.amount", amount=bonus.amount))
        for grade in bonus.grades:
            if grade not in known:
                problems.append(error("bonus.unknown_grade", f"{path}.grades", grade=grade))
            elif grade in seen_grades:
                problems.append(error("bonus.duplicate_grade", f"{path}.grades", grade=grade))
            seen_grades.add(grade)
    return problems


def _check_result_rules(scheme: Scheme) -> list[Problem]:
    rules = scheme.results
    problems: list[Problem] = []
    if rules.idp_min_team_size < 2:
        problems.append(error("results.idp_min_team_size", "results.idp_min_team_size",
                              value=rules.idp_min_team_size))
    if rules.idp_consecutive_months < 1:
        problems.append(error("results.idp_consecutive_months", "results.idp_consecutive_months",
                              value=rules.idp_consecutive_months))
    if not 0 <= rules.shortfall_threshold <= 100:
        problems.append(error("results.shortfall_threshold", "results.shortfall_threshold",
                              value=rules.shortfall_threshold))
    if not 0 < rules.promotion_share <= 1:
        problems.append(error("results.promotion_share", "results.promotion_share", value=rules.promotion_share))
    if rules.promotion_min < 0:
        problems.append(error("results.promotion_min", "results.promotion_min", value=rules.promotion_min))
    known = {band.grade for band in scheme.grades}
    for index, band in enumerate(rules.distribution):
        path = f"results.distribution[{index}]"
        if band.grade not in known:
            problems.append(error("distribution.unknown_grade", f"{path}.grade", grade=band.grade))
        low = band.min_percent if band.min_percent is not None else Decimal(0)
        high = band.max_percent if band.max_percent is not None else Decimal(100)
        if not 0 <= low <= high <= 100:
            problems.append(error("distribution.bounds", path, min=band.min_percent, max=band.max_percent))
    return problems
