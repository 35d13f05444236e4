"""The sandbox (`RELAY_SANDBOX=on`): play a WeChat user at `/sandbox`, with no WeChat account.

Two halves, both inside the relay's process:
- the page's API (`/sandbox/api/...`) turns what the developer types into Cloud Run-shaped pushes and
  hands them to the relay's real intake (a POST on the push path, `WX_PUSH_PATH`, with the `x-wx-*`
  headers Cloud Run adds);
- `OpenApiStandIn`, an httpx transport mounted on the relay's HTTP client for the WeChat API host and
  the sandbox's picture host, answers the relay's calls as the open API would and keeps each send as
  the user's chat, which the page polls.

The chats live in memory, bounded, in one process: the sandbox is for trying the relay, which is why it
is off unless switched on and the relay says so loudly when it starts."""
from __future__ import annotations

import base64
import binascii
import email.parser
import email.policy
import itertools
import json
import re
import secrets
import time
from collections import OrderedDict, defaultdict, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from core import logs
from core.desks.inbox.static import StaticFiles
from core.errors import BadRequest, MethodNotAllowed, NotFound
from core.web import Request, Response
from core.wechat.settings import WeChatSettings

log = logs.get("sandbox")
STATIC = Path(__file__).parent / "sandbox_static"
APP_ID = "wxsandbox0000000"  # the Mini Program the sandbox users write to
PICTURE_HOST = "pictures.sandbox.invalid"  # PicUrl of the users' pictures; `.invalid` never resolves
# How the stand-in answers sends: delivered, the two refusals an agent must see, and a configuration
# error (48001: the API is not authorised) that makes a dead letter for the admin screen.
ANSWERS = {"ok": 0, "window_closed": 45015, "quota_exhausted": 45047, "api_unauthorized": 48001}
OPENID = re.compile(r"[A-Za-z0-9_-]{1,64}")
CHAT_LIMIT = 500  # entries kept per user
MEDIA_LIMIT = 200  # pictures kept, oldest dropped first
TYPING_SECONDS = 15.0

Intake = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class Entry:
    """One bubble of a user's chat: what the user wrote (`from_user`) or what the relay sent."""

    seq: int
    from_user: bool
    type: str  # text, image, session, link, miniprogrampage
    text: str | None
    media: str | None  # a picture's id, shown from /sandbox/api/media/<id>
    at: float


