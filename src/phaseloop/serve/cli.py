"""The ``phaseloop`` command line: ``phaseloop serve MODULE:APP``.

Parses the flags (uvicorn's names where uvicorn has the flag), loads the app
once in the primary, picks how each worker serves it (apps.py), and runs the
cluster (``cluster.run``) in the foreground until Ctrl-C or SIGTERM.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any, Sequence

from .apps import app_kind, load_app
from .options import ServeOptions

__all__ = ["main", "parser"]

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
#: uvicorn's TRACE level (below DEBUG).
TRACE = 5

DESCRIPTION = "phaseloop: Node's event loop and cluster for asyncio."
SERVE_DESCRIPTION = """\
Serve MODULE:APP on a cluster of worker processes, in the foreground (Ctrl-C stops it).

APP is an ASGI application (FastAPI, Starlette, Django's ASGI handler, any
async (scope, receive, send) callable), served by uvicorn's protocols on
phaseloop's loop; a phaseloop.http.App, served by its own HTTP/1.1 server; or
any object with async serve(sock=...). The primary opens the address, forks
the workers and replaces those that die. SIGTERM or Ctrl-C stop it gracefully
(requests in flight finish), SIGHUP restarts the workers one at a time.
Flags named as uvicorn's mean what they mean there (see docs/cluster.md)."""


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="phaseloop", description=DESCRIPTION)
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="serve MODULE:APP on a cluster of worker processes",
                           description=SERVE_DESCRIPTION,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    add = serve.add_argument
    add("app", metavar="MODULE:APP", help="where the app is, e.g. main:app")
    add("--workers", "-w", type=int, default=os.cpu_count() or 1,
        help="worker processes (default: the number of CPUs)")
    add("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    add("--port", "-p", type=int, default=3000, help="port (default: 3000; 0 picks a free one)")
    add("--uds", metavar="PATH", help="listen on this Unix socket instead of host:port")
    add("--backlog", type=int, default=2048,
        help="connections the kernel queues before accepting (default: 2048)")
    add("--scheduling", choices=("round_robin", "shared", "reuse_port"), default="round_robin",
        help="how connections reach workers: round_robin (the default, as Node's cluster: "
             "the primary hands them out in turn), shared (the workers accept on one "
             "socket) or reuse_port (SO_REUSEPORT)")
    add("--drain-timeout", type=float, default=10.0,
        help="seconds a stopping worker gets to finish its requests (default: 10)")
    add("--max-restarts", type=int, default=5,
        help="worker deaths tolerated within --restart-window (default: 5)")
    add("--restart-window", type=float, default=60.0, help="seconds (default: 60)")
    add("--no-restart", action="store_true", help="do not replace workers that die")
    add("--limit-concurrency", type=int, metavar="N",
        help="answer 503 once a worker has this many connections open, the asking "
             "one included (uvicorn's count)")
    add("--timeout-keep-alive", type=float, metavar="SECONDS",
        help="close idle keep-alive connections after this (default: 5)")
    add("--ssl-certfile", metavar="FILE", help="serve HTTPS with this certificate (PEM)")
    add("--ssl-keyfile", metavar="FILE", help="the certificate's private key (PEM)")
    add("--log-level", default="info", choices=LOG_LEVELS, help="default: info")
    add("--access-log", action=argparse.BooleanOptionalAction, default=True,
        help="log one line per request (default: on)")
    add("--proxy-headers", action=argparse.BooleanOptionalAction, default=False,
        help="take the client's address and scheme from X-Forwarded-For and "
             "X-Forwarded-Proto when the peer is in --forwarded-allow-ips (default: off)")
    add("--forwarded-allow-ips", metavar="IPS",
        default=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
        help="comma-separated addresses or networks of the trusted proxies, or '*' "
             "(default: $FORWARDED_ALLOW_IPS or 127.0.0.1)")
    add("--root-path", default="", metavar="PATH",
        help="the prefix a proxy serves the app under (ASGI's root_path)")
    add("--reload", action="store_true",
        help="development: restart when a Python file changes (needs watchfiles)")
    add("--reload-dir", action="append", metavar="DIR",
        help="a folder to watch with --reload (default: the current one; repeatable)")
    add("--metrics", action="store_true",
        help="answer GET /metrics in Prometheus' text format (needs phaseloop[metrics])")
    add("--http", choices=("auto", "httptools", "h11"), default="auto",
        help="ASGI apps: uvicorn's HTTP/1.1 protocol (default: auto)")
    add("--ws", choices=("auto", "none", "websockets", "websockets-sansio", "wsproto"),
        default="auto", help="ASGI apps: uvicorn's WebSocket protocol (default: auto)")
    add("--lifespan", choices=("auto", "on", "off"), default="auto",
        help="ASGI apps: run the lifespan protocol in each worker (default: auto)")
    return top


def _options(args: argparse.Namespace) -> ServeOptions:
    return ServeOptions(
        host=args.host, port=args.port, uds=args.uds, backlog=args.backlog,
        drain_timeout=args.drain_timeout, limit_concurrency=args.limit_concurrency,
        timeout_keep_alive=args.timeout_keep_alive, ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile, log_level=args.log_level, access_log=args.access_log,
        proxy_headers=args.proxy_headers, forwarded_allow_ips=args.forwarded_allow_ips,
        root_path=args.root_path, http=args.http, ws=args.ws, lifespan=args.lifespan,
        metrics=args.metrics)


def _check(args: argparse.Namespace) -> str | None:
    """What is wrong with the flags together, or None."""
    if args.workers < 1:
        return "--workers must be at least 1"
    if args.ssl_keyfile and not args.ssl_certfile:
        return "--ssl-keyfile needs --ssl-certfile"
    if args.limit_concurrency is not None and args.limit_concurrency < 1:
        return "--limit-concurrency must be at least 1"
    if args.uds and args.scheduling == "reuse_port":
        return "--uds works with --scheduling round_robin or shared, not reuse_port"
    return None


def _without_reload(argv: Sequence[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--reload":
            pass
        elif arg == "--reload-dir":
            skip = True
        elif not arg.startswith("--reload-dir="):
            out.append(arg)
    return out


def _setup_logging(level: str) -> None:
    logging.addLevelName(TRACE, "TRACE")
    logging.basicConfig(level=TRACE if level == "trace" else getattr(logging, level.upper()),
                        format="%(asctime)s %(name)s[%(process)d] %(levelname)s %(message)s")


def _fail(message: str, status: int = 2) -> int:
    print("phaseloop serve: %s" % message, file=sys.stderr)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``phaseloop`` / ``python -m phaseloop``; returns the exit status:
    0 after Ctrl-C or SIGTERM, 1 when workers kept dying, 2 for a usage error or an
    app that cannot be loaded."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    problem = _check(args)
    if problem is not None:
        return _fail(problem)
    _setup_logging(args.log_level)
    if args.reload:
        from .reload import run_reloading
        try:
            return run_reloading(_without_reload(argv), args.reload_dir or [os.getcwd()])
        except RuntimeError as exc:
            return _fail(str(exc))
    return _serve(args)


def _serve(args: argparse.Namespace) -> int:
    from .. import cluster
    options = _options(args)
    primary_metrics = worker_metrics = None
    if options.metrics:
        from .metrics import MetricsUnavailable, PrimaryMetrics, WorkerMetrics
        try:
            primary_metrics = PrimaryMetrics()    # before the app imports prometheus_client
        except MetricsUnavailable as exc:
            return _fail(str(exc))
        worker_metrics = WorkerMetrics()
    try:
        try:
            app = load_app(args.app)
        except (ValueError, ImportError, AttributeError) as exc:
            return _fail("cannot load %r: %s" % (args.app, exc))
        try:
            worker_main = _worker_main(app, args.app, options, worker_metrics)
        except (TypeError, ValueError, RuntimeError) as exc:
            return _fail(str(exc))
        listen: list[Any] = [options.uds] if options.uds else [(options.host, options.port)]

        def listening(addresses: list[Any]) -> None:
            print("phaseloop serve: %s on %s with %d worker%s (%s); Ctrl-C stops it"
                  % (args.app, ", ".join(options.url(a) for a in addresses), args.workers,
                     "s" if args.workers != 1 else "", args.scheduling), flush=True)

        try:
            return cluster.run(worker_main, workers=args.workers, listen=listen,
                               scheduling=args.scheduling, restart=not args.no_restart,
                               max_restarts=args.max_restarts,
                               restart_window=args.restart_window,
                               drain_timeout=args.drain_timeout, backlog=args.backlog,
                               on_listening=listening)
        except OSError as exc:
            where = options.uds or "%s:%s" % (options.host, options.port)
            return _fail("cannot listen on %s: %s" % (where, exc), 1)
    finally:
        if primary_metrics is not None:
            primary_metrics.close()


#: Flags that only an ASGI app or a phaseloop.http App can honour.
_APP_FLAGS = ("ssl_certfile", "limit_concurrency", "timeout_keep_alive", "proxy_headers",
              "root_path", "metrics")


def _worker_main(app: Any, spec: str, options: ServeOptions, metrics: Any) -> Any:
    """What each worker runs for ``app``, by its kind (apps.py)."""
    kind = app_kind(app)
    if kind == "phaseloop":
        from . import app_worker
        app_worker.configure(app, options, metrics)
        return app_worker.worker_main(app, options, metrics)
    if kind == "asgi":
        from . import asgi_worker
        return asgi_worker.worker_main(asgi_worker.make_config(app, options, metrics), metrics)
    if kind == "serve":
        given = [f"--{name.replace('_', '-')}" for name in _APP_FLAGS
                 if getattr(options, name) not in (None, False, "")]
        if given:
            raise ValueError("%s is neither an ASGI app nor a phaseloop.http.App: %s "
                             "cannot apply to it" % (spec, ", ".join(given)))

        async def serve_each(sockets: list) -> None:
            import asyncio
            await asyncio.gather(*(app.serve(sock=s) for s in sockets))
        return serve_each
    raise TypeError("%r is neither an ASGI app (async (scope, receive, send)), a "
                    "phaseloop.http.App, nor an object with serve(sock=...)" % spec)
