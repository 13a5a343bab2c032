"""Helpers of the cluster tests: a primary run in a subprocess and read from
its log (Primary), HTTP requests to it, and checks that its workers are gone;
forking workers from a coroutine (run_primary) and waiting for their exit."""
from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import phaseloop
from phaseloop import cluster
from support.http import fetch
from support.paths import SERVE_APPS

WAIT = 5.0

#: A stand-in for phaseloop.http.App: ``async serve(sock=...)`` on the protocol API.
#: ``GET /`` answers ``{"worker": pid}``; ``/slow/<seconds>`` answers after a delay;
#: ``/crash`` kills the worker (exit status 3). On cancellation it stops accepting and
#: waits for its open connections, as a graceful server must.
STANDIN_APP = '''
import asyncio, json, os


class _Conn(asyncio.Protocol):
    def __init__(self, app):
        self.app, self.buf, self.transport = app, b"", None

    def connection_made(self, transport):
        self.transport = transport
        self.app.conns.add(self)

    def connection_lost(self, exc):
        self.app.conns.discard(self)
        if not self.app.conns and self.app.idle is not None and not self.app.idle.done():
            self.app.idle.set_result(None)

    def data_received(self, data):
        self.buf += data
        if b"\\r\\n\\r\\n" not in self.buf:
            return
        path = self.buf.split(b" ", 2)[1].decode()
        if path.startswith("/crash"):
            os._exit(3)
        delay = 0.0
        if path.startswith("/slow/"):
            delay = float(path[len("/slow/"):])
            print("worker %d got %s" % (os.getpid(), path), flush=True)
        asyncio.get_running_loop().call_later(delay, self.reply, path)

    def reply(self, path):
        body = json.dumps({"worker": os.getpid(), "path": path}).encode()
        self.transport.write(b"HTTP/1.1 200 OK\\r\\nContent-Type: application/json\\r\\n"
                             b"Connection: close\\r\\nContent-Length: %d\\r\\n\\r\\n%s"
                             % (len(body), body))
        self.transport.close()


class App:
    def __init__(self):
        self.conns, self.idle = set(), None

    async def serve(self, sock):
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _Conn(self), sock=sock)
        try:
            await asyncio.Future()
        except asyncio.CancelledError:
            server.close()
            if self.conns:
                self.idle = loop.create_future()
                await self.idle
            raise


app = App()
'''

def _tcp_migrate_req() -> bool:
    try:
        return Path("/proc/sys/net/ipv4/tcp_migrate_req").read_text().strip() == "1"
    except OSError:
        return False


TCP_MIGRATE_REQ = _tcp_migrate_req()
#: cluster.run's log line, or the line ``phaseloop serve`` prints (at any log level).
LISTENING = re.compile(r"(?:listening on |on https?://)127\.0\.0\.1:(\d+)")
STARTED = re.compile(r"worker (\d+) started \(pid (\d+)\)")


