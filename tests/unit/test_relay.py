"""The relay in-process on a real SQLite store, against the fake WeChat and webhook desk on 127.0.0.1:
routes and refusals, push intake, desk callbacks, and the outbox handlers (run with `outbox.drain`).

Branches the webhook desk cannot reach (threads, replies made on delivery, unsigned replay keys, pages
under a prefix, users looked up by the desk) go through `ScriptDesk`, a desk the tests register."""
from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from core import __version__
from core.config import Settings
from core.desks import REGISTRY
from core.desks.base import Callback, Delivered, Desk, DeskSettings
from core.errors import Unauthorized, UnknownRecipient
from core.http import make_client
from core.models import WINDOW_SECONDS, AgentReply, Conversation, NewJob, UserMessage
from core.relay import Relay
from core.sandbox import Sandbox
from core.store import open_store
from core.web import Request, Response
from core.wechat import crypto
from tests.conftest import fixture_json
from tests.fakes.webhook import HOOK, FakeWebhookDesk, sign
from tests.fakes.wechat import SEND, TYPING, FakeWeChat
from tests.records import captured

APP = "wxapp0000000001"
SOURCE = {"x-wx-source": "other", "x-wx-appid": APP}
TOKEN = "devtoken"


class Clock:
    """Real time unless a test pins it (the fake desk checks the relay's signatures against real time)."""

    def __init__(self) -> None:
        self.pinned: float | None = None

    def __call__(self) -> float:
        return time.time() if self.pinned is None else self.pinned


class ScriptDesk(Desk[DeskSettings]):
    """Records what the relay hands it; its callback takes JSON replies without a signature."""

    name = "script"
    callback_paths = ("/script/callback",)
    caller_waits = 3.0
    route_prefix = "/script-pages"
    needs_known_recipient = False

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.delivered: list[tuple[UserMessage, Conversation]] = []
        self.notices: list[tuple[str, str, int | None, str, Conversation | None]] = []
        self.thread: dict[str, Any] | None = None  # what the next deliveries return
        self.replies: tuple[AgentReply, ...] = ()
        self.closed = False
        self.sent_ids: list[str] = []
        self.upkeep: list[float] = []
        self.fail_sent = False
        self.opened = False

    def parse_callback(self, request: Request) -> Callback:
        if request.header("x-key") != "ok":
            raise Unauthorized("no key", headers={"www-authenticate": "Key"})
        data = json.loads(request.body)
        replies = [self.reply(**reply) for reply in data.get("replies", [])]
        return Callback(Response.json({"status": "accepted"}, 202), replies,
                        duplicate_response=Response.json({"status": "duplicate"}) if data.get("say_duplicate") else None,
                        replay_key=data.get("replay_key"))

    def reply(self, id: str, openid: str = "fromUser", kind: str = "text", **fields: Any) -> AgentReply:
        return AgentReply(id=id, desk=self.name, app_id=APP, openid=openid, kind=kind,
                          text=fields.get("text", f"text of {id}"), command=fields.get("command"))

    async def deliver(self, message: UserMessage, conversation: Conversation) -> Delivered:
        self.delivered.append((message, conversation))
        return Delivered(thread=self.thread, replies=self.replies)

    async def resolve_recipient(self, reply: AgentReply) -> AgentReply | None:
        if reply.openid == "nobody":
            raise UnknownRecipient("the desk knows no such visitor")
        return None if reply.openid == "the-desk-itself" else reply

    async def undeliverable(self, reply: AgentReply, reason: str, errcode: int | None, detail: str,
                            conversation: Conversation | None) -> None:
        self.notices.append((reply.id, reason, errcode, detail, conversation))

    async def serve(self, request: Request) -> Response:
        return Response.text(f"page {request.path}")

    async def sent(self, reply: AgentReply) -> None:
        self.sent_ids.append(reply.id)
        if self.fail_sent:
            raise RuntimeError("the desk's own store is down")

    async def housekeeping(self, now: float) -> None:
        self.upkeep.append(now)

    async def open(self) -> None:
        self.opened = True

    async def close(self) -> None:
        self.closed = True


