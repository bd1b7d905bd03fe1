"""Reading score data files (CSV or XLSX, columns member,team,indicator,period,value,target) into typed rows.

Every row is checked before anything is returned: a file with a bad row yields one DataFileError that lists
every bad row with its line number, so nothing is ever computed from a half-read file."""
from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from bot.appraisal import numbers
from bot.appraisal.numbers import parse_optional
from bot.appraisal.periods import parse_period
from bot.templates import words
from scoring import WAIVED, MemberData, Waiver

COLUMNS: tuple[str, ...] = ("member", "team", "indicator", "period", "value", "target")
REQUIRED_COLUMNS: frozenset[str] = frozenset(COLUMNS)


@dataclass(frozen=True, slots=True)
class DataRow:
    line: int
    member: str
    team: str | None
    indicator: str
    period: str
    value: Decimal | Waiver
    target: Decimal | None


@dataclass(frozen=True, slots=True)
class RowError:
    """One bad row (line 1 is the header); `code` is rendered by templates/zh_CN/cli/datafile_error.txt.j2."""

    line: int
    code: str
    params: dict[str, object] = field(default_factory=dict, hash=False)


class DataFileError(Exception):
    def __init__(self, path: str, errors: Sequence[RowError]) -> None:
        super().__init__(f"{path}: {len(errors)} bad row(s)")
        self.path = path
        self.errors = tuple(errors)


def parse_number(text: str) -> Decimal | None:
    """A plain number as bot.appraisal.numbers reads it (`1234.5`, `1,234.5`, `15%` → 15, `3.2万` → 32000); None when the
    text is not one, is not finite or is out of bounds."""
    return parse_optional(text)


def _number(line: int, column: str, text: str, problems: list[RowError]) -> Decimal | None:
    try:
        return numbers.parse_number(text)
    except numbers.NumberError as error:
        code = f"{column}_invalid" if error.code == "number.invalid" else "number_refused"
        problems.append(RowError(line, code, {column: text[:40], "column": column, "reason": error.code,
                                              "text": text[:40]}))
        return None


