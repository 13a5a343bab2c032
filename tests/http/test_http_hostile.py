"""phaseloop.http under hostile input: malformed requests, oversized headers,
slowloris, bad chunked encoding, disconnects, fd leaks, and a hypothesis fuzz
of the request parser path."""
from __future__ import annotations

import asyncio
import gc
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import phaseloop
from phaseloop.http import App, HttpProtocol
from support.http import exchange, parse_responses, request, run_app


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def make_app(**kwargs) -> App:
    app = App(**kwargs)

    @app.get("/")
    async def root(req, res):
        return {"ok": True}

    @app.post("/echo")
    async def echo(req, res):
        return await req.body()

    @app.get("/boom")
    async def boom(req, res):
        raise RuntimeError("boom")
    return app


@pytest.mark.parametrize("raw", [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
    b"GET / HTTP/1.1\r\nBad Header Name: x\r\n\r\n",
    b"GET /\x00 HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",          # a TLS hello
])
def test_malformed_is_400_and_closed(loop, raw):
    app = make_app()

    async def client(port):
        data = await exchange(port, raw)
        assert data.startswith(b"HTTP/1.1 400 Bad Request"), data
        assert b"Connection: close" in data
        assert (await request(port, "GET", "/")).status == 200
    run_app(loop, app, client)


