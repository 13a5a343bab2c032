"""The express-style App: routing, Request, Response, HTTPError.

An App holds global middlewares (``app.use``) and routes (``@app.get`` ...).
For every request the server builds a :class:`Request` and a
:class:`Response` and runs the middleware chain (``phaseloop.middleware.
compose``); the router is the last layer. The response is written when the
chain has finished, so middlewares may still change it after ``await next()``.
"""
from __future__ import annotations

import asyncio
import inspect
import json
import re
import socket
import sys
from http import HTTPStatus
from typing import Any, Awaitable, Callable, Iterator, Mapping
from urllib.parse import parse_qsl, unquote

from ..middleware import _arity, compose

__all__ = ["App", "ClientDisconnected", "HTTPError", "Headers", "Request", "Response"]

Handler = Callable[["Request", "Response"], Awaitable[Any]]
Middleware = Callable[..., Any]

_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


class HTTPError(Exception):
    """Raise in a handler or middleware to answer ``status`` with a JSON error.

    The body is ``{"error": message}`` (plus ``"details"`` when given);
    ``headers`` are added to the response.
    """

    def __init__(self, status: int, message: str | None = None, *, details: Any = None,
                 headers: Mapping[str, str] | None = None) -> None:
        self.status = int(status)
        if message is None:
            try:
                message = HTTPStatus(self.status).phrase
            except ValueError:
                message = "Error"
        self.message = message
        self.details = details
        self.headers = dict(headers or {})
        super().__init__(status, message)


class ClientDisconnected(ConnectionError):
    """The client closed the connection before the request body was read."""


class Headers(Mapping[str, str]):
    """Request headers: a read-only, case-insensitive mapping.

    Repeated headers are joined with ``", "``; ``getlist(name)`` gives every
    value; ``raw`` is the list of (name, value) pairs as received (bytes).
    """

    __slots__ = ("raw", "_map")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self.raw = raw
        self._map: dict[str, str] | None = None

    def _build(self) -> dict[str, str]:
        m: dict[str, str] = {}
        for name, value in self.raw:
            key = name.decode("latin-1").lower()
            val = value.decode("latin-1")
            if key in m:
                m[key] = m[key] + ", " + val
            else:
                m[key] = val
        self._map = m
        return m

    def __getitem__(self, name: str) -> str:
        return (self._map if self._map is not None else self._build())[name.lower()]

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return (self._map if self._map is not None else self._build()).get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and \
            name.lower() in (self._map if self._map is not None else self._build())

    def __iter__(self) -> Iterator[str]:
        return iter(self._map if self._map is not None else self._build())

    def __len__(self) -> int:
        return len(self._map if self._map is not None else self._build())

    def getlist(self, name: str) -> list[str]:
        """Every value received for ``name`` (case-insensitive), in order."""
        key = name.lower().encode("latin-1")
        return [v.decode("latin-1") for n, v in self.raw if n.lower() == key]

    def __repr__(self) -> str:
        return f"Headers({dict(self)!r})"


