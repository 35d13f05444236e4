"""Posts to the relay's channel spaced to Slack's rate, in this process: chat.postMessage allows about one
message a second per channel with short bursts, and meeting that limit costs less than hitting it (a 429
is a wasted call, and a job put back waits longer each time)."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from core.errors import TransientDeliveryError

BURST = 3  # posts that may go at once, as Slack allows short bursts
MAX_WAIT = 3.0  # a post waits this long at most for its turn; later turns go back to the outbox


class RateLimited(TransientDeliveryError):
    """Slack refused the call for its rate limit (HTTP 429 or `ratelimited`), or the pace put it back:
    nothing was done."""


class Pace:
    """A token bucket kept as the time its next post would conform (GCRA): each post reserves its turn,
    waits for it when it is near, or is refused with the time to it, so that a worker is not held long."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.interval, self.clock, self.sleep = 60.0 / per_minute, clock, sleep
        self.tolerance = (BURST - 1) * self.interval
        self._due = 0.0  # when the next post conforms at the steady rate

    async def turn(self) -> None:
        """Wait for this post's turn; RateLimited (with its retry_after) when it is more than MAX_WAIT away."""
        now = self.clock()
        due = max(self._due, now)
        wait = max(0.0, due - self.tolerance - now)
        if wait > MAX_WAIT:
            raise RateLimited("the channel's posting rate is used up for now", retry_after=wait)
        self._due = due + self.interval
        if wait:
            await self.sleep(wait)

    def hold(self, seconds: float) -> None:
        """Slack said to wait (429, Retry-After): no post goes before then."""
        self._due = max(self._due, self.clock() + seconds + self.tolerance)
