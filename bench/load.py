"""Load bench: push-ack throughput and latency of the relay against a bare Quart floor,
end-to-end delivery through a fake webhook desk and a fake WeChat, and the relay's RSS.

Run: `.venv/bin/python bench/load.py [--pushes N] [--connections 32] [--users 200] [--json]`.
See bench/README.md for what it prints. Exits 0 unless a process crashed or would not start.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import procs
from rawhttp import Conn, build_request

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python")
APPID = "wxbench0000000001"
PUSH_HEADERS = {"Content-Type": "application/json", "x-wx-source": "other", "x-wx-appid": APPID}
IO_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError)


class Blocked(Exception):
    """A server would not start or answer; the message says what was seen."""


@dataclass
class Push:
    uid: int
    seq: int
    text: str
    raw: bytes
    acked: bool = False


@dataclass
class Phase:
    """Figures of one closed-loop load phase."""

    n: int
    wall: float = 0.0
    t0: float = 0.0  # time.monotonic() when the first request was written
    lat: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    server_cpu: float = 0.0
    gen_cpu: float = 0.0

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.lat)
        pct = (lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 2)) if lat else (lambda q: None)
        ok = self.statuses.get("200 success", 0)
        return {"requests": self.n, "acks_ok": ok, "acks_per_s": round(ok / self.wall, 1) if self.wall else 0,
                "p50_ms": pct(0.50), "p99_ms": pct(0.99), "wall_s": round(self.wall, 3),
                "answers": dict(self.statuses),
                "server_cpu_pct": round(100 * self.server_cpu / self.wall, 1) if self.wall else None,
                "generator_cpu_pct": round(100 * self.gen_cpu / self.wall, 1) if self.wall else None}


class Pushes:
    """Unique pushes; each user is pinned to one connection so its pushes are strictly ordered."""

    def __init__(self, users: int, conns: int) -> None:
        self.run = os.urandom(3).hex()
        self.users, self.conns = users, conns
        self.seq = [0] * users
        self.msgid = random.randrange(1 << 61, 1 << 62)
        self.by_text: dict[str, Push] = {}

    def openid(self, uid: int) -> str:
        return f"oBench{self.run}u{uid:05d}"

    def make(self, uid: int) -> Push:
        self.seq[uid] += 1
        self.msgid += 1
        text = f"bench {self.run} u{uid} #{self.seq[uid]}"
        body = json.dumps({"ToUserName": "gh_919b00572d95", "FromUserName": self.openid(uid),
                           "CreateTime": int(time.time()), "MsgType": "text", "Content": text,
                           "MsgId": self.msgid}).encode()
        push = Push(uid, self.seq[uid], text, build_request("POST", "/", PUSH_HEADERS, body))
        self.by_text[text] = push
        return push

    def phase(self, n: int) -> list[list[Push]]:
        """n pushes split evenly over the connections; connection c serves users u with u % C == c."""
        out: list[list[Push]] = []
        for c in range(self.conns):
            mine = list(range(c, self.users, self.conns))
            out.append([self.make(mine[k % len(mine)]) for k in range(n // self.conns + (c < n % self.conns))])
        return out


async def drive(conns: list[Conn], work: list[list[Push]], cpu_pid: int) -> Phase:
    """Send every connection's pushes back-to-back (closed loop); time each ack.

    Connections are reopened first: idle ones may have hit the server's keep-alive timeout.
    """
    ph = Phase(sum(map(len, work)))

    async def one(conn: Conn, pushes: list[Push]) -> None:
        for p in pushes:
            t = time.perf_counter()
            try:
                status, body = await conn.request(p.raw)
            except IO_ERRORS as exc:
                ph.statuses[type(exc).__name__] += 1
                continue
            ph.lat.append(time.perf_counter() - t)
            p.acked = status == 200 and body == b"success"
            ph.statuses["200 success" if p.acked else f"{status} {body[:40]!r}"] += 1

    for c in conns:  # fresh connections, opened outside the timed window
        c.close()
    await asyncio.gather(*(c.connect() for c in conns))
    cpu0, gen0 = procs.tree_cpu(cpu_pid), time.process_time()
    ph.t0 = time.monotonic()
    await asyncio.gather(*(one(c, w) for c, w in zip(conns, work)))
    ph.wall = time.monotonic() - ph.t0
    ph.server_cpu, ph.gen_cpu = procs.tree_cpu(cpu_pid) - cpu0, time.process_time() - gen0
    return ph


async def get_json(port: int, path: str) -> dict[str, Any]:
    conn = Conn("127.0.0.1", port)
    try:
        status, body = await conn.request(build_request("GET", path, {}))
    finally:
        conn.close()
    if status != 200:
        raise Blocked(f"GET {path} on fakes answered {status}")
    return dict(json.loads(body))


async def wait_ready(proc: procs.Proc, port: int, raw: bytes, what: str, timeout: float = 30.0) -> None:
    """Poll `raw` until it answers 200, the process dies, or `timeout` passes."""
    end, last = time.monotonic() + timeout, "no answer"
    while time.monotonic() < end:
        if proc.popen.poll() is not None:
            raise Blocked(f"{proc.name} exited with code {proc.popen.returncode} before {what} answered;"
                          f" stderr:\n{proc.stderr_head()}")
        conn = Conn("127.0.0.1", port)
        try:
            status, body = await conn.request(raw)
            if status == 200:
                return
            last = f"{status} {body[:200]!r}"
        except IO_ERRORS as exc:
            last = repr(exc)
        finally:
            conn.close()
        await asyncio.sleep(0.1)
    raise Blocked(f"{what} not ready after {timeout:.0f}s (last: {last}); stderr:\n{proc.stderr_head()}")


async def wait_sends(fport: int, expected: int, deadline: float, label: str) -> dict[str, Any]:
    """Poll the fakes until `expected` distinct texts reached the fake WeChat or `deadline`."""
    next_note = time.monotonic() + 5
    while True:
        st = await get_json(fport, "/_stats")
        now = time.monotonic()
        if st["unique_sends"] >= expected or now >= deadline:
            return st
        if now >= next_note:
            print(f"  [{label}] {st['unique_sends']}/{expected} delivered, {st['events']} events at desk,"
                  f" {st['pending_replies']} replies pending ({st['replies_in_flight']} in flight,"
                  f" oldest {st['oldest_reply_s']} s)", file=sys.stderr)
            next_note = now + 5
        await asyncio.sleep(0.05)


def hypercorn(app: str, port: int) -> list[str]:
    return [PY, "-m", "hypercorn", app, "--bind", f"127.0.0.1:{port}", "--workers", "0", "--read-timeout", "10"]


async def run_floor(args: argparse.Namespace, rundir: Path) -> dict[str, Any]:
    port = procs.free_port()
    proc = procs.start("floor", hypercorn("bench.floor_app:app", port), ROOT, dict(os.environ), rundir)
    try:
        pushes = Pushes(args.users, args.connections)
        await wait_ready(proc, port, pushes.make(0).raw, "floor POST /")
        conns = [Conn("127.0.0.1", port) for _ in range(args.connections)]
        await drive(conns, pushes.phase(args.warmup), proc.pid)
        ph = await drive(conns, pushes.phase(args.pushes), proc.pid)
        for c in conns:
            c.close()
        if proc.popen.poll() is not None:
            raise Blocked(f"floor exited during load; stderr:\n{proc.stderr_head()}")
        return ph.summary()
    finally:
        proc.stop()


def analyse(pushes: Pushes, dump: dict[str, Any], measured: list[Push], t0: float) -> dict[str, Any]:
    """Lost, duplicated, unexpected, per-user order, end-to-end rate, from the fakes' dump."""
    first: dict[str, float] = {}
    dup = unexpected = order = 0
    top: dict[int, int] = {}
    for _user, content, t in dump["sends"]:
        push = pushes.by_text.get(content.removeprefix("echo:")) if content.startswith("echo:") else None
        if push is None:
            unexpected += 1
        elif content in first:
            dup += 1
        else:
            first[content] = t
            order += push.seq < top.get(push.uid, 0)
            top[push.uid] = max(push.seq, top.get(push.uid, 0))
    ev_order, ev_top = 0, dict[int, int]()
    for _user, text, _t in dump["events"]:
        push = pushes.by_text.get(text)
        if push is not None:
            ev_order += push.seq < ev_top.get(push.uid, 0)
            ev_top[push.uid] = max(push.seq, ev_top.get(push.uid, 0))
    acked = [p for p in pushes.by_text.values() if p.acked]
    lost = sum(1 for p in acked if "echo:" + p.text not in first)
    times = [first["echo:" + p.text] for p in measured if "echo:" + p.text in first]
    span = max(times) - t0 if times else 0.0
    return {"pushes_acked_total": len(acked), "sends_total": len(dump["sends"]),
            "lost": lost, "duplicated": dup, "unexpected_sends": unexpected,
            "order_violations": order, "desk_order_violations": ev_order,
            "measured_delivered": len(times),
            "deliveries_per_s": round(len(times) / span, 1) if span > 0 else 0,
            "e2e_span_s": round(span, 3)}


