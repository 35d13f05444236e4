"""A fake Easemob IM app with kefu behind it: the token endpoint (tokens expire), users, one-to-one
messages, chat files (upload and download), and the post-send callback, signed as Easemob documents
it and retried once on a non-200. Written apart from core, from Easemob's documentation.

Like Easemob, the fake calls back for every message it accepts, the relay's own visitor messages
included (set `callback_url`); `agent_says` / `agent_sends_image` play the kefu agent answering.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
import threading
import time
import uuid
from collections import deque
from email.parser import BytesParser
from email.policy import default as email_policy
from typing import Any

import httpx

from tests.fakes.server import Answer, FakeServer, Recorded

USERNAME = re.compile(r"[a-z0-9_.-]{1,64}")
BODY_LIMIT = 5 * 1024  # body + ext of one message, in bytes
TIMEOUT = 10.0


def security(call_id: str, secret: str, timestamp: int) -> str:
    """md5(callId + secret + timestamp), lower-case hex (DigestUtils#md5Hex)."""
    return hashlib.md5(f"{call_id}{secret}{timestamp}".encode()).hexdigest()


class FakeEasemob(FakeServer):
    org = "easemob-demo"
    app = "kefuapp"
    client_id = "YXA6client"
    client_secret = "YXA6secret"
    service_number = "kefuchannelimid_123456"
    callback_secret = "callback-secret"
    expires_in = 5184000  # seconds a token lives (Easemob's default: 60 days)
    token_delay = 0.0  # seconds the token endpoint takes to answer
    callback_url: str | None = None  # where the post-send callback goes
    echo = True  # call back every message accepted through the REST API too, as Easemob does

    def __post_init__(self) -> None:
        super().__post_init__()
        self._serial = itertools.count(1)
        self._msg_ids = itertools.count(1029457500870543736)
        self.tokens: dict[str, float] = {}  # token -> expiry (monotonic)
        self.users: dict[str, str] = {}  # username -> password
        self.files: dict[str, tuple[bytes, str, str]] = {}  # uuid -> (data, content type, share-secret)
        self.messages: list[dict[str, Any]] = []  # accepted messages, with their msg_id
        self.callbacks: list[tuple[dict[str, Any], httpx.Response]] = []  # (body, answer) of each callback sent
        self._callback_lock = threading.Lock()  # callbacks reach the relay in the order messages were accepted
        self.send_outcomes: deque[int | None] = deque()  # per message send: a status to fail with, or None

    @property
    def prefix(self) -> str:
        return f"/{self.org}/{self.app}"

    def env(self) -> dict[str, str]:
        """The relay's settings for this app."""
        return {"EASEMOB_BASE_URL": self.url, "EASEMOB_ORG": self.org, "EASEMOB_APP": self.app,
                "EASEMOB_CLIENT_ID": self.client_id, "EASEMOB_CLIENT_SECRET": self.client_secret,
                "EASEMOB_SERVICE_NUMBER": self.service_number, "EASEMOB_CALLBACK_SECRET": self.callback_secret}

    # -- the REST API -------------------------------------------------------------------------------
    def answer(self, recorded: Recorded) -> Answer:
        path = recorded.path.removeprefix(self.prefix)
        if not recorded.path.startswith(self.prefix + "/"):
            return 404, {"error": "organization_application_not_found"}
        if path == "/token" and recorded.method == "POST":
            return self._token(recorded)
        if not self._authorized(recorded):
            return 401, {"error": "unauthorized", "error_description": "Unable to authenticate (OAuth)"}
        if path == "/users" and recorded.method == "POST":
            return self._register(recorded)
        if path == "/messages/users" and recorded.method == "POST":
            return self._send(recorded)
        if path == "/chatfiles" and recorded.method == "POST":
            return self._upload(recorded)
        if path.startswith("/chatfiles/") and recorded.method == "GET":
            return self._download(recorded, path.removeprefix("/chatfiles/"))
        return 404, {"error": "service_resource_not_found"}

    def _token(self, recorded: Recorded) -> Answer:
        time.sleep(self.token_delay)
        data = recorded.json()
        if (data.get("grant_type"), data.get("client_id"), data.get("client_secret")) != \
                ("client_credentials", self.client_id, self.client_secret):
            return 401, {"error": "invalid_grant", "error_description": "invalid client credentials"}
        token = f"YWMt-token-{next(self._serial)}"
        self.tokens[token] = time.monotonic() + self.expires_in
        return 200, {"access_token": token, "expires_in": self.expires_in, "application": "app-uuid"}

    def _authorized(self, recorded: Recorded) -> bool:
        token = recorded.headers.get("authorization", "").removeprefix("Bearer ")
        return token in self.tokens and time.monotonic() < self.tokens[token]

    def _register(self, recorded: Recorded) -> Answer:
        entries = recorded.json()
        for entry in entries if isinstance(entries, list) else [entries]:
            name = entry.get("username", "")
            if not USERNAME.fullmatch(name):
                return 400, {"error": "illegal_argument", "error_description": f"username {name} is not legal"}
            if name in self.users:
                return 400, {"error": "duplicate_unique_property_exists",
                             "error_description": f"Entity user requires that property named username be unique, "
                                                  f"value of {name} exists"}
            self.users[name] = entry.get("password", "")
        return 200, {"action": "post", "entities": [{"username": e["username"], "activated": True}
                                                    for e in (entries if isinstance(entries, list) else [entries])]}

    def _send(self, recorded: Recorded) -> Answer:
        failure = self.send_outcomes.popleft() if self.send_outcomes else None
        if failure:
            return failure, {"error": "scripted failure"}
        data = recorded.json()
        size = len(json.dumps(data.get("body"), ensure_ascii=False).encode()) + \
            len(json.dumps(data.get("ext", {}), ensure_ascii=False).encode())
        if size > BODY_LIMIT:
            return 400, {"error": "message_send_error", "error_code": 14007, "error_description": "message is too large"}
        if data.get("type") not in ("txt", "img", "audio", "video", "file", "loc", "cmd", "custom") \
                or not isinstance(data.get("to"), list) or not data.get("from"):
            return 400, {"error": "illegal_argument"}
        ids = {to: str(next(self._msg_ids)) for to in data["to"]}
        for to, msg_id in ids.items():
            message = {"msg_id": msg_id, "from": data["from"], "to": to, "type": data["type"],
                       "body": data["body"], "ext": data.get("ext", {})}
            self.messages.append(message)
            if self.callback_url and self.echo:
                threading.Thread(target=self._echo, args=(message,), daemon=True).start()
        return 200, {"path": "/messages/users", "action": "post", "data": ids}

    def _upload(self, recorded: Recorded) -> Answer:
        parsed = BytesParser(policy=email_policy).parsebytes(
            b"content-type: " + recorded.headers.get("content-type", "").encode() + b"\r\n\r\n" + recorded.body)
        for part in parsed.iter_parts():
            if part.get_param("name", header="content-disposition") == "file":
                return 200, {"entities": [{"uuid": self.store_file(part.get_payload(decode=True),
                                                                   part.get_content_type()),
                                           "type": "chatfile", "share-secret": ""}]}
        return 400, {"error": "illegal_argument", "error_description": "file must be provided."}

    def _download(self, recorded: Recorded, file_uuid: str) -> Answer:
        if file_uuid not in self.files:
            return 404, {"error": "entity_not_found", "error_description": "file may not exists"}
        data, content_type, secret = self.files[file_uuid]
        if secret and recorded.headers.get("share-secret") != secret:
            return 401, {"error": "unauthorized"}
        return 200, data, {"content-type": content_type}

    # -- what tests read and script -------------------------------------------------------------------
    def store_file(self, data: bytes, content_type: str = "image/jpeg", secret: str = "") -> str:
        file_uuid = str(uuid.uuid4())
        self.files[file_uuid] = (data, content_type, secret)
        return file_uuid

    def expire_tokens(self) -> None:
        """Every token issued so far stops working (as if it had expired early)."""
        self.tokens = {token: 0.0 for token in self.tokens}

    def token_requests(self) -> list[Recorded]:
        return self.received(self.prefix + "/token", ok_only=False)

    def refused_with(self, status: int) -> list[Recorded]:
        return [r for r in self.requests if r.status == status]

    def to_service(self) -> list[dict[str, Any]]:
        """Messages visitors sent to the kefu service number, in the order Easemob accepted them."""
        return [m for m in self.messages if m["to"] == self.service_number]

    def texts_from(self, user: str) -> list[str]:
        return [m["body"]["msg"] for m in self.to_service() if m["from"] == user and m["type"] == "txt"]

    def registrations(self) -> list[Recorded]:
        return self.received(self.prefix + "/users", ok_only=False)

    # -- the kefu side: agents answer, Easemob calls back ---------------------------------------------
    def agent_says(self, to: str, text: str, **ext: Any) -> dict[str, Any]:
        return self.agent_sends(to, "txt", {"msg": text}, ext)

    def agent_sends_image(self, to: str, data: bytes, *, secret: str = "") -> dict[str, Any]:
        file_uuid = self.store_file(data, "image/png", secret)
        body = {"filename": "image", "size": {"width": 10, "height": 10}, "secret": secret, "file_length": len(data),
                "url": f"https://a1-vip.easemob.com{self.prefix}/chatfiles/{file_uuid}"}
        return self.agent_sends(to, "img", body)

    def agent_sends(self, to: str, kind: str, body: dict[str, Any], ext: dict[str, Any] | None = None) -> dict[str, Any]:
        """An agent's message from the service number to `to`, called back to the relay."""
        message = {"msg_id": str(next(self._msg_ids)), "from": self.service_number, "to": to, "type": kind,
                   "body": body, "ext": {"weichat": {"agent": {"userNickname": "客服小王"}, "msgId": str(uuid.uuid4())},
                                         **(ext or {})}}
        self.messages.append(message)
        self.call_back(message)
        return message

    def callback_body(self, message: dict[str, Any], *, timestamp: int | None = None,
                      secret: str | None = None) -> dict[str, Any]:
        """The post-send callback of `message`, signed."""
        ts = int(time.time() * 1000) if timestamp is None else timestamp
        call_id = f"{self.org}#{self.app}_{message['msg_id']}"
        body = {"type": message["type"], **message["body"]}
        return {"callId": call_id, "eventType": "chat", "timestamp": ts, "chat_type": "chat",
                "from": message["from"], "to": message["to"], "msg_id": message["msg_id"],
                "payload": {"bodies": [body], "ext": message["ext"], "from": message["from"], "to": message["to"],
                            "type": "chat"},
                "securityVersion": "1.0.0",
                "security": security(call_id, self.callback_secret if secret is None else secret, ts),
                "appkey": f"{self.org}#{self.app}", "host": "msync@ebs-ali-beijing-msync1",
                "content_type": f"chat:user:{'text' if message['type'] == 'txt' else message['type']}"}

    def call_back(self, message: dict[str, Any], **signing: Any) -> httpx.Response:
        """POST the callback of `message` to `callback_url` as Easemob does: one immediate retry on a
        non-200, then give up."""
        assert self.callback_url, "set callback_url to the relay's /easemob"
        body = self.callback_body(message, **signing)
        return self.post_callback(body)

    def _echo(self, message: dict[str, Any]) -> None:
        """The callback of a message the relay sent; dropped when the relay is gone, as Easemob drops it."""
        try:
            self.call_back(message)
        except httpx.TransportError:
            pass

    def post_callback(self, body: dict[str, Any]) -> httpx.Response:
        with self._callback_lock:
            answer = httpx.post(self.callback_url or "", json=body, timeout=TIMEOUT)
            if answer.status_code != 200:
                answer = httpx.post(self.callback_url or "", json=body, timeout=TIMEOUT)
            self.callbacks.append((body, answer))
        return answer
