"""phaseloop.http's security middlewares, each over real HTTP on 127.0.0.1."""
from __future__ import annotations

import pytest
from pydantic import BaseModel, Field

from phaseloop.http import App, cors, rate_limit, security_headers, validate
from support.http import request, run_app


def test_rate_limit(loop):
    app = App()
    limiter = rate_limit(window=60, max=3, message="Slow down")
    app.use(limiter)

    @app.get("/")
    async def root(req, res):
        return "ok"

    async def client(port):
        remaining = []
        for _ in range(3):
            r = await request(port, "GET", "/")
            assert r.status == 200 and r.headers["ratelimit-limit"] == "3"
            remaining.append(r.headers["ratelimit-remaining"])
            assert 0 < int(r.headers["ratelimit-reset"]) <= 60
        assert remaining == ["2", "1", "0"]
        r = await request(port, "GET", "/")
        # A str message is the plain-text body, as express-rate-limit sends it.
        assert (r.status, r.body) == (429, b"Slow down")
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
        assert 0 < int(r.headers["retry-after"]) <= 60
        assert r.headers["ratelimit-remaining"] == "0"
    run_app(loop, app, client)
    assert list(limiter.store) == ["127.0.0.1"]


def test_rate_limit_window_resets_and_memory_bound(loop):
    now = [1000.0]
    app = App()
    limiter = rate_limit(window=10, max=1, key=lambda req: req.headers.get("x-key", "?"),
                         max_keys=8, clock=lambda: now[0])
    app.use(limiter)

    @app.get("/")
    async def root(req, res):
        return "ok"

    async def client(port):
        assert (await request(port, "GET", "/", headers={"X-Key": "a"})).status == 200
        assert (await request(port, "GET", "/", headers={"X-Key": "a"})).status == 429
        now[0] += 10.5                                   # the window passed
        assert (await request(port, "GET", "/", headers={"X-Key": "a"})).status == 200
        for i in range(40):                              # many clients: memory stays bounded
            assert (await request(port, "GET", "/", headers={"X-Key": f"k{i}"})).status == 200
            assert len(limiter.store) <= 8
    run_app(loop, app, client)


