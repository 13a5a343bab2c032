"""The App as an ASGI 3 application: ``await app(scope, receive, send)``.

So any ASGI server runs it (``uvicorn main:app``, ``hypercorn main:app``),
and ``phaseloop serve`` could too (it serves an App on its own HTTP/1.1
protocol, server.py, which is faster). The request reaches the same
middleware chain and router as on the App's own server, with the same
errors (HTTPError's status, 500 for the rest), and the same ``response``
listeners run once the answer is sent.

- ``http``: a :class:`Request` from the scope (``req.client`` is
  ``scope["client"]``, which a server's proxy-headers option may already
  have set; the App's own ``forwarded_allow_ips`` applies on top); the body
  is read from ``receive()`` only when a handler asks for it, up to the
  App's ``max_body_size`` (413 above it); a streamed response is sent chunk
  by chunk (``more_body``).
- ``lifespan``: startup and shutdown are acknowledged (an App has no hooks
  for them).
- ``websocket``: refused (the App has no WebSocket routes): the server
  answers the handshake with 403.

``scope["root_path"]`` (a server's ``--root-path``) is ``req.root_path``;
the route is looked up on the path without it, as Starlette does.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Awaitable, Callable
from urllib.parse import quote

from .messages import ClientDisconnected, Headers, HTTPError, Request, Response
from .server import _close_stream

if TYPE_CHECKING:
    from .app import App

__all__ = ["serve_scope"]

Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

_NO_BODY_STATUS = frozenset({204, 304})


async def serve_scope(app: "App", scope: dict, receive: Receive, send: Send) -> None:
    """Answer one ASGI connection scope with ``app``."""
    kind = scope["type"]
    if kind == "http":
        await _serve_http(app, scope, receive, send)
    elif kind == "lifespan":
        await _serve_lifespan(receive, send)
    elif kind == "websocket":
        await send({"type": "websocket.close", "code": 1000})
    else:
        raise ValueError(f"phaseloop.http.App: unknown ASGI scope type {kind!r}")


async def _serve_lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


class _BodyReader:
    """Reads the request body from ``receive()`` into the Request, once a handler
    asks for it (Request.body() calls ``_send_continue`` first: the request is
    marked as expecting a 100 Continue, which an ASGI server sends when the
    body is first received)."""

    def __init__(self, req: Request, receive: Receive, limit: int) -> None:
        self.req = req
        self.receive = receive
        self.limit = limit
        self.task: asyncio.Task | None = None

    def _send_continue(self) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        req = self.req
        try:
            while True:
                message = await self.receive()
                if message["type"] == "http.disconnect":
                    req._finish(ClientDisconnected("client disconnected"))
                    return
                chunk = message.get("body", b"")
                if req._size + len(chunk) > self.limit:
                    req.keep_alive = False
                    req._finish(HTTPError(413, "Payload Too Large"))
                    return
                if chunk:
                    req._feed(chunk)
                if not message.get("more_body", False):
                    req._finish()
                    return
        except Exception as exc:  # noqa: BLE001 - the handler sees it as a lost client
            req._finish(ClientDisconnected(f"reading the body failed: {exc!r}"))

    def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()


def _request(app: "App", scope: dict, receive: Receive) -> tuple[Request, _BodyReader | None]:
    root = scope.get("root_path", "") or ""
    raw_path = scope.get("raw_path") or quote(scope.get("path", "/"), safe="/%:@!$&'()*+,;=").encode()
    root_bytes = root.encode()
    if root_bytes and raw_path.startswith(root_bytes) and \
            raw_path[len(root_bytes):len(root_bytes) + 1] in (b"", b"/"):
        raw_path = raw_path[len(root_bytes):] or b"/"
    query = scope.get("query_string", b"")
    url = raw_path + b"?" + query if query else raw_path
    headers = Headers(list(scope.get("headers", ())))
    req = Request(scope.get("method", "GET"), url, headers, scope.get("client"),
                  scope.get("http_version", "1.1"), True)
    req.scheme = scope.get("scheme", "http")
    req.root_path = root or app.root_path
    if app._trusted_proxies is not None:
        app._trusted_proxies.apply(req)
    limit = app.max_body_size
    length = headers.get("content-length")
    has_body = "transfer-encoding" in headers
    if length is not None:
        try:
            size = int(length)
        except ValueError:
            size = 0
        if size > limit:
            req._reject = HTTPError(413, "Payload Too Large")
            req._complete = True
            return req, None
        has_body = has_body or size > 0
    if not has_body:
        req._complete = True
        return req, None
    reader = _BodyReader(req, receive, limit)
    req._conn = reader
    req._expect_continue = True
    return req, reader


async def _serve_http(app: "App", scope: dict, receive: Receive, send: Send) -> None:
    req, reader = _request(app, scope, receive)
    res = Response()
    try:
        if not await app._answer(req, res):
            return                       # the client is gone: nobody to answer
        await _send_response(app, req, res, send)
    finally:
        if reader is not None:
            reader.stop()
    if app._response_hooks:
        app._responded(req, res)


def _encoded_headers(res: Response) -> list[tuple[bytes, bytes]]:
    out = [(name.lower().encode("latin-1"), value.encode("latin-1"))
           for name, value in res._headers.values()]
    out.extend((name.lower().encode("latin-1"), value.encode("latin-1"))
               for name, value in res._extra)
    return out


async def _send_response(app: "App", req: Request, res: Response, send: Send) -> None:
    status = res.status_code
    headers = _encoded_headers(res)
    if not req.keep_alive:
        headers.append((b"connection", b"close"))
    head_only = req.method == "HEAD" or status in _NO_BODY_STATUS or status < 200
    res.headers_sent = True
    stream = res.stream
    if stream is None:
        body = res.body or b""
        if status not in _NO_BODY_STATUS and status >= 200 and "content-length" not in res._headers:
            headers.append((b"content-length", b"%d" % len(body)))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head_only else body})
        return
    await send({"type": "http.response.start", "status": status, "headers": headers})
    if head_only:
        await _close_stream(stream)
        await send({"type": "http.response.body", "body": b""})
        return
    iterator: Any = None
    try:
        if hasattr(stream, "__aiter__"):
            iterator = stream.__aiter__()
            async for chunk in iterator:
                await _send_chunk(send, chunk)
        else:
            for chunk in stream:
                await _send_chunk(send, chunk)
    except Exception as exc:
        # Headers are out: the server cuts the connection when the app raises.
        app._report(exc, req)
        raise
    finally:
        await _close_stream(iterator if iterator is not None else stream,
                            stream if iterator is not None else None)
    await send({"type": "http.response.body", "body": b""})


async def _send_chunk(send: Send, chunk: Any) -> None:
    if isinstance(chunk, str):
        chunk = chunk.encode()
    if chunk:
        await send({"type": "http.response.body", "body": bytes(chunk), "more_body": True})
