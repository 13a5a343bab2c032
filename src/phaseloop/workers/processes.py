"""The parent's side of a process worker: start it (fork or spawn), watch it, stop it.

**Start method.** ``fork`` where it is safe, ``spawn`` otherwise:

- *fork* (``os.fork()``, then the worker runs in the copy): about a millisecond, and
  the entry point may be any callable (a closure, a lambda). It is safe only when the
  process has one thread: a fork copies just the calling thread, so a lock that
  another thread held at that instant (in the allocator, in a logging handler, in
  an executor's queue) stays locked forever in the child. So a worker is forked only
  when the caller is the main thread and the process runs no other thread (Python's
  or native, counted in /proc/self/task); Python 3.12+ warns about exactly that fork.
- *spawn* (a fresh ``python -c`` interpreter, started with ``subprocess``, which
  execs at once and closes every other descriptor): tens of milliseconds (the
  interpreter starts and imports phaseloop), safe from any thread. The entry point
  must then be importable: ``"module:function"``, or a module-level function. It is
  what a worker started from a thread worker, or from a program running executor
  threads, gets.

``start_method="fork"`` or ``"spawn"`` forces one (``"fork"`` raises RuntimeError
where it is unsafe).

**Exit.** Watched through a pidfd on the parent's loop (a 50 ms ``waitpid`` poll where
there is none), as phaseloop.cluster does. **terminate(grace)**: SIGTERM (the worker
cancels its main task and exits with code 1), then SIGKILL after ``grace`` seconds.
"""
from __future__ import annotations

import asyncio
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import weakref
from typing import Any

from ..forking import ExitWatcher, fork_with_signals_blocked
from .bootstrap import run_forked
from .framing import ERROR, INIT, ONLINE
from .port import MessagePort
from .socket_link import SocketLink

__all__ = ["ProcessRunner", "close_inherited_watchers", "fork_is_safe"]

_SPAWN_CODE = "from phaseloop.workers.bootstrap import spawn_main; spawn_main()"

#: Every process worker this process watches: a forked child closes their pidfds.
_watchers: "weakref.WeakSet[ProcessRunner]" = weakref.WeakSet()


def fork_is_safe() -> bool:
    """Whether ``os.fork()`` copies the whole state: main thread, no other thread."""
    if not hasattr(os, "fork"):
        return False
    if threading.current_thread() is not threading.main_thread():
        return False
    if threading.active_count() > 1:
        return False
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:              # no /proc: Python's own threads are all we can count
        return True


def _choose_start_method(requested: str | None) -> str:
    if requested is None:
        return "fork" if fork_is_safe() else "spawn"
    if requested == "spawn":
        return requested
    if requested == "fork":
        if not fork_is_safe():
            raise RuntimeError("start_method='fork' is unsafe here: other threads are "
                               "running (or this is not the main thread); use 'spawn'")
        return requested
    raise ValueError(f"start_method must be 'fork', 'spawn' or None, not {requested!r}")


def _spawnable_entry(entry: Any) -> Any:
    """What the spawned child imports: the string, or the function pickled by name."""
    if isinstance(entry, str):
        return entry
    try:
        pickle.loads(pickle.dumps(entry, pickle.HIGHEST_PROTOCOL))
    except Exception as exc:  # noqa: BLE001 - said plainly below
        raise ValueError(
            f"a spawned process worker must import its entry point: pass "
            f"'module:function' or a module-level function, not {entry!r} ({exc})") from exc
    return entry


def close_inherited_watchers() -> None:
    """In a forked child: the parent's pidfds are not ours."""
    for runner in list(_watchers):
        if runner._exit_watcher is not None:
            runner._exit_watcher.close_in_child()
    _watchers.clear()


