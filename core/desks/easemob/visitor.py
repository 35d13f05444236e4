"""A WeChat user as a kefu visitor: the IM user id they get, and the `ext.weichat` their messages carry."""
from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

IM_USER = re.compile(r"wx[a-z2-7]{26}")  # every id im_user() makes, and only those


def im_user(app_id: str, openid: str, attempt: int = 0) -> str:
    """An IM user id for a WeChat user: "wx" + 26 base32 characters of a sha256 of app and openid.

    Openids are mixed-case and Easemob lower-cases ids, so an openid cannot serve as the id itself.
    `attempt` > 0 gives another id, for the (never yet seen) case of two users hashing alike."""
    seed = f"{app_id}\n{openid}" + (f"\n{attempt}" if attempt else "")
    digest = hashlib.sha256(seed.encode()).digest()[:16]
    return "wx" + base64.b32encode(digest).decode().rstrip("=").lower()


def nickname(session_from: str | None, user: str) -> str:
    """The visitor's name in kefu: `nickName` from a JSON SessionFrom when the Mini Program passes one,
    else 微信用户 and the id's last four characters (kefu wants a name that is not empty)."""
    data: Any = None
    if session_from and session_from.lstrip().startswith("{"):
        try:
            data = json.loads(session_from)
        except ValueError:
            data = None
    name = (data.get("nickName") or data.get("nickname")) if isinstance(data, dict) else None
    return name.strip()[:64] if isinstance(name, str) and name.strip() else f"微信用户{user[-4:]}"


def visitor_ext(app_id: str, openid: str, user: str, session_from: str | None, queue: str | None,
                msg_id: str | None) -> dict[str, Any]:
    """`ext` of a visitor's message: who they are (`weichat.visitor`) and the queue hint."""
    visitor = {"source": "weixin", "openid": openid, "mp": app_id, "userNickname": nickname(session_from, user)}
    if msg_id:
        visitor["msgId"] = msg_id
    weichat: dict[str, Any] = {"visitor": visitor}
    if queue:
        weichat["queueName"] = queue
    return {"weichat": weichat}
