"""kpibot's pure scoring engine: schemes as data, validation, period results, calibration, triggers.

No I/O, no clock: frozen dataclasses and Decimal (half-up, 2 places) in and out. Usage::

    from decimal import Decimal
    from scoring import MemberData, WAIVED, check_scheme, compute_results, preset_text

    scheme, problems = check_scheme(preset_text("seed-executor"))
    alice = MemberData("alice", team="growth", department="community",
                       values={("content_output", "2026-11"): Decimal(22), ("response_time", "2026-11"): WAIVED})
    results = compute_results(scheme, "2026-11", [alice])
    result = results.get("alice")
    print(result.total, result.grade, result.complete, result.missing)
"""
from scoring.calibration import CalibrationError, apply_calibrations, check_calibrations
from scoring.decimals import apportion, round2
from scoring.health import HealthFlag, HealthThresholds, IndicatorHealth, indicator_health
from scoring.periods import Period, PeriodError, PeriodKind
from scoring.problems import Problem, Severity
from scoring.results import (
    WAIVED,
    Calibration,
    DimensionSubtotals,
    DuplicateMemberError,
    IndicatorResult,
    IndicatorStatus,
    MemberData,
    MemberResult,
    PeriodResults,
    Value,
    Waiver,
    competition_ranks,
    compute_results,
    indicator_periods,
)
from scoring.rules import Deduction, IndicatorScore, Unscorable, score_value
from scoring.scheme import (
    BandsRule,
    BonusClass,
    Cycle,
    Dimension,
    Direction,
    DistributionBand,
    GradeBand,
    Guardrail,
    Indicator,
    Metric,
    RatingRule,
    RatioRule,
    ResultRules,
    Rule,
    Scheme,
    WeightRange,
)
from scoring.scheme_presets import UnknownPresetError, preset_names, preset_text
from scoring.scheme_toml import SchemeFormatError, SchemeSyntaxError, parse_scheme
from scoring.triggers import (
    BehaviorShortfall,
    GradeDistribution,
    GradeShare,
    IdpTrigger,
    Leniency,
    PromotionCandidate,
    TriggerInputError,
    behavior_shortfalls,
    grade_distribution,
    idp_triggers,
    leniency_indexes,
    promotion_list,
)
from scoring.validation import check_scheme, validate
from scoring.weights import (
    DelphiRound,
    DelphiStats,
    WeightDesignError,
    WeightProposal,
    delphi_round,
    dimension_scoring_weights,
    factor_judgment_weights,
    kendall_w,
    propose_weights,
)

__all__ = [
    "WAIVED", "BandsRule", "BehaviorShortfall", "BonusClass", "Calibration", "CalibrationError", "Cycle",
    "Deduction", "DelphiRound", "DelphiStats", "Dimension", "DimensionSubtotals", "Direction",
    "DistributionBand", "DuplicateMemberError", "GradeBand", "GradeDistribution", "GradeShare", "Guardrail",
    "HealthFlag", "HealthThresholds", "IdpTrigger", "Indicator", "IndicatorHealth", "IndicatorResult",
    "IndicatorScore", "IndicatorStatus", "Leniency", "MemberData", "MemberResult", "Metric", "Period",
    "PeriodError", "PeriodKind", "PeriodResults", "Problem", "PromotionCandidate", "RatingRule", "RatioRule",
    "ResultRules", "Rule", "Scheme", "SchemeFormatError", "SchemeSyntaxError", "Severity", "TriggerInputError",
    "Unscorable", "UnknownPresetError", "Value", "Waiver", "WeightDesignError", "WeightProposal", "WeightRange",
    "apply_calibrations", "apportion", "behavior_shortfalls", "check_calibrations", "check_scheme",
    "competition_ranks", "compute_results", "delphi_round", "dimension_scoring_weights",
    "factor_judgment_weights", "grade_distribution", "idp_triggers", "indicator_health", "indicator_periods",
    "kendall_w", "leniency_indexes", "parse_scheme", "preset_names", "preset_text", "promotion_list",
    "propose_weights", "round2", "score_value", "validate",
]