MakeRelay = Callable[..., Awaitable[Relay]]


@pytest.fixture
async def make_relay(tmp_path, wechat: FakeWeChat, desk: FakeWebhookDesk, monkeypatch) -> AsyncIterator[MakeRelay]:
    monkeypatch.setitem(REGISTRY, "script", ScriptDesk)
    made: list[Relay] = []

    async def make(clock: Clock | None = None, sandbox: bool = False, **overrides: str | None) -> Relay:
        env = {"DATABASE_URL": f"sqlite:///{tmp_path}/relay.db", "WX_API_BASE": wechat.url, "RELAY_DESK": "webhook",
               "WEBHOOK_URL": desk.url + HOOK, "WEBHOOK_SECRET": desk.secret, "RELAY_ROUTES": "vip:script",
               **overrides}
        settings = Settings.from_env({k: v for k, v in env.items() if v is not None})
        relay = Relay(settings, await open_store(settings.database_url), make_client(), clock or Clock(),
                      sandbox=Sandbox(settings.wechat) if sandbox else None)
        made.append(relay)
        return relay

    yield make
    for relay in made:
        if not relay.http.is_closed:
            await relay.close()


@pytest.fixture
async def relay(make_relay: MakeRelay) -> Relay:
    return await make_relay()


def request(path: str, body: bytes = b"", method: str = "POST", query: dict[str, str] | None = None,
            headers: dict[str, str] | None = None) -> Request:
    """A request as a shell makes it: method and path are strings read off the wire, not literals."""
    return Request(method.encode().decode(), path.encode().decode(), query or {}, headers or {}, body)


def push_body(name: str = "push.text.json", **fields: Any) -> bytes:
    data = {**fixture_json(f"wechat/{name}"), "CreateTime": int(time.time()), **fields}
    return json.dumps(data).encode()


async def push(relay: Relay, name: str = "push.text.json", **fields: Any) -> Response:
    return await relay.handle(request("/", push_body(name, **fields), headers=SOURCE))


async def script_callback(relay: Relay, **data: Any) -> Response:
    return await relay.handle(request("/script/callback", json.dumps(data).encode(), headers={"x-key": "ok"}))


async def webhook_reply(relay: Relay, reply: dict[str, Any]) -> Response:
    body = json.dumps(reply).encode()
    ts = str(int(time.time()))
    headers = {"x-relay-timestamp": ts, "x-relay-signature": sign(FakeWebhookDesk.secret, ts, body)}
    return await relay.handle(request("/webhook/reply", body, headers=headers))


def sample(relay: Relay, name: str, **labels: str) -> float:
    return relay.metrics.registry.get_sample_value(name, labels) or 0


def body(response: Response) -> Any:
    return json.loads(response.body)


def script(relay: Relay) -> ScriptDesk:
    desk = relay.desks["script"]
    assert isinstance(desk, ScriptDesk)
    return desk


# -- routes and refusals ------------------------------------------------------------------------

async def test_health_and_metrics_routes(relay):
    health = await relay.handle(request("/healthz", method="GET"))
    assert (health.status, body(health)) == (200, {"status": "ok", "store": "reachable", "version": __version__})
    metrics = await relay.handle(request("/metrics", method="GET"))
    assert metrics.status == 200 and metrics.headers["content-type"] == relay.metrics.content_type
    assert b'relay_outbox_jobs{status="pending"} 0.0' in metrics.body


async def test_health_says_unavailable_when_the_store_is_unreachable(relay):
    await relay.store.close()
    health = await relay.handle(request("/healthz", method="GET"))
    assert (health.status, body(health)) == (503, {"status": "unavailable", "store": "unreachable", "version": __version__})


async def test_a_desk_serves_its_prefix_and_everything_under_it_only(relay):
    for path in ("/script-pages", "/script-pages/inbox/1"):
        served = await relay.handle(request(path, method="GET"))
        assert (served.status, served.body) == (200, f"page {path}".encode())
    assert (await relay.handle(request("/script-pagesx", method="GET"))).status == 404


