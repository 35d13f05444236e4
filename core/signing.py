"""HMAC-SHA256 request signing with a timestamp window (webhook desk; Slack uses the same shape)."""
from __future__ import annotations

import hashlib
import hmac

from core.errors import Unauthorized

WINDOW_SECONDS = 300


def sign(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def check_fresh(timestamp: str, now: float) -> None:
    """Raise Unauthorized unless `timestamp` is Unix seconds within 5 minutes of `now`."""
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12) \
            or abs(now - int(timestamp)) > WINDOW_SECONDS:
        raise Unauthorized("stale or malformed timestamp")


def verify(secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float) -> None:
    """Raise Unauthorized unless the signature matches and the timestamp is within 5 minutes."""
    if not timestamp or not signature:
        raise Unauthorized("missing signature or timestamp header")
    check_fresh(timestamp, now)
    if not hmac.compare_digest(signature.encode(), sign(secret, timestamp, body).encode()):
        raise Unauthorized("bad signature")
