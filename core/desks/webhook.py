"""The webhook desk: signed JSON to the company's own system, signed replies back (docs/webhook-desk.md)."""
from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from core import signing
from core.bodies import parse_json_object
from core.desks.base import Callback, Delivered, Desk, DeskSettings
from core.env import EnvReader
from core.errors import BadRequest
from core.http import check_status, send
from core.models import AgentReply, Conversation, UserMessage, split_conversation_id
from core.web import Request, Response

REPLY_KINDS = {
    "text": ("text",),
    "image": ("image_base64",),
    "link": ("title", "url"),
    "miniprogrampage": ("title", "pagepath", "thumb_media_id"),
    "typing": ("command",),
}
OPTIONAL = ("description", "thumb_url")


def _is_base64(value: str) -> bool:
    try:
        return bool(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return False


@dataclass(frozen=True)
class WebhookSettings(DeskSettings):
    url: str | None = None
    secret: str | None = None

    required = {"url": "WEBHOOK_URL", "secret": "WEBHOOK_SECRET"}

    @classmethod
    def from_env(cls, env: EnvReader) -> WebhookSettings:
        return cls(url=env.url("WEBHOOK_URL"), secret=env.str("WEBHOOK_SECRET"))


class WebhookDesk(Desk[WebhookSettings]):
    name = "webhook"
    settings_type = WebhookSettings
    callback_paths = ("/webhook/reply",)

    def parse_callback(self, request: Request) -> Callback:
        secret = self.settings.secret or ""
        signing.verify(secret, request.header("x-relay-timestamp"), request.header("x-relay-signature"),
                       request.body, self.clock())
        return Callback(Response.json({"status": "accepted"}, 202), [self._reply(parse_json_object(request.body))],
                        duplicate_response=Response.json({"status": "duplicate"}))

    def _reply(self, data: dict[str, Any]) -> AgentReply:
        reply_id, kind = data.get("id"), data.get("type", "text")
        if not isinstance(reply_id, str) or not reply_id or len(reply_id) > 128:
            raise BadRequest("id must be a string of 1 to 128 characters")
        if not isinstance(kind, str) or kind not in REPLY_KINDS:
            raise BadRequest(f"type must be one of {', '.join(REPLY_KINDS)}")
        app_id, openid = split_conversation_id(str(data.get("conversation_id", ""))) or (
            data.get("app_id"), data.get("openid"))
        if not (isinstance(app_id, str) and app_id and isinstance(openid, str) and openid):
            raise BadRequest("name the user with conversation_id, or app_id and openid")
        fields: dict[str, Any] = {}
        for name in REPLY_KINDS[kind] + OPTIONAL:
            value = data.get(name)
            if name in REPLY_KINDS[kind] and (not isinstance(value, str) or not value):
                raise BadRequest(f"a {kind} reply needs {name}")
            if value is not None:
                fields[name] = str(value)
        if kind == "image" and not _is_base64(fields["image_base64"]):
            raise BadRequest("image_base64 must be the picture's bytes in base64")
        if kind == "typing" and fields["command"] not in ("Typing", "CancelTyping"):
            raise BadRequest("command must be Typing or CancelTyping")
        reply = AgentReply(id=reply_id, desk=self.name, app_id=app_id, openid=openid, kind=kind)
        return dataclasses.replace(reply, **fields)

    async def deliver(self, message: UserMessage, conversation: Conversation) -> Delivered:
        event: dict[str, Any] = {"event": "message", "id": message.id, "conversation_id": message.conversation_id,
                                 "app_id": message.app_id, "openid": message.openid, "created_at": message.created_at}
        if message.kind == "session":
            event.update(event="session", session_from=message.session_from)
        elif message.kind == "text":
            event.update(type="text", text=message.text or "")
        elif message.kind == "image":
            event.update(type="image", pic_url=message.pic_url, media_id=message.media_id)
        elif message.kind == "miniprogrampage":
            event.update(type="miniprogrampage", title=message.title, appid=message.appid,
                         pagepath=message.pagepath, thumb_url=message.thumb_url, thumb_media_id=message.thumb_media_id)
        else:
            event.update(type="other", msgtype=message.msgtype, text=message.notice())
        await self._post(event)
        return Delivered()

    async def undeliverable(self, reply: AgentReply, reason: str, errcode: int | None, detail: str,
                            conversation: Conversation | None) -> None:
        await self._post({"event": "undeliverable", "id": f"undeliverable:{reply.id}", "reply_id": reply.id,
                          "conversation_id": reply.conversation_id, "app_id": reply.app_id, "openid": reply.openid,
                          "reason": reason, "errcode": errcode, "detail": detail})

    async def _post(self, event: dict[str, Any]) -> None:
        body = json.dumps(event, ensure_ascii=False).encode()
        timestamp = str(int(self.clock()))
        headers = {"content-type": "application/json; charset=utf-8", "x-relay-timestamp": timestamp,
                   "x-relay-signature": signing.sign(self.settings.secret or "", timestamp, body)}
        check_status(await send(self.http, "POST", self.settings.url or "", content=body, headers=headers))