async def test_refusals_answer_json_with_status_and_headers_and_are_counted_by_route(relay):
    for path in ("/abc", "/metricsx", "/healthzz"):  # paths that sort near the relay's own
        assert (await relay.handle(request(path, method="GET"))).status == 404
    for method in ("PUT", "DELETE"):
        assert (await relay.handle(request("/webhook/reply", method=method))).status == 405
    refused = [await relay.handle(request("/nowhere")),
               await relay.handle(request("/webhook/reply", method="GET")),
               await relay.handle(request("/", push_body())),  # no x-wx-source header
               await relay.handle(request("/script/callback", b"{}"))]
    assert [r.status for r in refused] == [404, 405, 403, 401]
    assert all(r.headers["content-type"].startswith("application/json") and "error" in body(r) for r in refused)
    assert refused[3].headers["www-authenticate"] == "Key"
    counted = {("other", "404"): 4, ("/webhook/reply", "405"): 3, ("push", "403"): 1, ("/script/callback", "401"): 1}
    for (route, status), times in counted.items():
        assert sample(relay, "relay_requests_refused_total", route=route, status=status) == times
    assert await relay.store.depth() == {"pending": 0, "dead": 0}


async def test_a_page_request_that_may_change_something_wakes_the_outbox(relay):
    relay.outbox._wake.clear()
    await relay.handle(request("/script-pages/inbox", method="GET"))
    assert not relay.outbox._wake.is_set()
    await relay.handle(request("/script-pages/inbox/reply", method="POST"))
    assert relay.outbox._wake.is_set()


async def test_the_sandbox_serves_its_routes_only_when_it_is_on(make_relay):
    on, off = await make_relay(sandbox=True), await make_relay()
    for path in ("/sandbox/api/messages", "/sandbox/api/messages/"):
        answer = await on.handle(request(path, method="GET", query={"openid": "oSandboxUser0001"}))
        assert answer.status == 200 and body(answer)["messages"] == []
    assert (await on.handle(request("/sandboxx", method="GET"))).status == 404
    assert (await on.handle(request("/sandbox", method="GET"))).status != 404
    assert (await off.handle(request("/sandbox", method="GET"))).status == 404
    assert (await on.handle(request("/script-pages", method="GET"))).status == 200  # sorts after /sandbox


async def test_with_the_sandbox_on_a_desk_prefix_sorting_before_it_is_still_the_desks(make_relay):
    relay = await make_relay(sandbox=True, RELAY_ROUTES="vip:script,help:inbox")
    assert (await relay.handle(request("/inbox", method="GET"))).status != 404


async def test_a_desk_callback_says_how_long_its_caller_waits(relay):
    assert relay.caller_waits("/script/callback") == 3.0
    assert relay.caller_waits("/webhook/reply") is None  # the webhook desk does not say
    assert relay.caller_waits("/nowhere") is None


async def test_pushes_come_on_the_secret_push_path_only(make_relay):
    path = "/wx/0123456789abcdef"
    relay = await make_relay(WX_PUSH_PATH=path)
    assert (await relay.handle(request(path, push_body(), headers=SOURCE))).body == b"success"
    assert (await relay.handle(request("/", push_body(MsgId=2), headers=SOURCE))).status == 404
    assert relay.refusal_before_body(request(path), 1000) is not None
    assert relay.refusal_before_body(request("/"), 1000) is None
    assert (await relay.handle(request(path, push_body(MsgId=3)))).status == 403  # no x-wx-source
    assert sample(relay, "relay_requests_refused_total", route="push", status="403") == 2  # named, never spelled
    assert (await relay.handle(request("/abc", method="GET"))).status == 404  # sorts before the push path
    assert sample(relay, "relay_requests_refused_total", route="other", status="404") == 2
    assert await relay.store.depth() == {"pending": 1, "dead": 0}


async def test_intake_counts_as_busy_for_a_moment_after_each_push(relay):
    assert not relay.outbox.busy()
    await push(relay)
    assert relay.outbox.busy()  # the worker keeps to a few jobs while acknowledgements are due
    await asyncio.sleep(0.1)  # a bounded wait past the busy window (50 ms)
    assert not relay.outbox.busy()
    await relay.handle(request("/healthz", method="GET"))
    assert not relay.outbox.busy()  # only pushes count


