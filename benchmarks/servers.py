"""The servers of the server benchmarks (benchmarks.echo, benchmarks.http, benchmarks.tls).

One server per process, on the loop and in the style asked for::

    python -m benchmarks.servers --loop uvloop --style protocol --port 0

listens on 127.0.0.1 and prints ``ready PORT`` (the port it got: ``--port 0`` picks
a free one) once connections can come; it then serves until killed (SIGTERM or
SIGINT).  Styles:

- ``protocol``: an ``asyncio.Protocol`` from ``loop.create_server`` whose
  ``data_received`` writes the data back;
- ``streams``: ``asyncio.start_server``; each client is a task that reads
  (``reader.read``), writes back and awaits ``writer.drain()``;
- ``sock``: a listening socket served with ``loop.sock_accept``, one task per
  client doing ``loop.sock_recv`` then ``loop.sock_sendall``;
- ``http``: an HTTP/1.1 server on httptools' request parser (a protocol) that
  answers every request with a fixed "Hello, World!" and keeps the connection
  open unless the request asks to close it;
- ``https``: the same over TLS, ``tls-echo``: ``protocol`` over TLS (both need
  ``--cert`` and ``--key``: the server's certificate chain and key, PEM).

The loop is one of ``benchmarks.loops.LOOP_NAMES``.  A loop that does not import
makes the process print ``{"missing": REASON}`` and exit with status 3
(``EXIT_LOOP_MISSING``, as the micro-benchmarks do); a loop that does not
implement what the style needs (``NotImplementedError``) prints
``{"unsupported": REASON}`` and exits with status 4 (``EXIT_UNSUPPORTED``); both
are ``benchmarks.harness``'s, whose ``start_server`` reads these lines.  The
parent side builds the command line with :func:`python_server_command`.  The
``sock`` style checks sock_accept, sock_recv and sock_sendall on a connection to
itself before it says ``ready``, so a loop without them fails there and not on the
benchmark's first client.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import ssl
import subprocess
import sys
from typing import Awaitable, Callable, Sequence

from benchmarks.harness import (
    EXIT_LOOP_MISSING,
    EXIT_UNSUPPORTED,
    raise_fd_limit,
    say_ready,
    say_unavailable,
)
from benchmarks.loops import LOOP_NAMES, LoopMissing, load_loop_factory

__all__ = ["STYLES", "EchoProtocol", "main", "make_certificate", "python_server_command",
           "server_tls_context"]

#: Largest read of the streams and sock styles (a common application choice).
READ_SIZE = 64 * 1024
#: Listen backlog: deep enough for the idle-connection benchmark's bursts.
BACKLOG = 4096
#: Seconds the sock style's self-check may take before the loop is called broken.
SELF_CHECK_TIMEOUT = 5.0
#: The HTTP server's answer to every request.
HTTP_RESPONSE = (b"HTTP/1.1 200 OK\r\n"
                 b"Content-Type: text/plain\r\n"
                 b"Content-Length: 13\r\n"
                 b"\r\n"
                 b"Hello, World!")
HTTP_BAD_REQUEST = (b"HTTP/1.1 400 Bad Request\r\n"
                    b"Content-Length: 0\r\n"
                    b"Connection: close\r\n"
                    b"\r\n")

Loop = asyncio.AbstractEventLoop


class EchoProtocol(asyncio.Protocol):
    """Writes back whatever it receives."""

    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class HttpHelloProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive server answering "Hello, World!" to every request."""

    def __init__(self) -> None:
        import httptools  # here, so that the echo styles run without it

        self._parser = httptools.HttpRequestParser(self)
        self._parse_error = httptools.HttpParserError
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except self._parse_error:
            assert self.transport is not None
            self.transport.write(HTTP_BAD_REQUEST)
            self.transport.close()

    def on_message_complete(self) -> None:
        """httptools' callback: one whole request has been parsed."""
        assert self.transport is not None
        self.transport.write(HTTP_RESPONSE)
        if not self._parser.should_keep_alive():
            self.transport.close()


async def echo_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """start_server's client callback: echo until the client closes."""
    try:
        while data := await reader.read(READ_SIZE):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def echo_sock(loop: Loop, conn: socket.socket) -> None:
    """Echo on one accepted socket with sock_recv/sock_sendall until the client closes."""
    try:
        while data := await loop.sock_recv(conn, READ_SIZE):
            await loop.sock_sendall(conn, data)
    except ConnectionError:
        pass
    finally:
        conn.close()


