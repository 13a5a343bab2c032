"""The Node guide's cluster program in Python: one HTTP worker per core, ``GET /`` -> ``{"worker": pid}``.

Run it with the command line (from the repository root)::

    phaseloop serve examples.cluster_app:app --workers 2 --port 3000    # Ctrl-C stops it
    curl http://127.0.0.1:3000/        # {"worker": 12345}

or as a program (``python examples/cluster_app.py [workers] [port]``), which calls
``cluster.run`` itself — the Python twin of Node's::

    if (cluster.isPrimary) { for (...) cluster.fork(); }
    else { http.createServer(...).listen(3000); }

Send SIGHUP to the primary for a rolling restart, SIGTERM or Ctrl-C to stop.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys

from phaseloop import cluster
from phaseloop.http import App

app = App()


@app.get("/")
async def index(req, res) -> None:
    """Which worker answered, as one JSON line: the newline ends curl's output
    before the shell prompt, as a returned dict (compact JSON, no newline) would not."""
    res.type("application/json").send(json.dumps({"worker": os.getpid()}) + "\n")


async def worker_main(sockets: list[socket.socket]) -> None:
    """Each worker serves the app on every socket the primary gave it."""
    await asyncio.gather(*(app.serve(sock=s) for s in sockets))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(name)s[%(process)d] %(levelname)s %(message)s")
    workers = int(sys.argv[1]) if len(sys.argv) > 1 else (os.cpu_count() or 1)
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    raise SystemExit(cluster.run(worker_main, workers=workers, listen=[("127.0.0.1", port)]))