class Request:
    """One HTTP request.

    Attributes: ``method`` (str, upper case), ``path`` (the request target's
    path, not percent-decoded), ``query`` (dict of decoded parameters; the
    last value of a repeated name wins), ``headers`` (:class:`Headers`),
    ``params`` (decoded path parameters), ``client`` ((host, port) of the
    peer), ``http_version`` ("1.1"), ``state`` (a dict for middlewares),
    ``validated_body`` / ``validated_query`` (set by ``validate``).
    """

    __slots__ = ("method", "url", "path", "_query_string", "_query", "headers", "client",
                 "params", "http_version", "keep_alive", "state", "validated_body",
                 "validated_query", "app", "_chunks", "_size", "_complete", "_waiter", "_error",
                 "_conn", "_expect_continue", "_reject")

    def __init__(self, method: str, url: bytes, headers: Headers, client: Any,
                 http_version: str = "1.1", keep_alive: bool = True) -> None:
        self.method = method
        self.url = url
        raw_path, _, qs = url.partition(b"?")
        qs = qs.partition(b"#")[0]
        self.path = raw_path.decode("utf-8", "replace")
        self._query_string = qs
        self._query: dict[str, str] | None = None
        self.headers = headers
        self.client = client
        self.params: dict[str, str] = {}
        self.http_version = http_version
        self.keep_alive = keep_alive
        self.state: dict[str, Any] = {}
        self.validated_body: Any = None
        self.validated_query: Any = None
        self.app: App | None = None
        self._chunks: list[bytes] = []
        self._size = 0
        self._complete = False
        self._waiter: asyncio.Future | None = None
        self._error: BaseException | None = None
        self._conn: Any = None
        self._expect_continue = False
        self._reject: HTTPError | None = None

    @property
    def query(self) -> dict[str, str]:
        """The query string's parameters, decoded (last value wins)."""
        if self._query is None:
            self._query = dict(parse_qsl(self._query_string.decode("latin-1"),
                                         keep_blank_values=True)) if self._query_string else {}
        return self._query

    @property
    def query_string(self) -> str:
        """The raw query string (without ``?``)."""
        return self._query_string.decode("latin-1")

    def get(self, name: str, default: Any = None) -> Any:
        """A request header (case-insensitive), or ``default``."""
        return self.headers.get(name, default)

    # -- body --------------------------------------------------------------------

    def _feed(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._size += len(chunk)

    def _finish(self, error: BaseException | None = None) -> None:
        if error is not None and self._error is None and not self._complete:
            self._error = error
        self._complete = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def body(self) -> bytes:
        """The whole request body (waits until it has arrived).

        Raises HTTPError(413) when it exceeds the App's ``max_body_size``,
        HTTPError(408) when it has not all arrived ``body_timeout`` seconds
        after this call, and ClientDisconnected when the client goes away first.
        """
        if not self._complete:
            conn = self._conn
            if self._expect_continue and conn is not None:
                self._expect_continue = False
                conn._send_continue()
            loop = asyncio.get_running_loop()
            timeout = self.app.body_timeout if self.app is not None else None
            deadline = loop.time() + timeout if timeout else None
            while not self._complete:
                self._waiter = loop.create_future()
                try:
                    if deadline is None:
                        await self._waiter
                    else:
                        await asyncio.wait_for(self._waiter, max(0.0, deadline - loop.time()))
                except asyncio.TimeoutError:
                    raise HTTPError(408, "Request Timeout") from None
                finally:
                    self._waiter = None
        if self._error is not None:
            raise self._error
        if len(self._chunks) > 1:
            self._chunks = [b"".join(self._chunks)]
        return self._chunks[0] if self._chunks else b""

    async def text(self, encoding: str = "utf-8") -> str:
        """The body decoded as text (HTTPError 400 if it does not decode)."""
        try:
            return (await self.body()).decode(encoding)
        except UnicodeDecodeError:
            raise HTTPError(400, "Body is not valid " + encoding) from None

    async def json(self) -> Any:
        """The body parsed as JSON; HTTPError(400) when it is not valid JSON."""
        data = await self.body()
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise HTTPError(400, "Invalid JSON body") from None

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.url.decode('latin-1')!r}>"


def _check_header(name: str, value: str) -> None:
    if "\r" in name or "\n" in name or ":" in name or not name:
        raise ValueError(f"invalid header name {name!r}")
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError(f"invalid header value for {name!r} (CR/LF/NUL)")
    try:
        name.encode("ascii")
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"header {name!r} must be ASCII (value: latin-1)") from None


