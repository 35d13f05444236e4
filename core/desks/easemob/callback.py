"""Easemob's post-send callback (发送后回调): the `security` check, and which callbacks are agents'
replies and what they become.

`security` = md5(callId + secret + timestamp), lower-case hex; `timestamp` is in milliseconds. The
signature covers neither `from`, `to` nor the payload, hence a freshness window and one request per
signature (the relay's replay key)."""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

from core.bodies import parse_json_object
from core.desks.easemob.visitor import IM_USER
from core.errors import BadRequest, Unauthorized
from core.models import AgentReply, DeskRef
from core.wechat.api import split_text

WINDOW_MS = 300_000  # a callback older or newer than 5 minutes is refused
CHATFILE = re.compile(r"/chatfiles/([A-Za-z0-9-]{8,64})/?$")
OTHER_KINDS = {"audio": "语音", "video": "视频", "file": "文件", "loc": "位置", "custom": "自定义"}


def security(call_id: str, secret: str, timestamp: int | str) -> str:
    return hashlib.md5(f"{call_id}{secret}{timestamp}".encode()).hexdigest()


@dataclass(frozen=True)
class EasemobCallback:
    call_id: str
    timestamp: str
    signature: str
    fields: dict[str, Any]

    def get(self, name: str) -> str:
        value = self.fields.get(name)
        return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""

    @property
    def replay_key(self) -> str:
        return f"{self.call_id}:{self.timestamp}:{self.signature}"

    def bodies(self) -> list[dict[str, Any]]:
        """The message bodies of the payload (current and legacy callbacks both use `bodies`)."""
        payload = self.fields.get("payload")
        bodies = payload.get("bodies") if isinstance(payload, dict) else None
        return [body for body in bodies if isinstance(body, dict)] if isinstance(bodies, list) else []

    def weichat(self) -> dict[str, Any]:
        """`payload.ext.weichat`: what kefu adds to its messages (agent, events, controls)."""
        payload = self.fields.get("payload")
        ext = payload.get("ext") if isinstance(payload, dict) else None
        weichat = ext.get("weichat") if isinstance(ext, dict) else None
        return weichat if isinstance(weichat, dict) else {}


def read_callback(body: bytes, secret: str, now: float) -> EasemobCallback:
    """Verify (Unauthorized) and parse (BadRequest) one callback."""
    fields = parse_json_object(body)
    call_id, timestamp, given = fields.get("callId"), fields.get("timestamp"), fields.get("security")
    if isinstance(timestamp, int) and not isinstance(timestamp, bool):
        timestamp = str(timestamp)
    if not (isinstance(call_id, str) and call_id and isinstance(timestamp, str) and isinstance(given, str) and given):
        raise Unauthorized("an Easemob callback needs callId, timestamp and security")
    if len(call_id) > 200 or len(given) > 64:
        raise Unauthorized("callId or security is too long")
    if not hmac.compare_digest(given.lower().encode(), security(call_id, secret, timestamp).encode()):
        raise Unauthorized("bad Easemob security")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 15) \
            or abs(now * 1000 - int(timestamp)) > WINDOW_MS:
        raise Unauthorized("stale or malformed timestamp (Easemob sends milliseconds)")
    for name in ("from", "to", "msg_id"):
        value = fields.get(name)
        if value is not None and (not isinstance(value, (str, int)) or isinstance(value, bool) or len(str(value)) > 128):
            raise BadRequest(f"{name} must be a string of at most 128 characters")
    return EasemobCallback(call_id, timestamp, given.lower(), fields)


def ignored_because(callback: EasemobCallback, service_number: str) -> str | None:
    """Why a verified callback is not an agent's reply to one of the relay's visitors (None: it is)."""
    if callback.get("eventType") not in ("chat", "chat_offline") or callback.get("chat_type") != "chat":
        return "not a one-to-one chat message"
    if callback.get("from") != service_number:
        return "not from the kefu service number (a visitor's own message, or other users)"
    if not IM_USER.fullmatch(callback.get("to")):
        return "to an IM user this relay did not make (another channel's visitor)"
    bodies = callback.bodies()
    if not bodies or bodies[0].get("type") == "cmd":
        return "a command or an empty message"
    if callback.weichat().get("ctrlType") or callback.weichat().get("recall_flag"):
        return "a kefu control message (a satisfaction invitation, a recall)"
    return None


def agent_replies(callback: EasemobCallback, desk: str) -> list[AgentReply]:
    """The replies an agent's message becomes: texts, an image to fetch at send time, or a notice."""
    msg_id, user = callback.get("msg_id"), callback.get("to")
    if not msg_id:
        raise BadRequest("an Easemob message callback needs msg_id")
    body = callback.bodies()[0]
    kind, text = str(body.get("type") or ""), body.get("msg")
    reply = AgentReply(id=msg_id, desk=desk, app_id="", openid="", kind="text",
                       desk_ref=DeskRef(f"im:{user}", {"im_user": user, "msg_id": msg_id}))
    if kind == "txt" and isinstance(text, str) and text.strip():
        return [dataclasses.replace(reply, text=piece) for piece in split_text(text)]
    found = CHATFILE.search(str(body.get("url") or ""))
    if kind == "img" and found:
        return [dataclasses.replace(reply, kind="image", desk_ref=reply.desk_ref.with_ids(
            file=found.group(1), secret=str(body.get("secret") or "")[:128]))]
    if kind == "loc" and body.get("addr"):
        return [dataclasses.replace(reply, text=f"[位置] {str(body['addr'])[:500]}")]
    return [dataclasses.replace(reply, text=f"[客服发送了一条{OTHER_KINDS.get(kind, '')}消息，微信中无法显示]")]
