"""The app token (`client_credentials`). Easemob bans apps that ask for tokens too often, so every
path to a fetch is rationed: one fetch serves all concurrent callers, a token is kept until shortly
before it expires, a 401 earns one new token at most once a minute, and a failed fetch blocks further
fetches for a growing pause (2 s, 4 s … 300 s) whoever asks. Refused credentials are CredentialsRefused
(a configuration fault, logged loudly and retried); other failures are transient: nothing is dropped."""
from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

from core import logs
from core.desks.easemob.settings import EasemobSettings
from core.errors import CredentialsRefused, DeliveryError, TransientDeliveryError
from core.http import check_status, send

log = logs.get("easemob")
REFRESH_EVERY = 60.0  # at most one 401-driven fetch per this many seconds
MAX_PAUSE = 300.0


class AppToken:
    def __init__(self, settings: EasemobSettings, http: httpx.AsyncClient, clock: Callable[[], float]) -> None:
        self.settings, self.http, self.clock = settings, http, clock
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()
        self._failures = 0
        self._paused_until = 0.0  # no fetch before this, after a failure
        self._refreshed_at = float("-inf")  # the last fetch a 401 caused

    async def get(self) -> str:
        if self._valid():
            return self._token  # type: ignore[return-value]
        async with self._lock:
            if not self._valid():
                await self._fetch()
            return self._token  # type: ignore[return-value]

    async def refresh(self, refused: str) -> str:
        """A new token after Easemob answered 401 to `refused`; at most once a minute, else the caller
        waits (a fresh token refused at once means something else is wrong: no loop of fetches)."""
        async with self._lock:
            if self._valid() and self._token != refused:
                return self._token  # type: ignore[return-value]  # another caller refreshed already
            now = self.clock()
            if now - self._refreshed_at < REFRESH_EVERY:
                raise TransientDeliveryError("Easemob refused a token fetched moments ago (401)",
                                             retry_after=self._refreshed_at + REFRESH_EVERY - now)
            self._refreshed_at, self._token = now, None
            await self._fetch()
            return self._token  # type: ignore[return-value]

    def _valid(self) -> bool:
        return self._token is not None and self.clock() < self._expires

    async def _fetch(self) -> None:
        now = self.clock()
        if now < self._paused_until:
            raise TransientDeliveryError("Easemob token: waiting after a failed fetch",
                                         retry_after=self._paused_until - now)
        try:
            response = await send(self.http, "POST", f"{self.settings.app_url}/token", json={
                "grant_type": "client_credentials", "client_id": self.settings.client_id,
                "client_secret": self.settings.client_secret})
            if response.status_code in (400, 401, 403):  # Easemob's answers to a wrong client id or secret
                raise CredentialsRefused(f"Easemob refused the app's client id or secret: HTTP {response.status_code}")
            check_status(response)
            data = response.json()
            token, expires_in = data["access_token"], int(data.get("expires_in") or 0)
            if not isinstance(token, str) or not token:
                raise ValueError("no access_token")
        except (DeliveryError, ValueError, KeyError, TypeError) as exc:
            self._failures += 1
            pause = min(MAX_PAUSE, 2.0 ** self._failures)
            self._paused_until = self.clock() + pause
            log.error("Easemob token fetch failed", extra={"error": str(exc), "pause_seconds": pause})
            kind = CredentialsRefused if isinstance(exc, CredentialsRefused) else TransientDeliveryError
            raise kind(f"Easemob token fetch failed: {exc}", retry_after=pause) from None
        self._failures = 0
        self._token = token
        self._expires = self.clock() + _keep_for(expires_in)
        log.info("Easemob token fetched", extra={"expires_in": expires_in})


def _keep_for(expires_in: int) -> float:
    """Seconds to keep a token: until a tenth of its life (at most an hour) before it expires."""
    if expires_in <= 0:
        return 3600.0  # no lifetime given: an hour, then a fresh one
    return expires_in - min(3600.0, expires_in / 10)
