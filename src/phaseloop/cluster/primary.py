"""The primary's side of forking: setup_primary and fork."""
from __future__ import annotations

import asyncio
import socket
from typing import Any, Callable

from ..forking import fork_with_signals_blocked
from . import state
from .child import _become_worker
from .events import emit
from .sockets import _handoff_pair
from .worker_handle import Worker

__all__ = ["fork", "setup_primary"]


def setup_primary(*, target: Callable[[], Any] | None = None,
                  serialization: str | None = None, scheduling: str | None = None) -> None:
    """Defaults for :func:`fork`, as ``cluster.setupPrimary`` in Node: ``target`` is what
    a worker runs; ``serialization`` is ``"json"`` (Node's default) or ``"pickle"``;
    ``scheduling`` is how an address the workers listen on through the primary
    (:func:`server_socket`, ``App.listen``) reaches them: ``"round_robin"`` (the
    default, as Node's ``cluster.schedulingPolicy`` outside Windows), ``"shared"`` or
    ``"reuse_port"``."""
    if target is not None:
        state.settings["target"] = target
    if serialization is not None:
        if serialization not in ("json", "pickle"):
            raise ValueError("serialization must be 'json' or 'pickle'")
        state.settings["serialization"] = serialization
    if scheduling is not None:
        if scheduling not in state.SCHEDULING:
            raise ValueError("scheduling must be one of %s" % ", ".join(state.SCHEDULING))
        state.settings["scheduling"] = scheduling


def fork(env: dict[str, str] | None = None, *, target: Callable[[], Any] | None = None,
         _handoff_count: int = 0, _ignored_signals: tuple[int, ...] = ()) -> Worker:
    """Fork a worker; in the primary, return its :class:`Worker` (in ``cluster.workers``).

    Must be called from code running on the primary's event loop (a coroutine or
    callback): the worker's exit and messages are watched by that loop. In the new
    process, ``env`` is merged into ``os.environ``, ``cluster.is_worker`` is True,
    ``cluster.worker`` is set, and ``target()`` (or ``setup_primary``'s target) runs on
    a new phaseloop loop (awaited if it returns an awaitable); the process then exits
    with its result (None -> 0, an int -> that status, an exception -> 1 with the
    traceback on stderr). ``fork`` never returns in the worker.
    """
    if not state.is_primary:
        raise state.ClusterError("cluster.fork() is for the primary; this process is a worker")
    target = target if target is not None else state.settings["target"]
    if target is None:
        raise state.ClusterError(
            "cluster.fork() needs a target (fork(target=...) or setup_primary)")
    loop = asyncio.get_running_loop()    # RuntimeError outside the primary's loop
    wid = state.next_id
    state.next_id += 1
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
        _become_worker(wid, parent_sock, child_sock, handoff_pairs, env, target, old_mask,
                       _ignored_signals)
        # never returns
    child_sock.close()
    w = Worker(wid, pid, parent_sock, in_primary=True)
    for a, b in handoff_pairs:
        a.setblocking(False)
        b.setblocking(False)
        w._handoff.append(a)
        w._handoff_peer.append(b)
    state.workers[wid] = w
    w._watch(loop)
    emit("fork", w)
    return w
