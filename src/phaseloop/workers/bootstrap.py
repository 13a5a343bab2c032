"""The worker's side: what runs in a thread worker's thread or a process worker.

Every worker, whatever its kind, ends up in :func:`run_worker`: a new phaseloop loop
(``phaseloop.run``) runs the entry point, then keeps running while ``parent_port`` has
a ``"message"`` listener (Node's ref'd parentPort); the exit code is 0, the entry's
``int`` result or ``SystemExit`` code, or 1 after an exception (reported to the parent
as ``"error"``) or ``terminate()``.

A process worker gets there through :func:`run_forked` (right after ``os.fork()``) or
:func:`spawn_main` (a fresh interpreter, ``python -c``); both read the INIT frame
(what to run, the worker's data) from the socket before starting the loop.
"""
from __future__ import annotations

import asyncio
import ctypes
import importlib
import inspect
import os
import pickle
import signal
import socket
import sys
import threading
import traceback
from typing import Any, Callable

import phaseloop

from ..forking import reset_signals_in_child
from . import context as worker_context
from .cloning import decode, exception_record
from .framing import ERROR, INIT, ONLINE, FrameParser, recv_with_fds
from .port import MessagePort
from .socket_link import SocketLink, close_inherited_links, materialize

__all__ = ["WorkerControl", "WorkerTerminated", "check_entry", "resolve_entry", "run_forked", "run_worker",
           "spawn_main"]

Report = Callable[[int, Any], None]


def check_entry(entry: Any) -> None:
    """Parent side: TypeError/ValueError now for an entry point that cannot work."""
    if isinstance(entry, str):
        module, sep, name = entry.partition(":")
        if not sep or not module or not name:
            raise ValueError(f"entry must be 'module:function', got {entry!r}")
    elif not callable(entry):
        raise TypeError(f"entry must be 'module:function' or a callable, not "
                        f"{type(entry).__name__}")


def resolve_entry(entry: Any) -> Callable[[], Any]:
    """``"package.module:function"`` (or ``"module:Class.method"``) to the function."""
    if not isinstance(entry, str):
        return entry
    module_name, _, name = entry.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in name.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{entry!r} is a {type(target).__name__}, not a function")
    return target


class WorkerControl:
    """terminate() from any thread, before or after the worker's loop started."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self.terminated = False

    def started(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task | None) -> bool:
        """The worker's loop runs ``task``; False if terminate() came first."""
        with self._lock:
            self._loop, self._task = loop, task
            return not self.terminated

    def terminate(self) -> None:
        """Cancel the worker's main task on its loop (its other tasks are cancelled
        when the loop shuts down)."""
        with self._lock:
            self.terminated = True
            loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(self._cancel)
            except RuntimeError:        # the loop has closed: the worker is ending
                pass

    def _cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()

    def wake(self) -> None:
        """Make the worker's loop run some Python (to meet an async exception)."""
        with self._lock:
            loop = self._loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(_nothing)
            except RuntimeError:
                pass


def _nothing() -> None:
    pass


