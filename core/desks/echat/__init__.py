"""The Echat (一洽) desk. Echat has no API to submit a visitor's message from outside its own windows,
so a user routed here gets a hand-over link to Echat's chat window, carrying a signed `pushInfo` that
names them; what agents write after the user left comes back as staff pushes and is sent in WeChat."""
from __future__ import annotations

import dataclasses
import html
from typing import Any
from urllib.parse import quote

from core import logs
from core.desks.base import Callback, Delivered, Desk
from core.desks.echat import pushinfo
from core.desks.echat.push import EchatPush, read_push
from core.errors import PermanentDeliveryError, UnknownRecipient
from core.models import AgentReply, Conversation, UserMessage
from core.web import SUCCESS, Request
from core.wechat.api import split_text

log = logs.get("echat")
SYSTEM_NOTICES = {"1": "start", "2": "busy", "3": "noreply", "4": "end", "24": "invite"}  # chatSend contentType
ATTACHMENTS = {"22": "图片", "23": "文件", "25": "图文消息"}  # content left empty by Echat
SAID_KEEP, SAID_CHARS = 5, 200


def anchor(url: str, label: str, **attributes: str) -> str:
    """A link inside a WeChat text message. WeChat does not decode entities in attributes, so values
    are made safe by percent-encoding the few characters that would end them."""
    def safe(value: str) -> str:
        return value.replace('"', "%22").replace("<", "%3C").replace(">", "%3E")

    extra = "".join(f' data-miniprogram-{name}="{safe(value)}"' for name, value in attributes.items())
    return f'<a href="{safe(url)}"{extra}>{html.escape(label, quote=False)}</a>'


