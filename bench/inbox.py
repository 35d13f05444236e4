"""Inbox read latency: seed 1 000 conversations and 50 000 messages on SQLite through the inbox's own
store code, start the real service under Hypercorn, log in, and time the conversation list and one
conversation's message pages over HTTP (one client, keep-alive). Target: p95 under 50 ms.

    .venv/bin/python bench/inbox.py [--conversations 1000] [--messages 50000] [--requests 300]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import procs  # noqa: E402
from core.desks.inbox import passwords  # noqa: E402
from core.desks.inbox.store import InboxStore, NewMessage  # noqa: E402
from core.models import ConversationTouch  # noqa: E402
from core.store import open_store  # noqa: E402

APP = "wxbench0000000001"
PASSWORD = "bench password 1"
WORDS = ["您好", "请问", "订单", "发货", "退款", "发票", "地址", "谢谢",
         "hello", "order", "refund", "invoice", "shipping", "thanks"]


async def seed(url: str, conversations: int, messages: int) -> float:
    """Messages spread over the conversations in time order, as traffic would write them."""
    started = time.perf_counter()
    store = await open_store(url)
    inbox = InboxStore(store)
    now = time.time() - messages  # one message a second, ending now
    await inbox.add_agent("bench", passwords.hash_password(PASSWORD), True, now)
    rng = random.Random(7)
    for n in range(messages):
        user = f"oBench{rng.randrange(conversations):06d}" if n >= conversations else f"oBench{n:06d}"
        at = now + n
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 30)))
        direction = rng.choice(("in", "in", "out", "note")) if n >= conversations else "in"
        if direction == "in":
            await store.accept(f"touch:{n}", at, [], ConversationTouch(APP, user, None, None, at + 48 * 3600))
            await inbox.record_in(APP, user, NewMessage("in", "text", text, ref=f"{APP}:{n}"), at)
        elif direction == "out":
            await inbox.record_reply(APP, user, NewMessage("out", "text", text, agent_id=1), at, 1,
                                     lambda message_id: (f"reply:inbox:{message_id}", []))
        else:
            await inbox.record_note(APP, user, NewMessage("note", "text", text, agent_id=1), at)
    await store.close()
    return time.perf_counter() - started


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50_ms": round(pick(0.50) * 1000, 2), "p95_ms": round(pick(0.95) * 1000, 2),
            "p99_ms": round(pick(0.99) * 1000, 2), "mean_ms": round(statistics.fmean(ordered) * 1000, 2)}


def measure(client: httpx.Client, path: str, requests: int, **params: str) -> dict[str, float]:
    for _ in range(20):  # warm-up
        assert client.get(path, params=params).status_code == 200
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        answer = client.get(path, params=params)
        samples.append(time.perf_counter() - started)
        assert answer.status_code == 200, answer.text
    return percentiles(samples)


def wait_ready(url: str, proc: procs.Proc) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"the service did not start:\n{proc.stderr_head()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-inbox-") as folder:
        rundir = Path(folder)
        url = f"sqlite:///{rundir}/inbox.db"
        seconds = asyncio.run(seed(url, args.conversations, args.messages))
        port = procs.free_port()
        env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": url, "RELAY_LOG_LEVEL": "warning"}
        proc = procs.start("relay", [sys.executable, "-m", "hypercorn", "cloudrun.app:app", "--bind",
                                     f"127.0.0.1:{port}", "--workers", "0"], ROOT, env, rundir)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base, proc)
            with httpx.Client(base_url=base, timeout=10) as client:
                assert client.post("/inbox/api/login", json={"name": "bench", "password": PASSWORD}).status_code == 200
                listed = client.get("/inbox/api/conversations").json()["conversations"]
                busiest = max(listed, key=lambda c: int(c["last_message"]["id"]))["id"]
                path = f"/inbox/api/conversations/{quote(busiest, safe='')}/messages"
                newest = client.get(path).json()["messages"]
                results = {
                    "seeded": {"conversations": args.conversations, "messages": args.messages,
                               "seconds": round(seconds, 1)},
                    "conversation list (100)": measure(client, "/inbox/api/conversations", args.requests),
                    "open conversations (100)": measure(client, "/inbox/api/conversations", args.requests,
                                                        status="open"),
                    "messages, newest page (50)": measure(client, path, args.requests),
                    "messages, older page (50)": measure(client, path, args.requests, before=newest[0]["id"]),
                }
        finally:
            proc.stop()
    print(json.dumps(results, indent=2, ensure_ascii=False))
    worst = max(v["p95_ms"] for k, v in results.items() if k != "seeded")
    print(f"worst p95 {worst} ms: target under 50 ms {'met' if worst < 50 else 'MISSED'}")
    return 0 if worst < 50 else 1


if __name__ == "__main__":
    sys.exit(main())
