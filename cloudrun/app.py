"""The Quart shell served by Hypercorn on WeChat Cloud Run: convert requests, run the outbox worker."""
from __future__ import annotations

import asyncio
import dataclasses
import sys

from quart import Quart, request
from quart import Response as QuartResponse

from core.config import Settings
from core.errors import ConfigError, RelayError, RequestTimeout, TooLarge
from core.relay import Relay
from core.store import check_store
from core.web import Request
from core.web import Response as CoreResponse

METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]
DRAIN_MAX = 64 << 20  # an oversize body up to this size is read to its end before the 413 answer


def create_app(settings: Settings | None = None) -> Quart:
    try:
        settings = settings or Settings.from_env()
        check_store(settings.database_url)
    except ConfigError as exc:
        sys.exit(f"configuration error: {exc}")
    app = Quart(__name__)
    app.config["MAX_CONTENT_LENGTH"] = None  # core enforces RELAY_MAX_BODY with a JSON answer
    state: dict[str, Relay] = {}

    @app.while_serving
    async def lifespan():  # type: ignore[no-untyped-def]
        relay = state["relay"] = await Relay.start(settings)
        worker = asyncio.create_task(relay.outbox.run())
        yield
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
        await relay.close()

    @app.route("/", defaults={"path": ""}, methods=METHODS)
    @app.route("/<path:path>", methods=METHODS)
    async def everything(path: str) -> QuartResponse:
        relay = state["relay"]
        head = Request(request.method, "/" + path, request.args.to_dict(),
                       {k.lower(): v for k, v in request.headers.items()},
                       remote=request.remote_addr or "", scheme=request.scheme, can_stream=True)
        refusal = relay.refusal_before_body(head, request.content_length or 0)
        try:
            body = await _read_body(0 if refusal else settings.max_body, settings.body_seconds)
        except TooLarge as exc:
            answer = refusal or relay.refuse(head.path, exc)
        except RelayError as exc:
            answer = relay.refuse(head.path, exc)
        else:
            answer = await relay.handle(dataclasses.replace(head, body=body))
        return to_quart_response(answer)

    return app


def to_quart_response(answer: CoreResponse) -> QuartResponse:
    """Core's answer as Quart's; a stream is passed through as it is produced (core bounds its lifetime)."""
    if answer.stream is None:
        return QuartResponse(answer.body, answer.status, dict(answer.headers))
    response = QuartResponse(answer.stream, answer.status, dict(answer.headers))
    response.timeout = None
    return response


async def _read_body(limit: int, seconds: float) -> bytes:
    """The body, within `seconds` (else 408) and `limit` bytes (else 413, once the rest is drained so
    that a client still sending reads the answer instead of a reset)."""
    declared = request.content_length or 0
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(seconds):
            if declared > limit:
                await _drain(declared)
                raise TooLarge(f"body over {limit} bytes")
            async for chunk in request.body:
                size += len(chunk)
                if size > limit:
                    await _drain(size)
                    raise TooLarge(f"body over {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeout(f"the body did not arrive within {seconds:g} s") from None
    return b"".join(chunks)


async def _drain(received: int) -> None:
    """Read and drop the rest of a body that is too large, up to DRAIN_MAX bytes in all."""
    if received > DRAIN_MAX:
        return
    async for chunk in request.body:
        received += len(chunk)
        if received > DRAIN_MAX:
            return


app = create_app()
