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
from core.desks.echat.push import EchatPush, read_push, replay_key
from core.desks.echat.settings import EchatSettings
from core.errors import PermanentDeliveryError, UnknownRecipient
from core.models import AgentReply, Conversation, DeskRef, UserMessage
from core.web import SUCCESS, Request
from core.wechat.api import TEXT_LIMIT, shorten, split_text

log = logs.get("echat")
# chatSend system messages (msgType 1) by contentType: (ECHAT_SYSTEM_NOTICES name, text when Echat sends none)
SYSTEM_NOTICES = {"1": ("start", "客服已接入，请问有什么可以帮您？"), "2": ("busy", "客服正忙，请稍候。"),
                  "3": ("noreply", "您已经有一段时间没有回复了。"), "4": ("end", "本次对话已结束。"),
                  "24": ("invite", "客服邀请您评价本次服务：{link}")}
ATTACHMENTS = {"22": "图片", "23": "文件", "25": "图文消息"}  # content left empty by Echat
LINK = "{link}"  # in texts the relay writes itself: the chat link, filled in once the user is known
SAID_KEEP, SAID_CHARS = 20, 2000  # the user's words kept with the conversation


def anchor(url: str, label: str, **attributes: str) -> str:
    """A link inside a WeChat text message. WeChat does not decode entities in attributes, so values
    are made safe by percent-encoding the few characters that would end them."""
    def safe(value: str) -> str:
        return value.replace('"', "%22").replace("<", "%3C").replace(">", "%3E")

    extra = "".join(f' data-miniprogram-{name}="{safe(value)}"' for name, value in attributes.items())
    return f'<a href="{safe(url)}"{extra}>{html.escape(label, quote=False)}</a>'


