"""The page's files: served from their folder only, with their type, an ETag and security headers."""
from __future__ import annotations

import pytest

from core.desks.inbox.static import StaticFiles
from core.errors import MethodNotAllowed, NotFound
from core.web import Request


def get(path: str, method: str = "GET", **headers: str) -> Request:
    return Request(method, path, {}, headers)


@pytest.fixture
def files(tmp_path):
    root = tmp_path / "static"
    (root / "js").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>Inbox</title>")
    (root / "js" / "app.js").write_text("export const x = 1;")
    (root / ".env").write_text("SECRET=1")
    (root / "notes.py").write_text("x = 1")
    (tmp_path / "outside.html").write_text("outside")
    (root / "link.html").symlink_to(tmp_path / "outside.html")
    return StaticFiles(root)


def test_index_and_files_with_types_and_headers(files):
    index = files.serve(get("/inbox"), "")
    assert index.status == 200 and index.body.startswith(b"<!doctype html>")
    assert index.headers["content-type"] == "text/html; charset=utf-8"
    assert "frame-ancestors 'none'" in index.headers["content-security-policy"]
    assert (index.headers["x-content-type-options"], index.headers["cache-control"]) == ("nosniff", "no-cache")
    script = files.serve(get("/inbox/js/app.js"), "js/app.js")
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    again = files.serve(get("/inbox/js/app.js", **{"if-none-match": script.headers["etag"]}), "js/app.js")
    assert (again.status, again.body) == (304, b"")


@pytest.mark.parametrize("relative", ["../outside.html", "js/../../outside.html", ".env", "notes.py", "missing.js",
                                      "js", "/etc/passwd", "js//app.js", "link.html", "js\\app.js", "a\x00.js"])
def test_anything_else_is_not_found(files, relative):
    with pytest.raises(NotFound):
        files.serve(get("/inbox/" + relative), relative)


def test_only_get(files):
    with pytest.raises(MethodNotAllowed):
        files.serve(get("/inbox", "POST"), "")