async def test_bodies_over_the_limit_are_refused_before_routing(make_relay):
    relay = await make_relay(RELAY_MAX_BODY="100")
    assert (await relay.handle(request("/nowhere", b"x" * 100))).status == 404
    assert (await relay.handle(request("/nowhere", b"x" * 101))).status == 413


async def test_a_store_failure_answers_503_so_that_the_sender_tries_again(relay, tmp_path):
    with sqlite3.connect(tmp_path / "relay.db") as db:
        db.execute("ALTER TABLE received RENAME TO received_away")
    failed = await push(relay)
    assert (failed.status, body(failed)) == (503, {"error": "the relay could not take this request now; send it again"})


async def test_push_credentials_are_refused_before_the_body_is_read(relay):
    head = request("/", method="POST")
    refused = relay.refusal_before_body(head, 1000)  # no x-wx-source header
    assert refused is not None and refused.status == 403 and "error" in body(refused)
    assert sample(relay, "relay_requests_refused_total", route="push", status="403") == 1
    assert relay.refusal_before_body(request("/", headers=SOURCE), 1000) is None
    assert relay.refusal_before_body(head, 100) is None  # small enough to be a probe, which comes bare
    assert relay.refusal_before_body(request("/webhook/reply"), 1000) is None  # desks check their own


# -- pushes -------------------------------------------------------------------------------------

async def test_a_push_is_stored_once_acknowledged_and_delivered(relay, desk):
    relay.outbox._wake.clear()
    with captured("relay.relay") as logged:
        await push(relay)
        await push(relay)  # WeChat's redelivery
    assert logged.messages() == ["push accepted", "duplicate push acknowledged"]
    answer = await push(relay, MsgId=2)
    assert (answer.status, answer.body) == (200, b"success")
    assert relay.outbox._wake.is_set()  # the worker is woken, not left to its next poll
    relay.outbox._wake.clear()
    assert (await push(relay, MsgId=2)).body == b"success"  # WeChat's redelivery
    assert not relay.outbox._wake.is_set()
    assert (sample(relay, "relay_pushes_total", result="accepted"),
            sample(relay, "relay_pushes_total", result="duplicate")) == (2, 2)
    await push(relay, MsgId=3)
    assert sample(relay, "relay_pushes_total", result="accepted") == 3
    await relay.outbox.drain(5)
    assert [e["text"] for e in desk.events("message")] == ["this is a test"] * 3


async def test_the_window_runs_48_hours_from_the_push_or_from_now_if_it_claims_the_future(make_relay):
    clock = Clock()
    clock.pinned = 1_800_000_000.0
    relay = await make_relay(clock)
    await push(relay, FromUserName="past", CreateTime=1_800_000_000 - 100)
    await push(relay, FromUserName="future", CreateTime=1_800_000_000 + 1000, MsgId=2)
    await push(relay, "push.event.user_enter_tempsession.json", FromUserName="session", CreateTime=1_800_000_000 - 10)
    await push(relay, "push.image.json", FromUserName="image", CreateTime=1_800_000_000 - 100, MsgId=3)
    windows = [(await relay.store.conversation(APP, who)).window_until for who in ("past", "future", "session", "image")]
    assert windows == [1_800_000_000 - 100 + WINDOW_SECONDS, 1_800_000_000 + WINDOW_SECONDS,
                       1_800_000_000 - 10 + 60, 1_800_000_000 - 100 + WINDOW_SECONDS]  # a session: 1 minute


async def test_sessions_are_routed_by_the_first_matching_session_from_prefix(make_relay):
    relay = await make_relay(RELAY_ROUTES="vip:script,v:webhook")
    for who, session_from in (("a", "vip-1"), ("b", "v-1"), ("c", "other")):
        await push(relay, "push.event.user_enter_tempsession.json", FromUserName=who, SessionFrom=session_from)
    await push(relay, FromUserName="d", SessionFrom="vip-1")  # only a session event is routed
    await push(relay, "push.image.json", FromUserName="e", SessionFrom="vip-1", MsgId=5)
    desks = [(await relay.store.conversation(APP, who)).desk for who in "abcde"]
    assert desks == ["script", "webhook", None, None, None]