class Chats:
    """Every sandbox user's chat, the pictures in it, and how the stand-in answers each user's sends."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._seq = itertools.count(1)
        self.entries: dict[str, deque[Entry]] = defaultdict(lambda: deque(maxlen=CHAT_LIMIT))
        self.media: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
        self.answers: dict[str, str] = {}
        self.typing_until: dict[str, float] = {}

    def add(self, openid: str, from_user: bool, type: str, text: str | None = None,
            media: str | None = None) -> Entry:
        entry = Entry(next(self._seq), from_user, type, text, media, self.clock())
        self.entries[openid].append(entry)
        if not from_user:
            self.typing_until.pop(openid, None)
        return entry

    def keep_media(self, data: bytes, content_type: str) -> str:
        media_id = secrets.token_hex(12)
        self.media[media_id] = (data, content_type)
        while len(self.media) > MEDIA_LIMIT:
            self.media.popitem(last=False)
        return media_id

    def since(self, openid: str, after: int) -> list[Entry]:
        return [entry for entry in self.entries.get(openid, ()) if entry.seq > after]

    def typing(self, openid: str) -> bool:
        return self.typing_until.get(openid, 0.0) > self.clock()


class OpenApiStandIn(httpx.AsyncBaseTransport):
    """The WeChat open API as the relay sees it: send, media upload, typing and stable_token, answered
    in process; the sends become the user's chat. Also serves the users' pictures (PicUrl)."""

    def __init__(self, chats: Chats) -> None:
        self.chats = chats

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        if request.url.host == PICTURE_HOST:
            return self._picture(request.url.path.strip("/"))
        path = request.url.path
        if path == "/cgi-bin/stable_token":
            return _answer({"access_token": "SANDBOX" + secrets.token_hex(8), "expires_in": 7200})
        if path == "/cgi-bin/media/upload":
            file = _multipart_file(request.headers.get("content-type", ""), body)
            if file is None:
                return _answer({"errcode": 41005, "errmsg": "media data missing"})
            return _answer({"type": "image", "media_id": self.chats.keep_media(*file),
                            "created_at": int(self.chats.clock())})
        if path in ("/cgi-bin/message/custom/typing", "/cgi-bin/message/custom/business/typing"):
            message = json.loads(body)
            openid = str(message.get("touser"))
            if message.get("command") == "Typing":
                self.chats.typing_until[openid] = self.chats.clock() + TYPING_SECONDS
            else:
                self.chats.typing_until.pop(openid, None)
            return _answer({"errcode": 0, "errmsg": "ok"})
        if path == "/cgi-bin/message/custom/send":
            return self._send(json.loads(body))
        return _answer({"errcode": 40101, "errmsg": "the sandbox does not stand in for this API"})

    def _send(self, message: dict[str, Any]) -> httpx.Response:
        openid, kind = str(message.get("touser", "")), str(message.get("msgtype", ""))
        errcode = ANSWERS[self.chats.answers.get(openid, "ok")]
        if errcode:
            return _answer({"errcode": errcode, "errmsg": "sandbox: refused as asked on the sandbox page"})
        raw = message.get(kind)
        content: dict[str, Any] = raw if isinstance(raw, dict) else {}
        if kind == "text":
            self.chats.add(openid, False, "text", text=str(content.get("content", "")))
        elif kind == "image":
            media = str(content.get("media_id", ""))
            if media not in self.chats.media:
                return _answer({"errcode": 40007, "errmsg": "invalid media_id"})
            self.chats.add(openid, False, "image", media=media)
        elif kind in ("link", "miniprogrampage"):
            self.chats.add(openid, False, kind, text=str(content.get("title", "")))
        else:
            return _answer({"errcode": 40008, "errmsg": "invalid message type"})
        return _answer({"errcode": 0, "errmsg": "ok"})

    def _picture(self, media_id: str) -> httpx.Response:
        picture = self.chats.media.get(media_id)
        if picture is None:
            return httpx.Response(404)
        return httpx.Response(200, content=picture[0], headers={"content-type": picture[1]})


class Sandbox:
    """The `/sandbox` routes and the stand-in they share a chat store with."""

    def __init__(self, wechat: WeChatSettings, clock: Callable[[], float] = time.time) -> None:
        self.chats = Chats(clock)
        self.transport = OpenApiStandIn(self.chats)
        self.api_host = urlsplit(wechat.api_base).netloc  # host, and port when WX_API_BASE names one
        self.push_path = wechat.push_path
        self.files = StaticFiles(STATIC)
        log.warning("SANDBOX IS ON (RELAY_SANDBOX=on): /sandbox is open to anyone and the relay's WeChat "
                    "sends go to an in-process stand-in, never to WeChat. Never switch it on in production.",
                    extra={"api_host": self.api_host})

    @property
    def mounts(self) -> dict[str, httpx.AsyncBaseTransport]:
        """Transports for the relay's HTTP client: calls to these hosts never leave the process."""
        return {f"all://{self.api_host}": self.transport, f"all://{PICTURE_HOST}": self.transport}

    async def serve(self, request: Request, intake: Intake) -> Response:
        """Answer a request under /sandbox; `intake` is the relay's own request handler."""
        path = request.path.removeprefix("/sandbox").strip("/")
        if path.startswith("api/"):
            return await self._api(request, path.removeprefix("api/"), intake)
        return self.files.serve(request, path)

    async def _api(self, request: Request, route: str, intake: Intake) -> Response:
        if route.startswith("media/") and request.method == "GET":
            picture = self.chats.media.get(route.removeprefix("media/"))
            if picture is None:
                raise NotFound("no such picture")
            return Response(200, picture[0], {"content-type": picture[1], "cache-control": "private, max-age=3600"})
        if route == "messages" and request.method == "GET":
            openid = _openid(request.query.get("openid"))
            after = int(request.query["after"]) if request.query.get("after", "").isdigit() else 0
            return Response.json({"messages": [asdict(e) for e in self.chats.since(openid, after)],
                                  "typing": self.chats.typing(openid),
                                  "answer": self.chats.answers.get(openid, "ok")})
        if request.method != "POST":
            raise MethodNotAllowed("use GET for media and messages, POST otherwise")
        fields = _json_body(request)
        openid = _openid(fields.get("openid"))
        if route == "messages":
            return await self._write(openid, fields, intake)
        if route == "answer":
            answer = fields.get("answer")
            if answer not in ANSWERS:
                raise BadRequest(f"answer must be one of {', '.join(ANSWERS)}")
            self.chats.answers[openid] = str(answer)
            return Response.json({"answer": answer})
        raise NotFound("no such sandbox route")

    async def _write(self, openid: str, fields: Mapping[str, Any], intake: Intake) -> Response:
        """The user writes (text, a picture) or opens the chat: a push through the relay's intake."""
        kind = fields.get("type")
        push: dict[str, Any] = {"ToUserName": "gh_sandbox", "FromUserName": openid,
                                "CreateTime": int(self.chats.clock())}
        if kind == "text" and isinstance(fields.get("text"), str) and fields["text"].strip():
            push |= {"MsgType": "text", "Content": fields["text"], "MsgId": _msg_id()}
            entry: dict[str, Any] = {"type": "text", "text": fields["text"]}
        elif kind == "image" and isinstance(fields.get("image"), str):
            media = self.chats.keep_media(_picture_bytes(fields["image"]), str(fields.get("content_type") or "image/jpeg"))
            push |= {"MsgType": "image", "PicUrl": f"http://{PICTURE_HOST}/{media}", "MediaId": media,
                     "MsgId": _msg_id()}
            entry = {"type": "image", "media": media}
        elif kind == "session":
            session_from = str(fields.get("session_from") or "")
            push |= {"MsgType": "event", "Event": "user_enter_tempsession", "SessionFrom": session_from}
            entry = {"type": "session", "text": session_from}
        else:
            raise BadRequest("type must be text (with text), image (with image, base64) or session")
        answer = await intake(Request("POST", self.push_path, {}, {
            "x-wx-source": "other", "x-wx-appid": APP_ID, "content-type": "application/json"},
            json.dumps(push, ensure_ascii=False).encode()))
        if answer.status != 200:
            return answer
        added = self.chats.add(openid, True, **entry)
        return Response.json(asdict(added), 201)


