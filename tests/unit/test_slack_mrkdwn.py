"""Slack mrkdwn to plain text for WeChat, and text made safe to post to Slack."""
from __future__ import annotations

import pytest

from core.desks.slack.mrkdwn import escape, mentioned, name_mentions, to_text


@pytest.mark.parametrize("mrkdwn, text", [
    ("*Hello* _there_ ~old~", "Hello there old"),
    ("snake_case_name and 2*3*4 and a * b * c", "snake_case_name and 2*3*4 and a * b * c"),
    ("see <https://example.com/a?b=1&amp;c=2|the docs>", "see the docs (https://example.com/a?b=1&c=2)"),
    ("<https://example.com>", "https://example.com"),
    ("<https://example.com|example.com>", "https://example.com"),
    ("mail <mailto:help@example.com|help@example.com>", "mail help@example.com"),
    ("in <#C024BE7LR|general> and <#C024BE7LR>", "in #general and #C024BE7LR"),
    ("<!here> <!channel> <!subteam^S012|@support> <!date^1392734382^{date_short}|Feb 18, 2014>",
     "@here @channel @support Feb 18, 2014"),
    ("`*not bold*` and\n```\n<b> &amp; _x_\n```", "*not bold* and\n<b> & _x_"),
    ("1 &lt; 2 &amp;&amp; 3 &gt; 2", "1 < 2 && 3 > 2"),
    ("thanks :slightly_smiling_face: :+1::skin-tone-2: :custom_party:", "thanks 🙂 👍 :custom_party:"),
    ("  \n*   *  \n", "*   *"),
    ("价格是 *99 元*，_包邮_", "价格是 99 元，包邮"),
])
def test_to_text(mrkdwn, text):
    assert to_text(mrkdwn) == text


def test_mentions_wait_for_names():
    text = to_text("<@U0AGENT002> will call, cc <@W0ENTERPRISE|legacy> <@U0NOBODY>")
    assert mentioned(text) == {"U0AGENT002", "U0NOBODY"}
    assert name_mentions(text, {"U0AGENT002": "Bob"}) == "@Bob will call, cc @legacy @U0NOBODY"


def test_escape_keeps_users_from_writing_mentions_or_links():
    assert escape("<!channel> & <https://x|y>") == "&lt;!channel&gt; &amp; &lt;https://x|y&gt;"
    assert to_text(escape("a <b> & c")) == "a <b> & c"
