"""Node's ``cluster`` module for Python: a primary process forks workers.

Low level, as in Node::

    from phaseloop import cluster

    async def child():                    # runs in each worker, on its own loop
        cluster.worker.on("message", lambda msg: cluster.worker.send({"echo": msg}))
        await asyncio.sleep(1)

    async def main():                     # the primary, on its (phaseloop) loop
        cluster.on("exit", lambda w, code, sig: print(w.pid, code, sig))
        w = cluster.fork(target=child)
        w.send("hi")

High level, a server on many cores::

    async def worker_main(sockets):
        await asyncio.gather(*(app.serve(sock=s) for s in sockets))

    raise SystemExit(cluster.run(worker_main, workers=4, listen=[("127.0.0.1", 3000)]))

Unlike Node, a worker is made with ``os.fork()``: it does not run the program again
from the top but calls ``target`` (given to :func:`fork` or :func:`setup_primary`) and
exits with its result. A loop never crosses the fork: the child drops the parent's
loop and signal wiring and runs ``target`` on a new ``phaseloop`` loop.

See docs/cluster.md for the scheduling modes, supervision and signals.
"""
from __future__ import annotations

import array
import asyncio
import collections
import enum
import errno
import json
import logging
import os
import pickle
import signal
import socket
import struct
import sys
import time
import traceback
from typing import Any, Awaitable, Callable, Sequence

import phaseloop
from phaseloop.emitter import EventEmitter, report_listener_error
from phaseloop.forking import ExitWatcher, fork_with_signals_blocked, reset_signals_in_child

__all__ = ["ClusterError", "ExitSignal", "Listener", "Worker", "fork", "is_primary", "is_worker",
           "off", "on", "once", "run", "server_socket", "settings", "setup_primary",
           "share_servers", "worker", "workers"]

logger = logging.getLogger("phaseloop.cluster")

#: True in the process that forks workers (every process until it becomes a worker).
is_primary: bool = True
#: True in a process made by :func:`fork`.
is_worker: bool = False
#: In a worker, the :class:`Worker` that stands for this process; None in the primary.
worker: "Worker | None" = None
#: In the primary, the live workers by id (a worker leaves it when it exits).
workers: dict[int, "Worker"] = {}
#: What :func:`setup_primary` set: ``target``, ``serialization`` ("json" or "pickle"),
#: ``scheduling`` (how :func:`server_socket` shares an address: "shared",
#: "reuse_port" or "round_robin").
settings: dict[str, Any] = {"target": None, "serialization": "json", "scheduling": "shared"}

_HEADER = struct.Struct("!IB")        # payload length, kind
_KIND_INTERNAL = 0                    # JSON dict with a "cmd"
_KIND_USER = 1                        # a user message in settings["serialization"]
_MAX_FRAME = 64 * 1024 * 1024
_next_id = 0


class ClusterError(RuntimeError):
    """A cluster API used in the wrong place (fork in a worker, no target...)."""


# ---- events (cluster-wide; a Worker's own too: phaseloop.emitter.EventEmitter) ----------


class _SignalEnum(enum.IntEnum):
    """Prints as the signal's name, as Node passes 'SIGKILL' (a plain
    signal.Signals prints as its number from Python 3.11 on)."""

    def __str__(self) -> str:
        return self.name

    def __format__(self, spec: str) -> str:
        return format(self.name, spec)


#: What ``exit`` listeners get and ``Worker.signal_code`` holds: equal to the
#: ``signal.Signals`` member of the same number (``sig == signal.SIGKILL``),
#: printed by name (``f"{sig}"`` is ``SIGKILL``).
ExitSignal = _SignalEnum("ExitSignal", [(s.name, int(s)) for s in signal.Signals],
                         module=__name__)


_events = EventEmitter()
_events.event_source = "cluster"


def on(event: str, fn: Callable[..., Any] | None = None) -> Any:
    """Listen to a cluster event in the primary, as ``cluster.on`` in Node:
    ``fork`` (worker), ``online`` (worker), ``message`` (worker, obj),
    ``disconnect`` (worker), ``exit`` (worker, code, signal). ``code`` is the exit
    status or None; ``signal`` the :data:`ExitSignal` that ended it (prints as
    ``SIGKILL``, equals ``signal.SIGKILL``) or None. Returns ``fn``; without
    ``fn``, a decorator: ``@cluster.on("exit")``."""
    return _events.on(event, fn)


def once(event: str, fn: Callable[..., Any] | None = None) -> Any:
    """Like :func:`on`, for the next event only."""
    return _events.once(event, fn)


def off(event_or_fn: Any, fn: Callable[..., Any] | None = None) -> bool:
    """Remove a listener added with :func:`on` or :func:`once`: ``off(event,
    fn)``, or ``off(fn)`` from every event. True if one was removed."""
    return _events.off(event_or_fn, fn)


def _emit(event: str, *args: Any) -> None:
    _events.emit(event, *args)


# ---- the IPC channel ----------------------------------------------------------------------


def _encode(kind: int, obj: Any) -> bytes:
    if kind == _KIND_INTERNAL or settings["serialization"] == "json":
        payload = json.dumps(obj, separators=(",", ":")).encode()
    else:
        payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    if len(payload) > _MAX_FRAME:
        raise ValueError("cluster message too large (%d bytes)" % len(payload))
    return _HEADER.pack(len(payload), kind) + payload


