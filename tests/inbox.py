"""Helpers for inbox tests: an agent's browser (cookie jar, CSRF header), an event-stream reader, the
operators' tool as a subprocess, and pushes as Cloud Run sends them."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx

from tests.conftest import fresh_push
from tests.service import RELAY_VARIABLES, ROOT, Service

APPID = "wx8bd01c9a583478cf"
CLOUD_RUN = {"x-wx-source": "other", "x-wx-appid": APPID, "content-type": "application/json"}
PASSWORD = "correct horse battery staple"


def push(service: Service, fixture: str = "wechat/cloudrun-push.text.msgid64.json", **fields: Any) -> None:
    answer = service.post("/", fresh_push(fixture, **fields), CLOUD_RUN)
    assert (answer.status_code, answer.text) == (200, "success")


def conversation_path(openid: str) -> str:
    return "/inbox/api/conversations/" + quote(f"{APPID}:{openid}", safe="")


def admin_tool(database_url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`python -m core.admin ARGS` with only the store's configuration, as an operator runs it."""
    env = {k: v for k, v in os.environ.items() if k not in RELAY_VARIABLES}
    env["DATABASE_URL"] = database_url
    return subprocess.run([sys.executable, "-m", "core.admin", *args], cwd=ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=60)


def add_agent(database_url: str, name: str, admin: bool = False, password: str = PASSWORD) -> None:
    done = admin_tool(database_url, "agent", "add", name, *(["--admin"] if admin else []), stdin=password + "\n")
    assert done.returncode == 0, done.stdout + done.stderr


class Agent:
    """An agent's browser: keeps the session cookie and sends the CSRF token on state-changing calls."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=10)
        self.csrf: str | None = None

    def login(self, name: str, password: str = PASSWORD) -> httpx.Response:
        answer = self.http.post("/inbox/api/login", json={"name": name, "password": password})
        if answer.status_code == 200:
            self.csrf = answer.json()["csrf_token"]
        return answer

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(path, params=params)

    def send(self, method: str, path: str, body: Any = None, csrf: bool = True, **kwargs: Any) -> httpx.Response:
        headers = {"x-csrf-token": self.csrf} if csrf and self.csrf else {}
        return self.http.request(method, path, json=body, headers=headers, **kwargs)

    def post(self, path: str, body: Any = None, csrf: bool = True, **kwargs: Any) -> httpx.Response:
        return self.send("POST", path, body, csrf, **kwargs)

    def messages(self, openid: str) -> list[dict[str, Any]]:
        answer = self.get(conversation_path(openid) + "/messages")
        if answer.status_code == 404:
            return []  # not yet in the inbox
        assert answer.status_code == 200, answer.text
        return answer.json()["messages"]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}")

    def close(self) -> None:
        self.http.close()


class EventStream:
    """Reads `GET /inbox/api/events` as a browser's EventSource would, on a thread."""

    def __init__(self, agent: Agent, headers: dict[str, str] | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self.status: int | None = None
        self.content_type = ""
        self.ended = threading.Event()
        self._response: httpx.Response | None = None
        self._thread = threading.Thread(target=self._read, args=(agent, headers or {}), daemon=True)
        self._thread.start()

    def _read(self, agent: Agent, headers: dict[str, str]) -> None:
        try:
            with agent.http.stream("GET", "/inbox/api/events", headers=headers,
                                   timeout=httpx.Timeout(10, read=30)) as response:
                self._response = response
                self.status, self.content_type = response.status_code, response.headers.get("content-type", "")
                for line in response.iter_lines():
                    self.raw.append(line)
                    if line.startswith("data: "):
                        self.events.append(json.loads(line[6:]))
        except (httpx.HTTPError, RuntimeError):
            pass
        finally:
            self.ended.set()

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = next((event for event in list(self.events) if predicate(event)), None)
            if found is not None:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no such event within {timeout}s; got {self.events}")

    def wait_open(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.raw and time.monotonic() < deadline:
            time.sleep(0.02)
        assert self.raw, "the event stream did not open"

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
        self._thread.join(5)


def setup_token(service: Service, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"/inbox#setup=([A-Za-z0-9_-]+)", service.logs())
        if found:
            return found.group(1)
        time.sleep(0.05)
    raise AssertionError("no set-up link in the service's log")
