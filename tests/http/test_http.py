"""phaseloop.http: the App, routing, Request/Response and HTTP/1.1 features,
over real sockets on 127.0.0.1, on phaseloop and on asyncio's loop."""
from __future__ import annotations

import asyncio
import socket

import pytest

import phaseloop
from phaseloop.http import App, HTTPError
from phaseloop.streams import Readable
from support.http import exchange, parse_responses, request, run_app


def make_app(**kwargs) -> App:
    app = App(**kwargs)

    @app.get("/")
    async def root(req, res):
        return {"hello": "world"}

    @app.get("/text")
    async def text(req, res):
        return "hi"

    @app.get("/bytes")
    async def raw(req, res):
        return b"\x00\x01"

    @app.get("/list")
    async def lst(req, res):
        return [1, 2, 3]

    @app.post("/echo")
    async def echo(req, res):
        return await req.body()

    @app.get("/notes/{id}/tags/{tag}")
    async def note_tag(req, res):
        return {"id": req.params["id"], "tag": req.params["tag"]}

    @app.get("/inspect")
    async def inspect(req, res):
        return {"method": req.method, "path": req.path, "query": req.query,
                "ua": req.headers["USER-AGENT"], "ua2": req.headers.get("user-agent"),
                "client": list(req.client)}

    @app.put("/made")
    async def made(req, res):
        res.status(201).set("X-Thing", "yes").json({"ok": True})

    @app.delete("/empty")
    async def empty(req, res):
        res.status(204).send()
    return app


def test_routes_and_bodies(loop):
    app = make_app()

    async def client(port):
        r = await request(port, "GET", "/")
        assert (r.status, r.json(), r.headers["content-type"]) == (200, {"hello": "world"},
                                                                    "application/json")
        assert r.headers["date"].endswith(" GMT")
        r = await request(port, "GET", "/text")
        assert (r.body, r.headers["content-type"]) == (b"hi", "text/plain; charset=utf-8")
        r = await request(port, "GET", "/bytes")
        assert (r.body, r.headers["content-type"]) == (b"\x00\x01", "application/octet-stream")
        assert (await request(port, "GET", "/list")).json() == [1, 2, 3]
        r = await request(port, "POST", "/echo", b"payload")
        assert r.body == b"payload"
        r = await request(port, "GET", "/notes/a%20b/tags/x")
        assert r.json() == {"id": "a b", "tag": "x"}
        r = await request(port, "GET", "/inspect?a=1&b=two&b=three&c=",
                          headers={"User-Agent": "pytest"})
        body = r.json()
        assert body["method"] == "GET" and body["path"] == "/inspect"
        assert body["query"] == {"a": "1", "b": "three", "c": ""}
        assert body["ua"] == body["ua2"] == "pytest"
        assert body["client"][0] == "127.0.0.1"
        r = await request(port, "PUT", "/made")
        assert (r.status, r.headers["x-thing"], r.json()) == (201, "yes", {"ok": True})
        r = await request(port, "DELETE", "/empty")
        assert r.status == 204 and "content-length" not in r.headers and r.body == b""
        # trailing slash is the same route
        assert (await request(port, "GET", "/list/")).json() == [1, 2, 3]
    run_app(loop, app, client)


def test_404_405_head(loop):
    app = make_app()

    async def client(port):
        r = await request(port, "GET", "/missing")
        assert (r.status, r.json()) == (404, {"error": "Not Found"})
        r = await request(port, "POST", "/")
        assert r.status == 405 and r.headers["allow"] == "GET, HEAD"
        r = await request(port, "HEAD", "/")
        assert r.status == 200 and r.headers["content-length"] == "17"
        data = await exchange(port, b"HEAD / HTTP/1.1\r\nConnection: close\r\n\r\n")
        assert data.endswith(b"\r\n\r\n")           # no body after the head
    run_app(loop, app, client)


