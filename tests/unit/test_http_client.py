"""The shared HTTP client: its pool polls each connection's own socket, reuses connections, and notices
a server that hung up."""
from __future__ import annotations

import asyncio

import httpcore

from core.http import _Backend, make_client


async def test_the_client_reuses_connections_and_drops_those_the_server_closed():
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await reader.readuntil(b"\r\n\r\n")  # a second request on the same connection
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()  # then the server hangs up

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    client = make_client()
    try:
        assert isinstance(client._transport._pool._network_backend, _Backend)  # httpx still keeps its pool there
        for _ in range(2):
            assert (await client.get(url)).text == "ok"
        assert connections == 1
        await asyncio.sleep(0.05)
        assert (await client.get(url)).text == "ok"  # the closed connection was noticed, not reused
        assert connections == 2
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()


def test_the_backend_is_an_httpcore_backend():
    assert issubclass(_Backend, httpcore.AsyncNetworkBackend)
