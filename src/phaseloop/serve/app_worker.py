"""A phaseloop.http App in each worker of ``phaseloop serve``, on its own server.

:func:`configure` applies the command line's settings to the App once, in the
primary, before the fork; :func:`worker_main` is what each worker runs:
``app.serve(sock=...)`` on every listening socket (TLS when a certificate was
given), stopped by the cluster's cancellation, which drains (docs/cluster.md).
"""
from __future__ import annotations

import asyncio
import socket
from typing import Any, Awaitable, Callable

from ..http import App, access_log
from .metrics import WorkerMetrics
from .options import ServeOptions

__all__ = ["configure", "worker_main"]


def configure(app: App, options: ServeOptions, metrics: WorkerMetrics | None) -> None:
    """The flags that are App settings; those not given leave the App's own."""
    if options.timeout_keep_alive is not None:
        app.keep_alive_timeout = options.timeout_keep_alive
    if options.limit_concurrency is not None:
        app.limit_concurrency = options.limit_concurrency
    if options.proxy_headers:
        app.forwarded_allow_ips = options.forwarded_allow_ips
    if options.root_path:
        app.root_path = options.root_path.rstrip("/")
    if options.access_log:
        app.on("response", access_log)
    if metrics is not None:
        metrics.instrument_app(app)


def worker_main(app: App, options: ServeOptions, metrics: WorkerMetrics | None
                ) -> Callable[[list[socket.socket]], Awaitable[Any]]:
    """The ``worker_main`` of ``cluster.run`` for ``app``."""
    async def serve_app(sockets: list[socket.socket]) -> None:
        context = options.ssl_context()
        if metrics is not None:
            metrics.start(lambda: len(app.connections))
        await asyncio.gather(*(app.serve(sock=s, drain_timeout=options.drain_timeout,
                                         ssl=context) for s in sockets))
    return serve_app
