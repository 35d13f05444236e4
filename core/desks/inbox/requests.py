"""Reading the inbox API's requests: JSON objects (with a JSON content type, which a cross-site form
cannot send), path ids, paging numbers, and a picture uploaded as base64 JSON or multipart form data."""
from __future__ import annotations

import base64
import binascii
from email import policy
from email.parser import BytesParser
from typing import Any
from urllib.parse import unquote

from core.bodies import parse_json_object
from core.errors import BadRequest, NotFound, UnsupportedMediaType
from core.models import split_conversation_id
from core.web import Request

MAX_PAGE = 200


def content_type(request: Request) -> str:
    return (request.header("content-type") or "").split(";")[0].strip().lower()


def json_body(request: Request) -> dict[str, Any]:
    if content_type(request) != "application/json":
        raise UnsupportedMediaType("send JSON with Content-Type: application/json")
    return parse_json_object(request.body)


def text_field(data: dict[str, Any], name: str, limit: int, required: bool = True) -> str | None:
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"{name} must be a non-empty string")
    if len(value) > limit:
        raise BadRequest(f"{name} is longer than {limit} characters")
    return value


def user_of(raw: str) -> tuple[str, str]:
    """(app_id, openid) of a conversation id in a path (`<app_id>:<openid>`, URL-encoded or not)."""
    user = split_conversation_id(unquote(raw))
    if user is None:
        raise NotFound("no such conversation")
    return user


def name_of(raw: str) -> str:
    """An agent's name from a path segment (URL-encoded or not)."""
    return unquote(raw)


def whole_number(value: str | None, name: str, default: int | None = None, most: int | None = None) -> int | None:
    if value is None or value == "":
        return default
    if not value.isascii() or not value.isdigit() or len(value) > 18:
        raise BadRequest(f"{name} must be a whole number")
    return min(int(value), most) if most else int(value)


def page_size(request: Request, default: int) -> int:
    return max(1, whole_number(request.query.get("limit"), "limit", default, MAX_PAGE) or default)


def uploaded_picture(request: Request) -> tuple[bytes | None, dict[str, Any]]:
    """The picture of a reply (None for a text reply) and the JSON fields (empty for a form)."""
    if content_type(request) == "multipart/form-data":
        return _form_file(request), {}
    data = json_body(request)
    encoded = data.get("image_base64")
    if encoded is None:
        return None, data
    try:
        return base64.b64decode(encoded, validate=True), data
    except (binascii.Error, ValueError, TypeError):
        raise BadRequest("image_base64 must be the picture's bytes in base64") from None


def _form_file(request: Request) -> bytes:
    head = f"Content-Type: {request.header('content-type')}\r\n\r\n".encode()
    message = BytesParser(policy=policy.HTTP).parsebytes(head + request.body)
    if not message.is_multipart():
        raise BadRequest("malformed multipart body")
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            data = part.get_payload(decode=True)
            if isinstance(data, bytes) and data:
                return data
    raise BadRequest("the form needs a non-empty file field named file")