class ProcessRunner:
    """Starts, watches and stops one process worker for ``worker`` (a Worker)."""

    kind = "process"

    def __init__(self, worker: Any, loop: asyncio.AbstractEventLoop, entry: Any,
                 payload: bytes, handles: list, transfer: Any,
                 start_method: str | None) -> None:
        self.start_method = _choose_start_method(start_method)
        self._worker = worker
        self._loop = loop
        self._entry = entry if self.start_method == "fork" else _spawnable_entry(entry)
        self._transfer = transfer
        self._handles = handles
        # A spawned child unpickles the entry once it has the parent's sys.path.
        self._init = {"entry": None if self.start_method == "fork" else
                      pickle.dumps(self._entry, pickle.HIGHEST_PROTOCOL),
                      "data": payload, "thread_id": worker.thread_id, "name": worker.name,
                      "sys_path": list(sys.path)}
        self._parent_sock, self._child_sock = socket.socketpair(socket.AF_UNIX,
                                                                socket.SOCK_STREAM)
        self.port = MessagePort(SocketLink(self._parent_sock))
        self.port._pinned = True
        self.port._control = self._control_frame
        try:
            for item in transfer:            # before the child exists: fail with nothing started
                if hasattr(item, "_check_transferable"):
                    item._check_transferable(self.port, True)
            self.port._link.check_handles(handles)
            self.port._ensure_bound()
        except BaseException:
            self.port.close()
            self._child_sock.close()
            raise
        self.pid: int | None = None
        self._popen: subprocess.Popen | None = None
        self._exit_watcher: ExitWatcher | None = None

    # ---- start ----------------------------------------------------------------------

    def start(self) -> None:
        try:
            if self.start_method == "fork":
                self.pid = self._fork()
            else:
                self._popen = subprocess.Popen(
                    [sys.executable, *subprocess._args_from_interpreter_flags(), "-c",
                     _SPAWN_CODE, str(self._child_sock.fileno())],
                    pass_fds=[self._child_sock.fileno()], close_fds=True)
                self.pid = self._popen.pid
        except BaseException:
            self.port.close()
            raise
        finally:
            self._child_sock.close()
        # What to run goes after the start, so that a forked child never holds the
        # sockets of ports transferred in its own data.
        self.port._post(INIT, pickle.dumps(self._init, pickle.HIGHEST_PROTOCOL),
                        self._handles, self._transfer)
        self._handles = self._transfer = ()
        self._watch()

    def _fork(self) -> int:
        pid, old_mask = fork_with_signals_blocked()
        if pid == 0:
            close_inherited_watchers()
            run_forked(self._child_sock, self._entry, old_mask)     # never returns
        return pid

    # ---- messages from the child ----------------------------------------------------

    def _control_frame(self, kind: int, payload: bytes, handles: Any) -> None:
        if kind == ONLINE:
            self._worker._on_online()
        elif kind == ERROR:
            self._worker._on_error_record(pickle.loads(payload))

    # ---- exit -----------------------------------------------------------------------

    def _watch(self) -> None:
        _watchers.add(self)
        self._exit_watcher = ExitWatcher(self._loop, self.pid, self._reaped)

    def _reaped(self, status: int) -> None:
        _watchers.discard(self)
        code = os.waitstatus_to_exitcode(status)
        sig = None
        if code < 0:
            try:
                sig = signal.Signals(-code)
            except ValueError:          # a real-time signal without a name
                sig = -code
        if self._popen is not None:
            self._popen.returncode = code      # reaped here: Popen must not wait again
        link = self.port._link
        link.read_to_end()              # messages it posted just before exiting
        if not link.remote_closed and not link.closed:
            link._on_eof()              # a copy of its socket lives on elsewhere
        self._worker._on_exit(code, sig)

    # ---- stop -----------------------------------------------------------------------

    def _signal(self, sig: int) -> None:
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    async def terminate(self, grace: float, exited: asyncio.Future) -> None:
        if exited.done():
            return
        self._signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(exited), grace)
            return
        except asyncio.TimeoutError:
            pass
        if not exited.done():
            self._signal(signal.SIGKILL)
        await asyncio.shield(exited)

    def reap(self) -> None:
        """Already reaped by the time the exit is reported."""
