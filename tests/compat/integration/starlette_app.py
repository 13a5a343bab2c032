"""A small Starlette app that the uvicorn integration test serves in a subprocess.

Routes (every answer is fixed or derived from the request, so the test can check
it exactly):

- ``GET /``: ``Hello, World!`` as text/plain;
- ``GET /json``: a fixed JSON document (``JSON_DOCUMENT``);
- ``POST /echo``: the JSON body back, with its size in bytes;
- ``GET /stream?chunks=N``: a chunked response of N lines ``chunk I\\n``, one
  timer tick (``asyncio.sleep``) between chunks;
- ``GET /loop``: which event loop runs the app: its class, whether it is a
  ``phaseloop.Loop``, and whether the lifespan start-up ran on that same loop;
- ``WS /ws``: echoes text frames as text and binary frames as binary until the
  client closes.
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

import phaseloop

HELLO = "Hello, World!"
JSON_DOCUMENT = {"message": "hello", "numbers": [1, 2, 3], "nested": {"ok": True}}
#: The loop that ran the lifespan start-up (empty until it has run).
_startup_loop: list[asyncio.AbstractEventLoop] = []


async def hello(request: Request) -> Response:
    return PlainTextResponse(HELLO)


async def json_document(request: Request) -> Response:
    return JSONResponse(JSON_DOCUMENT)


async def echo(request: Request) -> Response:
    body = await request.body()
    return JSONResponse({"received": await request.json(), "length": len(body)})


def stream_line(index: int) -> bytes:
    """Line ``index`` of /stream."""
    return f"chunk {index}\n".encode()


async def stream(request: Request) -> Response:
    count = int(request.query_params.get("chunks", "10"))

    async def lines() -> AsyncIterator[bytes]:
        for index in range(count):
            yield stream_line(index)
            await asyncio.sleep(0.001)

    return StreamingResponse(lines(), media_type="text/plain")


async def which_loop(request: Request) -> Response:
    loop = asyncio.get_running_loop()
    cls = type(loop)
    return JSONResponse({
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "is_phaseloop": isinstance(loop, phaseloop.Loop),
        "startup_on_same_loop": bool(_startup_loop) and _startup_loop[0] is loop,
    })


async def websocket_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            else:
                await websocket.send_bytes(message["bytes"])
    except WebSocketDisconnect:
        pass


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    _startup_loop[:] = [asyncio.get_running_loop()]
    yield


app = Starlette(routes=[
    Route("/", hello),
    Route("/json", json_document),
    Route("/echo", echo, methods=["POST"]),
    Route("/stream", stream),
    Route("/loop", which_loop),
    WebSocketRoute("/ws", websocket_echo),
], lifespan=lifespan)
