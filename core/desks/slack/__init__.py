"""The Slack desk: every WeChat user who writes gets a thread in one channel (SLACK_CHANNEL); agents
answer in the thread, and the answer reaches the user in WeChat (docs/slack-desk.md)."""
from __future__ import annotations

import base64
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import httpx

from core import logs
from core.bodies import parse_json_object
from core.desks.base import Callback, Delivered, Desk
from core.desks.slack import mrkdwn, texts
from core.desks.slack.api import SlackApi
from core.desks.slack.events import AgentPost, EventVerifier, agent_post
from core.desks.slack.pace import Pace
from core.desks.slack.settings import SlackSettings
from core.desks.slack.threads import CLOSED, Threads
from core.errors import BadRequest, CredentialsRefused, PermanentDeliveryError
from core.models import AgentReply, Conversation, DeskRef, UserMessage
from core.store import SqlStore
from core.web import Request, Response
from core.wechat.api import TEXT_LIMIT, split_text

log = logs.get("slack")
ACK = Response.text("")
PIECE_LIMIT = TEXT_LIMIT - 200  # room for the names that mentions and SLACK_AGENT_NAMES add
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif"})  # what WeChat shows as a picture
IMAGE_LIMIT = 2 << 20  # larger pictures go to WeChat as Slack's largest thumbnail
THUMBNAILS = ("thumb_1024", "thumb_960", "thumb_800", "thumb_720", "thumb_480", "thumb_360")
NAME_TTL = 3600.0


def _display_name(user: Any) -> str:
    if not isinstance(user, dict):
        return ""
    found = user.get("profile")
    profile = found if isinstance(found, dict) else {}
    for name in (profile.get("display_name"), profile.get("real_name"), user.get("real_name"), user.get("name")):
        if isinstance(name, str) and name.strip():
            return name.strip()[:80]
    return ""


def _picture_url(file: dict[str, Any]) -> str | None:
    """Where to fetch a picture WeChat can show: the file when small enough, else its largest thumbnail."""
    if file.get("mimetype") not in IMAGE_TYPES:
        return None
    original, size = file.get("url_private") or file.get("url_private_download"), file.get("size")
    if isinstance(original, str) and isinstance(size, int) and size <= IMAGE_LIMIT:
        return original
    return next((file[name] for name in THUMBNAILS if isinstance(file.get(name), str)), None)