def test_oversized_headers_431(loop):
    app = make_app(max_header_size=4096, max_headers=20)

    async def client(port):
        data = await exchange(port, b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 431")
        many = b"".join(b"X-%d: 1\r\n" % i for i in range(30))
        data = await exchange(port, b"GET / HTTP/1.1\r\n" + many + b"\r\n")
        assert data.startswith(b"HTTP/1.1 431")
        data = await exchange(port, b"GET /" + b"p" * 5000 + b" HTTP/1.1\r\n\r\n")
        assert data.startswith(b"HTTP/1.1 431")
        assert (await request(port, "GET", "/")).status == 200
    run_app(loop, app, client)


def test_slowloris_header_timeout(loop):
    app = make_app(header_timeout=0.3)

    async def client(port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        start = time.monotonic()
        writer.write(b"GET / HTTP/1.1\r\n")
        closed_after = None
        for i in range(40):                    # a header line every 50 ms, never the end
            await asyncio.sleep(0.05)
            if reader.at_eof():
                break
            try:
                writer.write(b"X-%d: slow\r\n" % i)
            except (ConnectionError, RuntimeError):
                break
            try:
                data = await asyncio.wait_for(reader.read(1024), 0.001)
            except asyncio.TimeoutError:
                continue
            except ConnectionError:
                break
            if data.startswith(b"HTTP/1.1 408") or data == b"":
                break
        closed_after = time.monotonic() - start
        writer.close()
        assert closed_after < 1.5
        # an idle connection that never sends is closed too
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(reader.read(), 2) == b""
        writer.close()
        assert (await request(port, "GET", "/")).status == 200
    run_app(loop, app, client)


def test_slow_body_timeout(loop):
    app = make_app(body_timeout=0.3)

    async def client(port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /echo HTTP/1.1\r\nContent-Length: 1000\r\n\r\nabc")
        start = time.monotonic()
        data = await asyncio.wait_for(reader.read(), 3)
        assert data.startswith(b"HTTP/1.1 408") and time.monotonic() - start < 2
        writer.close()
        assert (await request(port, "GET", "/")).status == 200
    run_app(loop, app, client)


def test_idle_keep_alive_timeout(loop):
    app = make_app(keep_alive_timeout=0.2)

    async def client(port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\n\r\n")
        await reader.readuntil(b'{"ok":true}')
        start = time.monotonic()
        assert await asyncio.wait_for(reader.read(), 2) == b""
        assert time.monotonic() - start < 1.5
        writer.close()
    run_app(loop, app, client)


@pytest.mark.parametrize("body", [
    b"zz\r\nhello\r\n0\r\n\r\n",                      # not hex
    b"5\r\nhelloXX0\r\n\r\n",                          # missing CRLF after data
    b"ffffffffffffffffffff\r\n",                       # size overflow
])
def test_invalid_chunked_400(loop, body):
    app = make_app()

    async def client(port):
        data = await exchange(port, b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                              + body)
        assert data.startswith((b"HTTP/1.1 400", b"HTTP/1.1 413")), data
        assert (await request(port, "GET", "/")).status == 200
    run_app(loop, app, client)


def test_handler_raises_keeps_serving(loop):
    app = make_app()

    async def client(port):
        data = await exchange(port, b"GET /boom HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n"
                                    b"Connection: close\r\n\r\n")
        statuses = [r.status for r in parse_responses(data)]
        assert statuses == [500, 200]
    run_app(loop, app, client)


def test_client_disconnects_mid_response_no_leak(loop):
    app = make_app()
    state = {"closed": 0, "sent": 0}

    @app.get("/stream")
    async def stream(req, res):
        async def gen():
            try:
                for _ in range(10_000):
                    state["sent"] += 1
                    yield b"x" * 16384
                    await asyncio.sleep(0)
            finally:
                state["closed"] += 1
        return gen()

    async def client(port):
        await request(port, "GET", "/")       # warm up (lazy imports, caches)
        gc.collect()
        before = open_fds()
        for _ in range(5):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /stream HTTP/1.1\r\n\r\n")
            await reader.readexactly(50_000)
            writer.transport.abort()
        # a request left half-sent, then dropped
        for _ in range(5):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /echo HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc")
            await asyncio.sleep(0.01)
            writer.transport.abort()
        for _ in range(100):
            if state["closed"] == 5 and not app.connections:
                break
            await asyncio.sleep(0.02)
        assert state["closed"] == 5
        assert not app.connections
        assert state["sent"] < 5 * 10_000
        assert (await request(port, "GET", "/")).status == 200
        await asyncio.sleep(0.05)
        gc.collect()
        assert open_fds() <= before
    run_app(loop, app, client)


def test_many_connections_fd_count(loop):
    app = make_app()

    async def client(port):
        await request(port, "GET", "/")
        gc.collect()
        before = open_fds()
        for i in range(30):
            kind = i % 3
            if kind == 0:
                await request(port, "GET", "/")
            elif kind == 1:
                await exchange(port, b"BROKEN\r\n\r\n")
            else:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET / HTTP/1.1\r\n")
                writer.transport.abort()
        for _ in range(100):
            if not app.connections:
                break
            await asyncio.sleep(0.02)
        gc.collect()
        assert not app.connections
        assert open_fds() <= before
    run_app(loop, app, client)


# ---- fuzzing ----------------------------------------------------------------------------


class _FakeTransport:
    """Collects what the protocol writes; enough of a Transport for HttpProtocol."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False
        self.protocol = None

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 1234) if name == "peername" else default

    def write(self, data):
        if not self.closed:
            self.data += data

    def close(self):
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    abort = close

    def is_closing(self):
        return self.closed

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass


_METHODS = st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"HEAD", b"OPTIONS",
                            b"G\x00T", b""])
_TOKEN = st.binary(min_size=0, max_size=12)
_HEADER = st.tuples(st.sampled_from([b"Host", b"Content-Length", b"Transfer-Encoding",
                                     b"Expect", b"Connection", b"X-A", b"Upgrade"]) | _TOKEN,
                    st.sampled_from([b"0", b"5", b"-1", b"chunked", b"100-continue", b"close",
                                     b"keep-alive", b"websocket", b"99999999999999999999"])
                    | _TOKEN)
_REQUEST = st.builds(
    lambda m, path, ver, headers, body, sep: (
        m + b" " + path + b" " + ver + sep
        + b"".join(n + b": " + v + sep for n, v in headers) + sep + body),
    _METHODS, st.sampled_from([b"/", b"/echo", b"/boom", b"/x?y=1", b"*", b"http://h/echo"])
    | _TOKEN, st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2", b"XTTP/1.1"]),
    st.lists(_HEADER, max_size=5), st.binary(max_size=40), st.sampled_from([b"\r\n", b"\n"]))


@settings(max_examples=200, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(chunks=st.lists(_REQUEST | st.binary(max_size=60), min_size=1, max_size=4),
       split=st.integers(min_value=1, max_value=64))
def test_fuzz_parser_path(chunks, split):
    """Whatever bytes arrive, the protocol answers with well-formed responses
    (or nothing) and never raises out of its callbacks."""
    app = make_app(max_body_size=64, header_timeout=5)
    loop = phaseloop.new_event_loop()
    try:
        async def main():
            proto = HttpProtocol(app)
            transport = _FakeTransport()
            transport.protocol = proto
            proto.connection_made(transport)
            data = b"".join(chunks)
            for i in range(0, len(data), split):
                proto.data_received(data[i:i + split])
                await asyncio.sleep(0)
            if not transport.closed:
                proto.eof_received()
            for _ in range(20):
                await asyncio.sleep(0)
            if not transport.closed:
                transport.close()
            await asyncio.sleep(0)
            return bytes(transport.data)
        out = loop.run_until_complete(asyncio.wait_for(main(), 5))
    finally:
        loop.close()
    if out:
        assert out.startswith(b"HTTP/1.1 "), out[:80]
        for r in parse_responses(out):
            assert 100 <= r.status < 600
            if r.status == 500:
                assert b"Traceback" not in r.body


@settings(max_examples=30, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(raw=_REQUEST | st.binary(min_size=1, max_size=200))
def test_fuzz_over_sockets(raw):
    """Real sockets on phaseloop: any input, then a good request still works."""
    app = make_app(max_body_size=64, header_timeout=1)

    async def client(port):
        try:
            out = await exchange(port, raw, eof=True, timeout=3)
        except ConnectionError:
            out = b""
        assert out == b"" or out.startswith(b"HTTP/1.1 ")
        assert (await request(port, "GET", "/")).status == 200

    loop = phaseloop.new_event_loop()
    try:
        run_app(loop, app, client)
    finally:
        loop.close()