def test_keep_alive_and_pipelining_in_order(loop):
    app = App()

    @app.get("/slow")
    async def slow(req, res):
        await asyncio.sleep(0.05)
        return "slow " + req.query["n"]

    @app.get("/fast")
    async def fast(req, res):
        return "fast " + req.query["n"]

    async def client(port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        # keep-alive: two exchanges on one connection
        for n in range(2):
            writer.write(f"GET /fast?n={n} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            assert await reader.readexactly(length) == f"fast {n}".encode()
        # pipelining: the slow answers must not be overtaken
        paths = ["/slow?n=1", "/fast?n=2", "/slow?n=3", "/fast?n=4"]
        writer.write(b"".join(f"GET {p} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for p in paths)
                     + b"GET /fast?n=5 HTTP/1.1\r\nConnection: close\r\n\r\n")
        data = await reader.read()
        writer.close()
        bodies = [r.body.decode() for r in parse_responses(data)]
        assert bodies == ["slow 1", "fast 2", "slow 3", "fast 4", "fast 5"]
    run_app(loop, app, client)


def test_http10_closes(loop):
    app = make_app()

    async def client(port):
        data = await exchange(port, b"GET /text HTTP/1.0\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"hi")
    run_app(loop, app, client)


def test_chunked_request_body(loop):
    app = make_app()

    async def client(port):
        data = await exchange(port, b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                                    b"Connection: close\r\n\r\n"
                                    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        assert parse_responses(data)[0].body == b"hello world"
    run_app(loop, app, client)


def test_streaming_responses_chunked(loop):
    app = App()

    @app.get("/gen")
    async def gen(req, res):
        async def chunks():
            for i in range(3):
                await asyncio.sleep(0)
                yield f"part{i};"
        return chunks()

    @app.get("/readable")
    async def readable(req, res):
        res.set("Content-Type", "text/plain")
        res.send(Readable.from_iterable([b"a" * 10, b"b" * 5], object_mode=False))

    @app.get("/sized")
    async def sized(req, res):
        res.set("Content-Length", 6).send(iter([b"abc", b"def"]))

    async def client(port):
        r = await request(port, "GET", "/gen")
        assert r.chunked and r.body == b"part0;part1;part2;"
        r = await request(port, "GET", "/readable")
        assert r.chunked and r.body == b"a" * 10 + b"b" * 5
        assert r.headers["content-type"] == "text/plain"
        r = await request(port, "GET", "/sized")
        assert not r.chunked and r.body == b"abcdef"
    run_app(loop, app, client)


def test_expect_100_continue(loop):
    app = make_app()

    async def client(port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /echo HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"data")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert await reader.readexactly(4) == b"data"
        writer.close()
        # too large: 413 without a 100 Continue
        small = b"POST /echo HTTP/1.1\r\nContent-Length: 99999999\r\nExpect: 100-continue\r\n\r\n"
        data = await exchange(port, small)
        assert data.startswith(b"HTTP/1.1 413")
    run_app(loop, app, client)


def test_middleware_order_and_mounting(loop):
    app = App()
    seen = []

    async def outer(req, res, next):
        seen.append("outer in")
        result = await next()
        res.set("X-Outer", "1")
        seen.append("outer out")
        return result

    async def api_only(req, res, next):
        seen.append("api " + req.path)
        return await next()

    async def route_mw(req, res, next):
        req.state["user"] = "ada"
        return await next()

    async def short_circuit(req, res, next):
        if req.query.get("deny"):
            res.status(403).json({"error": "denied"})
            return None
        return await next()

    app.use(outer)
    app.use("/api", api_only)
    app.use(short_circuit)

    @app.get("/api/me", route_mw)
    async def me(req, res):
        return {"user": req.state["user"]}

    @app.get("/apix")
    async def apix(req, res):
        return "x"

    async def client(port):
        r = await request(port, "GET", "/api/me")
        assert r.json() == {"user": "ada"} and r.headers["x-outer"] == "1"
        assert seen == ["outer in", "api /api/me", "outer out"]
        seen.clear()
        assert (await request(port, "GET", "/apix")).body == b"x"
        assert seen == ["outer in", "outer out"]         # /apix is not under /api
        r = await request(port, "GET", "/api/me?deny=1")
        assert r.status == 403 and r.headers["x-outer"] == "1"
    run_app(loop, app, client)


def test_handler_error_is_500_and_reported(loop, uncaught_reports):
    app = make_app()

    @app.get("/boom")
    async def boom(req, res):
        raise ValueError("secret detail")

    @app.get("/teapot")
    async def teapot(req, res):
        raise HTTPError(418, "short and stout", headers={"X-Tea": "earl grey"})

    @app.get("/inject")
    async def inject(req, res):
        res.set("X-Bad", "a\r\nSet-Cookie: evil=1")

    @app.get("/unicode-header")
    async def unicode_header(req, res):
        res.set("X-Euro", "\u20ac")

    async def client(port):
        r = await request(port, "GET", "/boom")
        assert (r.status, r.json()) == (500, {"error": "Internal Server Error"})
        assert b"secret" not in r.body and b"Traceback" not in r.body
        r = await request(port, "GET", "/teapot")
        assert (r.status, r.json(), r.headers["x-tea"]) == (418, {"error": "short and stout"},
                                                             "earl grey")
        r = await request(port, "GET", "/inject")
        assert r.status == 500 and "set-cookie" not in r.headers
        assert (await request(port, "GET", "/unicode-header")).status == 500
        assert (await request(port, "GET", "/")).status == 200   # still serving
    run_app(loop, app, client)
    exc, context = uncaught_reports[0]
    assert isinstance(exc, ValueError)
    assert context["request"].path == "/boom"


def test_debug_shows_traceback(loop):
    app = App(debug=True)

    @app.get("/boom")
    async def boom(req, res):
        raise ValueError("visible")

    async def client(port):
        r = await request(port, "GET", "/boom")
        body = r.json()
        assert r.status == 500 and "visible" in body["exception"]
        assert any("Traceback" in line for line in body["traceback"])
    run_app(loop, app, client)


def test_body_size_limit(loop):
    app = make_app(max_body_size=100)

    async def client(port):
        r = await request(port, "POST", "/echo", b"x" * 100)
        assert r.status == 200
        r = await request(port, "POST", "/echo", b"x" * 101)
        assert (r.status, r.json()) == (413, {"error": "Payload Too Large"})
        data = await exchange(port, b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                                    + b"40\r\n" + b"y" * 64 + b"\r\n" + b"40\r\n" + b"y" * 64
                                    + b"\r\n0\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 413") and b"Connection: close" in data
    run_app(loop, app, client)


def test_json_body(loop):
    app = App()

    @app.post("/j")
    async def j(req, res):
        data = await req.json()
        return {"got": data}

    async def client(port):
        r = await request(port, "POST", "/j", b'{"a": [1, 2]}')
        assert r.json() == {"got": {"a": [1, 2]}}
        r = await request(port, "POST", "/j", b'{"a": ')
        assert (r.status, r.json()) == (400, {"error": "Invalid JSON body"})
    run_app(loop, app, client)


def test_serve_on_socket_until_cancelled(loop):
    app = make_app()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]

    async def main():
        task = asyncio.ensure_future(app.serve(sock=sock, drain_timeout=1))
        await asyncio.sleep(0.05)
        r = await request(port, "GET", "/")
        assert r.json() == {"hello": "world"}
        # a keep-alive connection that is idle when we stop gets closed
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\n\r\n")
        await reader.readuntil(b"world\"}")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await asyncio.wait_for(reader.read(), 2) == b""
        writer.close()
        assert not app.connections
    loop.run_until_complete(main())


def test_write_flow_control(loop):
    """A client that does not read pauses the stream (pause_writing honoured)."""
    app = App()
    produced = []
    total = 256
    chunk = b"z" * 65536

    @app.get("/big")
    async def big(req, res):
        async def gen():
            for i in range(total):
                produced.append(i)
                yield chunk
        return gen()

    async def client(port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /big HTTP/1.1\r\nConnection: close\r\n\r\n")
        await asyncio.sleep(0.3)
        early = len(produced)
        received = 0
        while data := await reader.read(1 << 20):
            received += len(data)
        writer.close()
        return early, received

    early, received = run_app(loop, app, client)
    assert early < total                       # stopped while the client was not reading
    assert received > total * len(chunk)       # everything arrived in the end


def test_phaseloop_run_entry_point():
    """phaseloop.run + app.listen, the way a program uses it."""
    app = make_app()

    async def main():
        server = await app.listen(0)
        port = server.sockets[0].getsockname()[1]
        r = await request(port, "GET", "/list")
        server.close()
        await app.drain(0.5)
        return r.json()
    assert phaseloop.run(main()) == [1, 2, 3]
