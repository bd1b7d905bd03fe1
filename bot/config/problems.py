"""Config problems: each under its key path, all reported at once, and the reader that collects them."""
from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import Any

from bot.templates import render_error

_HH_MM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


@dataclass(frozen=True)
class ConfigProblem:
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class ConfigError(Exception):
    """Every problem found in a config, reported at once."""

    def __init__(self, problems: list[ConfigProblem], source: Path | None = None) -> None:
        self.problems = problems
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(where + "; ".join(str(p) for p in problems))


def problem_text(code: str, **params: Any) -> str:
    """A problem's text: a branch of templates/<locale>/config/problem.txt.j2 (plain code and values without it)."""
    return render_error("config/problem.txt.j2", code, code=code, **params)


class SectionReader:
    """Reads typed values from one TOML table, collecting problems instead of stopping at the first."""

    def __init__(self, data: Mapping[str, Any], prefix: str, problems: list[ConfigProblem]) -> None:
        self.data = data
        self.prefix = prefix
        self.problems = problems
        self.seen: set[str] = set()

    @classmethod
    def of(cls, raw: Mapping[str, Any], name: str, problems: list[ConfigProblem]) -> SectionReader:
        """The reader of the section `[name]` of the whole file (an empty one when it is absent)."""
        value = raw.get(name, {})
        if not isinstance(value, dict):
            problems.append(ConfigProblem(name, problem_text("not_a_section")))
            value = {}
        return cls(value, name, problems)

    def tables(self, key: str, items: list[Any]) -> Iterator[SectionReader]:
        """A reader for each table of the array of tables `key` (`[[weekly_report.questions]]`); an item that is
        no table is a problem."""
        for index, item in enumerate(items):
            reader = SectionReader(item if isinstance(item, dict) else {}, f"{self.prefix}.{key}[{index}]",
                                   self.problems)
            if isinstance(item, dict):
                yield reader
            else:
                reader.problem("", "not_a_table", of=key)

    def problem(self, key: str, code: str, **params: Any) -> None:
        self.problems.append(ConfigProblem(f"{self.prefix}.{key}" if key else self.prefix,
                                           problem_text(code, **params)))

    def get(self, key: str, kind: type, default: Any = ..., required: bool = False) -> Any:
        self.seen.add(key)
        if key not in self.data:
            if required:
                self.problem(key, "required")
            return None if default is ... else default
        value = self.data[key]
        if isinstance(value, bool) and kind in (int, float):
            self.problem(key, "wrong_kind", kind=kind.__name__, got=repr(value))
            return default if default is not ... else None
        if kind is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, kind):
            self.problem(key, "wrong_kind", kind=kind.__name__, got=type(value).__name__)
            return default if default is not ... else None
        return value

    def check_unknown(self) -> None:
        for key in self.data:
            if key not in self.seen:
                self.problem(key, "unknown_key")

    def positive(self, key: str, value: int | float | None, upper: int | None = None) -> None:
        if value is None:
            return
        if value <= 0 or (upper is not None and value > upper):
            self.problem(key, "out_of_range", limit=f"1..{upper}" if upper else "> 0", got=value)

    def time(self, key: str, default: time) -> time:
        """An HH:MM local time."""
        text = self.get(key, str, default=None)
        if text is None:
            return default
        match = _HH_MM.fullmatch(text)
        if not match:
            self.problem(key, "not_a_time", got=repr(text))
            return default
        return time(int(match.group(1)), int(match.group(2)))

    def strings(self, key: str, default: list[str]) -> tuple[str, ...]:
        """A list of non-empty strings (each stripped)."""
        value = self.get(key, list, default=default)
        if value is None:
            return ()
        if not all(isinstance(item, str) and item.strip() for item in value):
            self.problem(key, "not_strings", of=key)
            return ()
        return tuple(item.strip() for item in value)

    def department_ids(self, key: str, value: list[Any] | None, fallback: list[int]) -> list[int] | None:
        """`value` (read with get) when it is a list of department ids (positive integers), else `fallback`."""
        if value is not None and not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in value):
            self.problem(key, "not_department_ids")
            return fallback
        return value
