"""phaseloop.http: a small HTTP/1.1 server with an express-style App.

::

    from phaseloop.http import App, rate_limit, security_headers

    app = App()
    app.use(security_headers())
    app.use("/api", rate_limit(window=60, max=100))

    @app.get("/api/notes/{id}")
    async def get_note(req, res):
        return {"id": req.params["id"]}

    async def main():
        server = await app.listen(3000)
        await server.serve_forever()

An App is also an ASGI application (uvicorn, hypercorn...). See docs/http.md. Needs ``httptools`` (and ``pydantic`` for ``validate``):
``pip install phaseloop[http]``.
"""
from __future__ import annotations

from .access_log import access_log
from .app import App
from .messages import ClientDisconnected, Headers, HTTPError, Request, Response
from .proxy import TrustedProxies
from .security import cors, rate_limit, security_headers, validate
from .server import HttpProtocol

__all__ = ["App", "ClientDisconnected", "HTTPError", "Headers", "HttpProtocol", "Request",
           "Response", "TrustedProxies", "access_log", "cors", "rate_limit",
           "security_headers", "validate"]
