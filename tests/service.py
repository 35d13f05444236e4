"""Run the real service under Hypercorn in a child process, on 127.0.0.1, with a given environment."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from core.config import variables_read

ROOT = Path(__file__).resolve().parent.parent
RELAY_VARIABLES = frozenset(variables_read())  # the service gets only the environment a test gives it


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env, self.log_path = env, log_path
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> Service:
        env = {k: v for k, v in os.environ.items() if k not in RELAY_VARIABLES}
        env.update(self.env)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hypercorn", "cloudrun.app:app", "--bind", f"127.0.0.1:{self.port}",
             "--workers", "0", "--read-timeout", "10"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc and self.proc.poll() is not None:
                raise AssertionError(f"service exited with {self.proc.returncode}:\n{self.logs()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"service not ready after {timeout}s:\n{self.logs()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing; what was committed is all that survives."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def post(self, path: str = "/", body: bytes | str = b"", headers: dict[str, str] | None = None,
             params: dict[str, str] | None = None) -> httpx.Response:
        data = body.encode() if isinstance(body, str) else body
        return httpx.post(f"{self.url}{path}", content=data, headers=headers or {}, params=params, timeout=10)

    def metric(self, name: str, **labels: str) -> float:
        """One sample of /metrics (0 when absent), e.g. metric("relay_outbox_jobs", status="dead")."""
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        selector = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        match = re.search(rf"^{name}\{{{re.escape(selector)}\}} (\S+)$", text, re.M)
        return float(match.group(1)) if match else 0.0
