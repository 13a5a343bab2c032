"""``Worker``: Node's worker_threads.Worker, as a thread or a process."""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

from ..emitter import EventEmitter, report_listener_error
from . import context as worker_context
from .bootstrap import check_entry
from .cloning import check_transfer, encode, exception_from_record
from .processes import ProcessRunner
from .threads import ThreadRunner

__all__ = ["Worker"]

KINDS = ("thread", "process")
#: Events that belong to the worker's port (its messages), not to the worker itself.
_PORT_EVENTS = ("message", "messageerror")


class Worker(EventEmitter):
    """Run ``entry`` on its own phaseloop loop, in a thread or a child process.

    ::

        w = workers.Worker("app.jobs:main", data={"n": 10}, kind="process")
        w.on("message", handle)              # also "online", "error", "exit", "messageerror"
        w.post_message({"cmd": "go"})        # a copy reaches the worker
        reply = await w.receive()            # or: async for msg in w
        code = await w.terminate()           # or: await w.wait() for a normal exit

    ``entry`` is ``"module:function"`` or a callable (a spawned process worker needs
    one it can import); it is called with no arguments in the worker, where
    ``workers.worker_data`` is a copy of ``data`` and ``workers.parent_port`` talks to
    this object; if it returns an awaitable, that is awaited. The worker then exits,
    unless ``parent_port`` has a ``"message"`` listener: then it runs until that is
    removed or the port is closed (Node's behaviour).

    Events: ``"online"`` () when its loop runs the entry point; ``"message"`` (msg);
    ``"messageerror"`` (exc) for a message that could not be unpickled here;
    ``"error"`` (exc) when the entry point raised (a copy of the exception, its
    traceback as its last note); ``"exit"`` (code). An ``"error"`` nobody listens to
    goes to the loop's exception handler.

    Must be made on a running loop (its events are delivered there). ``kind="thread"``
    or ``"process"``; ``start_method`` (process only): None (fork where it is safe,
    spawn otherwise; see processes.py), ``"fork"`` or ``"spawn"``. ``transfer`` lists
    ports and buffers in ``data`` that move instead of being copied.
    """

    event_source = "worker"

    def __init__(self, entry: str | Callable[[], Any], *, data: Any = None,
                 kind: str = "thread", name: str | None = None,
                 transfer: list | None = None, start_method: str | None = None) -> None:
        super().__init__()
        loop = asyncio.get_running_loop()
        if kind not in KINDS:
            raise ValueError(f"kind must be 'thread' or 'process', not {kind!r}")
        check_entry(entry)
        items = check_transfer(transfer) if transfer else ()
        payload, handles = encode(data, items)
        self.thread_id = worker_context.next_thread_id()
        self.kind = kind
        self.name = name if name is not None else f"worker-{self.thread_id}"
        #: The exit code once it exited (1 after terminate(), as in Node), else None.
        self.exit_code: int | None = None
        #: Process kind: the signal that ended it, if one did.
        self.signal_code: Any = None
        self._loop = loop
        self._exited: asyncio.Future = loop.create_future()
        self._terminating = False
        self._parent_context = worker_context.current()
        runner_type = ThreadRunner if kind == "thread" else ProcessRunner
        self._runner = runner_type(self, loop, entry, payload, handles, items, start_method)
        self._port = self._runner.port
        self._runner.start()
        if self._parent_context is not None:
            self._parent_context.children.add(self)   # stopped when that worker exits

    def __repr__(self) -> str:
        state = "running" if self.exit_code is None else f"exited {self.exit_code}"
        pid = f" pid={self.pid}" if self.pid is not None else ""
        return f"<Worker {self.thread_id} {self.name!r} {self.kind}{pid} {state}>"

    @property
    def pid(self) -> int | None:
        """The process id of a process worker; None for a thread."""
        return self._runner.pid

    @property
    def start_method(self) -> str | None:
        """``"fork"`` or ``"spawn"`` for a process worker; None for a thread."""
        return self._runner.start_method

    # ---- messages (the worker's port) -------------------------------------------------

    def post_message(self, message: Any, transfer: list | None = None) -> None:
        """Send a copy of ``message`` to the worker (see MessagePort.post_message)."""
        self._port.post_message(message, transfer)

    def drain(self) -> Awaitable[None]:
        """Wait while the worker is more than ``high_water`` bytes behind."""
        return self._port.drain()

    def receive(self) -> Awaitable[Any]:
        """The worker's next message (that no ``"message"`` listener took);
        EOFError once it exited and everything it posted was received."""
        return self._port.receive()

    def __aiter__(self) -> Any:
        return self._port.__aiter__()

    def set_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """See MessagePort.set_buffer_limits."""
        self._port.set_buffer_limits(high, low)

    # ---- events -----------------------------------------------------------------------

    def on(self, event: str, fn: Callable[..., Any] | None = None) -> Any:
        if event in _PORT_EVENTS:
            return self._port.on(event, fn)
        return super().on(event, fn)

    def once(self, event: str, fn: Callable[..., Any] | None = None) -> Any:
        if event in _PORT_EVENTS:
            return self._port.once(event, fn)
        return super().once(event, fn)

    def off(self, event_or_fn: Any, fn: Callable[..., Any] | None = None) -> bool:
        if fn is None:                      # off(fn): from every event, the port's too
            return self._port.off(event_or_fn) | super().off(event_or_fn)
        if event_or_fn in _PORT_EVENTS:
            return self._port.off(event_or_fn, fn)
        return super().off(event_or_fn, fn)

    def listener_count(self, event: str) -> int:
        if event in _PORT_EVENTS:
            return self._port.listener_count(event)
        return super().listener_count(event)

    # ---- lifetime ---------------------------------------------------------------------

    async def wait(self) -> int:
        """Wait for the worker to exit; its exit code."""
        return await asyncio.shield(self._exited)

    async def terminate(self, grace: float = 2.0) -> int:
        """Stop the worker; its exit code (1, as in Node, unless it had exited).

        A thread worker's main task is cancelled; a process worker gets SIGTERM (it
        cancels its main task the same way). After ``grace`` seconds: SystemExit
        raised in the thread, SIGKILL for the process. See threads.py for what a
        thread cannot be stopped in.
        """
        if not self._exited.done():
            self._terminating = True
            await self._runner.terminate(grace, self._exited)
        return await asyncio.shield(self._exited)

    # ---- reports from the runner (on this loop) ------------------------------------------

    def _on_online(self) -> None:
        self.emit("online")

    def _on_error_record(self, record: tuple) -> None:
        self._on_error(exception_from_record(record, f"worker {self.thread_id} "
                                                     f"({self.name})"))

    def _on_error(self, exc: BaseException) -> None:
        if not self.emit("error", exc):
            report_listener_error(f"worker {self.thread_id} ({self.name}) failed "
                                  "(no 'error' listener)", exc)

    def _on_exit(self, code: int, sig: Any = None) -> None:
        if self._exited.done():
            return
        self._runner.reap()
        if self._terminating:
            code = 1
        self.exit_code = code
        self.signal_code = sig
        if self._parent_context is not None:
            self._parent_context.children.discard(self)
        self._exited.set_result(code)
        self.emit("exit", code)