class SlackDesk(Desk[SlackSettings]):
    name = "slack"
    settings_type = SlackSettings
    callback_paths = ("/slack/events",)
    needs_known_recipient = False  # replies name a thread; resolve_recipient finds its user
    caller_waits = 3.0  # Slack retries an event not answered within 3 s

    def __init__(self, settings: SlackSettings, http: httpx.AsyncClient, store: SqlStore,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(settings, http, store, clock)
        self.api = SlackApi(settings.api_base, settings.bot_token or "", http, Pace(settings.posts_per_minute))
        self.verifier = EventVerifier(settings.signing_secret or "", clock)
        self.channel = settings.channel or ""
        self.threads = Threads(self.name, settings, self.api, http, store, clock)
        self._own_user: str | None = None  # the bot user, from auth.test once
        self._names: dict[str, tuple[str, float]] = {}  # Slack user id -> (display name, when read)

    # -- Slack → user -------------------------------------------------------------------------------
    def parse_callback(self, request: Request) -> Callback:
        self.verifier.check(request)  # before the body is read, the url_verification challenge included
        data = parse_json_object(request.body)
        kind = data.get("type")
        if kind == "url_verification":
            challenge = data.get("challenge")
            if not isinstance(challenge, str) or not challenge or len(challenge) > 256:
                raise BadRequest("url_verification needs a challenge string")
            return Callback(Response.json({"challenge": challenge}))
        if kind != "event_callback":
            log.info("Slack request of another type acknowledged", extra={"type": str(kind)[:40]})
            return Callback(ACK)
        post = agent_post(data, self.settings)
        if isinstance(post, str):
            log.info("Slack event not relayed", extra={"why": post, "event_id": str(data.get("event_id"))[:64]})
            return Callback(ACK)
        return Callback(ACK, self._replies(post), duplicate_response=ACK)

    def _replies(self, post: AgentPost) -> list[AgentReply]:
        """What of a post goes to the user: its text in pieces WeChat takes, then each file; all under one
        id (the message's channel and ts), so Slack's retries and a repeated event_id are one reply."""
        ref = DeskRef(f"thread:{post.thread_ts}", {"thread": post.thread_ts, "user": post.user})
        base = AgentReply(id=f"{post.channel}:{post.ts}", desk=self.name, app_id="", openid="", kind="text",
                          desk_ref=ref)
        if texts.is_close(post.text):
            return [dataclasses.replace(base, desk_ref=ref.with_ids(command="close"))]
        text = mrkdwn.to_text(post.text)
        replies = [dataclasses.replace(base, text=piece) for piece in split_text(text, PIECE_LIMIT)] if text else []
        return replies + [self._file_reply(base, file) for file in post.files]

    @staticmethod
    def _file_reply(base: AgentReply, file: dict[str, Any]) -> AgentReply:
        url = _picture_url(file)
        if url:
            return dataclasses.replace(base, kind="image", desk_ref=base.desk_ref.with_ids(file_url=url))
        name = str(file.get("name") or file.get("title") or "file")[:128]
        return dataclasses.replace(base, text=texts.FILE_NOTICE.format(name=name))

    def reply_lane(self, reply: AgentReply) -> str:
        """The replies of one thread (one user) keep their order."""
        lane = reply.desk_ref.lane
        return f"out:{self.name}:{lane}" if lane else super().reply_lane(reply)

    async def resolve_recipient(self, reply: AgentReply) -> AgentReply | None:
        """The user of the reply's thread (the links table, keyed by the thread's ts), with mentions named,
        the agent's name in front (SLACK_AGENT_NAMES) and a picture fetched. None when nothing goes to
        WeChat: the relay's own post, a thread the relay did not open, or `!close` (done here)."""
        ref = reply.desk_ref
        thread_ts, author = ref.get("thread") or "", ref.get("user")
        if author and author == await self._bot_user():
            log.info("the relay's own Slack post: not relayed", extra={"reply": reply.id})
            return None
        user = await self.store.linked(self.name, thread_ts) if thread_ts else None
        if user is None:
            log.info("a reply in a Slack thread the relay did not open: not relayed", extra={"reply": reply.id})
            return None
        if ref.get("command") == "close":
            await self._close(thread_ts, user, author)
            return None
        reply = dataclasses.replace(reply, app_id=user[0], openid=user[1])
        if reply.kind == "image":
            picture = await self.api.download(ref.get("file_url") or "", IMAGE_LIMIT)
            return dataclasses.replace(reply, image_base64=base64.b64encode(picture).decode())
        return dataclasses.replace(reply, text=await self._named(reply.text or "", author))

    async def _named(self, text: str, author: str | None) -> str:
        names = {user: await self._name(user) for user in mrkdwn.mentioned(text)}
        text = mrkdwn.name_mentions(text, names)
        agent = await self._name(author) if self.settings.agent_names and author else ""
        return f"{agent}: {text}" if agent else text

    async def _name(self, user: str) -> str:
        """A Slack user's display name (users.info, cached for an hour); empty when Slack will not say."""
        cached = self._names.get(user)
        if cached and self.clock() - cached[1] < NAME_TTL:
            return cached[0]
        try:
            name = _display_name((await self.api.call("users.info", user=user)).get("user"))
        except (PermanentDeliveryError, CredentialsRefused) as exc:  # a name is not worth holding a reply for
            log.warning("a Slack user's name could not be read (users:read scope?)",
                        extra={"user": user, "error": str(exc)})
            name = ""
        self._names[user] = (name, self.clock())
        return name

    async def _bot_user(self) -> str:
        if self._own_user is None:
            self._own_user = str((await self.api.call("auth.test")).get("user_id") or "")
        return self._own_user

    async def _close(self, thread_ts: str, user: tuple[str, str], agent: str | None) -> None:
        """Mark the thread closed (the user's next message opens a new one) and say so in it."""
        await self.store.link(self.name, CLOSED + thread_ts, user[0], user[1], self.clock())
        await self.api.post("chat.postMessage", f"close:{thread_ts}", channel=self.channel, thread_ts=thread_ts,
                            text=texts.closed(agent))
        log.info("Slack thread closed", extra={"thread_ts": thread_ts, "openid": user[1]})

    async def undeliverable(self, reply: AgentReply, reason: str, errcode: int | None, detail: str,
                            conversation: Conversation | None) -> None:
        """A warning in the reply's thread, with the reason."""
        thread_ts = reply.desk_ref.get("thread") or ((conversation.thread or {}).get("ts") if conversation else None)
        if not thread_ts:
            log.warning("no Slack thread to show an undeliverable reply in", extra={"reply": reply.id})
            return
        await self.api.post("chat.postMessage", f"undeliverable:{reply.id}", channel=self.channel,
                            thread_ts=thread_ts, text=texts.undeliverable(reply, reason, errcode))

    async def deliver(self, message: UserMessage, conversation: Conversation) -> Delivered:
        """The user's message into their thread (core/desks/slack/threads.py)."""
        return await self.threads.deliver(message, conversation)