def test_cors(loop):
    app = App()
    app.use(cors(origins=["https://good.example"], methods=["GET", "POST"],
                 headers=["Content-Type", "X-Token"], credentials=True, max_age=600))

    @app.get("/data")
    async def data(req, res):
        return {"d": 1}

    async def client(port):
        r = await request(port, "GET", "/data", headers={"Origin": "https://good.example"})
        assert r.headers["access-control-allow-origin"] == "https://good.example"
        assert r.headers["access-control-allow-credentials"] == "true"
        assert "Origin" in r.headers["vary"]
        r = await request(port, "GET", "/data", headers={"Origin": "https://evil.example"})
        assert r.status == 200
        assert not [h for h in r.headers if h.startswith("access-control-")]
        pre = {"Origin": "https://good.example", "Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "X-Token"}
        r = await request(port, "OPTIONS", "/data", headers=pre)
        assert r.status == 204
        assert r.headers["access-control-allow-methods"] == "GET, POST"
        assert r.headers["access-control-allow-headers"] == "Content-Type, X-Token"
        assert r.headers["access-control-max-age"] == "600"
        r = await request(port, "OPTIONS", "/data", headers={**pre, "Origin": "https://evil.example"})
        assert r.status == 204
        assert not [h for h in r.headers if h.startswith("access-control-")]
        r = await request(port, "GET", "/data")                 # no Origin: plain request
        assert r.status == 200 and "access-control-allow-origin" not in r.headers
    run_app(loop, app, client)


def test_cors_any_origin(loop):
    app = App()
    app.use(cors())

    @app.get("/")
    async def root(req, res):
        return "ok"

    async def client(port):
        r = await request(port, "GET", "/", headers={"Origin": "https://anyone.example"})
        assert r.headers["access-control-allow-origin"] == "*"
        r = await request(port, "OPTIONS", "/", headers={
            "Origin": "https://anyone.example", "Access-Control-Request-Method": "DELETE"})
        assert r.status == 204 and "DELETE" in r.headers["access-control-allow-methods"]
    run_app(loop, app, client)


HELMET = {
    "content-security-policy": "default-src 'self'",
    "strict-transport-security": "max-age=31536000; includeSubDomains",
    "x-content-type-options": "nosniff",
    "x-frame-options": "SAMEORIGIN",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}


def test_security_headers(loop):
    app = App()
    app.use(security_headers())

    @app.get("/")
    async def root(req, res):
        res.set("X-Powered-By", "Express")
        return "ok"

    @app.get("/boom")
    async def boom(req, res):
        raise RuntimeError("x")

    async def client(port):
        for path, status in (("/", 200), ("/missing", 404), ("/boom", 500)):
            r = await request(port, "GET", path)
            assert r.status == status
            for name, value in HELMET.items():
                assert r.headers[name].startswith(value), (path, name)
            assert "x-powered-by" not in r.headers
    run_app(loop, app, client)


def test_security_headers_overrides(loop):
    app = App()
    app.use(security_headers(X_Frame_Options="DENY", Content_Security_Policy=None))

    @app.get("/")
    async def root(req, res):
        return "ok"

    async def client(port):
        r = await request(port, "GET", "/")
        assert r.headers["x-frame-options"] == "DENY"
        assert "content-security-policy" not in r.headers
        assert r.headers["x-content-type-options"] == "nosniff"
    run_app(loop, app, client)


class NoteIn(BaseModel):
    title: str = Field(min_length=1, max_length=50)
    stars: int = Field(ge=0, le=5)


class Paging(BaseModel):
    limit: int = Field(default=10, ge=1, le=100)


def test_validate(loop):
    app = App()

    @app.post("/notes", validate(body=NoteIn, query=Paging))
    async def create(req, res):
        assert isinstance(req.validated_body, NoteIn)
        return {"title": req.validated_body.title, "limit": req.validated_query.limit}

    async def client(port):
        r = await request(port, "POST", "/notes?limit=5", b'{"title": "a", "stars": 3}')
        assert (r.status, r.json()) == (200, {"title": "a", "limit": 5})
        r = await request(port, "POST", "/notes", b'{"title": "", "stars": 9}')
        assert r.status == 422
        body = r.json()
        assert body["error"] == "Validation failed"
        assert {tuple(d["loc"]) for d in body["details"]} == {("body", "title"), ("body", "stars")}
        assert all(d["msg"] for d in body["details"])
        r = await request(port, "POST", "/notes?limit=0", b'{"title": "t", "stars": 1}')
        assert r.status == 422 and r.json()["details"][0]["loc"] == ["query", "limit"]
        r = await request(port, "POST", "/notes", b'{not json')
        assert r.status == 422 and r.json()["details"][0]["loc"] == ["body"]
        # the rejected input is not echoed back
        r = await request(port, "POST", "/notes", b'{"title": "<script>", "stars": "x"}')
        assert r.status == 422 and b"<script>" not in r.body
    run_app(loop, app, client)


def test_body_limit_413_with_middlewares(loop):
    app = App(max_body_size=10)
    app.use(security_headers())

    @app.post("/", validate(body=NoteIn))
    async def create(req, res):
        return "ok"

    async def client(port):
        r = await request(port, "POST", "/", b'{"title": "far too long for ten bytes"}')
        assert r.status == 413
    run_app(loop, app, client)


@pytest.mark.parametrize("bad", [dict(max=0), dict(window=0), dict(window_ms=0)])
def test_rate_limit_arguments(bad):
    with pytest.raises(ValueError):
        rate_limit(**bad)
    with pytest.raises(TypeError, match="window_ms"):
        rate_limit(window=60, window_ms=60_000)
    with pytest.raises(TypeError, match="message"):
        rate_limit(message=429)


def test_rate_limit_window_ms_and_a_json_message(loop):
    # express-rate-limit's options: windowMs (milliseconds), max, message.
    now = [0.0]
    app = App()
    app.use("/api/", rate_limit(window_ms=15 * 60 * 1000, max=1,
                                message={"error": "Too many requests", "retry": True},
                                clock=lambda: now[0]))

    @app.get("/api/x")
    async def x(req, res):
        return "ok"

    async def client(port):
        assert (await request(port, "GET", "/api/x")).status == 200
        r = await request(port, "GET", "/api/x")
        assert (r.status, r.json()) == (429, {"error": "Too many requests", "retry": True})
        assert r.headers["retry-after"] == str(15 * 60)          # seconds, not ms
        now[0] += 15 * 60 - 1
        assert (await request(port, "GET", "/api/x")).status == 429
        now[0] += 1                                              # 15 minutes on: a new window
        assert (await request(port, "GET", "/api/x")).status == 200
    run_app(loop, app, client)


def test_cors_origin_alias_and_a_single_origin(loop):
    app = App()
    app.use(cors(origin="https://good.example"))           # Express's cors({origin})

    @app.get("/")
    async def root(req, res):
        return "ok"

    async def client(port):
        r = await request(port, "GET", "/", headers={"Origin": "https://good.example"})
        assert r.headers["access-control-allow-origin"] == "https://good.example"
        r = await request(port, "GET", "/", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
    run_app(loop, app, client)
    with pytest.raises(TypeError, match="origin"):
        cors(origins="*", origin="*")
