"""The Quart shell served by Hypercorn on WeChat Cloud Run: convert requests, run the outbox worker."""
from __future__ import annotations

import asyncio
import sys

from quart import Quart, Response as QuartResponse, request

from core.config import Settings
from core.errors import ConfigError, TooLarge
from core.relay import Relay
from core.web import Request, Response as CoreResponse

METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]


def create_app(settings: Settings | None = None) -> Quart:
    try:
        settings = settings or Settings.from_env()
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
        body, too_large = await _read_body(settings.max_body)
        core_request = Request(request.method, "/" + path, request.args.to_dict(),
                               {k.lower(): v for k, v in request.headers.items()}, body,
                               remote=request.remote_addr or "", scheme=request.scheme, can_stream=True)
        answer = relay.refuse(core_request.path, TooLarge(f"body over {settings.max_body} bytes")) \
            if too_large else await relay.handle(core_request)
        return to_quart_response(answer)

    return app


def to_quart_response(answer: CoreResponse) -> QuartResponse:
    """Core's answer as Quart's; a stream is passed through as it is produced (core bounds its lifetime)."""
    if answer.stream is None:
        return QuartResponse(answer.body, answer.status, dict(answer.headers))
    response = QuartResponse(answer.stream, answer.status, dict(answer.headers))
    response.timeout = None
    return response


async def _read_body(limit: int) -> tuple[bytes, bool]:
    """The body, read no further than `limit` bytes; True when it was longer."""
    if (request.content_length or 0) > limit:
        return b"", True
    chunks, size = [], 0
    async for chunk in request.body:
        size += len(chunk)
        if size > limit:
            return b"", True
        chunks.append(chunk)
    return b"".join(chunks), False


app = create_app()