class Response:
    """The response being built. Nothing is written until the middleware chain
    (and the handler) has finished, so every call may still be undone.

    ``status_code`` (default 200), ``status(code)`` and ``set``/``append``
    chain; ``send(data)`` takes bytes, str, a dict/list (JSON), None, a
    ``phaseloop.streams.Readable`` or any (async) iterator of bytes/str
    (streamed, chunked unless a Content-Length was set).
    """

    __slots__ = ("status_code", "_headers", "_extra", "body", "stream", "sent", "headers_sent")

    def __init__(self) -> None:
        self.status_code = 200
        self._headers: dict[str, tuple[str, str]] = {}
        self._extra: list[tuple[str, str]] = []
        self.body: bytes | None = None
        self.stream: Any = None
        self.sent = False
        self.headers_sent = False

    def status(self, code: int) -> "Response":
        """Set the status code; returns the response (chainable)."""
        code = int(code)
        if not 100 <= code <= 999:
            raise ValueError(f"invalid status code {code}")
        self.status_code = code
        return self

    def set(self, name: str, value: Any) -> "Response":
        """Set a header (replacing a previous one of that name); chainable.
        Raises ValueError for CR/LF in the name or value (header injection)."""
        value = str(value)
        _check_header(name, value)
        self._headers[name.lower()] = (name, value)
        return self

    def append(self, name: str, value: Any) -> "Response":
        """Add one more header line of that name (for Set-Cookie); chainable."""
        value = str(value)
        _check_header(name, value)
        self._extra.append((name, value))
        return self

    def get(self, name: str) -> str | None:
        """The value of a header set with ``set``, or None."""
        item = self._headers.get(name.lower())
        return item[1] if item is not None else None

    def remove(self, name: str) -> "Response":
        """Remove a header (set or appended); chainable."""
        self._headers.pop(name.lower(), None)
        low = name.lower()
        self._extra = [(n, v) for n, v in self._extra if n.lower() != low]
        return self

    def type(self, content_type: str) -> "Response":
        """Set Content-Type; chainable."""
        return self.set("Content-Type", content_type)

    @property
    def headers(self) -> list[tuple[str, str]]:
        """Every header that will be sent (a copy)."""
        return list(self._headers.values()) + list(self._extra)

    def json(self, obj: Any) -> "Response":
        """Send ``obj`` as JSON (Content-Type: application/json)."""
        self.body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
        self.stream = None
        if "content-type" not in self._headers:
            self._headers["content-type"] = ("Content-Type", "application/json")
        self.sent = True
        return self

    def send(self, data: Any = None) -> "Response":
        """Set the body: bytes (application/octet-stream), str (text/plain;
        charset=utf-8), dict/list (JSON), None (empty), or a stream (a
        Readable or any async/sync iterator of bytes or str)."""
        h = self._headers
        if isinstance(data, (bytes, bytearray, memoryview)):
            self.body = bytes(data)
            if "content-type" not in h:
                h["content-type"] = ("Content-Type", "application/octet-stream")
        elif isinstance(data, str):
            self.body = data.encode()
            if "content-type" not in h:
                h["content-type"] = ("Content-Type", "text/plain; charset=utf-8")
        elif isinstance(data, (dict, list)):
            return self.json(data)
        elif data is None:
            self.body = b""
        elif hasattr(data, "__aiter__") or hasattr(data, "__iter__"):
            self.stream = data
            self.body = None
            if "content-type" not in h:
                h["content-type"] = ("Content-Type", "application/octet-stream")
        else:
            raise TypeError(f"cannot send a {type(data).__name__}")
        self.sent = True
        return self

    def end(self, data: Any = None) -> "Response":
        """Alias of send()."""
        return self.send(data)

    def redirect(self, location: str, status: int = 302) -> "Response":
        """Answer with a redirect to ``location``."""
        self.status(status).set("Location", location)
        return self.send(b"")

    def _reset_for_error(self, status: int, payload: dict, extra: Mapping[str, str]) -> None:
        self.status_code = status
        self._headers.pop("content-length", None)
        self._headers.pop("content-type", None)
        self._headers.pop("transfer-encoding", None)
        for name, value in extra.items():
            self.set(name, value)
        self.stream = None
        self.json(payload)


# ---- routing ----------------------------------------------------------------------

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Route:
    __slots__ = ("pattern", "regex", "handlers")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.handlers: dict[str, Callable[..., Awaitable[Any]]] = {}
        if _PARAM.search(pattern):
            parts = []
            pos = 0
            for m in _PARAM.finditer(pattern):
                parts.append(re.escape(pattern[pos:m.start()]))
                parts.append(f"(?P<{m.group(1)}>[^/]+)")
                pos = m.end()
            parts.append(re.escape(pattern[pos:]))
            self.regex: re.Pattern | None = re.compile("".join(parts) + r"\Z")
        else:
            self.regex = None


def _normalize(path: str) -> str:
    if len(path) > 1 and path.endswith("/"):
        return path.rstrip("/") or "/"
    return path


def _mounted(prefix: str, inner: Middleware) -> Middleware:
    """``inner`` for requests to ``prefix`` and below; the others go on
    with ``next`` (an error handler's shape is kept: four parameters)."""
    def applies(req: Request) -> bool:
        p = req.path
        return prefix == "/" or p == prefix or p.startswith(prefix + "/")

    if _arity(inner) == 4:
        async def mounted_error_handler(err: BaseException, req: Request, res: Response,
                                        next: Any) -> Any:
            if applies(req):
                return await _awaited(inner(err, req, res, next))
            return await next(err)
        mw: Middleware = mounted_error_handler
    else:
        async def mounted(req: Request, res: Response, next: Any) -> Any:
            if applies(req):
                return await _awaited(inner(req, res, next))
            return await next()
        mw = mounted
    mw.__qualname__ = f"use({prefix!r}, {getattr(inner, '__qualname__', inner)})"
    return mw


