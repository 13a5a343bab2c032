"""phaseloop.cluster.run and ``phaseloop serve``: real primaries in subprocesses.

Each test starts a primary (``python -m phaseloop serve`` or a small script calling
``cluster.run``) on 127.0.0.1 with port 0, reads the bound port and the worker pids
from its log, talks HTTP to it over real sockets, signals it, and checks that it exits
with the right status and that none of its workers is left running.
"""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
              pytest.mark.timeout(30)]

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
LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
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


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "standin_app.py").write_text(STANDIN_APP)
    return tmp_path


@pytest.fixture
def primaries():
    started: list[Primary] = []
    yield started
    for p in started:
        p.close()
    for p in started:   # a primary killed by a signal could not reap its workers
        assert_gone(p.worker_pids(), orphans=p.proc.returncode < 0)


def serve(primaries: list, app_dir: Path, *extra: str, workers: int = 2) -> Primary:
    p = Primary(["-m", "phaseloop", "serve", "standin_app:app", "--workers", str(workers),
                 "--port", "0", *extra], app_dir)
    primaries.append(p)
    return p


def get(port: int, path: str = "/", timeout: float = 5.0) -> dict:
    """One HTTP/1.1 request on a new connection; the decoded JSON body."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % path.encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), data
    return json.loads(body)


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


@pytest.mark.parametrize("scheduling", ["shared", "reuse_port", "round_robin"])
def test_serve_each_mode_then_sigterm(primaries, app_dir, scheduling):
    p = serve(primaries, app_dir, "--scheduling", scheduling)
    p.wait_for(STARTED, 2)
    pids = set(p.worker_pids())
    seen = {get_when_up(p.port)["worker"] for _ in range(40)}
    assert seen <= pids
    if scheduling != "shared":    # shared: the kernel may give them all to one worker
        assert seen == pids
    p.signal(signal.SIGTERM)
    assert p.wait() == 0, p.log
    assert p.log.count("stopped (exit code 0)") == 2, p.log
    assert_gone(sorted(pids))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("scheduling", ["shared", "round_robin"])
def test_shutdown_finishes_requests_in_flight(primaries, app_dir, scheduling, sig):
    p = serve(primaries, app_dir, "--scheduling", scheduling, "--drain-timeout", "5")
    get_when_up(p.port)
    result: dict = {}

    def slow() -> None:
        try:
            result["body"] = get(p.port, "/slow/0.6")
        except Exception as exc:  # noqa: BLE001 - checked below
            result["error"] = exc

    t = threading.Thread(target=slow)
    t.start()
    p.wait_for("got /slow/0.6")   # the request is in a worker now
    p.signal(sig)
    t.join(5)
    assert "error" not in result, result
    assert result["body"]["path"] == "/slow/0.6"
    assert p.wait() == 0, p.log
    with pytest.raises(OSError):
        get(p.port, timeout=1)    # nobody listens any more


@pytest.mark.parametrize("scheduling", ["shared", "reuse_port", "round_robin"])
def test_sighup_rolling_restart_drops_no_request(primaries, app_dir, scheduling):
    p = serve(primaries, app_dir, "--scheduling", scheduling)
    before = wait_workers_ready(p, 2)
    answers, errors = requests_during_rolling_restart(p)
    if scheduling == "reuse_port" and not TCP_MIGRATE_REQ:
        # Closing a SO_REUSEPORT listener resets the connections still in its accept
        # queue unless net.ipv4.tcp_migrate_req=1 (docs/cluster.md): a few may fail.
        assert all(isinstance(e, ConnectionResetError) for e in errors), errors
        assert len(errors) <= 3, errors
    else:
        assert not errors, (errors[:3], p.log)
    after = set(answers[-20:])
    assert len(answers) > 20
    assert not (after & before), "old workers still answer after the restart"
    assert p.log.count("stopped (exit code 0)") == 2, p.log
    assert "unexpectedly" not in p.log, p.log
    assert_gone(sorted(before))    # reaped by the live primary: no zombies
    p.signal(signal.SIGTERM)
    assert p.wait() == 0, p.log


def test_dead_worker_is_logged_and_replaced(primaries, app_dir):
    p = serve(primaries, app_dir, "--scheduling", "round_robin")
    first = wait_workers_ready(p, 2)
    with socket.create_connection(("127.0.0.1", p.port), timeout=5) as s:
        s.sendall(b"GET /crash HTTP/1.1\r\nHost: t\r\n\r\n")
        try:
            assert s.recv(100) == b""     # the worker died: no answer
        except ConnectionResetError:
            pass
    m = p.wait_for(r"worker \d+ \(pid (\d+)\) died unexpectedly \(exit code 3\)")
    assert int(m.group(1)) in first
    assert_gone([int(m.group(1))])   # reaped by the live primary: no zombie
    p.wait_for(STARTED, 3)
    p.wait_for("restarting a worker in 0.10 s")
    now = wait_workers_ready(p, 2)
    assert len(now) == 2 and now != first
    p.signal(signal.SIGTERM)
    assert p.wait() == 0, p.log


def test_round_robin_hands_a_dead_workers_queued_connections_to_another(primaries, app_dir):
    """Connections sent to a worker that dies before receiving them are not lost:
    the primary reads them back from the hand-off channel and sends them on."""
    p = serve(primaries, app_dir, "--scheduling", "round_robin")
    pids = wait_workers_ready(p, 2)
    assert len(pids) == 2
    stuck = min(pids)
    answers: list[int] = []
    errors: list[BaseException] = []

    def client() -> None:
        try:
            answers.append(get(p.port, timeout=15)["worker"])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    os.kill(stuck, signal.SIGSTOP)      # it receives nothing from now on
    threads = [threading.Thread(target=client) for _ in range(6)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 8
        while len(answers) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(answers) == 3, (answers, errors)   # the other three wait for `stuck`
    finally:
        os.kill(stuck, signal.SIGKILL)
        for t in threads:
            t.join(20)
    assert not errors, (errors, p.log)
    assert len(answers) == 6 and stuck not in answers, answers
    p.wait_for(r"3 connection\(s\) sent to worker \d+ \(pid %d\) before it died go to other "
               r"workers" % stuck, timeout=3)
    assert_gone([stuck])
    p.signal(signal.SIGTERM)
    assert p.wait() == 0, p.log


def test_killed_worker_signal_is_logged(primaries, app_dir):
    p = serve(primaries, app_dir, workers=1)
    pid = get_when_up(p.port)["worker"]
    os.kill(pid, signal.SIGKILL)
    p.wait_for(r"worker 1 \(pid %d\) died unexpectedly \(signal SIGKILL\)" % pid)
    assert get_when_up(p.port)["worker"] != pid
    assert_gone([pid])
    p.signal(signal.SIGTERM)
    assert p.wait() == 0, p.log


RUN_SCRIPT = '''
import asyncio, os, sys
from phaseloop import cluster
import logging
logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s")

async def worker_main(sockets):
    assert cluster.is_worker and len(sockets) == 2
    await asyncio.sleep(0.05)
    raise RuntimeError("worker_main fails (on purpose)")

code = cluster.run(worker_main, workers=2, listen=[("127.0.0.1", 0), ("127.0.0.1", 0)],
                   max_restarts=3, restart_window=30, backoff_initial=0.01, backoff_max=0.05)
print("primary exit status", code, flush=True)
sys.exit(code)
'''


CLOSING_SCRIPT = '''
import asyncio, os, sys
from phaseloop import cluster
import logging
logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s")

class Answer(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        body = b'{"worker": %d}' % os.getpid()
        self.transport.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\n"
                             b"Connection: close\\r\\n\\r\\n%s" % (len(body), body))
        self.transport.close()

async def worker_main(sockets):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Answer, sock=sockets[0])
    if cluster.worker.id == 1:
        await asyncio.sleep(0.5)
        server.close()             # closes its cluster.Listener; the process lives on
        print("worker", os.getpid(), "closed its listener", flush=True)
    await asyncio.Future()

sys.exit(cluster.run(worker_main, workers=2, listen=[("127.0.0.1", 0)],
                     scheduling="round_robin"))
'''


def test_round_robin_skips_a_worker_that_closed_its_listener(primaries, tmp_path):
    """Listener.close() in a live worker: the primary sends it nothing more."""
    script = tmp_path / "closing.py"
    script.write_text(CLOSING_SCRIPT)
    p = Primary([str(script)], tmp_path)
    primaries.append(p)
    closed = int(p.wait_for(r"worker (\d+) closed its listener").group(1))
    answers = [get(p.port)["worker"] for _ in range(10)]
    assert closed not in answers and len(set(answers)) == 1, answers
    os.kill(closed, 0)                        # still alive, only out of the rotation
    p.signal(signal.SIGTERM)
    assert p.wait() == 0, p.log


def test_too_many_deaths_stop_the_primary(primaries, tmp_path):
    script = tmp_path / "crashing.py"
    script.write_text(RUN_SCRIPT)
    p = Primary([str(script)], tmp_path)
    primaries.append(p)
    assert p.wait() == 1, p.log
    assert "4 workers died within 30 s (limit 3): giving up on restarts" in p.log
    assert "primary exit status 1" in p.log
    assert p.log.count("died unexpectedly (exit code 1)") >= 4
    # 2 workers + at most 3 restarts (a restart still waiting out its backoff when the
    # limit is hit does not happen)
    assert 4 <= len(p.worker_pids()) <= 5


def test_cli_errors(tmp_path):
    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "phaseloop", *args], cwd=tmp_path,
                              capture_output=True, text=True, timeout=20)
    r = cli("serve", "no_such_module:app")
    assert r.returncode == 2 and "cannot load" in r.stderr
    r = cli("serve", "no_colon")
    assert r.returncode == 2 and "module:attribute" in r.stderr
    (tmp_path / "notapp.py").write_text("app = object()\n")
    r = cli("serve", "notapp:app")
    assert r.returncode == 2 and "serve(sock=...)" in r.stderr
    r = cli("serve", "notapp:app", "--scheduling", "nope")
    assert r.returncode == 2


def test_load_app(tmp_path, monkeypatch):
    from phaseloop.__main__ import load_app
    (tmp_path / "pkg_for_load.py").write_text("class A:\n    class B:\n        x = 1\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_app("pkg_for_load:A.B").x == 1
    with pytest.raises(ValueError):
        load_app(":app")


@pytest.mark.parametrize("scheduling", ["shared", "round_robin"])
def test_workers_exit_when_the_primary_is_killed(primaries, app_dir, scheduling):
    p = serve(primaries, app_dir, "--scheduling", scheduling)
    pids = wait_workers_ready(p, 2)
    os.kill(p.proc.pid, signal.SIGKILL)      # the primary only, not its workers
    assert p.wait() == -signal.SIGKILL
    assert_gone(sorted(pids), orphans=True)  # they noticed and stopped: no orphans


def test_no_restart_primary_exits_when_last_worker_dies(primaries, app_dir):
    p = serve(primaries, app_dir, "--no-restart", workers=1)
    pid = get_when_up(p.port)["worker"]
    os.kill(pid, signal.SIGKILL)
    assert p.wait() == 1, p.log
    assert "died unexpectedly (signal SIGKILL)" in p.log
    assert "no workers left" in p.log
    assert "restarting" not in p.log
