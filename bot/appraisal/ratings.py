"""The one 1-5 rating parser: what a person types as a rating, read as a whole number or the problem with it."""
from __future__ import annotations

import re
from dataclasses import dataclass

from scoring.scheme import RATING_LEVELS
_FULL_WIDTH = str.maketrans("０１２３４５６７８９．－＋", "0123456789.-+")
_UNIT = re.compile(r"\s*(?:分|星)$")
_TRAILING_PUNCTUATION = "。.!！~～ "
_WHOLE = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?\d*\.\d+")
_CHINESE_NUMERALS = {"零": 0, "一": 1, "壹": 1, "二": 2, "两": 2, "贰": 2, "三": 3, "叁": 3, "四": 4, "肆": 4,
                     "五": 5, "伍": 5, "六": 6, "陆": 6, "七": 7, "八": 8, "九": 9, "十": 10}


@dataclass(frozen=True)
class RatingProblem:
    """Why an answer is not a rating: out_of_range | not_integer | chinese_numeral | not_a_number.

    `shown` is the answer as typed (stripped); `suggestion` the rating a single Chinese numeral 1-5 stands for."""

    kind: str
    shown: str
    suggestion: int | None = None


def parse_rating(text: str) -> int | RatingProblem:
    """ "4", " 5 ", "3分", "4星", "４", "4。" → the rating; "6", "4.5", "五", "good" → the problem with it."""
    shown = text.strip()
    value = _UNIT.sub("", shown.translate(_FULL_WIDTH).rstrip(_TRAILING_PUNCTUATION)).strip()
    if _WHOLE.fullmatch(value):
        number = int(value)
        return number if number in RATING_LEVELS else RatingProblem("out_of_range", shown)
    if _DECIMAL.fullmatch(value):
        return RatingProblem("not_integer", shown)
    if value and all(char in _CHINESE_NUMERALS for char in value):
        number = _CHINESE_NUMERALS[value] if len(value) == 1 else None
        return RatingProblem("chinese_numeral", shown, number if number in RATING_LEVELS else None)
    return RatingProblem("not_a_number", shown)
