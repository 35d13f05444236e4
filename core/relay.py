"""Relay: every route of the service, push intake, and the outbox job handlers."""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from core import __version__, logs
from core.config import Settings
from core.desks import REGISTRY, Desk
from core.errors import (
    MethodNotAllowed,
    NotFound,
    PermanentDeliveryError,
    RecipientUnreachable,
    RelayError,
    TooLarge,
    Unauthorized,
    UnknownRecipient,
)
from core.http import make_client
from core.metrics import Metrics
from core.models import (
    WINDOW_CLOSING,
    WINDOW_SECONDS,
    AgentReply,
    Conversation,
    ConversationTouch,
    Job,
    JobKind,
    NewJob,
    Reason,
    UserMessage,
)
from core.outbox import Outbox
from core.sandbox import Sandbox
from core.store import SqlStore, open_store
from core.web import SUCCESS, Request, Response
from core.wechat.api import WeChatApi
from core.wechat.push import Identity, parse_message
from core.wechat.verify import PushVerifier

log = logs.get("relay")
BUSY_WINDOW = 0.05  # seconds: intake counts as busy this long after a push
SESSION_WINDOW = 60  # after user_enter_tempsession: 2 messages within 1 minute


def group_by_id(replies: Iterable[AgentReply]) -> dict[str, list[AgentReply]]:
    """The pieces of each reply, in order, whether or not a desk sent them side by side."""
    groups: dict[str, list[AgentReply]] = {}
    for reply in replies:
        groups.setdefault(reply.id, []).append(reply)
    return groups


