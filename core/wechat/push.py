"""Turn a WeChat push (any format, any mode) into a UserMessage."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.errors import BadRequest
from core.models import UserMessage

PROBE = "CheckContainerPath"


@dataclass(frozen=True)
class Identity:
    """Who the push is for, from the shell: Cloud Run headers, or the function's context."""

    app_id: str | None = None
    from_appid: str | None = None
    openid: str | None = None


def identity_from_headers(headers: Mapping[str, str]) -> Identity:
    return Identity(
        app_id=headers.get("x-wx-appid") or None,
        from_appid=headers.get("x-wx-from-appid") or None,
        openid=headers.get("x-wx-openid") or headers.get("x-wx-from-openid") or None,
    )


def is_probe(body: bytes, fields: Mapping[str, Any] | None) -> bool:
    if fields is not None:
        return fields.get("action") == PROBE
    return body.strip() == PROBE.encode()


# Longest value each field may have; a longer one is refused at intake with a 400, never stored.
LIMITS = {"MsgType": 32, "FromUserName": 128, "ToUserName": 64, "MsgId": 64, "Event": 64, "AppId": 64,
          "SessionFrom": 1024, "PicUrl": 2048, "ThumbUrl": 2048, "MediaId": 256, "ThumbMediaId": 256,
          "Title": 1024, "PagePath": 1024}
MAX_CREATE_TIME = 10**10  # seconds: the year 2286


def _text(fields: Mapping[str, Any], name: str) -> str | None:
    """A field as text: absent is None; an object or a list (never sent by WeChat) is refused."""
    value = fields.get(name)
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        raise BadRequest(f"{name} must be a plain value, not an object or a list")
    text = str(value)
    limit = LIMITS.get(name)
    if limit is not None and len(text) > limit:
        raise BadRequest(f"{name} is longer than {limit} characters")
    return text


def parse_message(fields: Mapping[str, Any], identity: Identity, default_app: str | None) -> UserMessage:
    msgtype = (_text(fields, "MsgType") or "").strip()
    openid = _text(fields, "FromUserName") or identity.openid
    if not msgtype or not openid:
        raise BadRequest("a push needs MsgType and FromUserName")
    created = (_text(fields, "CreateTime") or "").strip()
    if not (created.isascii() and created.isdigit() and int(created) < MAX_CREATE_TIME):
        raise BadRequest("CreateTime must be Unix seconds")
    created_at = int(created)
    to_user = _text(fields, "ToUserName")
    # Resource reuse: the user belongs to the calling account (x-wx-from-appid).
    app_id = identity.from_appid or identity.app_id or default_app or to_user or "-"
    msg_id = _text(fields, "MsgId")
    event = _text(fields, "Event")
    if len(app_id) > 64 or len(openid) > 128:
        raise BadRequest("the app id or the user's openid is too long")
    if msg_id:
        dedupe = f"{app_id}:{msg_id}"
    else:  # events have no MsgId
        dedupe = f"{app_id}:event:{openid}:{created_at}:{event or msgtype}"
    kind = msgtype if msgtype in ("text", "image", "miniprogrampage") else "other"
    if msgtype == "event" and event == "user_enter_tempsession":
        kind = "session"
    return UserMessage(
        id=dedupe, app_id=app_id, openid=openid, kind=kind, created_at=created_at, msgtype=msgtype,
        msg_id=msg_id, from_appid=identity.from_appid, to_user=to_user, event=event,
        text=_text(fields, "Content"), pic_url=_text(fields, "PicUrl"), media_id=_text(fields, "MediaId"),
        title=_text(fields, "Title"), appid=_text(fields, "AppId"), pagepath=_text(fields, "PagePath"),
        thumb_url=_text(fields, "ThumbUrl"), thumb_media_id=_text(fields, "ThumbMediaId"),
        session_from=_text(fields, "SessionFrom"),
    )
