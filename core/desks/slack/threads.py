"""User → Slack: a thread per WeChat user in the relay's channel, each message a reply in it. Every post
is kept in the stored thread before the next step, and carries its key in Slack's message metadata, so a
retried delivery finds what an earlier attempt posted instead of posting it twice."""
from __future__ import annotations

from collections.abc import Callable

import httpx

from core import logs
from core.desks.base import Delivered, Thread
from core.desks.slack import texts
from core.desks.slack.api import SlackApi
from core.desks.slack.pace import RateLimited
from core.desks.slack.settings import SlackSettings
from core.errors import CredentialsRefused, PermanentDeliveryError, TransientDeliveryError
from core.http import check_status, send
from core.models import Conversation, UserMessage
from core.store import SqlStore

log = logs.get("slack")
CLOSED = "closed:"  # links key of a closed thread: closed:<thread ts>
METADATA_TYPE = "wechat_relay_post"  # every post carries its key, so a post whose answer was lost can be found
PICTURE_LIMIT = 20 << 20  # a user's picture fetched from WeChat for Slack
EXTENSIONS = {"image/png": "png", "image/gif": "gif"}


class Threads:
    """The desk's user → Slack side; `desk` names it in the store."""

    def __init__(self, desk: str, settings: SlackSettings, api: SlackApi, http: httpx.AsyncClient, store: SqlStore,
                 clock: Callable[[], float]) -> None:
        self.desk, self.api, self.http, self.store, self.clock = desk, api, http, store, clock
        self.channel, self.note_prefix = settings.channel or "", settings.note_prefix
        self.quiet_for = settings.thread_days * 86400

    async def deliver(self, message: UserMessage, conversation: Conversation) -> Delivered:
        """Open the user's thread when there is none (or it was closed, or quiet for SLACK_THREAD_DAYS),
        then post the message in it. A post is kept in the stored thread before the next step, so a
        retried delivery posts neither the root nor the message twice."""
        thread: Thread = dict(conversation.thread or {})
        if message.kind == "session":
            thread["session_from"] = message.session_from  # named by the root of the next thread
            return Delivered(thread)
        if message.msgtype == "event" or thread.get("done") == message.id:
            return Delivered(thread)  # other events are not the user talking; or posted before a crash
        if await self._needs_thread(thread, message):
            thread = await self._open_thread(message, conversation, thread)
        if not (message.kind == "image" and await self._post_picture(message, thread)):
            await self._post(conversation, thread, message.id, texts.user_message(message), thread["ts"])
        thread.update(done=message.id, last_at=max(float(thread.get("last_at", 0)), message.created_at))
        thread.pop("unsure", None)
        return Delivered(thread)

    async def _needs_thread(self, thread: Thread, message: UserMessage) -> bool:
        ts = thread.get("ts")
        if not ts or thread.get("channel") != self.channel:
            return True
        if message.created_at - float(thread.get("last_at", 0)) > self.quiet_for:
            return True
        return await self.store.linked(self.desk, CLOSED + ts) is not None

    async def _open_thread(self, message: UserMessage, conversation: Conversation, old: Thread) -> Thread:
        """Post the root, link its ts to the user, and store the thread before anything goes under it."""
        previous = await self._permalink(old) if old.get("ts") else None
        root = texts.root(message, conversation, old.get("session_from"), self.note_prefix, previous)
        ts, now = await self._post(conversation, old, f"root:{message.id}", root), self.clock()
        thread: Thread = {"ts": ts, "channel": self.channel, "opened_at": now,
                          "last_at": message.created_at, "session_from": old.get("session_from")}
        if old.get("ts"):
            thread["previous"] = old["ts"]
        await self.store.link(self.desk, ts, message.app_id, message.openid, now)
        await self.store.set_thread(message.app_id, message.openid, self.desk, thread)
        log.info("Slack thread opened", extra={"id": message.id, "thread_ts": ts, "previous": old.get("ts")})
        return thread

    async def _permalink(self, old: Thread) -> str:
        try:
            answer = await self.api.call("chat.getPermalink", channel=old.get("channel") or self.channel,
                                         message_ts=old["ts"])
        except PermanentDeliveryError:
            answer = {}
        link = answer.get("permalink")
        return f"<{link}|the previous thread>" if isinstance(link, str) else f"thread {old['ts']}"

    async def _post(self, conversation: Conversation, thread: Thread, key: str, text: str,
                    thread_ts: str | None = None) -> str:
        """chat.postMessage with `key` in its metadata; the post's ts. A failure that may have posted it
        anyway (a lost answer; not a rate limit or a refusal) marks the key unsure in the stored thread, and
        the next attempt looks for it in Slack before posting again."""
        unsure = thread.get("unsure") or {}
        if unsure.get("key") == key:
            found = await self._posted_before(key, thread_ts, float(unsure.get("at", 0)))
            if found:
                log.info("a post whose answer was lost is in Slack: not posted again", extra={"key": key})
                return found
        try:
            answer = await self.api.post(
                "chat.postMessage", key, channel=self.channel, text=text, thread_ts=thread_ts,
                unfurl_links=False, unfurl_media=False,
                metadata={"event_type": METADATA_TYPE, "event_payload": {"key": key}})
        except (RateLimited, CredentialsRefused):  # refused outright: nothing was posted
            raise
        except TransientDeliveryError:
            await self.store.set_thread(conversation.app_id, conversation.openid, self.desk,
                                        {**thread, "unsure": {"key": key, "at": self.clock()}})
            raise
        ts = answer.get("ts")
        if not isinstance(ts, str) or not ts:
            raise PermanentDeliveryError("Slack chat.postMessage: ok without a ts")
        return ts

    async def _posted_before(self, key: str, thread_ts: str | None, since: float) -> str | None:
        """The ts of a post carrying `key` since a moment before `since`, in the thread or the channel."""
        method, where = ("conversations.replies", {"ts": thread_ts}) if thread_ts else ("conversations.history", {})
        answer = await self.api.call(method, channel=self.channel, oldest=f"{since - 60:.6f}",
                                     inclusive=True, include_all_metadata=True, limit=200, **where)
        for posted in answer.get("messages") or []:
            metadata = posted.get("metadata") if isinstance(posted, dict) else None
            payload = metadata.get("event_payload") if isinstance(metadata, dict) else None
            if isinstance(payload, dict) and payload.get("key") == key and isinstance(posted.get("ts"), str):
                return str(posted["ts"])
        return None

    async def _post_picture(self, message: UserMessage, thread: Thread) -> bool:
        """Upload the user's picture into the thread; False when WeChat's copy cannot be had."""
        url = message.pic_url or ""
        if not url.startswith(("https://", "http://")):
            return False
        try:
            response = check_status(await send(self.http, "GET", url), detail="the user's picture")
        except PermanentDeliveryError as exc:
            log.warning("the user's picture could not be fetched from WeChat", extra={"error": str(exc)})
            return False
        if not response.content or len(response.content) > PICTURE_LIMIT:
            return False
        extension = EXTENSIONS.get(response.headers.get("content-type", "").split(";")[0].strip(), "jpg")
        name = f"wechat-{message.msg_id or message.created_at}.{extension}"
        await self.api.upload(f"file:{message.id}", response.content, name, "Picture from the WeChat user",
                              self.channel, thread["ts"])
        return True