class Primary:
    """A primary process and its log (stderr), read by a thread."""

    def __init__(self, args: list[str], cwd: Path, *, port: int | None = None,
                 env: dict[str, str] | None = None) -> None:
        """Start ``python *args`` in ``cwd``; its port is ``port``, or the one its
        ``listening on`` log line (cluster.run's) gives."""
        env = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
        self.proc = subprocess.Popen([sys.executable, *args], cwd=cwd, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port = port if port is not None else int(self.wait_for(LISTENING).group(1))

    def _read(self) -> None:
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()

    @property
    def log(self) -> str:
        with self._cond:
            return "".join(self.lines)

    def wait_for(self, pattern: "re.Pattern[str] | str", count: int = 1,
                 timeout: float = 8.0) -> "re.Match[str]":
        """Wait until ``pattern`` matched ``count`` times in the log; the last match."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = list(rx.finditer("".join(self.lines)))
                if len(found) >= count:
                    return found[count - 1]
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError("no %r (x%d) in the log:\n%s"
                                         % (rx.pattern, count, "".join(self.lines)))
                self._cond.wait(min(left, 0.1))

    def worker_pids(self) -> list[int]:
        return [int(m.group(2)) for m in STARTED.finditer(self.log)]

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 10.0) -> int:
        return self.proc.wait(timeout)

    def close(self) -> None:
        """Make sure nothing is left: the primary and (by session) its workers."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(5)
        self._reader.join(5)


def serve(primaries: list, app_dir: Path, *extra: str, workers: int = 2) -> Primary:
    p = Primary(["-m", "phaseloop", "serve", "standin_app:app", "--workers", str(workers),
                 "--port", "0", *extra], app_dir)
    primaries.append(p)
    return p


def serve_app(primaries: list, spec: str, *extra: str, workers: int = 2,
              env: dict[str, str] | None = None) -> Primary:
    """``phaseloop serve SPEC`` for an app of tests/support/serve_apps/ on port 0."""
    p = Primary(["-m", "phaseloop", "serve", spec, "--workers", str(workers), "--port", "0",
                 *extra], SERVE_APPS, env=env)
    primaries.append(p)
    return p


def get(port: int, path: str = "/", timeout: float = 5.0) -> dict:
    """One HTTP/1.1 request on a new connection; the decoded JSON body."""
    response = fetch(port, path, timeout=timeout)
    assert response.status == 200, response
    return response.json()


def slow_request_in_flight(p: Primary, path: str = "/slow/0.6") -> tuple[threading.Thread, dict]:
    """Start ``GET path`` (one of the apps' ``/slow/<seconds>``) from a thread and
    wait until a worker has it; the thread and where it puts ``body`` or ``error``."""
    result: dict = {}

    def slow() -> None:
        try:
            result["body"] = get(p.port, path)
        except Exception as exc:  # noqa: BLE001 - the caller checks it
            result["error"] = exc

    t = threading.Thread(target=slow)
    t.start()
    p.wait_for("got " + path)   # the request is in a worker now
    return t, result


def get_when_up(port: int, timeout: float = 8.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return get(port)
        except (ConnectionRefusedError, ConnectionResetError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def assert_gone(pids: list[int], timeout: float = 5.0, *, orphans: bool = False) -> None:
    """None of ``pids`` is still a live process (they were reaped by their primary). With
    ``orphans``, zombies count as gone: their primary is dead and init reaps them."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        while True:
            try:
                with open("/proc/%d/stat" % pid) as f:
                    state = f.read().rsplit(")", 1)[1].split()[0]
            except FileNotFoundError:
                break
            if orphans and state == "Z":
                break
            # A pid may be reused by an unrelated process; ours would still be "ours".
            if time.monotonic() > deadline:
                raise AssertionError("worker %d still there (state %s)" % (pid, state))
            time.sleep(0.05)


def wait_workers_ready(p: Primary, n: int) -> set[int]:
    """Until ``n`` distinct live workers have answered (bounded)."""
    seen: set[int] = set()
    deadline = time.monotonic() + 8.0
    while len(seen) < n and time.monotonic() < deadline:
        seen.add(get_when_up(p.port)["worker"])
    return seen


def requests_during_rolling_restart(p: Primary) -> tuple[list[int], list[BaseException]]:
    """SIGHUP ``p`` while a client thread does one request after another, until a moment
    after the restart is done: the pids that answered, in order, and the errors."""
    stop = threading.Event()
    answers: list[int] = []
    errors: list[BaseException] = []

    def client() -> None:
        while not stop.is_set():
            try:
                answers.append(get(p.port)["worker"])
            except Exception as exc:  # noqa: BLE001 - the caller counts them
                errors.append(exc)

    t = threading.Thread(target=client)
    t.start()
    try:
        time.sleep(0.2)
        p.signal(signal.SIGHUP)
        p.wait_for("rolling restart done")
        time.sleep(0.3)
    finally:
        stop.set()
        t.join(5)
    return answers, errors


# ---- low level: fork from a coroutine --------------------------------------------


def assert_reaped(*pids: int) -> None:
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def run_primary(coro_fn):
    """Run the primary's side on a phaseloop loop, bounded."""
    async def bounded():
        return await asyncio.wait_for(coro_fn(), WAIT)
    return phaseloop.run(bounded())


def exit_future(w: cluster.Worker) -> asyncio.Future:
    fut = asyncio.get_running_loop().create_future()
    w.on("exit", lambda code, sig: fut.done() or fut.set_result((code, sig)))
    return fut


async def _sleep() -> None:
    await asyncio.sleep(30)


def end_a_sleeping_worker(end) -> tuple[cluster.Worker, tuple]:
    """Fork a worker that sleeps, call ``end(worker)`` once it is online; the worker
    and its exit event's (code, signal)."""
    async def primary():
        online = asyncio.get_running_loop().create_future()
        cluster.on("online", lambda w: online.done() or online.set_result(w))
        w = cluster.fork(target=_sleep)
        ended = exit_future(w)
        await online
        end(w)
        return w, await ended

    return run_primary(primary)
