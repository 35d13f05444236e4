"""split_text: pieces within WeChat's limit, cut between characters, never empty."""
from __future__ import annotations

from core.wechat.api import TEXT_LIMIT, split_text


def test_short_text_is_one_piece():
    assert split_text("你好") == ["你好"]


def test_pieces_fit_and_join_back():
    text = "😀字a" * 1000  # 4 + 3 + 1 bytes
    pieces = split_text(text)
    assert all(len(p.encode()) <= TEXT_LIMIT for p in pieces) and "".join(pieces) == text


def test_cut_at_a_line_break_in_the_second_half():
    text = "a" * 1500 + "\n" + "b" * 1000
    assert split_text(text) == ["a" * 1500, "b" * 1000]


def test_no_empty_pieces_from_runs_of_line_breaks():
    pieces = split_text("x" + "\n" * 5000 + "y", limit=100)
    assert pieces and all(p.strip() for p in pieces)