async def test_a_probe_is_answered_and_counted_and_nothing_stored(relay):
    answer = await relay.handle(request("/", json.dumps({"action": "CheckContainerPath"}).encode()))
    assert answer.body == b"success"
    assert sample(relay, "relay_pushes_total", result="probe") == 1
    assert await relay.store.depth() == {"pending": 0, "dead": 0}


async def test_a_developer_server_signature_serves_one_request_only(make_relay):
    relay = await make_relay(WX_TOKEN=TOKEN)
    ts, nonce = str(int(time.time())), "n1"
    query = {"signature": crypto.signature(TOKEN, ts, nonce), "timestamp": ts, "nonce": nonce, "echostr": "abc"}
    first = await relay.handle(request("/", method="GET", query=query))
    assert (first.status, first.body) == (200, b"abc")
    assert (await relay.handle(request("/", method="GET", query=dict(reversed(query.items()))))).body == b"abc"
    assert (await relay.handle(request("/", method="GET", query={**query, "echostr": "xyz"}))).status == 401
    assert sample(relay, "relay_pushes_total", result="probe") == 0


# -- desk callbacks -----------------------------------------------------------------------------

async def test_a_webhook_reply_is_queued_once_and_sent(relay, wechat):
    await push(relay)
    reply = {"id": "r1", "conversation_id": f"{APP}:fromUser", "type": "text", "text": "hi"}
    relay.outbox._wake.clear()
    accepted = await webhook_reply(relay, reply)
    assert (accepted.status, body(accepted)) == (202, {"status": "accepted"})
    assert relay.outbox._wake.is_set()
    relay.outbox._wake.clear()
    repeated = await webhook_reply(relay, reply)
    assert (repeated.status, body(repeated)) == (200, {"status": "duplicate"})
    assert not relay.outbox._wake.is_set()
    assert (sample(relay, "relay_desk_callbacks_total", desk="webhook", result="accepted"),
            sample(relay, "relay_desk_callbacks_total", desk="webhook", result="duplicate")) == (1, 1)
    await relay.outbox.drain(5)
    assert wechat.texts_to("fromUser") == ["hi"]


async def test_a_webhook_reply_to_a_user_it_does_not_serve_is_refused(relay):
    await push(relay, "push.event.user_enter_tempsession.json", FromUserName="vip", SessionFrom="vip-1")
    await relay.outbox.drain(5)
    for openid in ("stranger", "vip"):  # never seen; routed to the script desk
        refused = await webhook_reply(relay, {"id": f"to-{openid}", "conversation_id": f"{APP}:{openid}", "type": "text",
                                              "text": "x"})
        assert refused.status == 404
    assert await relay.store.depth() == {"pending": 0, "dead": 0}


async def test_pieces_of_one_reply_are_queued_together_once_and_ids_are_per_desk(relay):
    pieces = [{"id": "r1", "text": "part 1"}, {"id": "r1", "text": "part 2"}, {"id": "r2"}]
    assert (await script_callback(relay, replies=pieces)).status == 202
    assert await relay.store.depth() == {"pending": 3, "dead": 0}
    assert body(await script_callback(relay, replies=pieces)) == {"status": "accepted"}  # no duplicate answer
    assert body(await script_callback(relay, replies=pieces, say_duplicate=True)) == {"status": "duplicate"}
    assert await relay.store.depth() == {"pending": 3, "dead": 0}
    assert await relay.store.accept("reply:webhook:r1", time.time(), [])  # another desk's r1 is another reply
    assert sample(relay, "relay_desk_callbacks_total", desk="script", result="duplicate") == 2


async def test_a_desk_that_checks_recipients_may_not_reply_into_another_desks_conversation(relay):
    await push(relay)  # the webhook desk's user
    script(relay).needs_known_recipient = True  # type: ignore[misc]
    assert (await script_callback(relay, replies=[{"id": "r1"}])).status == 404
    assert await relay.store.depth() == {"pending": 1, "dead": 0}  # the push's delivery only


