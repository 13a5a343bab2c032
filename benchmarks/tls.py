"""TLS cost per loop: echo round trips, handshakes, memory per idle TLS connection.

``python -m benchmarks.tls [--repeat R] [--seconds S] [--idle-connections N] [--markdown]``

The C load generator of ``benchmarks.echo`` speaks no TLS, and a Python TLS
client in another process would be the bottleneck. So each run is one child
process, pinned to one CPU, whose loop runs both ends: a TLS echo server
(``create_server(ssl=...)``, a plain echo Protocol) and ``--connections``
clients (``create_connection(ssl=...)``) that each send a message, wait for
all of it to come back and send the next, for ``--seconds``. Every TLS record
is therefore encrypted and decrypted by the loop under test, twice per round
trip; the figure is the loop's whole TLS stack (uvloop: its own Cython
SSLProtocol; phaseloop: its compiled SSLTransport; asyncio: ``sslproto``)
plus its transports. The handshake line opens, handshakes (ECDSA P-256,
TLS 1.3) and closes one connection at a time.

Reported per point: round trips (or handshakes) per second, the child's CPU
time per operation, the median over ``--repeat`` interleaved runs and the
ratio to uvloop from the same run. The certificate is made at start with the
``openssl`` command.

Memory per idle TLS connection: a ``benchmarks.servers --style tls-echo``
server (pinned like the runs) gets 100 TLS connections (warm-up), then
``--idle-connections`` more, opened and handshaken by this process with
Python's blocking ``ssl`` sockets and never used; the figure is the server's
RSS growth over the second batch divided by its size, once per loop.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import ssl
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from benchmarks.harness import (
    IDLE_WARMUP,
    ServerUnavailable,
    close_with_reset,
    idle_connections_allowed,
    open_fd_count,
    pin_to_cpu,
    run_json_child,
    settled_rss,
    start_server,
    stop_server,
    wait_until,
)
from benchmarks.loops import LoopMissing, load_loop_factory
from benchmarks.options import parse_cpu
from benchmarks.servers import (
    EchoProtocol,
    make_certificate,
    python_server_command,
    server_tls_context,
)
from benchmarks.tables import format_rate, format_ratio, format_table, versions_text

SIZES_KIB = (1, 64)
POINTS = [f"echo {s} KiB" for s in SIZES_KIB] + ["handshake"]
CHILD_TIMEOUT = 120.0


class EchoClient(asyncio.Protocol):
    """Sends ``message``, waits for all of it back, repeats until ``deadline``."""

    def __init__(self, message: bytes, deadline: float, done: asyncio.Future) -> None:
        self.message = message
        self.deadline = deadline
        self.done = done
        self.received = bytearray()
        self.round_trips = 0

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.message)

    def data_received(self, data):
        self.received += data
        if len(self.received) < len(self.message):
            return
        if self.received != self.message:
            self.done.set_exception(AssertionError("the echo server sent other bytes back"))
            self.transport.abort()
            return
        self.received.clear()
        self.round_trips += 1
        if time.monotonic() < self.deadline:
            self.transport.write(self.message)
        else:
            self.transport.close()

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_result(self.round_trips)


def contexts(cert: str, key: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    return server_tls_context(cert, key), ssl.create_default_context(cafile=cert)


async def echo_point(size: int, connections: int, seconds: float,
                     server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> int:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(EchoProtocol, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    message = os.urandom(size)
    deadline = time.monotonic() + seconds
    waiters = []
    for _ in range(connections):
        done = loop.create_future()
        await loop.create_connection(lambda d=done: EchoClient(message, deadline, d),
                                     "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost")
        waiters.append(done)
    total = sum(await asyncio.gather(*waiters))
    server.close()
    await server.wait_closed()
    return total


async def handshake_point(seconds: float, server_ctx: ssl.SSLContext,
                          client_ctx: ssl.SSLContext) -> int:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(EchoProtocol, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    deadline = time.monotonic() + seconds
    count = 0
    while time.monotonic() < deadline:
        transport, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port,
                                                    ssl=client_ctx, server_hostname="localhost")
        transport.close()
        count += 1
    server.close()
    await server.wait_closed()
    return count


def child_main(args: argparse.Namespace) -> int:
    pin_to_cpu(parse_cpu(args.cpu))
    factory, _ = load_loop_factory(args.child)
    server_ctx, client_ctx = contexts(args.cert, args.key)

    def work(seconds: float):
        if args.point == "handshake":
            return handshake_point(seconds, server_ctx, client_ctx)
        size = int(args.point.split()[1]) * 1024
        return echo_point(size, args.connections, seconds, server_ctx, client_ctx)

    loop = factory()
    try:
        loop.run_until_complete(work(args.seconds / 4))      # warm-up
        cpu0, wall0 = time.process_time(), time.perf_counter()
        ops = loop.run_until_complete(work(args.seconds))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        loop.close()
    print(json.dumps({"ops": ops, "cpu": cpu, "wall": wall}))
    return 0


def open_idle_tls_connections(port: int, count: int, client_ctx: ssl.SSLContext,
                              clients: list[ssl.SSLSocket]) -> None:
    """Add ``count`` handshaken TLS connections to ``clients`` (four threads: the
    handshake releases the GIL)."""
    def connect(_: int) -> ssl.SSLSocket:
        raw = socket.create_connection(("127.0.0.1", port), timeout=30)
        return client_ctx.wrap_socket(raw, server_hostname="localhost")

    with ThreadPoolExecutor(4) as pool:
        clients.extend(pool.map(connect, range(count)))


def measure_idle_memory(loop_name: str, count: int, cpu: int | None, cert: str,
                        key: str) -> float:
    """Bytes of server RSS per idle TLS connection, over ``count`` connections."""
    server = start_server(python_server_command(loop_name, "tls-echo")
                          + ["--cert", cert, "--key", key], cpu)
    client_ctx = ssl.create_default_context(cafile=cert)
    clients: list[ssl.SSLSocket] = []
    try:
        open_idle_tls_connections(server.port, IDLE_WARMUP, client_ctx, clients)
        baseline = settled_rss(server.pid)
        fds = open_fd_count(server.pid)
        open_idle_tls_connections(server.port, count, client_ctx, clients)
        wait_until(lambda: open_fd_count(server.pid) >= fds + count, 30,
                   f"the server to hold {count} more connections")
        return (settled_rss(server.pid, timeout=10.0) - baseline) / count
    finally:
        close_with_reset(clients)
        crashed = stop_server(server)
        if crashed is not None:
            raise RuntimeError(f"the {loop_name} server exited with {crashed}: "
                               f"{server.error_text()}")


def memory_rows(loops: Sequence[str], count: int, cpu: int | None, cert: str,
                key: str) -> list[list[str]]:
    """One row per loop: KiB per idle TLS connection, and its ratio to uvloop."""
    measured: dict[str, float | str] = {}
    for name in loops:
        try:
            measured[name] = measure_idle_memory(name, count, cpu, cert, key)
        except (ServerUnavailable, RuntimeError, OSError) as exc:
            measured[name] = f"error: {exc}"
    base = measured.get("uvloop")
    rows = []
    for name, value in measured.items():
        if isinstance(value, str):
            rows.append([name, value, "-"])
            continue
        ratio = value / base if isinstance(base, float) and base > 0 else None
        rows.append([name, f"{value / 1024:.2f}", format_ratio(ratio)])
    return rows


def run_child(loop_name: str, point: str, args: argparse.Namespace, cert: str, key: str) -> dict:
    command = [sys.executable, "-m", "benchmarks.tls", "--child", loop_name, "--point", point,
               "--seconds", str(args.seconds), "--connections", str(args.connections),
               "--cpu", str(args.cpu), "--cert", cert, "--key", key]
    return run_json_child(command, CHILD_TIMEOUT, f"{loop_name} {point}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tls",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--loops", default="phaseloop,uvloop,asyncio")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0, help="measured seconds per run")
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--idle-connections", type=int, default=10_000,
                        help="idle TLS connections for the memory line; 0: skip it")
    parser.add_argument("--cpu", default="0", help="CPU to pin each run to; 'none': not pinned")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 repeat, 0.2 s runs")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--point", help=argparse.SUPPRESS)
    parser.add_argument("--cert", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args)
    if args.quick:
        args.repeat, args.seconds = 1, 0.2
        args.idle_connections = min(args.idle_connections, 100)
    if args.idle_connections:
        args.idle_connections = idle_connections_allowed(args.idle_connections)

    loops = []
    for name in args.loops.split(","):
        try:
            loops.append((name, load_loop_factory(name)[1]))
        except LoopMissing as exc:
            print(f"skipping {name}: {exc}", file=sys.stderr)
    results: dict[tuple[str, str], list[dict]] = {(p, n): [] for p in POINTS for n, _ in loops}
    cpu = parse_cpu(args.cpu)
    memory = []
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = make_certificate(tmp)
        for _ in range(args.repeat):
            for point in POINTS:
                for name, _ in loops:
                    results[(point, name)].append(run_child(name, point, args, cert, key))
        if args.idle_connections:
            memory = memory_rows([name for name, _ in loops], args.idle_connections, cpu,
                                 cert, key)

    print(f"_median of {args.repeat} run(s), {args.seconds:g} s each after a warm-up, client and "
          f"server on one loop in one process pinned to CPU {args.cpu}, {args.connections} "
          f"connections for echo; OpenSSL {ssl.OPENSSL_VERSION.split()[1]}, Python "
          f"{sys.version.split()[0]}; {versions_text(dict(loops))}_\n")
    header = ["point", "loop", "ops/s", "CPU µs/op", "ops/s ÷ uvloop", "cpu ÷ uvloop"]
    rows = []
    medians = {}
    for point_loop, runs in results.items():
        rate = statistics.median(r["ops"] / r["wall"] for r in runs)
        cpu = statistics.median(r["cpu"] / max(r["ops"], 1) for r in runs)
        medians[point_loop] = (rate, cpu)
    for point in POINTS:
        base = medians.get((point, "uvloop"))
        for name, _ in loops:
            rate, cpu = medians[(point, name)]
            rows.append([point, name, format_rate(rate), f"{cpu * 1e6:.1f}",
                         format_ratio(rate / base[0] if base else None),
                         format_ratio(cpu / base[1] if base else None)])
    print(format_table(header, rows, markdown=args.markdown))
    if memory:
        print(f"\nServer memory per idle TLS connection ({args.idle_connections:,} connections, "
              f"RSS growth):\n")
        print(format_table(["loop", "KiB/conn", "÷ uvloop"], memory, markdown=args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
