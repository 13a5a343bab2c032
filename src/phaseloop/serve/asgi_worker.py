"""An ASGI app in each worker of ``phaseloop serve``: uvicorn's protocols on
phaseloop's loop.

uvicorn's ``Server`` does the ASGI part, unchanged: its HTTP/1.1 protocols
(httptools, or h11), its WebSocket protocols, lifespan startup and shutdown
(once per worker), ``--limit-concurrency``'s 503s, the proxy-headers
middleware, the access log. Two of its methods are replaced for a cluster
worker:

- ``capture_signals``: uvicorn installs SIGINT/SIGTERM handlers for the
  length of ``serve()`` and re-raises the signal at the end; in a worker the
  primary drives the stop (the cluster's own SIGTERM handling cancels
  ``worker_main``), so nothing is installed.
- ``shutdown``: uvicorn closes idle connections at once, which resets a client
  whose request is already on its way: one that connected a moment before a
  rolling restart, or a proxy that just took a kept-alive connection from its
  pool (nginx logs "recv() failed (104: Connection reset by peer)" and retries
  elsewhere, or fails a POST). So the listeners are closed first, every
  response from then on carries ``Connection: close`` (uvicorn then closes the
  connection after it), and idle connections get :data:`IDLE_GRACE` seconds to
  bring a request, as phaseloop.http's own server gives them; then uvicorn's
  shutdown runs (in-flight requests finish, for up to the drain timeout).
"""
from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any, Awaitable, Callable, Iterator

from .metrics import WorkerMetrics
from .options import ServeOptions

__all__ = ["make_config", "worker_main"]

#: Seconds an idle connection may still bring a request once the worker stops
#: (phaseloop.http's server waits the same: _FRESH_CONNECTION_GRACE there).
IDLE_GRACE = 0.25


def _uvicorn() -> Any:
    try:
        import uvicorn
    except ImportError:
        raise RuntimeError("serving an ASGI app needs uvicorn: pip install 'phaseloop[asgi]'"
                           ) from None
    return uvicorn


def make_config(app: Any, options: ServeOptions, metrics: WorkerMetrics | None) -> Any:
    """uvicorn's Config for ``app`` with the command line's settings. Made in the
    primary (it configures uvicorn's loggers once); each worker loads it."""
    uvicorn = _uvicorn()
    timeout_keep_alive = options.timeout_keep_alive
    return uvicorn.Config(
        metrics.asgi(app) if metrics is not None else app,
        host=options.host, port=options.port, http=options.http, ws=options.ws,
        lifespan=options.lifespan, log_level=options.log_level,
        access_log=options.access_log, proxy_headers=options.proxy_headers,
        forwarded_allow_ips=options.forwarded_allow_ips, root_path=options.root_path,
        limit_concurrency=options.limit_concurrency, backlog=options.backlog,
        timeout_keep_alive=timeout_keep_alive if timeout_keep_alive is not None else 5,
        # Leave the cluster's drain timeout a moment for lifespan shutdown.
        timeout_graceful_shutdown=max(options.drain_timeout - 0.5, 0.1),
        ssl_certfile=options.ssl_certfile, ssl_keyfile=options.ssl_keyfile,
        interface="asgi3")


def _server_class() -> type:
    uvicorn = _uvicorn()

    class WorkerServer(uvicorn.Server):
        """uvicorn's Server as a cluster worker runs it (see the module docstring)."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            for server in self.servers:
                server.close()
            # uvicorn's protocols end a response carrying this header by closing
            # the connection (and main_loop, which rewrites the list, is over).
            self.server_state.default_headers = [*self.server_state.default_headers,
                                                 (b"connection", b"close")]
            loop = asyncio.get_running_loop()
            deadline = loop.time() + IDLE_GRACE
            while self.server_state.connections and loop.time() < deadline:
                await asyncio.sleep(0.01)
            await super().shutdown(sockets)

    return WorkerServer


def worker_main(config: Any, metrics: WorkerMetrics | None
                ) -> Callable[[list[socket.socket]], Awaitable[Any]]:
    """The ``worker_main`` of ``cluster.run``: uvicorn's server on the worker's
    sockets until cancelled, then its graceful shutdown."""
    server_class = _server_class()

    async def serve_asgi(sockets: list[socket.socket]) -> None:
        server = server_class(config)
        if metrics is not None:
            metrics.start(lambda: len(server.server_state.connections))
        serving = asyncio.get_running_loop().create_task(server.serve(sockets=sockets))
        try:
            await asyncio.shield(serving)
        except asyncio.CancelledError:
            if serving.done():
                raise
            server.should_exit = True    # uvicorn's main loop sees it within 0.1 s
            await serving
            raise
    return serve_asgi
