"""Fake WeChat open API and fake webhook desk for the load bench, in one asyncio process.

Run: `python bench/fakes.py --relay-port P --secret S`; prints one JSON line
`{"wechat": <port>, "desk": <port>}` and serves until SIGTERM.

- WeChat port: `POST /cgi-bin/message/custom/send` is recorded and answered `{"errcode":0}`;
  `/cgi-bin/token` and `/cgi-bin/stable_token` hand out a dummy token.
- Desk port: `POST /hook` checks the signature, answers 200 at once, and queues a signed
  `POST /webhook/reply` (`echo:<text>`) to the relay; replies of one conversation are posted
  one after another, in the order the events arrived.
- Either port: `GET /_stats` (counters) and `GET /_dump` (every event and send, with
  `time.monotonic()` arrival times, comparable across processes on Linux).
"""
from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import hmac
import json
import signal
import sys
import time
from collections import Counter
from typing import Any

from rawhttp import Conn, Headers, build_request, build_response, read_request

OK = b'{"errcode":0,"errmsg":"ok"}'
TOKEN = b'{"access_token":"bench-token","expires_in":7200}'
RETRYABLE = {408, 429}


class Fakes:
    """State and handlers of both fakes."""

    def __init__(self, relay_port: int, secret: str, pool: int, timeout: float) -> None:
        self.secret, self.timeout = secret.encode(), timeout
        self.sends: list[tuple[str, str, float]] = []
        self.send_texts: set[str] = set()
        self.events: list[tuple[str, str, float]] = []
        self.event_ids: Counter[str] = Counter()
        self.counts: Counter[str] = Counter()
        self.paths: Counter[str] = Counter()
        self.queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self.pending = 0
        self.in_flight: dict[int, float] = {}  # id(request) -> monotonic start
        self.tasks: list[asyncio.Task[None]] = []
        self.pool: asyncio.Queue[Conn] = asyncio.Queue()
        for _ in range(pool):
            self.pool.put_nowait(Conn("127.0.0.1", relay_port))

    def sign(self, ts: str, body: bytes) -> str:
        return "sha256=" + hmac.new(self.secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()

    def stats(self) -> dict[str, Any]:
        last = self.sends[-1][2] if self.sends else None
        return {"sends": len(self.sends), "unique_sends": len(self.send_texts),
                "events": len(self.events), "redelivered_events": sum(n - 1 for n in self.event_ids.values()),
                "pending_replies": self.pending, "last_send": last,
                "replies_in_flight": len(self.in_flight),
                "oldest_reply_s": round(time.monotonic() - min(self.in_flight.values()), 3) if self.in_flight else 0,
                "counts": dict(self.counts), "other_paths": dict(self.paths)}

    def wechat(self, method: str, path: str, body: bytes) -> bytes:
        if path == "/cgi-bin/message/custom/send":
            msg = json.loads(body)
            content = (msg.get("text") or {}).get("content", "")
            self.sends.append((msg.get("touser", ""), content, time.monotonic()))
            self.send_texts.add(content)
            return build_response(200, OK)
        if path in ("/cgi-bin/token", "/cgi-bin/stable_token"):
            return build_response(200, TOKEN)
        self.paths[f"wechat {method} {path}"] += 1
        return build_response(200, OK)

    def desk(self, method: str, path: str, headers: Headers, body: bytes) -> bytes:
        if (method, path) != ("POST", "/hook"):
            self.paths[f"desk {method} {path}"] += 1
            return build_response(404, b"{}")
        ts = headers.get("x-relay-timestamp", "0")
        good = hmac.compare_digest(self.sign(ts, body), headers.get("x-relay-signature", ""))
        if not good or abs(time.time() - int(ts)) > 300:
            self.counts["desk_bad_signature"] += 1
            return build_response(401, b"{}")
        ev = json.loads(body)
        self.counts[f"event_{ev.get('event')}"] += 1
        if ev.get("event") == "message":
            self.events.append((ev.get("openid", ""), ev.get("text", ""), time.monotonic()))
            self.event_ids[ev["id"]] += 1
            self.enqueue(ev)
        return build_response(200, b"{}")

    def enqueue(self, ev: dict[str, Any]) -> None:
        conv = ev["conversation_id"]
        q = self.queues.get(conv)
        if q is None:
            q = self.queues[conv] = asyncio.Queue()
            self.tasks.append(asyncio.get_running_loop().create_task(self.conversation(q)))
        self.pending += 1
        q.put_nowait(ev)

    async def conversation(self, q: asyncio.Queue[dict[str, Any]]) -> None:
        """Post the replies of one conversation in order, retrying 408/429/5xx/IO errors."""
        while True:
            ev = await q.get()
            body = json.dumps({"id": f"r-{ev['id']}", "conversation_id": ev["conversation_id"],
                               "type": "text", "text": f"echo:{ev.get('text', '')}"},
                              ensure_ascii=False).encode()
            await self.post_reply(body)
            self.pending -= 1

    async def post_reply(self, body: bytes) -> None:
        """POST one reply; IO errors, timeouts, 408, 429 and 5xx are retried with backoff."""
        for attempt in range(10):
            if attempt:
                self.counts["reply_retries"] += 1
                await asyncio.sleep(min(2.0, 0.05 * 2 ** attempt))
            ts = str(int(time.time()))
            raw = build_request("POST", "/webhook/reply", {
                "Content-Type": "application/json; charset=utf-8",
                "X-Relay-Timestamp": ts, "X-Relay-Signature": self.sign(ts, body)}, body)
            conn = await self.pool.get()
            self.in_flight[id(raw)] = time.monotonic()
            try:
                status, _ = await asyncio.wait_for(conn.request(raw), self.timeout)
            except TimeoutError:
                self.counts["reply_timeout"] += 1
                continue
            except (OSError, asyncio.IncompleteReadError, ValueError):
                self.counts["reply_io_error"] += 1
                continue
            finally:
                del self.in_flight[id(raw)]
                self.pool.put_nowait(conn)
            self.counts[f"reply_{status}"] += 1
            if status < 300 or (status not in RETRYABLE and status < 500):
                return
        self.counts["reply_gave_up"] += 1

    async def serve(self, role: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (req := await read_request(reader)) is not None:
                method, target, headers, body = req
                path = target.split("?", 1)[0]
                if path == "/_stats":
                    out = build_response(200, json.dumps(self.stats()).encode())
                elif path == "/_dump":
                    dump = {"sends": self.sends, "events": self.events}
                    out = build_response(200, json.dumps(dump, ensure_ascii=False).encode())
                else:
                    try:
                        out = (self.wechat(method, path, body) if role == "wechat"
                               else self.desk(method, path, headers, body))
                    except (ValueError, KeyError, TypeError):
                        self.counts[f"{role}_bad_request"] += 1
                        out = build_response(400, b"{}")
                writer.write(out)
                if headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # peer gone, or shutting down
        finally:
            writer.close()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--relay-port", type=int, required=True)
    ap.add_argument("--secret", required=True)
    ap.add_argument("--pool", type=int, default=16, help="keep-alive connections for replies")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds before a reply POST is retried")
    args = ap.parse_args()
    fakes = Fakes(args.relay_port, args.secret, args.pool, args.timeout)
    servers = {role: await asyncio.start_server(functools.partial(fakes.serve, role), "127.0.0.1", 0,
                                                limit=1 << 20) for role in ("wechat", "desk")}
    ports = {role: s.sockets[0].getsockname()[1] for role, s in servers.items()}
    print(json.dumps(ports), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for s in servers.values():
        s.close()
    for t in fakes.tasks:
        t.cancel()
    await asyncio.gather(*fakes.tasks, return_exceptions=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
