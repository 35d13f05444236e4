"""Slack's Events API requests: the v0 signature before anything else is read, then which message
events are an agent's post in a thread of the relay's channel."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core import signing
from core.desks.slack.settings import SlackSettings
from core.errors import BadRequest, Unauthorized
from core.web import Request

RELAYED_SUBTYPES = frozenset({None, "file_share", "thread_broadcast"})  # a person writing; edits, deletions,
# joins and bot messages have other subtypes (https://docs.slack.dev/reference/events/message)
ID_LIMIT = 64


class _Clock:
    """slack_sdk's verifier asks its clock for `now()`; this one answers the relay's clock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.now = clock


class EventVerifier:
    """`X-Slack-Signature` = v0 HMAC-SHA256 of `v0:{timestamp}:{raw body}`, timestamp within 300 s,
    compared in constant time by slack_sdk's SignatureVerifier."""

    def __init__(self, signing_secret: str, clock: Callable[[], float]) -> None:
        # Imported here, not at the top: the package's __init__ loads its whole Web API client (about
        # 4 MB and 60 ms), which a relay without the Slack desk should not pay for.
        from slack_sdk.signature import SignatureVerifier

        self.clock = clock
        self._verifier = SignatureVerifier(signing_secret or "unset", clock=_Clock(clock))  # type: ignore[arg-type]
        self._configured = bool(signing_secret)

    def check(self, request: Request) -> None:
        """Raise Unauthorized unless Slack signed this very request just now."""
        timestamp, signature = request.header("x-slack-request-timestamp"), request.header("x-slack-signature")
        if not timestamp or not signature:
            raise Unauthorized("missing X-Slack-Signature or X-Slack-Request-Timestamp")
        signing.check_fresh(timestamp, self.clock())
        try:
            valid = self._configured and signature.isascii() and self._verifier.is_valid(
                request.body, timestamp, signature)
        except UnicodeDecodeError:  # the verifier hashes text; Slack sends UTF-8
            valid = False
        if not valid:
            raise Unauthorized("bad Slack signature")


@dataclass(frozen=True)
class AgentPost:
    """A person's post in a thread of the relay's channel."""

    channel: str
    user: str
    ts: str
    thread_ts: str
    text: str
    files: tuple[dict[str, Any], ...]


def _id(event: dict[str, Any], name: str) -> str:
    value = event.get(name)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > ID_LIMIT:
        raise BadRequest(f"event.{name} must be a string of at most {ID_LIMIT} characters")
    return value


def _bot_users(data: dict[str, Any]) -> set[str]:
    """The app's own bot user, as the wrapper's authorizations name it."""
    found = data.get("authorizations")
    return {a["user_id"] for a in found if isinstance(a, dict) and a.get("is_bot") and isinstance(
        a.get("user_id"), str)} if isinstance(found, list) else set()


def agent_post(data: dict[str, Any], settings: SlackSettings) -> AgentPost | str:
    """The post an `event_callback` carries, or why it is not relayed (a few words for the log)."""
    event = data.get("event")
    if not isinstance(event, dict):
        raise BadRequest("an event_callback needs an event object")
    channel, user, ts, thread_ts = (_id(event, name) for name in ("channel", "user", "ts", "thread_ts"))
    text, files = event.get("text") or "", event.get("files") or []
    if not isinstance(text, str) or not isinstance(files, list):
        raise BadRequest("event.text must be a string and event.files a list")
    if event.get("type") != "message":
        return f"a {str(event.get('type'))[:40]} event"
    if channel != settings.channel:
        return "a message outside the relay's channel"
    if event.get("subtype") not in RELAYED_SUBTYPES or event.get("hidden"):
        return f"a message of subtype {str(event.get('subtype'))[:40]} (edit, deletion, bot or channel event)"
    if event.get("bot_id") or not user:
        return "a bot's message"
    if user in _bot_users(data):
        return "the relay's own message"
    if not ts or not thread_ts or thread_ts == ts:
        return "a message outside any thread"
    if text.lstrip().startswith(settings.note_prefix):
        return "a note among agents"
    return AgentPost(channel, user, ts, thread_ts, text, tuple(f for f in files if isinstance(f, dict)))
