"""A fake in-house system behind the webhook desk: verifies the relay's signature, records events,
and signs replies exactly as the relay expects them."""
from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import httpx

from tests.fakes.server import Answer, FakeServer, Recorded

HOOK = "/hook"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Written apart from core.signing, from the documented scheme, so that the two check each other."""
    return "sha256=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


class FakeWebhookDesk(FakeServer):
    secret = "webhook-secret"

    def answer(self, recorded: Recorded) -> Answer:
        ts = recorded.headers.get("x-relay-timestamp", "")
        expected = sign(self.secret, ts, recorded.body)
        if recorded.headers.get("x-relay-signature") != expected or abs(time.time() - int(ts or 0)) > 300:
            return 401, {"error": "bad signature"}
        return 200, {"ok": True}

    def events(self, event: str | None = None) -> list[dict[str, Any]]:
        found = [r.json() for r in self.received(HOOK)]
        return [e for e in found if event is None or e["event"] == event]


def post_reply(relay: Any, reply: dict[str, Any] | bytes, secret: str = FakeWebhookDesk.secret,
               timestamp: int | str | None = None, signature: str | None = None) -> httpx.Response:
    """Sign and POST a reply to /webhook/reply of `relay` (anything with the Service.post signature)."""
    body = reply if isinstance(reply, bytes) else json.dumps(reply, ensure_ascii=False).encode()
    ts = str(int(time.time())) if timestamp is None else str(timestamp)
    headers = {"content-type": "application/json", "x-relay-timestamp": ts,
               "x-relay-signature": signature or sign(secret, ts, body)}
    return relay.post("/webhook/reply", body, headers)
