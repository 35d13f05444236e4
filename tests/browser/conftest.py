"""Headless Chromium (Debian's `chromium` package) driven by Playwright against the real service with the
sandbox on and the inbox as desk. Nothing is downloaded: Playwright launches the system browser.

Set INBOX_SCREENSHOTS=<folder> to save the screenshots the README shows (docs/screenshots)."""
from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.service import ROOT, Service

CHROMIUM = Path("/usr/bin/chromium")
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
PASSWORD = "correct horse battery"
SCREENSHOTS = os.environ.get("INBOX_SCREENSHOTS")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One browser per module: Playwright's sync API runs an event loop while it is open, which must be
    closed again before the asyncio tests of other modules run."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install -y chromium); "
                    ".ci/run does it")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        browser.close()


@pytest.fixture
def demo(start_service: Callable[..., Service]) -> Service:
    """The service as `make run` starts it (sandbox on, inbox desk), with an admin `alice` made by the
    operators' tool."""
    service = start_service(RELAY_DESK="inbox", RELAY_SANDBOX="on")
    add_agent(service, "alice", admin=True)
    return service


def add_agent(service: Service, name: str, admin: bool = False) -> None:
    command = [sys.executable, "-m", "core.admin", "agent", "add", name, *(["--admin"] if admin else [])]
    env = {**os.environ, "DATABASE_URL": service.env["DATABASE_URL"]}
    done = subprocess.run(command, input=PASSWORD + "\n", capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def open_page(browser: Browser, demo: Service) -> Iterator[Callable[..., Page]]:
    """open_page("/inbox", locale=..., viewport=..., init_script=..., **context options) -> a page of the
    demo in a browser context of its own; the contexts close before the service stops (no open streams)."""
    contexts: list[BrowserContext] = []

    def open_(path: str, locale: str = "en-US", viewport: dict[str, int] = LAPTOP, init_script: str | None = None,
              **options: Any) -> Page:
        context = browser.new_context(viewport=viewport, locale=locale, **options)
        contexts.append(context)
        if init_script:
            context.add_init_script(init_script)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.goto(demo.url + path)
        return page

    yield open_
    for context in contexts:
        context.close()


def log_in(page: Page, name: str = "alice", password: str = PASSWORD) -> None:
    page.fill("#login-name", name)
    page.fill("#login-password", password)
    page.press("#login-password", "Enter")
    expect(page.locator("#app-view")).to_be_visible()


def eventually(check: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    """Poll `check` until truthy (page.wait_for_function would need eval, which the page's CSP forbids)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def screenshot(page: Page, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / name))


def png(width: int = 240, height: int = 160) -> bytes:
    """A small PNG with a colour gradient (a picture a user might send)."""
    rows = b"".join(b"\x00" + bytes(channel for x in range(width) for channel in
                                     (40 + 180 * x // width, 120 + 100 * y // height, 200 - 120 * x // width))
                    for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
