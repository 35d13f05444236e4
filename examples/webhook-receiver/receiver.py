"""A reference receiver for the relay's webhook desk, standard library only (see README.md next to it).

    WEBHOOK_SECRET=... python receiver.py --relay https://relay.example.com --port 9000 --db receiver.db

It takes the relay's events on `POST /events`: checks the signature (HMAC-SHA256 over timestamp + "." +
raw body, timestamp within 5 minutes), drops an event id it has already stored (delivery is at least
once), keeps every event in SQLite and answers each text message with a signed reply to the relay's
`/webhook/reply`. Replies are queued in the same transaction as the event and sent by one thread that
retries them with backoff, in order per conversation.
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import logging
import os
import random
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

WINDOW_SECONDS = 300  # a timestamp further than this from our clock is refused
MAX_BODY = 1024 * 1024
RETRYABLE = frozenset({408, 425, 429})  # and every 5xx; 401/403 are retried too (a secret that differs)
GIVE_UP_AFTER = 48 * 3600  # the relay cannot deliver a reply after the user's 48-hour window anyway
MAX_BACKOFF = 300.0

log = logging.getLogger("receiver")

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY,              -- the relay's event id: the dedupe key
    event TEXT NOT NULL,              -- message, session or undeliverable
    type TEXT,                        -- for messages: text, image, miniprogrampage or other
    conversation_id TEXT,
    text TEXT,
    body TEXT NOT NULL,               -- the whole event as received
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS replies (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,          -- our reply id: the relay drops a repeated one
    conversation_id TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',   -- pending, sent or failed
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL,
    created_at REAL NOT NULL,
    last_error TEXT
);
"""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp: str, signature: str, body: bytes, now: float) -> bool:
    """True when `signature` is ours over the raw `body` and `timestamp` is within the window."""
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return False
    if abs(now - int(timestamp)) > WINDOW_SECONDS:
        return False
    return hmac.compare_digest(signature.encode(), sign(secret, timestamp, body).encode())


def answer_for(event: dict[str, Any], canned: str | None) -> dict[str, Any] | None:
    """The reply to an event: each text message gets one (an echo, or `canned`); nothing else does.
    The reply id is derived from the event id, so a redelivered event can never make a second reply."""
    if event.get("event") != "message" or event.get("type") != "text" or not event.get("conversation_id"):
        return None
    reply_id = "echo-" + hashlib.sha256(str(event["id"]).encode()).hexdigest()[:40]
    text = canned or f"收到：{event.get('text', '')}"
    return {"id": reply_id, "conversation_id": event["conversation_id"], "type": "text", "text": text}


class Pending(NamedTuple):
    seq: int
    id: str
    body: str
    attempts: int
    next_at: float
    created_at: float


class Store:
    """One SQLite connection shared by the HTTP threads and the sender, behind a lock."""

    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(SCHEMA)

    def accept(self, event: dict[str, Any], body: bytes, reply: dict[str, Any] | None, now: float) -> bool:
        """Store the event and its reply in one transaction; False when the event id was stored before."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(
                    "INSERT INTO events (id, event, type, conversation_id, text, body, received_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (event["id"], event["event"], event.get("type"), event.get("conversation_id"), event.get("text"),
                     body.decode(), now))
                if reply is not None:
                    self._db.execute(
                        "INSERT INTO replies (id, conversation_id, body, next_at, created_at) VALUES (?, ?, ?, ?, ?)",
                        (reply["id"], reply["conversation_id"], json.dumps(reply, ensure_ascii=False), now, now))
                self._db.execute("COMMIT")
                return True
            except sqlite3.IntegrityError:
                self._db.execute("ROLLBACK")
                return False
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def next_replies(self) -> list[Pending]:
        """The oldest pending reply of each conversation (a later one never overtakes it)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, id, body, attempts, next_at, created_at FROM replies WHERE seq IN"
                " (SELECT MIN(seq) FROM replies WHERE status = 'pending' GROUP BY conversation_id)"
                " ORDER BY seq").fetchall()
        return [Pending(*row) for row in rows]

    def finish(self, seq: int, status: str, error: str | None = None) -> None:
        with self._lock:
            self._db.execute("UPDATE replies SET status = ?, last_error = ? WHERE seq = ?", (status, error, seq))

    def postpone(self, seq: int, attempts: int, next_at: float, error: str) -> None:
        with self._lock:
            self._db.execute("UPDATE replies SET attempts = ?, next_at = ?, last_error = ? WHERE seq = ?",
                             (attempts, next_at, error, seq))


