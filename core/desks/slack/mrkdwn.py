"""Slack mrkdwn to the plain text a WeChat user reads, and plain text safe to post to Slack.

`to_text` needs no I/O: user mentions become markers holding the user's ID, which `name_mentions`
replaces with names once they have been looked up (https://docs.slack.dev/messaging/formatting-message-text)."""
from __future__ import annotations

import re
from collections.abc import Mapping

MENTION = re.compile("\ue000([A-Z0-9]+)\ue001")  # a user mention waiting for its name (private-use characters)
_TOKEN = re.compile(r"<([^<>\n]*)>")
_CODE = re.compile(r"```\n?(.*?)\n?```|`([^`\n]+)`", re.S)
_SHORTCODE = re.compile(r":([a-z0-9_+\-]+):(?::skin-tone-[2-6]:)?")
_SPECIAL = {"here": "@here", "channel": "@channel", "everyone": "@everyone"}
EMOJI = {  # the shortcodes Slack writes most (it turns ":)" into :slightly_smiling_face:); others stay as typed
    "slightly_smiling_face": "🙂", "smile": "😄", "smiley": "😃", "grinning": "😀", "grin": "😁",
    "blush": "😊", "wink": "😉", "joy": "😂", "sweat_smile": "😅", "laughing": "😆", "heart_eyes": "😍",
    "thinking_face": "🤔", "slightly_frowning_face": "🙁", "disappointed": "😞", "cry": "😢", "sob": "😭",
    "pray": "🙏", "+1": "👍", "thumbsup": "👍", "-1": "👎", "thumbsdown": "👎", "ok_hand": "👌",
    "clap": "👏", "wave": "👋", "muscle": "💪", "raised_hands": "🙌", "heart": "❤️", "tada": "🎉",
    "white_check_mark": "✅", "heavy_check_mark": "✔️", "x": "❌", "warning": "⚠️", "rocket": "🚀",
    "fire": "🔥", "star": "⭐", "sparkles": "✨", "eyes": "👀", "point_right": "👉", "hourglass": "⌛",
    "gift": "🎁", "package": "📦", "truck": "🚚", "phone": "📞", "email": "📧", "link": "🔗",
}


def _unwrap(marker: str) -> re.Pattern[str]:
    """`*bold*`-style spans: the marker hugs the words and stands apart from other words (so snake_case
    and 2*3*4 are left alone)."""
    m = re.escape(marker)
    return re.compile(rf"(?<![\w{m}]){m}(?=\S)([^{m}\n]*?\S){m}(?![\w{m}])")


_STYLES = tuple(_unwrap(marker) for marker in "*_~")


def _token(match: re.Match[str]) -> str:
    """One `<…>` token: a mention, a special mention, a date or a link."""
    inner = match.group(1)
    target, _, label = inner.partition("|")
    if target.startswith("@"):
        return f"@{label}" if label else f"\ue000{target[1:]}\ue001"
    if target.startswith("#"):
        return f"#{label or target[1:]}"
    if target.startswith("!"):
        name = target[1:].split("^", 1)[0]
        return _SPECIAL.get(name) or label
    if target.startswith("mailto:"):
        return label or target[len("mailto:"):]
    if not label or label in (target, target.split("://", 1)[-1]):
        return target
    return f"{label} ({target})"


def _styled(text: str) -> str:
    text = _TOKEN.sub(_token, text)
    for style in _STYLES:
        text = style.sub(r"\1", text)
    return _SHORTCODE.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), text)


def _unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def to_text(mrkdwn: str) -> str:
    """Plain text: links as `label (url)`, channels as `#name`, styles dropped, code kept verbatim,
    common emoji shortcodes as emoji, Slack's three escapes undone; user mentions left as markers."""
    out, last = [], 0
    for code in _CODE.finditer(mrkdwn):
        out.append(_styled(mrkdwn[last:code.start()]))
        out.append(code.group(1) if code.group(1) is not None else code.group(2))
        last = code.end()
    out.append(_styled(mrkdwn[last:]))
    return _unescape("".join(out)).strip()


def mentioned(text: str) -> set[str]:
    """The user IDs whose names `text` still needs."""
    return set(MENTION.findall(text))


def name_mentions(text: str, names: Mapping[str, str]) -> str:
    """Markers replaced with `@name` (`@` and the ID when the name is unknown)."""
    return MENTION.sub(lambda m: "@" + (names.get(m.group(1)) or m.group(1)), text)


def escape(text: str) -> str:
    """Text posted to Slack as it is: `<`, `>` and `&` escaped, so a user cannot write `<!channel>`."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