def _decode(kind: int, payload: bytes) -> Any:
    if kind == _KIND_INTERNAL or settings["serialization"] == "json":
        return json.loads(payload)
    return pickle.loads(payload)


class _Channel:
    """One end of a socketpair carrying length-prefixed frames, driven by a loop's
    readers and writers. ``on_frame(kind, obj, fds)`` gets each frame with the file
    descriptors it carried (SCM_RIGHTS: a frame that carries some says how many in its
    ``"fds"`` key); ``on_close()`` is called once when the other end goes away or
    :meth:`close` is called."""

    def __init__(self, sock: socket.socket, on_frame: Callable[[int, Any, list[int]], None],
                 on_close: Callable[[], None]) -> None:
        self.sock = sock
        self.sock.setblocking(False)
        self._on_frame = on_frame
        self._on_close = on_close
        self._rbuf = bytearray()
        self._rfds: collections.deque[int] = collections.deque()   # received, not yet claimed
        # What is still to send, in order: [bytes, fds]. The fds go with the first
        # byte of their frame (sendmsg), so a frame is never split from them.
        self._out: collections.deque[list[Any]] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writing = False
        self.closed = False

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start reading on ``loop`` (and flush what was queued before)."""
        self._loop = loop
        loop.add_reader(self.sock.fileno(), self._readable)
        if self._out:
            self._flush()

    def send(self, kind: int, obj: Any, fds: Sequence[int] = ()) -> bool:
        """Queue one frame (with ``fds``, sent along with it: the channel sends
        duplicates it closes once sent, so the caller keeps its own); False if
        the channel is closed."""
        if self.closed:
            return False
        if fds:
            obj = dict(obj, fds=len(fds))
        self._out.append([_encode(kind, obj), [os.dup(fd) for fd in fds]])
        if not self._writing:
            self._flush()
        return True

    @property
    def pending(self) -> bool:
        """Whether frames wait to be sent."""
        return bool(self._out)

    def _send_some(self, data: bytes, fds: list[int]) -> int:
        if fds:
            return self.sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                               array.array("i", fds))])
        return self.sock.send(data)

    def _flush(self) -> None:
        if self.closed:
            return
        if self._loop is None:       # not attached yet: write what fits, blocking
            try:
                self.sock.setblocking(True)
                while self._out:
                    data, fds = self._out[0]
                    n = self._send_some(data, fds)
                    _close_all(fds)
                    if n < len(data):
                        self._out[0] = [data[n:], []]
                    else:
                        self._out.popleft()
            except OSError:
                self.close()
            finally:
                if not self.closed:
                    self.sock.setblocking(False)
            return
        while self._out:
            data, fds = self._out[0]
            try:
                n = self._send_some(data, fds)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self.close()
                return
            _close_all(fds)                        # sent with the first byte
            if n < len(data):
                self._out[0] = [data[n:], []]
            else:
                self._out.popleft()
        if self._out and not self._writing:
            self._writing = True
            self._loop.add_writer(self.sock.fileno(), self._flush)
        elif not self._out and self._writing:
            self._writing = False
            self._loop.remove_writer(self.sock.fileno())

    def _readable(self) -> None:
        while True:
            try:
                data, fds, _flags, _addr = socket.recv_fds(self.sock, 262144, 16)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                data, fds = b"", []
            self._rfds.extend(fds)
            if not data:
                self._parse()
                self.close()
                return
            self._rbuf += data
            if len(data) < 262144:
                break
        self._parse()

    def drain(self) -> None:
        """Read and deliver whatever is already buffered in the socket."""
        if not self.closed:
            self._readable()

    def _parse(self) -> None:
        buf = self._rbuf
        while len(buf) >= _HEADER.size:
            size, kind = _HEADER.unpack_from(buf)
            if size > _MAX_FRAME:
                self.close()
                return
            end = _HEADER.size + size
            if len(buf) < end:
                return
            payload = bytes(buf[_HEADER.size:end])
            del buf[:end]
            try:
                obj = _decode(kind, payload)
            except Exception as exc:  # noqa: BLE001 - a bad frame is reported, not fatal
                report_listener_error("cluster: undecodable message", exc)
                continue
            count = obj.get("fds", 0) if kind == _KIND_INTERNAL and isinstance(obj, dict) else 0
            fds = [self._rfds.popleft() for _ in range(min(count, len(self._rfds)))]
            self._on_frame(kind, obj, fds)
            if self.closed:
                return

    def close(self) -> None:
        """Stop watching and close the socket; calls ``on_close`` once."""
        if self.closed:
            return
        self.closed = True
        if self._loop is not None and not self._loop.is_closed():
            try:
                self._loop.remove_reader(self.sock.fileno())
                if self._writing:
                    self._loop.remove_writer(self.sock.fileno())
            except (ValueError, OSError, RuntimeError):
                pass
        self.sock.close()
        _close_all(self._rfds)
        self._rfds.clear()
        for _data, fds in self._out:
            _close_all(fds)
        self._out.clear()
        self._on_close()


def _close_all(fds: Iterable[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


# ---- Worker ---------------------------------------------------------------------------------


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
                _emit("message", self, obj)
            return
        cmd = obj.get("cmd") if isinstance(obj, dict) else None
        if self._in_primary:
            if cmd == "online":
                self.is_online = True
                self.emit("online")
                _emit("online", self)
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
                _child_state["stop"]()
        _close_all(fds)                   # carried by a frame nobody took them from

    def _on_channel_closed(self) -> None:
        if self._in_primary:
            self._emit_disconnect()
        else:
            waiters, self._listen_waiters = self._listen_waiters, {}
            for waiter in waiters.values():
                if not waiter.done():
                    waiter.set_exception(ClusterError("the primary is gone"))
            # The primary is gone (or we closed): a worker does not outlive its primary.
            if not self.emit("disconnect"):
                _child_state["stop"]()

    def _emit_disconnect(self) -> None:
        if not self._disconnect_emitted:
            self._disconnect_emitted = True
            self.emit("disconnect")
            _emit("disconnect", self)

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
        workers.pop(self.id, None)
        try:
            self.emit("exit", self.exit_code, self.signal_code)
            _emit("exit", self, self.exit_code, self.signal_code)
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


# ---- fork -----------------------------------------------------------------------------------


def setup_primary(*, target: Callable[[], Any] | None = None,
                  serialization: str | None = None, scheduling: str | None = None) -> None:
    """Defaults for :func:`fork`, as ``cluster.setupPrimary`` in Node: ``target`` is what
    a worker runs; ``serialization`` is ``"json"`` (Node's default) or ``"pickle"``;
    ``scheduling`` is how an address the workers listen on through the primary
    (:func:`server_socket`, ``App.listen``) reaches them: ``"shared"`` (the default),
    ``"reuse_port"`` or ``"round_robin"`` (Node's ``cluster.schedulingPolicy``; Node's
    default is round-robin)."""
    if target is not None:
        settings["target"] = target
    if serialization is not None:
        if serialization not in ("json", "pickle"):
            raise ValueError("serialization must be 'json' or 'pickle'")
        settings["serialization"] = serialization
    if scheduling is not None:
        if scheduling not in SCHEDULING:
            raise ValueError("scheduling must be one of %s" % ", ".join(SCHEDULING))
        settings["scheduling"] = scheduling


_child_state: dict[str, Any] = {"stop": lambda: None}


def fork(env: dict[str, str] | None = None, *, target: Callable[[], Any] | None = None,
         _handoff_count: int = 0) -> Worker:
    """Fork a worker; in the primary, return its :class:`Worker` (in ``cluster.workers``).

    Must be called from code running on the primary's event loop (a coroutine or
    callback): the worker's exit and messages are watched by that loop. In the new
    process, ``env`` is merged into ``os.environ``, ``cluster.is_worker`` is True,
    ``cluster.worker`` is set, and ``target()`` (or ``setup_primary``'s target) runs on
    a new phaseloop loop (awaited if it returns an awaitable); the process then exits
    with its result (None -> 0, an int -> that status, an exception -> 1 with the
    traceback on stderr). ``fork`` never returns in the worker.
    """
    global _next_id
    if not is_primary:
        raise ClusterError("cluster.fork() is for the primary; this process is a worker")
    target = target if target is not None else settings["target"]
    if target is None:
        raise ClusterError("cluster.fork() needs a target (fork(target=...) or setup_primary)")
    loop = asyncio.get_running_loop()    # RuntimeError outside the primary's loop
    _next_id += 1
    wid = _next_id
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    handoff_pairs = [_handoff_pair() for _ in range(_handoff_count)]
    for s in (parent_sock, child_sock):
        s.set_inheritable(False)
    try:
        pid, old_mask = fork_with_signals_blocked()
    except BaseException:
        parent_sock.close()
        child_sock.close()
        for a, b in handoff_pairs:
            a.close()
            b.close()
        raise
    if pid == 0:
        _become_worker(wid, parent_sock, child_sock, handoff_pairs, env, target, old_mask)
        # never returns
    child_sock.close()
    w = Worker(wid, pid, parent_sock, in_primary=True)
    for a, b in handoff_pairs:
        a.setblocking(False)
        b.setblocking(False)
        w._handoff.append(a)
        w._handoff_peer.append(b)
    workers[wid] = w
    w._watch(loop)
    _emit("fork", w)
    return w


def _handoff_pair() -> tuple[socket.socket, socket.socket]:
    """A socket pair that keeps message boundaries, for passing one fd per message."""
    kind = getattr(socket, "SOCK_SEQPACKET", None)
    if kind is not None:
        try:
            return socket.socketpair(socket.AF_UNIX, kind)
        except OSError:
            pass
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)


def _become_worker(wid: int, parent_sock: socket.socket, child_sock: socket.socket,
                   handoff_pairs: list, env: dict[str, str] | None,
                   target: Callable[[], Any], old_mask: Any) -> None:
    global is_primary, is_worker, worker
    status = 1
    interrupted = False
    try:
        try:
            reset_signals_in_child()
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            asyncio.events._set_running_loop(None)
            asyncio.set_event_loop(None)
            parent_sock.close()
            for w in list(workers.values()):
                w._close_in_child()
            _shared_servers.close_in_child()
            workers.clear()
            _events.remove_all_listeners()
            handoff = []
            for a, b in handoff_pairs:
                a.close()
                handoff.append(b)
            if env:
                os.environ.update({str(k): str(v) for k, v in env.items()})
            is_primary, is_worker = False, True
            worker = Worker(wid, os.getpid(), child_sock, in_primary=False)
            worker._handoff = handoff
            status = phaseloop.run(_worker_process_main(target))
        except SystemExit as exc:
            code = exc.code
            status = code if isinstance(code, int) else (0 if code is None else 1)
            if not isinstance(code, int) and code is not None:
                print(code, file=sys.stderr)
        except KeyboardInterrupt:
            # Ctrl-C reaches every process of the group: a worker ends by the
            # signal, with no traceback, as a Node worker does.
            interrupted = True
        except BaseException:  # noqa: BLE001 - the process ends here either way
            traceback.print_exc()
            status = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            if interrupted:
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                os.kill(os.getpid(), signal.SIGINT)
        finally:
            os._exit(status if isinstance(status, int) else 0)


async def _worker_process_main(target: Callable[[], Any]) -> int:
    loop = asyncio.get_running_loop()
    assert worker is not None
    task = asyncio.current_task()
    stopping = [False]

    def stop() -> None:
        # Default reaction to the primary's disconnect (no listener) or a lost primary.
        if not stopping[0] and task is not None:
            stopping[0] = True
            task.cancel()

    _child_state["stop"] = stop
    worker._channel.attach(loop)
    worker._channel.send(_KIND_INTERNAL, {"cmd": "online"})
    try:
        result = target()
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            result = await result
    except asyncio.CancelledError:
        if not stopping[0]:
            raise
        result = 0
    finally:
        _child_state["stop"] = lambda: None
    if not worker._channel.closed:
        # Let queued messages reach the primary before the process ends.
        deadline = loop.time() + 2.0
        while worker._channel.pending and loop.time() < deadline:
            await asyncio.sleep(0.005)
        worker._channel.close()
    return result if isinstance(result, int) else 0


# ---- round_robin: connections handed over a Unix socket ---------------------------------------


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
        if self.fileno() >= 0 and worker is not None and not worker._channel.closed:
            message: dict[str, Any] = {"cmd": "listener_closed", "index": self._index}
            if self._server is not None:
                message["server"] = self._server
            worker._channel.send(_KIND_INTERNAL, message)
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


def _receive_connection(channel: socket.socket) -> socket.socket | None:
    """One message of a hand-off channel: the connection it carries, or None for a
    message without one. ConnectionAbortedError at the end of the channel; the
    socket's own errors (BlockingIOError when nothing is queued) pass through."""
    msg, fds, _flags, _addr = socket.recv_fds(channel, 16, 4)
    if not fds:
        if not msg:
            raise ConnectionAbortedError("the hand-off channel is closed")
        return None
    for extra in fds[1:]:
        os.close(extra)
    return socket.socket(fileno=fds[0])


def _fork_handoff(w: "Worker") -> tuple[list[socket.socket], list[socket.socket]]:
    """The hand-off channels :func:`fork` made for ``w`` (one per address of
    :func:`run`): our ends, and our copies of the worker's ends."""
    return w._handoff, w._handoff_peer


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


# ---- listening in a worker: servers shared through the primary ------------------------------


class _SharedServer:
    """One address the workers listen on through the primary (a handle of Node's
    cluster): the primary's socket, the workers using it, and in round_robin mode the
    hand-off channel of each worker."""

    def __init__(self, sid: int, key: tuple, mode: str, sock: socket.socket) -> None:
        self.id = sid
        self.key = key
        self.mode = mode
        self.sock = sock
        self.address = sock.getsockname()
        self.users: set[Worker] = set()
        self.handoff: dict[Worker, tuple[list[socket.socket], list[socket.socket]]] = {}
        self.rr: _RoundRobin | None = None


class _SharedServers:
    """The primary's side of :func:`server_socket`: opens each address once, with the
    scheduling policy of ``settings["scheduling"]``, and hands it to every worker that
    asks; closes it when the last of them has exited."""

    def __init__(self) -> None:
        self.by_key: dict[tuple, _SharedServer] = {}
        self.by_id: dict[int, _SharedServer] = {}
        self.next_id = 0

    def listen(self, w: Worker, req: dict) -> None:
        seq = req.get("seq")
        try:
            server = self._server_for(w, req)
            reply = {"cmd": "listening", "seq": seq, "ok": True, "mode": server.mode,
                     "server": server.id, "address": server.address,
                     "family": int(server.sock.family)}
            handed = self._handle_for(server, w)
        except (OSError, ValueError) as exc:
            logger.error("worker %d (pid %d) cannot listen on %s: %s", w.id, w.pid,
                         _format_address((req.get("host"), req.get("port"))), exc)
            w._channel.send(_KIND_INTERNAL, {"cmd": "listening", "seq": seq, "ok": False,
                                             "errno": getattr(exc, "errno", None),
                                             "error": str(exc)})
            return
        try:
            w._channel.send(_KIND_INTERNAL, reply, [handed.fileno()])
        finally:
            if handed is not server.sock and server.mode != "round_robin":
                handed.close()            # reuse_port: the worker's own socket, sent
        if server.rr is not None:
            server.rr.add(w)

    def _server_for(self, w: Worker, req: dict) -> _SharedServer:
        host = req.get("host")
        port = int(req.get("port") or 0)
        # Node: every worker's n-th listen(0) shares one port, picked once.
        key = (host, port) if port else (host, 0, int(req.get("port0_index") or 0))
        server = self.by_key.get(key)
        if server is not None and w in server.users:
            raise OSError(errno.EADDRINUSE, "this worker already listens there")
        if server is None:
            mode = settings["scheduling"]
            backlog = int(req.get("backlog") or 511)
            (sock,) = _open_listeners([(host, port)], mode, backlog)
            self.next_id += 1
            server = _SharedServer(self.next_id, key, mode, sock)
            if mode == "round_robin":
                server.rr = _RoundRobin(asyncio.get_running_loop(), [sock],
                                        channels=server.handoff.__getitem__)
            self.by_key[key] = server
            self.by_id[server.id] = server
        server.users.add(w)
        w.once("exit", lambda *args: self._drop(server, w))
        return server

    def _handle_for(self, server: _SharedServer, w: Worker) -> socket.socket:
        """What the worker gets: the listening socket itself (shared), a socket of its
        own on the same address (reuse_port), or its end of a hand-off channel."""
        if server.mode == "shared":
            return server.sock
        if server.mode == "reuse_port":
            (sock,) = _bind_reuse_port([server.address], [server.sock.family], 511)
            return sock
        ours, theirs = _handoff_pair()
        ours.setblocking(False)
        theirs.setblocking(False)
        server.handoff[w] = ([ours], [theirs])   # theirs: our copy, for reclaim()
        return theirs

    def listener_closed(self, w: Worker, sid: Any) -> None:
        server = self.by_id.get(sid) if isinstance(sid, int) else None
        if server is not None and server.rr is not None and w in server.handoff:
            server.rr.listener_closed(w, 0)

    def _drop(self, server: _SharedServer, w: Worker) -> None:
        """``w`` exited: the connections sent to it and never taken go to the others;
        the last worker gone closes the server."""
        server.users.discard(w)
        if server.rr is not None:
            server.rr.remove(w)
            if w in server.handoff:
                if server.users:
                    server.rr.reclaim(w)
                ours, theirs = server.handoff.pop(w)
                for s in ours + theirs:
                    s.close()
        if not server.users:
            self._close(server)

    def _close(self, server: _SharedServer) -> None:
        if server.rr is not None:
            server.rr.close()
        server.sock.close()
        self.by_key.pop(server.key, None)
        self.by_id.pop(server.id, None)

    def close_in_child(self) -> None:
        """In a new worker: drop the copies of the primary's sockets fork gave it."""
        for server in list(self.by_id.values()):
            server.sock.close()
            for ours, theirs in server.handoff.values():
                for s in ours + theirs:
                    s.close()
        self.by_key.clear()
        self.by_id.clear()


_shared_servers = _SharedServers()


async def server_socket(host: str | None = "127.0.0.1", port: int = 0, *,
                        backlog: int = 511) -> socket.socket:
    """A listening socket for ``host:port``, as Node's ``server.listen()`` gets one.

    In a cluster worker, the primary opens the address once (``port=0`` picks one port
    for every worker's first such call, as in Node) and hands it over with the cluster's
    scheduling policy (``setup_primary(scheduling=...)``): ``"shared"``, the primary's
    listening socket; ``"reuse_port"``, a socket of this worker's own bound with
    SO_REUSEPORT; ``"round_robin"``, a :class:`Listener` the primary sends each
    connection to in turn. So every worker may listen on the same port:
    ``loop.create_server(factory, sock=await cluster.server_socket(port=3000))``;
    ``phaseloop.http.App.listen`` does it for you. Elsewhere, a new listening socket
    (SO_REUSEADDR). OSError as ``bind``/``listen`` would raise it (``EADDRINUSE``...).
    """
    if worker is None:
        (sock,) = _open_listeners([(host, port)], "shared", backlog)
        return sock
    loop = asyncio.get_running_loop()
    me = worker
    me._listen_seq += 1
    seq = me._listen_seq
    port0_index = 0
    if not port:
        me._port0_listens += 1
        port0_index = me._port0_listens
    waiter = loop.create_future()
    me._listen_waiters[seq] = waiter
    if not me._channel.send(_KIND_INTERNAL, {"cmd": "listen", "seq": seq, "host": host,
                                             "port": port, "backlog": backlog,
                                             "port0_index": port0_index}):
        me._listen_waiters.pop(seq, None)
        raise ClusterError("the primary is gone")
    try:
        reply, fds = await waiter
    finally:
        me._listen_waiters.pop(seq, None)
    if not reply.get("ok") or not fds:
        _close_all(fds)
        raise OSError(reply.get("errno") or errno.EIO,
                      reply.get("error") or "the primary sent no socket")
    _close_all(fds[1:])
    address = tuple(reply["address"])
    if reply["mode"] == "round_robin":
        return Listener(socket.socket(fileno=fds[0]), address, reply["family"],
                        server=reply["server"])
    return socket.socket(fileno=fds[0])


def share_servers(enabled: bool = True) -> None:
    """In a worker: from now on, ``loop.create_server(factory, host, port)`` on a
    phaseloop loop asks the primary for its listening socket (:func:`server_socket`),
    as ``net.Server.listen`` does in a Node worker, so a framework that makes its own
    server (uvicorn, aiohttp) can run unchanged in every worker on one port. A
    ``reuse_port=True`` call still binds its own socket. ``share_servers(False)``
    turns it off. ClusterError in the primary."""
    if worker is None:
        raise ClusterError("share_servers() is for a cluster worker")
    phaseloop.loop._set_server_socket_provider(_provide_server_socket if enabled else None)


async def _provide_server_socket(host: Any, port: Any, backlog: int) -> socket.socket:
    return await server_socket(host, port or 0, backlog=backlog)


def _ensure_log_output() -> None:
    """Let a primary's lifecycle lines (INFO) reach stderr when nobody configured
    logging, as Node's cluster messages reach the console: if neither the root logger
    nor ``phaseloop.cluster`` has a handler or a level, ours gets a stderr handler at
    INFO (and stops propagating, so configuring logging later does not print them
    twice; configure it before :func:`run` to route them yourself)."""
    if logger.handlers or logging.getLogger().handlers or logger.level != logging.NOTSET:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(name)s[%(process)d] %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


# ---- run: the high-level server cluster --------------------------------------------------------

SCHEDULING = ("shared", "reuse_port", "round_robin")


def _open_listeners(listen: Sequence[tuple[str, int]], scheduling: str,
                    backlog: int) -> list[socket.socket]:
    socks = []
    try:
        for host, port in listen:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                       flags=socket.AI_PASSIVE)
            family, _, _, _, addr = infos[0]
            s = socket.socket(family, socket.SOCK_STREAM)
            socks.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if scheduling == "reuse_port":
                # Bound, never listening: it holds the port (port 0 resolves once) and
                # takes no connections; the workers bind the same port and listen.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            s.bind(addr)
            if scheduling != "reuse_port":
                s.listen(backlog)
            s.set_inheritable(False)
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


