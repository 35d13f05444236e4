"""Each shell's conversion of core's answer, without a server: a stream passes through Quart piece by
piece with no response timeout; a binary body reaches the cloud function's caller in base64."""
from __future__ import annotations

import base64
import importlib.util
from collections.abc import AsyncIterator

from cloudrun.app import to_quart_response
from core.web import Response
from tests.service import ROOT


def function_index():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("relay_function_answers", ROOT / "cloudfunctions" / "relay" / "index.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_a_stream_passes_through_quart_without_a_timeout():
    async def pieces() -> AsyncIterator[bytes]:
        yield b"retry: 2000\n\n"
        yield b"id: 1\ndata: {}\n\n"

    answer = to_quart_response(Response(200, b"", {"content-type": "text/event-stream"}, stream=pieces()))
    assert answer.timeout is None and answer.headers["content-type"] == "text/event-stream"
    async with answer.response as body:
        assert [piece async for piece in body] == [b"retry: 2000\n\n", b"id: 1\ndata: {}\n\n"]
    plain = to_quart_response(Response.json({"ok": True}))
    assert plain.timeout is not None and await plain.get_data() == b'{"ok": true}'


def test_binary_answers_reach_the_function_caller_in_base64():
    index = function_index()
    picture = b"\x89PNG\r\n\x1a\n\xff\x00"
    binary = index.to_integrated_response(Response(200, picture, {"content-type": "image/png"}))
    assert binary["isBase64Encoded"] and base64.b64decode(binary["body"]) == picture
    text = index.to_integrated_response(Response.json({"conversations": []}))
    assert (text["isBase64Encoded"], text["body"]) == (False, '{"conversations": []}')
    index._loop.close()
