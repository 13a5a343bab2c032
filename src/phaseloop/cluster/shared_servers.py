"""Listening in a worker through the primary, as Node's ``server.listen()`` does:
the primary opens each address once and hands it to every worker that asks,
with the cluster's scheduling policy."""
from __future__ import annotations

import asyncio
import errno
import socket
from typing import TYPE_CHECKING, Any

from .. import loop as _loop_module
from . import state
from .channel import _KIND_INTERNAL, _close_all
from .round_robin import Listener, _RoundRobin
from .sockets import _bind_reuse_port, _format_address, _handoff_pair, _open_listeners

if TYPE_CHECKING:
    from .worker_handle import Worker

__all__ = ["server_socket", "share_servers"]

logger = state.logger


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
    scheduling policy of ``state.settings["scheduling"]``, and hands it to every worker that
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
            mode = state.settings["scheduling"]
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
    if state.worker is None:
        (sock,) = _open_listeners([(host, port)], "shared", backlog)
        return sock
    loop = asyncio.get_running_loop()
    me = state.worker
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
        raise state.ClusterError("the primary is gone")
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
    if state.worker is None:
        raise state.ClusterError("share_servers() is for a cluster worker")
    _loop_module._set_server_socket_provider(_provide_server_socket if enabled else None)


async def _provide_server_socket(host: Any, port: Any, backlog: int) -> socket.socket:
    return await server_socket(host, port or 0, backlog=backlog)