def _exit_code(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return 1


class WorkerTerminated(SystemExit):
    """Raised in a thread worker that overstayed terminate()'s grace period."""

    def __init__(self) -> None:
        super().__init__(1)


def run_worker(ctx: worker_context.WorkerContext, entry: Any, data: tuple[bytes, list],
               report: Report, control: WorkerControl) -> int:
    """Run a worker to its end in this thread; its exit code."""
    worker_context.enter(ctx, process_wide=ctx.kind == "process")
    try:
        return _run_loop(_worker_main(ctx, entry, data, report, control))
    except SystemExit as exc:           # errors.install("strict"), or a task's SystemExit
        return _exit_code(exc.code)
    except asyncio.CancelledError:
        return 1
    except BaseException:  # noqa: BLE001 - the worker ends here either way
        traceback.print_exc()
        return 1
    finally:
        worker_context.leave()


def _run_loop(main: Any) -> Any:
    """``phaseloop.run(main)``, except after WorkerTerminated: then the loop closes
    without waiting for the tasks that refused to stop (asyncio.Runner would wait for
    them forever)."""
    loop = phaseloop.new_event_loop()
    asyncio.set_event_loop(loop)
    hard = False
    try:
        return loop.run_until_complete(main)
    except WorkerTerminated:
        hard = True
        raise
    finally:
        try:
            if not hard:
                # What asyncio.Runner.close() does: cancel what is left, then wait.
                asyncio.runners._cancel_all_tasks(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
        except WorkerTerminated:
            hard = True
        finally:
            if hard:                    # the pending tasks die with the loop, silently
                loop.set_exception_handler(lambda loop, context: None)
            asyncio.set_event_loop(None)
            loop.close()


async def _worker_main(ctx: worker_context.WorkerContext, entry: Any,
                       data: tuple[bytes, list], report: Report,
                       control: WorkerControl) -> int:
    loop = asyncio.get_running_loop()
    port = ctx.parent_port
    port._ensure_bound()
    if not control.started(loop, asyncio.current_task()):
        port.close()
        return 1
    if ctx.kind == "process":
        loop.add_signal_handler(signal.SIGTERM, control.terminate)
    code = 1
    try:
        report(ONLINE, None)
        try:
            ctx.data = decode(*data)
            result = resolve_entry(entry)()
            if inspect.isawaitable(result):
                result = await result
            await port._wait_released()
            code = result if type(result) is int else 0
        except asyncio.CancelledError:
            if not control.terminated:
                report(ERROR, exception_record(asyncio.CancelledError(
                    "the worker's entry point was cancelled")))
        except SystemExit as exc:
            code = _exit_code(exc.code)
        except BaseException as exc:  # noqa: BLE001 - reported to the parent as "error"
            report(ERROR, exception_record(exc))
    finally:
        await _stop_children(ctx)
        if ctx.kind == "process":
            loop.remove_signal_handler(signal.SIGTERM)
            if not control.terminated:
                await port._flushed()   # what it posted reaches the parent before exit
        port.close()
    return code


async def _stop_children(ctx: worker_context.WorkerContext) -> None:
    """Node terminates a worker's own workers when it exits."""
    if ctx.children:
        await asyncio.gather(*(w.terminate() for w in list(ctx.children)),
                             return_exceptions=True)


# ---- process workers -------------------------------------------------------------------


def _read_init(sock: socket.socket, parser: FrameParser) -> tuple[dict, list]:
    """Block until the INIT frame is in; the rest of what came stays in ``parser``."""
    view = memoryview(bytearray(64 * 1024))
    while not parser.frames:
        n, fds = recv_with_fds(sock, view)
        if not n:
            raise EOFError("the parent closed the channel before the worker started")
        parser.feed(bytes(view[:n]), fds)
    kind, payload, raw, _size = parser.frames.popleft()
    if kind != INIT:
        raise ConnectionError(f"the first frame from the parent is of kind {kind}, not INIT")
    return pickle.loads(payload), raw


def _run_process_worker(sock: socket.socket, entry: Any = None) -> int:
    """Read what to run, then run it; the process's exit code."""
    parser = FrameParser()
    sock.setblocking(True)
    init, raw = _read_init(sock, parser)
    if entry is None:                   # spawned: import it where the parent would
        sys.path[:] = init["sys_path"]
        entry = pickle.loads(init["entry"])
    worker_context.reset_after_fork(init["thread_id"])
    port = MessagePort(SocketLink(sock, parser))
    port._pinned = True
    handles = materialize(raw, MessagePort)
    ctx = worker_context.WorkerContext(port, None, init["thread_id"], init["name"], "process")
    parent = os.getppid()

    def report(kind: int, record: Any) -> None:
        port._post(kind, pickle.dumps(record, pickle.HIGHEST_PROTOCOL), [])

    control = WorkerControl()
    _die_with_parent(port, parent, control)
    return run_worker(ctx, entry, (init["data"], handles), report, control)


def _die_with_parent(port: MessagePort, parent: int, control: WorkerControl) -> None:
    """A process worker does not outlive its parent: SIGTERM when the thread that
    started it ends (Linux's PR_SET_PDEATHSIG), and, anywhere, terminate when the
    channel ends with the parent gone."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)        # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        control.terminate()
    port._link.on_eof = lambda: control.terminate() if os.getppid() != parent else None


def run_forked(child_sock: socket.socket, entry: Any, old_mask: Any) -> None:
    """In the child, right after ``os.fork()``: drop what belongs to the parent (its
    loop, signal handlers, its other workers' sockets), run the worker, exit."""
    def forked() -> int:
        reset_signals_in_child()
        signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent decides
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        asyncio.events._set_running_loop(None)
        asyncio.set_event_loop(None)
        close_inherited_links()
        _close_cluster_channels()
        return _run_process_worker(child_sock, entry)
    _run_and_exit(forked)


def _run_and_exit(main: Callable[[], int]) -> None:
    """The whole life of a process worker: ``main()``'s code is the exit status."""
    code = 1
    try:
        code = main()
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except BaseException:  # noqa: BLE001 - the process ends here either way
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _close_cluster_channels() -> None:
    """Forked from a phaseloop.cluster process: its channels are not ours to hold."""
    cluster = sys.modules.get("phaseloop.cluster")
    if cluster is None:
        return
    for w in [cluster.worker, *cluster.workers.values()]:
        if w is not None:
            w._close_in_child()


def spawn_main() -> None:
    """``python -c "from phaseloop.workers.bootstrap import spawn_main; spawn_main()" FD``:
    a spawned process worker, FD being its end of the socketpair."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _run_and_exit(lambda: _run_process_worker(socket.socket(fileno=int(sys.argv[1]))))