def _bind_reuse_port(addresses: list[Any], families: list[int],
                     backlog: int) -> list[socket.socket]:
    out = []
    for addr, family in zip(addresses, families):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind(addr)
        s.listen(backlog)
        out.append(s)
    return out


async def _serve_in_worker(worker_main: Callable[[list[socket.socket]], Awaitable[Any]],
                           scheduling: str, listeners: list[socket.socket],
                           drain_timeout: float, backlog: int) -> int:
    """The body of each worker of :func:`run`."""
    loop = asyncio.get_running_loop()
    me = worker
    assert me is not None
    addresses = [s.getsockname() for s in listeners]
    families = [s.family for s in listeners]
    if scheduling == "shared":
        socks = listeners
    elif scheduling == "reuse_port":
        for s in listeners:
            s.close()
        socks = _bind_reuse_port(addresses, families, backlog)
    else:
        for s in listeners:
            s.close()
        socks = [Listener(ch, addr, fam, i)
                 for i, (ch, addr, fam) in enumerate(zip(me._handoff, addresses, families))]
        me._handoff = []
    main = loop.create_task(worker_main(socks))
    stop_requested = asyncio.Event()

    def graceful(reason: str) -> None:
        if not stop_requested.is_set():
            logger.debug("worker %d (pid %d): stopping (%s)", me.id, os.getpid(), reason)
            stop_requested.set()

    # Ctrl-C or a hangup reach the whole process group: the primary drives both.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    loop.add_signal_handler(signal.SIGTERM, graceful, "SIGTERM")
    me.on("disconnect", lambda: graceful("asked by the primary" if me.is_connected()
                                         else "lost the primary"))
    me._channel.send(_KIND_INTERNAL, {"cmd": "ready"})
    stopper = loop.create_task(stop_requested.wait())
    await asyncio.wait({main, stopper}, return_when=asyncio.FIRST_COMPLETED)
    deadline = loop.time() + drain_timeout
    if scheduling == "round_robin" and not main.done():
        # The primary took us out of its rotation before asking us to stop: take the
        # connections it already sent before the listeners close (closing drops them).
        while not main.done() and loop.time() < deadline and _any_pending(socks):
            await asyncio.sleep(0.005)
    if not main.done():
        main.cancel()                    # worker_main stops accepting and drains
        done, _ = await asyncio.wait({main}, timeout=max(deadline - loop.time(), 0.0))
        if not done:
            logger.warning("worker %d (pid %d): still busy after the %.1fs drain timeout; "
                           "exiting", me.id, os.getpid(), drain_timeout)
            return 0
        if not main.cancelled() and main.exception() is not None:
            exc = main.exception()
            logger.error("worker %d (pid %d): worker_main failed while stopping: %r",
                         me.id, os.getpid(), exc)
        return 0
    stopper.cancel()
    if main.cancelled():
        return 0
    exc = main.exception()
    if exc is not None:
        logger.error("worker %d (pid %d): worker_main raised", me.id, os.getpid(),
                     exc_info=exc)
        return 1
    return 0


