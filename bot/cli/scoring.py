"""`kpibot scheme check` and `kpibot score preview`: the scoring engine on files, text from templates."""
from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from bot.appraisal.datafile import DataFileError, read_data_file, rows_to_members
from bot.cli.support import CliError, cli_error, help_text, subcommand_group
from bot.config.schemes import SchemeLoadError, SchemeSource, check_scheme_source
from bot.templates import render
from scoring import (
    BandsRule,
    Dimension,
    MemberResult,
    Period,
    PeriodError,
    PeriodResults,
    Problem,
    RatioRule,
    Scheme,
    compute_results,
)
from scoring.decimals import format2
from scoring.scheme import Indicator, WeightRange


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    text = functools.partial(help_text, "scoring")
    scheme = subcommand_group(subparsers, "scheme", text("scheme"))
    check = scheme.add_parser("check", help=text("scheme.check"))
    check.add_argument("source", metavar="FILE_OR_PRESET", help=text("scheme.check.FILE_OR_PRESET"))
    check.set_defaults(func=run_scheme_check)

    score = subcommand_group(subparsers, "score", text("score"))
    preview = score.add_parser("preview", help=text("score.preview"))
    preview.add_argument("--scheme", required=True, metavar="FILE_OR_PRESET", help=text("score.preview.--scheme"))
    preview.add_argument("--data", required=True, metavar="CSV", help=text("score.preview.--data"))
    preview.add_argument("--period", required=True, metavar="P", help=text("score.preview.--period"))
    preview.add_argument("--format", choices=("table", "json"), default="table", help=text("score.preview.--format"))
    preview.set_defaults(func=run_score_preview)


# --- shared helpers ----------------------------------------------------------------------------------


