"""The Easemob kefu (环信移动客服) desk, through the IM app associated with kefu: each WeChat user is an
IM user of that app and writes to the kefu IM service number; what the service number writes back to
them arrives through the IM post-send callback and is sent in WeChat (docs/easemob-desk.md)."""
from __future__ import annotations

import base64
import dataclasses
import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx

from core import logs
from core.desks.base import Callback, Delivered, Desk, Thread
from core.desks.easemob.api import MAX_FILE, EasemobApi, FileGone
from core.desks.easemob.callback import agent_replies, ignored_because, read_callback
from core.desks.easemob.settings import EasemobSettings
from core.desks.easemob.visitor import im_user, visitor_ext
from core.errors import PermanentDeliveryError, UnknownRecipient
from core.http import check_status, send
from core.models import AgentReply, Conversation, UserMessage
from core.store import SqlStore
from core.web import Request, Response
from core.wechat.api import shorten, split_text

log = logs.get("easemob")
ACCEPTED, IGNORED = Response.json({"status": "accepted"}), Response.json({"status": "ignored"})
DUPLICATE = Response.json({"status": "duplicate"})
TEXT_BYTES = 3000  # a visitor's text per IM message: Easemob takes 5 KB of body and ext
KEEP_SENT, KEEP_UNDELIVERED = 50, 20  # entries kept in the conversation thread
ID_ATTEMPTS = 4
IMAGE_GONE = "[客服发送了一张图片，图片已无法获取]"
NOTE_EXCERPT = 500  # bytes of the refused reply quoted in the note
NOTE = "【转发服务提示，非访客发言】客服的这条回复未送达微信用户（{reason}）：{excerpt}"
REASONS = {"window_closed": "已超过 48 小时回复时限，需等用户再次发言",
           "quota_exhausted": "本次可回复的条数已用完，需等用户再次发言",
           "rejected": "微信拒收"}


