"""The express-style App: middlewares and routes.

An App holds global middlewares (``app.use``) and routes (``@app.get`` ...).
For every request the server (server.py) builds a :class:`Request` and a
:class:`Response` and runs the middleware chain (``phaseloop.middleware.
compose``); the router is the last layer. The response is written when the
chain has finished, so middlewares may still change it after ``await next()``.

The App only routes; ``app.listen()``, ``app.serve()`` and ``app.drain()``
hand it to the server module, as Express's ``app.listen`` hands the app to
Node's ``http`` module. An App is also an ASGI application (``app(scope,
receive, send)``, asgi.py), so uvicorn or hypercorn can serve it.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import re
import socket
import traceback
from typing import Any, Awaitable, Callable, Iterable
from urllib.parse import unquote

from .. import errors
from ..middleware import _arity, compose
from . import asgi, server
from .messages import ClientDisconnected, HTTPError, Request, Response
from .proxy import TrustedProxies

__all__ = ["App"]

Handler = Callable[["Request", "Response"], Awaitable[Any]]
Middleware = Callable[..., Any]
ResponseHook = Callable[["Request", "Response"], Any]

log = logging.getLogger("phaseloop.http")

_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


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
    ``debug`` (500 responses carry the exception and traceback).

    Deployment settings (``phaseloop serve``'s flags set them):
    ``limit_concurrency`` (503 once this many connections are open in the
    process, the asking one included: uvicorn's count), ``forwarded_allow_ips`` (the proxies whose ``X-Forwarded-For`` and
    ``X-Forwarded-Proto`` set ``req.client`` and ``req.scheme``, proxy.py;
    None: no proxy is trusted), ``root_path`` (the prefix a proxy mounts the
    App under and strips, given to handlers as ``req.root_path``).
    """

    def __init__(self, *, debug: bool = False, max_body_size: int = 1024 * 1024,
                 max_header_size: int = 16 * 1024, max_headers: int = 100,
                 header_timeout: float = 10.0, keep_alive_timeout: float = 5.0,
                 body_timeout: float | None = 60.0, max_pipelined: int = 32,
                 limit_concurrency: int | None = None,
                 forwarded_allow_ips: str | Iterable[str] | None = None,
                 root_path: str = "") -> None:
        self.debug = debug
        self.max_body_size = max_body_size
        self.max_header_size = max_header_size
        self.max_headers = max_headers
        self.header_timeout = header_timeout
        self.keep_alive_timeout = keep_alive_timeout
        self.body_timeout = body_timeout
        self.max_pipelined = max_pipelined
        if limit_concurrency is not None and limit_concurrency < 1:
            raise ValueError("limit_concurrency must be >= 1 (or None)")
        self.limit_concurrency = limit_concurrency
        self.forwarded_allow_ips = forwarded_allow_ips
        self.root_path = root_path.rstrip("/")
        self._response_hooks: list[ResponseHook] = []
        self._middlewares: list[Middleware] = []
        self._error_handlers: list[Middleware] = []
        self._routes_take_next = False
        self._static: dict[str, _Route] = {}
        self._dynamic: list[_Route] = []
        self._chain: Callable[..., Awaitable[Any]] | None = None
        self.connections: set[Any] = set()

    @property
    def forwarded_allow_ips(self) -> TrustedProxies | None:
        """The trusted proxies (set it to ``"127.0.0.1, 10.0.0.0/8"``, ``"*"`` or None)."""
        return self._trusted_proxies

    @forwarded_allow_ips.setter
    def forwarded_allow_ips(self, allowed: str | Iterable[str] | TrustedProxies | None) -> None:
        if allowed is None or isinstance(allowed, TrustedProxies):
            self._trusted_proxies = allowed
        else:
            self._trusted_proxies = TrustedProxies(allowed)

    # -- listeners -----------------------------------------------------------------

    def on(self, event: str, fn: ResponseHook | None = None) -> Any:
        """Listen to ``"response"``: ``fn(req, res)`` runs once each response has been
        written (``res.status_code``; ``req.route`` is the matched route's pattern,
        None for a 404), as Node's ``'finish'`` event on a response. Returns ``fn``;
        without it, a decorator. The access log and the metrics of ``phaseloop
        serve`` are such listeners; one that raises is reported and the others run."""
        if event != "response":
            raise ValueError(f"App.on: unknown event {event!r} (only 'response')")
        if fn is None:
            return lambda f: self.on(event, f)
        if not callable(fn):
            raise TypeError("listener must be callable")
        self._response_hooks.append(fn)
        return fn

    def off(self, event_or_fn: Any, fn: ResponseHook | None = None) -> bool:
        """Remove a listener: ``off("response", fn)`` or ``off(fn)``; True if removed."""
        target = fn if fn is not None else event_or_fn
        if target in self._response_hooks:
            self._response_hooks.remove(target)
            return True
        return False

    def _responded(self, req: Request, res: Response) -> None:
        for hook in self._response_hooks:
            try:
                hook(req, res)
            except Exception as exc:  # noqa: BLE001 - one listener never stops the others
                errors.report_uncaught(exc, {"message": "App 'response' listener failed",
                                             "exception": exc, "request": req})

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
        req.route = route.pattern
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

    async def _answer(self, req: Request, res: Response, conn: Any = None) -> bool:
        """Run the App for ``req`` and fill ``res``; an error becomes its response
        (HTTPError: its status; anything else: 500, reported). False when there is
        nobody to answer (the client went away)."""
        try:
            if req._reject is not None:
                raise req._reject
            await self.handle(req, res)
        except HTTPError as exc:
            payload: dict[str, Any] = {"error": exc.message}
            if exc.details is not None:
                payload["details"] = exc.details
            res._reset_for_error(exc.status, payload, exc.headers)
            if exc.status in (413, 503):
                req.keep_alive = False
        except asyncio.CancelledError:
            raise
        except ClientDisconnected:
            return False
        except Exception as exc:
            if conn is not None and conn.closed and isinstance(exc, ConnectionError):
                return False
            self._report(exc, req, conn)
            payload = {"error": "Internal Server Error"}
            if self.debug:
                payload["exception"] = repr(exc)
                payload["traceback"] = traceback.format_exception(exc)
            res._reset_for_error(500, payload, {})
        return True

    def _report(self, exc: BaseException, req: Request, conn: Any = None) -> None:
        context = {"message": f"Unhandled error in HTTP handler for {req.method} {req.path}",
                   "exception": exc, "request": req, "protocol": conn}
        errors.report_uncaught(exc, context)
        log.error("%s %s: unhandled %s", req.method, req.path, type(exc).__name__,
                  exc_info=exc if self.debug else None)

    # -- ASGI (asgi.py does it) ------------------------------------------------------

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]],
                       send: Callable[[dict], Awaitable[None]]) -> None:
        """The App as an ASGI 3 application, for uvicorn, hypercorn or any ASGI server
        (see :func:`phaseloop.http.asgi.serve_scope`)."""
        await asgi.serve_scope(self, scope, receive, send)

    # -- serving (server.py does it) -------------------------------------------------

    async def listen(self, port: int = 0, host: str = "127.0.0.1",
                     **kwargs: Any) -> asyncio.AbstractServer:
        """Start serving on host:port on the running loop; returns the server
        (already serving; ``server.sockets[0].getsockname()`` for port 0).
        In a ``phaseloop.cluster`` worker every worker may listen on the same
        port, as in Node (see :func:`phaseloop.http.server.listen`)."""
        return await server.listen(self, port, host, **kwargs)

    async def serve(self, sock: socket.socket | None = None, *, host: str = "127.0.0.1",
                    port: int = 0, drain_timeout: float = 10.0, ssl: Any = None) -> None:
        """Serve until cancelled, then drain (see :func:`phaseloop.http.server.serve`)."""
        await server.serve(self, sock, host=host, port=port, drain_timeout=drain_timeout,
                           ssl=ssl)

    async def drain(self, timeout: float = 10.0) -> None:
        """Close every connection gracefully (see :func:`phaseloop.http.server.drain`)."""
        await server.drain(self, timeout)
