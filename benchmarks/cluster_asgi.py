"""The cluster example's handler as a bare ASGI app, for uvicorn + uvloop in
``benchmarks.cluster``: ``GET /`` answers ``{"worker": pid}`` and a newline, the
same bytes as examples/cluster_app.py."""
import json
import os


async def app(scope, receive, send):
    assert scope["type"] == "http"
    body = (json.dumps({"worker": os.getpid()}) + "\n").encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
