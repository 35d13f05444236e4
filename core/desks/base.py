"""The interface every desk adapter implements, and what a desk callback yields."""
from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import httpx

from core.config import Settings
from core.errors import UnknownRecipient
from core.models import AgentReply, Conversation, UserMessage
from core.web import Request, Response

Thread = dict[str, Any]


@dataclass(frozen=True)
class Callback:
    """A verified desk callback: the answer the desk expects, and the agent replies it carried."""

    response: Response
    replies: list[AgentReply] = field(default_factory=list)
    duplicate_response: Response | None = None  # the answer when every reply was seen before


class Desk(abc.ABC):
    name: ClassVar[str]
    callback_paths: ClassVar[tuple[str, ...]] = ()
    # Quirks core reads instead of branching on the desk's name.
    needs_known_recipient: ClassVar[bool] = True  # replies must name a user core knows (else 404)

    def __init__(self, settings: Settings, http: httpx.AsyncClient, clock: Callable[[], float] = time.time) -> None:
        self.settings, self.http, self.clock = settings, http, clock

    @abc.abstractmethod
    def parse_callback(self, request: Request) -> Callback:
        """Verify (raise Unauthorized), parse (raise BadRequest); no I/O."""

    @abc.abstractmethod
    async def deliver(self, message: UserMessage, conversation: Conversation) -> Thread | None:
        """Hand one user message to the desk; return desk-side ids to store with the conversation.
        Raise Transient/PermanentDeliveryError; never retry here: the outbox owns retries."""

    async def resolve_recipient(self, reply: AgentReply) -> tuple[str, str]:
        """(app_id, openid) for a reply that does not name its user (desks that look it up)."""
        raise UnknownRecipient(f"{self.name} reply {reply.id} names no user")

    @abc.abstractmethod
    async def undeliverable(self, reply: AgentReply, reason: str, errcode: int | None, detail: str) -> None:
        """Tell the agent that WeChat refused the reply, where the desk can show it."""