def _cell_text(value: object, number_format: str = "General") -> str:
    """An XLSX cell as the text a CSV would hold: percent-formatted numbers in percent points, a month
    typed as a date becomes 2026-11."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        if "%" in number_format:
            number *= 100
        return format(number.normalize(), "f") if number == number.to_integral_value() else format(number, "f")
    if isinstance(value, (dt.datetime, dt.date)):
        return f"{value.year:04d}-{value.month:02d}"
    return str(value)


def _validate(records: Iterable[tuple[int, dict[str, str]]]) -> tuple[list[DataRow], list[RowError]]:
    rows: list[DataRow] = []
    problems: list[RowError] = []
    seen: dict[tuple[str, str, str], int] = {}
    teams: dict[str, tuple[str, int]] = {}
    for line, record in records:
        if not any(text.strip() for text in record.values()):
            continue  # blank lines carry nothing
        before = len(problems)
        member = record["member"].strip()
        team = record["team"].strip() or None
        indicator = record["indicator"].strip()
        period_text = record["period"].strip()
        value_text = record["value"].strip()
        target_text = record["target"].strip()
        if not member:
            problems.append(RowError(line, "member_empty"))
        if not indicator:
            problems.append(RowError(line, "indicator_empty"))
        parsed = parse_period(period_text)
        period = str(parsed) if parsed is not None else ""
        if parsed is None:
            problems.append(RowError(line, "period_invalid", {"period": period_text}))
        value: Decimal | Waiver | None = None
        if not value_text:
            problems.append(RowError(line, "value_empty"))
        elif value_text.lower() in words("data.waive"):
            value = WAIVED
        else:
            value = _number(line, "value", value_text, problems)
        target: Decimal | None = None
        if target_text:
            target = _number(line, "target", target_text, problems)
        if member and team is not None:
            known = teams.setdefault(member, (team, line))
            if known[0] != team:
                problems.append(RowError(line, "team_conflict", {"member": member, "team": team,
                                                                 "other_team": known[0], "other_line": known[1]}))
        if member and indicator and period:
            first = seen.setdefault((member, indicator, period), line)
            if first != line:
                problems.append(RowError(line, "duplicate", {"member": member, "indicator": indicator,
                                                             "period": period, "other_line": first}))
        if len(problems) == before and value is not None:
            rows.append(DataRow(line, member, team, indicator, period, value, target))
    return rows, problems


def _check_header(header: Sequence[str]) -> list[RowError]:
    names = [name.strip().lower() for name in header]
    missing = [name for name in COLUMNS if name not in names]
    unknown = [name for name in names if name and name not in REQUIRED_COLUMNS]
    duplicated = sorted({name for name in names if name and names.count(name) > 1})
    problems: list[RowError] = []
    if missing:
        problems.append(RowError(1, "header_missing", {"columns": ", ".join(missing)}))
    if unknown:
        problems.append(RowError(1, "header_unknown", {"columns": ", ".join(unknown)}))
    if duplicated:
        problems.append(RowError(1, "header_duplicate", {"columns": ", ".join(duplicated)}))
    return problems


def _records(header: Sequence[str], lines: Iterable[tuple[int, Sequence[str]]]) -> Iterator[tuple[int, dict[str, str]]]:
    names = [name.strip().lower() for name in header]
    for line, cells in lines:
        cells = list(cells) + [""] * (len(names) - len(cells))
        if len(cells) > len(names) and any(cell.strip() for cell in cells[len(names):]):
            yield line, {"__extra__": "1", **dict(zip(names, cells))}
            continue
        yield line, dict(zip(names, cells))


def _finish(path: str, header: Sequence[str] | None, lines: Iterable[tuple[int, Sequence[str]]]) -> tuple[DataRow, ...]:
    if header is None:
        raise DataFileError(path, [RowError(1, "empty")])
    header_problems = _check_header(header)
    if header_problems:
        raise DataFileError(path, header_problems)
    extra: list[RowError] = []

    def checked() -> Iterator[tuple[int, dict[str, str]]]:
        for line, record in _records(header, lines):
            if record.pop("__extra__", None):
                extra.append(RowError(line, "too_many_cells"))
                continue
            yield line, record

    rows, problems = _validate(checked())
    problems = sorted(problems + extra, key=lambda problem: problem.line)
    if problems:
        raise DataFileError(path, problems)
    return tuple(rows)


def parse_csv_text(text: str, path: str = "<text>") -> tuple[DataRow, ...]:
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline=""))
    header = next(reader, None)

    def lines() -> Iterator[tuple[int, Sequence[str]]]:
        start = reader.line_num + 1
        for cells in reader:
            yield start, cells
            start = reader.line_num + 1

    return _finish(path, header, lines())


def read_xlsx(path: Path) -> tuple[DataRow, ...]:
    import openpyxl  # imported here: only XLSX files need it

    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        sheet = workbook.worksheets[0]
        rows = sheet.iter_rows()
        first = next(rows, None)
        header = [_cell_text(cell.value) for cell in first] if first is not None else None

        def lines() -> Iterator[tuple[int, Sequence[str]]]:
            for number, cells in enumerate(rows, start=2):
                yield number, [_cell_text(cell.value, getattr(cell, "number_format", "General") or "General")
                               for cell in cells]

        return _finish(str(path), header, lines())
    finally:
        workbook.close()


def read_data_file(path: str | Path) -> tuple[DataRow, ...]:
    """Every row of a CSV (UTF-8, optional BOM) or XLSX file (first sheet), or DataFileError."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(str(path), [RowError(0, "file_not_found")])
    if path.suffix.lower() in {".xlsx", ".xlsm"}:
        try:
            return read_xlsx(path)
        except DataFileError:
            raise
        except Exception as exc:  # openpyxl raises many kinds for a damaged workbook
            raise DataFileError(str(path), [RowError(0, "unreadable", {"detail": str(exc)})]) from exc
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataFileError(str(path), [RowError(0, "unreadable", {"detail": str(exc)})]) from exc
    return parse_csv_text(text, str(path))


def rows_to_members(rows: Iterable[DataRow], department: str | None = None) -> list[MemberData]:
    """Group rows into the engine's MemberData, in the order members first appear."""
    grouped: dict[str, tuple[list[str | None], dict[tuple[str, str], Decimal | Waiver], dict[tuple[str, str], Decimal]]] = {}
    for row in rows:
        team_box, values, targets = grouped.setdefault(row.member, ([None], {}, {}))
        if row.team is not None:
            team_box[0] = row.team
        values[(row.indicator, row.period)] = row.value
        if row.target is not None:
            targets[(row.indicator, row.period)] = row.target
    return [MemberData(member, team_box[0], department, values, targets)
            for member, (team_box, values, targets) in grouped.items()]