async def _awaited(result: Any) -> Any:
    """What a middleware returned, awaited if it is awaitable (a plain ``def``
    middleware returns None or next()'s awaitable)."""
    return await result if inspect.isawaitable(result) else result


def _handler_layer(handler: Handler) -> Callable[..., Awaitable[Any]]:
    """A route handler as the last layer of its route: ``handler(req, res)``,
    or ``handler(req, res, next)`` when it takes a third parameter (to call
    ``next(err)``); ``async def`` or plain; what it returns is sent."""
    takes_next = _arity(handler) >= 3

    async def run_handler(req: Request, res: Response, next: Any) -> Any:
        result = handler(req, res, next) if takes_next else handler(req, res)
        if inspect.isawaitable(result):
            result = await result
        if result is not None and not res.sent:
            res.send(result)
        return result
    run_handler.__qualname__ = getattr(handler, "__qualname__", "handler")
    return run_handler


class App:
    """An HTTP application: middlewares, routes, and the server settings.

    ``max_body_size`` (bytes; 413 above it), ``max_header_size`` (bytes of
    request line plus headers; 431 above it), ``header_timeout`` (seconds
    from the first byte of a request to the end of its headers; the
    connection is closed when it passes: slowloris), ``keep_alive_timeout``
    (seconds an idle keep-alive connection stays open), ``body_timeout``
    (seconds ``await req.body()`` waits for the whole body; 408 after),
    ``debug`` (500
    responses carry the exception and traceback).
    """

    def __init__(self, *, debug: bool = False, max_body_size: int = 1024 * 1024,
                 max_header_size: int = 16 * 1024, max_headers: int = 100,
                 header_timeout: float = 10.0, keep_alive_timeout: float = 5.0,
                 body_timeout: float | None = 60.0, max_pipelined: int = 32) -> None:
        self.debug = debug
        self.max_body_size = max_body_size
        self.max_header_size = max_header_size
        self.max_headers = max_headers
        self.header_timeout = header_timeout
        self.keep_alive_timeout = keep_alive_timeout
        self.body_timeout = body_timeout
        self.max_pipelined = max_pipelined
        self._middlewares: list[Middleware] = []
        self._error_handlers: list[Middleware] = []
        self._routes_take_next = False
        self._static: dict[str, _Route] = {}
        self._dynamic: list[_Route] = []
        self._chain: Callable[..., Awaitable[Any]] | None = None
        self.connections: set[Any] = set()

    # -- building ------------------------------------------------------------------

    def use(self, path_or_middleware: Any, middleware: Middleware | None = None) -> "App":
        """Add a middleware ``async def mw(req, res, next)`` (or a plain
        ``def`` calling ``next()`` without awaiting it, as in Express); with a
        path first, it runs only for that path and the paths below it.

        A middleware with four parameters, ``(err, req, res, next)``, handles
        errors, as in Express: it runs when a middleware or handler raised or
        called ``next(err)``. Error handlers run after the router, in the
        order they were added; one that neither answers nor passes the error
        on with ``next(err)`` has handled it. An error none handles is
        answered 500 (or its HTTPError's status)."""
        if middleware is None:
            mw = path_or_middleware
        else:
            mw = _mounted(_normalize(str(path_or_middleware)), middleware)
        if not callable(mw):
            raise TypeError(f"middleware must be callable, got {type(mw).__name__}")
        if _arity(mw) == 4:
            self._error_handlers.append(mw)
        else:
            self._middlewares.append(mw)
        self._chain = None
        return self

    def route(self, method: str, path: str, *middlewares: Middleware) -> Callable[[Handler], Handler]:
        """Decorator: register ``handler(req, res)`` for ``method`` on
        ``path`` (``{name}`` segments become ``req.params[name]``), after
        the given route middlewares."""
        method = method.upper()
        if not path.startswith("/"):
            raise ValueError(f"route path must start with '/': {path!r}")

        def register(handler: Handler) -> Handler:
            norm = _normalize(path)
            route = self._static.get(norm) or next(
                (r for r in self._dynamic if r.pattern == norm), None)
            if route is None:
                route = _Route(norm)
                if route.regex is None:
                    self._static[norm] = route
                else:
                    self._dynamic.append(route)
            layer = _handler_layer(handler)
            route.handlers[method] = compose([*middlewares, layer]) if middlewares else layer
            if middlewares or _arity(handler) >= 3:
                self._routes_take_next = True   # they may call next(err): run the chain
                self._chain = None
            return handler
        return register

    def get(self, path: str, *middlewares: Middleware) -> Callable[[Handler], Handler]:
        """Route GET (and HEAD) requests; see route()."""
        return self.route("GET", path, *middlewares)

    def post(self, path: str, *middlewares: Middleware) -> Callable[[Handler], Handler]:
        """Route POST requests; see route()."""
        return self.route("POST", path, *middlewares)

    def put(self, path: str, *middlewares: Middleware) -> Callable[[Handler], Handler]:
        """Route PUT requests; see route()."""
        return self.route("PUT", path, *middlewares)

    def patch(self, path: str, *middlewares: Middleware) -> Callable[[Handler], Handler]:
        """Route PATCH requests; see route()."""
        return self.route("PATCH", path, *middlewares)

    def delete(self, path: str, *middlewares: Middleware) -> Callable[[Handler], Handler]:
        """Route DELETE requests; see route()."""
        return self.route("DELETE", path, *middlewares)

    # -- dispatch ------------------------------------------------------------------

    async def _router(self, req: Request, res: Response, next: Any) -> Any:
        path = _normalize(req.path)
        route = self._static.get(path)
        if route is None:
            for r in self._dynamic:
                m = r.regex.match(path)  # type: ignore[union-attr]
                if m is not None:
                    route = r
                    req.params = {k: unquote(v) for k, v in m.groupdict().items()}
                    break
            else:
                raise HTTPError(404, "Not Found")
        handlers = route.handlers
        handler = handlers.get(req.method)
        if handler is None and req.method == "HEAD":
            handler = handlers.get("GET")
        if handler is None:
            allowed = sorted(handlers)
            if "GET" in handlers:
                allowed.append("HEAD")
            raise HTTPError(405, "Method Not Allowed", headers={"Allow": ", ".join(allowed)})
        # The chain's next (None when the App runs no chain: then no route has
        # middlewares or takes next): a route's next(err) reaches the error handlers.
        return await handler(req, res, next)

    def handle(self, req: Request, res: Response) -> Awaitable[Any]:
        """Run the middleware chain and the router for one request."""
        chain = self._chain
        if chain is None:
            if self._middlewares or self._error_handlers or self._routes_take_next:
                chain = self._chain = compose([*self._middlewares, self._router,
                                               *self._error_handlers])
            else:
                router = self._router
                chain = self._chain = lambda req, res: router(req, res, None)
        req.app = self
        return chain(req, res)

    # -- serving -------------------------------------------------------------------

    def _factory(self) -> Callable[[], asyncio.Protocol]:
        from .server import HttpProtocol
        return lambda: HttpProtocol(self)

    async def listen(self, port: int = 0, host: str = "127.0.0.1", **kwargs: Any) -> asyncio.AbstractServer:
        """Start serving on host:port on the running loop; returns the server
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
            return await loop.create_server(self._factory(), sock=sock, **kwargs)
        kwargs.setdefault("reuse_address", True)
        return await loop.create_server(self._factory(), host, port, **kwargs)

    async def serve(self, sock: socket.socket | None = None, *, host: str = "127.0.0.1",
                    port: int = 0, drain_timeout: float = 10.0) -> None:
        """Serve (on an already-bound listening ``sock``, or host:port) until
        cancelled. On cancellation: stop accepting, let in-flight requests
        finish (up to ``drain_timeout`` seconds), close the connections, then
        re-raise CancelledError."""
        loop = asyncio.get_running_loop()
        if sock is not None:
            server = await loop.create_server(self._factory(), sock=sock)
        else:
            server = await loop.create_server(self._factory(), host, port, reuse_address=True)
        try:
            await asyncio.Future()   # until cancelled
        finally:
            server.close()
            await self.drain(drain_timeout)
            await server.wait_closed()

    async def drain(self, timeout: float = 10.0) -> None:
        """Graceful close of every connection: idle ones now, busy ones after
        their current response; after ``timeout`` seconds, abort the rest."""
        for conn in list(self.connections):
            conn.shutdown()
        deadline = asyncio.get_running_loop().time() + timeout
        while self.connections and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        for conn in list(self.connections):
            conn.abort()
