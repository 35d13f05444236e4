"""Subprocess helpers for the bench: start/stop servers, read RSS and CPU from /proc."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    """A started subprocess whose stdout/stderr go to files in the run directory."""

    name: str
    popen: subprocess.Popen[bytes]
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stderr_head(self, lines: int = 15) -> str:
        try:
            text = self.stderr_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[:lines])

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM this process (its own children follow it), SIGKILL the tree if it lingers."""
        if self.popen.poll() is not None:
            return
        tree = descendants(self.pid)
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            for pid in [self.pid, *tree]:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.popen.wait()


def start(name: str, argv: list[str], cwd: Path, env: dict[str, str], rundir: Path,
          stdout_pipe: bool = False) -> Proc:
    """Start `argv` with stderr (and stdout unless piped) captured in `rundir`."""
    err = rundir / f"{name}.stderr"
    out = subprocess.PIPE if stdout_pipe else open(rundir / f"{name}.stdout", "wb")
    popen = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=open(err, "wb"),
                             stdin=subprocess.DEVNULL)
    return Proc(name, popen, err)


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid`, from the ppid field of /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


def rss_kb(pid: int) -> int:
    """VmRSS of one process in kB (0 if gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss(pid: int) -> tuple[float, list[tuple[int, str, float]]]:
    """Total VmRSS in MB of `pid` and its descendants, plus (pid, comm, MB) per process."""
    rows = []
    for p in [pid, *descendants(pid)]:
        try:
            comm = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:60].strip()
        except OSError:
            comm = "?"
        rows.append((p, comm, rss_kb(p) / 1024))
    return sum(r[2] for r in rows), rows


def tree_cpu(pid: int) -> float:
    """User+system CPU seconds used so far by `pid` and its live descendants."""
    total = 0
    for p in [pid, *descendants(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / _TICK
