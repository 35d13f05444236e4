"""What C4C calls us with: the Mashup (agent replied; survey workflow) and the event notification."""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any
from urllib.parse import parse_qs

from core.bodies import parse_json_object
from core.errors import BadRequest, Unauthorized
from core.web import Request

TRUE = ("true", "x", "1", "yes")  # private_ind arrives as "TRUE"/"FALSE"
CHALLENGE = {"www-authenticate": 'Basic realm="relay", charset="UTF-8"'}


def check_basic(request: Request, user: str, password: str) -> None:
    """HTTP Basic, compared in constant time (both the Mashup and the notification consumer send it)."""
    scheme, _, encoded = (request.header("authorization") or "").partition(" ")
    try:
        given_user, sep, given_password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, ValueError):
        sep = ""
    if scheme.lower() != "basic" or not sep:
        raise Unauthorized("HTTP Basic credentials are required (C4C_INBOUND_USER)", CHALLENGE)
    user_ok = hmac.compare_digest(given_user.encode(), user.encode())
    if not (hmac.compare_digest(given_password.encode(), password.encode()) and user_ok):
        raise Unauthorized("wrong HTTP Basic credentials", CHALLENGE)


def mashup_payload(body: bytes) -> dict[str, Any]:
    """The Mashup's JSON object: a form body `content=<url-encoded JSON>` (the documented setting), a
    raw JSON object, or a JSON object whose `content` is that JSON as a string. Sniffed, not taken
    from Content-Type."""
    stripped = body.strip()
    if stripped.startswith(b"{"):
        data = parse_json_object(stripped)
        content = data.get("content")
        return _json_text(content) if isinstance(content, str) else data
    try:
        form = parse_qs(stripped.decode("utf-8"), keep_blank_values=True, strict_parsing=True, max_num_fields=50)
    except (UnicodeDecodeError, ValueError):  # the parser's message would quote the body
        raise BadRequest("the Mashup body is neither JSON nor a form") from None
    contents = form.get("content")
    if not contents or len(contents) != 1:
        raise BadRequest("the Mashup form needs exactly one content field")
    return _json_text(contents[0])


def _json_text(text: str) -> dict[str, Any]:
    try:
        return parse_json_object(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise BadRequest("content holds text that is not valid Unicode") from None


def field(data: dict[str, Any], name: str, limit: int | None = 128) -> str:
    """A string field, stripped; ids and the like are at most `limit` characters (None: free text)."""
    value = data.get(name)
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        raise BadRequest(f"{name} must be a string")
    text = str(value).strip()
    if limit is not None and len(text) > limit:
        raise BadRequest(f"{name} is longer than {limit} characters")
    return text


def is_private(data: dict[str, Any]) -> bool:
    value = data.get("private_ind")
    return value is True or (isinstance(value, str) and value.strip().lower() in TRUE)


def digest(*parts: str) -> str:
    """A stable id for a call that carries none (survey messages, notifications)."""
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()[:32]
