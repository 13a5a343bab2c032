"""round_robin: the primary accepts and hands each connection to the next
worker over a Unix socket (SCM_RIGHTS); a worker accepts from a Listener."""
from __future__ import annotations

import asyncio
import collections
import errno
import socket
import weakref
from typing import TYPE_CHECKING, Any, Callable, Sequence

from . import state
from .channel import _KIND_INTERNAL
from .sockets import _receive_connection

if TYPE_CHECKING:
    from .worker_handle import Worker

__all__ = ["Listener"]

logger = state.logger


class Listener(socket.socket):
    """What ``worker_main`` gets per address in ``round_robin`` mode: a stand-in for a
    listening socket whose connections are accepted by the primary and arrive here
    with SCM_RIGHTS. It works with ``loop.create_server(sock=listener)`` (phaseloop and
    asyncio's selector loop call ``accept()`` on it), so ``app.serve(sock=listener)``
    works; ``getsockname()`` gives the primary's listening address. ``close()`` tells
    the primary this worker takes no more connections on this address; those it had
    sent and this worker had not accepted go to the other workers."""

    def __init__(self, channel: socket.socket, address: Any, family: int,
                 index: int = 0, server: int | None = None) -> None:
        super().__init__(fileno=channel.detach())
        self._address = address
        self._family = family
        self._index = index
        self._server = server       # from server_socket(): the primary's server id

    def close(self) -> None:
        if self.fileno() >= 0 and state.worker is not None and not state.worker._channel.closed:
            message: dict[str, Any] = {"cmd": "listener_closed", "index": self._index}
            if self._server is not None:
                message["server"] = self._server
            state.worker._channel.send(_KIND_INTERNAL, message)
        super().close()

    @property
    def family(self) -> socket.AddressFamily:  # type: ignore[override]
        return socket.AddressFamily(self._family)

    @property
    def type(self) -> socket.SocketKind:  # type: ignore[override]
        return socket.SOCK_STREAM

    def getsockname(self) -> Any:
        return self._address

    def listen(self, backlog: int = 0) -> None:
        """Nothing to do: the primary listens."""

    def accept(self) -> tuple[socket.socket, Any]:
        """Receive one connection from the primary (BlockingIOError when none is queued)."""
        conn = _receive_connection(self)
        if conn is None:
            raise BlockingIOError(errno.EAGAIN, "no connection")
        try:
            peer = conn.getpeername()
        except OSError:
            peer = None
        return conn, peer

    def __repr__(self) -> str:
        return "<cluster.Listener fd=%d address=%r>" % (self.fileno(), self._address)


def _fork_handoff(w: "Worker") -> tuple[list[socket.socket], list[socket.socket]]:
    """The hand-off channels :func:`fork` made for ``w`` (one per address of
    :func:`run`): our ends, and our copies of the worker's ends."""
    return w._handoff, w._handoff_peer


#: Every _RoundRobin of this process, for close_in_child().
_instances: "weakref.WeakSet[_RoundRobin]" = weakref.WeakSet()


def close_in_child() -> None:
    """In a new worker: close its copies of the connections the primary had accepted
    and not handed out yet when it forked. A worker that kept one would hold that
    connection open after the worker it is handed to has answered and closed it,
    and a client reading to the end of the response would wait forever."""
    for rr in list(_instances):
        while rr.pending:
            rr.pending.popleft()[1].close()
        rr.stopped = True
    _instances.clear()


class _RoundRobin:
    """Primary side of round_robin: accept on each listening socket and send each
    connection to the next worker that takes connections. ``channels(w)`` gives the
    worker's hand-off channels, one per socket: ours, and our copies of its ends."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sockets: list[socket.socket],
                 channels: Callable[["Worker"], tuple[list[socket.socket],
                                                      list[socket.socket]]] = _fork_handoff
                 ) -> None:
        self.loop = loop
        self.sockets = sockets
        self.channels = channels
        self.order: list[Worker] = []
        self.closed: dict[Worker, set[int]] = {}   # addresses whose Listener a worker closed
        self.next = 0
        self.pending: collections.deque = collections.deque()
        self.retry: asyncio.TimerHandle | None = None
        self.stopped = False
        self.max_pending = 4096
        _instances.add(self)
        for i, s in enumerate(sockets):
            s.setblocking(False)
            loop.add_reader(s.fileno(), self._accept, i)

    def add(self, w: Worker) -> None:
        self.order.append(w)
        self._flush_pending()

    def remove(self, w: Worker) -> None:
        if w in self.order:
            self.order.remove(w)
        self.closed.pop(w, None)

    def listener_closed(self, w: Worker, index: Any) -> None:
        """``w`` closed its Listener for address ``index``: send it no more connections
        for that address, and send the ones it had not accepted to the others."""
        if not isinstance(index, int) or not 0 <= index < len(self.sockets):
            return
        self.closed.setdefault(w, set()).add(index)
        if not w.is_dead():
            self.reclaim(w, (index,))

    def reclaim(self, w: Worker, indexes: Sequence[int] | None = None) -> None:
        """Hand the connections sent to ``w`` that it never received (it died, or
        closed that Listener) to the other workers, or queue them until one is ready,
        instead of letting them close with the channel."""
        if self.stopped:
            return                      # shutting down: they close with the channel
        taken = 0
        for index, peer in enumerate(self.channels(w)[1]):
            if indexes is not None and index not in indexes:
                continue
            while True:
                try:
                    conn = _receive_connection(peer)
                except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                    break               # nothing more queued, or the end of the channel
                except OSError as exc:
                    logger.error("round_robin: reading back worker %d's channel failed: %s",
                                 w.id, exc)
                    break
                if conn is not None:
                    self.pending.append((index, conn))
                    taken += 1
        if taken:
            logger.warning("round_robin: %d connection(s) sent to worker %d (pid %d) before "
                           "it %s go to other workers", taken, w.id, w.pid,
                           "died" if w.is_dead() else "closed its listener")
            self._flush_pending()

    def close(self) -> None:
        self.stopped = True
        for s in self.sockets:
            try:
                self.loop.remove_reader(s.fileno())
            except (ValueError, OSError):
                pass
        if self.retry is not None:
            self.retry.cancel()
        while self.pending:
            self.pending.popleft()[1].close()

    def _accept(self, index: int) -> None:
        sock = self.sockets[index]
        for _ in range(64):
            try:
                conn, _addr = sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                logger.error("round_robin accept failed: %s", exc)
                return
            if self.pending or not self._hand(index, conn):
                if len(self.pending) >= self.max_pending:
                    conn.close()
                else:
                    self.pending.append((index, conn))
                    self._schedule_retry()

    def _hand(self, index: int, conn: socket.socket) -> bool:
        n = len(self.order)
        for _ in range(n):
            w = self.order[self.next % n]
            self.next = (self.next + 1) % n
            if index in self.closed.get(w, ()):
                continue
            try:
                socket.send_fds(self.channels(w)[0][index], [b"c"], [conn.fileno()])
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:             # its channel is gone: it is exiting
                self.remove(w)
                return self._hand(index, conn) if self.order else False
            conn.close()
            return True
        return False

    def _schedule_retry(self) -> None:
        if self.retry is None:
            self.retry = self.loop.call_later(0.01, self._flush_pending)

    def _flush_pending(self) -> None:
        self.retry = None
        while self.pending:
            index, conn = self.pending[0]
            if not self._hand(index, conn):
                self._schedule_retry()
                return
            self.pending.popleft()