async def test_a_callback_without_replies_counts_as_accepted(relay):
    assert body(await script_callback(relay, say_duplicate=True)) == {"status": "accepted"}
    assert sample(relay, "relay_desk_callbacks_total", desk="script", result="accepted") == 1


async def test_a_replay_key_serves_one_request_only(relay):
    data = {"replay_key": "k1", "replies": [{"id": "r1"}], "say_duplicate": True}
    assert (await script_callback(relay, **data)).status == 202
    assert body(await script_callback(relay, **data)) == {"status": "duplicate"}  # a resend
    assert (await script_callback(relay, **{**data, "replies": [{"id": "r2"}]})).status == 401
    digest = hashlib.sha256(b'["POST", []]\n' + json.dumps(data).encode()).hexdigest()
    assert await relay.store.signature_serves("script:k1", digest, time.time())


# -- outbox handlers ----------------------------------------------------------------------------

async def test_delivery_keeps_the_desks_thread_and_queues_the_replies_it_made(relay, wechat):
    desk = script(relay)
    desk.thread, desk.replies = {"ticket": 7}, (desk.reply("hand-over", text="an agent will answer"),)
    await push(relay, "push.event.user_enter_tempsession.json", SessionFrom="vip-1")
    await relay.outbox.drain(5)
    conversation = await relay.store.conversation(APP, "fromUser")
    assert (conversation.desk, conversation.thread) == ("script", {"ticket": 7})
    assert wechat.texts_to("fromUser") == ["an agent will answer"]
    desk.thread, desk.replies = None, ()
    await push(relay, MsgId=2)
    await relay.outbox.drain(5)
    assert len(desk.delivered) == 2 and desk.delivered[1][1].thread == {"ticket": 7}
    assert (await relay.store.conversation(APP, "fromUser")).thread == {"ticket": 7}  # None keeps it


async def test_a_push_whose_desk_is_no_longer_configured_is_kept_as_a_dead_letter(make_relay, desk):
    before = await make_relay()
    await push(before, "push.event.user_enter_tempsession.json", SessionFrom="vip-1")  # routed to the script desk
    after = await make_relay(RELAY_ROUTES=None)  # restarted without that route
    await after.outbox.drain(5)
    assert await after.store.depth() == {"pending": 0, "dead": 1}
    assert desk.events() == []


@pytest.mark.parametrize("kind", ["bogus", "zzz"])  # kinds that sort before and after the real ones
async def test_a_job_of_an_unknown_kind_is_kept_for_a_retry(relay, tmp_path, kind):
    await relay.store.enqueue([NewJob("lane", kind, "{}")], time.time())  # type: ignore[arg-type]
    await relay.outbox.drain(5)
    [job] = await relay.store.claim("probe", time.time() + 2, 10, 1)
    assert job.attempts == 1
    with sqlite3.connect(tmp_path / "relay.db") as db:
        assert db.execute("SELECT last_error FROM jobs").fetchone() == (f"ValueError: unknown job kind '{kind}'",)


async def test_replies_are_sent_until_the_window_closes_then_reported(make_relay, wechat):
    clock = Clock()
    clock.pinned = 1_800_000_000.0
    relay = await make_relay(clock)
    await push(relay, "push.event.user_enter_tempsession.json", SessionFrom="vip-1", CreateTime=1_800_000_000)
    await push(relay, CreateTime=1_800_000_000, MsgId=2)
    closes = 1_800_000_000 + WINDOW_SECONDS
    clock.pinned = closes
    await script_callback(relay, replies=[{"id": "last-second"}])
    await relay.outbox.drain(5)
    clock.pinned = closes + 0.5
    await script_callback(relay, replies=[{"id": "too-late"}])
    await relay.outbox.drain(5)
    assert wechat.texts_to("fromUser") == ["text of last-second"]
    [(reply_id, reason, errcode, detail, conversation)] = script(relay).notices
    assert (reply_id, reason, errcode, detail) == ("too-late", "window_closed", None, "48-hour window closed")
    assert conversation is not None and conversation.window_until == 0
    assert sample(relay, "relay_deliveries_total", kind="send", result="undeliverable") == 1