async def start_fakes(rundir: Path, relay_port: int, secret: str) -> tuple[procs.Proc, dict[str, int]]:
    """bench/fakes.py in its own process; its ports ({"wechat": …, "desk": …})."""
    fakes = procs.start("fakes", [PY, str(ROOT / "bench" / "fakes.py"), "--relay-port", str(relay_port),
                                  "--secret", secret], ROOT, dict(os.environ), rundir, stdout_pipe=True)
    line = await asyncio.wait_for(asyncio.to_thread(fakes.popen.stdout.readline), 15)  # type: ignore[union-attr]
    if not line:
        fakes.stop()
        raise Blocked(f"fakes did not start; stderr:\n{fakes.stderr_head()}")
    return fakes, json.loads(line)


async def run_relay(args: argparse.Namespace, rundir: Path, out: dict[str, Any]) -> None:
    secret = os.urandom(16).hex()
    rport = procs.free_port()
    fakes, ports = await start_fakes(rundir, rport, secret)
    relay: procs.Proc | None = None
    try:
        fport = ports["wechat"]
        env = dict(os.environ, DATABASE_URL=f"sqlite:///{rundir}/relay.db",
                   WX_API_BASE=f"http://127.0.0.1:{fport}", RELAY_DESK="webhook",
                   WEBHOOK_URL=f"http://127.0.0.1:{ports['desk']}/hook", WEBHOOK_SECRET=secret,
                   WX_PUSH_TRUST="header", RELAY_LOG_LEVEL="warning")
        relay = procs.start("relay", hypercorn("cloudrun.app:app", rport), ROOT, env, rundir)
        await wait_ready(relay, rport, build_request("GET", "/healthz", {}), "relay GET /healthz")
        pushes = Pushes(args.users, args.connections)

        # A few requests, then idle RSS once their echoes came back.
        probe = Conn("127.0.0.1", rport)
        probes = [pushes.make(u) for u in range(min(5, args.users))]
        try:
            for p in probes:
                status, body = await probe.request(p.raw)
                p.acked = status == 200 and body == b"success"
                if not p.acked:
                    raise Blocked(f"relay answered a push with {status} {body[:300]!r};"
                                  f" stderr:\n{relay.stderr_head()}")
            for _ in range(5):
                await probe.request(build_request("GET", "/healthz", {}))
        except IO_ERRORS as exc:
            raise Blocked(f"probe push failed: {exc!r}; stderr:\n{relay.stderr_head()}") from exc
        finally:
            probe.close()
        st = await wait_sends(fport, len(probes), time.monotonic() + 30, "probes")
        out["probe_stats"] = st
        out["idle_rss_mb"], rows = procs.tree_rss(relay.pid)
        out["idle_rss_processes"] = [{"pid": p, "cmd": c, "mb": round(m, 1)} for p, c, m in rows]

        conns = [Conn("127.0.0.1", rport) for _ in range(args.connections)]
        warm = await drive(conns, pushes.phase(args.warmup), relay.pid)
        await wait_sends(fport, sum(p.acked for p in pushes.by_text.values()),
                         time.monotonic() + 60, "warm-up drain")
        work = pushes.phase(args.pushes)
        ph = await drive(conns, work, relay.pid)
        for c in conns:
            c.close()
        out["relay"] = ph.summary()
        out["relay_warmup_answers"] = dict(warm.statuses)
        expected = sum(p.acked for p in pushes.by_text.values())
        cpu0, t0 = procs.tree_cpu(relay.pid), time.monotonic()
        st = await wait_sends(fport, expected, t0 + args.deadline, "delivery")
        wall = time.monotonic() - t0
        out["drain"] = {"wall_s": round(wall, 1),
                        "server_cpu_pct": round(100 * (procs.tree_cpu(relay.pid) - cpu0) / wall, 1)}
        out["fakes_stats"] = st
        out["e2e"] = analyse(pushes, await get_json(fport, "/_dump"), [p for w in work for p in w], ph.t0)
        out["rss_after_mb"], _ = procs.tree_rss(relay.pid)
        if relay.popen.poll() is not None:
            raise Blocked(f"relay exited (code {relay.popen.returncode}); stderr:\n{relay.stderr_head()}")
    finally:
        if relay is not None:
            relay.stop()
            out["relay_stderr_head"] = relay.stderr_head(5)
        fakes.stop()