def _text(value: object) -> str:
    """Problem parameters as display text: Decimals without exponent noise."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral_value() else format(value, "f")
    return str(value)


def problem_view(problem: Problem) -> dict[str, Any]:
    return {"severity": problem.severity.value, "code": problem.code, "path": problem.path,
            "params": {name: _text(value) for name, value in problem.params.items()}}


def _load_source(source: str) -> tuple[SchemeSource, Scheme | None, list[Problem]]:
    try:
        return check_scheme_source(source)
    except SchemeLoadError as exc:
        raise cli_error(exc.code, **{k: _text(v) for k, v in exc.params.items()}) from exc


def _rule_view(indicator: Indicator) -> dict[str, str]:
    rule = indicator.rule
    if isinstance(rule, RatioRule):
        return {"kind": "ratio", "detail": _text(rule.cap)}
    if isinstance(rule, BandsRule):
        return {"kind": "bands", "detail": " ".join(f"{_text(x)}→{_text(y)}" for x, y in rule.points)}
    return {"kind": "rating", "detail": ""}


def _range_text(weight_range: WeightRange | None) -> str:
    if weight_range is None:
        return ""
    if weight_range.low == weight_range.high:
        return _text(weight_range.low)
    return f"{_text(weight_range.low)}-{_text(weight_range.high)}"


def _indicator_rows(scheme: Scheme) -> list[dict[str, Any]]:
    rows = []
    for indicator in scheme.indicators:
        rows.append({
            "key": indicator.key, "name": indicator.name, "dimension": indicator.dimension.value,
            "category": indicator.category, "weight": _text(indicator.weight),
            "range": _range_text(indicator.weight_range),
            "cycle": indicator.cycle.value, "direction": indicator.direction.value,
            "rule": _rule_view(indicator),
            "target": _text(indicator.target) if indicator.target is not None else "",
            "unit": indicator.unit,
            "guardrails": [{"metric": g.metric, "op": g.op, "threshold": _text(g.threshold),
                            "deduct": _text(g.deduct)} for g in indicator.guardrails],
        })
    return rows


# --- scheme check ------------------------------------------------------------------------------------


def run_scheme_check(args: argparse.Namespace) -> int:
    source, scheme, problems = _load_source(args.source)
    error_count = sum(1 for problem in problems if problem.is_error)
    print(render(
        "cli/scheme_check.txt.j2",
        source={"kind": source.kind, "name": source.name},
        scheme=({"key": scheme.key, "name": scheme.name, "performance": _text(scheme.weight_of(Dimension.PERFORMANCE)),
                 "behavior": _text(scheme.weight_of(Dimension.BEHAVIOR))} if scheme else None),
        indicators=_indicator_rows(scheme) if scheme else [],
        problems=[problem_view(problem) for problem in problems],
        error_count=error_count,
        warning_count=len(problems) - error_count,
    ))
    return 1 if error_count else 0


# --- score preview -----------------------------------------------------------------------------------


def _member_json(result: MemberResult) -> dict[str, Any]:
    def optional(value: Decimal | None) -> str | None:
        return format2(value) if value is not None else None

    # A provisional total carries no grade or bonus (a payroll script reading this must not pay it); a member
    # not appraised this period has no total at all.
    final = result.complete and result.appraised
    return {
        "member": result.member,
        "team": result.team,
        "total": format2(result.total) if result.appraised else None,
        "grade": result.grade if final else None,
        "bonus_class": result.bonus_class if final else None,
        "bonus": optional(result.bonus) if final else None,
        "complete": result.complete,
        "provisional": result.provisional,
        "appraised": result.appraised,
        "missing": list(result.missing),
        "rank_in_team": result.rank_in_team,
        "rank_in_department": result.rank_in_department,
        "dimensions": {"performance": format2(result.dimensions.performance),
                       "behavior": format2(result.dimensions.behavior)},
        "indicators": [
            {
                "key": item.key,
                "status": item.status.value,
                "value": optional(item.value),
                "target": optional(item.target),
                "score": optional(item.score),
                "weight": format2(item.weight),
                "deductions": [
                    {"metric": d.metric, "period": d.period, "value": format2(d.actual), "op": d.op,
                     "threshold": format2(d.threshold), "points": format2(d.points)}
                    for d in item.deductions
                ],
            }
            for item in result.indicators
        ],
    }


def results_json(results: PeriodResults, scheme_problems: Iterable[Problem] = ()) -> dict[str, Any]:
    """The contract's JSON: numbers as strings with 2 decimals, bonus_class an integer or null."""
    return {
        "period": str(results.period),
        "scheme": results.scheme_key,
        "results": [_member_json(result) for result in results.results],
        "problems": [problem_view(problem) for problem in [*scheme_problems, *results.problems]],
    }


def run_score_preview(args: argparse.Namespace) -> int:
    source, scheme, problems = _load_source(args.scheme)
    if scheme is None or any(problem.is_error for problem in problems):
        print(render("cli/scheme_invalid.txt.j2", scheme_name=source.name,
                     problems=[problem_view(problem) for problem in problems if problem.is_error]),
              file=sys.stderr)
        return 1
    try:
        period = Period.parse(args.period)
    except PeriodError as exc:
        raise cli_error("period.invalid", period=args.period) from exc
    try:
        rows = read_data_file(args.data)
    except DataFileError as exc:
        raise CliError(render("cli/datafile_error.txt.j2", path=exc.path,
                              errors=[{"line": e.line, "code": e.code,
                                       "params": {k: _text(v) for k, v in e.params.items()}}
                                      for e in exc.errors])) from exc
    results = compute_results(scheme, period, rows_to_members(rows))
    if args.format == "json":
        print(json.dumps(results_json(results, problems), ensure_ascii=False, indent=2))
        return 0
    names = {indicator.key: indicator.name for indicator in scheme.indicators}
    print(render(
        "cli/score_preview.txt.j2",
        scheme={"key": scheme.key, "name": scheme.name},
        period=str(period),
        results=[_member_json(result) for result in results.results],
        names=names,
        problems=[problem_view(problem) for problem in [*problems, *results.problems]],
    ))
    return 0