@pytest.mark.parametrize("errcode,reason,closes", [(45015, "window_closed", True), (45047, "quota_exhausted", True),
                                                   (43004, "rejected", False)])
async def test_a_reply_wechat_refuses_is_reported_and_closes_the_window_only_when_it_says_so(relay, wechat, errcode,
                                                                                            reason, closes):
    await push(relay, "push.event.user_enter_tempsession.json", SessionFrom="vip-1")
    await push(relay, MsgId=2)
    wechat.script(SEND, (200, {"errcode": errcode, "errmsg": "refused"}))
    await script_callback(relay, replies=[{"id": "r1"}])
    relay.outbox._wake.clear()
    await relay.outbox.drain(5)
    [(reply_id, said, code, _, conversation)] = script(relay).notices
    assert (reply_id, said, code) == ("r1", reason, errcode)
    assert (conversation.window_until == 0) is closes
    assert relay.outbox._wake.is_set()


async def test_a_sent_reply_is_recorded_by_its_desk_and_never_sent_again_if_that_fails(relay, wechat):
    await push(relay, "push.event.user_enter_tempsession.json", SessionFrom="vip-1")
    await push(relay, MsgId=2)
    desk = script(relay)
    desk.fail_sent = True
    with captured("relay.relay") as logged:
        await script_callback(relay, replies=[{"id": "r1"}])
        await relay.outbox.drain(5)
    assert desk.sent_ids == ["r1"] and wechat.texts_to("fromUser") == ["text of r1"]
    assert "the desk could not record a sent reply" in logged.messages()
    assert await relay.store.depth() == {"pending": 0, "dead": 0}


async def test_desks_do_their_upkeep_with_the_outboxs_housekeeping(make_relay):
    clock = Clock()
    clock.pinned = 1_800_000_000.0
    relay = await make_relay(clock)
    await relay.outbox.drain(5)
    assert script(relay).upkeep == [1_800_000_000.0]


async def test_a_refused_typing_indicator_is_not_reported(relay, wechat):
    await push(relay, "push.event.user_enter_tempsession.json", SessionFrom="vip-1")
    wechat.script(TYPING, (200, {"errcode": 45015, "errmsg": "refused"}))
    await script_callback(relay, replies=[{"id": "t1", "kind": "typing", "command": "Typing"}])
    await relay.outbox.drain(5)
    assert script(relay).notices == []
    assert await relay.store.depth() == {"pending": 0, "dead": 0}
    assert (await relay.store.conversation(APP, "fromUser")).window_until == 0


async def test_a_reply_into_another_desks_conversation_is_reported_not_sent(relay, wechat):
    await push(relay)  # the webhook desk's user; the script desk does not check recipients at intake
    await script_callback(relay, replies=[{"id": "r1"}])
    await relay.outbox.drain(5)
    assert wechat.sends() == []
    assert [(n[0], n[1], n[3]) for n in script(relay).notices] == [
        ("r1", "unknown_user", "no conversation with this user on the script desk")]


async def test_a_reply_the_desk_keeps_for_itself_is_neither_sent_nor_reported(relay, wechat):
    await script_callback(relay, replies=[{"id": "close-thread", "openid": "the-desk-itself"}])
    await relay.outbox.drain(5)
    assert wechat.sends() == [] and script(relay).notices == []
    assert await relay.store.depth() == {"pending": 0, "dead": 0}


async def test_replies_to_users_nobody_knows_are_reported_without_a_conversation(relay, wechat):
    await script_callback(relay, replies=[{"id": "r1", "openid": "nobody"}, {"id": "r2", "openid": "stranger"}])
    await relay.outbox.drain(5)
    assert wechat.sends() == []
    assert script(relay).notices == [
        ("r1", "unknown_user", None, "the desk knows no such visitor", None),
        ("r2", "unknown_user", None, "no conversation with this user on the script desk", None),
    ]