class EchatDesk(Desk):
    name = "echat"
    callback_paths = ("/echat",)
    needs_known_recipient = False  # a push for nobody we know is acknowledged and kept, not refused

    # -- pushes from Echat --------------------------------------------------------------------------
    def parse_callback(self, request: Request) -> Callback:
        push_type, push = read_push(request, self.settings.echat, self.clock())
        if push is None:
            log.info("Echat push of a kind this relay does not relay acknowledged", extra={"type": push_type})
            return Callback(SUCCESS)
        user = self._user(push)
        text = self._text(push, self._chat_url(push.get("pushInfo") if user else None))
        if text is None:
            log.info("Echat system message not forwarded (ECHAT_SYSTEM_NOTICES)",
                     extra={"msg_id": push.msg_id, "content_type": push.get("contentType")})
            return Callback(SUCCESS)
        ref = {"uid": push.uid, "talk_id": push.get("talkId"), "lane": f"uid:{push.uid}" if push.uid else ""}
        pieces = split_text(text)
        return Callback(SUCCESS, [
            AgentReply(id=f"{push_type}:{push.msg_id}" + (f"#{n}" if len(pieces) > 1 else ""), desk=self.name,
                       app_id=user[0] if user else "", openid=user[1] if user else "", kind="text", text=piece,
                       desk_ref=ref)
            for n, piece in enumerate(pieces, 1)])

    def _user(self, push: EchatPush) -> tuple[str, str] | None:
        """The signed pushInfo, else a signed token the company passed as myData."""
        secret = self.settings.echat.token or ""
        user = pushinfo.verify(secret, push.get("pushInfo")) or pushinfo.verify(secret, push.get("myData"))
        if user is None and push.get("pushInfo"):
            log.warning("Echat push with a pushInfo that is not ours or was altered", extra={"msg_id": push.msg_id})
        return user

    def _text(self, push: EchatPush, chat_url: str) -> str | None:
        """What the user gets, or None for a system message the company did not ask to forward.
        `chat_url` reopens the chat window when the push has no viewUrl of its own."""
        link = anchor(push.get("viewUrl") or chat_url, self.settings.echat.handover_title)
        if push.push_type != "chatSend":
            return push.get("replyContent") or f"客服给您回复了消息，点此查看：{link}"
        content_type, content = push.get("contentType"), push.get("content")
        notice = SYSTEM_NOTICES.get(content_type) if push.get("msgType") == "1" or content_type == "24" else None
        if notice or push.get("msgType") == "1":
            if notice not in self.settings.echat.system_notices:
                return None
            return content or f"客服邀请您评价本次服务：{link}"
        if content_type in ATTACHMENTS or not content:
            return f"客服发来了{ATTACHMENTS.get(content_type, '消息')}，点此查看：{link}"
        return content

    def _chat_url(self, token: str | None) -> str:
        url = self.settings.echat.chat_url or ""
        if url and token:
            url += ("&" if "?" in url else "?") + "pushInfo=" + quote(token, safe="")
        return url

    # -- routing agent replies ----------------------------------------------------------------------
    def reply_lane(self, reply: AgentReply) -> str:
        """One Echat visitor's pushes keep their order, whoever they resolve to."""
        lane = reply.desk_ref.get("lane")
        return f"out:{self.name}:{lane}" if lane else super().reply_lane(reply)

    async def resolve_recipient(self, reply: AgentReply) -> AgentReply:
        """A signed token names the user and links the visitor's uid; otherwise the uid's link."""
        uid = reply.desk_ref.get("uid")
        if reply.app_id and reply.openid:
            if uid:
                await self.store.link(self.name, uid, reply.app_id, reply.openid, self.clock())
            return reply
        user = await self.store.linked(self.name, uid) if uid else None
        if user is None:
            raise UnknownRecipient(f"Echat visitor {uid or '(no uid)'} is not linked to a WeChat user")
        return dataclasses.replace(reply, app_id=user[0], openid=user[1])

    async def undeliverable(self, reply: AgentReply, reason: str, errcode: int | None, detail: str,
                            conversation: Conversation | None) -> None:
        """Echat has no API to tell the agent: the reply stays in the store as a dead letter."""
        raise PermanentDeliveryError(f"Echat reply {reply.id} not delivered ({reason}); Echat cannot be told, "
                                     "kept here", errcode=errcode)

    # -- hand-over --------------------------------------------------------------------------------
    async def deliver(self, message: UserMessage, conversation: Conversation) -> Delivered:
        """Keep the user's last words; send the hand-over link at most once per ECHAT_HANDOVER_EVERY."""
        thread: dict[str, Any] = dict(conversation.thread or {})
        if message.msgtype == "event" and message.kind != "session":
            return Delivered(thread)  # other events are not the user talking
        if message.kind != "session":
            said = (message.text if message.kind == "text" and message.text else message.notice())[:SAID_CHARS]
            thread["said"] = [*thread.get("said", []), said][-SAID_KEEP:]
        now = self.clock()
        if now - float(thread.get("handover_at", 0)) < self.settings.echat.handover_every:
            return Delivered(thread)
        thread["handover_at"] = now
        log.info("hand-over link to Echat", extra={"id": message.id, "openid": message.openid})
        return Delivered(thread, (self._handover(message, conversation, thread.get("said", [])),))

    def _handover(self, message: UserMessage, conversation: Conversation, said: list[str]) -> AgentReply:
        echat = self.settings.echat
        token = pushinfo.sign(echat.token or "", message.app_id, message.openid)
        text = echat.handover_text
        if echat.handover_quote and said:
            text += "\n您刚才说：" + " / ".join(said)
        reply = AgentReply(id=f"handover:{message.id}", desk=self.name, app_id=message.app_id,
                           openid=message.openid, kind="text", desk_ref={"handover": True})
        url = self._chat_url(token)
        if echat.chat_page:
            path = echat.chat_page + ("&" if "?" in echat.chat_page else "?") + "pushInfo=" + quote(token, safe="")
            appid = conversation.from_appid or message.app_id  # the link must name the sending Mini Program
            link = anchor(url, echat.handover_title, appid=appid, path=path)
            return dataclasses.replace(reply, text=f"{text}\n{link}")
        if echat.handover_thumb_url:
            return dataclasses.replace(reply, kind="link", title=echat.handover_title, description=text, url=url,
                                       thumb_url=echat.handover_thumb_url)
        return dataclasses.replace(reply, text=f"{text}\n{anchor(url, echat.handover_title)}")
