"""Smoke tests of the server benchmarks (benchmarks/echo.py, benchmarks/http.py).

``python -m benchmarks.echo --quick`` runs every size and style on asyncio (and on
phaseloop: numbers where it has create_server, ``unsupported`` rows until then)
next to the C floor, and must exit 0 with a row per point.  No assertion is about
speed: the load generator checks every echoed byte, so a broken server makes its
point an error and the exit status 1; one test shows that check firing.
"""
import importlib.util
import json
import shutil
import socket
import subprocess
import sys
import threading

import pytest

from support.paths import REPO_ROOT
SIZES = ("1 KiB", "10 KiB", "100 KiB")
STYLES = ("protocol", "streams", "sock")

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler (cc)")


def scheduling_args() -> list[str]:
    """Pin and batch as the benchmarks do by default, where the tools for it exist."""
    args = [] if shutil.which("taskset") else ["--cpu", "none"]
    return args + ([] if shutil.which("chrt") else ["--client-policy", "normal"])


def phaseloop_serves_tcp() -> bool | None:
    """Whether phaseloop's create_server works (None: phaseloop does not import)."""
    probe = ("import asyncio, phaseloop\n"
             "loop = phaseloop.new_event_loop()\n"
             "try:\n"
             "    server = loop.run_until_complete(\n"
             "        loop.create_server(asyncio.Protocol, '127.0.0.1', 0))\n"
             "except NotImplementedError:\n"
             "    raise SystemExit(4)\n"
             "server.close()\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=30,
                          check=False)
    return {0: True, 4: False}.get(done.returncode)


def table_row(stdout: str, size: str, style: str, loop_name: str) -> str:
    """The one table line of (size, style, loop)."""
    rows = [line for line in stdout.splitlines()
            if line.startswith(size + " ") and line.split()[2:4] == [style, loop_name]]
    assert len(rows) == 1, f"no single row for {size} {style} {loop_name}:\n{stdout}"
    return rows[0]


def test_quick_echo_run_reports_every_point(tmp_path):
    tcp = phaseloop_serves_tcp()
    loops = ["asyncio"] + ([] if tcp is None else ["phaseloop"])
    json_path = tmp_path / "echo.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.echo", "--quick", "--loops", ",".join(loops),
         "--json", str(json_path), *scheduling_args()],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr

    for size in SIZES:
        floor = table_row(done.stdout, size, "floor", "c-epoll")
        assert "error" not in floor and "unsupported" not in floor, floor
        for style in STYLES:
            row = table_row(done.stdout, size, style, "asyncio")
            assert "error" not in row and "unsupported" not in row, row
            if tcp is not None:
                row = table_row(done.stdout, size, style, "phaseloop")
                assert "error" not in row, row
                if style != "sock":  # sock_* may come before or after create_server
                    assert ("unsupported" in row) == (not tcp), row

    results = json.loads(json_path.read_text())
    measured = {(p["size"], p["style"], p["loop"]): p for p in results["echo"]}
    for size in (1024, 10240, 102400):
        for style, loop_name in [("floor", "c-epoll")] + [(s, "asyncio") for s in STYLES]:
            point = measured[(size, style, loop_name)]
            assert point["status"] == "ok", point
            assert len(point["samples"]) == 1
            assert point["median"]["rps"] > 0 and point["median"]["server_us"] > 0, point
    memory = {(p["style"], p["loop"]): p for p in results["idle_memory"]}
    for style in STYLES:
        point = memory[(style, "asyncio")]
        assert point["status"] == "ok" and len(point["bytes_per_connection"]) == 1, point


def test_load_generator_rejects_a_wrong_echo():
    from benchmarks.harness import LOADGEN_SOURCE, build_tool

    loadgen = build_tool(LOADGEN_SOURCE)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        def serve_one_wrong_echo():
            conn, _ = listener.accept()
            with conn:
                data = b""
                while len(data) < 100:
                    data += conn.recv(100 - len(data))
                conn.sendall(data[:50] + bytes([data[50] ^ 1]) + data[51:])
                conn.recv(1)  # until the generator hangs up

        server = threading.Thread(target=serve_one_wrong_echo, daemon=True)
        server.start()
        done = subprocess.run(
            [str(loadgen), "--port", str(listener.getsockname()[1]), "--connections", "1",
             "--size", "100", "--warmup", "0", "--duration", "2", "--timeout", "2"],
            capture_output=True, text=True, timeout=30, check=False)
        server.join(5)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "byte 50" in json.loads(done.stdout.strip().splitlines()[-1])["error"]


@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk")
@pytest.mark.skipif(importlib.util.find_spec("httptools") is None, reason="needs httptools")
@pytest.mark.parametrize("loop_name, tls", [("asyncio", False), ("phaseloop", True)],
                         ids=["http-asyncio", "https-phaseloop"])
def test_quick_http_run(tmp_path, loop_name, tls):
    if tls and shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    json_path = tmp_path / "http.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.http", "--quick", "--loops", loop_name,
         "--json", str(json_path), *scheduling_args(), *(["--tls"] if tls else [])],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line for line in done.stdout.splitlines() if line.split()[:1] == [loop_name]]
    assert len(rows) == 1 and "error" not in rows[0], done.stdout
    result = json.loads(json_path.read_text())["results"][loop_name]
    assert result["status"] == "ok" and result["median"]["rps"] > 0, result
