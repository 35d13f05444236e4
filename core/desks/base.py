"""The interface every desk adapter implements, and what a desk callback yields."""
from __future__ import annotations

import abc
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

import httpx

from core.env import EnvReader
from core.errors import NotFound, UnknownRecipient
from core.models import AgentReply, Conversation, JobKind, NewJob, UserMessage
from core.store import SqlStore
from core.web import Request, Response

Thread = dict[str, Any]  # desk-side ids kept with a conversation, as JSON; only the desk reads them


@dataclass(frozen=True)
class DeskSettings:
    """A desk's own settings: a frozen dataclass that reads its variables and names the required ones.

    `required` maps attribute to variable; `core.config` refuses start-up when a desk in use lacks any
    of them, naming them all in one line."""

    required: ClassVar[Mapping[str, str]] = {}

    @classmethod
    def from_env(cls, env: EnvReader) -> DeskSettings:
        """Read and check the desk's variables; raise ConfigError naming a bad one."""
        return cls()

    def missing(self) -> list[str]:
        """The required variables that are not set."""
        return [variable for attr, variable in self.required.items() if not getattr(self, attr)]


S = TypeVar("S", bound=DeskSettings)


@dataclass(frozen=True)
class Callback:
    """A verified desk callback: the answer the desk expects, and the agent replies it carried."""

    response: Response
    replies: list[AgentReply] = field(default_factory=list)
    duplicate_response: Response | None = None  # the answer when every reply was seen before
    # Set when the desk's signature does not cover the whole request: the relay lets it serve one request.
    replay_key: str | None = None


@dataclass(frozen=True)
class Delivered:
    """What handing a user message to a desk produced: desk-side ids to keep with the conversation,
    and messages the desk sends the user at once (e.g. a hand-over link)."""

    thread: Thread | None = None
    replies: tuple[AgentReply, ...] = ()


class Desk(abc.ABC, Generic[S]):
    name: ClassVar[str]
    settings_type: ClassVar[type[DeskSettings]] = DeskSettings
    callback_paths: ClassVar[tuple[str, ...]] = ()  # POST routes whose requests go to parse_callback
    # A desk with pages and an API of its own (the inbox) gets every request under this path, any
    # method, through `serve`; it authenticates them itself.
    route_prefix: ClassVar[str | None] = None
    # Quirks core reads instead of branching on the desk's name.
    needs_known_recipient: ClassVar[bool] = True  # replies must name a user core knows (else 404)
    caller_waits: ClassVar[float | None] = None  # seconds the desk waits for a callback's answer, if it says

    def __init__(self, settings: S, http: httpx.AsyncClient, store: SqlStore,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings, self.http, self.store, self.clock = settings, http, store, clock

    async def open(self) -> None:
        """Start-up work of the desk's own, once the relay has started (the store is open)."""

    async def close(self) -> None:
        """Release what the desk opened itself."""

    async def housekeeping(self, now: float) -> None:
        """Periodic upkeep (pruning what the desk keeps); the outbox calls it about once an hour."""

    async def serve(self, request: Request) -> Response:
        """Answer a request under `route_prefix` (raise a RelayError to refuse it)."""
        raise NotFound("no such route")

    @abc.abstractmethod
    def parse_callback(self, request: Request) -> Callback:
        """Verify (raise Unauthorized), parse (raise BadRequest); no I/O."""

    @abc.abstractmethod
    async def deliver(self, message: UserMessage, conversation: Conversation) -> Delivered:
        """Hand one user message to the desk. Raise Transient/PermanentDeliveryError; never retry
        here: the outbox owns retries, so a retried call must not make a second desk-side copy."""

    def reply_lane(self, reply: AgentReply) -> str:
        """The outbox lane of a reply: replies in one lane are sent in arrival order."""
        return f"out:{reply.conversation_id}"

    def reply_key(self, reply_id: str) -> str:
        """The dedupe key of a reply: the desk's retries of it are duplicates."""
        return f"reply:{self.name}:{reply_id}"

    def send_jobs(self, pieces: Iterable[AgentReply]) -> list[NewJob]:
        """The outbox jobs that send a reply's pieces, in order, each in its lane."""
        return [NewJob(self.reply_lane(piece), JobKind.SEND, piece.to_json()) for piece in pieces]

    async def resolve_recipient(self, reply: AgentReply) -> AgentReply | None:
        """The reply with its user filled in (desks that look the user up); raise UnknownRecipient. None
        when nothing is to be sent: the reply was for the desk itself (say, closing a thread) and the
        desk has acted on it, or it is chatter the desk cannot tell apart before looking it up."""
        if reply.app_id and reply.openid:
            return reply
        raise UnknownRecipient(f"{self.name} reply {reply.id} names no user")

    async def sent(self, reply: AgentReply) -> None:
        """WeChat accepted the reply (or one piece of it); desks that show delivery state record it."""

    @abc.abstractmethod
    async def undeliverable(self, reply: AgentReply, reason: str, errcode: int | None, detail: str,
                            conversation: Conversation | None) -> None:
        """Tell the agent that WeChat refused the reply, where the desk can show it."""
