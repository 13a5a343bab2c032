"""``MessagePort`` and ``MessageChannel``: Node's ports, on asyncio.

A port is one end of a channel. ``post_message`` sends a copy of a message (pickled,
cloning.py, or within the process copied in C, plain_copy.pyx) to the other end; the other end delivers it to its ``"message"``
listeners, or, when it has none, to ``await port.receive()`` / ``async for``. A port
is bound to the loop of the thread that first uses it, and is used from that thread.

``MessageChannel()`` makes two ports over a Unix socketpair, so either can be sent to
any worker, thread or process (``transfer=[port]``), and the two holders then talk
directly. A thread worker's ``parent_port`` is an in-process pair (memory_link.pyx),
faster, and not transferable.

The per-message methods, ``post_message`` and ``_dispatch``, and the state they use
are compiled: port_core.pyx's ``PortCore``, which ``MessagePort`` extends.
"""
from __future__ import annotations

import asyncio
import collections
import pickle
import socket
from typing import Any, Callable

from ..emitter import EventEmitter, report_listener_error
from .cloning import (add_handle, check_transfer, decode, encode, handle_at,
                      is_listed_in_transfer)
from .exceptions import DataCloneError
from .framing import MESSAGE
from .port_core import PortCore
from .socket_link import SocketLink

__all__ = ["MessageChannel", "MessagePort"]

#: Default buffer limits of a port, in bytes of pickled messages (see set_buffer_limits).
HIGH_WATER = 1024 * 1024
LOW_WATER = 256 * 1024


