"""The ``phaseloop`` command: ``phaseloop serve module:app`` runs an app in the cluster.

::

    python -m phaseloop serve examples.cluster_app:app --workers 2 --port 3000

``app`` is any object with ``async serve(sock=...)`` (a ``phaseloop.http.App``): each
worker awaits ``app.serve(sock=s)`` for every listening socket it gets. The module is
imported once in the primary, before the workers are forked (errors show up at once,
and the workers share its memory pages). SIGTERM/SIGINT stop the cluster gracefully,
SIGHUP restarts the workers one at a time. The exit status is the primary's (0, or 1
when workers kept dying).
"""
from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import socket
import sys
from typing import Any, Sequence

__all__ = ["load_app", "main"]


def load_app(spec: str) -> Any:
    """Import ``"package.module:attribute"`` (the attribute may be dotted) and return it.

    The current directory is put first on ``sys.path`` so ``module:app`` finds a module
    next to where the command runs. Raises ValueError for a malformed spec and
    ImportError/AttributeError when it cannot be found."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError("expected module:attribute, got %r" % spec)
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="phaseloop", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run module:app on a cluster of worker processes")
    serve.add_argument("app", help="module:attribute of an object with async serve(sock=...)")
    serve.add_argument("--workers", "-w", type=int, default=os.cpu_count() or 1,
                       help="worker processes (default: the number of CPUs)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", "-p", type=int, default=3000, help="port (0 picks one)")
    serve.add_argument("--scheduling", choices=("shared", "reuse_port", "round_robin"),
                       default="shared", help="how connections reach workers")
    serve.add_argument("--drain-timeout", type=float, default=10.0,
                       help="seconds a stopping worker gets to finish its requests")
    serve.add_argument("--max-restarts", type=int, default=5,
                       help="worker deaths tolerated within --restart-window")
    serve.add_argument("--restart-window", type=float, default=60.0, help="seconds")
    serve.add_argument("--no-restart", action="store_true", help="do not replace dead workers")
    serve.add_argument("--log-level", default="info",
                       choices=("debug", "info", "warning", "error"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``phaseloop`` / ``python -m phaseloop``; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level.upper()),
                        format="%(asctime)s %(name)s[%(process)d] %(levelname)s %(message)s")
    from phaseloop import cluster

    try:
        app = load_app(args.app)
    except (ValueError, ImportError, AttributeError) as exc:
        print("phaseloop serve: cannot load %r: %s" % (args.app, exc), file=sys.stderr)
        return 2
    serve = getattr(app, "serve", None)
    if serve is None or not callable(serve):
        print("phaseloop serve: %r has no serve(sock=...) method" % (args.app,), file=sys.stderr)
        return 2

    async def worker_main(sockets: list[socket.socket]) -> None:
        await asyncio.gather(*(app.serve(sock=s) for s in sockets))

    try:
        return cluster.run(worker_main, workers=args.workers, listen=[(args.host, args.port)],
                           scheduling=args.scheduling, restart=not args.no_restart,
                           max_restarts=args.max_restarts, restart_window=args.restart_window,
                           drain_timeout=args.drain_timeout)
    except OSError as exc:
        print("phaseloop serve: cannot listen on %s:%s: %s" % (args.host, args.port, exc),
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
