"""The relay's own data: a user's message, an agent's reply, a conversation, a job."""
from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

WINDOW_SECONDS = 48 * 3600


class JobKind(enum.StrEnum):
    """What an outbox job does."""

    DELIVER = "deliver"  # hand a user's message to its desk
    SEND = "send"  # send an agent's reply to the user through WeChat
    UNDELIVERABLE = "undeliverable"  # tell the desk that WeChat refused a reply


class Reason(enum.StrEnum):
    """Why a reply did not reach the user."""

    WINDOW_CLOSED = "window_closed"  # 45015, or the 48-hour window passed
    QUOTA_EXHAUSTED = "quota_exhausted"  # 45047: the window's reply quota is used
    REJECTED = "rejected"  # any other refusal WeChat gives for this user
    UNKNOWN_USER = "unknown_user"  # the desk named nobody the relay has heard from


WINDOW_CLOSING = frozenset({Reason.WINDOW_CLOSED, Reason.QUOTA_EXHAUSTED})  # closed until the user writes


class NewJob(NamedTuple):
    lane: str  # jobs of one lane run one at a time, in the order they were queued
    kind: JobKind
    payload: str


@dataclass(frozen=True)
class ConversationTouch:
    """What a push changes in its conversation: `desk` and `from_appid` only overwrite when set;
    `window_until` only moves forward."""

    app_id: str
    openid: str
    from_appid: str | None
    desk: str | None
    window_until: float


@dataclass(frozen=True)
class DeskRef:
    """Desk-side ids a reply carries from the desk's callback to its send and to an undeliverable
    notice. Core reads `lane` only; `ids` belong to the desk (a ticket number, a visitor uid)."""

    lane: str | None = None  # replies that share a lane are sent in order
    ids: Mapping[str, str] = field(default_factory=dict)

    def get(self, key: str) -> str | None:
        return self.ids.get(key) or None

    def with_ids(self, **ids: str) -> DeskRef:
        return DeskRef(self.lane, {**self.ids, **ids})


def conversation_id(app_id: str, openid: str) -> str:
    """The opaque id a desk uses to name a user: `<app_id>:<openid>`."""
    return f"{app_id}:{openid}"


def split_conversation_id(value: str) -> tuple[str, str] | None:
    app_id, sep, openid = value.partition(":")
    return (app_id, openid) if sep and app_id and openid else None


class _Record:
    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False)  # type: ignore[call-overload]

    @classmethod
    def from_json(cls, raw: str):  # type: ignore[no-untyped-def]
        data = json.loads(raw)
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**cls._decode({k: v for k, v in data.items() if k in names}))

    @classmethod
    def _decode(cls, data: dict[str, Any]) -> dict[str, Any]:
        return data


@dataclass(frozen=True)
class UserMessage(_Record):
    """One push from WeChat about a user. `kind` is text, image, miniprogrampage, session or other."""

    id: str  # the relay's id: stable across WeChat's redeliveries (dedupe key)
    app_id: str
    openid: str
    kind: str
    created_at: int
    msgtype: str
    msg_id: str | None = None
    from_appid: str | None = None  # resource reuse: sends carry ?from_appid=
    to_user: str | None = None
    text: str | None = None
    pic_url: str | None = None
    media_id: str | None = None
    title: str | None = None
    appid: str | None = None
    pagepath: str | None = None
    thumb_url: str | None = None
    thumb_media_id: str | None = None
    session_from: str | None = None
    event: str | None = None

    @property
    def conversation_id(self) -> str:
        return conversation_id(self.app_id, self.openid)

    def notice(self) -> str:
        """A short text for desks that cannot show this message type."""
        if self.kind == "image":
            return f"[image] {self.pic_url or ''}".strip()
        if self.kind == "miniprogrampage":
            return f"[mini program page] {self.title or ''} {self.pagepath or ''}".strip()
        if self.kind == "session":
            return f"[user opened the chat{': ' + self.session_from if self.session_from else ''}]"
        label = self.event or self.msgtype
        return f"[{label} message: this type cannot be shown here]"


@dataclass(frozen=True)
class AgentReply(_Record):
    """What an agent wants the user to get. `kind` is text, image, link, miniprogrampage or typing."""

    id: str  # desk-side id, the dedupe key for the desk's retries
    desk: str
    app_id: str
    openid: str
    kind: str
    text: str | None = None
    image_base64: str | None = None
    media_id: str | None = None
    title: str | None = None
    description: str | None = None
    url: str | None = None
    thumb_url: str | None = None
    pagepath: str | None = None
    thumb_media_id: str | None = None
    command: str | None = None
    desk_ref: DeskRef = field(default_factory=DeskRef)

    @property
    def conversation_id(self) -> str:
        return conversation_id(self.app_id, self.openid)

    @classmethod
    def _decode(cls, data: dict[str, Any]) -> dict[str, Any]:
        ref = data.get("desk_ref")
        if isinstance(ref, dict):
            data["desk_ref"] = DeskRef(lane=ref.get("lane"), ids=ref.get("ids") or {})
        return data


@dataclass(frozen=True)
class Conversation:
    app_id: str
    openid: str
    from_appid: str | None
    desk: str | None
    thread: dict[str, Any] | None
    window_until: float


@dataclass(frozen=True)
class Retention:
    """How long the store keeps what it no longer needs, in seconds."""

    dedupe: float = 7 * 86400.0  # dedupe keys and used signatures: WeChat and desks resend within minutes
    dead_letters: float = 30 * 86400.0  # dead jobs, counted from when they died
    conversations: float = 90 * 86400.0  # a conversation (and its desk links) after its window closed


@dataclass(frozen=True)
class Job:
    id: int
    lane: str
    kind: str  # a JobKind's value
    payload: str
    attempts: int
    first_at: float


@dataclass(frozen=True)
class DeadLetter:
    """A job the outbox gave up on, kept with its last error until an operator retries or drops it."""

    id: int
    lane: str
    kind: str
    attempts: int
    first_at: float
    error: str | None
