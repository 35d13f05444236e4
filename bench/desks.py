"""Desk bench: the Echat, C4C and Easemob desks under load, each against fakes.

Echat: one text push per user (each gets its hand-over link), then N signed, AES-encrypted staff
pushes (chatSend, with the user's pushInfo) closed-loop; figures: push acks/s and latency, sends/s
at the fake WeChat, lost and duplicated sends.
C4C (OData): M user messages; figures: activities/s in the fake tenant and tenant calls per
activity; then one Mashup reply per activity (recipient found by original_id); replies/s at the fake
WeChat and tenant calls per reply. The fake tenant (tests/fakes/c4c.py, threaded) runs in this process.
Slack: M user messages from the users (each user's first opens a thread); figures: posts/s in the fake
channel and Slack calls per message; then one signed Events API reply per message in its thread,
closed-loop; event acks/s and latency, replies/s at the fake WeChat. Then, against a fake that holds
chat.postMessage to --slack-rate posts a second per channel (429 with Retry-After: 1 beyond, as Slack
does), a burst of --slack-burst messages from 20 users: how fast the channel drains, how many 429s it
costs, and whether order and count hold.
Easemob: M user messages; figures: IM messages/s at the fake Easemob (tests/fakes/easemob.py, threaded,
in this process; it does not echo the visitors' messages back here) and Easemob calls per message (the
first of each user also registers them); then one signed post-send callback per message from the service
number, closed-loop; callback acks/s and latency, replies/s at the fake WeChat.

Run: `.venv/bin/python bench/desks.py [--pushes 4000] [--messages 1000] [--connections 16] [--users 100]
[--desks echat,c4c,easemob,slack] [--slack-rate 1] [--slack-burst 120]`.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import procs
from load import APPID, ROOT, Blocked, Push, Pushes, drive, hypercorn, start_fakes, tidy, wait_ready, wait_sends
from rawhttp import Conn, build_request

sys.path.insert(0, str(ROOT))
from core.desks.echat import pushinfo
from tests.fakes.c4c import FakeC4C
from tests.fakes.easemob import FakeEasemob
from tests.fakes.echat import FakeEchat, sample
from tests.fakes.slack import CHANNEL, SIGNING_SECRET, FakeSlack, Posted, sign
from tests.fakes.slack import TOKEN as SLACK_TOKEN

TOKEN, AES_KEY, ECHAT_APPID = "bench-token", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "echat-bench"
INBOUND = base64.b64encode(b"bench:bench-pw").decode()


async def relay_with(desk_env: dict[str, str], rundir: Path, name: str) -> tuple[procs.Proc, procs.Proc, int, int]:
    """Fakes and a relay on a fresh SQLite file with `desk_env`: (relay, fakes, relay port, WeChat port)."""
    rport = procs.free_port()
    fakes, ports = await start_fakes(rundir, rport, "unused")
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{rundir}/{name}.db", RELAY_LOG_LEVEL="warning",
               WX_API_BASE=f"http://127.0.0.1:{ports['wechat']}", **desk_env)
    relay = procs.start(name, hypercorn("cloudrun.app:app", rport), ROOT, env, rundir)
    try:
        await wait_ready(relay, rport, build_request("GET", "/healthz", {}), f"{name} GET /healthz")
    except Blocked:
        fakes.stop()
        relay.stop()
        raise
    return relay, fakes, rport, ports["wechat"]


def by_connection(pushes: list[Push], conns: int) -> list[list[Push]]:
    """A user's requests stay on one connection, in order."""
    work: list[list[Push]] = [[] for _ in range(conns)]
    for p in pushes:
        work[p.uid % conns].append(p)
    return work


