"""phaseloop.http App hello world vs uvicorn + uvloop (raw ASGI hello world), under wrk.

Each server is a fresh process; server and wrk (one thread, keep-alive
connections) are pinned to the same CPU (``--cpu``, default 0) so the two
cores of a small machine do not blur the numbers. Servers alternate across
``--repeat`` runs; each run is a 1-second warm-up then a ``--duration``-second
measured wrk run. Reported: median req/s and median p99 latency, and the
ratio phaseloop.http / uvicorn+uvloop.

    python -m benchmarks.http_app                 # 3 repeats x 3 s
    python -m benchmarks.http_app --repeat 5 --duration 5 --connections 50

The two apps answer ``GET /`` with the JSON ``{"hello":"world"}``; the
phaseloop one goes through the App's middleware chain and router.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from typing import Sequence

SERVERS = ("phaseloop.http", "uvicorn+uvloop")


def serve_phaseloop(port: int) -> None:
    import phaseloop
    from phaseloop.http import App

    app = App()

    @app.get("/")
    async def hello(req, res):
        return {"hello": "world"}

    async def main() -> None:
        server = await app.listen(port)
        print(f"ready {server.sockets[0].getsockname()[1]}", flush=True)
        await server.serve_forever()
    phaseloop.run(main())


async def _asgi_hello(scope, receive, send):  # noqa: ANN001 - ASGI signature
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"hello":"world"}'})


def serve_uvicorn(port: int) -> None:
    import uvicorn
    print(f"ready {port}", flush=True)
    uvicorn.run(_asgi_hello, host="127.0.0.1", port=port, loop="uvloop", http="httptools",
                log_level="error", access_log=False)


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(name: str, cpu: str) -> tuple[subprocess.Popen, int]:
    port = free_port()
    cmd = [sys.executable, "-m", "benchmarks.http_app", "--serve", name, "--port", str(port)]
    if cpu != "none" and shutil.which("taskset"):
        cmd = ["taskset", "-c", cpu, *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = proc.stdout.readline().decode()                           # "ready PORT"
    if not line.startswith("ready"):
        proc.kill()
        raise RuntimeError(f"{name} did not start")
    import socket
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:                                # wait until it accepts
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return proc, port


def _to_us(value: str, unit: str) -> float:
    return float(value) * {"us": 1, "ms": 1e3, "s": 1e6}[unit]


def run_wrk(port: int, seconds: int, connections: int, cpu: str) -> dict[str, float]:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency",
           f"http://127.0.0.1:{port}/"]
    if cpu != "none" and shutil.which("taskset"):
        cmd = ["taskset", "-c", cpu, *cmd]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=seconds + 30).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError("wrk saw errors:\n" + out)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    return {"rps": rps, "p99_us": _to_us(p99.group(1), p99.group(2))}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--serve", choices=SERVERS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--duration", type=int, default=3, help="seconds per measured run")
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--cpu", default="0", help="CPU for server and wrk; 'none': unpinned")
    args = parser.parse_args(argv)
    if args.serve == "phaseloop.http":
        serve_phaseloop(args.port)
        return 0
    if args.serve == "uvicorn+uvloop":
        serve_uvicorn(args.port)
        return 0
    if shutil.which("wrk") is None:
        print("wrk not found (apt-get install wrk)", file=sys.stderr)
        return 2
    results: dict[str, list[dict[str, float]]] = {name: [] for name in SERVERS}
    for repeat in range(args.repeat):
        for name in SERVERS:
            proc, port = start(name, args.cpu)
            try:
                run_wrk(port, 1, args.connections, args.cpu)          # warm-up
                result = run_wrk(port, args.duration, args.connections, args.cpu)
            finally:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            results[name].append(result)
            print(f"[{repeat + 1}/{args.repeat}] {name:<15} {result['rps']:>10.0f} req/s  "
                  f"p99 {result['p99_us']:>8.0f} µs", file=sys.stderr, flush=True)
    med = {name: {k: statistics.median(r[k] for r in rs) for k in ("rps", "p99_us")}
           for name, rs in results.items()}
    print(f"wrk -t1 -c{args.connections}, {args.duration}s runs, median of {args.repeat}, "
          f"CPU {args.cpu}, pid {os.getpid()}")
    print(f"{'server':<16}{'req/s':>10}{'p99 µs':>10}")
    for name in SERVERS:
        print(f"{name:<16}{med[name]['rps']:>10.0f}{med[name]['p99_us']:>10.0f}")
    ratio = med["phaseloop.http"]["rps"] / med["uvicorn+uvloop"]["rps"]
    print(f"req/s ratio phaseloop.http / uvicorn+uvloop: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
