"""One httpx.AsyncClient factory and the mapping of transport outcomes to delivery errors."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from core.errors import PermanentDeliveryError, TransientDeliveryError

RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}


def make_client(mounts: Mapping[str, httpx.AsyncBaseTransport] | None = None) -> httpx.AsyncClient:
    """The relay's one client; `mounts` send some hosts to other transports (the sandbox's stand-in)."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(10.0, connect=5.0),
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        trust_env=False,
        mounts=dict(mounts or {}),
    )


async def send(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """Make a request; a network failure becomes TransientDeliveryError."""
    try:
        return await client.request(method, url, **kwargs)
    except httpx.TransportError as exc:
        raise TransientDeliveryError(f"{method} {_safe(url)}: {type(exc).__name__}") from None


def check_status(response: httpx.Response, detail: str = "",
                 retryable: frozenset[int] | set[int] = RETRYABLE_STATUS) -> httpx.Response:
    """2xx passes; `retryable` statuses (408/429/5xx) are transient; any other status is permanent.
    `detail` (say, the peer's own error text) goes into the message."""
    if response.is_success:
        return response
    message = f"{response.request.method} {_safe(str(response.request.url))}: HTTP {response.status_code}"
    message += f": {detail}" if detail else ""
    if response.status_code in retryable:
        raise TransientDeliveryError(message, retry_after=_retry_after(response))
    raise PermanentDeliveryError(message)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


def _safe(url: str) -> str:
    """A URL for logs: without its query (tokens live there)."""
    return url.split("?", 1)[0]