def verdicts(out: dict[str, Any]) -> list[tuple[str, Any, Any, str, bool | None]]:
    """(figure, floor, relay, target, pass?) rows for the table."""
    f, r, e = out.get("floor", {}), out.get("relay", {}), out.get("e2e", {})
    ratio = round(r["acks_per_s"] / f["acks_per_s"], 3) if r.get("acks_per_s") and f.get("acks_per_s") else None
    out["ack_ratio"] = ratio
    rss = round(out["idle_rss_mb"], 1) if "idle_rss_mb" in out else None
    after = round(out["rss_after_mb"], 1) if "rss_after_mb" in out else None

    def chk(v: Any, ok: bool) -> bool | None:
        return None if v is None else ok

    return [
        ("acks/s", f.get("acks_per_s"), r.get("acks_per_s"), "", None),
        ("ack throughput relay/floor", "", ratio, ">= 0.8", chk(ratio, (ratio or 0) >= 0.8)),
        ("p50 ack ms", f.get("p50_ms"), r.get("p50_ms"), "", None),
        ("p99 ack ms", f.get("p99_ms"), r.get("p99_ms"), "< 50", chk(r.get("p99_ms"), (r.get("p99_ms") or 1e9) < 50)),
        ("non-success acks", f.get("requests", 0) - f.get("acks_ok", 0) if f else None,
         r.get("requests", 0) - r.get("acks_ok", 0) if r else None, "", None),
        ("server CPU % (of 1 core)", f.get("server_cpu_pct"), r.get("server_cpu_pct"), "", None),
        ("generator CPU %", f.get("generator_cpu_pct"), r.get("generator_cpu_pct"), "", None),
        ("deliveries/s (end-to-end)", "", e.get("deliveries_per_s"), "", None),
        ("lost", "", e.get("lost"), "= 0", chk(e.get("lost"), e.get("lost") == 0)),
        ("duplicated", "", e.get("duplicated"), "= 0", chk(e.get("duplicated"), e.get("duplicated") == 0)),
        ("order violations (per user)", "", e.get("order_violations"), "= 0 (extra)",
         chk(e.get("order_violations"), e.get("order_violations") == 0)),
        ("idle RSS MB (process tree)", "", rss, "< 80", chk(rss, (rss or 1e9) < 80)),
        ("RSS after load MB", "", after, "", None),
    ]