async def poll(predicate: Callable[[], Any], deadline: float, what: str) -> float:
    """Wait for `predicate`; the monotonic time it held."""
    while not predicate():
        if time.monotonic() > deadline:
            raise Blocked(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return time.monotonic()


async def run_echat(args: argparse.Namespace, rundir: Path) -> dict[str, Any]:
    relay, fakes, rport, fport = await relay_with({
        "RELAY_DESK": "echat", "ECHAT_TOKEN": TOKEN, "ECHAT_AES_KEY": AES_KEY, "ECHAT_APPID": ECHAT_APPID,
        "ECHAT_CHAT_URL": "https://chat.example.com/visitor/mobile/chat.html?companyId=1"}, rundir, "echat")
    try:
        conns = [Conn("127.0.0.1", rport) for _ in range(args.connections)]
        users = Pushes(args.users, args.connections)
        await drive(conns, users.phase(args.users), relay.pid)  # first contact: one hand-over each
        await wait_sends(fport, args.users, time.monotonic() + 60, "hand-overs")
        echat, seq = FakeEchat(TOKEN, aes_key=AES_KEY, appid=ECHAT_APPID), Counter[int]()
        pushes = []
        for n in range(args.pushes):
            uid = n % args.users
            seq[uid] += 1
            text = f"echat {users.run} u{uid} #{seq[uid]}"
            body = echat.wrap(sample("chatSend", msgId=str(n + 1), uid=f"v{uid}", msgType="2", contentType="21",
                                     content=text, pushInfo=pushinfo.sign(TOKEN, APPID, users.openid(uid))))
            query = urlencode(echat.query("chatSend", body=body))
            pushes.append(Push(uid, seq[uid], text, build_request("POST", f"/echat?{query}",
                                                                  {"Content-Type": "text/xml"}, body)))
        phase = await drive(conns, by_connection(pushes, args.connections), relay.pid)
        t0 = time.monotonic()
        stats = await wait_sends(fport, args.users + args.pushes, t0 + 60 + args.pushes / 50, "echat sends")
        acked = sum(p.acked for p in pushes)
        return {**phase.summary(), "acked": acked, "sends_per_s": round(args.pushes / (time.monotonic() - phase.t0), 1),
                "lost": args.users + acked - stats["unique_sends"],
                "duplicated": stats["sends"] - stats["unique_sends"],
                "rss_mb": round(procs.tree_rss(relay.pid)[0], 1)}
    finally:
        relay.stop()
        fakes.stop()


async def run_c4c(args: argparse.Namespace, rundir: Path) -> dict[str, Any]:
    tenant = FakeC4C()
    relay, fakes, rport, fport = await relay_with({
        "RELAY_DESK": "c4c", "C4C_BASE_URL": tenant.url, "C4C_USER": tenant.user, "C4C_PASSWORD": tenant.password,
        "C4C_CHANNEL_ID": "WXBench", "C4C_INBOUND_USER": "bench", "C4C_INBOUND_PASSWORD": "bench-pw"}, rundir, "c4c")
    try:
        conns = [Conn("127.0.0.1", rport) for _ in range(args.connections)]
        users = Pushes(args.users, args.connections)
        phase = await drive(conns, users.phase(args.messages), relay.pid)
        done = await poll(lambda: len(tenant.activities()) >= args.messages, time.monotonic() + 120 + args.messages / 5,
                          "activities")
        activities, calls = tenant.activities(), len(tenant.requests)
        replies = []
        for a in activities:
            uid = int(a["Text"].rsplit(" u", 1)[1].split(" ")[0])
            form = urlencode({"content": json.dumps({"original_id": a["SocialMediaMessageID"], "sma_id": f"r{a['ID']}",
                                                     "service_req_no": "", "private_ind": "FALSE",
                                                     "text": f"echo:{a['Text']}"})})
            replies.append(Push(uid, 0, a["Text"], build_request(
                "POST", "/c4c/mashup", {"Content-Type": "application/x-www-form-urlencoded",
                                        "Authorization": f"Basic {INBOUND}"}, form.encode())))
        reply_phase = await drive(conns, by_connection(replies, args.connections), relay.pid)
        stats = await wait_sends(fport, args.messages, time.monotonic() + 120 + args.messages / 5, "c4c replies")
        return {"messages": args.messages, "message_acks_per_s": phase.summary()["acks_per_s"],
                "activities_per_s": round(args.messages / (done - phase.t0), 1),
                "tenant_calls_per_activity": round(calls / args.messages, 2),
                "duplicate_activities": len(activities) - len({a["SocialMediaMessageID"] for a in activities}),
                "replies_per_s": round(args.messages / (time.monotonic() - reply_phase.t0), 1),
                "tenant_calls_per_reply": round((len(tenant.requests) - calls) / args.messages, 2),
                "reply_sends": stats["unique_sends"], "duplicated_sends": stats["sends"] - stats["unique_sends"]}
    finally:
        relay.stop()
        fakes.stop()
        tenant.close()


def callback_figures(summary: dict[str, Any]) -> dict[str, Any]:
    """Acks/s and latency of a phase whose answers are JSON, not `success`."""
    return {"callback_acks_per_s": round(summary["requests"] / summary["wall_s"], 1),
            "callback_p50_ms": summary["p50_ms"], "callback_p99_ms": summary["p99_ms"],
            "callback_answers": summary["answers"]}


async def run_easemob(args: argparse.Namespace, rundir: Path) -> dict[str, Any]:
    kefu = FakeEasemob()
    kefu.echo = False
    relay, fakes, rport, fport = await relay_with({"RELAY_DESK": "easemob", **kefu.env()}, rundir, "easemob")
    try:
        conns = [Conn("127.0.0.1", rport) for _ in range(args.connections)]
        users = Pushes(args.users, args.connections)
        phase = await drive(conns, users.phase(args.messages), relay.pid)
        done = await poll(lambda: len(kefu.to_service()) >= args.messages, time.monotonic() + 120 + args.messages / 5,
                          "IM messages")
        messages, calls = kefu.to_service(), len(kefu.requests)
        callbacks = []
        for n, m in enumerate(messages):
            text = m["body"]["msg"]
            body = kefu.callback_body({"msg_id": f"r{n}", "from": kefu.service_number, "to": m["from"], "type": "txt",
                                       "body": {"msg": f"echo:{text}"}, "ext": {}})
            callbacks.append(Push(int(text.rsplit(" u", 1)[1].split(" ")[0]), 0, text, build_request(
                "POST", "/easemob", {"Content-Type": "application/json"}, json.dumps(body).encode())))
        reply_phase = await drive(conns, by_connection(callbacks, args.connections), relay.pid)
        stats = await wait_sends(fport, args.messages, time.monotonic() + 120 + args.messages / 5, "easemob replies")
        return {"messages": args.messages, "message_acks_per_s": phase.summary()["acks_per_s"],
                "im_messages_per_s": round(args.messages / (done - phase.t0), 1),
                "easemob_calls_per_message": round(calls / args.messages, 2), "token_fetches": len(kefu.token_requests()),
                "duplicate_im_messages": len(messages) - len({m["ext"]["weichat"]["visitor"]["msgId"] for m in messages}),
                **callback_figures(reply_phase.summary()),
                "replies_per_s": round(args.messages / (time.monotonic() - reply_phase.t0), 1),
                "reply_sends": stats["unique_sends"], "duplicated_sends": stats["sends"] - stats["unique_sends"],
                "rss_mb": round(procs.tree_rss(relay.pid)[0], 1)}
    finally:
        relay.stop()
        fakes.stop()
        kefu.close()


def slack_env(slack: FakeSlack, **more: str) -> dict[str, str]:
    return {"RELAY_DESK": "slack", "SLACK_API_BASE": f"{slack.url}/api", "SLACK_BOT_TOKEN": SLACK_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET, "SLACK_CHANNEL": CHANNEL, **more}


def user_posts(slack: FakeSlack) -> list[Posted]:
    """The users' messages in their threads (the relay's posts with a key that is not a root's)."""
    return [p for p in list(slack.posts) if p.thread_ts and p.metadata]


def slack_order(slack: FakeSlack) -> dict[str, int]:
    """Posts of users' messages in their threads: duplicates, and pairs out of the user's order."""
    posts = user_posts(slack)
    seqs: dict[str, list[int]] = {}
    for post in posts:
        seqs.setdefault(post.thread_ts or "", []).append(int(post.text.rsplit("#", 1)[1]))
    return {"duplicated": len(posts) - len({p.text for p in posts}),
            "out_of_order": sum(a >= b for seq in seqs.values() for a, b in itertools.pairwise(seq))}


async def run_slack(args: argparse.Namespace, rundir: Path) -> dict[str, Any]:
    slack = FakeSlack()
    # unpaced: what the relay itself does per message, not Slack's limit (the second phase measures that)
    relay, fakes, rport, fport = await relay_with(slack_env(slack, SLACK_POSTS_PER_MINUTE="1000000"), rundir, "slack")
    try:
        conns = [Conn("127.0.0.1", rport) for _ in range(args.connections)]
        users = Pushes(args.users, args.connections)
        phase = await drive(conns, users.phase(args.messages), relay.pid)
        done = await poll(lambda: len(user_posts(slack)) >= args.messages, time.monotonic() + 120 + args.messages / 5,
                          "posts in Slack")
        posts, calls = user_posts(slack), len(slack.requests)
        events = []
        for post in posts:
            body = slack.envelope(slack.reply(post.thread_ts or "", f"echo:{post.text}"))
            now = str(int(time.time()))
            events.append(Push(int(post.text.rsplit(" u", 1)[1].split(" ")[0]), 0, post.text, build_request(
                "POST", "/slack/events", {"Content-Type": "application/json", "X-Slack-Request-Timestamp": now,
                                          "X-Slack-Signature": sign(now, body)}, body)))
        reply_phase = await drive(conns, by_connection(events, args.connections), relay.pid)
        stats = await wait_sends(fport, args.messages, time.monotonic() + 120 + args.messages / 5, "slack replies")
        return {"messages": args.messages, "message_acks_per_s": phase.summary()["acks_per_s"],
                "posts_per_s": round(args.messages / (done - phase.t0), 1),
                "slack_calls_per_message": round(calls / args.messages, 2), "threads": len(slack.roots()),
                **slack_order(slack), **callback_figures(reply_phase.summary()),
                "replies_per_s": round(args.messages / (time.monotonic() - reply_phase.t0), 1),
                "reply_sends": stats["unique_sends"], "duplicated_sends": stats["sends"] - stats["unique_sends"],
                "rss_mb": round(procs.tree_rss(relay.pid)[0], 1),
                "limited_paced": await run_slack_limited(args, rundir, {}),
                "limited_unpaced": await run_slack_limited(args, rundir, {"SLACK_POSTS_PER_MINUTE": "1000000"})}
    finally:
        relay.stop()
        fakes.stop()
        slack.close()


async def run_slack_limited(args: argparse.Namespace, rundir: Path, pace: dict[str, str]) -> dict[str, Any]:
    slack = FakeSlack()
    slack.rate = args.slack_rate
    relay, fakes, rport, _ = await relay_with(slack_env(slack, **pace), rundir, "slack-unpaced" if pace else "slack-paced")
    try:
        conns = [Conn("127.0.0.1", rport) for _ in range(args.connections)]
        users = Pushes(20, args.connections)
        started = time.time()
        await drive(conns, users.phase(args.slack_burst), relay.pid)
        await poll(lambda: len(user_posts(slack)) >= args.slack_burst, time.monotonic() + 120 + args.slack_burst * 4,
                   "the burst in Slack")
        took = [float(p.ts) - started for p in user_posts(slack)]
        refused = [r for r in slack.requests if r.path == "/api/chat.postMessage" and r.status == 429]
        posted = len(user_posts(slack)) + len(slack.roots())
        return {"rate_per_channel": args.slack_rate, "burst_messages": args.slack_burst, "users": 20,
                "drained_s": round(max(took), 1), "posts_per_s": round(posted / max(took), 2),
                "median_wait_s": round(sorted(took)[len(took) // 2], 1), "ratelimited_answers": len(refused),
                "ratelimited_per_post": round(len(refused) / posted, 2), **slack_order(slack)}
    finally:
        relay.stop()
        fakes.stop()
        slack.close()


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pushes", type=int, default=4000, help="Echat staff pushes")
    ap.add_argument("--messages", type=int, default=1000, help="C4C user messages (and as many replies)")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--users", type=int, default=100)
    ap.add_argument("--desks", default="echat,c4c,easemob,slack", help="which desks, comma-separated")
    ap.add_argument("--slack-rate", type=float, default=1.0, help="posts a second per channel the fake Slack allows")
    ap.add_argument("--slack-burst", type=int, default=120, help="messages in the rate-limited Slack burst")
    args = ap.parse_args()
    rundir = Path(tempfile.mkdtemp(prefix="relay-desks-bench-"))
    out: dict[str, Any] = {"config": vars(args), "cpus": os.cpu_count()}
    code = 0
    runs = {"echat": run_echat, "c4c": run_c4c, "easemob": run_easemob, "slack": run_slack}
    for name, run in ((name, runs[name]) for name in args.desks.split(",")):
        print(f"{name} ...", file=sys.stderr)
        try:
            out[name] = await run(args, rundir)
        except Blocked as exc:
            out[name], code = {"blocked": str(exc)}, 1
    print(json.dumps(out, indent=2))
    return tidy(rundir, False, code)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
