"""The one number parser for everything that enters: chat, CSV/XLSX imports and the WeCom statistics sync.

A number is finite and bounded (at most 12 integer digits and 6 decimals: more than any count, amount or rate a
team records, far less than a typing slip like 1e30 or 38 nines); anything else is a NumberError whose `code`
picks one Chinese sentence in templates/zh_CN/scoring/_number.txt.j2."""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

MAX_INTEGER_DIGITS = 12
MAX_DECIMALS = 6
LIMIT = Decimal(10) ** MAX_INTEGER_DIGITS
TEN_THOUSAND = Decimal(10000)
_FULL_WIDTH = str.maketrans("０１２３４５６７８９．，－＋％", "0123456789.,-+%")
_GROUPED = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")
_PLAIN = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_NOT_FINITE = frozenset({"nan", "inf", "infinity", "-inf", "+inf", "-infinity", "+infinity", "-nan", "+nan"})


class NumberError(ValueError):
    """Text (or a value from WeCom) that is not an acceptable number; `code` names why."""

    def __init__(self, code: str, text: str) -> None:
        super().__init__(f"{code}: {text[:40]}")
        self.code = code
        self.text = text[:40]


def checked(number: Decimal, text: str | None = None) -> Decimal:
    """The number itself when finite and inside the bounds above; else NumberError."""
    shown = text if text is not None else str(number)
    if not number.is_finite():
        raise NumberError("number.not_finite", shown)
    if abs(number) >= LIMIT:
        raise NumberError("number.too_large", shown)
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MAX_DECIMALS and number != number.quantize(
            Decimal(1).scaleb(-MAX_DECIMALS)):
        raise NumberError("number.too_precise", shown)
    return number


def parse_number(text: str) -> Decimal:
    """`1234.5`, `1,234.5`, `15%` (15: values stay in the scheme's unit, percent points for rates), `3.2万` (32000),
    full-width digits too; NumberError for anything else, for nan/inf and for numbers out of bounds."""
    shown = text.strip()
    word = shown.translate(_FULL_WIDTH).replace("，", ",").strip()
    factor = Decimal(1)
    if word.endswith("%"):
        word = word[:-1].strip()
    elif word.endswith("万"):
        word = word[:-1].strip()
        factor = TEN_THOUSAND
    if word.lower() in _NOT_FINITE:
        raise NumberError("number.not_finite", shown)
    if "," in word:
        if not _GROUPED.match(word):
            raise NumberError("number.invalid", shown)
        word = word.replace(",", "")
    if not _PLAIN.match(word):
        raise NumberError("number.invalid", shown)
    # A huge exponent (1e999999999) must not be expanded: its size is known from the text.
    digits, _, exponent = word.lower().partition("e")
    if exponent and abs(int(exponent)) > 4 * MAX_INTEGER_DIGITS:
        raise NumberError("number.too_large" if int(exponent) > 0 else "number.too_precise", shown)
    if len(digits.lstrip("+-").split(".")[0].lstrip("0")) > MAX_INTEGER_DIGITS + 8:
        raise NumberError("number.too_large", shown)
    try:
        number = Decimal(word)
    except InvalidOperation:
        raise NumberError("number.invalid", shown) from None
    return checked(number * factor if factor != 1 else number, shown)


def parse_optional(text: str) -> Decimal | None:
    """parse_number, with None for anything refused (for callers that explain a bad value themselves)."""
    try:
        return parse_number(text)
    except NumberError:
        return None


def wecom_count(value: Any) -> int:
    """A count from WeCom's statistics (absent means 0): a whole number, 0 or more, in bounds."""
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise NumberError("number.invalid", str(value))
    number = checked(_from_json(value))
    if number < 0 or number != number.to_integral_value():
        raise NumberError("number.invalid", str(value))
    return int(number)


def wecom_decimal(value: Any, *, high: Decimal | None = None) -> Decimal | None:
    """A measure from WeCom's statistics (a percentage, minutes) to 2 places; None when absent."""
    if value is None or value == "":
        return None
    number = checked(_from_json(value))
    if number < 0 or (high is not None and number > high):
        raise NumberError("number.out_of_range", str(value))
    return number.quantize(Decimal("0.01"))


def _from_json(value: Any) -> Decimal:
    if isinstance(value, (int, float, Decimal)):
        try:
            return Decimal(str(value))
        except InvalidOperation:
            raise NumberError("number.invalid", str(value)) from None
    if isinstance(value, str):
        return parse_number(value)
    raise NumberError("number.invalid", str(value))