class Relay:
    def __init__(self, settings: Settings, store: SqlStore, http: httpx.AsyncClient,
                 clock: Callable[[], float] = time.time, sandbox: Sandbox | None = None) -> None:
        self.settings, self.store, self.http, self.clock, self.sandbox = settings, store, http, clock, sandbox
        self.metrics = Metrics()
        self.wechat = WeChatApi(settings.wechat, http, self.metrics, clock)
        self.push_verifier = PushVerifier(settings.wechat, clock)
        self._last_push = 0.0  # monotonic time of the latest push: while they come, the outbox yields to intake
        self.desks: dict[str, Desk[Any]] = {name: REGISTRY[name](settings.desks[name], http, store, clock)
                                       for name in settings.desks_in_use()}
        self.callback_routes = {path: desk for desk in self.desks.values() for path in desk.callback_paths}
        self.prefix_routes = {desk.route_prefix: desk for desk in self.desks.values() if desk.route_prefix}
        self.outbox = Outbox(store, self._run_job, self.metrics, concurrency=settings.worker_concurrency,
                             lease=settings.lease_seconds, retry_for=settings.retry_for,
                             retention=settings.retention, clock=clock, busy=self._intake_busy,
                             housekeeping=[desk.housekeeping for desk in self.desks.values()])

    @classmethod
    async def start(cls, settings: Settings) -> Relay:
        logs.setup(settings.log_level)
        store = await open_store(settings.database_url)
        log.info("relay started", extra=settings.summary())
        wx = settings.wechat
        if wx.push_trust == "header" and wx.push_path == "/":
            log.warning("pushes on / are believed on an x-wx-source header, which anyone can send when public access "
                        "is on: set WX_PUSH_PATH to a secret path, the same in the message-push settings")
        # The one switch of the sandbox: its routes, and WeChat calls answered in process.
        sandbox = Sandbox(settings.wechat) if settings.sandbox else None
        relay = cls(settings, store, make_client(sandbox.mounts if sandbox else None), sandbox=sandbox)
        for desk in relay.desks.values():
            await desk.open()
        return relay

    async def close(self) -> None:
        for desk in self.desks.values():
            await desk.close()
        await self.http.aclose()
        await self.store.close()

    # -- routes -----------------------------------------------------------------------------------
    def _intake_busy(self) -> bool:
        return time.monotonic() - self._last_push < BUSY_WINDOW

    async def handle(self, request: Request) -> Response:
        try:
            if len(request.body) > self.settings.max_body:
                raise TooLarge(f"body over {self.settings.max_body} bytes")
            if request.path == self.settings.wechat.push_path:
                self._last_push = time.monotonic()
                return await self._wechat(request)
            if request.path == "/healthz":
                return await self._health()
            if request.path == "/metrics":
                return Response(200, self.metrics.render(await self.store.depth()),
                                {"content-type": self.metrics.content_type})
            if self.sandbox and (request.path == "/sandbox" or request.path.startswith("/sandbox/")):
                return await self.sandbox.serve(request, self.handle)
            served = self._prefix_route(request.path)
            if served is not None:
                try:
                    return await served.serve(request)
                finally:
                    if request.method not in ("GET", "HEAD"):
                        self.outbox.wake()  # the desk may have queued a reply or retried a job
            desk = self.callback_routes.get(request.path)
            if desk is None:
                raise NotFound("no such route (or its desk is not configured)")
            if request.method != "POST":
                raise MethodNotAllowed("use POST")
            return await self._desk_callback(desk, request)
        except RelayError as exc:
            return self.refuse(request.path, exc)
        except Exception as exc:  # the store failed, say: nothing was acknowledged, so the caller sends again
            log.error("request failed", extra={"path": self._route_name(request.path), "error": logs.describe(exc)})
            return Response.json({"error": "the relay could not take this request now; send it again"}, 503)

    def refusal_before_body(self, head: Request, length: int) -> Response | None:
        """For a shell that streams bodies: the refusal of a push route request whose credentials fail
        before its body is read (a stranger's body is drained, never kept)."""
        if head.path != self.settings.wechat.push_path:
            return None
        try:
            self.push_verifier.check_head(head, length)
        except RelayError as exc:
            return self.refuse(head.path, exc)
        return None

    def _prefix_route(self, path: str) -> Desk[Any] | None:
        for prefix, desk in self.prefix_routes.items():
            if path == prefix or path.startswith(prefix + "/"):
                return desk
        return None

    def _route_name(self, path: str) -> str:
        """A path for logs and metrics: the push route is named, never spelled (it may be a secret)."""
        return "push" if path == self.settings.wechat.push_path else path

    def refuse(self, path: str, error: RelayError) -> Response:
        """A refusal: one log line and a JSON error body; nothing is stored."""
        path = self._route_name(path)
        self.metrics.refused.labels(path if path in ("push", *self.callback_routes) else "other",
                                    str(error.status)).inc()
        log.warning("request refused", extra={"path": path, "status": error.status, "error": error.message})
        return Response.json({"error": error.message}, error.status, error.headers)

    async def _health(self) -> Response:
        try:
            await self.store.ping()
        except Exception as exc:
            log.error("health check: store unreachable", extra={"error": type(exc).__name__})
            return Response.json({"status": "unavailable", "store": "unreachable", "version": __version__}, 503)
        return Response.json({"status": "ok", "store": "reachable", "version": __version__})

    async def _wechat(self, request: Request) -> Response:
        verified = self.push_verifier.verify(request)
        if verified.answer is not None:
            if verified.replay_key:
                await self._signature_once(verified.replay_key, request)
            else:
                self.metrics.pushes.labels("probe").inc()
                log.info("CheckContainerPath probe answered")
            return verified.answer
        message = parse_message(verified.fields, verified.identity, self.settings.wechat.appid)
        if verified.replay_key:  # recorded only for a push that is about to be stored
            await self._signature_once(verified.replay_key, request)
        return await self.accept(message)

    async def accept_push(self, fields: dict[str, object], identity: Identity) -> Response:
        """Store a push that reached the relay by a trusted way (the function's push event)."""
        return await self.accept(parse_message(fields, identity, self.settings.wechat.appid))

    async def accept(self, message: UserMessage) -> Response:
        """Store a push (dedupe, conversation, delivery job) in one commit, then acknowledge."""
        now = self.clock()
        routed = self._route(message)
        window = SESSION_WINDOW if message.kind == "session" else WINDOW_SECONDS
        jobs = [NewJob(f"in:{message.conversation_id}", JobKind.DELIVER, message.to_json())]
        fresh = await self.store.accept(message.id, now, jobs, conversation=ConversationTouch(
            message.app_id, message.openid, message.from_appid, routed, min(message.created_at, now) + window))
        self.metrics.pushes.labels("accepted" if fresh else "duplicate").inc()
        log.info("push accepted" if fresh else "duplicate push acknowledged",
                 extra={"id": message.id, "kind": message.kind, "openid": message.openid})
        if fresh:
            self.outbox.wake()
        return SUCCESS

    def _route(self, message: UserMessage) -> str | None:
        """The desk RELAY_ROUTES picks for a session opened from a matching SessionFrom."""
        if message.kind == "session" and message.session_from is not None:
            for prefix, desk in self.settings.routes:
                if message.session_from.startswith(prefix):
                    return desk
        return None

    def caller_waits(self, path: str) -> float | None:
        """How long the caller of a desk's callback route waits for the answer, where its desk says."""
        desk = self.callback_routes.get(path)
        return desk.caller_waits if desk else None

    def desk_of(self, conversation: Conversation) -> str | None:
        """The desk a conversation is routed to: its own route, else RELAY_DESK."""
        return conversation.desk or self.settings.desk

    async def _signature_once(self, key: str, request: Request) -> None:
        """A signature that covers neither the body nor the rest of the query may come again only with
        the same request (a resend)."""
        digest = hashlib.sha256(json.dumps([request.method, sorted(request.query.items())]).encode() + b"\n"
                                + request.body)
        if not await self.store.signature_serves(key, digest.hexdigest(), self.clock()):
            raise Unauthorized("this signature came before with another request: refused as a replay")

    async def _desk_callback(self, desk: Desk[Any], request: Request) -> Response:
        callback = desk.parse_callback(request)
        if desk.needs_known_recipient:
            for reply in callback.replies:
                conversation = await self.store.conversation(reply.app_id, reply.openid)
                if conversation is None or self.desk_of(conversation) != desk.name:
                    raise UnknownRecipient(f"no conversation {reply.conversation_id} on the {desk.name} desk")
        if callback.replay_key:
            await self._signature_once(f"{desk.name}:{callback.replay_key}", request)
        fresh = await self._accept_replies(desk, callback.replies)
        self.metrics.callbacks.labels(desk.name, "accepted" if fresh or not callback.replies else "duplicate").inc()
        log.info("desk callback accepted", extra={"desk": desk.name, "replies": len(callback.replies), "new": fresh})
        if callback.replies and not fresh and callback.duplicate_response:
            return callback.duplicate_response
        return callback.response

    async def _accept_replies(self, desk: Desk[Any], replies: Iterable[AgentReply]) -> int:
        """Queue each reply for sending once (the desk's retries are duplicates); returns how many were new.
        The pieces of a long reply share its id and are queued in one transaction, so they stay together."""
        fresh = 0
        for reply_id, pieces in group_by_id(replies).items():
            fresh += await self.store.accept(desk.reply_key(reply_id), self.clock(), desk.send_jobs(pieces))
        if fresh:
            self.outbox.wake()
        return fresh

    # -- outbox jobs ------------------------------------------------------------------------------
    async def _run_job(self, job: Job) -> None:
        if job.kind == JobKind.DELIVER:
            await self._deliver(UserMessage.from_json(job.payload))
        elif job.kind == JobKind.SEND:
            await self._send(AgentReply.from_json(job.payload))
        elif job.kind == JobKind.UNDELIVERABLE:
            await self._tell_undeliverable(job.payload)
        else:
            raise ValueError(f"unknown job kind {job.kind!r}")

    async def _deliver(self, message: UserMessage) -> None:
        conversation = await self.store.conversation(message.app_id, message.openid)
        desk = self.desks.get(self.desk_of(conversation) or "") if conversation else None
        if desk is None or conversation is None:  # kept as a dead letter, payload and all
            raise PermanentDeliveryError("no desk for this conversation (RELAY_DESK, RELAY_ROUTES): not relayed")
        delivered = await desk.deliver(message, conversation)
        await self._accept_replies(desk, delivered.replies)  # first: a retry after a crash queues them once
        if delivered.thread is not None and delivered.thread != conversation.thread:
            await self.store.set_thread(message.app_id, message.openid, desk.name, delivered.thread)
        log.info("delivered to desk", extra={"id": message.id, "desk": desk.name})

    async def _send(self, reply: AgentReply) -> None:
        desk = self.desks.get(reply.desk)
        try:
            resolved = await desk.resolve_recipient(reply) if desk else reply
        except UnknownRecipient as exc:
            return await self._undeliverable(reply, Reason.UNKNOWN_USER, None, exc.message)
        if resolved is None:  # for the desk itself (say, closing a thread), and done
            return None
        reply = resolved
        conversation = await self.store.conversation(reply.app_id, reply.openid)
        if conversation is None or self.desk_of(conversation) != reply.desk:
            return await self._undeliverable(reply, Reason.UNKNOWN_USER, None,
                                             f"no conversation with this user on the {reply.desk} desk")
        try:
            if self.clock() > conversation.window_until:
                raise RecipientUnreachable("48-hour window closed", reason=Reason.WINDOW_CLOSED)
            await self.wechat.send_reply(reply, conversation.from_appid)
        except RecipientUnreachable as exc:
            if exc.reason in WINDOW_CLOSING:
                await self.store.close_window(reply.app_id, reply.openid, conversation.window_until)
            await self._undeliverable(reply, exc.reason, exc.errcode, str(exc))
            return None
        log.info("reply sent", extra={"reply": reply.id, "desk": reply.desk, "kind": reply.kind})
        if desk is not None:
            try:
                await desk.sent(reply)
            except Exception as exc:  # sent is sent: a failure here must not send it again
                log.error("the desk could not record a sent reply",
                          extra={"reply": reply.id, "desk": reply.desk, "error": logs.describe(exc)})

    async def _undeliverable(self, reply: AgentReply, reason: str, errcode: int | None, detail: str) -> None:
        self.metrics.deliveries.labels(JobKind.SEND, "undeliverable").inc()
        log.warning("reply not delivered to the user", extra={
            "reply": reply.id, "desk": reply.desk, "reason": reason, "errcode": errcode, "detail": detail})
        if reply.kind == "typing":
            return
        payload = json.dumps({"reply": json.loads(reply.to_json()), "reason": reason, "errcode": errcode,
                              "detail": detail}, ensure_ascii=False)
        await self.store.enqueue([NewJob(f"in:{reply.conversation_id}", JobKind.UNDELIVERABLE, payload)], self.clock())
        self.outbox.wake()

    async def _tell_undeliverable(self, payload: str) -> None:
        notice = json.loads(payload)
        reply = AgentReply.from_json(json.dumps(notice["reply"]))
        desk = self.desks.get(reply.desk)
        if desk is None:
            log.warning("the desk of an undeliverable reply is no longer configured", extra={"desk": reply.desk})
            return
        conversation = await self.store.conversation(reply.app_id, reply.openid) if reply.openid else None
        await desk.undeliverable(reply, notice["reason"], notice["errcode"], notice["detail"], conversation)