def print_table(out: dict[str, Any]) -> None:
    rows = verdicts(out)
    c = out["config"]
    print(f"\nload bench: {c['pushes']} pushes (+{c['warmup']} warm-up), {c['connections']} connections,"
          f" {c['users']} users, {os.cpu_count()} CPUs")
    print(f"{'figure':<30}{'floor':>11}{'relay':>11}  {'target':<12}result")
    print("-" * 72)
    for name, fv, rv, target, ok in rows:
        res = "" if not target else ("n/a" if ok is None else "PASS" if ok else "MISS")
        print(f"{name:<30}{'' if fv is None else fv!s:>11}{'-' if rv is None else rv!s:>11}  {target:<12}{res}")
    e = out.get("e2e")
    if e:
        print(f"\nend-to-end: {e['measured_delivered']}/{c['pushes']} measured echoes in {e['e2e_span_s']} s;"
              f" {e['sends_total']} sends for {e['pushes_acked_total']} acked pushes (all phases);"
              f" unexpected sends {e['unexpected_sends']}; desk-side order violations {e['desk_order_violations']}")
    if out.get("idle_rss_processes"):
        print("idle RSS by process: " + ", ".join(f"{p['pid']} {p['mb']} MB ({p['cmd'][:40]})"
                                                   for p in out["idle_rss_processes"]))
    st = out.get("fakes_stats")
    if st:
        n = st["counts"]
        print(f"pipeline at the end: {e['pushes_acked_total'] if e else '?'} acked pushes -> {st['events']} desk events"
              f" ({st['redelivered_events']} redelivered) -> {n.get('reply_202', 0)} replies accepted"
              f" -> {st['sends']} WeChat sends; waited {out['drain']['wall_s']} s after the load"
              f" (relay CPU {out['drain']['server_cpu_pct']} %)")
        print(f"fakes counters: {n}")
    if out.get("floor_blocked"):
        print(f"\nFLOOR BLOCKED: {out['floor_blocked']}")
    if out.get("relay_blocked"):
        print(f"\nRELAY BLOCKED: {out['relay_blocked']}")


