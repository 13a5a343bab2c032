"""The cluster example under wrk: phaseloop serve vs uvicorn + uvloop, 1 and 2 workers.

``python -m benchmarks.cluster [--repeat 3] [--duration 5] [--connections 64] [--quick]``
starts, for each worker count, ``phaseloop serve examples.cluster_app:app
--scheduling round_robin`` (phaseloop.http.App; PHASELOOP_SCHEDULING picks
another mode) and ``uvicorn
benchmarks.cluster_asgi:app --loop uvloop --http httptools`` (the same
handler as bare ASGI), drives each with ``wrk -t1 --latency`` for the given
seconds after a 1 s warm-up, interleaved over the repeats, and prints median
req/s and p99 with the ratio to uvicorn + uvloop at the same worker count.
Nothing is pinned: the point is the workers spreading over cores (on a
2-core machine wrk takes one of them, so 2 workers cannot double). wrk opens
its keep-alive connections once, at the start: in ``shared`` mode one worker
can accept most of them and carry the whole run, which is why the default
here is round_robin.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from typing import Iterator, Sequence

from benchmarks.harness import REPO_ROOT, free_port, stop_process
from benchmarks.tables import format_ratio, format_table
from benchmarks.wrk import parse_wrk_output, wrk_command

SERVERS = ("phaseloop", "uvicorn+uvloop")
SCHEDULING = os.environ.get("PHASELOOP_SCHEDULING", "round_robin")


def command(server: str, workers: int, port: int) -> list[str]:
    if server == "phaseloop":
        return [sys.executable, "-m", "phaseloop", "serve", "examples.cluster_app:app",
                "--workers", str(workers), "--host", "127.0.0.1", "--port", str(port),
                "--log-level", "warning", "--scheduling", SCHEDULING]
    return [sys.executable, "-m", "uvicorn", "benchmarks.cluster_asgi:app", "--loop", "uvloop",
            "--http", "httptools", "--no-access-log", "--log-level", "warning",
            "--workers", str(workers), "--host", "127.0.0.1", "--port", str(port)]


def wait_ready(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(100).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server on port {port} did not answer within {timeout} s")


@contextlib.contextmanager
def running_server(command_line: Sequence[str], port: int) -> Iterator[subprocess.Popen]:
    """A server started from the repository's root with ``command_line``, once it
    answers ``GET /`` on ``port``; stopped with SIGINT (Ctrl-C) to its process group
    after, none of its processes left behind."""
    proc = subprocess.Popen(list(command_line), cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_ready(port)
        yield proc
    finally:
        stop_process(proc, signal.SIGINT, 15, group=True)


def warm_and_measure(url: str, seconds: int, connections: int,
                     extra: Sequence[str] = ()) -> dict[str, float]:
    """A 1 s warm-up, then ``wrk -t1 --latency`` for ``seconds``; its numbers
    (benchmarks.wrk.parse_wrk_output). ``extra``: more wrk arguments (``-s script``)."""
    subprocess.run(wrk_command(url, connections, 1, latency=False, extra=extra),
                   capture_output=True, check=False)
    done = subprocess.run(wrk_command(url, connections, seconds, extra=extra),
                          capture_output=True, text=True, check=False)
    return parse_wrk_output(done.stdout)


def measure(server: str, workers: int, seconds: int, connections: int) -> dict[str, float]:
    port = free_port()
    with running_server(command(server, workers, port), port):
        return warm_and_measure(f"http://127.0.0.1:{port}/", seconds, connections)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cluster",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--quick", action="store_true", help="one 1 s run per point")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    repeat, seconds = (1, 1) if args.quick else (args.repeat, args.duration)
    counts = [int(w) for w in args.workers.split(",")]
    samples: dict[tuple[str, int], list[dict[str, float]]] = {}
    for _ in range(repeat):
        for workers in counts:
            for server in SERVERS:
                samples.setdefault((server, workers), []).append(
                    measure(server, workers, seconds, args.connections))
    print(f"cluster example, wrk -t1 -c{args.connections} -d{seconds}s, median of {repeat}, "
          f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}")
    rows = []
    for workers in counts:
        ref = statistics.median(s["rps"] for s in samples[("uvicorn+uvloop", workers)])
        for server in SERVERS:
            runs = samples[(server, workers)]
            rps = statistics.median(s["rps"] for s in runs)
            p99 = statistics.median(s["p99_us"] for s in runs) / 1000
            errors = sum(s["errors"] for s in runs)
            rows.append((server, workers, rps, p99, rps / ref, errors))
    if args.markdown:
        print(format_table(["server", "workers", "req/s", "p99 ms", "÷ uvicorn+uvloop", "errors"],
                           [[r[0], str(r[1]), f"{r[2]:,.0f}", f"{r[3]:.1f}", format_ratio(r[4]),
                             str(r[5])] for r in rows], markdown=True))
    else:
        for r in rows:
            print(f"{r[0]:>16} {r[1]} worker(s) {r[2]:9,.0f} req/s  p99 {r[3]:6.1f} ms  "
                  f"{r[4]:.2f}x  errors {r[5]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
