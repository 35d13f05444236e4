"""A fake Slack: the Web API methods the relay calls, answering like Slack (HTTP 200 with `ok`, 429 with
Retry-After and `ok: false` errors on a script, answers lost after posting), the external file upload,
private files behind the bot token; and an Events API sender that signs like Slack. Written apart from
core, from Slack's documented scheme, so that the two check each other."""
from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx

from tests.fakes.server import Answer, FakeServer, Recorded

TOKEN = "xoxb-relay-test"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # Slack's documented example (fixtures/slack/signature.json)
CHANNEL = "C0RELAY001"
BOT_USER, BOT_ID = "U0BOT00001", "B0BOT00001"  # as the fixtures' authorizations name the bot
AGENT, OTHER_AGENT = "U0AGENT001", "U0AGENT002"
POST = "/api/chat.postMessage"
EVENTS = "/slack/events"
LOGIN_PAGE = b"<!DOCTYPE html><html><body>Sign in to Slack</body></html>"


def sign(timestamp: str, body: bytes, secret: str = SIGNING_SECRET) -> str:
    """`v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{raw body}` with the signing secret."""
    mac = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256)
    return "v0=" + mac.hexdigest()


@dataclass
class Posted:
    ts: str
    channel: str
    text: str
    thread_ts: str | None = None
    metadata: dict[str, Any] | None = None
    files: list[dict[str, Any]] = field(default_factory=list)
    user: str = BOT_USER


