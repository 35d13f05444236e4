"""What changed, for the page: read from the store's event table (so a change made by another replica
arrives too), as a Server-Sent Events stream or, where the runtime cannot hold a stream (a cloud
function), as JSON polls."""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from core import logs
from core.desks.inbox.store import InboxStore
from core.errors import BadRequest
from core.web import Request, Response

log = logs.get("inbox")
POLL_SECONDS = 1.0  # how often a stream looks at the store
HEARTBEAT_SECONDS = 15.0  # a comment line keeps proxies from closing a quiet stream
STREAM_SECONDS = 300.0  # then the stream ends and EventSource reconnects with Last-Event-ID
MAX_WAIT = 25  # seconds a JSON poll may wait for a change
BATCH = 200
RETRY_MS = 2000
STREAM_HEADERS = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache",
                  "x-accel-buffering": "no"}


def _number(value: str | None, name: str, default: int | None) -> int | None:
    if value is None or value == "":
        return default
    if not value.isascii() or not value.isdigit():
        raise BadRequest(f"{name} must be a whole number")
    return int(value)


class Events:
    def __init__(self, store: InboxStore) -> None:
        self.store = store

    async def _start(self, after: int | None) -> tuple[int, list[dict[str, Any]]]:
        """Where to read from, and a `reset` event when `after` is older than the events kept (or from
        another database): the page then reloads what it shows."""
        oldest, newest = await self.store.event_bounds()
        if after is None:
            return newest, []
        if after > newest or (after < newest and (oldest == 0 or after < oldest - 1)):
            return newest, [{"id": newest, "type": "reset"}]
        return after, []

    async def answer(self, request: Request, still_allowed: Callable[[], Awaitable[bool]]) -> Response:
        """A JSON poll when the query has `wait` or the shell cannot stream; otherwise a stream."""
        last_event = request.header("last-event-id")
        after = _number(request.query.get("after") or last_event, "after (or Last-Event-ID)", None)
        if "wait" in request.query or not request.can_stream:
            wait = min(MAX_WAIT, _number(request.query.get("wait"), "wait", 0) or 0)
            return Response.json(await self._poll(after, wait), headers={"cache-control": "no-store"})
        return Response(200, b"", STREAM_HEADERS, stream=self._stream(after, still_allowed))

    async def _poll(self, after: int | None, wait: float) -> dict[str, Any]:
        last, events = await self._start(after)
        deadline = time.monotonic() + wait
        while not events:
            events = await self.store.events_after(last, BATCH)
            if events or time.monotonic() >= deadline:
                break
            await asyncio.sleep(POLL_SECONDS)
        return {"events": events, "last_id": events[-1]["id"] if events else last}

    async def _stream(self, after: int | None, still_allowed: Callable[[], Awaitable[bool]]) -> AsyncIterator[bytes]:
        try:
            async for piece in self._pieces(after, still_allowed):
                yield piece
        except Exception as exc:  # the store went away: end the stream, the page reconnects
            log.error("event stream ended early", extra={"error": logs.describe(exc)})

    async def _pieces(self, after: int | None, still_allowed: Callable[[], Awaitable[bool]]) -> AsyncIterator[bytes]:
        last, events = await self._start(after)
        yield f"retry: {RETRY_MS}\n\n".encode()
        deadline = time.monotonic() + STREAM_SECONDS
        beat = time.monotonic()
        while time.monotonic() < deadline:
            for event in events:
                last = event["id"]
                yield f"id: {last}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n".encode()
            if events:
                beat = time.monotonic()
            elif time.monotonic() - beat >= HEARTBEAT_SECONDS:
                beat = time.monotonic()
                yield b": heartbeat\n\n"
            if len(events) < BATCH:
                await asyncio.sleep(POLL_SECONDS)
            if not await still_allowed():  # logged out or disabled meanwhile: nothing more
                return
            events = await self.store.events_after(last, BATCH)
