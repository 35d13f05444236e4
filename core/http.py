"""One httpx.AsyncClient factory and the mapping of transport outcomes to delivery errors."""
from __future__ import annotations

import select
import ssl
from collections.abc import Mapping
from typing import Any

import httpcore
import httpx

from core.errors import CredentialsRefused, PermanentDeliveryError, TransientDeliveryError
from core.logs import safe_url

RETRYABLE_STATUS = frozenset({408, 425, 429})  # and every 5xx


TIMEOUT = httpx.Timeout(10.0, connect=5.0)
MAX_CONNECTIONS, MAX_KEEPALIVE = 64, 32


class _KnownSocketStream(httpcore.AsyncNetworkStream):
    """httpcore asks every pooled connection `is_readable` (did the server hang up?) for every request;
    through anyio that builds a dict of attribute getters each time, a third of the client's CPU in the
    relay's profile (bench/README.md). This stream looks its socket up once and polls it directly."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self.inner = inner
        self.socket = inner.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109 - httpcore's interface  # noqa: ASYNC109
        return await self.inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109  # noqa: ASYNC109
        await self.inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:  # noqa: ASYNC109  # noqa: ASYNC109
        return await self.inner.start_tls(ssl_context, server_hostname, timeout)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable" and self.socket is not None:
            readable, _, _ = select.select([self.socket], [], [], 0)
            return bool(readable)
        return self.inner.get_extra_info(info)


class _Backend(httpcore.AnyIOBackend):
    async def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        return _KnownSocketStream(await super().connect_tcp(*args, **kwargs))


def make_client(mounts: Mapping[str, httpx.AsyncBaseTransport] | None = None) -> httpx.AsyncClient:
    """One client for every peer: keep-alive connections, 10 s timeouts, no proxies from the environment;
    `mounts` send some hosts to other transports (the sandbox's stand-in for WeChat)."""
    transport = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=MAX_CONNECTIONS,
                                                             max_keepalive_connections=MAX_KEEPALIVE))
    # httpx 0.28 takes no network backend; its pool is replaced by the same pool on the stream above
    # (tests/unit/test_http_client.py fails if httpx stops keeping the pool there).
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=transport._pool._ssl_context, max_connections=MAX_CONNECTIONS,
        max_keepalive_connections=MAX_KEEPALIVE, network_backend=_Backend())
    return httpx.AsyncClient(transport=transport, timeout=TIMEOUT, trust_env=False, mounts=dict(mounts or {}))


async def send(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """Make a request; a network failure becomes TransientDeliveryError."""
    try:
        return await client.request(method, url, **kwargs)
    except httpx.TransportError as exc:
        raise TransientDeliveryError(f"{method} {safe_url(url)}: {type(exc).__name__}") from None


def check_status(response: httpx.Response, detail: str = "") -> httpx.Response:
    """2xx passes; every 5xx and 408/425/429 are transient; 401 and 403 are a
    configuration fault (CredentialsRefused, also retried); any other status is permanent. `detail` (say,
    the peer's own error text) goes into the message."""
    if response.is_success:
        return response
    message = f"{response.request.method} {safe_url(str(response.request.url))}: HTTP {response.status_code}"
    message += f": {detail}" if detail else ""
    if response.status_code in (401, 403):
        raise CredentialsRefused(message, retry_after=retry_after(response))
    if response.status_code >= 500 or response.status_code in RETRYABLE_STATUS:
        raise TransientDeliveryError(message, retry_after=retry_after(response))
    raise PermanentDeliveryError(message)


def retry_after(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header in seconds; None when absent or a date."""
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


