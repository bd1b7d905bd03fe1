"""Every way a person writes a week, month, quarter or year, read into a typed Week or scoring.Period.

Text stops here: past these functions a period is a `scoring.Period` (month, quarter, year) or a `Week`, never
a string a caller still has to understand. A form without its year ("11月", "Q4", "W46") means the latest such
period not after the one given as `latest`; without `latest` only forms that name their year are read."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from scoring import Period, PeriodError, PeriodKind

_FULL_WIDTH = str.maketrans("０１２３４５６７８９．，－＋％／", "0123456789.,-+%/")
_QUARTER_NUMERALS = {"一": 1, "二": 2, "三": 3, "四": 4}

_MONTH_OF_YEAR = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*(?:月份?)?$")
_MONTH_ALONE = re.compile(r"^(\d{1,2})\s*月份?$")
_COMPACT_QUARTER = re.compile(r"^(?:(\d{4})\s*[-年]?\s*)?[Qq]([1-4])$")
_CHINESE_QUARTER = re.compile(r"^(?:(\d{4})\s*年\s*)?(?:第)?([一二三四1-4])\s*季度$")
_YEAR = re.compile(r"^(\d{4})\s*(?:年度?)?$")
_RANGE_SEPARATOR = ".."
_LIST_SEPARATORS = re.compile(r"[,，、]")
_MOST_PERIODS_IN_A_RANGE = 120  # ten years of months: more is a typing slip, not a plan

_ISO_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_WEEK = re.compile(r"(?:(\d{4})\s*-?\s*)?[wW第]?\s*(\d{1,2})\s*周?")
_WEEK_MARK = re.compile(r"[wW第周]")
_RELATIVE_WEEKS = {"本周": 0, "这周": 0, "上周": -1, "上上周": -2, "下周": 1}
# Loose enough for text that only resembles a period ("2026-13", "13月", "第五季度"): a caller can then say
# "that period is wrong" instead of reading the word as the start of a note.
_PERIOD_LIKE = re.compile(r"^(\d{4}|[Qq][1-4]$|\d{1,2}月)|季度|年度?$")


def normalise(text: str) -> str:
    """Surrounding space off, full-width digits and signs as ASCII (what a Chinese keyboard types)."""
    return text.strip().translate(_FULL_WIDTH)


# -- months, quarters, years ------------------------------------------------------------------------------------
def parse_period(text: str, latest: Period | None = None, kind: PeriodKind | None = None) -> Period | None:
    """2026-11, 2026/11, 2026年11月, 11月(份); 2026-Q4, 2026q4, Q4, 2026年第四季度, 四季度; 2026, 2026年(度).

    None when the text is no period (or not one of `kind`). A month or quarter without its year is the latest
    one not after the month `latest`; without `latest` such a form is no period."""
    found = _read_period(normalise(text), latest)
    return found if found is not None and (kind is None or found.kind is kind) else None


def _read_period(word: str, latest: Period | None) -> Period | None:
    try:
        return Period.parse(word)
    except PeriodError:
        pass
    if match := _MONTH_OF_YEAR.match(word):
        return _month(int(match.group(1)), int(match.group(2)))
    if (match := _MONTH_ALONE.match(word)) and latest is not None:
        month = int(match.group(1))
        return _month(latest.year if month <= _month_index(latest) else latest.year - 1, month)
    if match := _COMPACT_QUARTER.match(word) or _CHINESE_QUARTER.match(word):
        raw = match.group(2)
        quarter = int(raw) if raw.isdigit() else _QUARTER_NUMERALS[raw]
        if match.group(1):
            return Period.quarter(int(match.group(1)), quarter)
        if latest is None:
            return None
        current = (_month_index(latest) - 1) // 3 + 1
        return Period.quarter(latest.year if quarter <= current else latest.year - 1, quarter)
    if match := _YEAR.match(word):
        return Period.whole_year(int(match.group(1)))
    return None


def _month(year: int, month: int) -> Period | None:
    return Period.month(year, month) if 1 <= month <= 12 else None


def _month_index(period: Period) -> int:
    """The last month a period reaches (a quarter's or a year's last month), for reading yearless forms."""
    return period.months()[-1].index


def parse_periods(text: str, latest: Period | None = None) -> list[Period]:
    """`2026-01..2026-06` (every period from one to the other, of one kind), `2026-01,2026-03、2026-05`, or one.

    PeriodError carrying the part that is no period (the whole text for a range that does not run forward)."""
    word = normalise(text)
    if _RANGE_SEPARATOR in word:
        first_text, _, last_text = word.partition(_RANGE_SEPARATOR)
        first, last = parse_period(first_text, latest), parse_period(last_text, latest)
        if first is None or last is None or first.kind is not last.kind or str(last) < str(first):
            raise PeriodError(text)
        found = [first]
        while str(found[-1]) < str(last) and len(found) < _MOST_PERIODS_IN_A_RANGE:
            found.append(found[-1].next())
        return found
    periods = []
    for part in (part.strip() for part in _LIST_SEPARATORS.split(word)):
        if not part:
            continue
        period = parse_period(part, latest)
        if period is None:
            raise PeriodError(part)
        periods.append(period)
    if not periods:
        raise PeriodError(text)
    return periods


def looks_like_period(text: str) -> bool:
    """Whether the text is, or only resembles, a period: a wrong one is then reported as a wrong period."""
    word = normalise(text)
    return bool(word) and (parse_period(word) is not None or _PERIOD_LIKE.search(word) is not None)


def quarter_of(day: date) -> Period:
    return Period.quarter(day.year, (day.month - 1) // 3 + 1)


# -- weeks -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, order=True, slots=True)
class Week:
    """An ISO week (Monday to Sunday), written 2026-W48."""

    year: int
    number: int

    def __post_init__(self) -> None:
        try:
            date.fromisocalendar(self.year, self.number, 1)  # a week the year does not have is refused
        except ValueError:
            raise PeriodError(f"{self.year}-W{self.number:02d}") from None

    @classmethod
    def of(cls, day: date) -> Week:
        year, number, _ = day.isocalendar()
        return cls(year, number)

    @classmethod
    def parse(cls, text: str) -> Week:
        """The stored form, 2026-W48, and nothing else (PeriodError)."""
        match = _ISO_WEEK.match(text.strip())
        if not match:
            raise PeriodError(text)
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.year:04d}-W{self.number:02d}"

    @property
    def monday(self) -> date:
        return date.fromisocalendar(self.year, self.number, 1)

    def days(self) -> list[date]:
        return [self.monday + timedelta(days=offset) for offset in range(7)]

    def shift(self, weeks: int) -> Week:
        return Week.of(self.monday + timedelta(weeks=weeks))


def parse_week(text: str, today: date) -> Week | None:
    """2026-W48, W48, 48, 第48周, 48周, 本周, 这周, 上周, 上上周, 下周; None when the text is no week.

    A week without its year is this year's, unless it lies more than a week ahead (W50 in January: last year's)."""
    word = normalise(text)
    this_week = Week.of(today)
    if word in _RELATIVE_WEEKS:
        return this_week.shift(_RELATIVE_WEEKS[word])
    match = _WEEK.fullmatch(word)
    if not match or (match.group(1) is None and not _WEEK_MARK.search(word) and not word.isdigit()):
        return None
    number = int(match.group(2))
    year = int(match.group(1)) if match.group(1) else this_week.year
    if match.group(1) is None and number > this_week.number + 1:
        year -= 1
    try:
        return Week(year, number)
    except PeriodError:
        return None