def _any_pending(socks: list[socket.socket]) -> bool:
    """Whether a connection handed over by the primary waits in one of ``socks``
    (end of file, or a listener already closed, does not count)."""
    for s in socks:
        if s.fileno() < 0:
            continue
        try:
            if s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                return True
        except (BlockingIOError, InterruptedError):
            continue
        except OSError:
            continue
    return False


class _Supervisor:
    """The primary of :func:`run`: forks, replaces dead workers with backoff, stops
    on SIGTERM/SIGINT, rolls the workers on SIGHUP."""

    def __init__(self, worker_main: Callable, *, workers_n: int, sockets: list[socket.socket],
                 scheduling: str, restart: bool, max_restarts: int, restart_window: float,
                 backoff_initial: float, backoff_max: float, drain_timeout: float,
                 backlog: int) -> None:
        self.worker_main = worker_main
        self.n = workers_n
        self.sockets = sockets
        self.scheduling = scheduling
        self.restart = restart
        self.max_restarts = max_restarts
        self.restart_window = restart_window
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.drain_timeout = drain_timeout
        self.backlog = backlog
        self.loop = asyncio.get_running_loop()
        self.deaths: collections.deque[float] = collections.deque()
        self.live: set[Worker] = set()
        self.pending_restarts = 0
        self.stopping = False
        self.exit_code = 0
        self.done = self.loop.create_future()
        self.rolling: asyncio.Task | None = None
        self.rr = _RoundRobin(self.loop, sockets) if scheduling == "round_robin" else None

    def spawn(self) -> Worker:
        sockets, scheduling = self.sockets, self.scheduling
        drain, backlog, main = self.drain_timeout, self.backlog, self.worker_main
        w = fork(target=lambda: _serve_in_worker(main, scheduling, sockets, drain, backlog),
                 _handoff_count=len(sockets) if scheduling == "round_robin" else 0)
        self.live.add(w)
        w.on("exit", lambda code, sig, w=w: self._on_exit(w, code, sig))
        if self.rr is not None:
            w.on("ready", lambda w=w: self.rr.add(w) if not w.exited_after_disconnect
                 and not w.is_dead() else None)
            w.on("listener_closed", lambda index, w=w: self.rr.listener_closed(w, index))
        logger.info("worker %d started (pid %d)", w.id, w.pid)
        return w

    def _on_exit(self, w: Worker, code: int | None, sig: ExitSignal | None) -> None:
        self.live.discard(w)
        if self.rr is not None:
            self.rr.remove(w)
            if not self.stopping:
                self.rr.reclaim(w)
        how = "signal %s" % sig.name if sig is not None else "exit code %s" % code
        if w.exited_after_disconnect or self.stopping:
            logger.info("worker %d (pid %d) stopped (%s)", w.id, w.pid, how)
        else:
            logger.error("worker %d (pid %d) died unexpectedly (%s)", w.id, w.pid, how)
            now = time.monotonic()
            self.deaths.append(now)
            while self.deaths and now - self.deaths[0] > self.restart_window:
                self.deaths.popleft()
            if not self.restart:
                pass
            elif len(self.deaths) > self.max_restarts:
                logger.critical(
                    "%d workers died within %.0f s (limit %d): giving up on restarts; "
                    "the primary exits with status 1", len(self.deaths), self.restart_window,
                    self.max_restarts)
                self.exit_code = 1
                self.shutdown()
            else:
                delay = min(self.backoff_max,
                            self.backoff_initial * 2 ** (len(self.deaths) - 1))
                logger.info("restarting a worker in %.2f s", delay)
                self.pending_restarts += 1
                self.loop.call_later(delay, self._restart_one)
        self._check_done()

    def _restart_one(self) -> None:
        self.pending_restarts -= 1
        if not self.stopping:
            self.spawn()
        self._check_done()

    def _check_done(self) -> None:
        if self.done.done():
            return
        if self.stopping and not self.live:
            self.done.set_result(self.exit_code)
        elif not self.live and not self.pending_restarts and not self.stopping and \
                (self.rolling is None or self.rolling.done()):
            # Every worker ended on its own and none will be restarted.
            logger.warning("no workers left; the primary exits")
            self.exit_code = self.exit_code or (0 if not self.deaths else 1)
            self.stopping = True
            self.done.set_result(self.exit_code)

    def _stop_worker(self, w: Worker) -> "asyncio.Future[None]":
        """Graceful stop of one worker; SIGKILL if it overstays the drain timeout."""
        fut = self.loop.create_future()
        if w.is_dead():
            fut.set_result(None)
            return fut
        w.once("exit", lambda *a: fut.done() or fut.set_result(None))
        if self.rr is not None:
            self.rr.remove(w)
        w.disconnect()

        def overdue() -> None:
            if not w.is_dead():
                logger.warning("worker %d (pid %d) did not stop in time: SIGKILL", w.id, w.pid)
                w.kill(signal.SIGKILL)
        handle = self.loop.call_later(self.drain_timeout + 2.0, overdue)
        fut.add_done_callback(lambda f: handle.cancel())
        return fut

    def shutdown(self) -> None:
        """SIGTERM/SIGINT: stop everything gracefully."""
        if self.stopping:
            return
        logger.info("primary (pid %d) shutting down: stopping %d workers",
                    os.getpid(), len(self.live))
        self.stopping = True
        if self.rolling is not None:
            self.rolling.cancel()
        if self.rr is not None:
            self.rr.close()
        for w in list(self.live):
            self._stop_worker(w)
        self._check_done()

    def rolling_restart(self) -> None:
        """SIGHUP: replace the workers one at a time."""
        if self.stopping:
            return
        if self.rolling is not None and not self.rolling.done():
            logger.info("SIGHUP: a rolling restart is already running")
            return
        self.rolling = self.loop.create_task(self._roll())

    async def _roll(self) -> None:
        old = sorted(self.live, key=lambda w: w.id)
        logger.info("SIGHUP: rolling restart of %d workers", len(old))
        for w in old:
            if self.stopping:
                return
            if w.is_dead():
                continue
            new = self.spawn()
            ready = self.loop.create_future()
            new.once("ready", lambda: ready.done() or ready.set_result(True))
            new.once("exit", lambda *a: ready.done() or ready.set_result(False))
            try:
                ok = await asyncio.wait_for(ready, timeout=max(self.drain_timeout, 10.0))
            except asyncio.TimeoutError:
                ok = False
            if not ok:
                logger.error("rolling restart: the new worker did not start; stopping here")
                return
            await asyncio.sleep(0.05)    # let it reach its accept loop
            await self._stop_worker(w)
        logger.info("rolling restart done")


