"""cluster.run: a server on many processes, supervised by the primary.

The primary opens the listening sockets, forks the workers, replaces those
that die (with backoff and a crash-loop limit), stops them gracefully on
SIGTERM/SIGINT and rolls them one at a time on SIGHUP; each worker serves
with ``worker_main`` until it is asked to stop, then drains.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import os
import signal
import socket
import time
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Sequence

import phaseloop

from . import state
from .channel import _KIND_INTERNAL
from .events import ExitSignal
from .primary import fork
from .round_robin import Listener, _RoundRobin
from .sockets import (Address, _bind_reuse_port, _format_address, _open_listeners,
                      _remove_unix_paths)

if TYPE_CHECKING:
    from .worker_handle import Worker

__all__ = ["run"]

logger = state.logger


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


async def _serve_in_worker(worker_main: Callable[[list[socket.socket]], Awaitable[Any]],
                           scheduling: str, listeners: list[socket.socket],
                           drain_timeout: float, backlog: int) -> int:
    """The body of each worker of :func:`run`."""
    loop = asyncio.get_running_loop()
    me = state.worker
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
        # Ctrl-C or a hangup reach the whole process group: the primary drives both,
        # so a worker ignores them from the fork on (a Ctrl-C while it was still
        # starting used to kill it by SIGINT instead of a drain and exit 0).
        w = fork(target=lambda: _serve_in_worker(main, scheduling, sockets, drain, backlog),
                 _handoff_count=len(sockets) if scheduling == "round_robin" else 0,
                 _ignored_signals=(signal.SIGINT, signal.SIGHUP))
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
        workers: int | None = None, listen: Sequence[Address] = (("127.0.0.1", 3000),),
        restart: bool = True, scheduling: str = "round_robin", max_restarts: int = 5,
        restart_window: float = 60.0, backoff_initial: float = 0.1, backoff_max: float = 5.0,
        drain_timeout: float = 10.0, backlog: int = 511,
        on_listening: Callable[[list[Any]], None] | None = None) -> int:
    """Run a server on ``workers`` processes; return the primary's exit status.

    The primary opens ``listen`` (``(host, port)`` pairs, port 0 picking one; or
    the path of a Unix socket, whose file is replaced if stale and removed at exit),
    forks the workers and supervises them. In each worker, ``await
    worker_main(sockets)`` serves:

    - ``shared``: ``sockets`` are the primary's listening sockets (inherited); the
      kernel gives each connection to whichever worker accepts first.
    - ``reuse_port``: each worker binds its own sockets with SO_REUSEPORT to the same
      addresses; the kernel spreads connections by a hash of the 4-tuple.
    - ``round_robin`` (the default, as in Node): the primary accepts and sends each
      connection to the next worker over a Unix socket (SCM_RIGHTS); ``sockets`` are
      :class:`Listener` objects that ``loop.create_server(sock=...)`` accepts.

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
    if scheduling not in state.SCHEDULING:
        raise ValueError("scheduling must be one of %s" % ", ".join(state.SCHEDULING))
    if not state.is_primary:
        raise state.ClusterError("cluster.run() is for the primary")
    n = workers if workers is not None else (os.cpu_count() or 1)
    if n < 1:
        raise ValueError("workers must be >= 1")
    listen = list(listen)
    if not listen:
        raise ValueError("listen needs at least one (host, port)")
    _ensure_log_output()
    state.settings["scheduling"] = scheduling      # also for what workers open with server_socket()
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
        _remove_unix_paths(listen)
