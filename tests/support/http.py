"""Helpers for the phaseloop.http tests: run an App on a loop, talk raw HTTP.

(No tests here; the other tests/test_http*.py modules import these.)
"""
from __future__ import annotations

import asyncio
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import httptools

from phaseloop.http import App


@dataclass
class Resp:
    """One parsed HTTP response."""
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    header_list: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    chunked: bool = False

    def json(self) -> Any:
        import json
        return json.loads(self.body)


class _Collector:
    def __init__(self) -> None:
        self.responses: list[Resp] = []
        self.current: Resp | None = None
        self.parser: Any = None

    def on_message_begin(self) -> None:
        self.current = Resp()

    def on_header(self, name: bytes, value: bytes) -> None:
        n, v = name.decode("latin-1"), value.decode("latin-1")
        self.current.header_list.append((n, v))
        self.current.headers[n.lower()] = v
        if n.lower() == "transfer-encoding" and "chunked" in v.lower():
            self.current.chunked = True

    def on_headers_complete(self) -> None:
        self.current.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.current.body += body

    def on_message_complete(self) -> None:
        self.responses.append(self.current)
        self.current = None


def parse_responses(data: bytes, *, head: bool = False) -> list[Resp]:
    """Parse every complete response in ``data`` (1xx interim responses included)."""
    col = _Collector()
    parser = httptools.HttpResponseParser(col)
    col.parser = parser
    if head:
        # A response to HEAD has no body whatever its Content-Length says.
        for block in data.split(b"\r\n\r\n"):
            if block.startswith(b"HTTP/"):
                lines = block.split(b"\r\n")
                r = Resp(status=int(lines[0].split()[1]))
                for line in lines[1:]:
                    n, _, v = line.decode("latin-1").partition(":")
                    r.headers[n.strip().lower()] = v.strip()
                col.responses.append(r)
        return col.responses
    try:
        parser.feed_data(data)
    except httptools.HttpParserUpgrade:
        pass
    return col.responses


async def exchange(port: int, data: bytes, *, eof: bool = False, timeout: float = 3.0) -> bytes:
    """Send ``data`` on a new connection and read until the server closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        if eof:
            writer.write_eof()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


async def request(port: int, method: str = "GET", path: str = "/", body: bytes | None = None,
                  headers: dict[str, str] | None = None) -> Resp:
    """One request with Connection: close; returns the parsed response."""
    lines = [f"{method} {path} HTTP/1.1", "Host: test"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    raw = ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")
    data = await exchange(port, raw)
    responses = parse_responses(data, head=(method == "HEAD"))
    assert len(responses) == 1, data
    return responses[0]


def run_app(loop: asyncio.AbstractEventLoop, app: App,
            client: Callable[[int], Awaitable[Any]], *, timeout: float = 8.0) -> Any:
    """Serve ``app`` on 127.0.0.1 on ``loop``, run ``client(port)``, stop; returns its result."""
    async def main() -> Any:
        server = await app.listen(0)
        port = server.sockets[0].getsockname()[1]
        try:
            return await asyncio.wait_for(client(port), timeout)
        finally:
            server.close()
            await app.drain(1.0)
            await server.wait_closed()
    return loop.run_until_complete(main())


def fetch(port: int | None = None, path: str = "/", *, method: str = "GET",
          body: bytes | None = None, headers: dict[str, str] | None = None,
          uds: str | None = None, source: str | None = None, cafile: str | None = None,
          timeout: float = 5.0) -> Resp:
    """One request, from a plain (blocking) socket, with ``Connection: close``: to
    127.0.0.1:``port``, or to the Unix socket ``uds``; from the source address
    ``source`` (any of 127.0.0.0/8); over TLS trusting ``cafile``. The response."""
    if uds is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(uds)
    else:
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                        source_address=(source, 0) if source else None)
    if cafile is not None:
        sock = ssl.create_default_context(cafile=cafile).wrap_socket(
            sock, server_hostname="localhost")
    lines = [f"{method} {path} HTTP/1.1", "Host: test"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    with sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b""))
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    responses = parse_responses(data, head=(method == "HEAD"))
    assert len(responses) == 1, data
    return responses[0]
