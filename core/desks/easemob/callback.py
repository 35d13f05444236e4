"""Easemob's post-send callback (发送后回调): the `security` check and what a callback carries.

`security` = md5(callId + secret + timestamp), lower-case hex; `timestamp` is in milliseconds. The
signature covers neither `from`, `to` nor the payload, hence a freshness window and one request per
signature (the relay's replay key)."""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from core.bodies import parse_json_object
from core.errors import BadRequest, Unauthorized

WINDOW_MS = 300_000  # a callback older or newer than 5 minutes is refused


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
