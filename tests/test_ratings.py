"""The one 1-5 rating parser (bot.appraisal.ratings): every accepted form and the problem with every other answer."""
from __future__ import annotations

import pytest

from bot.appraisal.ratings import RatingProblem, parse_rating


@pytest.mark.parametrize("text, expected", [
    ("1", 1), ("5", 5), (" 3 ", 3), ("+4", 4), ("3分", 3), ("3 分", 3), ("4星", 4), ("５", 5), ("４分", 4),
    ("4。", 4), ("4.", 4), ("4!", 4), ("4！", 4), ("4~", 4),
])
def test_a_whole_number_1_to_5_with_or_without_its_unit_is_a_rating(text: str, expected: int) -> None:
    assert parse_rating(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("6", RatingProblem("out_of_range", "6")), ("0", RatingProblem("out_of_range", "0")),
    ("-1", RatingProblem("out_of_range", "-1")), ("10分", RatingProblem("out_of_range", "10分")),
    ("4.5", RatingProblem("not_integer", "4.5")), (".5", RatingProblem("not_integer", ".5")),
    ("五", RatingProblem("chinese_numeral", "五", 5)), ("四分", RatingProblem("chinese_numeral", "四分", 4)),
    ("两", RatingProblem("chinese_numeral", "两", 2)), ("叁", RatingProblem("chinese_numeral", "叁", 3)),
    ("十", RatingProblem("chinese_numeral", "十", None)), ("六", RatingProblem("chinese_numeral", "六", None)),
    ("good", RatingProblem("not_a_number", "good")), ("", RatingProblem("not_a_number", "")),
    ("4 因为表现不错", RatingProblem("not_a_number", "4 因为表现不错")),
])
def test_any_other_answer_is_the_problem_with_it(text: str, expected: RatingProblem) -> None:
    assert parse_rating(text) == expected
