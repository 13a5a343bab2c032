"""aiohttp's web server and its client, both on the loop under test (and httpx too).

The server (``build_app``) and the clients run on the same loop in this process:
aiohttp's ``AppRunner``/``TCPSite`` on a free port of 127.0.0.1, then
``aiohttp.ClientSession`` (which connects through aiohappyeyeballs and the loop's
``sock_connect``/``create_connection``) or httpx's ``AsyncClient``.  Routes:
plain text, JSON, a JSON echo, a streamed (chunked) response written with timer
ticks between chunks, a 2 MiB upload hashed by the server, a 4 MiB download
(flow control both ways), the running loop's class, and a websocket echo.  Every
response is checked byte for byte.
"""
from __future__ import annotations

import asyncio
import hashlib
import random

import pytest

import aiohttp
import httpx
from aiohttp import web  # noqa: E402

import phaseloop  # noqa: E402

from integration_support import run  # noqa: E402

pytestmark = pytest.mark.timeout(60)

HELLO = "Hello, World!"
JSON_DOCUMENT = {"message": "hello", "numbers": [1, 2, 3], "nested": {"ok": True}}
DOWNLOAD = random.Random(7).randbytes(4 * 1024 * 1024)
UPLOAD = random.Random(8).randbytes(2 * 1024 * 1024)


def stream_line(index: int) -> bytes:
    """Line ``index`` of /stream."""
    return f"chunk {index}\n".encode()


async def hello(request: web.Request) -> web.Response:
    return web.Response(text=HELLO)


async def json_document(request: web.Request) -> web.Response:
    return web.json_response(JSON_DOCUMENT)


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response({"received": await request.json(), "length": len(body)})


async def stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    for index in range(int(request.query.get("chunks", "10"))):
        await response.write(stream_line(index))
        await asyncio.sleep(0.001)
    await response.write_eof()
    return response


async def upload(request: web.Request) -> web.Response:
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        digest.update(chunk)
        size += len(chunk)
    return web.json_response({"size": size, "sha256": digest.hexdigest()})


async def download(request: web.Request) -> web.Response:
    return web.Response(body=DOWNLOAD, content_type="application/octet-stream")


async def which_loop(request: web.Request) -> web.Response:
    loop = asyncio.get_running_loop()
    cls = type(loop)
    return web.json_response({"class": f"{cls.__module__}.{cls.__qualname__}",
                              "is_phaseloop": isinstance(loop, phaseloop.Loop)})


async def websocket_echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    async for message in ws:
        if message.type == aiohttp.WSMsgType.TEXT:
            await ws.send_str(message.data)
        elif message.type == aiohttp.WSMsgType.BINARY:
            await ws.send_bytes(message.data)
    return ws


def build_app() -> web.Application:
    """The app every test here serves."""
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.add_routes([
        web.get("/", hello),
        web.get("/json", json_document),
        web.post("/echo", echo),
        web.get("/stream", stream),
        web.post("/upload", upload),
        web.get("/download", download),
        web.get("/loop", which_loop),
        web.get("/ws", websocket_echo),
    ])
    return app


async def serve_and(client_side, loop_name: str) -> None:
    """Serve the app on 127.0.0.1 (a free port), run ``client_side(base_url)``, clean up."""
    runner = web.AppRunner(build_app(), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        await client_side(f"http://{host}:{port}", loop_name)
    finally:
        await runner.cleanup()


async def aiohttp_client_side(base: str, loop_name: str) -> None:
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(base, timeout=timeout) as session:
        async with session.get("/loop") as response:
            assert response.status == 200
            served_by = await response.json()
        assert served_by["is_phaseloop"] is (loop_name == "phaseloop"), served_by
        assert served_by["class"].startswith(f"{loop_name}."), served_by

        async with session.get("/") as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
            assert await response.read() == HELLO.encode()

        async with session.get("/json") as response:
            assert response.status == 200
            assert await response.json() == JSON_DOCUMENT

        document = {"numbers": list(range(2000)), "text": "été " * 500}
        async with session.post("/echo", json=document) as response:
            assert response.status == 200
            answer = await response.json()
        assert answer["received"] == document and answer["length"] > 10_000

        async with session.get("/stream", params={"chunks": "50"}) as response:
            assert response.status == 200
            assert response.headers["Transfer-Encoding"] == "chunked"
            body = b"".join([chunk async for chunk in response.content.iter_any()])
        assert body == b"".join(stream_line(i) for i in range(50))

        async with session.post("/upload", data=UPLOAD) as response:
            assert response.status == 200
            assert await response.json() == {"size": len(UPLOAD),
                                             "sha256": hashlib.sha256(UPLOAD).hexdigest()}

        async with session.get("/download") as response:
            assert response.status == 200
            assert await response.read() == DOWNLOAD

        async with session.get("/missing") as response:
            assert response.status == 404

        async def get_hello(i: int) -> tuple[int, bytes]:
            async with session.get("/", params={"n": str(i)}) as response:
                return response.status, await response.read()

        answers = await asyncio.gather(*(get_hello(i) for i in range(20)))
        assert answers == [(200, HELLO.encode())] * 20

        messages: list[str | bytes] = ["hello", "é" * 1000, b"\x00\x01\x02",
                                       bytes(range(256)) * 400, "x" * 100_000]
        async with session.ws_connect("/ws") as ws:
            for message in messages:
                if isinstance(message, str):
                    await ws.send_str(message)
                    assert await ws.receive_str(timeout=5) == message
                else:
                    await ws.send_bytes(message)
                    assert await ws.receive_bytes(timeout=5) == message
            await ws.close()
        assert ws.close_code == aiohttp.WSCloseCode.OK


async def httpx_client_side(base: str, loop_name: str) -> None:

    async with httpx.AsyncClient(base_url=base, timeout=5, trust_env=False) as client:
        response = await client.get("/loop")
        assert response.json()["is_phaseloop"] is (loop_name == "phaseloop")

        response = await client.get("/")
        assert (response.status_code, response.content) == (200, HELLO.encode())

        response = await client.get("/json")
        assert (response.status_code, response.json()) == (200, JSON_DOCUMENT)

        response = await client.post("/upload", content=UPLOAD)
        assert response.json() == {"size": len(UPLOAD),
                                   "sha256": hashlib.sha256(UPLOAD).hexdigest()}

        response = await client.get("/download")
        assert response.content == DOWNLOAD

        async with client.stream("GET", "/stream", params={"chunks": 30}) as streamed:
            assert streamed.headers["transfer-encoding"] == "chunked"
            body = b"".join([part async for part in streamed.aiter_bytes()])
        assert body == b"".join(stream_line(i) for i in range(30))

        answers = await asyncio.gather(*(client.get("/") for _ in range(20)))
        assert [(r.status_code, r.content) for r in answers] == [(200, HELLO.encode())] * 20


def test_aiohttp_server_and_client(loop, loop_name):
    run(loop, serve_and(aiohttp_client_side, loop_name))


def test_httpx_against_aiohttp_server(loop, loop_name):
    run(loop, serve_and(httpx_client_side, loop_name))
