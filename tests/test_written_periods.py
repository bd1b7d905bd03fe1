"""Every way a person writes a week, month, quarter or year, read by the one period parser (bot.appraisal.periods)."""
from __future__ import annotations

from datetime import date

import pytest

from bot.appraisal.periods import Week, looks_like_period, parse_period, parse_periods, parse_week, quarter_of
from scoring import Period, PeriodError, PeriodKind

NOVEMBER = Period.month(2026, 11)


@pytest.mark.parametrize("text, expected", [
    # months
    ("2026-11", "2026-11"), ("2026-1", "2026-01"), ("2026/11", "2026-11"), ("2026.11", "2026-11"),
    ("2026年11月", "2026-11"), ("2026 年 11 月", "2026-11"), ("2026年11月份", "2026-11"), ("2026年11", "2026-11"),
    ("２０２６－１１", "2026-11"), (" 2026-11 ", "2026-11"),
    # quarters
    ("2026-Q4", "2026-Q4"), ("2026-q4", "2026-Q4"), ("2026q4", "2026-Q4"), ("2026Q4", "2026-Q4"),
    ("2026 Q4", "2026-Q4"), ("2026年Q4", "2026-Q4"), ("2026年第四季度", "2026-Q4"), ("2026年4季度", "2026-Q4"),
    ("2026年第4季度", "2026-Q4"),
    # years
    ("2026", "2026"), ("2026年", "2026"), ("2026年度", "2026"),
])
def test_forms_that_name_their_year_need_nothing_else(text: str, expected: str) -> None:
    assert str(parse_period(text)) == expected
    assert str(parse_period(text, NOVEMBER)) == expected


@pytest.mark.parametrize("text, expected", [
    ("11月", "2026-11"), ("11月份", "2026-11"), ("1月", "2026-01"), ("12月", "2025-12"),
    ("Q4", "2026-Q4"), ("q1", "2026-Q1"), ("第四季度", "2026-Q4"), ("四季度", "2026-Q4"), ("一季度", "2026-Q1"),
    ("3季度", "2026-Q3"),
])
def test_a_month_or_quarter_without_its_year_is_the_latest_not_after_the_month_given(text: str, expected: str) -> None:
    assert str(parse_period(text, NOVEMBER)) == expected
    assert parse_period(text) is None  # without a month to count back from, it is no period


def test_a_yearless_quarter_counts_back_from_the_quarter_of_the_month_given() -> None:
    assert str(parse_period("Q4", Period.month(2026, 3))) == "2025-Q4"
    assert str(parse_period("Q1", Period.month(2026, 3))) == "2026-Q1"
    assert str(parse_period("12月", Period.quarter(2026, 4))) == "2026-12"


@pytest.mark.parametrize("text", ["2026-13", "13月", "0月", "2026年13月", "Q5", "第五季度", "本周", "张伟", "", "26",
                                  "2026-W48", "12.5"])
def test_text_that_is_no_period(text: str) -> None:
    assert parse_period(text, NOVEMBER) is None


def test_a_kind_asked_for_refuses_the_other_kinds() -> None:
    assert parse_period("2026-Q4", kind=PeriodKind.QUARTER) == Period.quarter(2026, 4)
    assert parse_period("2026-11", kind=PeriodKind.QUARTER) is None
    assert parse_period("2026年11月", kind=PeriodKind.MONTH) == NOVEMBER
    assert parse_period("2026", kind=PeriodKind.MONTH) is None


def test_several_periods_as_a_range_or_a_list() -> None:
    assert [str(p) for p in parse_periods("2026-01..2026-03", NOVEMBER)] == ["2026-01", "2026-02", "2026-03"]
    assert [str(p) for p in parse_periods("2025-Q4..2026-Q1")] == ["2025-Q4", "2026-Q1"]
    assert [str(p) for p in parse_periods("2026-01,2026-03，2026-05、11月", NOVEMBER)] == [
        "2026-01", "2026-03", "2026-05", "2026-11"]
    assert parse_periods("2026") == [Period.whole_year(2026)]


@pytest.mark.parametrize("text, offending", [
    ("2026-03..2026-01", "2026-03..2026-01"),  # backwards
    ("2026-01..2026-Q2", "2026-01..2026-Q2"),  # two kinds
    ("2026-01,2026-13", "2026-13"), (" , ", " , "),
])
def test_several_periods_name_the_part_that_is_wrong(text: str, offending: str) -> None:
    with pytest.raises(PeriodError) as caught:
        parse_periods(text, NOVEMBER)
    assert caught.value.text == offending


@pytest.mark.parametrize("text, like", [
    ("2026-13", True), ("13月", True), ("第五季度", True), ("2026年度", True), ("Q4", True), ("2026-11", True),
    ("张伟", False), ("按时完成", False), ("", False),
])
def test_text_that_only_resembles_a_period_is_told_apart_from_a_note(text: str, like: bool) -> None:
    assert looks_like_period(text) is like


TODAY = date(2026, 11, 27)  # a Friday of 2026-W48


@pytest.mark.parametrize("text, expected", [
    ("2026-W47", "2026-W47"), ("2026W47", "2026-W47"), ("2026-47", "2026-W47"), ("W46", "2026-W46"),
    ("w46", "2026-W46"), ("46", "2026-W46"), ("第45周", "2026-W45"), ("45周", "2026-W45"), ("第 45 周", "2026-W45"),
    ("本周", "2026-W48"), ("这周", "2026-W48"), ("上周", "2026-W47"), ("上上周", "2026-W46"), ("下周", "2026-W49"),
    ("W49", "2026-W49"), ("W50", "2025-W50"),  # more than a week ahead: last year's
])
def test_weeks_as_people_write_them(text: str, expected: str) -> None:
    assert str(parse_week(text, TODAY)) == expected


def test_a_yearless_week_in_january_may_be_last_years() -> None:
    assert str(parse_week("W52", date(2027, 1, 5))) == "2026-W52"
    assert str(parse_week("W53", date(2027, 1, 5))) == "2026-W53"


@pytest.mark.parametrize("text", ["张伟", "2026-W60", "2026-W54", "W0", "第周", "2026-11-27", ""])
def test_text_that_is_no_week(text: str) -> None:
    assert parse_week(text, TODAY) is None


def test_a_week_is_typed_ordered_and_knows_its_days() -> None:
    week = Week.parse("2026-W48")
    assert week == Week(2026, 48) == Week.of(TODAY) and str(week) == "2026-W48"
    assert week.monday == date(2026, 11, 23) and week.days()[-1] == date(2026, 11, 29)
    assert week.shift(-48) == Week(2025, 52) and Week(2025, 52) < week
    for stored in ("2026-W54", "W48", "2026-w48"):
        with pytest.raises(PeriodError):
            Week.parse(stored)


def test_the_quarter_of_a_day() -> None:
    assert quarter_of(date(2026, 11, 27)) == Period.quarter(2026, 4)
    assert quarter_of(date(2027, 1, 1)) == Period.quarter(2027, 1)
