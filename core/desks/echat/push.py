"""Echat's staff pushes: query-string signature, optional cipher mode, strict XML."""
from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from core import signing
from core.bodies import parse_xml
from core.desks.echat.settings import EchatSettings
from core.errors import BadRequest, Forbidden, Unauthorized
from core.web import Request
from core.wechat import crypto

PUSH_TYPES = ("msgReply", "msgSend", "chatSend")


@dataclass(frozen=True)
class EchatPush:
    push_type: str  # msgReply (reply to a left message), msgSend (agent push), chatSend (unread chat message)
    msg_id: str
    uid: str
    fields: dict[str, str]

    def get(self, name: str) -> str:
        return self.fields.get(name, "")


def check_signature(request: Request, settings: EchatSettings, now: float, encrypt: str | None) -> None:
    """sha1 of the sorted token, timestamp and nonce; in cipher mode Echat may also sign the Encrypt
    value (unsettled), so that form is accepted too. Timestamps in milliseconds are understood."""
    if not signs_query(request, settings, now) and not (
            encrypt is not None and _matches(request, crypto.signature(settings.token or "", *_stamp(request), encrypt))):
        raise Unauthorized("bad Echat signature")


def signs_query(request: Request, settings: EchatSettings, now: float) -> bool:
    """Whether the signature is the 3-value one; a stale or malformed timestamp is refused first. Needs
    no body, so a forged push in plaintext mode is refused before its body is parsed."""
    timestamp = request.query.get("timestamp", "")
    signing.check_fresh(timestamp[:-3] if len(timestamp) == 13 else timestamp, now)
    return _matches(request, crypto.signature(settings.token or "", *_stamp(request)))


def _stamp(request: Request) -> tuple[str, str]:
    return request.query.get("timestamp", ""), request.query.get("nonce", "")


def _matches(request: Request, expected: str) -> bool:
    given = request.query.get("signature", "")
    return bool(given) and hmac.compare_digest(given.lower().encode(), expected.encode())


def replay_key(request: Request) -> str:
    query = request.query
    return f"{query.get('timestamp', '')}:{query.get('nonce', '')}:{query.get('signature', '').lower()}"


def read_push(request: Request, settings: EchatSettings, now: float) -> tuple[str, EchatPush | None]:
    """Verify and parse a push: (push type, the push or None for a kind this relay does not relay)."""
    signed = signs_query(request, settings, now)
    if not signed and not settings.aes_key:
        raise Unauthorized("bad Echat signature")
    root = _root(parse_xml(request.body))
    encrypt = root.get("Encrypt") if isinstance(root.get("Encrypt"), str) else None
    if not signed:  # cipher mode: the signature may cover the Encrypt value
        check_signature(request, settings, now, encrypt)
    if encrypt is not None:
        if not settings.aes_key or not settings.appid:
            raise Forbidden("cipher-mode Echat push but ECHAT_AES_KEY/ECHAT_APPID are not set")
        root = _root(parse_xml(crypto.decrypt(encrypt, settings.aes_key, settings.appid).encode()))
    elif settings.aes_key:
        raise Unauthorized("cipher mode is configured (ECHAT_AES_KEY): plaintext pushes are refused")
    push_type = request.query.get("msgType", "")
    if request.query.get("dataType") != "staffPush" or push_type not in PUSH_TYPES:
        return push_type or request.query.get("dataType", "?"), None
    fields = {name: _text(value, name) for name, value in root.items()}
    msg_id, uid = fields.get("msgId", ""), fields.get("uid", "")
    if not msg_id or len(msg_id) > 64:
        raise BadRequest("an Echat push needs a msgId of at most 64 characters")
    if len(uid) > 128:
        raise BadRequest("uid is longer than 128 characters")
    return push_type, EchatPush(push_type, msg_id, uid, fields)


def _root(parsed: dict[str, Any]) -> dict[str, Any]:
    name, root = next(iter(parsed.items()))
    if name != "xml" or not isinstance(root, dict):
        raise BadRequest("an Echat push is an <xml> element with fields")
    return root


def _text(value: Any, name: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be text (it appears twice or has children)")
    return value.strip()
