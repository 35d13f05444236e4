"""The inbox's JSON API under /inbox/api/ (docs/inbox.md): one table of routes, each with who may
call it; every call but login and setup needs a session, every state-changing one its CSRF token."""
from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from core import logs
from core.desks.base import Desk
from core.desks.inbox import passwords, pictures
from core.desks.inbox.auth import SESSION_SECONDS, Auth, Session, session_cookie
from core.desks.inbox.events import Events
from core.desks.inbox.requests import json_body, name_of, page_size, text_field, uploaded_picture, user_of, whole_number
from core.desks.inbox.store import Agent, InboxStore, NewMessage
from core.errors import BadRequest, Conflict, Forbidden, MethodNotAllowed, NotFound, Unauthorized
from core.models import AgentReply, DeadLetter, DeskRef, NewJob
from core.store import SqlStore
from core.web import Request, Response
from core.wechat.api import split_text

log = logs.get("inbox")
Access = Literal["public", "agent", "admin"]
Handler = Callable[..., Awaitable[Response]]
STATUSES = ("open", "waiting", "closed")
TEXT_LIMIT = 20_000  # characters of a reply or note; a long reply is sent in several messages
NAME = re.compile(r"[^\x00-\x1f\x7f\s](?:[^\x00-\x1f\x7f]{0,62}[^\x00-\x1f\x7f\s])?")
CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
NO_STORE = {"cache-control": "no-store"}


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: str  # the InboxApi method's name
    access: Access = "agent"


def _routes(*table: tuple[str, str, str, Access]) -> tuple[Route, ...]:
    return tuple(Route(method, re.compile(path.replace("{id}", "(?P<id>[^/]+)").replace("{name}", "(?P<name>[^/]+)")),
                       handler, access) for method, path, handler, access in table)


ROUTES = _routes(
    ("POST", "login", "login", "public"),
    ("POST", "setup", "setup", "public"),
    ("POST", "logout", "logout", "agent"),
    ("GET", "me", "me", "agent"),
    ("POST", "me/password", "change_password", "agent"),
    ("GET", "events", "events", "agent"),
    ("GET", "conversations", "conversations", "agent"),
    ("GET", "conversations/{id}", "conversation", "agent"),
    ("GET", "conversations/{id}/messages", "messages", "agent"),
    ("POST", "conversations/{id}/reply", "reply", "agent"),
    ("POST", "conversations/{id}/note", "note", "agent"),
    ("POST", "conversations/{id}/assign", "assign", "agent"),
    ("POST", "conversations/{id}/close", "close", "agent"),
    ("POST", "conversations/{id}/reopen", "reopen", "agent"),
    ("POST", "conversations/{id}/read", "read", "agent"),
    ("GET", "media/{id}", "media", "agent"),
    ("GET", "agents", "agents", "agent"),
    ("POST", "agents", "add_agent", "admin"),
    ("POST", "agents/{name}/disable", "disable_agent", "admin"),
    ("POST", "agents/{name}/enable", "enable_agent", "admin"),
    ("GET", "canned", "canned", "agent"),
    ("POST", "canned", "add_canned", "admin"),
    ("PUT", "canned/{id}", "change_canned", "admin"),
    ("DELETE", "canned/{id}", "delete_canned", "admin"),
    ("GET", "dead", "dead_letters", "admin"),
    ("POST", "dead/retry", "retry_all_dead", "admin"),
    ("GET", "dead/{id}", "dead_letter", "admin"),
    ("POST", "dead/{id}/retry", "retry_dead", "admin"),
    ("DELETE", "dead/{id}", "drop_dead", "admin"),
)


def agent_name(value: object) -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise BadRequest("a name is 1 to 64 characters, without control characters or spaces at either end")
    return value


async def _hash(password: str) -> str:
    """scrypt off the event loop: it takes tens of milliseconds on purpose."""
    return await asyncio.to_thread(passwords.hash_password, password)


def _dead_to_api(dead: DeadLetter) -> dict[str, Any]:
    return {"id": str(dead.id), "lane": dead.lane, "kind": dead.kind, "attempts": dead.attempts,
            "first_at": dead.first_at, "error": dead.error}


