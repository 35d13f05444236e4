"""Neutral request and response types shared by both shells."""
from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]  # names lower-cased
    body: bytes = b""
    remote: str = ""  # the peer's address as the shell saw it (a proxy's, behind one)
    scheme: str = "http"  # as the shell received it; a proxy's `x-forwarded-proto` is in `headers`
    can_stream: bool = False  # the shell can send a body piece by piece (`Response.stream`)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class Response:
    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=lambda: {"content-type": "text/plain; charset=utf-8"})
    # A body sent piece by piece as it is produced (an event stream), instead of `body`; only for
    # requests whose shell `can_stream`. The iterator must end by itself (a bounded lifetime).
    stream: AsyncIterator[bytes] | None = None

    @classmethod
    def text(cls, text: str, status: int = 200) -> Response:
        return cls(status, text.encode())

    @classmethod
    def json(cls, value: object, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
        return cls(status, json.dumps(value, ensure_ascii=False).encode(),
                   {"content-type": "application/json; charset=utf-8", **(headers or {})})


SUCCESS = Response.text("success")
