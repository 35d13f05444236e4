"""A small recording HTTP server on 127.0.0.1 that answers from a per-path script."""
from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.polling import eventually


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int = 0  # what the fake answered
    answer: Any = None

    def json(self) -> Any:
        return json.loads(self.body)


Answer = tuple[Any, ...]  # (status, JSON value or bytes[, extra response headers])


@dataclass
class FakeServer:
    """Subclasses implement `answer(recorded) -> (status, body)`; `script(path, *answers)` queues
    answers that take precedence (e.g. 503, 503, then the default); `script("POST /path", ...)` only
    for that method."""

    requests: list[Recorded] = field(default_factory=list)
    down: int | None = None  # when set, every unscripted request gets this status (an outage)
    delay: float = 0.0  # seconds before each answer (a slow peer)
    port: int = 0  # 0: any free port; a given one brings a peer back where the service expects it

    def __post_init__(self) -> None:
        self._scripts: dict[str, deque[Answer]] = defaultdict(deque)
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                fake._serve(self)

            do_GET = do_PUT = do_PATCH = do_DELETE = do_POST

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def script(self, path: str, *answers: Answer) -> None:
        with self._lock:
            self._scripts[path].extend(answers)

    def answer(self, recorded: Recorded) -> Answer:
        return 200, {}

    def received(self, path: str, ok_only: bool = True) -> list[Recorded]:
        """Requests to `path`; by default only those the fake answered with a 2xx (delivered)."""
        with self._lock:
            return [r for r in self.requests if r.path == path and (200 <= r.status < 300 or not ok_only)]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
        """Poll `predicate` until truthy or fail after `timeout` seconds."""
        return eventually(predicate, what, timeout)

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length) if length else b""
        parts = urlsplit(handler.path)
        recorded = Recorded(handler.command, parts.path, dict(parse_qsl(parts.query)),
                            {k.lower(): v for k, v in handler.headers.items()}, body)
        with self._lock:
            queue = self._scripts[f"{handler.command} {parts.path}"] or self._scripts[parts.path]
            scripted = queue.popleft() if queue else None
        if scripted is None and self.down:
            scripted = (self.down, {"error": "outage"})
        if self.delay:
            time.sleep(self.delay)
        status, value, *extra = scripted or self.answer(recorded)
        recorded.status, recorded.answer = status, value
        with self._lock:
            self.requests.append(recorded)
        self._reply(handler, status, value, extra[0] if extra else {})

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, status: int, value: Any, headers: dict[str, str]) -> None:
        data = value if isinstance(value, bytes) else json.dumps(value, ensure_ascii=False).encode()
        handler.send_response(status)
        headers = {"content-type": "application/json", **headers}
        for name, header_value in headers.items():
            handler.send_header(name, header_value)
        handler.send_header("content-length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
