"""phaseloop.http.App as an ASGI application, under uvicorn and under hypercorn.

Each server runs in this process on the loop under test (phaseloop and asyncio's
own), on 127.0.0.1, and the same App answers real HTTP/1.1 requests: routes and
parameters, a JSON body round trip, 404/405/HTTPError/500, a streamed body, HEAD,
the body size limit, the response listeners, uvicorn's root path, and the rate
limiter keyed on the client uvicorn's proxy headers name.
"""
from __future__ import annotations

import asyncio
import json
import socket

import pytest
import uvicorn
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig

from phaseloop.http import App, HTTPError, rate_limit
from support.http import request
from support.net import closed_port

pytestmark = pytest.mark.timeout(30)


def make_app() -> tuple[App, list]:
    app = App(max_body_size=1000)
    answered: list = []
    app.on("response", lambda req, res: answered.append((req.route, res.status_code)))

    @app.get("/notes/{id}")
    def note(req, res):
        return {"id": req.params["id"], "q": req.query.get("q"), "client": req.client[0],
                "root_path": req.root_path, "scheme": req.scheme}

    @app.post("/echo")
    async def echo(req, res):
        return {"got": await req.json()}

    @app.get("/teapot")
    def teapot(req, res):
        raise HTTPError(418, "short and stout", headers={"X-Tea": "yes"})

    @app.get("/boom")
    def boom(req, res):
        raise RuntimeError("on purpose")

    @app.get("/stream")
    async def stream(req, res):
        async def chunks():
            for i in range(3):
                yield "part %d;" % i
        res.send(chunks())

    @app.get("/limited", rate_limit(window=60, max=2))
    def limited(req, res):
        return {"client": req.client[0]}

    return app, answered


async def exercise(port: int, answered: list) -> None:
    r = await request(port, path="/notes/a%20b?q=1")
    assert r.status == 200 and r.json()["id"] == "a b" and r.json()["q"] == "1"
    assert r.json()["client"] == "127.0.0.1"
    body = {"text": "é", "n": [1, 2]}
    r = await request(port, "POST", "/echo", json.dumps(body).encode(),
                      {"Content-Type": "application/json"})
    assert r.status == 200 and r.json() == {"got": body}
    r = await request(port, "POST", "/echo", b"not json")
    assert r.status == 400 and r.json() == {"error": "Invalid JSON body"}
    r = await request(port, "POST", "/echo", b"x" * 2000)
    assert r.status == 413
    assert (await request(port, path="/nowhere")).status == 404
    r = await request(port, "DELETE", "/echo")
    assert r.status == 405 and r.headers["allow"] == "POST"
    r = await request(port, path="/teapot")
    assert (r.status, r.headers["x-tea"], r.json()) == (418, "yes", {"error": "short and stout"})
    r = await request(port, path="/boom")
    assert r.status == 500 and r.json() == {"error": "Internal Server Error"}
    r = await request(port, path="/stream")
    assert r.status == 200 and r.body == b"part 0;part 1;part 2;"
    r = await request(port, "HEAD", "/notes/x")
    assert r.status == 200 and r.body == b""
    assert ("/notes/{id}", 200) in answered and (None, 404) in answered
    assert ("/boom", 500) in answered


def run_under_uvicorn(loop, app, client, **config) -> None:
    async def main() -> None:
        config.setdefault("lifespan", "on")
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, loop="none",
                                               log_level="warning", **config))
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        serving = loop.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:
                await asyncio.sleep(0.01)
            await asyncio.wait_for(client(sock.getsockname()[1]), 15)
        finally:
            server.should_exit = True
            await asyncio.wait_for(serving, 10)
            sock.close()
    loop.run_until_complete(main())


def test_app_under_uvicorn(loop, uncaught_reports):
    app, answered = make_app()
    run_under_uvicorn(loop, app, lambda port: exercise(port, answered))
    assert any(isinstance(e, RuntimeError) and str(e) == "on purpose"
               for e, _ in uncaught_reports)


def test_app_under_uvicorn_root_path_and_proxy_headers(loop):
    app, _ = make_app()

    async def client(port: int) -> None:
        forwarded = {"X-Forwarded-For": "198.51.100.9", "X-Forwarded-Proto": "https"}
        body = (await request(port, path="/notes/1", headers=forwarded)).json()
        assert (body["client"], body["scheme"], body["root_path"]) == \
            ("198.51.100.9", "https", "/api")
        statuses = [(await request(port, path="/limited", headers=forwarded)).status
                    for _ in range(3)]
        assert statuses == [200, 200, 429]
        r = await request(port, path="/limited", headers={"X-Forwarded-For": "198.51.100.10"})
        assert r.status == 200 and r.json() == {"client": "198.51.100.10"}

    run_under_uvicorn(loop, app, client, root_path="/api", proxy_headers=True,
                      forwarded_allow_ips="127.0.0.1")


def test_app_under_hypercorn(loop, uncaught_reports):
    app, answered = make_app()
    port = closed_port()
    config = HypercornConfig()
    config.bind = ["127.0.0.1:%d" % port]
    config.loglevel = "WARNING"
    config.accesslog = None

    async def main() -> None:
        stop = asyncio.Event()
        serving = loop.create_task(hypercorn_serve(app, config, shutdown_trigger=stop.wait))
        try:
            for _ in range(500):
                try:
                    await request(port, path="/notes/0")
                    break
                except ConnectionRefusedError:
                    await asyncio.sleep(0.01)
            await asyncio.wait_for(exercise(port, answered), 15)
        finally:
            stop.set()
            await asyncio.wait_for(serving, 10)

    loop.run_until_complete(main())
    assert any(isinstance(e, RuntimeError) for e, _ in uncaught_reports)


def test_lifespan_and_websocket_scopes(loop):
    app, _ = make_app()

    async def main() -> None:
        sent: list = []
        incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

        async def receive():
            return next(incoming)

        async def send(message):
            sent.append(message["type"])
        await app({"type": "lifespan"}, receive, send)
        assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
        sent.clear()
        await app({"type": "websocket", "path": "/"}, receive, send)
        assert sent == ["websocket.close"]

    loop.run_until_complete(main())
