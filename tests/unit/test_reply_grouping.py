"""A desk's replies are queued by id with every piece, even when their pieces are not side by side."""
from __future__ import annotations

from core.models import AgentReply
from core.relay import group_by_id


def reply(reply_id: str, text: str) -> AgentReply:
    return AgentReply(id=reply_id, desk="webhook", app_id="app", openid="u", kind="text", text=text)


def test_interleaved_pieces_keep_every_piece_in_order():
    groups = group_by_id([reply("A", "a1"), reply("B", "b1"), reply("A", "a2")])
    assert {k: [r.text for r in v] for k, v in groups.items()} == {"A": ["a1", "a2"], "B": ["b1"]}
    assert list(groups) == ["A", "B"]
