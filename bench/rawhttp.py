"""Minimal HTTP/1.1 over asyncio streams, shared by the load generator and the fakes.

Only what the bench needs: Content-Length bodies (plus chunked responses), keep-alive.
"""
from __future__ import annotations

import asyncio

Headers = dict[str, str]
_MAX_HEAD = 64 * 1024


def build_request(method: str, path: str, headers: Headers, body: bytes = b"",
                  host: str = "127.0.0.1") -> bytes:
    """Serialise one keep-alive request (Content-Length always set)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def build_response(status: int, body: bytes, content_type: str = "application/json") -> bytes:
    """Serialise one keep-alive response."""
    head = (f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


def _parse_headers(lines: list[bytes]) -> Headers:
    headers: Headers = {}
    for line in lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return headers


async def _read_body(reader: asyncio.StreamReader, headers: Headers) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        parts: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers expected
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    n = int(headers.get("content-length", "0"))
    return await reader.readexactly(n) if n else b""


async def read_response(reader: asyncio.StreamReader) -> tuple[int, Headers, bytes]:
    """Read one response; raises asyncio.IncompleteReadError if the peer closed."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers = _parse_headers(lines[1:])
    return status, headers, await _read_body(reader, headers)


async def read_request(reader: asyncio.StreamReader) -> tuple[str, str, Headers, bytes] | None:
    """Read one request (method, target, headers, body), or None at a clean EOF."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head[:-4].split(b"\r\n")
    method, target, _ = lines[0].decode("latin-1").split(" ", 2)
    headers = _parse_headers(lines[1:])
    return method, target, headers, await _read_body(reader, headers)


class Conn:
    """One keep-alive client connection that reconnects after the peer closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._r: asyncio.StreamReader | None = None
        self._w: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        """Open the connection now unless it is open and not closed by the peer."""
        if self._r is not None and self._r.at_eof():
            self.close()  # the server closed it while idle (keep-alive timeout)
        if self._w is None or self._r is None:
            self._r, self._w = await asyncio.open_connection(self.host, self.port, limit=_MAX_HEAD)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        """Send pre-built request bytes, return (status, body)."""
        await self.connect()
        assert self._r is not None and self._w is not None
        try:
            self._w.write(raw)
            status, headers, body = await read_response(self._r)
        except BaseException:
            self.close()
            raise
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, body

    def close(self) -> None:
        if self._w is not None:
            self._w.close()
        self._r = self._w = None