class FakeSlack(FakeServer):
    """Slack as the relay's bot token sees it. `lose_answers`: that many chat.postMessage calls post and
    then answer 500, as if the answer was lost on the way."""

    token = TOKEN
    channels = (CHANNEL,)
    lose_answers = 0
    rate: float | None = None  # set: chat.postMessage allows this many posts per second per channel (429 beyond)
    burst = 3.0  # posts a channel may take at once before the rate applies
    names = {AGENT: "Alice", OTHER_AGENT: "Bob"}

    def __post_init__(self) -> None:
        super().__post_init__()
        self.posts: list[Posted] = []
        self.uploads: dict[str, dict[str, Any]] = {}  # file id -> name, length, data
        self.files: dict[str, tuple[bytes, str]] = {}  # private files agents shared: id -> data, mimetype
        self._ids = itertools.count(1)
        self._last_ts = 0.0
        self._state = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # channel -> (tokens, when counted)
        self.thread_failures: list[Answer] = []  # answers to the next in-thread posts, instead of posting

    # -- Web API ----------------------------------------------------------------------------------
    def answer(self, recorded: Recorded) -> Answer:
        path = recorded.path
        if path.startswith("/upload/"):
            return self._upload(path.rsplit("/", 1)[-1], recorded.body)
        if path.startswith("/files/"):
            return self._private_file(path.split("/")[2], recorded.headers.get("authorization"))
        if not path.startswith("/api/") or recorded.method != "POST":
            return 404, {"error": "not found"}
        if recorded.headers.get("authorization") != f"Bearer {self.token}":
            return 200, {"ok": False, "error": "not_authed"}
        method = getattr(self, "_" + path[len("/api/"):].replace(".", "_"), None)
        if method is None:
            return 200, {"ok": False, "error": "unknown_method"}
        return method(self.form(recorded))

    @staticmethod
    def form(recorded: Recorded) -> dict[str, str]:
        return dict(parse_qsl(recorded.body.decode(), keep_blank_values=True))

    def _next_ts(self) -> str:
        with self._state:
            self._last_ts = max(time.time(), self._last_ts + 0.000001)
            return f"{self._last_ts:.6f}"

    def _within_rate(self, channel: str) -> bool:
        """A token bucket per channel: `burst` posts at once, then `rate` a second."""
        if self.rate is None:
            return True
        now = time.monotonic()
        with self._state:
            tokens, then = self._buckets.get(channel, (self.burst, now))
            tokens = min(self.burst, tokens + (now - then) * self.rate)
            self._buckets[channel] = (tokens - 1, now) if tokens >= 1 else (tokens, now)
            return tokens >= 1

    def _auth_test(self, _: dict[str, str]) -> Answer:
        return 200, {"ok": True, "url": "https://relay-test.slack.com/", "team": "Relay Test", "user": "relay",
                     "team_id": "T123ABC456", "user_id": BOT_USER, "bot_id": BOT_ID}

    def _chat_postMessage(self, form: dict[str, str]) -> Answer:
        if form.get("channel") not in self.channels:
            return 200, {"ok": False, "error": "not_in_channel"}
        if not form.get("text"):
            return 200, {"ok": False, "error": "no_text"}
        with self._state:
            failure = self.thread_failures.pop(0) if form.get("thread_ts") and self.thread_failures else None
        if failure:
            return failure
        if not self._within_rate(form["channel"]):
            return 429, {"ok": False, "error": "ratelimited"}, {"retry-after": "1"}
        posted = Posted(self._next_ts(), form["channel"], form["text"], form.get("thread_ts"),
                        json.loads(form["metadata"]) if form.get("metadata") else None)
        with self._state:
            self.posts.append(posted)
            lost, self.lose_answers = self.lose_answers > 0, max(0, self.lose_answers - 1)
        if lost:
            return 500, b"upstream request timeout"
        return 200, {"ok": True, "channel": posted.channel, "ts": posted.ts,
                     "message": {"text": posted.text, "user": BOT_USER, "bot_id": BOT_ID, "ts": posted.ts}}

    def _chat_getPermalink(self, form: dict[str, str]) -> Answer:
        ts = form.get("message_ts", "")
        if not any(p.ts == ts for p in self.posts):
            return 200, {"ok": False, "error": "message_not_found"}
        return 200, {"ok": True, "channel": form.get("channel"),
                     "permalink": f"https://relay-test.slack.com/archives/{form.get('channel')}/p{ts.replace('.', '')}"}

    def _listing(self, form: dict[str, str], in_thread: bool) -> Answer:
        oldest = float(form.get("oldest") or 0)
        with self._state:
            found = [p for p in self.posts if p.channel == form.get("channel") and float(p.ts) >= oldest and (
                (p.thread_ts == form.get("ts") or p.ts == form.get("ts")) if in_thread else not p.thread_ts)]
        metadata = form.get("include_all_metadata") == "true"
        return 200, {"ok": True, "has_more": False, "messages": [
            {"type": "message", "ts": p.ts, "text": p.text, "user": p.user, "bot_id": BOT_ID,
             **({"thread_ts": p.thread_ts} if p.thread_ts else {}),
             **({"metadata": p.metadata} if metadata and p.metadata else {})} for p in found]}

    def _conversations_replies(self, form: dict[str, str]) -> Answer:
        return self._listing(form, in_thread=True)

    def _conversations_history(self, form: dict[str, str]) -> Answer:
        return self._listing(form, in_thread=False)

    def _users_info(self, form: dict[str, str]) -> Answer:
        name = self.names.get(form.get("user", ""))
        if name is None:
            return 200, {"ok": False, "error": "user_not_found"}
        return 200, {"ok": True, "user": {"id": form["user"], "name": name.lower(), "real_name": f"{name} Agent",
                                          "profile": {"display_name": name, "real_name": f"{name} Agent"}}}

    def _files_getUploadURLExternal(self, form: dict[str, str]) -> Answer:
        if not form.get("filename") or not form.get("length", "").isdigit() or form["length"] == "0":
            return 200, {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{next(self._ids):08d}"
        with self._state:
            self.uploads[file_id] = {"name": form["filename"], "length": int(form["length"]), "data": None}
        return 200, {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}

    def _upload(self, file_id: str, data: bytes) -> Answer:
        with self._state:
            upload = self.uploads.get(file_id)
            if upload is None or upload["length"] != len(data):
                return 400, b"bad upload"
            upload["data"] = data
        return 200, f"OK - {len(data)}".encode(), {"content-type": "text/plain"}

    def _files_completeUploadExternal(self, form: dict[str, str]) -> Answer:
        files = json.loads(form.get("files") or "[]")
        with self._state:
            chosen = [self.uploads.get(f.get("id", "")) for f in files]
        if not files or any(u is None or u["data"] is None for u in chosen):
            return 200, {"ok": False, "error": "file_not_found"}
        if form.get("channel_id") not in self.channels:
            return 200, {"ok": False, "error": "channel_not_found"}
        shared = [{"id": f["id"], "title": f.get("title"), "name": u["name"], "data": u["data"]}  # type: ignore[index]
                  for f, u in zip(files, chosen, strict=True)]
        posted = Posted(self._next_ts(), form["channel_id"], "", form.get("thread_ts"), files=shared)
        with self._state:
            self.posts.append(posted)
        return 200, {"ok": True, "files": [{"id": f["id"], "title": f["title"]} for f in shared]}

    # -- files agents share ---------------------------------------------------------------------------
    def share_file(self, name: str, data: bytes, mimetype: str, size: int | None = None,
                   thumbnail: bytes | None = None) -> dict[str, Any]:
        """A file object as a file_share event carries it; `thumbnail` adds a thumb_1024 of its own."""
        file_id = f"F{next(self._ids):08d}"
        self.files[file_id] = (data, mimetype)
        found = {"id": file_id, "name": name, "title": name, "mimetype": mimetype,
                 "size": len(data) if size is None else size,
                 "url_private": f"{self.url}/files/{file_id}/{name}",
                 "url_private_download": f"{self.url}/files/{file_id}/download/{name}"}
        if thumbnail is not None:
            self.files[file_id + "t"] = (thumbnail, "image/jpeg")
            found["thumb_1024"] = f"{self.url}/files/{file_id}t/thumb_1024.jpg"
        return found

    def _private_file(self, file_id: str, authorization: str | None) -> Answer:
        if authorization != f"Bearer {self.token}":  # what Slack answers without files:read or a token
            return 200, LOGIN_PAGE, {"content-type": "text/html; charset=utf-8"}
        data, mimetype = self.files.get(file_id, (b"", ""))
        return (200, data, {"content-type": mimetype}) if data else (404, b"not found")

    # -- what Slack received --------------------------------------------------------------------------
    def roots(self) -> list[Posted]:
        with self._state:
            return [p for p in self.posts if not p.thread_ts]

    def in_thread(self, ts: str) -> list[Posted]:
        """The posts under a thread root, in order."""
        with self._state:
            return [p for p in self.posts if p.thread_ts == ts]

    def texts(self, ts: str) -> list[str]:
        return [p.text for p in self.in_thread(ts)]

    # -- the Events API -----------------------------------------------------------------------------
    def reply(self, thread_ts: str, text: str, user: str = AGENT, **fields: Any) -> dict[str, Any]:
        """A message event: a person's reply in a thread of the relay's channel (fields override)."""
        ts = self._next_ts()
        event = {"type": "message", "channel": CHANNEL, "user": user, "text": text, "ts": ts, "thread_ts": thread_ts,
                 "event_ts": ts, "channel_type": "channel", "client_msg_id": str(uuid.uuid4())}
        event.update(fields)
        return {k: v for k, v in event.items() if v is not None}

    @staticmethod
    def envelope(event: dict[str, Any], event_id: str | None = None) -> bytes:
        return json.dumps({
            "token": "one-long-verification-token", "team_id": "T123ABC456", "api_app_id": "A0PNCHHK2",
            "event": event, "type": "event_callback", "event_id": event_id or f"Ev{uuid.uuid4().hex[:10].upper()}",
            "event_time": int(time.time()), "authorizations": [
                {"enterprise_id": None, "team_id": "T123ABC456", "user_id": BOT_USER, "is_bot": True,
                 "is_enterprise_install": False}]}).encode()

    def send(self, relay: Any, body: bytes | dict[str, Any], *, timestamp: int | str | None = None,
             retry: int | None = None, **headers: str | None) -> httpx.Response:
        """POST a body (an event is wrapped in an envelope first) to /slack/events of `relay` (anything
        with the Service.post signature), signed now; `headers` replace or (None) drop signed ones."""
        raw = self.envelope(body) if isinstance(body, dict) else body
        ts = str(int(time.time()) if timestamp is None else timestamp)
        sent = {"content-type": "application/json", "x-slack-request-timestamp": ts,
                "x-slack-signature": sign(ts, raw)}
        if retry is not None:
            sent.update({"x-slack-retry-num": str(retry), "x-slack-retry-reason": "http_timeout"})
        sent.update({name.replace("_", "-"): value for name, value in headers.items()})  # type: ignore[misc]
        return relay.post(EVENTS, raw, {k: v for k, v in sent.items() if v is not None})
