"""The SAP Cloud for Customer desk: user messages become Social Media Activities in tickets; agents'
replies arrive through a Mashup, customer changes through an event notification."""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import httpx

from core import logs
from core.bodies import parse_json_object
from core.desks.base import Callback, Delivered, Desk
from core.desks.c4c.inbound import check_basic, digest, field, is_private, mashup_payload
from core.desks.c4c.odata import ODataClient, ODataSocialMedia
from core.desks.c4c.settings import C4CSettings
from core.desks.c4c.soap import SoapSocialMedia
from core.desks.c4c.social import Activity, Profile, SocialMedia
from core.errors import BadRequest, UnknownRecipient
from core.models import WINDOW_SECONDS, AgentReply, Conversation, DeskRef, UserMessage
from core.store import SqlStore
from core.web import Request, Response
from core.wechat.api import split_text

log = logs.get("c4c")
ACCEPTED = Response.json({"status": "accepted"})
DUPLICATE = Response.json({"status": "duplicate"})
CUSTOMER_OBJECTS = ("CUSTOMER", "INDIVIDUALCUSTOMER")
NOTICE_PREFIX = "[WeChat relay]"
CHANGE_COALESCE = 300  # one notice per customer per 5 minutes, however often C4C says it changed
REASONS = {
    "window_closed": "the 48-hour window for replies is closed until the user writes again",
    "quota_exhausted": "the reply quota of this window is used up until the user writes again",
    "rejected": "WeChat refused it",
}


