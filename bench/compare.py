"""Side by side in one run (issue 16): the bare Quart floor, the seed's Express sample and the relay (webhook
desk on) on SQLite and on MariaDB, each under the same `wrk` load of unique pushes from 500 users.

Run: `.venv/bin/python bench/compare.py [--seconds 8] [--connections 32] [--skip-express] [--skip-mariadb]`.
Needs Debian's `wrk`; the Express sample is copied from `--peer` and `npm ci` installs it once into
bench/.peer/ (git-ignored). Prints, per target: acks/s and the ratios, p50/p99 ack latency; for the relay:
the drain rate to the desk after the burst, the full-loop rate (push → desk → echo reply → WeChat send),
lost, duplicated and out-of-order messages, idle and peak RSS. Loopback only; every run is bounded.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import procs
from load import ROOT, get_json, hypercorn, start_fakes, wait_ready
from rawhttp import Conn, build_request

SHARED = ROOT.parent / "shared" / "bench"
PEER = ROOT / "bench" / ".peer"
LUA = ROOT / "bench" / "push.lua"
MARIADB = os.environ.get("BENCH_MARIADB", "mysql://root:@127.0.0.1:3306")
PUSH = build_request("POST", "/", {"Content-Type": "application/json", "x-wx-source": "other"},
                     b'{"action":"CheckContainerPath"}')


def wrk(port: int, seconds: int, connections: int, prefix: str) -> dict[str, Any]:
    """One wrk run; requests/s and latency percentiles in ms."""
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(LUA),
                          f"http://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=seconds + 60,
                         env={**os.environ, "MSGID_PREFIX": prefix}, check=True).stdout
    unit = {"us": 0.001, "ms": 1.0, "s": 1000.0}

    def pct(p: str) -> float:
        value, suffix = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)$", out, re.M).groups()  # type: ignore[union-attr]
        return round(float(value) * unit[suffix], 2)

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"acks_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
            "requests": int(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
            "p50_ms": pct("50"), "p99_ms": pct("99"), "non_2xx": int(errors.group(1)) if errors else 0}


def peer_ready(source: Path) -> Path:
    """The Express sample, installed once with npm ci."""
    if not (PEER / "node_modules").is_dir():
        PEER.mkdir(parents=True, exist_ok=True)
        for name in ("express_demo.js", "package.json", "package-lock.json"):
            shutil.copy(source / name, PEER / name)
        subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=PEER, check=True, timeout=300)
    return PEER


async def measure(name: str, argv: list[str], env: dict[str, str], port: int, args: argparse.Namespace,
                  rundir: Path, prefix: str) -> tuple[dict[str, Any], procs.Proc]:
    proc = procs.start(name, argv, ROOT if name != "express" else PEER, env, rundir)
    await wait_ready(proc, port, PUSH, f"{name} POST /")
    await asyncio.to_thread(wrk, port, 2, args.connections, prefix[:-1] + "0")  # warm-up
    figures = await asyncio.to_thread(wrk, port, args.seconds, args.connections, prefix)
    return figures, proc


async def relay(store: str, url: str, args: argparse.Namespace, rundir: Path, prefix: str) -> dict[str, Any]:
    secret, port = os.urandom(8).hex(), procs.free_port()
    fakes, ports = await start_fakes(rundir, port, secret)
    env = dict(os.environ, DATABASE_URL=url, WX_API_BASE=f"http://127.0.0.1:{ports['wechat']}", RELAY_DESK="webhook",
               WEBHOOK_URL=f"http://127.0.0.1:{ports['desk']}/hook", WEBHOOK_SECRET=secret, RELAY_LOG_LEVEL="warning")
    proc = procs.start(f"relay-{store}", hypercorn("cloudrun.app:app", port), ROOT, env, rundir)
    try:
        await wait_ready(proc, port, build_request("GET", "/healthz", {}), "relay /healthz")
        idle = procs.tree_rss(proc.pid)[0]
        await asyncio.to_thread(wrk, port, 2, args.connections, prefix[:-1] + "0")  # warm-up
        warm = await wait_idle(ports["wechat"], time.monotonic() + 120)
        warm_accepted = await accepted(port)
        peak, stop = [idle], asyncio.Event()
        watcher = asyncio.create_task(sample_rss(proc.pid, peak, stop))
        started = time.monotonic()
        figures = await asyncio.to_thread(wrk, port, args.seconds, args.connections, prefix)
        burst_end = time.monotonic()
        at_end = await get_json(ports["wechat"], "/_stats")
        expected = await accepted(port) - warm_accepted
        desk_done, loop_done = await drained(ports["wechat"], warm["events"] + expected, warm["unique_sends"] + expected,
                                             burst_end + args.deadline)
        stop.set()
        await watcher
        dump = await get_json(ports["wechat"], "/_dump")
        final = await get_json(ports["wechat"], "/_stats")
        expected = await accepted(port) - warm_accepted
        sends = len({content for _user, content, _t in dump["sends"] if f"hello {prefix}-" in content})
        figures.update({
            "drain_per_s": round((warm["events"] + expected - at_end["events"]) / max(desk_done - burst_end, 1e-3), 1)
            if desk_done else None,
            "full_loop_per_s": round(sends / (loop_done - started), 1) if loop_done else None,
            "lost": expected - sends, "duplicated": final["sends"] - final["unique_sends"],
            "out_of_order": out_of_order(dump["sends"]), "idle_rss_mb": round(idle, 1), "peak_rss_mb": round(max(peak), 1)})
        return figures
    finally:
        proc.stop()
        fakes.stop()


async def accepted(port: int) -> int:
    """Pushes the relay has stored, from its own /metrics."""
    conn = Conn("127.0.0.1", port)
    try:
        _status, body = await conn.request(build_request("GET", "/metrics", {}))
    finally:
        conn.close()
    match = re.search(rb'^relay_pushes_total\{result="accepted"\} ([\d.e+]+)$', body, re.M)
    return int(float(match.group(1))) if match else 0


async def wait_idle(fport: int, deadline: float) -> dict[str, Any]:
    """Stats once nothing moved for a second (the warm-up fully relayed)."""
    last, still = None, 0
    while time.monotonic() < deadline:
        st = await get_json(fport, "/_stats")
        key = (st["events"], st["sends"])
        still = still + 1 if key == last else 0
        if still >= 10 and st["pending_replies"] == 0:
            return st
        last = key
        await asyncio.sleep(0.1)
    return await get_json(fport, "/_stats")


async def drained(fport: int, events: int, sends: int, deadline: float) -> tuple[float | None, float | None]:
    """When the desk had every message, and when WeChat had every echo (None: not by the deadline)."""
    desk_done = loop_done = None
    while time.monotonic() < deadline and loop_done is None:
        st = await get_json(fport, "/_stats")
        now = time.monotonic()
        desk_done = desk_done or (now if st["events"] >= events else None)
        loop_done = now if st["unique_sends"] >= sends else None
        await asyncio.sleep(0.05)
    return desk_done, loop_done


def out_of_order(sends: list[list[Any]]) -> int:
    """Echoes that reached WeChat after a later push of the same user (the push counter is in the text)."""
    latest: dict[tuple[str, str], int] = {}
    late = 0
    for user, content, _t in sends:
        match = re.search(r"hello (\d+)-(\d+)", content)
        if match:
            key, n = (user, match.group(1)), int(match.group(2))  # a user's pushes within one wrk run
            late += n < latest.get(key, 0)
            latest[key] = max(n, latest.get(key, 0))
    return late


async def sample_rss(pid: int, peak: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak.append(procs.tree_rss(pid)[0])
        await asyncio.sleep(0.2)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    rundir = Path(tempfile.mkdtemp(prefix="relay-compare-"))
    prefix = f"{int(time.time()) % 90 + 10}"
    out: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(), "seconds": args.seconds,
                           "connections": args.connections}
    port = procs.free_port()
    floor, proc = await measure("floor", hypercorn("bench.floor_app:app", port), dict(os.environ), port, args, rundir,
                                prefix + "1")
    proc.stop()
    out["floor"] = floor
    if not args.skip_express:
        secret, eport = os.urandom(8).hex(), procs.free_port()
        fakes, ports = await start_fakes(rundir, eport, secret)
        try:
            peer_ready(args.peer)
            env = dict(os.environ, PORT=str(eport), WX_API=f"http://127.0.0.1:{ports['wechat']}")
            out["express"], proc = await measure("express", ["node", "express_demo.js"], env, eport, args, rundir,
                                                 prefix + "2")
            proc.stop()
        finally:
            fakes.stop()
    out["relay_sqlite"] = await relay("sqlite", f"sqlite:///{rundir}/relay.db", args, rundir, prefix + "3")
    if not args.skip_mariadb:
        import pymysql
        name = f"relay_bench_{uuid.uuid4().hex[:8]}"
        conn = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
        conn.cursor().execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
        try:
            out["relay_mariadb"] = await relay("mariadb", f"{MARIADB}/{name}", args, rundir, prefix + "4")
        finally:
            conn.cursor().execute(f"DROP DATABASE {name}")
            conn.close()
    shutil.rmtree(rundir, ignore_errors=True)
    return out


def table(out: dict[str, Any]) -> str:
    floor, express = out["floor"], out.get("express", {})
    rows = [f"{'target':<14} {'acks/s':>8} {'/floor':>7} {'/express':>9} {'p50 ms':>7} {'p99 ms':>7} {'p99/floor':>9}"]
    for key in ("floor", "express", "relay_sqlite", "relay_mariadb"):
        f = out.get(key)
        if not f:
            continue
        vs_express = f"{f['acks_per_s'] / express['acks_per_s']:.2f}" if express else "-"
        rows.append(f"{key:<14} {f['acks_per_s']:>8.0f} {f['acks_per_s'] / floor['acks_per_s']:>7.2f} {vs_express:>9}"
                    f" {f['p50_ms']:>7} {f['p99_ms']:>7} {f['p99_ms'] / floor['p99_ms']:>9.2f}")
    for key in ("relay_sqlite", "relay_mariadb"):
        f = out.get(key)
        if f:
            rows.append(f"{key}: drain {f['drain_per_s']}/s, full loop {f['full_loop_per_s']}/s, lost {f['lost']},"
                        f" duplicated {f['duplicated']}, out of order {f['out_of_order']}, RSS idle {f['idle_rss_mb']} MB,"
                        f" peak {f['peak_rss_mb']} MB")
    return "\n".join(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--deadline", type=float, default=180.0, help="seconds to wait for the backlog after a burst")
    parser.add_argument("--skip-express", action="store_true")
    parser.add_argument("--peer", type=Path, default=SHARED, help="the folder with the Express sample")
    parser.add_argument("--skip-mariadb", action="store_true")
    result = asyncio.run(main(parser.parse_args()))
    print(json.dumps(result, indent=1))
    print(table(result))
    sys.exit(0)
