"""examples/node_guide/: the Node backend guide's six programs, ported line by line.

Each Python port runs as a real program (subprocess). Where Node can run the
original here (`node` on PATH; express and express-rate-limit are not
installed, so not the cluster and rate-limit ones), the original runs too and
must print the same lines and exit with the same status.
"""
from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support.paths import EXAMPLES as EXAMPLES_DIR

from support.cluster import Primary, assert_gone, get_when_up

EXAMPLES = EXAMPLES_DIR / "node_guide"
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not on PATH")
pytestmark = pytest.mark.timeout(60)


def run_program(argv: list[str], cwd: Path = EXAMPLES) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=30)


def python(name: str, *args: str, cwd: Path = EXAMPLES) -> subprocess.CompletedProcess:
    return run_program([sys.executable, str(EXAMPLES / name), *args], cwd)


def node(name: str, *args: str, cwd: Path = EXAMPLES) -> subprocess.CompletedProcess:
    return run_program([NODE, str(EXAMPLES / name), *args], cwd)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_every_port_has_its_original_and_the_readme_names_them():
    ports = sorted(p.stem for p in EXAMPLES.glob("*.py"))
    originals = sorted(p.stem for p in [*EXAMPLES.glob("*.js"), *EXAMPLES.glob("*.mjs")])
    assert ports == originals == ["cluster_workers", "error_handlers", "event_loop_phases",
                                  "middleware_compose", "rate_limit", "stream_pipeline"]
    readme = (EXAMPLES / "README.md").read_text()
    assert all(f"{name}.py" in readme for name in ports)


EVENT_LOOP_LINES = [
    "main script",
    "microtask (process.nextTick)",
    "microtask (promise)",
    "poll: the file read completes",
    "microtask queued in the poll callback",
    "check: setImmediate",
    "timers: setTimeout(0)",
]


def test_event_loop_phases():
    done = python("event_loop_phases.py")
    assert (done.returncode, done.stdout.splitlines()) == (0, EVENT_LOOP_LINES), done.stderr


@needs_node
def test_event_loop_phases_as_in_node():
    done = node("event_loop_phases.js")
    assert (done.returncode, done.stdout.splitlines()) == (0, EVENT_LOOP_LINES), done.stderr


TEXT = "héllo wörld, straße — naïve café: ünïcödé\n" * 200


def test_stream_pipeline(tmp_path):
    (tmp_path / "input.txt").write_text(TEXT, encoding="utf-8")
    done = python("stream_pipeline.py", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "output.txt").read_text(encoding="utf-8") == TEXT.upper()


@needs_node
def test_stream_pipeline_as_in_node(tmp_path):
    (tmp_path / "input.txt").write_text(TEXT, encoding="utf-8")
    assert node("stream_pipeline.mjs", cwd=tmp_path).returncode == 0
    assert (tmp_path / "output.txt").read_text(encoding="utf-8") == TEXT.upper()


MIDDLEWARE_LINES = ["GET /", "-> hello ada", "GET /private", "-> who are you?"]


def test_middleware_compose():
    done = python("middleware_compose.py")
    assert (done.returncode, done.stdout.splitlines()) == (0, MIDDLEWARE_LINES), done.stderr


@needs_node
def test_middleware_compose_as_in_node():
    done = node("middleware_compose.mjs")
    assert (done.returncode, done.stdout.splitlines()) == (0, MIDDLEWARE_LINES), done.stderr


ERRORS = {"": "Uncaught Exception: boom", "rejection": "Unhandled Rejection: nobody awaited me"}


@pytest.mark.parametrize("trigger", sorted(ERRORS))
def test_error_handlers_log_and_exit_1(trigger):
    done = python("error_handlers.py", *filter(None, [trigger]))
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""                      # "still running" never comes
    assert done.stderr.splitlines() == [ERRORS[trigger]]


@needs_node
@pytest.mark.parametrize("trigger", sorted(ERRORS))
def test_error_handlers_as_in_node(trigger):
    ours = python("error_handlers.py", *filter(None, [trigger]))
    theirs = node("error_handlers.mjs", *filter(None, [trigger]))
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout) == (1, "")
    assert ours.stderr.splitlines() == theirs.stderr.splitlines() == [ERRORS[trigger]]


def request(port: int, path: str) -> tuple[int, str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.getheader("content-type") or "", r.read().decode()
    finally:
        conn.close()


def wait_until_up(port: int, path: str) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            request(port, path)
            return
        except (ConnectionRefusedError, ConnectionResetError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_rate_limit(primaries):  # noqa: F811 - the fixture
    port = free_port()
    p = Primary([str(EXAMPLES / "rate_limit.py")], EXAMPLES, port=port, env={"PORT": str(port)})
    primaries.append(p)
    wait_until_up(port, "/health")
    for _ in range(100):
        assert request(port, "/api/notes")[0] == 200
    assert request(port, "/api/notes") == (429, "text/plain; charset=utf-8", "Too many requests")
    assert request(port, "/health")[0] == 200               # not under /api/
    p.signal(signal.SIGTERM)
    p.wait()


def test_cluster_workers_share_one_port_and_are_restarted(primaries):  # noqa: F811
    port = free_port()
    p = Primary([str(EXAMPLES / "cluster_workers.py")], EXAMPLES, port=port,
                env={"PORT": str(port), "WORKERS": "2"})
    primaries.append(p)
    primary_pid = int(p.wait_for(r"Primary (\d+) starting 2 workers").group(1))
    assert primary_pid == p.proc.pid
    # Both workers called app.listen(PORT): both answer on that one port.
    seen: set[int] = set()
    for _ in range(200):
        seen.add(get_when_up(port)["worker"])
        if len(seen) == 2:
            break
    assert len(seen) == 2, p.log
    victim = min(seen)
    os.kill(victim, signal.SIGKILL)
    p.wait_for(rf"Worker {victim} died, restarting\.\.\.")
    fresh: set[int] = set()
    deadline = time.monotonic() + 10
    while not fresh and time.monotonic() < deadline:
        pid = get_when_up(port)["worker"]
        if pid not in seen:
            fresh.add(pid)
    assert fresh, p.log
    # The primary goes (SIGTERM's default action): the workers do not outlive it.
    p.signal(signal.SIGTERM)
    assert p.wait() == -signal.SIGTERM
    assert_gone(sorted(seen - {victim} | fresh), timeout=10, orphans=True)
