"""Serve starlette_app with hypercorn's asyncio ``serve()`` on the loop named in argv.

``python hypercorn_main.py phaseloop|asyncio``: binds 127.0.0.1 on a free port
(hypercorn logs ``Running on http://127.0.0.1:PORT``) and stops gracefully on
SIGTERM. This is the way docs/compat.md gives for running hypercorn on
phaseloop: ``phaseloop.run(serve(app, config))``.
"""
from __future__ import annotations

import asyncio
import signal
import sys

from hypercorn.asyncio import serve
from hypercorn.config import Config

import phaseloop
from starlette_app import app


async def main() -> None:
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.errorlog = "-"          # stderr, where the test reads the port
    config.accesslog = None
    config.graceful_timeout = 3
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await serve(app, config, shutdown_trigger=stop.wait)


if __name__ == "__main__":
    if sys.argv[1] == "phaseloop":
        phaseloop.run(main())
    else:
        asyncio.run(main())
    print("hypercorn stopped", file=sys.stderr)
