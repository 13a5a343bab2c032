"""A FastAPI app on ``phaseloop serve`` vs gunicorn + uvicorn's worker vs uvicorn --workers.

``python -m benchmarks.asgi [--repeat 3] [--duration 5] [--connections 64] [--quick]``
serves ``benchmarks.asgi_app:app`` (FastAPI: ``GET /hello`` and ``POST /echo``,
a pydantic-validated JSON body sent back) with 2 worker processes each way:

- ``phaseloop``: ``phaseloop serve --workers 2`` (uvicorn's httptools protocol
  on phaseloop's loop in each worker, round-robin from the primary);
- ``gunicorn``: ``gunicorn -k uvicorn.workers.UvicornWorker -w 2`` (uvloop and
  httptools where installed, as that worker picks them);
- ``uvicorn``: ``uvicorn --workers 2 --loop uvloop --http httptools``.

Each server is started once per repeat and driven by ``wrk -t1 --latency``
(the same 64 keep-alive connections) for each endpoint, after a 1 s warm-up;
servers are interleaved repeat after repeat, and the table gives the median
req/s and p99 over the repeats (from the same wrk runs) and, for phaseloop,
the ratio to the best of the other two. Access logs are off everywhere.
Nothing is pinned: the workers are meant to spread over the cores, and wrk
takes one of them too (on a 2-core machine 2 workers cannot double anything).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from benchmarks.cluster import running_server, warm_and_measure
from benchmarks.harness import free_port

__all__ = ["main"]

SERVERS = ("phaseloop", "gunicorn", "uvicorn")
ENDPOINTS = ("hello", "echo")
WORKERS = 2
APP = "benchmarks.asgi_app:app"
ECHO_SCRIPT = Path(__file__).resolve().parent / "asgi_echo.lua"


def command(server: str, port: int) -> list[str]:
    if server == "phaseloop":
        return [sys.executable, "-m", "phaseloop", "serve", APP, "--workers", str(WORKERS),
                "--port", str(port), "--no-access-log", "--log-level", "warning"]
    if server == "gunicorn":
        return [sys.executable, "-m", "gunicorn", APP, "-k", "uvicorn.workers.UvicornWorker",
                "-w", str(WORKERS), "-b", f"127.0.0.1:{port}", "--log-level", "warning"]
    return [sys.executable, "-m", "uvicorn", APP, "--workers", str(WORKERS), "--loop", "uvloop",
            "--http", "httptools", "--no-access-log", "--log-level", "warning",
            "--host", "127.0.0.1", "--port", str(port)]


def measure_server(server: str, seconds: int, connections: int) -> dict[str, dict[str, float]]:
    """Both endpoints of one fresh server."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running_server(command(server, port), port):
        return {"hello": warm_and_measure(base + "/hello", seconds, connections),
                "echo": warm_and_measure(base + "/echo", seconds, connections,
                                         ["-s", str(ECHO_SCRIPT)])}


def summarize(samples: dict[tuple[str, str], list[dict[str, float]]]) -> list[dict[str, Any]]:
    rows = []
    for endpoint in ENDPOINTS:
        medians = {}
        for server in SERVERS:
            runs = samples.get((server, endpoint))
            if not runs:
                continue
            medians[server] = {
                "rps": statistics.median(r["rps"] for r in runs),
                "p99_ms": statistics.median(r["p99_us"] for r in runs) / 1000,
                "errors": sum(r["errors"] for r in runs), "runs": [r["rps"] for r in runs]}
        others = [m["rps"] for s, m in medians.items() if s != "phaseloop"]
        for server, m in medians.items():
            ratio = None
            if server == "phaseloop" and others:
                ratio = m["rps"] / max(others)
            rows.append({"endpoint": endpoint, "server": server, **m, "ratio_to_best": ratio})
    return rows


def table(rows: list[dict[str, Any]], markdown: bool) -> str:
    header = ("endpoint", "server", "req/s", "p99 ms", "phaseloop ÷ best other", "errors")
    lines = []
    for r in rows:
        ratio = "%.2fx" % r["ratio_to_best"] if r["ratio_to_best"] is not None else ""
        lines.append((r["endpoint"], r["server"], "{:,.0f}".format(r["rps"]),
                      "%.1f" % r["p99_ms"], ratio, str(r["errors"])))
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|---|---|---:|---:|---:|---:|"]
        out += ["| " + " | ".join(line) + " |" for line in lines]
        return "\n".join(out)
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(line, widths))
                     for line in [header, *lines])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.asgi",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--servers", default=",".join(SERVERS),
                        help="comma-separated, of: " + ", ".join(SERVERS))
    parser.add_argument("--quick", action="store_true", help="one 1 s run per point")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--json", metavar="FILE", help="write every sample there")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    servers = [s for s in args.servers.split(",") if s]
    unknown = set(servers) - set(SERVERS)
    if unknown:
        parser.error("unknown servers: " + ", ".join(sorted(unknown)))
    repeat, seconds = (1, 1) if args.quick else (args.repeat, args.duration)
    samples: dict[tuple[str, str], list[dict[str, float]]] = {}
    for _ in range(repeat):
        for server in servers:
            for endpoint, result in measure_server(server, seconds, args.connections).items():
                samples.setdefault((server, endpoint), []).append(result)
    rows = summarize(samples)
    print(f"FastAPI app, {WORKERS} workers each, wrk -t1 -c{args.connections} -d{seconds}s, "
          f"median of {repeat}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}")
    print(table(rows, args.markdown))
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "samples": {
            f"{s}/{e}": runs for (s, e), runs in samples.items()}}, indent=2))
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
