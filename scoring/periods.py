"""Appraisal periods: a month (2026-11), a quarter (2026-Q4) or a year (2026), parsed and expanded."""
from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class PeriodKind(StrEnum):
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"


class PeriodError(ValueError):
    """Text that is not a period; carries the offending text for the edge to report."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")
_QUARTER = re.compile(r"^(\d{4})-[Qq]([1-4])$")
_YEAR = re.compile(r"^(\d{4})$")


@dataclass(frozen=True, slots=True)
class Period:
    """One appraisal period. `index` is the month (1-12), the quarter (1-4) or 0 for a year."""

    year: int
    kind: PeriodKind
    index: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", PeriodKind(self.kind))  # accept "month" as well as PeriodKind.MONTH
        limits = {PeriodKind.MONTH: (1, 12), PeriodKind.QUARTER: (1, 4), PeriodKind.YEAR: (0, 0)}
        low, high = limits[self.kind]
        if not (low <= self.index <= high) or not (1 <= self.year <= 9999):
            raise PeriodError(f"{self.year}/{self.kind}/{self.index}")

    @classmethod
    def parse(cls, text: str) -> Period:
        text = text.strip()
        if match := _MONTH.match(text):
            month = int(match.group(2))
            if not 1 <= month <= 12:
                raise PeriodError(text)
            return cls(int(match.group(1)), PeriodKind.MONTH, month)
        if match := _QUARTER.match(text):
            return cls(int(match.group(1)), PeriodKind.QUARTER, int(match.group(2)))
        if match := _YEAR.match(text):
            return cls(int(match.group(1)), PeriodKind.YEAR, 0)
        raise PeriodError(text)

    @classmethod
    def month(cls, year: int, month: int) -> Period:
        return cls(year, PeriodKind.MONTH, month)

    @classmethod
    def quarter(cls, year: int, quarter: int) -> Period:
        return cls(year, PeriodKind.QUARTER, quarter)

    @classmethod
    def whole_year(cls, year: int) -> Period:
        return cls(year, PeriodKind.YEAR, 0)

    def __str__(self) -> str:
        if self.kind is PeriodKind.MONTH:
            return f"{self.year:04d}-{self.index:02d}"
        if self.kind is PeriodKind.QUARTER:
            return f"{self.year:04d}-Q{self.index}"
        return f"{self.year:04d}"

    def months(self) -> tuple[Period, ...]:
        """The months this period covers, in calendar order."""
        if self.kind is PeriodKind.MONTH:
            return (self,)
        if self.kind is PeriodKind.QUARTER:
            first = 3 * (self.index - 1) + 1
            return tuple(Period.month(self.year, m) for m in range(first, first + 3))
        return tuple(Period.month(self.year, m) for m in range(1, 13))

    def quarters(self) -> tuple[Period, ...]:
        """The quarters this period covers; a month lies inside one quarter but covers none."""
        if self.kind is PeriodKind.QUARTER:
            return (self,)
        if self.kind is PeriodKind.YEAR:
            return tuple(Period.quarter(self.year, q) for q in range(1, 5))
        return ()

    def previous(self) -> Period:
        """The period of the same kind just before this one."""
        if self.kind is PeriodKind.MONTH:
            if self.index == 1:
                return Period.month(self.year - 1, 12)
            return Period.month(self.year, self.index - 1)
        if self.kind is PeriodKind.QUARTER:
            if self.index == 1:
                return Period.quarter(self.year - 1, 4)
            return Period.quarter(self.year, self.index - 1)
        return Period.whole_year(self.year - 1)

    def next(self) -> Period:
        """The period of the same kind just after this one."""
        if self.kind is PeriodKind.MONTH:
            return Period.month(self.year + 1, 1) if self.index == 12 else Period.month(self.year, self.index + 1)
        if self.kind is PeriodKind.QUARTER:
            return Period.quarter(self.year + 1, 1) if self.index == 4 else Period.quarter(self.year, self.index + 1)
        return Period.whole_year(self.year + 1)
