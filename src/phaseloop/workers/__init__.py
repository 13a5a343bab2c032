"""Node's ``worker_threads`` for Python: workers with their own loop, and messages.

::

    from phaseloop import workers

    w = workers.Worker("app.jobs:main", data={"n": 10}, kind="process")  # or "thread"
    w.on("message", handle)            # also "online", "error", "exit", "messageerror"
    w.post_message({"cmd": "go"})      # a copy reaches the worker; transfer=[buf] moves bytes
    reply = await w.receive()          # or: async for msg in w
    code = await w.terminate()         # or await w.wait() for a normal exit

    # in app/jobs.py: runs on its own phaseloop loop, in the worker
    async def main():
        async for msg in workers.parent_port:
            workers.parent_port.post_message(work(msg, workers.worker_data))

In the worker: ``parent_port`` (a :class:`MessagePort` to the parent), ``worker_data``
(a copy of ``data``), ``is_main_thread`` (False), ``thread_id`` (the worker's id).
Outside any worker they are None, None, True and 0.

Also :class:`MessageChannel` (two ports, transferable to any worker so two workers
talk directly), :class:`SharedBuffer` (memory every side sees) and :class:`Pool`
(``await pool.run(arg)`` over a fixed set of workers). docs/workers.md has the whole
story and every difference from Node.
"""
from __future__ import annotations

from typing import Any

from . import context as _context
from .exceptions import DataCloneError, WorkerError
from .pool import Pool
from .port import MessageChannel, MessagePort
from .shared_buffer import SharedBuffer
from .worker import Worker

__all__ = ["DataCloneError", "MessageChannel", "MessagePort", "Pool", "SharedBuffer",
           "Worker", "WorkerError", "is_main_thread", "parent_port", "thread_id",
           "worker_data"]


def __getattr__(name: str) -> Any:
    # Per thread: each thread worker sees its own (PEP 562: looked up on every access,
    # also by ``from phaseloop.workers import parent_port``, at that moment).
    ctx = _context.current()
    if name == "parent_port":
        return ctx.parent_port if ctx is not None else None
    if name == "worker_data":
        return ctx.data if ctx is not None else None
    if name == "is_main_thread":
        return ctx is None
    if name == "thread_id":
        return ctx.thread_id if ctx is not None else 0
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
