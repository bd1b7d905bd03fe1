"""Typed problems (scheme, data, calibration): a severity, a stable code, a path and parameters, never prose."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem. `code` is stable (templates map it to a sentence); `path` points into the input,
    e.g. ``indicators[2].weight`` or ``data.alice.content_output@2026-11``."""

    severity: Severity
    code: str
    path: str = ""
    # Excluded from the hash because a dict is unhashable; equality still compares it.
    params: Mapping[str, object] = field(default_factory=dict, hash=False)

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR


def error(code: str, path: str = "", **params: object) -> Problem:
    return Problem(Severity.ERROR, code, path, params)


def warning(code: str, path: str = "", **params: object) -> Problem:
    return Problem(Severity.WARNING, code, path, params)


def errors(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity is Severity.ERROR]


def warnings(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity is Severity.WARNING]


def sort_key(problem: Problem) -> tuple[int, str, str, str]:
    """Errors first, then by path and code, so reports do not depend on input order."""
    return (0 if problem.is_error else 1, problem.path, problem.code, repr(sorted(problem.params.items(), key=str)))