class Sender(threading.Thread):
    """Posts queued replies to the relay, signed; retries 408/425/429/5xx, 401/403 and network
    failures with backoff (honouring Retry-After), drops a reply the relay refuses for good."""

    def __init__(self, store: Store, relay: str, secret: str) -> None:
        super().__init__(daemon=True, name="reply-sender")
        if not relay.startswith(("http://", "https://")):
            raise ValueError("--relay must be an http:// or https:// URL")
        self.store, self.url, self.secret = store, relay.rstrip("/") + "/webhook/reply", secret
        self.wake = threading.Event()

    def run(self) -> None:
        while True:
            self.wake.clear()
            try:
                for reply in self.store.next_replies():
                    if reply.next_at <= time.time():
                        self._send(reply)
                waits = [reply.next_at - time.time() for reply in self.store.next_replies()]
            except sqlite3.Error as exc:
                log.error("reply queue unreadable, trying again: %s", exc)
                waits = [1.0]
            self.wake.wait(timeout=max(0.0, min(waits)) if waits else None)

    def _send(self, reply: Pending) -> None:
        body, timestamp = reply.body.encode(), str(int(time.time()))
        request = urllib.request.Request(self.url, data=body, method="POST", headers={  # noqa: S310 (http/https only)
            "content-type": "application/json; charset=utf-8", "x-relay-timestamp": timestamp,
            "x-relay-signature": sign(self.secret, timestamp, body)})
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 (scheme checked above)
                status, retry_after = answer.status, None
        except urllib.error.HTTPError as exc:
            status, retry_after = exc.code, exc.headers.get("retry-after")
        except (urllib.error.URLError, OSError) as exc:
            status, retry_after = 0, None
            log.warning("reply not posted, will retry: %s", type(exc).__name__)
        if 200 <= status < 300:
            self.store.finish(reply.seq, "sent")
            log.info("reply %s accepted by the relay (HTTP %s)", reply.id, status)
        elif status in (0, 401, 403) or status in RETRYABLE or status >= 500:
            self._retry(reply, status, retry_after)
        else:  # 400 bad body, 404 a user the relay does not know for us, 413 too large: sending again won't help
            self.store.finish(reply.seq, "failed", f"HTTP {status}")
            log.error("reply %s refused by the relay (HTTP %s): dropped", reply.id, status)

    def _retry(self, reply: Pending, status: int, retry_after: str | None) -> None:
        attempts = reply.attempts + 1
        if time.time() - reply.created_at > GIVE_UP_AFTER:
            self.store.finish(reply.seq, "failed", f"gave up after {attempts} tries (last HTTP {status})")
            log.error("reply %s given up after %s tries", reply.id, attempts)
            return
        delay = min(MAX_BACKOFF, 2.0 ** (attempts - 1)) * random.uniform(0.5, 1.0)
        if retry_after and retry_after.isdigit():
            delay = max(delay, float(retry_after))
        if status in (401, 403):
            log.error("the relay refused our signature (HTTP %s): is WEBHOOK_SECRET the same on both sides, "
                      "and the clock right? Retrying reply %s", status, reply.id)
        else:
            log.warning("reply %s not accepted (HTTP %s), retry in %.1f s", reply.id, status or "-", delay)
        self.store.postpone(reply.seq, attempts, time.time() + delay, f"HTTP {status}" if status else "network")


class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], events_path: str, secret: str, store: Store, sender: Sender,
                 canned: str | None) -> None:
        super().__init__(address, Handler)
        self.events_path, self.secret, self.store, self.sender, self.canned = events_path, secret, store, sender, canned


class Handler(BaseHTTPRequestHandler):
    server: Receiver
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._answer(200, {"status": "ok"})
        else:
            self._answer(404, {"error": "not found"})

    def do_POST(self) -> None:
        if self.path != self.server.events_path:
            self._answer(404, {"error": "not found"})
            return
        length = self.headers.get("content-length", "")
        if not length.isdigit() or int(length) > MAX_BODY:
            self.close_connection = True  # the body, if any, is left unread
            self._answer(413 if length.isdigit() else 411, {"error": "a body of at most 1 MB, with its length"})
            return
        body = self.rfile.read(int(length))
        if not verify(self.server.secret, self.headers.get("x-relay-timestamp", ""),
                      self.headers.get("x-relay-signature", ""), body, time.time()):
            log.warning("event refused: bad or stale signature")
            self._answer(401, {"error": "bad or stale signature"})
            return
        try:
            event = json.loads(body.decode("utf-8"))
            if not (isinstance(event, dict) and isinstance(event.get("id"), str) and isinstance(event.get("event"), str)):
                raise ValueError("an event needs a string id and event")
        except ValueError:
            self._answer(400, {"error": "not an event"})
            return
        reply = answer_for(event, self.server.canned)
        try:
            stored = self.server.store.accept(event, body, reply, time.time())
        except sqlite3.Error as exc:  # the relay sends the event again later
            log.error("event %s not stored: %s", event["id"], exc)
            self._answer(503, {"error": "store unavailable"})
            return
        if not stored:
            log.info("event %s already stored: duplicate dropped", event["id"])
            self._answer(200, {"status": "duplicate"})
            return
        log.info("event %s stored (%s %s)", event["id"], event["event"], event.get("type") or "")
        if reply is not None:
            self.server.sender.wake.set()
        self._answer(200, {"status": "stored"})

    def _answer(self, status: int, value: dict[str, str]) -> None:
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per event from do_POST is enough


def main() -> None:
    parser = argparse.ArgumentParser(description="Reference receiver for the relay's webhook desk.")
    parser.add_argument("--relay", default=os.environ.get("RELAY_URL"), help="the relay's base URL (RELAY_URL)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--path", default="/events", help="where the relay POSTs events (WEBHOOK_URL's path)")
    parser.add_argument("--db", default="receiver.db", help="SQLite file")
    parser.add_argument("--answer", default=os.environ.get("RECEIVER_ANSWER"),
                        help="a canned answer to every text (default: an echo)")
    args = parser.parse_args()
    secret = os.environ.get("WEBHOOK_SECRET")  # never on the command line, where `ps` shows it
    if not secret or not args.relay:
        parser.error("set WEBHOOK_SECRET (the relay's value) and --relay or RELAY_URL")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    store = Store(args.db)
    sender = Sender(store, args.relay, secret)
    sender.start()
    server = Receiver((args.host, args.port), args.path, secret, store, sender, args.answer)
    log.info("listening on http://%s:%s%s, replying to %s", args.host, args.port, args.path, sender.url)
    server.serve_forever()


if __name__ == "__main__":
    main()
