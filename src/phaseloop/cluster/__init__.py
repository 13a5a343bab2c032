"""Node's ``cluster`` module for Python: a primary process forks workers.

Low level, as in Node::

    from phaseloop import cluster

    async def child():                    # runs in each worker, on its own loop
        cluster.worker.on("message", lambda msg: cluster.worker.send({"echo": msg}))
        await asyncio.sleep(1)

    async def main():                     # the primary, on its (phaseloop) loop
        cluster.on("exit", lambda w, code, sig: print(w.pid, code, sig))
        w = cluster.fork(target=child)
        w.send("hi")

High level, a server on many cores::

    async def worker_main(sockets):
        await asyncio.gather(*(app.serve(sock=s) for s in sockets))

    raise SystemExit(cluster.run(worker_main, workers=4, listen=[("127.0.0.1", 3000)]))

Unlike Node, a worker is made with ``os.fork()``: it does not run the program again
from the top but calls ``target`` (given to :func:`fork` or :func:`setup_primary`) and
exits with its result. A loop never crosses the fork: the child drops the parent's
loop and signal wiring and runs ``target`` on a new ``phaseloop`` loop.

See docs/cluster.md for the scheduling modes, supervision and signals.

Modules, along Node's lines: supervisor.py (run: the primary that supervises
a server), primary.py (setup_primary, fork), worker_handle.py (cluster.Worker),
child.py (a forked process becoming a worker), round_robin.py (connections
handed to workers), shared_servers.py (listening in a worker through the
primary), channel.py (the IPC channel), events.py (cluster.on), sockets.py,
state.py (what this process is in the cluster).
"""
from __future__ import annotations

from typing import Any

from . import state
from .events import ExitSignal, off, on, once
from .primary import fork, setup_primary
from .round_robin import Listener
from .shared_servers import server_socket, share_servers
from .state import SCHEDULING, ClusterError, settings, workers
from .supervisor import run
from .worker_handle import Worker

__all__ = ["SCHEDULING", "ClusterError", "ExitSignal", "Listener", "Worker", "fork",
           "is_primary", "is_worker", "off", "on", "once", "run", "server_socket",
           "settings", "setup_primary", "share_servers", "worker", "workers"]


def __getattr__(name: str) -> Any:
    # is_primary, is_worker and worker change when a forked process becomes
    # a worker: read them from state.py each time.
    if name in ("is_primary", "is_worker", "worker"):
        return getattr(state, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