def listening_socket(port: int) -> socket.socket:
    """A nonblocking TCP socket listening on 127.0.0.1:``port``."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(BACKLOG)
    listener.setblocking(False)
    return listener


async def check_sock_api(loop: Loop) -> None:
    """Accept a connection to a throw-away listener and echo one byte with sock_*.

    Raises NotImplementedError where the loop lacks one of the methods.
    """
    with listening_socket(0) as listener, \
            socket.create_connection(listener.getsockname(), timeout=SELF_CHECK_TIMEOUT) as client:
        conn, _ = await loop.sock_accept(listener)
        with conn:
            conn.setblocking(False)
            client.sendall(b"?")
            await loop.sock_sendall(conn, await loop.sock_recv(conn, 1))
            if client.recv(1) != b"?":
                raise RuntimeError("the sock_* self-check got a different byte back")


async def serve_sock(loop: Loop, listener: socket.socket) -> None:
    """Accept clients forever; each one gets an echo_sock task."""
    clients: set[asyncio.Task[None]] = set()  # keeps the tasks alive
    while True:
        conn, _ = await loop.sock_accept(listener)
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        task = loop.create_task(echo_sock(loop, conn))
        clients.add(task)
        task.add_done_callback(clients.discard)


async def start_protocol(loop: Loop, port: int,
                         tls: ssl.SSLContext | None) -> tuple[int, asyncio.Future | None]:
    server = await loop.create_server(EchoProtocol, "127.0.0.1", port, backlog=BACKLOG, ssl=tls)
    return server.sockets[0].getsockname()[1], None


async def start_streams(loop: Loop, port: int,
                        tls: ssl.SSLContext | None) -> tuple[int, asyncio.Future | None]:
    server = await asyncio.start_server(echo_stream, "127.0.0.1", port, backlog=BACKLOG)
    return server.sockets[0].getsockname()[1], None


async def start_sock(loop: Loop, port: int,
                     tls: ssl.SSLContext | None) -> tuple[int, asyncio.Future | None]:
    await asyncio.wait_for(check_sock_api(loop), SELF_CHECK_TIMEOUT)
    listener = listening_socket(port)
    return listener.getsockname()[1], loop.create_task(serve_sock(loop, listener))


async def start_http(loop: Loop, port: int,
                     tls: ssl.SSLContext | None) -> tuple[int, asyncio.Future | None]:
    server = await loop.create_server(HttpHelloProtocol, "127.0.0.1", port, backlog=BACKLOG,
                                      ssl=tls)
    return server.sockets[0].getsockname()[1], None


#: A style's start-up: listen on the port (0: any), with TLS when given a context;
#: return the port and the task that serves, if the style has one (None: the
#: loop's server serves).
Starter = Callable[[Loop, int, "ssl.SSLContext | None"],
                   Awaitable[tuple[int, "asyncio.Future | None"]]]
#: What each style needs from the loop (shown when it is unsupported) and its starter.
STYLES: dict[str, tuple[str, Starter]] = {
    "protocol": ("loop.create_server", start_protocol),
    "streams": ("asyncio.start_server (loop.create_server)", start_streams),
    "sock": ("loop.sock_accept/sock_recv/sock_sendall", start_sock),
    "http": ("loop.create_server", start_http),
    "https": ("loop.create_server(ssl=...)", start_http),
    "tls-echo": ("loop.create_server(ssl=...)", start_protocol),
}
#: The styles that serve over TLS.
TLS_STYLES = ("https", "tls-echo")


def make_certificate(directory: str) -> tuple[str, str]:
    """(cert.pem, key.pem) in ``directory``: a self-signed ECDSA P-256 certificate
    for localhost, made with the ``openssl`` command (SystemExit without it)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise SystemExit("the TLS benchmarks need the openssl command")
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


def server_tls_context(cert: str, key: str) -> ssl.SSLContext:
    """The servers' TLS context: Python's defaults for a server, this certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def serve(loop_name: str, style: str, port: int, tls: ssl.SSLContext | None = None) -> int:
    """Run the server until killed; the process's exit status."""
    try:
        factory, _version = load_loop_factory(loop_name)
    except LoopMissing as exc:
        say_unavailable("missing", str(exc))
        return EXIT_LOOP_MISSING
    needs, start = STYLES[style]
    loop = factory()
    asyncio.set_event_loop(loop)
    try:
        bound, serving = loop.run_until_complete(start(loop, port, tls))
    except NotImplementedError as exc:
        say_unavailable("unsupported",
                        f"{loop_name} lacks {needs}" + (f": {exc}" if str(exc) else ""))
        return EXIT_UNSUPPORTED
    say_ready(bound)
    try:
        if serving is None:
            loop.run_forever()
        else:  # a failure of the accept task ends the server with its traceback
            loop.run_until_complete(serving)
    except KeyboardInterrupt:
        pass
    return 0


def python_server_command(loop_name: str, style: str) -> list[str]:
    """The argv of a server of this module on a free port (for harness.start_server)."""
    return [sys.executable, "-m", "benchmarks.servers", "--loop", loop_name, "--style", style,
            "--port", "0"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.servers",
                                     description="Echo and HTTP servers of the server benchmarks.")
    parser.add_argument("--loop", required=True, choices=LOOP_NAMES)
    parser.add_argument("--style", required=True, choices=list(STYLES))
    parser.add_argument("--port", type=int, default=0, help="0 (default): a free port")
    parser.add_argument("--cert", help="TLS styles: the certificate chain (PEM)")
    parser.add_argument("--key", help="TLS styles: the private key (PEM)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks.servers``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    tls = None
    if args.style in TLS_STYLES:
        if not (args.cert and args.key):
            parser.error(f"--style {args.style} needs --cert and --key")
        tls = server_tls_context(args.cert, args.key)
    raise_fd_limit()
    return serve(args.loop, args.style, args.port, tls)


if __name__ == "__main__":
    sys.exit(main())
