"""HTTP/1.1 on the loop's protocol API, with httptools as the parser; serving an App.

:func:`listen`, :func:`serve` and :func:`drain` serve an App (anything with
``handle(req, res)``, the connection set and the limits an App has) on the
running loop.  One :class:`HttpProtocol` per connection. The parser runs in
``data_received``; a request is handed to the App as soon as its headers are
complete (its body keeps arriving into the Request). Pipelined requests wait
in a queue and are answered strictly in order, by one task per busy period.

Limits and hostile input: a malformed request gets 400, too large headers
431, a body over ``max_body_size`` 413 (each followed by closing the
connection); a request whose headers are not complete ``header_timeout``
seconds after its first byte gets 408 and the connection is closed
(slowloris); idle keep-alive connections close after ``keep_alive_timeout``.

Flow control: when the transport says pause_writing, reading pauses too and
streamed bodies wait for resume_writing; reading also pauses while more than
``max_pipelined`` requests wait.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import socket
import sys
import time
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

import httptools

from .messages import ClientDisconnected, Headers, HTTPError, Request, Response

__all__ = ["HttpProtocol", "drain", "listen", "serve"]

log = logging.getLogger("phaseloop.http")

_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
_STATUS_LINES: dict[int, bytes] = {}
_NO_BODY_STATUS = frozenset({204, 304})


def _status_line(code: int) -> bytes:
    line = _STATUS_LINES.get(code)
    if line is None:
        line = b"HTTP/1.1 %d %s\r\n" % (code, _REASONS.get(code, b"Unknown"))
        if len(_STATUS_LINES) < 1000:
            _STATUS_LINES[code] = line
    return line


_date_cache = [0, b""]


def _date_header() -> bytes:
    """``Date: ...\r\n``, formatted once per second."""
    now = int(time.time())
    if now != _date_cache[0]:
        _date_cache[0] = now
        _date_cache[1] = b"Date: %s\r\n" % formatdate(now, usegmt=True).encode()
    return _date_cache[1]



#: Seconds an idle connection (fresh, or kept alive) may still send a request after
#: shutdown().
_FRESH_CONNECTION_GRACE = 0.25

class _TooLarge(Exception):
    pass


class _Stop(Exception):
    """Raised from a parser callback to stop parsing (input is discarded)."""


def _simple_response(status: int, message: str) -> bytes:
    body = b'{"error":"%s"}' % message.encode()
    return (_status_line(status) + b"Content-Type: application/json\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n" % len(body) + body)


class HttpProtocol(asyncio.Protocol):
    """One HTTP/1.1 connection serving an App (see the module docstring)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.client: Any = None
        self.closed = False
        self.closing = False            # close after the current response
        self._url = b""
        self._raw_headers: list[tuple[bytes, bytes]] = []
        self._header_bytes = 0
        self._parsing: Request | None = None
        self._queue: collections.deque[Request] = collections.deque()
        self._task: asyncio.Task | None = None
        self._busy = False
        self._discard = False           # ignore further input (after an error)
        self._read_paused: set[str] = set()
        self._write_paused = False
        self._drain_waiter: asyncio.Future | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._in_headers = False
        self._tls = False

    # ---- connection -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.client = transport.get_extra_info("peername")
        self._tls = transport.get_extra_info("sslcontext") is not None
        self.app.connections.add(self)
        self._set_timer(self.app.header_timeout, self._on_header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.app.connections.discard(self)
        self._cancel_timer()
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        gone = ClientDisconnected("client disconnected")
        if self._parsing is not None:
            self._parsing._finish(gone)
        for req in self._queue:
            req._finish(gone)
        self._queue.clear()
        self.parser = None  # type: ignore[assignment]   # break the cycle

    def eof_received(self) -> bool | None:
        # A half-closed client still gets its responses; we close after them.
        self.closing = True
        self._discard = True
        if self._parsing is not None:
            # Its body can never complete now.
            self._parsing._finish(ClientDisconnected("client closed before the body ended"))
            self._parsing = None
        if not self._busy and not self._queue:
            return None                  # close now
        return True

    def pause_writing(self) -> None:
        self._write_paused = True
        self._pause_reading("write")

    def resume_writing(self) -> None:
        self._write_paused = False
        waiter = self._drain_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._resume_reading("write")

    def _pause_reading(self, reason: str) -> None:
        if not self._read_paused and not self.closed:
            try:
                self.transport.pause_reading()  # type: ignore[union-attr]
            except (RuntimeError, AttributeError):
                pass
        self._read_paused.add(reason)

    def _resume_reading(self, reason: str) -> None:
        if reason in self._read_paused:
            self._read_paused.discard(reason)
            if not self._read_paused and not self.closed:
                try:
                    self.transport.resume_reading()  # type: ignore[union-attr]
                except (RuntimeError, AttributeError):
                    pass

    async def _drain(self) -> None:
        while self._write_paused and not self.closed:
            self._drain_waiter = self.loop.create_future()
            try:
                await self._drain_waiter
            finally:
                self._drain_waiter = None

    def shutdown(self) -> None:
        """Graceful close: after the response in progress if busy; if idle, after a
        short grace period in which a request may still come (and is answered with
        ``Connection: close``).

        The grace is for requests already on their way: a client that just
        connected, or a proxy that picked this kept-alive connection from its
        pool a moment ago, would see a reset if the connection closed now (a
        rolling restart behind nginx would reset some of nginx's requests)."""
        self.closing = True
        if self._busy or self._queue or self._parsing is not None or self.closed:
            return
        self.loop.call_later(_FRESH_CONNECTION_GRACE, self._close_if_idle)

    def _close_if_idle(self) -> None:
        if not (self._busy or self._queue or self._parsing is not None or self.closed):
            self.transport.close()  # type: ignore[union-attr]

    def abort(self) -> None:
        """Close at once, dropping what is unsent."""
        if not self.closed and self.transport is not None:
            self.transport.abort()

    # ---- timers ---------------------------------------------------------------------

    def _set_timer(self, delay: float, callback: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(delay, callback) if delay and delay > 0 else None

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_header_timeout(self) -> None:
        self._timer = None
        if self.closed or self._busy:
            return
        if not self._in_headers:
            self.transport.close()   # type: ignore[union-attr]   # nothing started: just close
        else:
            self._fail(408, "Request Timeout")

    def _on_idle_timeout(self) -> None:
        self._timer = None
        if not self.closed and not self._busy and not self._queue and self._parsing is None:
            self.transport.close()  # type: ignore[union-attr]

    # ---- parsing --------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._discard or self.closed:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # No upgrades (WebSocket...) here: answer the request, then close.
            self.closing = True
            self._discard = True
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _TooLarge):
                self._fail(431, "Request Header Fields Too Large")
            elif isinstance(exc.__context__, _Stop):
                pass
            else:
                log.exception("phaseloop.http: parser callback failed")
                self._fail(400, "Bad Request")
        except httptools.HttpParserError:
            self._fail(400, "Bad Request")

    def _fail(self, status: int, message: str) -> None:
        """A protocol-level error: answer it (in order) and close."""
        self._discard = True
        self.closing = True
        if self._parsing is not None:
            self._parsing._finish(HTTPError(status, message))
            self._parsing = None
        if not self._busy and not self._queue:
            self.transport.write(_simple_response(status, message))  # type: ignore[union-attr]
            self.transport.close()  # type: ignore[union-attr]
        else:
            # Requests before it are still being answered: queue the error.
            req = Request("GET", b"/", Headers([]), self.client, keep_alive=False)
            req._reject = HTTPError(status, message)
            req._complete = True
            self._queue.append(req)

    def on_message_begin(self) -> None:
        self._url = b""
        self._raw_headers = []
        self._header_bytes = 0
        self._in_headers = True
        if not self._busy:
            self._set_timer(self.app.header_timeout, self._on_header_timeout)

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._header_bytes += len(url)
        if self._header_bytes > self.app.max_header_size:
            raise _TooLarge()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._raw_headers.append((name, value))
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > self.app.max_header_size or \
                len(self._raw_headers) > self.app.max_headers:
            raise _TooLarge()

    def on_headers_complete(self) -> None:
        self._in_headers = False
        if not self._busy:
            self._cancel_timer()
        parser = self.parser
        url = self._url
        if url[:1] != b"/" and url != b"*":
            try:
                parsed = httptools.parse_url(url)
                url = (parsed.path or b"/") + (b"?" + parsed.query if parsed.query else b"")
            except httptools.HttpParserInvalidURLError:
                url = b"/"
        req = Request(parser.get_method().decode("ascii", "replace"), url,
                      Headers(self._raw_headers), self.client,
                      parser.get_http_version(), parser.should_keep_alive())
        req._conn = self
        self._header_bytes = 0
        app = self.app
        if app._trusted_proxies is not None:
            app._trusted_proxies.apply(req)
        if app.root_path:
            req.root_path = app.root_path
        if self._tls:
            req.scheme = "https"
        if app.limit_concurrency is not None and len(app.connections) >= app.limit_concurrency:
            req._reject = HTTPError(503, "Service Unavailable")
        limit = app.max_body_size
        for name, value in self._raw_headers:
            lname = name.lower()
            if lname == b"content-length":
                try:
                    if int(value) > limit:
                        req._reject = HTTPError(413, "Payload Too Large")
                except ValueError:
                    pass
            elif lname == b"expect" and value.lower() == b"100-continue":
                req._expect_continue = True
        if req._reject is not None:
            # Do not read a body we will refuse: answer, then close.
            req._complete = True
            req.keep_alive = False
            self._discard = True
            self._parsing = None
        else:
            self._parsing = req
        if self._busy or self._queue:
            self._queue.append(req)
            if len(self._queue) >= self.app.max_pipelined:
                self._pause_reading("pipeline")
        else:
            self._start(req)
        if self._discard:
            raise _Stop()

    def on_body(self, body: bytes) -> None:
        req = self._parsing
        if req is None:
            return
        if req._size + len(body) > self.app.max_body_size:
            req._finish(HTTPError(413, "Payload Too Large"))
            req.keep_alive = False
            self._parsing = None
            self._discard = True
            self.closing = True
            raise _Stop()
        req._feed(body)

    def on_message_complete(self) -> None:
        req = self._parsing
        if req is not None:
            self._parsing = None
            req._finish()
        if not self._busy and not self._queue and not self.closed:
            self._set_timer(self.app.keep_alive_timeout, self._on_idle_timeout)

    # ---- answering ------------------------------------------------------------------

    def _send_continue(self) -> None:
        if not self.closed:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # type: ignore[union-attr]

    def _start(self, req: Request) -> None:
        self._busy = True
        self._cancel_timer()
        self._task = self.loop.create_task(self._serve(req))

    async def _serve(self, req: Request | None) -> None:
        try:
            while req is not None:
                try:
                    await self._answer(req)
                except Exception as exc:     # a bug in writing: never leave the client hanging
                    self._report(exc, req)
                    self.abort()
                    return
                if self.closed or self.transport.is_closing():  # type: ignore[union-attr]
                    return
                if self.closing or not req.keep_alive or req._expect_continue:
                    self.transport.close()  # type: ignore[union-attr]
                    return
                if self._queue:
                    req = self._queue.popleft()
                    if len(self._queue) < self.app.max_pipelined:
                        self._resume_reading("pipeline")
                else:
                    req = None
        finally:
            self._busy = False
            self._task = None
            if not self.closed and not self._queue:
                if not self._in_headers and self._parsing is None:
                    self._set_timer(self.app.keep_alive_timeout, self._on_idle_timeout)
                else:
                    self._set_timer(self.app.header_timeout, self._on_header_timeout)

    async def _answer(self, req: Request) -> None:
        res = Response()
        if not await self.app._answer(req, res, self):
            # The client is gone (or going): nobody to answer.
            self.closing = True
            if not self.closed:
                self.transport.close()  # type: ignore[union-attr]
            return
        if self.closed or self.transport.is_closing():  # type: ignore[union-attr]
            return
        await self._write(req, res)
        if self.app._response_hooks:
            self.app._responded(req, res)

    def _report(self, exc: BaseException, req: Request) -> None:
        self.app._report(exc, req, self)

    async def _write(self, req: Request, res: Response) -> None:
        status = res.status_code
        keep_alive = req.keep_alive and not self.closing and not req._expect_continue \
            and req._complete
        if not req._complete:
            # The body is still coming and nobody will read it: close after.
            keep_alive = False
            self._discard = True
        parts = [_status_line(status)]
        if "date" not in res._headers:
            parts.append(_date_header())
        for name, value in res._headers.values():
            parts.append(b"%s: %s\r\n" % (name.encode("latin-1"), value.encode("latin-1")))
        for name, value in res._extra:
            parts.append(b"%s: %s\r\n" % (name.encode("latin-1"), value.encode("latin-1")))
        if not keep_alive:
            parts.append(b"Connection: close\r\n")
            self.closing = True
        elif req.http_version == "1.0":
            parts.append(b"Connection: keep-alive\r\n")
        head_only = req.method == "HEAD" or status in _NO_BODY_STATUS or status < 200
        stream = res.stream
        transport = self.transport
        res.headers_sent = True
        if stream is None:
            body = res.body or b""
            if status not in _NO_BODY_STATUS and status >= 200 and "content-length" not in res._headers:
                parts.append(b"Content-Length: %d\r\n" % len(body))
            parts.append(b"\r\n")
            if not head_only:
                parts.append(body)
            transport.write(b"".join(parts))  # type: ignore[union-attr]
            return
        chunked = "content-length" not in res._headers and req.http_version != "1.0"
        if chunked and not head_only:
            parts.append(b"Transfer-Encoding: chunked\r\n")
        elif "content-length" not in res._headers and not head_only:
            if keep_alive:         # HTTP/1.0 and no length: the end is the close
                parts.append(b"Connection: close\r\n")
            self.closing = True
        parts.append(b"\r\n")
        transport.write(b"".join(parts))  # type: ignore[union-attr]
        if head_only:
            await _close_stream(stream)
            return
        await self._write_stream(req, stream, chunked)

    async def _write_stream(self, req: Request, stream: Any, chunked: bool) -> None:
        transport = self.transport
        iterator: Any = None
        try:
            if hasattr(stream, "__aiter__"):
                iterator = stream.__aiter__()
                while True:
                    try:
                        chunk = await iterator.__anext__()
                    except StopAsyncIteration:
                        break
                    if not self._write_chunk(transport, chunk, chunked):
                        return
                    if self._write_paused:
                        await self._drain()
                    if self.closed or transport.is_closing():
                        return
            else:
                for chunk in stream:
                    if not self._write_chunk(transport, chunk, chunked):
                        return
                    if self._write_paused:
                        await self._drain()
                    if self.closed or transport.is_closing():
                        return
            if chunked and not self.closed:
                transport.write(b"0\r\n\r\n")  # type: ignore[union-attr]
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Headers are out: the only honest signal left is to cut the connection.
            if not self.closed:
                self._report(exc, req)
                transport.abort()  # type: ignore[union-attr]
        finally:
            await _close_stream(iterator if iterator is not None else stream,
                                stream if iterator is not None else None)

    def _write_chunk(self, transport: Any, chunk: Any, chunked: bool) -> bool:
        if self.closed or transport.is_closing():
            return False
        if isinstance(chunk, str):
            chunk = chunk.encode()
        if not chunk:
            return True
        if chunked:
            transport.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        else:
            transport.write(chunk)
        return True


async def _close_stream(obj: Any, owner: Any = None) -> None:
    """Close an iterator left early (and destroy a Readable owner)."""
    aclose = getattr(obj, "aclose", None)
    if aclose is not None:
        try:
            await aclose()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass
    else:
        close = getattr(obj, "close", None)
        if close is not None and not hasattr(obj, "destroy"):
            try:
                close()
            except Exception:  # noqa: BLE001
                pass
    for target in (obj, owner):
        destroy = getattr(target, "destroy", None)
        if destroy is not None and not getattr(target, "destroyed", True):
            try:
                destroy()
            except Exception:  # noqa: BLE001
                pass


# ---- serving an App -------------------------------------------------------------------


def _protocol_factory(app: Any) -> Any:
    return lambda: HttpProtocol(app)


async def listen(app: Any, port: int = 0, host: str = "127.0.0.1",
                 **kwargs: Any) -> asyncio.AbstractServer:
    """Serve ``app`` on host:port on the running loop; returns the server
    (already serving; ``server.sockets[0].getsockname()`` for port 0).

    In a ``phaseloop.cluster`` worker the primary opens host:port once and
    hands it to every worker that listens there, with the cluster's
    scheduling policy (``cluster.server_socket``): as in Node, every worker
    may call ``app.listen(3000)`` (unless ``reuse_port=True`` is given: then
    the worker binds its own socket)."""
    loop = asyncio.get_running_loop()
    cluster = sys.modules.get("phaseloop.cluster")    # imported by any cluster worker
    if cluster is not None and cluster.worker is not None and not kwargs.get("reuse_port"):
        sock = await cluster.server_socket(host, port, backlog=kwargs.pop("backlog", 511))
        kwargs.pop("reuse_address", None)
        kwargs.pop("reuse_port", None)
        return await loop.create_server(_protocol_factory(app), sock=sock, **kwargs)
    kwargs.setdefault("reuse_address", True)
    return await loop.create_server(_protocol_factory(app), host, port, **kwargs)


async def serve(app: Any, sock: socket.socket | None = None, *, host: str = "127.0.0.1",
                port: int = 0, drain_timeout: float = 10.0, ssl: Any = None) -> None:
    """Serve ``app`` (on an already-bound listening ``sock``, or host:port;
    over TLS with an ``ssl.SSLContext``) until cancelled. On cancellation:
    stop accepting, let in-flight requests finish (up to ``drain_timeout``
    seconds), close the connections, then re-raise CancelledError."""
    loop = asyncio.get_running_loop()
    if sock is not None:
        server = await loop.create_server(_protocol_factory(app), sock=sock, ssl=ssl)
    else:
        server = await loop.create_server(_protocol_factory(app), host, port, ssl=ssl,
                                          reuse_address=True)
    try:
        await asyncio.Future()   # until cancelled
    finally:
        server.close()
        await drain(app, drain_timeout)
        await server.wait_closed()


async def drain(app: Any, timeout: float = 10.0) -> None:
    """Graceful close of every connection of ``app``: idle ones now, busy
    ones after their current response; after ``timeout`` seconds, abort the
    rest."""
    for conn in list(app.connections):
        conn.shutdown()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while app.connections and loop.time() < deadline:
        await asyncio.sleep(0.01)
    for conn in list(app.connections):
        conn.abort()
