"""The relay's own data: a user's message, an agent's reply, a conversation, a job."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

WINDOW_SECONDS = 48 * 3600


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
        return cls(**{k: v for k, v in data.items() if k in names})


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
    desk_ref: dict[str, Any] = field(default_factory=dict)  # desk-side thread ids, for undeliverable notices

    @property
    def conversation_id(self) -> str:
        return conversation_id(self.app_id, self.openid)


@dataclass(frozen=True)
class Conversation:
    app_id: str
    openid: str
    from_appid: str | None
    desk: str | None
    thread: dict[str, Any] | None
    window_until: float


@dataclass(frozen=True)
class Job:
    id: int
    lane: str
    kind: str
    payload: str
    attempts: int
    first_at: float
