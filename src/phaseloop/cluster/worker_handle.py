"""cluster.Worker: the primary's handle on a worker process, and a worker's on itself."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
from typing import Any

from ..emitter import EventEmitter
from ..forking import ExitWatcher
from . import state
from .channel import _KIND_INTERNAL, _KIND_USER, _Channel, _close_all
from .events import ExitSignal, emit
from .shared_servers import _shared_servers

__all__ = ["Worker"]


class Worker(EventEmitter):
    """A worker process, as ``cluster.Worker`` in Node.

    In the primary (from :func:`fork`): ``send``, ``kill``, ``disconnect``, events
    ``online``, ``message`` (obj), ``disconnect``, ``exit`` (code, signal).
    In a worker (``cluster.worker``): ``send`` to the primary, the ``message`` event
    for what the primary sent, ``disconnect`` (close the channel) and the
    ``disconnect`` event when the primary asks this worker to stop.
    """

    event_source = "cluster"

    def __init__(self, id: int, pid: int, channel_sock: socket.socket, *,
                 in_primary: bool) -> None:
        super().__init__()
        self.id = id
        self.pid = pid
        #: True when the worker ended because of :meth:`kill` or :meth:`disconnect`.
        self.exited_after_disconnect = False
        self.exit_code: int | None = None
        self.signal_code: ExitSignal | None = None
        self.is_online = False
        self._in_primary = in_primary
        self._channel = _Channel(channel_sock, self._on_frame, self._on_channel_closed)
        self._exit_watcher: ExitWatcher | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dead = False
        self._disconnect_emitted = False
        self._handoff: list[socket.socket] = []   # round_robin: one per listen address
        # round_robin, in the primary: our copies of the worker's ends of those channels.
        # They keep what was sent but not yet received readable after the worker dies,
        # so those connections can go to another worker (_RoundRobin.reclaim).
        self._handoff_peer: list[socket.socket] = []
        # In a worker: server_socket() requests waiting for the primary, by number.
        self._listen_waiters: dict[int, asyncio.Future] = {}
        self._listen_seq = 0
        self._port0_listens = 0   # Node: a worker's n-th listen(0) shares the others' n-th

    def __repr__(self) -> str:
        state = "dead" if self._dead else ("online" if self.is_online else "starting")
        return "<cluster.Worker id=%d pid=%d %s>" % (self.id, self.pid, state)

    # -- both sides --

    def send(self, obj: Any) -> bool:
        """Send ``obj`` to the other side (JSON, or pickle after
        ``setup_primary(serialization="pickle")``). False if the channel is closed."""
        return self._channel.send(_KIND_USER, obj)

    def is_connected(self) -> bool:
        """Whether the IPC channel is still open."""
        return not self._channel.closed

    def is_dead(self) -> bool:
        """Whether the worker process has exited (primary side)."""
        return self._dead

    def disconnect(self) -> None:
        """Primary: ask the worker to stop gracefully (it gets a ``disconnect`` event
        and, in :func:`run`, stops accepting and drains), and mark the exit as expected.
        Worker: close the channel to the primary."""
        if self._in_primary:
            self.exited_after_disconnect = True
            self._channel.send(_KIND_INTERNAL, {"cmd": "disconnect"})
        else:
            self._channel.close()

    def kill(self, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` to the worker process; the exit counts as expected
        (``exited_after_disconnect`` becomes True)."""
        if self._in_primary:
            self.exited_after_disconnect = True
            if not self._dead:
                try:
                    os.kill(self.pid, sig)
                except ProcessLookupError:
                    pass
        else:
            os.kill(os.getpid(), sig)

    # -- internals --

    def _on_frame(self, kind: int, obj: Any, fds: list[int]) -> None:
        if kind == _KIND_USER:
            self.emit("message", obj)
            if self._in_primary:
                emit("message", self, obj)
            return
        cmd = obj.get("cmd") if isinstance(obj, dict) else None
        if self._in_primary:
            if cmd == "online":
                self.is_online = True
                self.emit("online")
                emit("online", self)
            elif cmd == "ready":
                self.emit("ready")
            elif cmd == "listen":
                _shared_servers.listen(self, obj)
            elif cmd == "listener_closed" and "server" in obj:
                _shared_servers.listener_closed(self, obj["server"])
            elif cmd == "listener_closed":
                self.emit("listener_closed", obj.get("index"))
        elif cmd == "listening":
            waiter = self._listen_waiters.pop(obj.get("seq"), None)
            if waiter is not None and not waiter.done():
                waiter.set_result((obj, fds))
                return
        elif cmd == "disconnect":
            self.exited_after_disconnect = True
            if not self.emit("disconnect"):
                state.child_stop[0]()
        _close_all(fds)                   # carried by a frame nobody took them from

    def _on_channel_closed(self) -> None:
        if self._in_primary:
            self._emit_disconnect()
        else:
            waiters, self._listen_waiters = self._listen_waiters, {}
            for waiter in waiters.values():
                if not waiter.done():
                    waiter.set_exception(state.ClusterError("the primary is gone"))
            # The primary is gone (or we closed): a worker does not outlive its primary.
            if not self.emit("disconnect"):
                state.child_stop[0]()

    def _emit_disconnect(self) -> None:
        if not self._disconnect_emitted:
            self._disconnect_emitted = True
            self.emit("disconnect")
            emit("disconnect", self)

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._channel.attach(loop)
        self._exit_watcher = ExitWatcher(loop, self.pid, self._reaped)

    def _reaped(self, status: int) -> None:
        if os.WIFSIGNALED(status):
            self.signal_code = ExitSignal(os.WTERMSIG(status))
        else:
            self.exit_code = os.waitstatus_to_exitcode(status)
        self._dead = True
        self._channel.drain()           # messages sent just before exiting still arrive
        self._channel.close()
        for s in self._handoff:
            s.close()
        self._handoff.clear()
        state.workers.pop(self.id, None)
        try:
            self.emit("exit", self.exit_code, self.signal_code)
            emit("exit", self, self.exit_code, self.signal_code)
        finally:
            for s in self._handoff_peer:
                s.close()
            self._handoff_peer.clear()

    def _close_in_child(self) -> None:
        """In another worker's process: drop our copies of this worker's fds."""
        try:
            self._channel.sock.close()
        except OSError:
            pass
        for s in self._handoff + self._handoff_peer:
            s.close()
        if self._exit_watcher is not None:
            self._exit_watcher.close_in_child()
