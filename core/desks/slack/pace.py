"""Posts to the relay's channel spaced to Slack's rate, in this process: chat.postMessage allows about one
message a second per channel with short bursts, and meeting that limit costs less than hitting it (a 429
is a wasted call, and a job put back again and again waits longer each time)."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from core.errors import TransientDeliveryError

BURST = 3  # posts that may go at once, as Slack allows short bursts
MAX_WAIT = 3.0  # a post waits this long at most for its turn; a later turn is kept for it, and it is put back
FORGET_AFTER = 600.0  # a kept turn nobody came back for (the job died) is dropped after this long


class RateLimited(TransientDeliveryError):
    """Slack refused the call for its rate limit (HTTP 429 or `ratelimited`), or the post's turn is later:
    nothing was done."""


class Pace:
    """A token bucket kept as the time the next post conforms (GCRA). Each post takes the next turn and
    waits for it when it is near; a post whose turn is further off goes back to the outbox with the time
    to it, and its turn is kept under its key, so it is put back once, not again and again."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.interval, self.clock, self.sleep = 60.0 / per_minute, clock, sleep
        self.tolerance = (BURST - 1) * self.interval
        self._due = 0.0  # when the next post conforms at the steady rate
        self._kept: dict[str, float] = {}  # post key -> the turn kept for it

    async def turn(self, key: str) -> None:
        """Wait for the post's turn; RateLimited (with its retry_after) when it is more than MAX_WAIT away."""
        now = self.clock()
        at = self._kept.pop(key, None)
        if at is None:
            due = max(self._due, now)
            at, self._due = max(now, due - self.tolerance), due + self.interval
        if at - now > MAX_WAIT:
            self._kept = {k: t for k, t in self._kept.items() if t > now - FORGET_AFTER}
            self._kept[key] = at
            raise RateLimited("the channel's posting rate is used up until this post's turn", retry_after=at - now)
        if at > now:
            await self.sleep(at - now)

    def hold(self, seconds: float) -> None:
        """Slack said to wait (429, Retry-After): no new turn before then."""
        self._due = max(self._due, self.clock() + seconds + self.tolerance)
