"""Who am I: the worker a thread runs in (``workers.parent_port``, ``worker_data``...).

Thread workers share the module, so these are per thread: the bootstrap enters a
:class:`WorkerContext` in the worker's thread. In a process worker the context is
also the process-wide default, so every thread of that process sees it.
"""
from __future__ import annotations

import itertools
import threading
from typing import Any

__all__ = ["WorkerContext", "current", "enter", "leave", "next_thread_id"]


class WorkerContext:
    """What a worker's code sees of itself, and the workers it started (stopped with
    it, as Node terminates a worker's own workers when it exits)."""

    def __init__(self, parent_port: Any, data: Any, thread_id: int, name: str,
                 kind: str) -> None:
        self.parent_port = parent_port
        self.data = data
        self.thread_id = thread_id
        self.name = name
        self.kind = kind
        self.children: set[Any] = set()


class _Local(threading.local):
    context: WorkerContext | None = None


_local = _Local()
_process_context: WorkerContext | None = None
_ids = itertools.count(1)


def current() -> WorkerContext | None:
    """The worker this thread runs in, or None in the main program."""
    return _local.context or _process_context


def enter(context: WorkerContext, *, process_wide: bool = False) -> None:
    global _process_context
    _local.context = context
    if process_wide:
        _process_context = context


def leave() -> None:
    _local.context = None


def next_thread_id() -> int:
    """A new worker id, unique in this process (``itertools.count`` is atomic)."""
    return next(_ids)


def reset_after_fork(own_id: int) -> None:
    """In a forked process worker: the parent's workers are not ours; our workers'
    ids start after our own."""
    global _ids, _process_context
    _ids = itertools.count(own_id + 1)
    _process_context = None
    _local.context = None