def _json_body(request: Request) -> dict[str, Any]:
    # JSON only: a cross-site form cannot send it without a preflight the sandbox never grants.
    if not (request.header("content-type") or "").startswith("application/json"):
        raise BadRequest("send JSON (content-type: application/json)")
    try:
        fields = json.loads(request.body)
    except ValueError:
        raise BadRequest("body is not JSON") from None
    if not isinstance(fields, dict):
        raise BadRequest("body must be a JSON object")
    return fields


def _openid(value: object) -> str:
    if not isinstance(value, str) or not OPENID.fullmatch(value):
        raise BadRequest("openid must be 1 to 64 letters, digits, '-' or '_'")
    return value


def _msg_id() -> int:
    """A MsgId as WeChat makes them: a number beyond 2^53."""
    return (1 << 60) + secrets.randbits(59)


def _picture_bytes(encoded: str) -> bytes:
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("image must be base64") from None
    if not data:
        raise BadRequest("image is empty")
    return data


def _multipart_file(content_type: str, body: bytes) -> tuple[bytes, str] | None:
    """The first file of a multipart/form-data body (what media/upload receives)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"content-type: " + content_type.encode() + b"\r\n\r\n" + body)
    for part in message.iter_parts():
        payload = part.get_payload(decode=True)
        if part.get_filename() and isinstance(payload, bytes):
            return payload, part.get_content_type()
    return None


def _answer(value: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, json=value)
