"""Security middlewares: rate_limit, cors, security_headers, validate.

Each returns an express-shape middleware ``async def mw(req, res, next)``
for ``app.use(...)`` or as a route middleware. The body size limit is an App
setting (``App(max_body_size=...)``, answered with 413 by the server).
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Iterable

from .messages import HTTPError, Request, Response

__all__ = ["cors", "rate_limit", "security_headers", "validate"]


# ---- rate limiting ----------------------------------------------------------------------


def _client_key(req: Request) -> str:
    client = req.client
    if isinstance(client, (tuple, list)) and client:
        return str(client[0])
    return str(client)


def rate_limit(window: float | None = None, max: int = 100,
               message: str | dict | list = "Too many requests", *,
               window_ms: float | None = None, key: Callable[[Request], str] = _client_key,
               max_keys: int = 10_000,
               clock: Callable[[], float] = time.monotonic) -> Callable[..., Any]:
    """Fixed-window rate limiting, keyed by client address (``key(req)``).

    At most ``max`` requests per window per key. The window is ``window``
    **seconds** (default 15 minutes) or, as express-rate-limit's
    ``windowMs``, ``window_ms`` **milliseconds**: ``rate_limit(window_ms=15 *
    60 * 1000, max=100)`` is ``rate_limit(window=900, max=100)``. Above the
    limit the answer is 429 with ``Retry-After`` and ``message`` as the body:
    a ``str`` as ``text/plain`` (as express-rate-limit sends it), a dict or
    list as JSON. Every response carries ``RateLimit-Limit``,
    ``RateLimit-Remaining`` and ``RateLimit-Reset`` (seconds until the window
    resets). Memory is bounded: at most ``max_keys`` keys are tracked; when
    full, expired windows are dropped first, then the oldest keys.
    """
    if window is not None and window_ms is not None:
        raise TypeError("rate_limit takes window (seconds) or window_ms, not both")
    if window_ms is not None:
        window = window_ms / 1000
    elif window is None:
        window = 15 * 60
    if max < 1 or window <= 0:
        raise ValueError("rate_limit needs max >= 1 and a window > 0")
    if not isinstance(message, (str, dict, list)):
        raise TypeError(f"message must be a str, dict or list, not {type(message).__name__}")
    limit = int(max)
    hits: dict[str, list[float]] = {}     # key -> [count, reset_at]; insertion order = age

    def evict(now: float) -> None:
        expired = [k for k, v in hits.items() if v[1] <= now]
        for k in expired:
            del hits[k]
        while len(hits) >= max_keys:
            del hits[next(iter(hits))]

    async def rate_limit_mw(req: Request, res: Response, next: Callable[[], Any]) -> Any:
        now = clock()
        k = key(req)
        entry = hits.get(k)
        if entry is None or entry[1] <= now:
            if entry is not None:
                del hits[k]
            elif len(hits) >= max_keys:
                evict(now)
            entry = hits[k] = [0, now + window]
        entry[0] += 1
        reset = max_(0, math.ceil(entry[1] - now))
        remaining = max_(0, limit - int(entry[0]))
        res.set("RateLimit-Limit", limit)
        res.set("RateLimit-Remaining", remaining)
        res.set("RateLimit-Reset", reset)
        if entry[0] > limit:
            # Answered here, as express-rate-limit does: the chain stops.
            res.status(429).set("Retry-After", reset).send(message)
            return None
        return await next()

    rate_limit_mw.store = hits  # type: ignore[attr-defined]   # for tests / introspection
    return rate_limit_mw


max_ = max  # the builtin, shadowed by rate_limit's parameter


# ---- CORS -------------------------------------------------------------------------------


def cors(origins: Iterable[str] | str | None = None,
         methods: Iterable[str] = ("GET", "HEAD", "PUT", "PATCH", "POST", "DELETE"),
         headers: Iterable[str] | None = None, credentials: bool = False,
         max_age: int | None = None, expose_headers: Iterable[str] | None = None, *,
         origin: Iterable[str] | str | None = None) -> Callable[..., Any]:
    """Cross-Origin Resource Sharing.

    ``origins`` (or ``origin``, the name of the option in Express's cors
    package): "*" (the default) or a list of exact origins
    ("https://app.example"); a single origin may be given as a string.
    A request from an allowed origin gets ``Access-Control-Allow-Origin``
    (the origin itself, with ``Vary: Origin``, unless ``origins == "*"``
    without credentials) and, with ``credentials``, ``Access-Control-Allow-
    Credentials: true``. A preflight (``OPTIONS`` with ``Access-Control-
    Request-Method``) is answered here with 204 and the allowed methods,
    headers (``headers``, or those requested when None) and ``max_age``.
    A disallowed origin gets no CORS headers at all (its preflight gets a
    bare 204), so the browser blocks it.
    """
    if origins is not None and origin is not None:
        raise TypeError("cors takes origins or origin (its alias), not both")
    if origins is None:
        origins = origin if origin is not None else "*"
    if isinstance(origins, str) and origins != "*":
        origins = [origins]
    any_origin = origins == "*"
    allowed = frozenset() if any_origin else frozenset(origins)
    if not any_origin and "*" in allowed:
        raise ValueError("use origins='*' (not a list containing '*')")
    if any_origin and credentials:
        # Browsers refuse "*" with credentials; reflect the origin instead.
        pass
    methods_value = ", ".join(m.upper() for m in methods)
    headers_value = ", ".join(headers) if headers is not None else None
    expose_value = ", ".join(expose_headers) if expose_headers else None

    async def cors_mw(req: Request, res: Response, next: Callable[[], Any]) -> Any:
        origin = req.headers.get("origin")
        ok = origin is not None and (any_origin or origin in allowed)
        if ok:
            if any_origin and not credentials:
                res.set("Access-Control-Allow-Origin", "*")
            else:
                res.set("Access-Control-Allow-Origin", origin)
                res.set("Vary", "Origin")
            if credentials:
                res.set("Access-Control-Allow-Credentials", "true")
            if expose_value:
                res.set("Access-Control-Expose-Headers", expose_value)
        elif not any_origin:
            res.set("Vary", "Origin")
        if req.method == "OPTIONS" and "access-control-request-method" in req.headers:
            if ok:
                res.set("Access-Control-Allow-Methods", methods_value)
                requested = req.headers.get("access-control-request-headers")
                value = headers_value if headers_value is not None else requested
                if value:
                    res.set("Access-Control-Allow-Headers", value)
                if max_age is not None:
                    res.set("Access-Control-Max-Age", int(max_age))
            res.status(204).send(b"")
            res.remove("Content-Type")
            return None
        return await next()

    return cors_mw


# ---- helmet's headers -------------------------------------------------------------------

_CSP = ("default-src 'self';base-uri 'self';font-src 'self' https: data:;"
        "form-action 'self';frame-ancestors 'self';img-src 'self' data:;"
        "object-src 'none';script-src 'self';script-src-attr 'none';"
        "style-src 'self' https: 'unsafe-inline';upgrade-insecure-requests")

SECURITY_HEADERS = {
    "Content-Security-Policy": _CSP,
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Origin-Agent-Cluster": "?1",
    "Referrer-Policy": "no-referrer",
    "Strict-Transport-Security": "max-age=31536000; includeSubDomains",
    "X-Content-Type-Options": "nosniff",
    "X-DNS-Prefetch-Control": "off",
    "X-Download-Options": "noopen",
    "X-Frame-Options": "SAMEORIGIN",
    "X-Permitted-Cross-Domain-Policies": "none",
    "X-XSS-Protection": "0",
}


def security_headers(**overrides: str | None) -> Callable[..., Any]:
    """helmet's default headers on every response (errors included), and no
    ``X-Powered-By``. Override or drop one with a keyword named after the
    header, dashes as underscores: ``security_headers(
    Content_Security_Policy="default-src 'none'", X_Frame_Options=None)``.
    """
    values = dict(SECURITY_HEADERS)
    for name, value in overrides.items():
        header = name.replace("_", "-")
        match = next((h for h in values if h.lower() == header.lower()), header)
        if value is None:
            values.pop(match, None)
        else:
            values[match] = value
    items = tuple(values.items())

    async def security_headers_mw(req: Request, res: Response, next: Callable[[], Any]) -> Any:
        for name, value in items:
            res.set(name, value)
        try:
            return await next()
        finally:
            res.remove("X-Powered-By")

    return security_headers_mw


# ---- validation -------------------------------------------------------------------------


def _errors(exc: Any, where: str) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        out.append({"loc": [where, *err.get("loc", ())], "msg": err.get("msg"),
                    "type": err.get("type")})
    return out


def validate(body: Any = None, query: Any = None) -> Callable[..., Any]:
    """Route middleware: validate the JSON body and/or the query with
    pydantic models. Valid: ``req.validated_body`` / ``req.validated_query``
    hold the model instances. Invalid: 422 ``{"error": "Validation failed",
    "details": [{"loc": [...], "msg": ..., "type": ...}]}`` (a body that is
    not JSON is reported the same way, at ``["body"]``).

    pydantic's ``EmailStr`` needs the ``email-validator`` package, which
    ``phaseloop[http]`` does not bring: ``pip install "pydantic[email]"``.
    Without it pydantic raises ImportError when the model is defined.
    """
    import pydantic   # optional dependency: only needed when validate() is used

    async def validate_mw(req: Request, res: Response, next: Callable[[], Any]) -> Any:
        details: list[dict[str, Any]] = []
        if query is not None:
            try:
                req.validated_query = query.model_validate(req.query)
            except pydantic.ValidationError as exc:
                details.extend(_errors(exc, "query"))
        if body is not None:
            try:
                data = await req.json()
            except HTTPError:
                details.append({"loc": ["body"], "msg": "Invalid JSON", "type": "json_invalid"})
            else:
                try:
                    req.validated_body = body.model_validate(data)
                except pydantic.ValidationError as exc:
                    details.extend(_errors(exc, "body"))
        if details:
            raise HTTPError(422, "Validation failed", details=details)
        return await next()

    return validate_mw
