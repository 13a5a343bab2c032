"""``Pool``: a queue of jobs over a fixed set of workers (the shape of Node's piscina).

::

    async with workers.Pool(2, "app.jobs:crunch", kind="process") as pool:
        results = await asyncio.gather(*(pool.run(n) for n in range(100)))

Each worker runs :func:`serve_jobs`: it imports the target and says it is ready, then
takes one job at a time from its ``parent_port``, calls ``target(arg)`` (awaiting it if it returns an awaitable) and
posts back the result, or the exception (copied as for a worker's ``"error"``). The
parent sends the next queued job to whichever worker is idle.

A worker that dies while running a job fails that job with :class:`WorkerError`
(whose ``__cause__`` is the worker's own error, if it reported one) and is replaced.
A worker that fails before it is ready (the target does not import) breaks the pool:
queued and later jobs fail with that cause rather than starting workers forever.
``close()`` lets every queued job finish, then ends the workers; ``terminate()``
cancels the jobs and stops the workers now.
"""
from __future__ import annotations

import asyncio
import collections
import functools
import inspect
import itertools
from typing import Any, Callable

from . import context as worker_context
from .bootstrap import check_entry, resolve_entry
from .cloning import encode, exception_from_record, exception_record
from .exceptions import DataCloneError, WorkerError
from .framing import MESSAGE
from .worker import KINDS, Worker

__all__ = ["Pool", "serve_jobs"]

#: A pool worker's first message: its target imported, it takes jobs.
_READY = None


async def serve_jobs(target: Any) -> None:
    """A pool worker's entry point: run ``target`` on each job until the pool closes."""
    fn = resolve_entry(target)
    port = worker_context.current().parent_port
    port.post_message(_READY)
    async for job_id, arg in port:
        try:
            result = fn(arg)
            if inspect.isawaitable(result):
                result = await result
            reply = (job_id, True, result)
        except Exception as exc:  # noqa: BLE001 - the job fails, the worker goes on
            reply = (job_id, False, exception_record(exc))
        try:
            port.post_message(reply)
        except DataCloneError as exc:        # the result does not pickle
            port.post_message((job_id, False, exception_record(exc)))


class Pool:
    """``size`` workers of ``kind`` running ``target`` (``"module:function"`` or a
    callable taking one argument). Make it on a running loop."""

    def __init__(self, size: int, target: str | Callable[[Any], Any], *,
                 kind: str = "process", start_method: str | None = None,
                 name: str = "pool") -> None:
        if not isinstance(size, int) or isinstance(size, bool):
            raise TypeError(f"size must be an int, not {type(size).__name__}")
        if size < 1:
            raise ValueError(f"size must be at least 1, got {size}")
        if kind not in KINDS:
            raise ValueError(f"kind must be 'thread' or 'process', not {kind!r}")
        check_entry(target)
        self.size = size
        self.kind = kind
        self.name = name
        self._loop = asyncio.get_running_loop()
        self._entry = functools.partial(serve_jobs, target)
        self._start_method = start_method
        self._queue: collections.deque[tuple] = collections.deque()  # (payload, handles, fut)
        self._idle: collections.deque[Worker] = collections.deque()
        self._busy: dict[Worker, tuple] = {}
        self._workers: set[Worker] = set()
        self._ready: set[Worker] = set()          # said they are ready (target imported)
        self._errors: dict[Worker, BaseException] = {}
        self._job_ids = itertools.count(1)
        self._worker_ids = itertools.count(1)
        self._closing = False
        self._broken: BaseException | None = None
        self._drained: asyncio.Future | None = None
        for _ in range(size):
            self._start_worker()

    def __repr__(self) -> str:
        return (f"<Pool {self.name!r} {self.kind} size={self.size} busy={len(self._busy)} "
                f"queued={len(self._queue)}{' closing' if self._closing else ''}>")

    @property
    def queued(self) -> int:
        """Jobs waiting for a worker."""
        return len(self._queue)

    def _start_worker(self) -> None:
        w = Worker(self._entry, kind=self.kind, start_method=self._start_method,
                   name=f"{self.name}-{next(self._worker_ids)}")
        w.on("message", functools.partial(self._on_result, w))
        w.on("error", functools.partial(self._on_error, w))
        w.on("exit", functools.partial(self._on_exit, w))
        self._workers.add(w)        # idle once it says it is ready

    async def run(self, arg: Any) -> Any:
        """Run ``target(arg)`` on the next idle worker; its result (or its exception).
        ``arg`` is copied now (DataCloneError if it does not pickle)."""
        if self._closing:
            raise RuntimeError("the pool is closed")
        if self._broken is not None:
            raise WorkerError("the pool's workers cannot start") from self._broken
        payload, handles = encode((next(self._job_ids), arg), ())
        fut = self._loop.create_future()
        self._queue.append((payload, handles, fut))
        self._dispatch()
        return await fut

    def _dispatch(self) -> None:
        while self._idle and self._queue:
            job = self._queue.popleft()
            if job[2].done():               # its run() was cancelled while queued
                continue
            w = self._idle.popleft()
            self._busy[w] = job
            w._port._post(MESSAGE, job[0], job[1])
        self._check_drained()

    def _on_result(self, w: Worker, message: Any) -> None:
        if message is _READY:
            self._ready.add(w)
            self._idle.append(w)
            self._dispatch()
            return
        job = self._busy.pop(w, None)
        if job is not None and not job[2].done():
            _job_id, ok, value = message
            if ok:
                job[2].set_result(value)
            else:
                job[2].set_exception(exception_from_record(value, f"pool worker {w.name}"))
        self._idle.append(w)
        self._dispatch()

    def _on_error(self, w: Worker, exc: BaseException) -> None:
        self._errors[w] = exc

    def _on_exit(self, w: Worker, code: int) -> None:
        was_ready = w in self._ready
        self._workers.discard(w)
        self._ready.discard(w)
        if w in self._idle:
            self._idle.remove(w)
        error = self._errors.pop(w, None)
        job = self._busy.pop(w, None)
        if job is not None and not job[2].done():
            failure = WorkerError(f"the worker running this job ({w.name}) exited with "
                                  f"code {code}")
            failure.__cause__ = error
            job[2].set_exception(failure)
        if self._broken is None and (not self._closing or self._queue):
            if error is not None and not was_ready:
                self._break(error)          # it failed before it was ready: it cannot start
            else:
                self._start_worker()
        self._dispatch()

    def _break(self, cause: BaseException) -> None:
        self._broken = cause
        while self._queue:
            fut = self._queue.popleft()[2]
            if not fut.done():
                failure = WorkerError("the pool's workers cannot start")
                failure.__cause__ = cause
                fut.set_exception(failure)

    def _check_drained(self) -> None:
        if self._drained is not None and not self._drained.done() and \
                not self._busy and not self._queue:
            self._drained.set_result(None)

    async def close(self) -> None:
        """Stop taking jobs, let the queued and running ones finish, then end the
        workers (each exits 0 after its last job)."""
        self._closing = True
        while self._queue or self._busy:
            self._drained = self._loop.create_future()
            self._check_drained()
            await self._drained
        workers = list(self._workers)
        for w in workers:
            w._port.close()
        await asyncio.gather(*(w.wait() for w in workers))

    async def terminate(self) -> None:
        """Cancel the queued and running jobs and stop every worker now."""
        self._closing = True
        for job in [*self._queue, *self._busy.values()]:
            job[2].cancel()
        self._queue.clear()
        await asyncio.gather(*(w.terminate() for w in list(self._workers)))

    async def __aenter__(self) -> "Pool":
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            await self.close()
        else:
            await self.terminate()
