"""Who is asking: logins (throttled per name and per address, counted in the store so every replica
sees them), server-side sessions in an HttpOnly, SameSite=Strict cookie, and the CSRF token that
every state-changing request must carry."""
from __future__ import annotations

import asyncio
import hmac
import math
from collections.abc import Callable
from dataclasses import dataclass

from core import logs
from core.desks.inbox import passwords
from core.desks.inbox.store import Agent, InboxStore
from core.errors import Forbidden, TooManyRequests, Unauthorized
from core.web import Request

log = logs.get("inbox")
COOKIE = "inbox_session"
COOKIE_PATH = "/inbox"
SESSION_SECONDS = 12 * 3600
THROTTLE_WINDOW = 15 * 60
NAME_LIMIT, ADDRESS_LIMIT = 5, 20  # failed logins per window
SETUP_SECONDS = 3600


@dataclass(frozen=True)
class Session:
    agent: Agent
    token: str

    @property
    def csrf(self) -> str:
        return passwords.csrf_token(self.token)


def client_address(request: Request) -> str:
    """The address a proxy in front of us saw (the last `x-forwarded-for` hop), else the peer's."""
    forwarded = [hop.strip() for hop in (request.header("x-forwarded-for") or "").split(",") if hop.strip()]
    return forwarded[-1] if forwarded else request.remote or "unknown"


def is_https(request: Request) -> bool:
    proto = (request.header("x-forwarded-proto") or request.scheme).split(",")[0].strip().lower()
    return proto == "https"


def session_cookie(request: Request, token: str, max_age: int) -> str:
    secure = "; Secure" if is_https(request) else ""
    return f"{COOKIE}={token}; Path={COOKIE_PATH}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"


def cookie_token(request: Request) -> str | None:
    for part in (request.header("cookie") or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE and value:
            return value
    return None


class Auth:
    def __init__(self, store: InboxStore, clock: Callable[[], float]) -> None:
        self.store, self.clock = store, clock

    async def login(self, request: Request, name: str, password: str) -> Session:
        """A new session; 429 while the name or the address is throttled (checked before the password,
        so that a throttled guess learns nothing), 401 for a wrong name or password alike."""
        keys = [f"name:{name}", f"address:{client_address(request)}"]
        await self._throttle(keys)
        found = await self.store.credentials(name)
        stored = found[1] if found else passwords.dummy_hash()
        matches = await asyncio.to_thread(passwords.verify_password, password, stored)
        if not (found and matches and not found[0].disabled):
            await self.store.add_failure(keys, self.clock())
            log.warning("inbox login refused", extra={"address": keys[1][8:]})
            raise Unauthorized("wrong name or password")
        await self.store.clear_failures(keys[0])
        return await self.start_session(found[0])

    async def start_session(self, agent: Agent) -> Session:
        token, now = passwords.new_token(), self.clock()
        await self.store.add_session(passwords.digest(token), agent.id, now, now + SESSION_SECONDS)
        log.info("inbox agent logged in", extra={"agent": agent.name})
        return Session(agent, token)

    async def _throttle(self, keys: list[str]) -> None:
        now = self.clock()
        for key, limit in zip(keys, (NAME_LIMIT, ADDRESS_LIMIT), strict=True):
            count, oldest = await self.store.failures(key, now - THROTTLE_WINDOW)
            if count >= limit and oldest is not None:
                wait = max(1, math.ceil(oldest + THROTTLE_WINDOW - now))
                log.warning("inbox login throttled", extra={"key": key.split(":", 1)[0], "retry_after": wait})
                raise TooManyRequests("too many failed logins: try again later", {"retry-after": str(wait)})

    async def session(self, request: Request) -> Session:
        """The caller's session: 401 without a cookie naming an unexpired session of an enabled agent."""
        token = cookie_token(request)
        agent = await self.store.session_agent(passwords.digest(token), self.clock()) if token else None
        if agent is None or token is None:
            raise Unauthorized("log in first")
        return Session(agent, token)

    @staticmethod
    def check_csrf(request: Request, session: Session) -> None:
        sent = request.header("x-csrf-token") or ""
        if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
            raise Forbidden("missing or wrong X-CSRF-Token")

    async def setup_link(self) -> str | None:
        """A one-time set-up token while no agent exists (valid SETUP_SECONDS), else None."""
        if await self.store.agent_count():
            return None
        token = passwords.new_token()
        await self.store.add_setup_token(passwords.digest(token), self.clock() + SETUP_SECONDS)
        return token
