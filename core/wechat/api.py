"""The WeChat customer-service API over httpx: send, image upload, typing, with or without a token."""
from __future__ import annotations

import asyncio
import base64
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import httpx

from core import logs
from core.errors import PermanentDeliveryError, RecipientUnreachable, TransientDeliveryError
from core.http import check_status, send
from core.metrics import Metrics
from core.models import AgentReply
from core.wechat import errcodes
from core.wechat.settings import WeChatSettings

log = logs.get("wechat")
TEXT_LIMIT = 2000  # bytes of UTF-8 a shortened text keeps, after WeChat said 45002 (content too long)
TYPING_PATHS = ("/cgi-bin/message/custom/typing", "/cgi-bin/message/custom/business/typing")


class StableToken:
    """A cached `stable_token`, fetched once for all concurrent callers, renewed 5 min before expiry."""

    def __init__(self, settings: WeChatSettings, http: httpx.AsyncClient, clock: Callable[[], float]) -> None:
        self.settings, self.http, self.clock = settings, http, clock
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> str:
        if self._token and self.clock() < self._expires:
            return self._token
        async with self._lock:
            if not (self._token and self.clock() < self._expires):
                await self._fetch()
            assert self._token
            return self._token

    def invalidate(self, token: str) -> None:
        if self._token == token:
            self._token = None

    async def _fetch(self) -> None:
        response = check_status(await send(self.http, "POST", f"{self.settings.api_base}/cgi-bin/stable_token", json={
            "grant_type": "client_credential", "appid": self.settings.appid,
            "secret": self.settings.secret, "force_refresh": False}))
        data = response.json()
        if "access_token" not in data:
            code = int(data.get("errcode", -1))
            raise _error_for("/cgi-bin/stable_token", code, errcodes.action(code), str(data.get("errmsg", "")))
        self._token = str(data["access_token"])
        self._expires = self.clock() + max(60, int(data.get("expires_in", 7200)) - 300)
        log.info("stable_token fetched", extra={"expires_in": data.get("expires_in")})


