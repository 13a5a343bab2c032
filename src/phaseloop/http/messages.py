"""Requests and responses of phaseloop.http: Request, Response, Headers, HTTPError.

The server (server.py) builds a :class:`Request` for each request as soon as
its headers are complete (the body keeps arriving into it) and a
:class:`Response` that the App's middlewares and handlers fill in; the
server writes it once the App's chain has finished.
"""
from __future__ import annotations

import asyncio
import json
from http import HTTPStatus
from typing import Any, Iterator, Mapping
from urllib.parse import parse_qsl, unquote

__all__ = ["ClientDisconnected", "HTTPError", "Headers", "Request", "Response"]


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
    peer, or of the client a trusted proxy names: ``App(forwarded_allow_ips=
    ...)``), ``scheme`` ("http" or "https"), ``route`` (the pattern of the
    route that matched, None before routing or for a 404), ``root_path``
    (``App(root_path=...)``), ``http_version`` ("1.1"), ``state`` (a dict for
    middlewares), ``validated_body`` / ``validated_query`` (set by ``validate``).
    """

    __slots__ = ("method", "url", "path", "_query_string", "_query", "headers", "client",
                 "params", "http_version", "keep_alive", "state", "validated_body", "scheme",
                 "route", "root_path",
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
        self.scheme = "http"
        self.route: str | None = None
        self.root_path = ""
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