class InboxApi:
    def __init__(self, desk: Desk[Any], inbox: InboxStore, store: SqlStore, auth: Auth, events: Events,
                 clock: Callable[[], float]) -> None:
        self.desk, self.inbox, self.store, self.auth, self.feed, self.clock = desk, inbox, store, auth, events, clock

    async def serve(self, request: Request, path: str) -> Response:
        """`path` is what follows /inbox/api/."""
        matches = [(route, match) for route in ROUTES if (match := route.pattern.fullmatch(path))]
        found = next(((route, match) for route, match in matches if route.method == request.method), None)
        if found is None:
            if matches:
                raise MethodNotAllowed(f"use {' or '.join(sorted({route.method for route, _ in matches}))}")
            raise NotFound("no such inbox API route")
        route, match = found
        handler: Handler = getattr(self, route.handler)
        if route.access == "public":
            answer = await handler(request, **match.groupdict())
        else:
            session = await self.auth.session(request)
            if request.method not in ("GET", "HEAD"):
                self.auth.check_csrf(request, session)
            if route.access == "admin" and not session.agent.admin:
                raise Forbidden("only an admin may do this")
            answer = await handler(request, session, **match.groupdict())
        return answer if "cache-control" in answer.headers else \
            dataclasses.replace(answer, headers={**answer.headers, **NO_STORE})

    # -- login ------------------------------------------------------------------------------------
    def _logged_in(self, request: Request, session: Session, status: int = 200) -> Response:
        return Response.json({"csrf_token": session.csrf, "agent": session.agent.to_api()}, status,
                             {"set-cookie": session_cookie(request, session.token, SESSION_SECONDS)})

    async def login(self, request: Request) -> Response:
        data = json_body(request)
        name, password = data.get("name"), data.get("password")
        if not isinstance(name, str) or not isinstance(password, str) or len(name) > 64 or len(password) > 256:
            raise Unauthorized("wrong name or password")
        return self._logged_in(request, await self.auth.login(request, name, password))

    async def setup(self, request: Request) -> Response:
        """The first admin, with the one-time token from the start-up log."""
        data = json_body(request)
        token, name, password = data.get("token"), agent_name(data.get("name")), data.get("password")
        problem = passwords.password_problem(password)
        if problem:
            raise BadRequest(problem)
        agent = await self.inbox.first_admin(passwords.digest(str(token or "")), name,
                                             await _hash(str(password)), self.clock())
        if agent is None:
            raise Forbidden("this set-up link is used, expired or wrong")
        log.warning("inbox: first admin created through the set-up link", extra={"agent": name})
        return self._logged_in(request, await self.auth.start_session(agent), 201)

    async def logout(self, request: Request, session: Session) -> Response:
        await self.inbox.end_session(passwords.digest(session.token))
        return Response.json({"status": "logged out"}, headers={"set-cookie": session_cookie(request, "", 0)})

    async def me(self, request: Request, session: Session) -> Response:
        return Response.json({"agent": session.agent.to_api(), "csrf_token": session.csrf,
                              "live": "stream" if request.can_stream else "poll"})

    async def change_password(self, request: Request, session: Session) -> Response:
        data = json_body(request)
        found = await self.inbox.credentials(session.agent.name)
        if found is None or not await asyncio.to_thread(passwords.verify_password, str(data.get("current") or ""),
                                                        found[1]):
            raise Forbidden("the current password is wrong")
        problem = passwords.password_problem(data.get("new"))
        if problem:
            raise BadRequest(problem)
        await self.inbox.set_password(session.agent.id, await _hash(data["new"]),
                                      keep_session=passwords.digest(session.token))
        return Response.json({"status": "changed"})

    async def events(self, request: Request, session: Session) -> Response:
        async def still_allowed() -> bool:
            return await self.inbox.session_agent(passwords.digest(session.token), self.clock()) is not None

        return await self.feed.answer(request, still_allowed)

    # -- conversations ----------------------------------------------------------------------------
    async def conversations(self, request: Request, session: Session) -> Response:
        status = request.query.get("status") or None
        if status not in (None, "all", *STATUSES):
            raise BadRequest(f"status must be one of all, {', '.join(STATUSES)}")
        assignee: int | str | None = request.query.get("assignee") or None
        if assignee == "me":
            assignee = session.agent.id
        elif assignee not in (None, "none"):
            assignee = (await self._agent(str(assignee))).id
        listed = await self.inbox.conversations(
            session.agent.id, self.clock(), None if status == "all" else status, assignee,
            whole_number(request.query.get("before"), "before"), page_size(request, 100))
        return Response.json({"conversations": listed})

    async def _conversation(self, session: Session, user: tuple[str, str]) -> dict[str, Any]:
        found = await self.inbox.conversation(session.agent.id, *user, self.clock())
        if found is None:
            raise NotFound("no such conversation")
        return found

    async def conversation(self, request: Request, session: Session, id: str) -> Response:
        return Response.json({"conversation": await self._conversation(session, user_of(id))})

    async def messages(self, request: Request, session: Session, id: str) -> Response:
        user = user_of(id)
        found = await self.inbox.messages(*user, whole_number(request.query.get("before"), "before"),
                                          whole_number(request.query.get("after"), "after"), page_size(request, 50))
        if found is None:
            raise NotFound("no such conversation")
        return Response.json({"messages": found, "conversation": await self._conversation(session, user)})

    async def reply(self, request: Request, session: Session, id: str) -> Response:
        app_id, openid = user_of(id)
        data, fields = uploaded_picture(request)
        client_id = fields.get("client_id")
        if client_id is not None and not (isinstance(client_id, str) and CLIENT_ID.fullmatch(client_id)):
            raise BadRequest("client_id must be 1 to 64 letters, digits, - or _")
        ref = f"client:{session.agent.id}:{client_id}" if client_id else None
        if data is not None:
            picture = pictures.picture(data)
            if picture is None:
                raise BadRequest("the picture must be a JPEG, PNG, GIF or WebP of at most 10 MiB")
            message = NewMessage("out", "image", None, session.agent.id, ref, picture)
            pieces = [AgentReply(id="", desk=self.desk.name, app_id=app_id, openid=openid, kind="image",
                                 image_base64=base64.b64encode(data).decode())]
        else:
            text = str(text_field(fields, "text", TEXT_LIMIT))
            message = NewMessage("out", "text", text, session.agent.id, ref)
            pieces = [AgentReply(id="", desk=self.desk.name, app_id=app_id, openid=openid, kind="text", text=piece)
                      for piece in split_text(text)]

        def jobs(message_id: int) -> tuple[str, list[NewJob]]:
            last = len(pieces) - 1
            return self.desk.reply_key(str(message_id)), self.desk.send_jobs(
                dataclasses.replace(piece, id=str(message_id), desk_ref=DeskRef(ids={"last": "yes"} if n == last else {}))
                for n, piece in enumerate(pieces))

        recorded = await self.inbox.record_reply(app_id, openid, message, self.clock(), len(pieces), jobs)
        if recorded is None:
            raise NotFound("no such conversation")
        message_id, fresh = recorded
        log.info("inbox reply queued" if fresh else "inbox reply seen before",
                 extra={"agent": session.agent.name, "openid": openid, "reply": message_id, "kind": message.kind})
        return Response.json({"id": str(message_id)}, 202 if fresh else 200)

    async def note(self, request: Request, session: Session, id: str) -> Response:
        app_id, openid = user_of(id)
        text = text_field(json_body(request), "text", TEXT_LIMIT)
        note_id = await self.inbox.record_note(app_id, openid, NewMessage("note", "text", text, session.agent.id),
                                               self.clock())
        if note_id is None:
            raise NotFound("no such conversation")
        return Response.json({"id": str(note_id)}, 201)

    async def _change(self, session: Session, id: str, **change: Any) -> Response:
        user = user_of(id)
        if not await self.inbox.update_conversation(*user, self.clock(), **change):
            raise NotFound("no such conversation")
        return Response.json({"conversation": await self._conversation(session, user)})

    async def assign(self, request: Request, session: Session, id: str) -> Response:
        wanted = json_body(request).get("agent")
        if wanted is None:
            return await self._change(session, id, assignee=None)
        agent = session.agent if wanted == "me" else await self._agent(agent_name(wanted))
        return await self._change(session, id, assignee=agent.id)

    async def close(self, request: Request, session: Session, id: str) -> Response:
        return await self._change(session, id, status="closed")

    async def reopen(self, request: Request, session: Session, id: str) -> Response:
        return await self._change(session, id, status="open")

    async def read(self, request: Request, session: Session, id: str) -> Response:
        user = user_of(id)
        if not await self.inbox.mark_read(session.agent.id, *user, self.clock()):
            raise NotFound("no such conversation")
        return Response.json({"conversation": await self._conversation(session, user)})

    async def media(self, request: Request, session: Session, id: str) -> Response:
        message_id = whole_number(id, "id")
        picture = await self.inbox.picture(message_id or 0)
        if picture is None:
            raise NotFound("no such picture")
        return Response(200, picture.data, {"content-type": picture.content_type, "x-content-type-options": "nosniff",
                                            "cache-control": "private, max-age=86400",
                                            "content-security-policy": "default-src 'none'; sandbox"})

    # -- agents -----------------------------------------------------------------------------------
    async def _agent(self, name: str) -> Agent:
        found = await self.inbox.credentials(name)
        if found is None or found[0].disabled:
            raise BadRequest(f"no enabled agent named {name!r}")
        return found[0]

    async def agents(self, request: Request, session: Session) -> Response:
        return Response.json({"agents": [agent.to_api() for agent in await self.inbox.agents()]})

    async def add_agent(self, request: Request, session: Session) -> Response:
        data = json_body(request)
        name, password, admin = agent_name(data.get("name")), data.get("password"), data.get("admin", False)
        if not isinstance(admin, bool):
            raise BadRequest("admin must be true or false")
        generated = password is None
        password = passwords.generate_password() if generated else password
        problem = passwords.password_problem(password)
        if problem:
            raise BadRequest(problem)
        agent = await self.inbox.add_agent(name, await _hash(str(password)), admin, self.clock())
        if agent is None:
            raise Conflict(f"an agent named {name!r} exists")
        log.info("inbox agent added", extra={"agent": name, "admin": admin, "by": session.agent.name})
        answer: dict[str, Any] = {"agent": agent.to_api()}
        if generated:
            answer["password"] = password  # shown once, to the admin who made it
        return Response.json(answer, 201)

    async def _set_disabled(self, session: Session, name: str, disabled: bool) -> Response:
        outcome = await self.inbox.set_disabled(name_of(name), disabled, self.clock())
        if outcome == "unknown":
            raise NotFound("no such agent")
        if outcome == "last_admin":
            raise Conflict("the last enabled admin cannot be disabled")
        log.info("inbox agent disabled" if disabled else "inbox agent enabled",
                 extra={"agent": name, "by": session.agent.name})
        found = await self.inbox.credentials(name_of(name))
        return Response.json({"agent": found[0].to_api() if found else None})

    async def disable_agent(self, request: Request, session: Session, name: str) -> Response:
        return await self._set_disabled(session, name, True)

    async def enable_agent(self, request: Request, session: Session, name: str) -> Response:
        return await self._set_disabled(session, name, False)

    # -- canned replies ---------------------------------------------------------------------------
    async def canned(self, request: Request, session: Session) -> Response:
        return Response.json({"canned": await self.inbox.canned()})

    async def _save_canned(self, request: Request, canned_id: int | None) -> Response:
        data = json_body(request)
        title, text = text_field(data, "title", 100), text_field(data, "text", TEXT_LIMIT)
        saved = await self.inbox.save_canned(canned_id, str(title), str(text), self.clock())
        if saved is None:
            raise NotFound("no such canned reply")
        return Response.json({"canned": {"id": str(saved), "title": title, "text": text}},
                             201 if canned_id is None else 200)

    async def add_canned(self, request: Request, session: Session) -> Response:
        return await self._save_canned(request, None)

    async def change_canned(self, request: Request, session: Session, id: str) -> Response:
        return await self._save_canned(request, whole_number(id, "id"))

    async def delete_canned(self, request: Request, session: Session, id: str) -> Response:
        if not await self.inbox.delete_canned(whole_number(id, "id") or 0, self.clock()):
            raise NotFound("no such canned reply")
        return Response.json({"status": "deleted"})

    # -- dead letters of every desk ---------------------------------------------------------------
    async def dead_letters(self, request: Request, session: Session) -> Response:
        found = await self.store.dead_letters(page_size(request, 100), whole_number(request.query.get("before"), "before"))
        return Response.json({"dead": [_dead_to_api(dead) for dead in found]})

    async def dead_letter(self, request: Request, session: Session, id: str) -> Response:
        found = await self.store.dead_letter(whole_number(id, "id") or 0)
        if found is None:
            raise NotFound("no such dead letter")
        dead, payload = found
        try:
            shown: Any = json.loads(payload)
        except ValueError:
            shown = payload
        return Response.json({"dead": {**_dead_to_api(dead), "payload": shown}})

    async def retry_dead(self, request: Request, session: Session, id: str) -> Response:
        if not await self.store.retry_dead(whole_number(id, "id") or 0, self.clock()):
            raise NotFound("no such dead letter")
        log.info("dead letter retried", extra={"job": id, "by": session.agent.name})
        return Response.json({"retried": 1})

    async def retry_all_dead(self, request: Request, session: Session) -> Response:
        count = await self.store.retry_dead(None, self.clock())
        log.info("dead letters retried", extra={"count": count, "by": session.agent.name})
        return Response.json({"retried": count})

    async def drop_dead(self, request: Request, session: Session, id: str) -> Response:
        if not await self.store.drop_dead(whole_number(id, "id") or 0):
            raise NotFound("no such dead letter")
        log.info("dead letter dropped", extra={"job": id, "by": session.agent.name})
        return Response.json({"status": "dropped"})
