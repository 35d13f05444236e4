"""The `pushInfo` token: names a WeChat user (app + openid) and is signed, so that nobody can put
another user's name into the Echat chat window. At most 219 characters (Echat keeps 255)."""
from __future__ import annotations

import base64
import hashlib
import hmac

VERSION = "r1"
MAX_LENGTH = 255


def _key(secret: str) -> bytes:
    return hmac.new(secret.encode(), b"relay echat pushInfo", hashlib.sha256).digest()


def _mac(secret: str, app_id: str, openid: str) -> str:
    mac = hmac.new(_key(secret), f"{VERSION}.{app_id}.{openid}".encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def sign(secret: str, app_id: str, openid: str) -> str:
    token = f"{VERSION}.{app_id}.{openid}.{_mac(secret, app_id, openid)}"
    assert len(token) <= MAX_LENGTH, "app ids are at most 64 characters and openids 128"
    return token


def verify(secret: str, token: str | None) -> tuple[str, str] | None:
    """(app_id, openid) when `token` is one of ours, unaltered; else None."""
    parts = (token or "").strip().split(".")
    if len(parts) != 4 or parts[0] != VERSION or not parts[1] or not parts[2]:
        return None
    if not hmac.compare_digest(parts[3].encode(), _mac(secret, parts[1], parts[2]).encode()):
        return None
    return parts[1], parts[2]
