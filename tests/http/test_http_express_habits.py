"""phaseloop.http.App written the way an Express app is: plain ``def``
middlewares and handlers, ``next()`` without await, ``next(err)`` and
error-handling middlewares ``(err, req, res, next)``. Real sockets on
127.0.0.1, on phaseloop and on asyncio's loop.
"""
from __future__ import annotations

from phaseloop.http import App, HTTPError
from support.http import request, run_app


def express_app(trace: list) -> App:
    app = App()

    def logger(req, res, next):
        trace.append(f"{req.method} {req.path}")
        next()

    def require_token(req, res, next):
        if req.get("authorization") != "Bearer ok":
            return next(PermissionError("missing token"))
        next()

    app.use(logger)
    app.use("/private", require_token)

    @app.get("/")
    def home(req, res):                       # a plain def handler
        res.json({"home": True})

    @app.get("/private/data")
    def data(req, res):
        res.json({"secret": 42})

    @app.get("/fails")
    def fails(req, res, next):                # a handler that passes its error on
        next(ValueError("handler failed"))

    @app.get("/raises")
    async def raises(req, res):
        raise KeyError("raised")

    @app.get("/teapot")
    async def teapot(req, res):
        raise HTTPError(418)

    def on_permission(err, req, res, next):   # four parameters: an error handler
        if isinstance(err, PermissionError):
            trace.append(f"denied: {err}")
            return res.status(401).json({"error": str(err)})
        next(err)

    def on_value(err, req, res, next):
        if isinstance(err, ValueError):
            return res.status(400).send(f"bad: {err}")
        next(err)

    app.use(on_permission)
    app.use(on_value)
    return app


def test_plain_middlewares_and_handlers(loop):
    trace = []

    async def client(port):
        r = await request(port, "GET", "/")
        assert (r.status, r.json()) == (200, {"home": True})
        r = await request(port, "GET", "/private/data", headers={"Authorization": "Bearer ok"})
        assert (r.status, r.json()) == (200, {"secret": 42})
    run_app(loop, express_app(trace), client)
    assert trace == ["GET /", "GET /private/data"]


def test_next_err_reaches_the_error_handlers(loop):
    trace = []

    async def client(port):
        r = await request(port, "GET", "/private/data")
        assert (r.status, r.json()) == (401, {"error": "missing token"})
        r = await request(port, "GET", "/fails")
        assert (r.status, r.body) == (400, b"bad: handler failed")
    run_app(loop, express_app(trace), client)
    assert trace == ["GET /private/data", "denied: missing token", "GET /fails"]


def test_an_error_no_handler_takes_is_a_500_or_its_status(loop):
    async def client(port):
        r = await request(port, "GET", "/raises")
        assert (r.status, r.json()) == (500, {"error": "Internal Server Error"})
        r = await request(port, "GET", "/teapot")
        assert r.status == 418
        r = await request(port, "GET", "/missing")
        assert r.status == 404
    run_app(loop, express_app([]), client)


def test_a_mounted_error_handler_sees_only_its_paths(loop):
    app = App()

    @app.get("/api/x")
    async def api(req, res):
        raise RuntimeError("api")

    @app.get("/web/x")
    async def web(req, res):
        raise RuntimeError("web")

    async def api_errors(err, req, res, next):
        res.status(503).json({"api_error": str(err)})

    app.use("/api", api_errors)

    async def client(port):
        r = await request(port, "GET", "/api/x")
        assert (r.status, r.json()) == (503, {"api_error": "api"})
        assert (await request(port, "GET", "/web/x")).status == 500
    run_app(loop, app, client)


def test_route_middlewares_in_express_style(loop):
    app = App()

    def only_json(req, res, next):
        if req.get("content-type") != "application/json":
            return next(ValueError("JSON only"))
        next()

    @app.post("/items", only_json)
    async def create(req, res):
        res.status(201).json(await req.json())

    def on_error(err, req, res, next):
        res.status(415).send(str(err))

    app.use(on_error)

    async def client(port):
        r = await request(port, "POST", "/items", b'{"a": 1}',
                          headers={"Content-Type": "application/json"})
        assert (r.status, r.json()) == (201, {"a": 1})
        r = await request(port, "POST", "/items", b"a=1")
        assert (r.status, r.body) == (415, b"JSON only")
    run_app(loop, app, client)