class MessagePort(PortCore, EventEmitter):
    """One end of a channel. Events: ``"message"`` (msg), ``"messageerror"`` (exc),
    ``"close"`` (). Adding a ``"message"`` listener starts delivery, as in Node.

    ::

        ch = workers.MessageChannel()
        ch.port2.on("message", print)
        ch.port1.post_message({"hi": 1})
        w = workers.Worker("app.jobs:main", kind="process")
        w.post_message({"port": ch.port1}, transfer=[ch.port1])   # it talks to port2 now
    """

    event_source = "MessagePort"

    def __init__(self, link: Any) -> None:
        super().__init__()
        self._link = link
        link.port = self
        self._loop: asyncio.AbstractEventLoop | None = None
        # (payload, handles, size); handles None: payload is the message, copied already
        self._inbox: collections.deque = collections.deque()
        self._receivers: collections.deque[asyncio.Future] = collections.deque()
        self._drain_waiters: list[tuple[int, asyncio.Future]] = []
        self._release_waiters: list[asyncio.Future] = []
        self._closed = False
        self._detached = False        # transferred away: dead here, without 'close'
        self._pinned = False          # a worker's own port: never transferred
        self._dispatching = False
        self._control: Callable[[int, bytes, Any], None] | None = None
        self.high_water = HIGH_WATER
        self.low_water = LOW_WATER

    @classmethod
    def _over_socket(cls, sock: socket.socket) -> "MessagePort":
        return cls(SocketLink(sock))

    def __repr__(self) -> str:
        state = "transferred" if self._detached else "closed" if self._closed else \
            f"{len(self._inbox)} queued"
        kind = "socket" if self._link.crosses_process else "in-process"
        return f"<MessagePort {kind} {state}>"

    @property
    def closed(self) -> bool:
        """Whether the port is closed (by either side) or was transferred away."""
        return self._closed

    def set_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Bytes in flight above which ``drain()`` waits (``high``, default 1 MiB),
        and down to which it then waits (``low``, default a quarter of ``high``). On a
        socket the same limits stop reading when this side does not take its
        messages."""
        if high is None:
            high = HIGH_WATER
        if low is None:
            low = high // 4
        if not 0 <= low <= high:
            raise ValueError(f"need 0 <= low <= high, got high={high!r} low={low!r}")
        self.high_water, self.low_water = high, low

    # ---- events ----------------------------------------------------------------------

    def on(self, event: str, fn: Callable[..., Any] | None = None) -> Any:
        """Call ``fn`` on each ``event``; returns ``fn`` (a decorator without ``fn``).
        The first ``"message"`` listener starts delivering what is queued."""
        if fn is None:
            return lambda fn: self.on(event, fn)
        super().on(event, fn)
        if event == "message":
            self._start()
        return fn

    def once(self, event: str, fn: Callable[..., Any] | None = None) -> Any:
        if fn is None:
            return lambda fn: self.once(event, fn)
        super().once(event, fn)
        if event == "message":
            self._start()
        return fn

    def off(self, event_or_fn: Any, fn: Callable[..., Any] | None = None) -> bool:
        listening = self.listener_count("message")
        removed = super().off(event_or_fn, fn)
        if self.listener_count("message") != listening:
            self._notify_release()
            if self._loop is not None:
                self._loop.call_soon(self._dispatch)   # queued ones may go to receive()
        return removed

    def _start(self) -> None:
        loop = self._ensure_bound()
        loop.call_soon(self._dispatch)        # delivered asynchronously, as in Node

    def _ensure_bound(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None:
            if self._detached:
                raise RuntimeError("this MessagePort was transferred; use the one that "
                                   "arrived on the other side")
            loop = asyncio.get_running_loop()
            self._loop = loop
            self._link.bind(loop)
        return loop

    # ---- sending ---------------------------------------------------------------------

    # post_message(message, transfer=None): port_core.pyx, with the fast paths.

    def _post_message_full(self, message: Any, transfer: list | None) -> None:
        """post_message with ``transfer=``, a port or shared buffer inside, or a message
        that does not pickle (encode() raises DataCloneError, naming the type)."""
        items = check_transfer(transfer) if transfer else ()
        payload, handles = encode(message, items)
        self._post(MESSAGE, payload, handles, items)

    def _post(self, kind: int, payload: bytes, handles: list, transfer: Any = ()) -> None:
        if self._closed:
            return
        link = self._link
        if transfer:
            ports = [t for t in transfer if hasattr(t, "_prepare_transfer")]
            for port in ports:
                port._check_transferable(self, link.crosses_process)
            link.check_handles(handles)
            self._ensure_bound()
            link.send(kind, payload, handles)
            for port in ports:                # listed but not in the message: gone too
                if not any(port is h for h in handles):
                    port.close()
            return
        if handles:
            link.check_handles(handles)
        if self._loop is None:
            self._ensure_bound()
        link.send(kind, payload, handles)

    async def drain(self) -> None:
        """Wait while more than ``high_water`` bytes this port posted are still in
        flight (not yet taken by the other side), until ``low_water`` are left.
        Returns at once when there is room, or when the port is closed."""
        if self._closed or self._link.outstanding() <= self.high_water:
            return
        await self._wait_outstanding(self.low_water)

    async def _flushed(self) -> None:
        """Wait until everything posted has left this side (a process worker's exit)."""
        if not self._closed and self._link.outstanding() > 0:
            await self._wait_outstanding(0)

    async def _wait_outstanding(self, limit: int) -> None:
        loop = self._ensure_bound()
        fut = loop.create_future()
        waiter = (limit, fut)
        self._drain_waiters.append(waiter)
        try:
            self._writable()             # the other side may have caught up meanwhile
            await fut
        finally:
            if waiter in self._drain_waiters:
                self._drain_waiters.remove(waiter)

    def _writable(self) -> None:
        """On this port's loop: wake the drain() waiters whose limit is reached."""
        if not self._drain_waiters:
            return
        link = self._link
        ended = self._closed or link.remote_closed or link.closed
        outstanding = link.outstanding()
        for limit, fut in list(self._drain_waiters):
            if (ended or outstanding <= limit) and not fut.done():
                fut.set_result(None)

    # ---- transfer --------------------------------------------------------------------

    def _check_transferable(self, carrier: "MessagePort", cross_process: bool) -> None:
        if self is carrier:
            raise DataCloneError("a MessagePort cannot be transferred through itself")
        if self._pinned:
            raise DataCloneError("a worker's own port (parent_port) cannot be transferred")
        if self._closed:
            raise DataCloneError("a closed or already transferred MessagePort cannot be "
                                 "transferred")
        if cross_process and (self._inbox or self._link.has_buffered_data()):
            raise DataCloneError(
                "this MessagePort holds messages (received and not taken, or posted and "
                "not yet written): it can move to a thread worker, not to a process; "
                "take them (and await drain()) before transferring it")

    def _prepare_transfer(self, cross_process: bool) -> Any:
        """Give up the channel: to another process, the socket to send; within the
        process, a new port that takes over (this one is dead from now on)."""
        link, inbox = self._link, self._inbox
        self._detach()
        if cross_process:
            return link.take_socket()
        link.unbind()
        moved = type(self)(link)
        moved._inbox = inbox
        return moved

    def __reduce_ex__(self, protocol: Any) -> Any:
        if not is_listed_in_transfer(self):
            raise DataCloneError("a MessagePort in a message must also be listed in "
                                 "transfer=")
        return (handle_at, (add_handle(self),))

    def _detach(self) -> None:
        self._detached = True
        self._closed = True
        self._loop = None
        self._inbox = collections.deque()
        self._end()

    # ---- receiving -------------------------------------------------------------------

    def _receive(self, kind: int, payload: bytes, handles: Any, size: int) -> None:
        """From the link (any thread for an in-process link): one message arrived."""
        self._inbox.append((payload, handles, size))

    def _control_frame(self, kind: int, payload: bytes, handles: Any) -> None:
        if self._control is not None:
            self._control(kind, payload, handles)

    # _dispatch(): port_core.pyx (the per-message path).

    def _take(self) -> tuple[bool, Any]:
        """Pop and decode the oldest message; (False, None) after a messageerror."""
        payload, handles, size = self._inbox.popleft()
        if handles is None:                      # copied already (MemoryLink.send_copy)
            self._link.delivered(size)
            return True, payload
        try:
            message = pickle.loads(payload) if not handles else decode(payload, handles)
        except Exception as exc:  # noqa: BLE001 - the message is lost, not the port
            self._link.delivered(size)
            self._message_error(exc)
            return False, None
        self._link.delivered(size)
        return True, message

    def _message_error(self, exc: BaseException) -> None:
        if not self.emit("messageerror", exc):
            report_listener_error("MessagePort: a message could not be copied here "
                                  "(no 'messageerror' listener)", exc)

    async def receive(self) -> Any:
        """The next message that no ``"message"`` listener takes. EOFError once the
        port is closed and every message before the close was received."""
        ready, value = self._next()
        return value if ready else await value

    def __aiter__(self) -> "MessagePort":
        return self

    async def __anext__(self) -> Any:
        try:
            ready, value = self._next()
            return value if ready else await value
        except EOFError:
            raise StopAsyncIteration from None

    def _next(self) -> tuple[bool, Any]:
        """(True, the next message) when one is here, else (False, a future for it);
        EOFError at the end."""
        inbox = self._inbox
        while True:
            ending = self._link.remote_closed       # read before the inbox
            if inbox and not self._receivers and not self._events.get("message"):
                ok, message = self._take()
                if ending and not inbox and self._loop is not None:
                    self._loop.call_soon(self._dispatch)    # emits "close" next
                if ok:
                    return True, message
                continue
            if ending and not inbox and not self._closed:
                self._finish_close()
            if self._closed or (ending and not inbox):
                raise EOFError("the port is closed")
            fut = (self._loop or self._ensure_bound()).create_future()
            self._receivers.append(fut)
            return False, fut

    # ---- closing ---------------------------------------------------------------------

    def close(self) -> None:
        """Close both ends: ``"close"`` is emitted on each, messages not yet delivered
        here are dropped, messages posted here before are still delivered there."""
        if self._closed:
            return
        self._closed = True
        self._inbox.clear()
        self._link.close()
        self._end()
        self._emit_close()

    def _finish_close(self) -> None:
        """The other end closed and everything it posted before was delivered."""
        self._closed = True
        self._link.close()
        self._end()
        self._emit_close()

    def _emit_close(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon(self.emit, "close")
        else:
            self.emit("close")

    def _end(self) -> None:
        receivers, self._receivers = self._receivers, collections.deque()
        for fut in receivers:
            if not fut.done():
                fut.set_exception(EOFError("the port is closed"))
        self._writable()
        self._notify_release()

    def _notify_release(self) -> None:
        waiters, self._release_waiters = self._release_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def _wait_released(self) -> None:
        """Until this port has no ``"message"`` listener or is closed: what keeps a
        worker alive after its entry point returned (Node's ref'd parentPort)."""
        while not self._closed and self._events.get("message"):
            fut = self._ensure_bound().create_future()
            self._release_waiters.append(fut)
            await fut


class MessageChannel:
    """Two connected ports, ``port1`` and ``port2`` (Node's MessageChannel).

    Either may be sent to a worker of either kind (``transfer=[port]``); the channel
    is a Unix socketpair, so the two holders talk directly, not through the parent.
    """

    def __init__(self) -> None:
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.port1 = MessagePort(SocketLink(a))
        self.port2 = MessagePort(SocketLink(b))

    def __repr__(self) -> str:
        return f"<MessageChannel {self.port1!r} {self.port2!r}>"
