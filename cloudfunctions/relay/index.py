"""The cloud-function shell (CloudBase / SCF, Python 3.11): `index.main_handler(event, context)`.

One handler takes three kinds of event and calls the same core as the Cloud Run service:
- a WeChat push (the message JSON itself): stored, then delivered while time allows; returns `success`;
- an HTTP access event (`httpMethod`): any route of the service; returns an integrated response;
- a timer event (`Type: Timer`): drains the outbox, since a function has no background worker.
A module-level event loop and a lazily built Relay survive warm invocations."""
from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import time
from typing import Any

from core import logs
from core.config import Settings
from core.errors import ConfigError, RelayError
from core.relay import Relay
from core.store import check_store
from core.web import Request, Response
from core.wechat.push import Identity, is_probe

MARGIN = 0.5  # seconds kept back from the function's time limit
ANSWER_WITHIN = 3.0  # WeChat and desks wait ~5 s for an answer: deliver for at most this long first
ANSWER_MARGIN = 1.0  # a desk that says how long it waits (Slack: 3 s) gets its answer this much earlier
DEFAULT_TIME_LIMIT_MS = 3000

_loop = asyncio.new_event_loop()
_relay: Relay | None = None
log = logs.get("function")


def main_handler(event: dict[str, Any], context: dict[str, Any] | None) -> Any:
    started = time.monotonic()
    return _loop.run_until_complete(_dispatch(event or {}, context or {}, started))


async def _get_relay() -> Relay:
    global _relay
    if _relay is None:
        settings = Settings.from_env(store_explicit=True)  # a function's local files do not last
        check_store(settings.database_url)
        if not settings.wechat.secret:
            raise ConfigError("WX_APPID and WX_SECRET are required in a cloud function: its sends use a stable_token")
        # WeChat pushes reach a function as push events; over HTTP access only signed
        # developer-server pushes are believed, since that address is public.
        _relay = await Relay.start(dataclasses.replace(
            settings, wechat=dataclasses.replace(settings.wechat, push_trust="signed")))
    return _relay


async def _dispatch(event: object, context: dict[str, Any], started: float) -> Any:
    if not isinstance(event, dict):
        log.warning("event refused", extra={"error": "an event must be a JSON object"})
        return {"error": "an event must be a JSON object"}
    try:
        relay = await _get_relay()
    except ConfigError as exc:
        log.error("configuration error", extra={"error": str(exc)})
        return {"error": f"configuration error: {exc}"}
    limit = float(context.get("time_limit_in_ms") or DEFAULT_TIME_LIMIT_MS) / 1000

    def budget(cap: float = ANSWER_WITHIN) -> float:
        return max(0.0, min(cap, limit - MARGIN - (time.monotonic() - started)))

    if "httpMethod" in event:
        answer = await _http(relay, event)
        waits = relay.caller_waits(str(event.get("path") or "/"))
        cap = ANSWER_WITHIN if waits is None else waits - ANSWER_MARGIN - (time.monotonic() - started)
        await relay.outbox.drain(budget(min(ANSWER_WITHIN, cap)))
        return answer
    if event.get("Type") == "Timer":
        return {"delivered": await relay.outbox.drain(budget(limit))}
    if is_probe(b"", event):
        return "success"
    try:
        await relay.accept_push(event, _identity(context))
    except RelayError as exc:
        return json.loads(relay.refuse("push event", exc).body)
    await relay.outbox.drain(budget())
    return "success"


async def _http(relay: Relay, event: dict[str, Any]) -> dict[str, Any]:
    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    request = Request(
        method=str(event.get("httpMethod", "GET")).upper(),
        path=event.get("path") or "/",
        query={k: str(v) for k, v in (event.get("queryStringParameters") or {}).items()},
        headers={k.lower(): str(v) for k, v in (event.get("headers") or {}).items()},
        body=raw,
        remote=str((event.get("requestContext") or {}).get("sourceIp") or ""),
    )
    try:
        response = await relay.handle(request)
    except Exception:  # the store is down, say: an error answer, so the caller retries
        log.exception("request failed", extra={"path": request.path})
        response = Response.json({"error": "internal error"}, 500)
    return to_integrated_response(response)


def to_integrated_response(response: Response) -> dict[str, Any]:
    """Core's answer as an integrated response: text as it is, anything else (a picture) in base64."""
    content_type = response.headers.get("content-type", "")
    if content_type.startswith(("text/", "application/json", "application/javascript")):
        return {"isBase64Encoded": False, "statusCode": response.status, "headers": dict(response.headers),
                "body": response.body.decode()}
    return {"isBase64Encoded": True, "statusCode": response.status, "headers": dict(response.headers),
            "body": base64.b64encode(response.body).decode()}


def _identity(context: dict[str, Any]) -> Identity:
    """The WeChat context the runtime passes: `environment` (JSON) on new runtimes, `environ` (k=v;…) on old."""
    env: dict[str, str] = {}
    raw = context.get("environment")
    if isinstance(raw, str) and raw.startswith("{"):
        env = json.loads(raw)
    elif isinstance(context.get("environ"), str):
        env = dict(p.split("=", 1) for p in context["environ"].split(";") if "=" in p)
    return Identity(app_id=env.get("WX_APPID") or None, openid=env.get("WX_OPENID") or None)
