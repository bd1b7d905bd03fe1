"""bot/appraisal/datafile.py: typed rows from CSV and XLSX, every bad row reported with its line, numbers as written."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bot.appraisal.datafile import DataFileError, parse_csv_text, parse_number, read_data_file, rows_to_members
from scoring import WAIVED

HEADER = "member,team,indicator,period,value,target\n"


@pytest.mark.parametrize("text, expected", [
    ("12", "12"), ("-3.5", "-3.5"), ("15%", "15"), ("1,234.5", "1234.5"), ("3.2万", "32000"),
    (" 7 ", "7"), ("12,345,678", "12345678"),
])
def test_numbers_as_people_write_them(text: str, expected: str) -> None:
    assert parse_number(text) == Decimal(expected)


@pytest.mark.parametrize("text", ["abc", "1,23", "", "NaN", "inf", "%", "1.2.3"])
def test_not_numbers(text: str) -> None:
    assert parse_number(text) is None


def test_rows_are_typed_and_grouped_into_members() -> None:
    rows = parse_csv_text(HEADER + "alice,growth,content_output,2026-11,22,25\n"
                          "alice,,response_time,2026-11,waived,\n\n"
                          "bob,growth,content_output,2026-Q4,\"1,200\",\n")
    assert [(r.line, r.member, r.team, r.indicator, r.period, r.value, r.target) for r in rows] == [
        (2, "alice", "growth", "content_output", "2026-11", Decimal(22), Decimal(25)),
        (3, "alice", None, "response_time", "2026-11", WAIVED, None),
        (5, "bob", "growth", "content_output", "2026-Q4", Decimal(1200), None),
    ]
    alice, bob = rows_to_members(rows, department="community")
    assert alice.team == "growth" and alice.department == "community"
    assert alice.values == {("content_output", "2026-11"): Decimal(22), ("response_time", "2026-11"): WAIVED}
    assert alice.targets == {("content_output", "2026-11"): Decimal(25)}
    assert bob.values == {("content_output", "2026-Q4"): Decimal(1200)}


def test_every_bad_row_is_reported_with_its_line_and_nothing_is_returned() -> None:
    text = (HEADER
            + "alice,g,content_output,2026-11,22,\n"      # 2 fine
            + ",g,content_output,2026-11,22,\n"           # 3 no member
            + "bob,g,content_output,2026-13,22,\n"        # 4 bad period
            + "bob,g,content_output,2026-11,lots,\n"      # 5 bad value
            + "bob,g,content_output,2026-10,,x\n"         # 6 empty value and bad target
            + "alice,g,content_output,2026-11,23,\n"      # 7 duplicate of line 2
            + "alice,h,response_time,2026-11,5,\n"        # 8 alice in another team
            + "carol,g,x,2026-11,1,,extra\n")             # 9 too many cells
    with pytest.raises(DataFileError) as caught:
        parse_csv_text(text, "data.csv")
    assert [(e.line, e.code) for e in caught.value.errors] == [
        (3, "member_empty"), (4, "period_invalid"), (5, "value_invalid"), (6, "value_empty"),
        (6, "target_invalid"), (7, "duplicate"), (8, "team_conflict"), (9, "too_many_cells")]
    duplicate = caught.value.errors[5]
    assert duplicate.params == {"member": "alice", "indicator": "content_output", "period": "2026-11",
                                "other_line": 2}


def test_header_problems_stop_before_the_rows() -> None:
    with pytest.raises(DataFileError) as caught:
        parse_csv_text("member,indicator,period,value,score\n")
    assert [(e.line, e.code, e.params) for e in caught.value.errors] == [
        (1, "header_missing", {"columns": "team, target"}), (1, "header_unknown", {"columns": "score"})]
    with pytest.raises(DataFileError) as empty:
        parse_csv_text("")
    assert empty.value.errors[0].code == "empty"


def test_csv_file_with_bom_and_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("\ufeff" + HEADER + "alice,g,content_output,2026-11,22,\n", encoding="utf-8")
    assert read_data_file(path)[0].member == "alice"
    with pytest.raises(DataFileError) as caught:
        read_data_file(tmp_path / "nope.csv")
    assert caught.value.errors[0].code == "file_not_found"


def test_xlsx_with_the_same_columns(tmp_path: Path) -> None:
    import datetime as dt

    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["member", "team", "indicator", "period", "value", "target"])
    sheet.append(["alice", "g", "content_output", "2026-11", 22, 25])
    sheet.append(["alice", "g", "group_quit_rate", dt.date(2026, 11, 1), 0.153, None])
    sheet.cell(row=3, column=5).number_format = "0.0%"
    sheet.append(["alice", "g", "culture_fit", 2026, 4.0, None])
    sheet.append(["bob", "g", "response_time", "2026-11", "waived", None])
    sheet.append(["bob", "g", "content_output", "2026-11", "many", None])
    path = tmp_path / "data.xlsx"
    workbook.save(path)
    with pytest.raises(DataFileError) as caught:
        read_data_file(path)
    assert [(e.line, e.code) for e in caught.value.errors] == [(6, "value_invalid")]
    sheet.delete_rows(6)
    workbook.save(path)
    rows = read_data_file(path)
    # a percent-formatted 0.153 is 15.3 percent points; a date in the period column is its month
    assert [(r.period, r.value) for r in rows] == [
        ("2026-11", Decimal(22)), ("2026-11", Decimal("15.3")), ("2026", Decimal(4)), ("2026-11", WAIVED)]
    assert rows[0].target == Decimal(25)
