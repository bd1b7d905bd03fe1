"""The scheme's TOML form: parsing text into a Scheme, every field-level problem reported at once."""
from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, TypeVar

from scoring.decimals import to_decimal
from scoring.problems import Problem, error
from scoring.scheme import (DEFAULT_BONUS_CLASSES, DEFAULT_GRADES, RATING_LEVELS, BandsRule, BonusClass, Cycle,
                            Dimension, Direction, DistributionBand, GradeBand, Guardrail, Indicator, Metric,
                            RatingRule, RatioRule, ResultRules, Rule, RuleKind, Scheme, WeightRange)


class SchemeSyntaxError(ValueError):
    """The text is not TOML."""

    def __init__(self, message: str, line: int | None, column: int | None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column

    @property
    def problem(self) -> Problem:
        return error("toml.syntax", "", line=self.line, column=self.column, detail=self.message)


class SchemeFormatError(ValueError):
    """TOML that is not a scheme: every field-level problem at once."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} problem(s) in the scheme's format")
        self.problems = tuple(problems)


_T = TypeVar("_T")
_MISSING = object()
_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)")


class _Reader:
    """Reads typed fields out of TOML tables, recording a problem instead of stopping at the first."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def fail(self, code: str, path: str, **params: object) -> None:
        self.problems.append(error(code, path, **params))

    def check_keys(self, table: Mapping[str, Any], allowed: set[str], path: str) -> None:
        for name in table:
            if name not in allowed:
                self.fail("field.unknown", _join(path, name), field=name)

    def table(self, parent: Mapping[str, Any], name: str, path: str, required: bool = False) -> Mapping[str, Any]:
        value = parent.get(name, _MISSING)
        if value is _MISSING:
            if required:
                self.fail("field.missing", _join(path, name), field=name)
            return {}
        if not isinstance(value, dict):
            self.fail("field.type", _join(path, name), field=name, expected="table")
            return {}
        return value

    def tables(self, parent: Mapping[str, Any], name: str, path: str) -> list[Mapping[str, Any]]:
        value = parent.get(name, _MISSING)
        if value is _MISSING:
            return []
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            self.fail("field.type", _join(path, name), field=name, expected="array_of_tables")
            return []
        return value

    def string(self, table: Mapping[str, Any], name: str, path: str, default: str | None = None) -> str:
        value = table.get(name, _MISSING)
        if value is _MISSING:
            if default is None:
                self.fail("field.missing", _join(path, name), field=name)
                return ""
            return default
        if not isinstance(value, str):
            self.fail("field.type", _join(path, name), field=name, expected="string")
            return ""
        return value

    def number(self, table: Mapping[str, Any], name: str, path: str, required: bool = True) -> Decimal | None:
        value = table.get(name, _MISSING)
        if value is _MISSING:
            if required:
                self.fail("field.missing", _join(path, name), field=name)
            return None
        number = to_decimal(value)
        if number is None:
            self.fail("field.type", _join(path, name), field=name, expected="number")
        return number

    def integer(self, table: Mapping[str, Any], name: str, path: str, default: int) -> int:
        value = table.get(name, _MISSING)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail("field.type", _join(path, name), field=name, expected="integer")
            return default
        return value

    def choice(self, table: Mapping[str, Any], name: str, path: str, enum: Callable[[str], _T],
               choices: tuple[str, ...], default: str | None = None) -> _T | None:
        value = table.get(name, default)
        if value is None:
            self.fail("field.missing", _join(path, name), field=name)
            return None
        if not isinstance(value, str):
            self.fail("field.type", _join(path, name), field=name, expected="string")
            return None
        if value not in choices:
            self.fail("field.choice", _join(path, name), field=name, value=value, choices=", ".join(choices))
            return None
        return enum(value)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


_INDICATOR_FIELDS = {"key", "name", "dimension", "category", "weight", "weight_range", "cycle", "source",
                     "direction", "rule", "target", "guardrails", "anchors", "unit", "min", "max"}


def _parse_rule(reader: _Reader, table: Mapping[str, Any], path: str) -> Rule | None:
    rule_path = _join(path, "rule")
    raw = reader.table(table, "rule", path, required=True)
    if not raw and "rule" not in table:
        return None
    kind = reader.choice(raw, "type", rule_path, RuleKind, tuple(RuleKind))
    if kind is RuleKind.RATIO:
        reader.check_keys(raw, {"type", "cap"}, rule_path)
        cap = reader.number(raw, "cap", rule_path, required=False)
        return RatioRule(cap if cap is not None else Decimal(120))
    if kind is RuleKind.BANDS:
        reader.check_keys(raw, {"type", "points"}, rule_path)
        points_raw = raw.get("points", _MISSING)
        points_path = _join(rule_path, "points")
        if points_raw is _MISSING:
            reader.fail("field.missing", points_path, field="points")
            return None
        if not isinstance(points_raw, list):
            reader.fail("field.type", points_path, field="points", expected="array_of_pairs")
            return None
        points: list[tuple[Decimal, Decimal]] = []
        for index, pair in enumerate(points_raw):
            numbers = [to_decimal(item) for item in pair] if isinstance(pair, list) else []
            if len(numbers) != 2 or None in numbers:
                reader.fail("field.type", f"{points_path}[{index}]", field="points", expected="pair_of_numbers")
                continue
            points.append((numbers[0], numbers[1]))  # type: ignore[arg-type]
        return BandsRule(tuple(points))
    if kind is RuleKind.RATING:
        reader.check_keys(raw, {"type"}, rule_path)
        return RatingRule()
    return None


def _parse_anchors(reader: _Reader, table: Mapping[str, Any], path: str) -> dict[int, str]:
    raw = reader.table(table, "anchors", path)
    anchors: dict[int, str] = {}
    for level_text, text in raw.items():
        level_path = _join(_join(path, "anchors"), level_text)
        if level_text not in {str(level) for level in RATING_LEVELS}:
            reader.fail("field.choice", level_path, field="anchors", value=level_text, choices="1, 2, 3, 4, 5")
        elif not isinstance(text, str):
            reader.fail("field.type", level_path, field="anchors", expected="string")
        else:
            anchors[int(level_text)] = text
    return anchors


def _parse_indicator(reader: _Reader, table: Mapping[str, Any], path: str) -> Indicator | None:
    before = len(reader.problems)
    reader.check_keys(table, _INDICATOR_FIELDS, path)
    key = reader.string(table, "key", path)
    name = reader.string(table, "name", path)
    dimension = reader.choice(table, "dimension", path, Dimension, tuple(Dimension))
    category = reader.string(table, "category", path, default="")
    weight = reader.number(table, "weight", path)
    cycle = reader.choice(table, "cycle", path, Cycle, tuple(Cycle))
    source = reader.string(table, "source", path, default="")
    direction = reader.choice(table, "direction", path, Direction, tuple(Direction), default="higher")
    target = reader.number(table, "target", path, required=False)
    unit = reader.string(table, "unit", path, default="")
    minimum = reader.number(table, "min", path, required=False)
    maximum = reader.number(table, "max", path, required=False)
    weight_range: WeightRange | None = None
    if "weight_range" in table:
        raw_range = table["weight_range"]
        numbers = [to_decimal(item) for item in raw_range] if isinstance(raw_range, list) else []
        if len(numbers) != 2 or None in numbers:
            reader.fail("field.type", _join(path, "weight_range"), field="weight_range", expected="pair_of_numbers")
        else:
            weight_range = WeightRange(numbers[0], numbers[1])  # type: ignore[arg-type]
    rule = _parse_rule(reader, table, path)
    guardrails: list[Guardrail] = []
    for index, raw in enumerate(reader.tables(table, "guardrails", path)):
        guard_path = f"{path}.guardrails[{index}]"
        reader.check_keys(raw, {"metric", "op", "threshold", "deduct"}, guard_path)
        metric = reader.string(raw, "metric", guard_path)
        op = reader.string(raw, "op", guard_path)
        threshold = reader.number(raw, "threshold", guard_path)
        deduct = reader.number(raw, "deduct", guard_path)
        if threshold is not None and deduct is not None:
            guardrails.append(Guardrail(metric, op, threshold, deduct))
    anchors = _parse_anchors(reader, table, path)
    if len(reader.problems) > before or None in (dimension, weight, cycle, direction, rule):
        return None
    return Indicator(key=key, name=name, dimension=dimension, category=category, weight=weight,  # type: ignore[arg-type]
                     cycle=cycle, source=source, direction=direction, rule=rule,  # type: ignore[arg-type]
                     target=target, weight_range=weight_range, guardrails=tuple(guardrails),
                     anchors=anchors, unit=unit, minimum=minimum, maximum=maximum)


def _parse_result_rules(reader: _Reader, document: Mapping[str, Any]) -> ResultRules:
    raw = reader.table(document, "results", "")
    reader.check_keys(raw, {"idp_min_team_size", "idp_consecutive_months", "shortfall_threshold",
                            "promotion_share", "promotion_min", "distribution"}, "results")
    defaults = ResultRules()
    threshold = reader.number(raw, "shortfall_threshold", "results", required=False)
    share = reader.number(raw, "promotion_share", "results", required=False)
    distribution: list[DistributionBand] = []
    for index, band in enumerate(reader.tables(raw, "distribution", "results")):
        band_path = f"results.distribution[{index}]"
        reader.check_keys(band, {"grade", "min", "max"}, band_path)
        distribution.append(DistributionBand(
            grade=reader.string(band, "grade", band_path),
            min_percent=reader.number(band, "min", band_path, required=False),
            max_percent=reader.number(band, "max", band_path, required=False),
        ))
    return ResultRules(
        idp_min_team_size=reader.integer(raw, "idp_min_team_size", "results", defaults.idp_min_team_size),
        idp_consecutive_months=reader.integer(raw, "idp_consecutive_months", "results",
                                              defaults.idp_consecutive_months),
        shortfall_threshold=threshold if threshold is not None else defaults.shortfall_threshold,
        promotion_share=share if share is not None else defaults.promotion_share,
        promotion_min=reader.integer(raw, "promotion_min", "results", defaults.promotion_min),
        distribution=tuple(distribution),
    )


def parse_scheme_problems(text: str) -> tuple[Scheme | None, list[Problem]]:
    """Parse without raising on format problems: (scheme, []) or (None, every format problem).

    Raises SchemeSyntaxError when the text is not TOML at all."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        position = _TOML_POSITION.search(message)
        line, column = (int(position.group(1)), int(position.group(2))) if position else (None, None)
        raise SchemeSyntaxError(message, line, column) from None
    reader = _Reader()
    reader.check_keys(document, {"scheme", "metrics", "indicators", "grades", "bonus_classes", "results"}, "")
    head = reader.table(document, "scheme", "", required=True)
    reader.check_keys(head, {"key", "name", "description"}, "scheme")
    key = reader.string(head, "key", "scheme") if head else ""
    name = reader.string(head, "name", "scheme") if head else ""
    description = reader.string(head, "description", "scheme", default="")

    metrics: list[Metric] = []
    for index, raw in enumerate(reader.tables(document, "metrics", "")):
        path = f"metrics[{index}]"
        reader.check_keys(raw, {"key", "name", "unit", "min", "max"}, path)
        metrics.append(Metric(reader.string(raw, "key", path), reader.string(raw, "name", path, default=""),
                              reader.string(raw, "unit", path, default=""),
                              reader.number(raw, "min", path, required=False),
                              reader.number(raw, "max", path, required=False)))

    indicators: list[Indicator] = []
    raw_indicators = reader.tables(document, "indicators", "")
    if "indicators" not in document:
        reader.fail("field.missing", "indicators", field="indicators")
    for index, raw in enumerate(raw_indicators):
        indicator = _parse_indicator(reader, raw, f"indicators[{index}]")
        if indicator is not None:
            indicators.append(indicator)

    grades: list[GradeBand] = []
    for index, raw in enumerate(reader.tables(document, "grades", "")):
        path = f"grades[{index}]"
        reader.check_keys(raw, {"grade", "min"}, path)
        grade = reader.string(raw, "grade", path)
        minimum = reader.number(raw, "min", path)
        if minimum is not None:
            grades.append(GradeBand(grade, minimum))

    bonus_classes: list[BonusClass] = []
    for index, raw in enumerate(reader.tables(document, "bonus_classes", "")):
        path = f"bonus_classes[{index}]"
        reader.check_keys(raw, {"class", "grades", "amount"}, path)
        number = reader.integer(raw, "class", path, default=0)
        if "class" not in raw:
            reader.fail("field.missing", _join(path, "class"), field="class")
        raw_grades = raw.get("grades", [])
        if not isinstance(raw_grades, list) or not all(isinstance(g, str) for g in raw_grades):
            reader.fail("field.type", _join(path, "grades"), field="grades", expected="array_of_strings")
            raw_grades = []
        amount = reader.number(raw, "amount", path)
        if amount is not None:
            bonus_classes.append(BonusClass(number, tuple(raw_grades), amount))

    results = _parse_result_rules(reader, document)
    if reader.problems:
        return None, reader.problems
    return Scheme(
        key=key, name=name, description=description, indicators=tuple(indicators), metrics=tuple(metrics),
        grades=tuple(grades) if "grades" in document else DEFAULT_GRADES,
        bonus_classes=tuple(bonus_classes) if "bonus_classes" in document else DEFAULT_BONUS_CLASSES,
        results=results,
    ), []


def parse_scheme(text: str) -> Scheme:
    """Parse a scheme from TOML text; raises SchemeSyntaxError or SchemeFormatError (with every problem).

    A parsed scheme is well-typed but not necessarily valid: run `validate` on it."""
    scheme, problems = parse_scheme_problems(text)
    if scheme is None:
        raise SchemeFormatError(problems)
    return scheme