class C4CDesk(Desk[C4CSettings]):
    name = "c4c"
    settings_type = C4CSettings
    callback_paths = ("/c4c/mashup", "/c4c/events")
    needs_known_recipient = False  # replies name a ticket; the user is looked up in C4C

    def __init__(self, settings: C4CSettings, http: httpx.AsyncClient, store: SqlStore,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(settings, http, store, clock)
        self.c4c = settings
        self.client = ODataClient(self.c4c)
        self.odata = ODataSocialMedia(self.client, self.c4c)
        self.social: SocialMedia = self.odata if self.c4c.api == "odata" else SoapSocialMedia(self.client.http,
                                                                                               self.c4c)

    async def close(self) -> None:
        await self.client.close()

    # -- inbound: Mashup and event notification -------------------------------------------------------
    def parse_callback(self, request: Request) -> Callback:
        check_basic(request, self.c4c.inbound_user or "", self.c4c.inbound_password or "")
        if request.path == "/c4c/events":
            return self._customer_changed(parse_json_object(request.body))
        data = mashup_payload(request.body)
        if field(data, "type").upper() == "WKF":
            return Callback(ACCEPTED, self._survey(data), duplicate_response=DUPLICATE)
        return self._ticket_reply(data)

    def _ticket_reply(self, data: dict[str, Any]) -> Callback:
        original_id, ticket, sma_id = (field(data, n) for n in ("original_id", "service_req_no", "sma_id"))
        text = field(data, "text", limit=None)
        if not (original_id or ticket):
            raise BadRequest("a ticket reply needs original_id or service_req_no")
        if not text:
            raise BadRequest("a ticket reply needs text")
        if text.startswith(NOTICE_PREFIX):  # our own undeliverable notice, should C4C pass it on
            log.info("the relay's own notice came back through the Mashup: not sent", extra={"sma_id": sma_id})
            return Callback(ACCEPTED)
        if is_private(data):
            log.info("private C4C reply: not sent to the user", extra={"sma_id": sma_id, "ticket": ticket})
            return Callback(Response.json({"status": "private: not sent"}))
        ref = DeskRef(f"ticket:{ticket or original_id}",
                      {"original_id": original_id, "ticket": ticket, "sma_id": sma_id})
        reply_id = sma_id or digest(original_id, ticket, field(data, "sma_create_datetime"), text)
        return Callback(ACCEPTED, self._texts(reply_id, text, ref), duplicate_response=DUPLICATE)

    def _survey(self, data: dict[str, Any]) -> list[AgentReply]:
        items = data.get("data")
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
            raise BadRequest("a WKF message needs a data list")
        replies = []
        for item in items:
            openid, text = field(item, "openId"), field(item, "fullText", limit=None)
            link = field(item, "surveyLink", limit=2048)
            if not openid or not text:
                raise BadRequest("each WKF item needs openId and fullText")
            if link and link not in text:
                text = f"{text}\n{link}"
            replies += self._texts(f"wkf:{digest(openid, text)}", text, DeskRef(f"user:{openid}"), openid)
        return replies

    def _customer_changed(self, data: dict[str, Any]) -> Callback:
        business_object, customer = field(data, "businessObject"), field(data, "businessObjectId")
        if not customer:
            raise BadRequest("the notification needs businessObjectId")
        if business_object and business_object.upper() not in CUSTOMER_OBJECTS:
            log.info("C4C notification for another business object ignored", extra={"object": business_object})
            return Callback(Response.json({"status": "ignored"}))
        reply_id = f"change:{customer}:{int(self.clock() // CHANGE_COALESCE)}"
        return Callback(ACCEPTED, self._texts(reply_id, self.c4c.change_notice,
                                              DeskRef(f"customer:{customer}", {"customer": customer})),
                        duplicate_response=DUPLICATE)

    def _texts(self, reply_id: str, text: str, ref: DeskRef, openid: str = "") -> list[AgentReply]:
        """Text replies, split to WeChat's size: one per piece, all with the reply's id."""
        return [AgentReply(id=reply_id, desk=self.name, app_id="", openid=openid, kind="text", text=piece,
                           desk_ref=ref) for piece in split_text(text)]

    def reply_lane(self, reply: AgentReply) -> str:
        """Replies of one ticket (or one customer, one survey user) keep their order."""
        return f"out:{self.name}:{reply.desk_ref.lane or reply.id}"

    async def resolve_recipient(self, reply: AgentReply) -> AgentReply:
        """Ticket reply: original_id → activity → profile → account id, else service_req_no → buyer main
        contact → profile → account id. Notification: the customer's WechatID. Then the app the user
        wrote through (linked when their first message was delivered)."""
        ref, openid = reply.desk_ref, reply.openid
        customer, original_id, ticket = ref.get("customer"), ref.get("original_id"), ref.get("ticket")
        if not openid and customer:
            openid = await self.odata.wechat_id(self.c4c.wechatid_url or "", customer) or ""
        elif not openid:
            found = await self.social.openid_of_activity(original_id) if original_id else None
            if found:
                openid = found[0]
                ref = ref.with_ids(root_uuid=found[1].root_uuid, profile_uuid=found[1].profile_uuid)
            elif ticket:
                openid = await self.odata.openid_of_ticket(ticket) or ""
        if not openid:
            raise UnknownRecipient(f"C4C names no WeChat user for reply {reply.id}")
        user = await self.store.linked(self.name, openid)
        if user is None:
            raise UnknownRecipient(f"the WeChat user of C4C reply {reply.id} never wrote through this relay")
        return dataclasses.replace(reply, app_id=user[0], openid=user[1], desk_ref=ref)

    # -- outbound: user messages and undeliverable notices ----------------------------------------------
    async def deliver(self, message: UserMessage, conversation: Conversation) -> Delivered:
        """First contact: find or create the user's profile. Each message: a root activity, or a follow-up
        under the root while the conversation lasts; a retried delivery finds its activity instead."""
        thread = dict(conversation.thread or {})
        if message.msgtype == "event" and message.kind != "session":
            return Delivered(thread)  # other events are not the user talking: no activity, no ticket
        if "profile" not in thread:
            profile = await self.social.find_profile(message.openid) or await self.social.create_profile(
                message.openid)
            await self.store.link(self.name, message.openid, message.app_id, message.openid, self.clock())
            thread["profile"] = dataclasses.asdict(profile)
        if message.kind == "session":
            return Delivered(thread)
        ongoing = "root" in thread and message.created_at - thread.get("last_at", 0) < WINDOW_SECONDS
        root = Activity(**thread["root"]) if ongoing else None
        message_id = message.msg_id or message.id
        activity = await self.social.find_activity(message_id) or await self.social.create_activity(
            Profile(**thread["profile"]), message_id, message.text if message.kind == "text" and message.text
            else message.notice(), root)
        if root is None:
            thread["root"] = dataclasses.asdict(activity)
        thread["last_at"] = message.created_at
        log.info("activity in C4C", extra={"id": message.id, "activity": activity.id, "root": root is None})
        return Delivered(thread)

    async def undeliverable(self, reply: AgentReply, reason: str, errcode: int | None, detail: str,
                            conversation: Conversation | None) -> None:
        """A follow-up activity in the reply's own thread, so the agent sees that the user did not get it.
        Never a root: that would open a ticket. Over SOAP, C4C threads it by the user's profile."""
        ref, thread = reply.desk_ref, (conversation.thread if conversation else None) or {}
        if not (ref.get("ticket") or ref.get("original_id")) or "profile" not in thread:
            return  # a survey or a notice: no ticket to tell; the relay has logged it
        root = await self._thread_of(ref, thread)
        if root is None and self.c4c.api == "odata":
            log.warning("no C4C thread to show an undeliverable reply in", extra={"reply": reply.id})
            return
        message_id = f"undeliverable-{reply.id}"
        if await self.social.find_activity(message_id):
            return
        text = f"{NOTICE_PREFIX} Not delivered to the WeChat user ({REASONS.get(reason, reason)}): {reply.text or ''}"
        await self.social.create_activity(Profile(**thread["profile"]), message_id, text[:2000], root,
                                          from_agent_side=True)

    async def _thread_of(self, ref: DeskRef, thread: dict[str, Any]) -> Activity | None:
        """The root of the reply's ticket: known from its original_id, else from the agent's reply
        activity (`sma_id`), else the conversation's current root."""
        root_uuid, sma_id = ref.get("root_uuid"), ref.get("sma_id")
        if root_uuid:
            return Activity(uuid=root_uuid, id="", root_uuid=root_uuid)
        if sma_id and self.c4c.api == "odata":
            agent_reply = await self.odata.activity_by_id(sma_id)
            if agent_reply:
                return agent_reply
        return Activity(**thread["root"]) if "root" in thread else None