class WeChatApi:
    def __init__(self, settings: WeChatSettings, http: httpx.AsyncClient, metrics: Metrics,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings, self.http, self.metrics = settings, http, metrics
        self.token = StableToken(settings, http, clock) if settings.secret else None
        self._typing_path = TYPING_PATHS[0]
        self.clock, self._started = clock, clock()

    async def send_reply(self, reply: AgentReply, from_appid: str | None) -> None:
        """Send one agent reply; raises Transient/Permanent/RecipientUnreachable on failure."""
        if reply.kind == "typing":
            await self.typing(reply.openid, reply.command or "Typing", from_appid)
        elif reply.kind == "image" and reply.image_base64:
            data = base64.b64decode(reply.image_base64)
            for attempt in (1, 2):  # 40007: the media expired or vanished, upload once more
                media_id = await self.upload_image(data, from_appid)
                try:
                    return await self.send(reply.openid, {"msgtype": "image", "image": {"media_id": media_id}},
                                           from_appid)
                except PermanentDeliveryError as exc:
                    if exc.errcode != 40007 or attempt == 2:
                        raise
        elif reply.kind == "text" and reply.text:
            try:
                await self.send(reply.openid, _body(reply), from_appid)
            except RecipientUnreachable as exc:  # 45002: too long; send it shortened once
                if exc.errcode != 45002 or len(reply.text.encode()) <= TEXT_LIMIT:
                    raise
                await self.send(reply.openid, _body(dataclasses.replace(reply, text=shorten(reply.text))),
                                from_appid)
        else:
            await self.send(reply.openid, _body(reply), from_appid)

    async def send(self, openid: str, body: dict[str, Any], from_appid: str | None) -> None:
        await self._call("/cgi-bin/message/custom/send", from_appid, json={"touser": openid, **body})

    async def upload_image(self, data: bytes, from_appid: str | None) -> str:
        result = await self._call("/cgi-bin/media/upload", from_appid, params={"type": "image"},
                                  files={"media": ("image.jpg", data, "image/jpeg")})
        return str(result["media_id"])

    async def typing(self, openid: str, command: str, from_appid: str | None) -> None:
        """Typing errors (45072/45080/45081) are ignored; the plain URL first, the business one as fallback."""
        body = {"touser": openid, "command": command}
        try:
            await self._call(self._typing_path, from_appid, json=body)
        except PermanentDeliveryError as exc:
            if exc.errcode != 40101 or self._typing_path == TYPING_PATHS[1]:
                raise
            self._typing_path = TYPING_PATHS[1]
            await self._call(self._typing_path, from_appid, json=body)

    async def _call(self, path: str, from_appid: str | None, *, params: dict[str, str] | None = None,
                    **kwargs: Any) -> dict[str, Any]:
        query = dict(params or {})
        if from_appid:
            query["from_appid"] = from_appid
        for attempt in (1, 2):
            token = await self.token.get() if self.token else None
            if token:
                query["access_token"] = token
            response = check_status(await send(self.http, "POST", f"{self.settings.api_base}{path}",
                                               params=query, **kwargs))
            try:
                data: dict[str, Any] = response.json()
            except ValueError:
                raise TransientDeliveryError(f"{path}: answer is not JSON") from None
            code = int(data.get("errcode", 0) or 0)
            if code == 0:
                return data
            self.metrics.wechat_errors.labels(str(code)).inc()
            action = errcodes.action(code)
            if code == 41001 and not self.token and self.clock() - self._started < errcodes.SIDECAR_GRACE:
                action = "retry_backoff"  # Cloud Run's open-API sidecar is not ready in the first moments
            if action == "ignore":
                return data
            if action == "refresh_token_retry" and token and attempt == 1:
                self.token.invalidate(token)  # type: ignore[union-attr]
                continue
            raise _error_for(path, code, action, str(data.get("errmsg", "")))
        raise PermanentDeliveryError(f"{path}: refused again after a token refresh")


def _error_for(path: str, code: int, action: str, errmsg: str) -> Exception:
    message = f"{path}: errcode {code} {errmsg}".strip()
    if action in errcodes.TRANSIENT:
        return TransientDeliveryError(message, errcode=code, retry_after=errcodes.RETRY_AFTER.get(action))
    if action in errcodes.UNREACHABLE:
        return RecipientUnreachable(message, reason=errcodes.UNREACHABLE[action], errcode=code)
    return PermanentDeliveryError(message, errcode=code)


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Pieces of at most `limit` bytes of UTF-8, cut between characters, at a line break where one
    falls in the second half of a piece."""
    pieces, rest = [], text
    while len(rest.encode()) > limit:
        cut = rest.encode()[:limit].decode(errors="ignore")
        newline = cut.rfind("\n")
        if newline >= len(cut) // 2:
            cut = cut[: newline + 1]
        pieces.append(cut.rstrip("\n"))
        rest = rest[len(cut):]
    pieces = [piece for piece in [*pieces, rest] if piece.strip()]  # WeChat refuses empty texts
    return pieces or [text]


def shorten(text: str, limit: int = TEXT_LIMIT) -> str:
    """At most `limit` bytes of UTF-8, cut between characters, ending in an ellipsis."""
    cut = text.encode()[: limit - 3].decode(errors="ignore")
    return cut + "…"


def _body(reply: AgentReply) -> dict[str, Any]:
    if reply.kind == "text":
        return {"msgtype": "text", "text": {"content": reply.text or ""}}
    if reply.kind == "image":
        return {"msgtype": "image", "image": {"media_id": reply.media_id}}
    if reply.kind == "link":
        return {"msgtype": "link", "link": {"title": reply.title or "", "description": reply.description or "",
                                            "url": reply.url or "", "thumb_url": reply.thumb_url or ""}}
    if reply.kind == "miniprogrampage":
        return {"msgtype": "miniprogrampage", "miniprogrampage": {
            "title": reply.title or "", "pagepath": reply.pagepath or "", "thumb_media_id": reply.thumb_media_id or ""}}
    raise PermanentDeliveryError(f"reply type {reply.kind!r} cannot be sent")