def run(worker_main: Callable[[list[socket.socket]], Awaitable[Any]], *,
        workers: int | None = None, listen: Sequence[tuple[str, int]] = (("127.0.0.1", 3000),),
        restart: bool = True, scheduling: str = "shared", max_restarts: int = 5,
        restart_window: float = 60.0, backoff_initial: float = 0.1, backoff_max: float = 5.0,
        drain_timeout: float = 10.0, backlog: int = 511,
        on_listening: Callable[[list[Any]], None] | None = None) -> int:
    """Run a server on ``workers`` processes; return the primary's exit status.

    The primary opens ``listen`` (``(host, port)`` pairs; port 0 picks one), forks the
    workers and supervises them. In each worker, ``await worker_main(sockets)`` serves:

    - ``shared``: ``sockets`` are the primary's listening sockets (inherited); the
      kernel gives each connection to whichever worker accepts first.
    - ``reuse_port``: each worker binds its own sockets with SO_REUSEPORT to the same
      addresses; the kernel spreads connections by a hash of the 4-tuple.
    - ``round_robin``: the primary accepts and sends each connection to the next worker
      over a Unix socket (SCM_RIGHTS); ``sockets`` are :class:`Listener` objects that
      ``loop.create_server(sock=...)`` accepts.

    To stop a worker (SIGTERM to the primary or the worker, SIGINT to the primary,
    a rolling restart) the task running ``worker_main`` is cancelled: it must stop
    accepting and finish the requests in flight; the worker exits when it returns,
    or after ``drain_timeout`` seconds. A worker that dies otherwise is logged and
    replaced after a backoff (``backoff_initial`` doubling to ``backoff_max``); more
    than ``max_restarts`` deaths within ``restart_window`` seconds stop everything and
    the status is 1. SIGHUP replaces the workers one at a time. ``on_listening`` gets
    the bound addresses once the sockets are open (before any worker starts).

    Typical use: ``raise SystemExit(cluster.run(main, workers=4, listen=[("127.0.0.1",
    3000)]))``. Call it in a program's main thread, with no loop running.
    """
    if scheduling not in SCHEDULING:
        raise ValueError("scheduling must be one of %s" % ", ".join(SCHEDULING))
    if not is_primary:
        raise ClusterError("cluster.run() is for the primary")
    n = workers if workers is not None else (os.cpu_count() or 1)
    if n < 1:
        raise ValueError("workers must be >= 1")
    listen = list(listen)
    if not listen:
        raise ValueError("listen needs at least one (host, port)")
    _ensure_log_output()
    settings["scheduling"] = scheduling      # also for what workers open with server_socket()
    sockets = _open_listeners(listen, scheduling, backlog)
    addresses = [s.getsockname() for s in sockets]

    async def primary() -> int:
        sup = _Supervisor(worker_main, workers_n=n, sockets=sockets, scheduling=scheduling,
                          restart=restart, max_restarts=max_restarts,
                          restart_window=restart_window, backoff_initial=backoff_initial,
                          backoff_max=backoff_max, drain_timeout=drain_timeout,
                          backlog=backlog)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, sup.shutdown)
        loop.add_signal_handler(signal.SIGINT, sup.shutdown)
        loop.add_signal_handler(signal.SIGHUP, sup.rolling_restart)
        try:
            for _ in range(n):
                sup.spawn()
            return await sup.done
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            if sup.rr is not None:
                sup.rr.close()

    logger.info("primary (pid %d) listening on %s with %d workers (%s)", os.getpid(),
                ", ".join(_format_address(a) for a in addresses), n, scheduling)
    if on_listening is not None:
        on_listening(addresses)
    try:
        return phaseloop.run(primary())
    finally:
        for s in sockets:
            s.close()


def _format_address(addr: Any) -> str:
    if isinstance(addr, tuple) and len(addr) >= 2:
        host = addr[0]
        return "[%s]:%d" % (host, addr[1]) if ":" in host else "%s:%d" % (host, addr[1])
    return str(addr)
