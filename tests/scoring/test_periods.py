"""Periods: parsing the three forms, expanding to months and quarters, stepping back."""
from __future__ import annotations

import pytest

from scoring import Period, PeriodError, PeriodKind


@pytest.mark.parametrize("text, kind, index, canonical", [
    ("2026-11", PeriodKind.MONTH, 11, "2026-11"),
    ("2026-3", PeriodKind.MONTH, 3, "2026-03"),
    ("2026-Q4", PeriodKind.QUARTER, 4, "2026-Q4"),
    ("2026-q1", PeriodKind.QUARTER, 1, "2026-Q1"),
    ("2026", PeriodKind.YEAR, 0, "2026"),
])
def test_parse_and_canonical_text(text: str, kind: PeriodKind, index: int, canonical: str) -> None:
    period = Period.parse(text)
    assert (period.year, period.kind, period.index) == (2026, kind, index)
    assert str(period) == canonical


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "2026-Q5", "26-11", "2026/11", "", "Q4-2026"])
def test_rejects_what_is_not_a_period(text: str) -> None:
    with pytest.raises(PeriodError):
        Period.parse(text)


def test_quarter_months_and_year_quarters() -> None:
    assert [str(m) for m in Period.parse("2026-Q4").months()] == ["2026-10", "2026-11", "2026-12"]
    assert [str(q) for q in Period.parse("2026").quarters()] == ["2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4"]
    assert len(Period.parse("2026").months()) == 12
    assert Period.parse("2026-11").quarters() == ()
    assert Period.parse("2026-11").months() == (Period.parse("2026-11"),)


def test_previous_crosses_year_boundaries() -> None:
    assert str(Period.parse("2026-01").previous()) == "2025-12"
    assert str(Period.parse("2026-11").previous()) == "2026-10"
    assert str(Period.parse("2026-Q1").previous()) == "2025-Q4"
    assert str(Period.parse("2026").previous()) == "2025"
