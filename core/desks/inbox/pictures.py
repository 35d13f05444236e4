"""Pictures kept with their messages: the user's, fetched once from WeChat's PicUrl (those links
expire, and an https page cannot show an http image), and the agents' uploads. Only JPEG, PNG, GIF and
WebP are kept, recognised by their first bytes, never by what a server or a browser claims."""
from __future__ import annotations

import httpx

from core import logs
from core.desks.inbox.store import Picture
from core.errors import PermanentDeliveryError
from core.http import check_status, send

log = logs.get("inbox")
MAX_BYTES = 10 * 1024 * 1024  # WeChat's own limit for an image
SIGNATURES = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"), (b"GIF87a", "image/gif"),
              (b"GIF89a", "image/gif"))


def sniff(data: bytes) -> str | None:
    """The picture's content type from its first bytes, or None when it is not a picture we keep."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for magic, kind in SIGNATURES if data.startswith(magic)), None)


def picture(data: bytes) -> Picture | None:
    kind = sniff(data)
    return Picture(kind, data) if kind and len(data) <= MAX_BYTES else None


async def fetch(http: httpx.AsyncClient, url: str) -> Picture | None:
    """The picture at `url`. A network failure or a 5xx raises TransientDeliveryError (the outbox tries
    again); a link that is gone (4xx), too big, or not a picture gives None: the message is kept without it."""
    if not url.startswith(("http://", "https://")):
        return None
    try:
        response = check_status(await send(http, "GET", url))
    except PermanentDeliveryError as exc:
        log.warning("a user's picture could not be fetched; kept without it", extra={"error": str(exc)})
        return None
    kept = picture(response.content)
    if kept is None:
        log.warning("a user's picture was not kept (not a picture, or too big)", extra={"bytes": len(response.content)})
    return kept
