"""The built-in inbox: the relay's own agent desk (docs/inbox.md). Users' messages and agents' replies,
with their delivery state, live in the relay's store; agents read and answer them on the page at
/inbox through the JSON API under /inbox/api/. It is the default desk."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx

from core import logs
from core.desks.base import Callback, Delivered, Desk
from core.desks.inbox import pictures
from core.desks.inbox.api import InboxApi
from core.desks.inbox.auth import THROTTLE_WINDOW, Auth
from core.desks.inbox.events import Events
from core.desks.inbox.settings import InboxSettings
from core.desks.inbox.static import StaticFiles
from core.desks.inbox.store import InboxStore, NewMessage
from core.errors import NotFound
from core.models import AgentReply, Conversation, UserMessage
from core.store import SqlStore
from core.web import Request, Response

log = logs.get("inbox")
STATIC = Path(__file__).parent / "static"
DAY = 86400.0
EVENTS_KEEP = DAY  # a page away longer than this reloads (a `reset` event)


class InboxDesk(Desk[InboxSettings]):
    name = "inbox"
    settings_type = InboxSettings
    route_prefix = "/inbox"

    def __init__(self, settings: InboxSettings, http: httpx.AsyncClient, store: SqlStore,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(settings, http, store, clock)
        self.inbox = InboxStore(self.store)
        self.auth = Auth(self.inbox, self.clock)
        self.api = InboxApi(self, self.inbox, self.store, self.auth, Events(self.inbox), self.clock)
        self.files = StaticFiles(STATIC)

    async def open(self) -> None:
        token = await self.auth.setup_link()
        if token:  # the one secret the log shows, on purpose: it is how the first admin gets in
            log.warning("the inbox has no agent yet: open this link within an hour to create the first admin "
                        "(or run `python -m core.admin agent add NAME --admin`)",
                        extra={"setup_link": f"{self.route_prefix}#setup={token}"})

    # -- requests under /inbox --------------------------------------------------------------------
    async def serve(self, request: Request) -> Response:
        rest = request.path[len(self.route_prefix):].lstrip("/")
        if rest == "api" or rest.startswith("api/"):
            return await self.api.serve(request, rest[4:])
        return self.files.serve(request, rest)

    def parse_callback(self, request: Request) -> Callback:
        raise NotFound("the inbox takes no desk callbacks")

    # -- the relay's hooks ------------------------------------------------------------------------
    async def deliver(self, message: UserMessage, conversation: Conversation) -> Delivered:
        """Keep the user's message (and picture: a fetch that fails for now is retried by the outbox)."""
        picture = await pictures.fetch(self.http, message.pic_url) if message.kind == "image" and message.pic_url \
            else None
        text = message.text if message.kind == "text" else None if message.kind == "image" else message.notice()
        await self.inbox.record_in(message.app_id, message.openid,
                                   NewMessage("in", message.kind, text, ref=message.id, picture=picture), self.clock())
        return Delivered()

    async def sent(self, reply: AgentReply) -> None:
        if reply.desk_ref.get("last") and reply.id.isdigit():
            await self.inbox.set_state(int(reply.id), "sent", self.clock())

    async def undeliverable(self, reply: AgentReply, reason: str, errcode: int | None, detail: str,
                            conversation: Conversation | None) -> None:
        if reply.id.isdigit():
            shown = f"errcode {errcode}" if errcode is not None else detail
            await self.inbox.set_state(int(reply.id), "undeliverable", self.clock(), reason, shown)

    async def housekeeping(self, now: float) -> None:
        forgotten = await self.inbox.prune(now - self.settings.keep_days * DAY, now - EVENTS_KEEP,
                                           now - THROTTLE_WINDOW, now)
        if forgotten:
            log.info("inbox messages past RELAY_INBOX_KEEP_DAYS deleted", extra={"count": forgotten})
