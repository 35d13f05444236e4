"""Relay: every route of the service, push intake, and the outbox job handlers."""
from __future__ import annotations

import hashlib
import itertools
import json
import time
from typing import Callable, Iterable

import httpx

from core import logs
from core.config import Settings
from core.desks import REGISTRY, Desk
from core.errors import MethodNotAllowed, NotFound, PermanentDeliveryError, \
    RecipientUnreachable, RelayError, TooLarge, Unauthorized, UnknownRecipient
from core.http import make_client
from core.metrics import Metrics
from core.models import WINDOW_CLOSING, WINDOW_SECONDS, AgentReply, ConversationTouch, Job, JobKind, NewJob, \
    Reason, UserMessage
from core.outbox import Outbox
from core.sandbox import Sandbox
from core.store import SqlStore, open_store
from core.web import SUCCESS, Request, Response
from core.wechat.api import WeChatApi
from core.wechat.push import Identity, parse_message
from core.wechat.verify import PushVerifier

log = logs.get("relay")
SESSION_WINDOW = 60  # after user_enter_tempsession: 2 messages within 1 minute


class Relay:
    def __init__(self, settings: Settings, store: SqlStore, http: httpx.AsyncClient,
                 clock: Callable[[], float] = time.time, sandbox: Sandbox | None = None) -> None:
        self.settings, self.store, self.http, self.clock, self.sandbox = settings, store, http, clock, sandbox
        self.metrics = Metrics()
        self.wechat = WeChatApi(settings.wechat, http, self.metrics, clock)
        self.push_verifier = PushVerifier(settings.wechat, clock)
        self.desks: dict[str, Desk] = {name: REGISTRY[name](settings.desks[name], http, store, clock)  # type: ignore[type-arg]
                                       for name in settings.desks_in_use()}
        self.callback_routes = {path: desk for desk in self.desks.values() for path in desk.callback_paths}
        self.prefix_routes = {desk.route_prefix: desk for desk in self.desks.values() if desk.route_prefix}
        self.outbox = Outbox(store, self._run_job, self.metrics, concurrency=settings.worker_concurrency,
                             lease=settings.lease_seconds, retry_for=settings.retry_for, clock=clock,
                             housekeeping=[desk.housekeeping for desk in self.desks.values()])
        if not self.desks:
            log.warning("no desk is configured (RELAY_DESK): pushes are stored and acknowledged, not relayed")

    @classmethod
    async def start(cls, settings: Settings) -> Relay:
        logs.setup(settings.log_level)
        store = await open_store(settings.database_url)
        # The one switch of the sandbox: its routes, and WeChat calls answered in process.
        sandbox = Sandbox(settings.wechat.api_base) if settings.sandbox else None
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
    async def handle(self, request: Request) -> Response:
        try:
            if len(request.body) > self.settings.max_body:
                raise TooLarge(f"body over {self.settings.max_body} bytes")
            if request.path == "/":
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

    def _prefix_route(self, path: str) -> Desk | None:
        for prefix, desk in self.prefix_routes.items():
            if path == prefix or path.startswith(prefix + "/"):
                return desk
        return None

    def refuse(self, path: str, error: RelayError) -> Response:
        """A refusal: one log line and a JSON error body; nothing is stored."""
        self.metrics.refused.labels(path if path in ("/", *self.callback_routes) else "other", str(error.status)).inc()
        log.warning("request refused", extra={"path": path, "status": error.status, "error": error.message})
        return Response.json({"error": error.message}, error.status, error.headers)

    async def _health(self) -> Response:
        try:
            await self.store.ping()
        except Exception as exc:
            log.error("health check: store unreachable", extra={"error": type(exc).__name__})
            return Response.json({"status": "unavailable", "store": "unreachable"}, 503)
        return Response.json({"status": "ok", "store": "reachable"})

    async def _wechat(self, request: Request) -> Response:
        verified = self.push_verifier.verify(request)
        if verified.replay_key:
            await self._signature_once(verified.replay_key, request)
        if verified.answer is not None:
            if verified.replay_key is None:
                self.metrics.pushes.labels("probe").inc()
                log.info("CheckContainerPath probe answered")
            return verified.answer
        return await self.accept_push(verified.fields, verified.identity)

    async def accept_push(self, fields: dict[str, object], identity: Identity) -> Response:
        """Store a push (dedupe, conversation, delivery job) in one commit, then acknowledge."""
        message = parse_message(fields, identity, self.settings.wechat.appid)
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

    async def _signature_once(self, key: str, request: Request) -> None:
        """A signature that covers neither the body nor the rest of the query may come again only with
        the same request (a resend)."""
        digest = hashlib.sha256(json.dumps(sorted(request.query.items())).encode() + b"\n" + request.body)
        if not await self.store.signature_serves(key, digest.hexdigest(), self.clock()):
            raise Unauthorized("this signature came before with another request: refused as a replay")

    async def _desk_callback(self, desk: Desk, request: Request) -> Response:
        callback = desk.parse_callback(request)
        if callback.replay_key:
            await self._signature_once(f"{desk.name}:{callback.replay_key}", request)
        if desk.needs_known_recipient:
            for reply in callback.replies:
                if await self.store.conversation(reply.app_id, reply.openid) is None:
                    raise UnknownRecipient(f"no conversation {reply.conversation_id}")
        fresh = await self._accept_replies(desk, callback.replies)
        self.metrics.callbacks.labels(desk.name, "accepted" if fresh or not callback.replies else "duplicate").inc()
        log.info("desk callback accepted", extra={"desk": desk.name, "replies": len(callback.replies), "new": fresh})
        if callback.replies and not fresh and callback.duplicate_response:
            return callback.duplicate_response
        return callback.response

    async def _accept_replies(self, desk: Desk, replies: Iterable[AgentReply]) -> int:
        """Queue each reply for sending once (the desk's retries are duplicates); returns how many were new.
        The pieces of a long reply share its id and are queued in one transaction, so they stay together."""
        fresh = 0
        for reply_id, pieces in itertools.groupby(replies, key=lambda reply: reply.id):
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
        desk = self.desks.get((conversation and conversation.desk) or self.settings.desk or "")
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
            reply = await desk.resolve_recipient(reply) if desk else reply
        except UnknownRecipient as exc:
            return await self._undeliverable(reply, Reason.UNKNOWN_USER, None, exc.message)
        conversation = await self.store.conversation(reply.app_id, reply.openid)
        if conversation is None:
            return await self._undeliverable(reply, Reason.UNKNOWN_USER, None, "no conversation with this user")
        try:
            if self.clock() > conversation.window_until:
                raise RecipientUnreachable("48-hour window closed", reason=Reason.WINDOW_CLOSED)
            await self.wechat.send_reply(reply, conversation.from_appid)
        except RecipientUnreachable as exc:
            if exc.reason in WINDOW_CLOSING:
                await self.store.close_window(reply.app_id, reply.openid, conversation.window_until)
            await self._undeliverable(reply, exc.reason, exc.errcode, str(exc))
            return
        log.info("reply sent", extra={"reply": reply.id, "desk": reply.desk, "kind": reply.kind})
        if desk is not None:
            try:
                await desk.sent(reply)
            except Exception:  # sent is sent: a failure here must not send it again
                log.exception("the desk could not record a sent reply", extra={"reply": reply.id, "desk": reply.desk})

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