async def test_a_notice_goes_to_the_webhook_desk_and_is_dropped_when_its_desk_is_gone(relay, wechat, desk):
    await push(relay)
    wechat.script(SEND, (200, {"errcode": 45015, "errmsg": "refused"}))
    await webhook_reply(relay, {"id": "r1", "conversation_id": f"{APP}:fromUser", "type": "text", "text": "hi"})
    await relay.outbox.drain(5)
    [notice] = desk.events("undeliverable")
    assert (notice["reply_id"], notice["reason"], notice["errcode"]) == ("r1", "window_closed", 45015)
    gone = AgentReply(id="r9", desk="retired", app_id=APP, openid="fromUser", kind="text", text="x")
    payload = json.dumps({"reply": json.loads(gone.to_json()), "reason": "rejected", "errcode": None, "detail": "x"})
    await relay.store.enqueue([NewJob("lane", "undeliverable", payload)], time.time())  # type: ignore[arg-type]
    await relay.outbox.drain(5)
    assert await relay.store.depth() == {"pending": 0, "dead": 0}


async def test_a_reply_whose_conversation_moved_to_another_desk_is_not_sent(relay, wechat, desk):
    await push(relay)
    assert (await webhook_reply(relay, {"id": "r1", "conversation_id": f"{APP}:fromUser", "type": "text",
                                        "text": "hi"})).status == 202
    await push(relay, "push.event.user_enter_tempsession.json", SessionFrom="vip-1")  # now the script desk's
    for _ in range(2):
        await relay.outbox.drain(5)
    assert wechat.sends() == []
    [notice] = desk.events("undeliverable")
    assert (notice["reply_id"], notice["reason"]) == ("r1", "unknown_user")


async def test_a_notice_for_a_reply_without_openid_has_no_conversation(relay):
    await push(relay)
    reply = script(relay).reply("r1", openid="")
    payload = json.dumps({"reply": json.loads(reply.to_json()), "reason": "unknown_user", "errcode": None,
                          "detail": "d"})
    await relay.store.enqueue([NewJob("lane", "undeliverable", payload)], time.time())  # type: ignore[arg-type]
    await relay.outbox.drain(5)
    assert script(relay).notices == [("r1", "unknown_user", None, "d", None)]


# -- life cycle ---------------------------------------------------------------------------------

async def test_close_releases_desks_the_http_client_and_the_store(relay):
    await relay.close()
    assert script(relay).closed and relay.http.is_closed
    with pytest.raises(Exception):  # noqa: B017 - any error: the store's connections are gone
        await relay.store.ping()


async def test_start_opens_the_store_named_in_the_settings(tmp_path):
    settings = Settings.from_env({"DATABASE_URL": f"sqlite:///{tmp_path}/started.db"})
    relay = await Relay.start(settings)
    try:
        assert (await relay.handle(request("/healthz", method="GET"))).status == 200
        assert (tmp_path / "started.db").exists() and relay.sandbox is None
    finally:
        await relay.close()


@pytest.mark.parametrize("env,warned", [
    ({}, True), ({"WX_PUSH_PATH": "/wx/0123456789abcdef"}, False), ({"WX_PUSH_TRUST": "network"}, False),
    ({"WX_PUSH_TRUST": "signed", "WX_TOKEN": TOKEN}, False),
], ids=["header-on-root", "secret-path", "network", "signed"])
async def test_start_warns_when_pushes_on_root_are_believed_on_a_header(tmp_path, monkeypatch, env, warned):
    monkeypatch.setitem(REGISTRY, "script", ScriptDesk)
    settings = Settings.from_env({"DATABASE_URL": f"sqlite:///{tmp_path}/started.db", "RELAY_ROUTES": "vip:script",
                                  "RELAY_SANDBOX": "on", **env})
    with captured("relay.relay") as logged:
        relay = await Relay.start(settings)
    try:
        assert any("WX_PUSH_PATH" in message for message in logged.messages()) is warned
        assert relay.sandbox is not None and script(relay).opened
    finally:
        await relay.close()
