"""The few Easemob IM REST calls the desk makes, each with the app token and one new token on 401.

A 401 that a new token does not cure, and a 403 (also Easemob's answer when the app's messages-per-minute
limit is reached), are CredentialsRefused: logged loudly and waited out, never dropped."""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from core.desks.easemob.settings import EasemobSettings
from core.desks.easemob.token import AppToken
from core.errors import PermanentDeliveryError, TransientDeliveryError
from core.http import check_status, send

MAX_FILE = 10 << 20  # Easemob's own limit on chat files


class FileGone(PermanentDeliveryError):
    """A chat file Easemob no longer has (expired after 7 days, or never existed)."""


class EasemobApi:
    def __init__(self, settings: EasemobSettings, http: httpx.AsyncClient, clock: Callable[[], float]) -> None:
        self.settings, self.http = settings, http
        self.token = AppToken(settings, http, clock)

    async def register(self, username: str, password: str) -> None:
        """Create an IM user; one that exists already is fine."""
        response = await self._call("POST", "/users", json=[{"username": username, "password": password}])
        if response.status_code == 400 and _error(response) == "duplicate_unique_property_exists":
            return
        check_status(response, _error(response))

    async def send(self, sender: str, to: str, kind: str, body: dict[str, Any], ext: dict[str, Any]) -> str:
        """Send one message from `sender` to `to`; Easemob's id of it ("" if it named none)."""
        message = {"from": sender, "to": [to], "type": kind, "body": body, "ext": ext}
        response = await self._call("POST", "/messages/users", headers={"content-type": "application/json"},
                                    content=json.dumps(message, ensure_ascii=False).encode())  # 5 KB limit: no \u escapes
        check_status(response, _error(response))
        data = _json(response).get("data")
        return str(data.get(to) or "") if isinstance(data, dict) else ""

    async def upload(self, data: bytes, filename: str, content_type: str) -> tuple[str, str]:
        """Store a chat file: (its URL for a message body, its share-secret or "")."""
        response = await self._call("POST", "/chatfiles", files={"file": (filename, data, content_type)})
        check_status(response, _error(response))
        entities = _json(response).get("entities")
        entity = entities[0] if isinstance(entities, list) and entities and isinstance(entities[0], dict) else {}
        uuid = entity.get("uuid")
        if not isinstance(uuid, str) or not uuid:
            raise TransientDeliveryError("Easemob chatfiles upload answered without a file uuid")
        return self.file_url(uuid), str(entity.get("share-secret") or "")

    async def download(self, uuid: str, secret: str) -> bytes:
        """A chat file's bytes, from this app's own host (never from a URL a callback named)."""
        headers = {"accept": "application/octet-stream", **({"share-secret": secret} if secret else {})}
        response = await self._call("GET", f"/chatfiles/{uuid}", headers=headers)
        if response.status_code == 404:
            raise FileGone(f"Easemob chat file {uuid} is gone ({_error(response) or 'not found'})")
        check_status(response, _error(response))
        if len(response.content) > MAX_FILE:
            raise FileGone(f"Easemob chat file {uuid} is over {MAX_FILE} bytes")
        return response.content

    def file_url(self, uuid: str) -> str:
        return f"{self.settings.app_url}/chatfiles/{uuid}"

    async def _call(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                    **kwargs: Any) -> httpx.Response:
        token = await self.token.get()
        for attempt in (1, 2):
            response = await send(self.http, method, f"{self.settings.app_url}{path}",
                                  headers={**(headers or {}), "authorization": f"Bearer {token}"}, **kwargs)
            if response.status_code != 401 or attempt == 2:
                return response
            token = await self.token.refresh(token)
        raise AssertionError("unreachable")


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise TransientDeliveryError(f"Easemob answered HTTP {response.status_code} with a body that is not JSON") \
            from None
    return data if isinstance(data, dict) else {}


def _error(response: httpx.Response) -> str:
    """Easemob's short error name (`error`), for messages and logs; never the request."""
    if response.is_success:
        return ""
    try:
        data = response.json()
    except ValueError:
        return ""
    return str(data.get("error") or "")[:100] if isinstance(data, dict) else ""