def _with_query(url: str, name: str, value: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{name}={quote(value, safe='')}"


class EchatDesk(Desk[EchatSettings]):
    name = "echat"
    settings_type = EchatSettings
    callback_paths = ("/echat",)
    needs_known_recipient = False  # a push for nobody we know is acknowledged and kept, not refused

    # -- pushes from Echat --------------------------------------------------------------------------
    def parse_callback(self, request: Request) -> Callback:
        push_type, push = read_push(request, self.settings, self.clock())
        once = replay_key(request)  # the signature covers neither body nor msgType: it serves one request
        if push is None:
            log.info("Echat push of a kind this relay does not relay acknowledged", extra={"type": push_type})
            return Callback(SUCCESS, replay_key=once)
        found = self._text(push)
        if found is None:
            log.info("Echat system message not forwarded (ECHAT_SYSTEM_NOTICES)",
                     extra={"msg_id": push.msg_id, "content_type": push.get("contentType")})
            return Callback(SUCCESS, replay_key=once)
        text, needs_link = found
        user = self._user(push)
        ref = DeskRef(f"uid:{push.uid}" if push.uid else None,
                      {"uid": push.uid or "", "talk_id": push.get("talkId") or "", "link": "yes" if needs_link else ""})
        return Callback(SUCCESS, [
            AgentReply(id=f"{push_type}:{push.msg_id}", desk=self.name, app_id=user[0] if user else "",
                       openid=user[1] if user else "", kind="text", text=piece, desk_ref=ref)
            for piece in ([text] if needs_link else split_text(text))], replay_key=once)

    def _user(self, push: EchatPush) -> tuple[str, str] | None:
        """The signed pushInfo, else a signed token the company passed as myData."""
        secret = self.settings.token or ""
        user = pushinfo.verify(secret, push.get("pushInfo")) or pushinfo.verify(secret, push.get("myData"))
        if user is None and push.get("pushInfo"):
            log.warning("Echat push with a pushInfo that is not ours or was altered", extra={"msg_id": push.msg_id})
        return user

    def _text(self, push: EchatPush) -> tuple[str, bool] | None:
        """What the user gets, and whether it is the relay's own text in which LINK stands for the link
        back to the chat window (pushes without a viewUrl); None for a system message the company did
        not ask to forward."""
        view = push.get("viewUrl")
        if view and not view.lower().startswith(("https://", "http://")):
            log.warning("Echat viewUrl that is not http(s) ignored", extra={"msg_id": push.msg_id})
            view = ""  # a javascript: or other scheme never reaches the user
        link = anchor(view, self.settings.handover_title) if view else LINK

        def own(text: str) -> tuple[str, bool]:
            return text.replace(LINK, link), not view and LINK in text

        if push.push_type != "chatSend":
            reply = push.get("replyContent")
            return (reply, False) if reply else own(f"客服给您回复了消息，点此查看：{LINK}")
        content_type, content = push.get("contentType"), push.get("content")
        if push.get("msgType") == "1" or content_type == "24":
            name, default = SYSTEM_NOTICES.get(content_type, ("", ""))
            if name not in self.settings.system_notices:
                return None
            return (content, False) if content else own(default)
        if content_type in ATTACHMENTS or not content:
            return own(f"客服发来了{ATTACHMENTS.get(content_type, '消息')}，点此查看：{LINK}")
        return content, False

    def chat_link(self, app_id: str, openid: str, sender_appid: str | None = None) -> str:
        """A link that opens the Echat chat window as this user: the Mini Program page when configured
        (`sender_appid` is the Mini Program the message comes from), else Echat's H5 window."""
        echat = self.settings
        token = pushinfo.sign(echat.token or "", app_id, openid)
        url = _with_query(echat.chat_url, "pushInfo", token) if echat.chat_url else ""
        if echat.chat_page:
            return anchor(url, echat.handover_title, appid=sender_appid or app_id,
                          path=_with_query(echat.chat_page, "pushInfo", token))
        return anchor(url, echat.handover_title)

    # -- routing agent replies ----------------------------------------------------------------------
    def reply_lane(self, reply: AgentReply) -> str:
        """One Echat visitor's pushes keep their order, whoever they resolve to."""
        lane = reply.desk_ref.lane
        return f"out:{self.name}:{lane}" if lane else super().reply_lane(reply)

    async def resolve_recipient(self, reply: AgentReply) -> AgentReply:
        """A signed token names the user and links the visitor's uid; otherwise the uid's link. A link
        back to the chat window is made for the user found."""
        uid = reply.desk_ref.get("uid")
        if reply.app_id and reply.openid:
            if uid:
                await self.store.link(self.name, uid, reply.app_id, reply.openid, self.clock())
        else:
            user = await self.store.linked(self.name, uid) if uid else None
            if user is None:
                raise UnknownRecipient(f"Echat visitor {uid or '(no uid)'} is not linked to a WeChat user")
            reply = dataclasses.replace(reply, app_id=user[0], openid=user[1])
        if reply.desk_ref.get("link") and reply.text:
            conversation = await self.store.conversation(reply.app_id, reply.openid)
            link = self.chat_link(reply.app_id, reply.openid, conversation.from_appid if conversation else None)
            reply = dataclasses.replace(reply, text=reply.text.replace(LINK, link))
        return reply

    async def undeliverable(self, reply: AgentReply, reason: str, errcode: int | None, detail: str,
                            conversation: Conversation | None) -> None:
        """Echat has no API to tell the agent: the reply stays in the store as a dead letter."""
        raise PermanentDeliveryError(f"Echat reply {reply.id} not delivered ({reason}); Echat cannot be told, "
                                     "kept here", errcode=errcode)

    # -- hand-over --------------------------------------------------------------------------------
    async def deliver(self, message: UserMessage, conversation: Conversation) -> Delivered:
        """Keep the user's words; send the hand-over link at most once per ECHAT_HANDOVER_EVERY."""
        thread: dict[str, Any] = dict(conversation.thread or {})
        if message.msgtype == "event" and message.kind != "session":
            return Delivered(thread)  # other events are not the user talking
        if message.kind != "session":
            said = (message.text if message.kind == "text" and message.text else message.notice())[:SAID_CHARS]
            thread["said"] = [*thread.get("said", []), said][-SAID_KEEP:]
        now = self.clock()
        if now - float(thread.get("handover_at", 0)) < self.settings.handover_every:
            return Delivered(thread)
        thread["handover_at"] = now
        log.info("hand-over link to Echat", extra={"id": message.id, "openid": message.openid})
        return Delivered(thread, (self._handover(message, conversation, thread.get("said", [])),))

    def _handover(self, message: UserMessage, conversation: Conversation, said: list[str]) -> AgentReply:
        echat = self.settings
        reply = AgentReply(id=f"handover:{message.id}", desk=self.name, app_id=message.app_id,
                           openid=message.openid, kind="text")
        if echat.handover_thumb_url and echat.chat_url and not echat.chat_page:
            token = pushinfo.sign(echat.token or "", message.app_id, message.openid)
            return dataclasses.replace(reply, kind="link", title=echat.handover_title,
                                       description=self._quoted(echat.handover_text, said, 0),
                                       url=_with_query(echat.chat_url, "pushInfo", token),
                                       thumb_url=echat.handover_thumb_url)
        link = self.chat_link(message.app_id, message.openid, conversation.from_appid)
        return dataclasses.replace(reply, text=f"{self._quoted(echat.handover_text, said, len(link.encode()) + 1)}"
                                               f"\n{link}")

    def _quoted(self, text: str, said: list[str], reserved: int) -> str:
        """The hand-over text, with the user's latest words when ECHAT_HANDOVER_QUOTE is on, cut so that
        the whole message (and `reserved` bytes for the link) fits one WeChat text."""
        head = f"{text}\n您刚才说："
        room = TEXT_LIMIT - reserved - len(head.encode())
        if not (self.settings.handover_quote and said) or room < 16:
            return text
        chosen: list[str] = []  # the latest words that fit, in the order they were said
        for words in reversed(said):
            if len(" / ".join([words, *chosen]).encode()) > room:
                chosen = chosen or [shorten(words, room)]
                break
            chosen.insert(0, words)
        return head + " / ".join(chosen)