class EasemobDesk(Desk[EasemobSettings]):
    name = "easemob"
    settings_type = EasemobSettings
    callback_paths = ("/easemob",)
    needs_known_recipient = False  # replies name an IM user; the WeChat user is looked up at send time

    def __init__(self, settings: EasemobSettings, http: httpx.AsyncClient, store: SqlStore,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(settings, http, store, clock)
        self.api = EasemobApi(settings, http, clock)

    # -- the post-send callback ---------------------------------------------------------------------
    def parse_callback(self, request: Request) -> Callback:
        """Verify, then keep what the service number wrote to one of the relay's visitors; acknowledge
        everything else (the visitors' own messages echoed, other users, groups, commands)."""
        callback = read_callback(request.body, self.settings.callback_secret or "", self.clock())
        why_not = ignored_because(callback, self.settings.service_number or "")
        if why_not:
            log.info("Easemob callback acknowledged, not relayed",
                     extra={"msg_id": callback.get("msg_id"), "because": why_not})
            return Callback(IGNORED, replay_key=callback.replay_key)
        return Callback(ACCEPTED, agent_replies(callback, self.name), duplicate_response=DUPLICATE,
                        replay_key=callback.replay_key)

    def reply_lane(self, reply: AgentReply) -> str:
        """One visitor's replies keep their order."""
        return f"out:{self.name}:{reply.desk_ref.lane or reply.id}"

    async def resolve_recipient(self, reply: AgentReply) -> AgentReply:
        """The WeChat user the IM user stands for; a picture is fetched from Easemob now."""
        user = reply.desk_ref.get("im_user")
        found = await self.store.linked(self.name, user) if user else None
        if found is None:
            raise UnknownRecipient(f"Easemob IM user {user or '(none)'} is not one of this relay's visitors")
        reply = dataclasses.replace(reply, app_id=found[0], openid=found[1])
        file = reply.desk_ref.get("file")
        if reply.kind != "image" or not file or reply.image_base64:
            return reply
        try:
            data = await self.api.download(file, reply.desk_ref.get("secret") or "")
        except FileGone as exc:
            log.warning("agent's picture could not be fetched from Easemob", extra={"reply": reply.id, "error": str(exc)})
            return dataclasses.replace(reply, kind="text", text=IMAGE_GONE)
        return dataclasses.replace(reply, image_base64=base64.b64encode(data).decode())

    # -- user messages --------------------------------------------------------------------------------
    async def deliver(self, message: UserMessage, conversation: Conversation) -> Delivered:
        """Each message from the user's IM user to the service number. Easemob's id of each message sent
        is saved in the thread at once, so a retry sends only what is missing."""
        thread: Thread = dict(conversation.thread or {})
        if message.kind == "session":
            thread["session_from"] = message.session_from or ""
            return Delivered(thread)
        if message.msgtype == "event":
            return Delivered(thread)  # other events are not the user talking
        user = await self._visitor(message.app_id, message.openid, thread)
        ext = self._ext(message.app_id, message.openid, thread, message.msg_id)
        sent: dict[str, list[str]] = dict(thread.get("sent", {}))
        done = list(sent.get(message.id, []))
        pieces = self._pieces(message)
        for kind, body in pieces[len(done):]:
            if kind == "img":
                kind, body = await self._picture(message)
            done.append(await self.api.send(user, self.settings.service_number or "", kind, body, ext))
            sent[message.id] = done
            thread["sent"] = dict(list(sent.items())[-KEEP_SENT:])
            await self.store.set_thread(message.app_id, message.openid, self.name, thread)
        log.info("delivered to Easemob", extra={"id": message.id, "messages": len(pieces)})
        return Delivered(thread)

    async def _visitor(self, app_id: str, openid: str, thread: Thread) -> str:
        """The user's IM user, registered on first contact and linked both ways: the link names the
        WeChat user of an IM id; the id, derived from the user, is checked against the link."""
        if thread.get("im_user"):
            return str(thread["im_user"])
        for attempt in range(ID_ATTEMPTS):
            user = im_user(app_id, openid, attempt)
            owner = await self.store.linked(self.name, user)
            if owner is None or owner == (app_id, openid):
                break
        else:
            raise PermanentDeliveryError(f"no free Easemob IM id for a user after {ID_ATTEMPTS} attempts")
        await self.store.link(self.name, user, app_id, openid, self.clock())
        await self.api.register(user, secrets.token_urlsafe(24))
        thread["im_user"] = user
        await self.store.set_thread(app_id, openid, self.name, thread)
        log.info("Easemob IM user registered for a WeChat user", extra={"im_user": user, "openid": openid})
        return user

    def _ext(self, app_id: str, openid: str, thread: Thread, msg_id: str | None) -> dict[str, Any]:
        session_from = thread.get("session_from")
        return visitor_ext(app_id, openid, thread["im_user"], session_from, self.settings.queue_for(session_from), msg_id)

    def _pieces(self, message: UserMessage) -> list[tuple[str, dict[str, Any]]]:
        """The IM messages one user message becomes ("img" is uploaded only when its turn comes)."""
        if message.kind == "text" and message.text:
            return [("txt", {"msg": piece}) for piece in split_text(message.text, TEXT_BYTES)]
        if message.kind == "image" and message.pic_url:
            return [("img", {})]
        if message.kind == "miniprogrampage":
            lines = [f"[小程序卡片] {message.title or ''}".strip(), f"页面：{message.pagepath or ''}",
                     f"小程序：{message.appid or ''}"] + ([f"封面：{message.thumb_url}"] if message.thumb_url else [])
            return [("txt", {"msg": "\n".join(lines)})]
        return [("txt", {"msg": message.notice()})]

    async def _picture(self, message: UserMessage) -> tuple[str, dict[str, Any]]:
        """The user's picture, fetched from WeChat's PicUrl and stored as an Easemob chat file; a picture
        WeChat no longer serves becomes a text naming its URL."""
        if not (message.pic_url or "").lower().startswith(("https://", "http://")):
            return "txt", {"msg": message.notice()}
        response = await send(self.http, "GET", message.pic_url or "")
        if 400 <= response.status_code < 500 or len(response.content) > MAX_FILE:
            log.warning("user's picture could not be fetched", extra={"id": message.id, "status": response.status_code})
            return "txt", {"msg": message.notice()}
        check_status(response)
        content_type = response.headers.get("content-type", "image/jpeg").split(";")[0].strip() or "image/jpeg"
        filename = "image." + {"image/png": "png", "image/gif": "gif"}.get(content_type, "jpg")
        url, secret = await self.api.upload(response.content, filename, content_type)
        return "img", {"filename": filename, "url": url, **({"secret": secret} if secret else {})}

    # -- refused replies ------------------------------------------------------------------------------
    async def undeliverable(self, reply: AgentReply, reason: str, errcode: int | None, detail: str,
                            conversation: Conversation | None) -> None:
        """Keep the refusal with the conversation, and show the agent a note in the kefu conversation:
        a text from the visitor's IM user that says it is the relay's, marked in `ext.relay_notice`."""
        thread: Thread = dict((conversation.thread if conversation else None) or {})
        user = thread.get("im_user")
        if conversation is None or not user:
            raise PermanentDeliveryError(f"Easemob reply {reply.id} not delivered ({reason}) to a user the relay "
                                         "cannot name; kept here")
        kept: list[dict[str, Any]] = list(thread.get("undelivered", []))
        entry = next((e for e in kept if e.get("reply") == reply.id), None)
        if entry is None:
            entry = {"reply": reply.id, "kind": reply.kind, "text": reply.text, "reason": reason, "errcode": errcode,
                     "at": self.clock(), "note": None}
            thread["undelivered"] = [*kept, entry][-KEEP_UNDELIVERED:]
            await self.store.set_thread(reply.app_id, reply.openid, self.name, thread)
        if entry["note"] is not None or not self.settings.undeliverable_note:
            return
        excerpt = reply.text or "[图片]"
        excerpt = shorten(excerpt, NOTE_EXCERPT) if len(excerpt.encode()) > NOTE_EXCERPT else excerpt
        ext = {**self._ext(reply.app_id, reply.openid, thread, None),
               "relay_notice": {"type": "undeliverable", "reply_msg_id": reply.id, "reason": reason, "errcode": errcode}}
        text = NOTE.format(reason=REASONS.get(reason, reason), excerpt=excerpt)
        entry["note"] = await self.api.send(user, self.settings.service_number or "", "txt", {"msg": text}, ext)
        await self.store.set_thread(reply.app_id, reply.openid, self.name, thread)
        log.info("undeliverable note sent to the kefu conversation", extra={"reply": reply.id, "reason": reason})
