"""The parent's side of a thread worker: a daemon thread running its own loop.

The two sides talk through an in-process port pair (memory_link.py); ``online``,
``error`` and ``exit`` reach the parent's loop with ``call_soon_threadsafe``, after the
messages the worker posted before them.

``terminate(grace)``: the worker's main task is cancelled on its own loop (its
``finally`` blocks run, then ``phaseloop.run`` cancels the other tasks and closes the
loop). A worker that does not stop within ``grace`` seconds (a CPU loop in Python that
never awaits, a task that swallows the cancellation) gets ``SystemExit`` raised in its
thread between two bytecodes (``PyThreadState_SetAsyncExc``). Code blocked in C (a
long ``time.sleep``, a C extension's loop) cannot be interrupted in a thread at all:
``terminate()`` then waits until it returns to Python. Use ``kind="process"`` for
work that must be stoppable at any time.
"""
from __future__ import annotations

import asyncio
import ctypes
import os
import threading
import time
from typing import Any

from .bootstrap import WorkerControl, WorkerTerminated, run_worker
from .context import WorkerContext
from .framing import ERROR, ONLINE
from .memory_link import MemoryLink, move_handles
from .port import MessagePort

__all__ = ["ThreadRunner"]


class ThreadRunner:
    """Starts and stops one thread worker for ``worker`` (a Worker)."""

    kind = "thread"
    pid = None
    start_method = None

    def __init__(self, worker: Any, loop: asyncio.AbstractEventLoop, entry: Any,
                 payload: bytes, handles: list, transfer: Any, start_method: Any) -> None:
        if start_method is not None:
            raise ValueError("start_method is for kind='process'")
        parent_link, child_link = MemoryLink.pair()
        self.port = MessagePort(parent_link)
        self.port._pinned = True
        child_port = MessagePort(child_link)
        child_port._pinned = True
        for item in transfer:
            if hasattr(item, "_check_transferable"):
                item._check_transferable(self.port, False)
        handles, _ = move_handles(handles)
        self._worker = worker
        self._loop = loop
        self._entry = entry
        self._data = (payload, handles)
        self._context = WorkerContext(child_port, None, worker.thread_id, worker.name, "thread")
        self._control = WorkerControl()
        self.port._ensure_bound()
        self._thread = threading.Thread(target=self._main, daemon=True,
                                        name=f"phaseloop-worker-{worker.thread_id}")

    def start(self) -> None:
        self._thread.start()

    def _main(self) -> None:
        """The worker's thread."""
        code = 1
        try:
            code = run_worker(self._context, self._entry, self._data, self._report,
                              self._control)
        finally:
            self._context.parent_port._link.close()   # if the loop died before closing it
            self._to_parent(self._worker._on_exit, code, None)

    def _report(self, kind: int, record: Any) -> None:
        if kind == ONLINE:
            self._to_parent(self._worker._on_online)
        elif kind == ERROR:
            self._to_parent(self._worker._on_error_record, record)

    def _to_parent(self, fn: Any, *args: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:            # the parent's loop has closed: nobody to tell
            pass

    async def terminate(self, grace: float, exited: asyncio.Future) -> None:
        self._control.terminate()
        try:
            await asyncio.wait_for(asyncio.shield(exited), grace)
            return
        except asyncio.TimeoutError:
            pass
        ident = self._thread.ident
        if ident is not None and self._thread.is_alive():
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident),
                                                       ctypes.py_object(WorkerTerminated))
            self._control.wake()        # a thread blocked in its poll runs no bytecode
        await asyncio.shield(exited)

    def reap(self) -> None:
        """After the exit report: the thread has only to return. Also wait (briefly:
        microseconds) for the OS thread to be gone, which ``join()`` does not: until
        then the process still has two threads, and a process worker started next
        would have to be spawned rather than forked."""
        self._thread.join(5.0)
        task = f"/proc/self/task/{self._thread.native_id}"
        deadline = time.monotonic() + 1.0
        while os.path.exists(task) and time.monotonic() < deadline:
            time.sleep(0.0002)
