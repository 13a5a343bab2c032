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
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from typing import Sequence

from benchmarks.harness import (
    Server,
    cpus_to_pin,
    free_port,
    pinned,
    say_ready,
    start_server,
    stop_server,
)
from benchmarks.wrk import parse_wrk_output, wrk_command

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
        say_ready(server.sockets[0].getsockname()[1])
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
    say_ready(port)  # before uvicorn binds: start() waits until the port accepts
    uvicorn.run(_asgi_hello, host="127.0.0.1", port=port, loop="uvloop", http="httptools",
                log_level="error", access_log=False)


def start(name: str, cpu: str | None) -> Server:
    """The server ``name`` on a free port, pinned to ``cpu``, once it accepts connections."""
    server = start_server([sys.executable, "-m", "benchmarks.http_app", "--serve", name,
                           "--port", str(free_port())], cpu)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:                                # wait until it accepts
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    return server


def run_wrk(port: int, seconds: int, connections: int, cpu: str | None) -> dict[str, float]:
    command = pinned(wrk_command(f"http://127.0.0.1:{port}/", connections, seconds), cpu)
    out = subprocess.run(command, capture_output=True, text=True, check=True,
                         timeout=seconds + 30).stdout
    result = parse_wrk_output(out)
    if result["errors"]:
        raise RuntimeError("wrk saw errors:\n" + out)
    return {"rps": result["rps"], "p99_us": result["p99_us"]}


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
    cpu = cpus_to_pin(args.cpu)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in SERVERS}
    for repeat in range(args.repeat):
        for name in SERVERS:
            server = start(name, cpu)
            try:
                run_wrk(server.port, 1, args.connections, cpu)          # warm-up
                result = run_wrk(server.port, args.duration, args.connections, cpu)
            finally:
                stop_server(server, signal.SIGINT, 5)
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
