"""Listening sockets for the cluster and the hand-off pairs of round_robin."""
from __future__ import annotations

import os
import socket
import stat
from typing import Any, Sequence

#: What ``cluster.run(listen=...)`` takes: ``(host, port)`` pairs, or the path of
#: a Unix socket (a ``str`` or ``os.PathLike``).
Address = tuple[str, int] | str | os.PathLike


def _open_unix_listener(path: str, backlog: int) -> socket.socket:
    """A listening Unix socket at ``path``, as uvicorn's ``--uds`` makes one: a stale
    socket file left by an earlier run is replaced (any other file is an error),
    and the file is made 0o666 so a proxy running as another user can connect."""
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(path)
        os.chmod(path, 0o666)
        s.listen(backlog)
    except BaseException:
        s.close()
        raise
    return s


def _remove_unix_paths(listen: Sequence[Address]) -> None:
    """Remove the socket files of the Unix addresses in ``listen`` (at exit)."""
    for entry in listen:
        if not isinstance(entry, tuple):
            try:
                if stat.S_ISSOCK(os.stat(entry).st_mode):
                    os.unlink(entry)
            except OSError:
                pass


def _open_listeners(listen: Sequence[Address], scheduling: str,
                    backlog: int) -> list[socket.socket]:
    socks = []
    try:
        for entry in listen:
            if not isinstance(entry, tuple):
                if scheduling == "reuse_port":
                    raise ValueError("reuse_port needs TCP addresses, not the Unix socket "
                                     "%r (use shared or round_robin)" % os.fspath(entry))
                s = _open_unix_listener(os.fspath(entry), backlog)
                s.set_inheritable(False)
                socks.append(s)
                continue
            host, port = entry
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


def _handoff_pair() -> tuple[socket.socket, socket.socket]:
    """A socket pair that keeps message boundaries, for passing one fd per message."""
    kind = getattr(socket, "SOCK_SEQPACKET", None)
    if kind is not None:
        try:
            return socket.socketpair(socket.AF_UNIX, kind)
        except OSError:
            pass
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)


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


def _format_address(addr: Any) -> str:
    if isinstance(addr, (str, bytes, os.PathLike)):
        return "unix:%s" % os.fsdecode(addr)
    if isinstance(addr, tuple) and len(addr) >= 2:
        host = addr[0]
        return "[%s]:%d" % (host, addr[1]) if ":" in host else "%s:%d" % (host, addr[1])
    return str(addr)
