"""A bare ASGI app for the ``phaseloop serve`` tests (no framework).

``GET /`` answers ``{"worker": pid, "client": host, "scheme": ..., "root_path": ...}``;
``/slow/<seconds>`` answers after a delay (and prints that it got it);
``/ws`` is a WebSocket echo. Lifespan startup and shutdown print a line each,
so a test can count them per worker.
"""
import asyncio
import json
import os


async def lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            print("lifespan startup in %d" % os.getpid(), flush=True)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            print("lifespan shutdown in %d" % os.getpid(), flush=True)
            await send({"type": "lifespan.shutdown.complete"})
            return


async def websocket_echo(receive, send):
    message = await receive()
    assert message["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": "echo: %s" % message.get("text")})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    if scope["type"] == "websocket":
        return await websocket_echo(receive, send)
    path = scope["path"][len(scope.get("root_path", "")):] or "/"
    if path.startswith("/slow/"):
        print("worker %d got %s" % (os.getpid(), path), flush=True)
        await asyncio.sleep(float(path[len("/slow/"):]))
    client = scope.get("client")
    body = json.dumps({"worker": os.getpid(), "path": path,
                       "client": client[0] if client else None,
                       "scheme": scope["scheme"], "root_path": scope.get("root_path", "")}
                      ).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})
