"""phaseloop.cluster.run and ``phaseloop serve``: real primaries in subprocesses.

Each test starts a primary (``python -m phaseloop serve`` or a small script calling
``cluster.run``) on 127.0.0.1 with port 0, reads the bound port and the worker pids
from its log, talks HTTP to it over real sockets, signals it, and checks that it exits
with the right status and that none of its workers is left running.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from support.cluster import (STARTED, TCP_MIGRATE_REQ, Primary, assert_gone, get, get_when_up,
                             requests_during_rolling_restart, serve, slow_request_in_flight,
                             wait_workers_ready)

pytestmark = [pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
              pytest.mark.timeout(30)]

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
    t, result = slow_request_in_flight(p)
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
        print("worker %d closed its listener" % os.getpid(), flush=True)
    await asyncio.Future()

sys.exit(cluster.run(worker_main, workers=2, listen=[("127.0.0.1", 0)],
                     scheduling="round_robin"))
'''


SLOW_START_SCRIPT = '''
import asyncio, os, sys, time
from phaseloop import cluster
import phaseloop.cluster.child as child
import logging
logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s")

clear_listeners = child.remove_all_listeners

def slow_start():
    # In the new worker before its loop runs: a start-up that takes a while
    # (imports, configuration), the moment a Ctrl-C can arrive.
    # One string, so one write: stdout is unbuffered and print() writes each of
    # its arguments apart, which the other worker's output can split.
    print("worker %d starting" % os.getpid(), flush=True)
    time.sleep(1.0)
    clear_listeners()

child.remove_all_listeners = slow_start

async def worker_main(sockets):
    await asyncio.Future()

sys.exit(cluster.run(worker_main, workers=2, listen=[("127.0.0.1", 0)]))
'''


def test_ctrl_c_while_the_workers_start_stops_them_gracefully(primaries, tmp_path):
    """Ctrl-C reaches every process of the group. A worker ignores it from the fork
    on and stops when the primary asks, exit code 0; it used to die of the SIGINT
    when it came before the worker's loop had started."""
    script = tmp_path / "slow_start.py"
    script.write_text(SLOW_START_SCRIPT)
    p = Primary([str(script)], tmp_path)
    primaries.append(p)
    p.wait_for(r"worker \d+ starting", 2)
    os.killpg(p.proc.pid, signal.SIGINT)         # what a terminal's Ctrl-C does
    assert p.wait() == 0, p.log
    assert p.log.count("stopped (exit code 0)") == 2, p.log
    assert_gone(p.worker_pids())


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
