"""Splitting long text at WeCom's 2,048-byte limit without breaking a character."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.wecom.outbox import CONTENT_LIMIT_BYTES, split_utf8


def test_short_text_is_one_piece() -> None:
    assert split_utf8("你好") == ["你好"]


def test_long_chinese_text_splits_on_lines_under_the_limit() -> None:
    line = "本周关键动作：策划会员专属活动并访谈用户。" * 5  # 21 chars x 5 x 3 bytes = 315 bytes
    text = "\n".join([line] * 20)  # about 6,300 bytes
    pieces = split_utf8(text)
    assert len(pieces) == 4  # 6 lines (1,896 bytes) fit per piece: 20 lines need 4 pieces
    assert all(len(p.encode("utf-8")) <= CONTENT_LIMIT_BYTES for p in pieces)
    assert "".join(p.replace("\n", "") for p in pieces) == text.replace("\n", "")


def test_a_single_huge_line_is_cut_at_character_boundaries() -> None:
    text = "绩" * 1000  # 3,000 bytes: 682 characters (2,046 bytes) then 318
    pieces = split_utf8(text)
    assert [len(p) for p in pieces] == [682, 318]


@given(st.text(alphabet=st.sampled_from(list("ab\n绩效😀 ")), max_size=3000))
def test_pieces_fit_and_lose_nothing_but_line_breaks(text: str) -> None:
    pieces = split_utf8(text)
    assert all(len(p.encode("utf-8")) <= CONTENT_LIMIT_BYTES for p in pieces)
    assert "".join(pieces).replace("\n", "") == text.replace("\n", "")
