"""The reference receiver (examples/webhook-receiver/) run as its README says, as a child process: with
the relay it round-trips a user's text to a reply at WeChat; alone, against a fake relay, it refuses
forged and stale events, stores a redelivered event once and retries its own POSTs as documented."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import fresh_push
from tests.fakes.server import Answer, FakeServer, Recorded
from tests.fakes.webhook import sign
from tests.fakes.wechat import FakeWeChat
from tests.polling import eventually
from tests.service import ROOT, Service, free_port

RECEIVER = ROOT / "examples" / "webhook-receiver" / "receiver.py"
SECRET = "reference-receiver-secret"
APP, OPENID = "wx8bd01c9a583478cf", "oVneZ57wJnV-ObtCiGv26PRrOz2g"
CLOUD_RUN = {"x-wx-source": "other", "x-wx-appid": APP, "content-type": "application/json"}
REPLY = "/webhook/reply"


class Receiver:
    def __init__(self, port: int, relay: str, db: Path, log: Path) -> None:
        self.url, self.db, self.log = f"http://127.0.0.1:{port}", db, log
        self.proc = subprocess.Popen(
            [sys.executable, str(RECEIVER), "--port", str(port), "--relay", relay, "--db", str(db)],
            env={"WEBHOOK_SECRET": SECRET, "PATH": "/usr/bin:/bin"}, stdout=log.open("ab"), stderr=subprocess.STDOUT)
        eventually(self._ready, "the receiver's /healthz")

    def _ready(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def post(self, event: dict[str, Any], timestamp: int | None = None, secret: str = SECRET) -> httpx.Response:
        body = json.dumps(event, ensure_ascii=False).encode()
        ts = str(int(time.time()) if timestamp is None else timestamp)
        return httpx.post(f"{self.url}/events", content=body, timeout=5, headers={
            "content-type": "application/json", "x-relay-timestamp": ts, "x-relay-signature": sign(secret, ts, body)})

    def rows(self, table: str) -> list[sqlite3.Row]:
        with closing(sqlite3.connect(self.db)) as db:
            db.row_factory = sqlite3.Row
            return db.execute(f"SELECT * FROM {table} ORDER BY rowid").fetchall()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def start_receiver(tmp_path: Path) -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(relay: str, port: int | None = None) -> Receiver:
        receiver = Receiver(port or free_port(), relay, tmp_path / "receiver.db", tmp_path / "receiver.log")
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


class FakeRelay(FakeServer):
    """Stands in for the relay's /webhook/reply: answers 202 unless scripted."""

    def answer(self, recorded: Recorded) -> Answer:
        return 202, {"status": "accepted"}


@pytest.fixture
def fake_relay() -> Iterator[FakeRelay]:
    fake = FakeRelay()
    yield fake
    fake.close()


def text_event(event_id: str, text: str) -> dict[str, Any]:
    return {"event": "message", "id": event_id, "conversation_id": f"{APP}:{OPENID}", "app_id": APP,
            "openid": OPENID, "created_at": int(time.time()), "type": "text", "text": text}


def signed_correctly(recorded: Recorded) -> bool:
    return recorded.headers["x-relay-signature"] == sign(SECRET, recorded.headers["x-relay-timestamp"], recorded.body)


def test_a_users_text_reaches_the_receiver_and_its_reply_reaches_wechat(start_service, start_receiver,
                                                                       wechat: FakeWeChat):
    port = free_port()
    relay: Service = start_service(WEBHOOK_URL=f"http://127.0.0.1:{port}/events", WEBHOOK_SECRET=SECRET)
    receiver = start_receiver(relay.url, port)

    push = fresh_push("wechat/cloudrun-push.text.msgid64.json", Content="我的订单到哪了")
    assert relay.post("/", push, CLOUD_RUN).text == "success"
    wechat.wait_for(lambda: wechat.texts_to(OPENID), what="the receiver's reply at WeChat")
    assert wechat.texts_to(OPENID) == ["收到：我的订单到哪了"]

    [stored] = receiver.rows("events")
    assert (stored["id"], stored["type"], stored["text"]) == (f"{APP}:23637352235060880", "text", "我的订单到哪了")
    eventually(lambda: [r["status"] for r in receiver.rows("replies")] == ["sent"], "the reply marked sent")


def test_forged_and_stale_events_are_refused_and_nothing_is_stored(start_receiver, fake_relay):
    receiver = start_receiver(fake_relay.url)
    forged = receiver.post(text_event("wx:1", "forged"), secret="a-guess")
    stale = receiver.post(text_event("wx:2", "replayed"), timestamp=int(time.time()) - 301)
    unsigned = httpx.post(f"{receiver.url}/events", content=json.dumps(text_event("wx:3", "bare")), timeout=5)
    assert [forged.status_code, stale.status_code, unsigned.status_code] == [401, 401, 401]

    assert receiver.post(text_event("wx:4", "marker")).status_code == 200
    fake_relay.wait_for(lambda: fake_relay.received(REPLY), what="the marker's reply")
    assert [r["id"] for r in receiver.rows("events")] == ["wx:4"]
    assert [r.json()["text"] for r in fake_relay.received(REPLY, ok_only=False)] == ["收到：marker"]


def test_a_redelivered_event_is_stored_and_answered_once(start_receiver, fake_relay):
    receiver = start_receiver(fake_relay.url)
    first, again = receiver.post(text_event("wx:7", "hello")), receiver.post(text_event("wx:7", "hello"))
    assert (first.json(), again.json()) == ({"status": "stored"}, {"status": "duplicate"})
    assert receiver.post(text_event("wx:8", "marker")).status_code == 200
    fake_relay.wait_for(lambda: len(fake_relay.received(REPLY)) == 2, what="both replies")
    assert [r.json()["text"] for r in fake_relay.received(REPLY)] == ["收到：hello", "收到：marker"]
    assert len(receiver.rows("events")) == 2


def test_the_receiver_retries_what_the_relay_may_take_later_and_drops_what_it_refuses(start_receiver, fake_relay):
    fake_relay.script(REPLY, (503, {"error": "store unavailable"}, {"retry-after": "1"}), (429, {}))
    receiver = start_receiver(fake_relay.url)
    receiver.post(text_event("wx:1", "retried"))
    fake_relay.wait_for(lambda: fake_relay.received(REPLY), timeout=15, what="the reply after 503 and 429")
    fake_relay.script(REPLY, (400, {"error": "a text reply needs text"}))
    receiver.post(text_event("wx:2", "refused"))
    receiver.post(text_event("wx:3", "marker"))
    fake_relay.wait_for(lambda: len(fake_relay.received(REPLY)) == 2, timeout=15, what="the marker's reply")

    posts = fake_relay.received(REPLY, ok_only=False)
    assert [(r.status, r.json()["text"]) for r in posts] == [
        (503, "收到：retried"), (429, "收到：retried"), (202, "收到：retried"), (400, "收到：refused"),
        (202, "收到：marker")]
    assert len({r.json()["id"] for r in posts[:3]}) == 1  # one reply id across its retries: the relay sends it once
    assert all(signed_correctly(r) for r in posts)
    eventually(lambda: [r["status"] for r in receiver.rows("replies")] == ["sent", "failed", "sent"],
               "the receiver's record of the three replies")