def tidy(rundir: Path, keep: bool, code: int) -> int:
    """Remove the run directory unless asked to keep it or something failed; pass `code` on."""
    if keep or code:
        print(f"run directory kept: {rundir}", file=sys.stderr)
    else:
        shutil.rmtree(rundir, ignore_errors=True)
    return code


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pushes", type=int, default=20000)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--deadline", type=float, default=None,
                    help="seconds to wait for deliveries after the load (default 60 + pushes/100)")
    ap.add_argument("--skip-floor", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the run directory (logs, SQLite file)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    args = ap.parse_args()
    if args.deadline is None:
        args.deadline = 60 + args.pushes / 100
    if args.users < args.connections:
        ap.error("--users must be >= --connections (each user is pinned to one connection)")
    rundir = Path(tempfile.mkdtemp(prefix="relay-bench-"))
    out: dict[str, Any] = {"config": {k: getattr(args, k) for k in ("pushes", "warmup", "connections", "users")}}
    code = 0
    try:
        if not args.skip_floor:
            print("floor ...", file=sys.stderr)
            out["floor"] = await run_floor(args, rundir)
        print("relay ...", file=sys.stderr)
        try:
            await run_relay(args, rundir, out)
        except Blocked as exc:
            out["relay_blocked"], code = str(exc), 1
    except Blocked as exc:
        out["floor_blocked"], code = str(exc), 1
    verdicts(out)
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    else:
        print_table(out)
    return tidy(rundir, args.keep, code)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
