"""One httpx.AsyncClient factory and the mapping of transport outcomes to delivery errors."""
from __future__ import annotations

from typing import Any

import httpx

from core.errors import CredentialsRefused, PermanentDeliveryError, TransientDeliveryError
from core.logs import safe_url

RETRYABLE_STATUS = frozenset({408, 425, 429})  # and every 5xx


def make_client() -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(10.0, connect=5.0),
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
        trust_env=False,
    )


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
        raise CredentialsRefused(message, retry_after=_retry_after(response))
    if response.status_code >= 500 or response.status_code in RETRYABLE_STATUS:
        raise TransientDeliveryError(message, retry_after=_retry_after(response))
    raise PermanentDeliveryError(message)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.isdigit() else None


