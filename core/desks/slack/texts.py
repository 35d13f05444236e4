"""What the relay writes: into Slack (thread roots, user messages, warnings) and to the WeChat user
(notices for files WeChat cannot show)."""
from __future__ import annotations

from core.desks.slack.mrkdwn import escape
from core.models import AgentReply, Conversation, UserMessage

CLOSE_COMMAND = "!close"
FILE_NOTICE = "客服发送了文件「{name}」，这里无法显示。"  # to the WeChat user: a file that is not a picture
REASONS = {
    "window_closed": "the 48-hour window for replies is closed until the user writes again",
    "quota_exhausted": "the reply quota of this window is used up until the user writes again",
    "rejected": "WeChat refused it",
    "unknown_user": "the relay does not know this user",
}
QUOTE_LIMIT = 300


def root(message: UserMessage, conversation: Conversation, session_from: str | None, note_prefix: str,
         previous: str | None) -> str:
    """The root of a user's thread: who, through which app, from which entry; the thread before."""
    app = f"`{escape(message.app_id)}`" + (f" via `{escape(conversation.from_appid)}`"
                                             if conversation.from_appid else "")
    lines = [f":speech_balloon: *WeChat user* `{escape(message.openid)}`", f"App: {app}"]
    if session_from:
        lines.append(f"Entry (SessionFrom): `{escape(session_from)}`")
    if previous:
        lines.append(f"Earlier conversation: {previous}")
    lines.append(f"_Reply in this thread to answer the user. `{escape(note_prefix)}` at the start keeps a "
                 f"reply among agents; `{CLOSE_COMMAND}` closes the conversation._")
    return "\n".join(lines)


def user_message(message: UserMessage) -> str:
    """A user's message as a thread reply: text as typed, anything else a readable line."""
    if message.kind == "text":
        return escape(message.text or "")
    if message.kind == "miniprogrampage":
        return (f":iphone: Mini Program card: *{escape(message.title or '(no title)')}*"
                f" · page `{escape(message.pagepath or '')}`" + (f" · app `{escape(message.appid)}`"
                                                                   if message.appid else ""))
    return f"_{escape(message.notice())}_"


def undeliverable(reply: AgentReply, reason: str, errcode: int | None) -> str:
    what = REASONS.get(reason, reason) + (f" (errcode {errcode})" if errcode else "")
    said = "a picture" if reply.kind == "image" else (reply.text or "")[:QUOTE_LIMIT]
    quoted = escape(said).replace("\n", "\n> ")
    return f":warning: *Not delivered to the WeChat user*: {what}.\n> {quoted}"


def closed(agent: str | None) -> str:
    by = f" by <@{agent}>" if agent else ""
    return f":white_check_mark: Closed{by}. The user's next message opens a new thread."


def is_close(text: str) -> bool:
    words = text.strip().split(maxsplit=1)
    return bool(words) and words[0].lower() == CLOSE_COMMAND
