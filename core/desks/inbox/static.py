"""The page's files, served from a folder: no directory traversal, a fixed list of types, ETags, and
security headers on every answer."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

from core.errors import MethodNotAllowed, NotFound
from core.web import Request, Response

TYPES = {
    ".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json; charset=utf-8", ".webmanifest": "application/manifest+json; charset=utf-8",
    ".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp",
    ".ico": "image/x-icon", ".woff2": "font/woff2", ".txt": "text/plain; charset=utf-8",
}
SAFE_PATH = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")
# The page loads nothing from elsewhere and runs no inline script: say so to the browser.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data: blob:; script-src 'self';"
                               " style-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none';"
                               " form-action 'self'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


class StaticFiles:
    def __init__(self, root: Path, index: str = "index.html") -> None:
        self.root, self.index = root.resolve(), index

    def serve(self, request: Request, relative: str) -> Response:
        """`relative` is the path under the folder ("" for the index page)."""
        if request.method not in ("GET", "HEAD"):
            raise MethodNotAllowed("use GET")
        relative = relative or self.index
        if not SAFE_PATH.fullmatch(relative) or ".." in relative.split("/"):
            raise NotFound("no such file")
        path = (self.root / relative).resolve()
        kind = TYPES.get(path.suffix.lower())
        if kind is None or not path.is_relative_to(self.root) or not path.is_file():
            raise NotFound("no such file")
        data = path.read_bytes()
        etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
        headers = {"content-type": kind, "cache-control": "no-cache", "etag": etag, **SECURITY_HEADERS}
        if etag in (request.header("if-none-match") or ""):
            return Response(304, b"", headers)
        return Response(200, b"" if request.method == "HEAD" else data, headers)
