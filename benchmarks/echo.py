"""TCP echo benchmarks: phaseloop, uvloop and asyncio servers against a C floor.

For each message size (1, 10, 100 KiB by default), each server style (protocol,
streams, sock; see ``benchmarks.servers``) and each loop, plus a minimal C epoll
echo server (``benchmarks/floor/echo_epoll.c``, the floor), this starts the server
and drives it with the C load generator (``benchmarks/loadgen.c``: N connections,
each sending a message and waiting for its whole echo, checked byte for byte).

Example::

    python -m benchmarks.echo                        # everything, 5 repeats, ~6 minutes
    python -m benchmarks.echo --quick                # smoke run, a few seconds
    python -m benchmarks.echo --loops uvloop,asyncio --sizes 1,100 --styles protocol
    python -m benchmarks.echo --markdown --json echo.json

Method:

- **One core.**  Server and load generator are both pinned to the same CPU
  (``taskset -c 0``; ``--cpu`` to pick another, ``--cpu none`` not to pin).  On a
  VM whose host steals time from busy sibling cores, a server and a client on
  separate cores swing by 2x between runs; on one core they reproduce within a
  few per cent.  Throughput is then 1 / (server + client CPU time per request),
  so the table gives each one's share.
- **The client does not preempt the server.**  The load generator runs under
  SCHED_BATCH (``chrt --batch 0``; ``--client-policy normal`` to drop it), so its
  wake-ups do not interrupt the server after every response: the server runs
  until it blocks and then finds several requests ready, as a loaded server
  whose clients are on other machines does.  Without it, each response
  switches to the client and back, the server sees one event per iteration and
  both pay for the switches (uvloop's protocol server: ~13 instead of ~8 µs per
  1 KiB request); asyncio's sock_recv, which tries recv(2) before waiting, also
  finds the next request already there instead of an empty socket.
- **Server CPU per request** is the loop's own cost: the load generator reads
  the server's CPU time (user + system, summed over its threads, from
  ``/proc/PID/task/*/schedstat``) when its measured window opens and closes, and
  divides the difference by the requests completed in that window.
- **Warm-up, then a window** of ``--duration`` seconds (after ``--warmup``
  seconds on the same connections).  p99 is the 99th percentile of the
  request latencies (first byte sent to last byte of the echo received) in the
  window.
- **Interleaved, medians.**  Each repeat measures every (size, style) point on
  every loop one after the other, a fresh server process each time; the table
  shows the median of the repeats (and half their range, relative, after
  ``±``), and ratios to uvloop's medians from the same run: ``req/s ÷ uvloop``
  above 1 is faster, ``cpu ÷ uvloop`` below 1 is cheaper.  The floor row is
  compared with uvloop's protocol server.
- **The generator is not the bottleneck.**  It is one thread on epoll doing one
  send(2) and one recv(2) per request (plus its share of epoll_wait); over 90 %
  of its CPU time is the kernel's TCP work for the client side, which any client
  pays, and it costs about as much per request as the C floor server
  (``client µs/req``).  The floor row is the check: the same generator drives the
  C server faster than any Python server, and ``server µs/req`` is counted on
  the server alone.
- **Memory per idle connection**: the server gets 100 connections (warm-up), then
  ``--idle-connections`` more (default 10,000, that never send anything); the
  growth of its resident set size (VmRSS), once all are accepted and it has
  settled, divided by their number.

A loop that does not import is shown as ``missing``; a loop that lacks what a style
needs (``NotImplementedError``, as phaseloop's transports until they exist) is
``unsupported``; neither is an error.  A server that crashes, a wrong echo or a
stalled run is an ``error`` and makes the exit status 1.  The C programs are built
on demand with ``cc -O2`` into ``build/bench/``.
"""
from __future__ import annotations

import argparse
import json
import platform
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from benchmarks.harness import (
    FLOOR_SOURCE,
    IDLE_WARMUP,
    LOADGEN_SOURCE,
    BuildError,
    Server,
    build_tool,
    client_command,
    close_with_reset,
    describe_exit,
    idle_connections_allowed,
    last_line,
    log,
    open_fd_count,
    require_tools,
    settled_rss,
    wait_until,
)
from benchmarks.loops import REFERENCE_LOOP, loop_versions
from benchmarks.options import add_loops_option, add_output_options, parse_cpu, split_names
from benchmarks.points import Point, notes, point_text, ratio, run_point
from benchmarks.servers import python_server_command
from benchmarks.tables import (
    cpu_model,
    format_ratio,
    format_size,
    format_table,
    machine_text,
    pinning_text,
    print_caption,
    print_notes,
    versions_text,
    write_json,
)

__all__ = ["main"]

#: Echo server styles of benchmarks.servers, in table order.
ECHO_STYLES: tuple[str, ...] = ("protocol", "streams", "sock")
#: The (style, loop) names of the C floor in tables and JSON.
FLOOR_STYLE, FLOOR_LOOP = "floor", "c-epoll"
#: Message sizes in KiB measured by default.
DEFAULT_SIZES_KIB: tuple[int, ...] = (1, 10, 100)
#: Seconds without any echo after which the load generator gives up.
STALL_TIMEOUT = 5.0
#: Connections opened at a time in the idle-memory benchmark, before waiting for the
#: server to accept them (well under the listen backlog).
IDLE_BATCH = 1000


# --------------------------------------------------------------------------- measuring


@dataclass
class Settings:
    """What to measure and how, from the command line."""

    loops: list[str]
    styles: list[str]
    sizes: list[int]
    floor: bool
    repeat: int
    connections: int
    duration: float
    warmup: float
    idle_connections: int
    cpu: int | None
    client_batch: bool
    verbose: bool


@dataclass
class Report:
    """Every point of a run."""

    settings: Settings
    #: (size, style, loop) -> throughput point; the floor is (size, FLOOR_STYLE, FLOOR_LOOP)
    echo: dict[tuple[int, str, str], Point] = field(default_factory=dict)
    #: (style, loop) -> bytes of server memory per idle connection
    memory: dict[tuple[str, str], Point] = field(default_factory=dict)
    #: (style, loop) -> the point that found it missing or unsupported; style None: a loop
    #: that does not import at all
    unavailable: dict[tuple[str | None, str], Point] = field(default_factory=dict)

    def unavailable_point(self, style: str, loop_name: str) -> Point | None:
        """Why (style, loop) cannot run, known from an earlier run; None if it can."""
        return self.unavailable.get((None, loop_name)) or self.unavailable.get((style, loop_name))

    def note_unavailable(self, style: str, loop_name: str, point: Point) -> None:
        """Remember a point that found its loop missing or its style unsupported."""
        if point.status == "missing":
            self.unavailable[(None, loop_name)] = point
        elif point.status == "unsupported":
            self.unavailable[(style, loop_name)] = point

    @property
    def failed(self) -> bool:
        return any(p.status == "error" for p in (*self.echo.values(), *self.memory.values()))


def server_command(style: str, loop_name: str, floor: Path) -> list[str]:
    """The argv of the server of a (style, loop) pair, the floor included."""
    if loop_name == FLOOR_LOOP:
        return [str(floor), "0"]
    return python_server_command(loop_name, style)


def run_loadgen(loadgen: Path, server: Server, size: int, settings: Settings) -> dict[str, float]:
    """Drive ``server`` with the load generator; one sample of the point's metrics."""
    command = [str(loadgen), "--port", str(server.port), "--size", str(size),
               "--connections", str(settings.connections), "--duration", str(settings.duration),
               "--warmup", str(settings.warmup), "--timeout", str(STALL_TIMEOUT),
               "--server-pid", str(server.pid)]
    timeout = settings.warmup + settings.duration + STALL_TIMEOUT + 30
    try:
        done = subprocess.run(client_command(command, settings.cpu, settings.client_batch),
                              capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"load generator timed out after {timeout:g} s") from exc
    try:
        result = json.loads(last_line(done.stdout) or "{}")
    except json.JSONDecodeError:
        result = {}
    if done.returncode != 0 or "requests" not in result:
        why = result.get("error") or last_line(done.stderr) or "no result"
        raise RuntimeError(f"load generator {describe_exit(done.returncode)}: {why}")
    requests = result["requests"]
    if requests == 0:
        raise RuntimeError("no request completed in the measured window")
    server_cpu = result.get("server_cpu_s")
    return {
        "rps": result["rps"],
        "server_us": None if server_cpu is None else server_cpu / requests * 1e6,
        "client_us": result["client_cpu_s"] / requests * 1e6,
        "p50_us": result["p50_us"],
        "p99_us": result["p99_us"],
        "requests": requests,
    }


def open_idle_connections(server: Server, count: int, clients: list[socket.socket]) -> None:
    """Add ``count`` connections to ``clients``, in batches the server accepts in turn."""
    already = open_fd_count(server.pid)
    target = already + count
    while count > 0:
        batch = min(count, IDLE_BATCH)
        for _ in range(batch):
            clients.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
        count -= batch
        accepted = target - count
        wait_until(lambda: open_fd_count(server.pid) >= accepted, 20,
                   f"the server to accept {accepted - already} connections")


def measure_idle_memory(server: Server, count: int) -> float:
    """Bytes of server RSS per idle connection, over ``count`` connections."""
    clients: list[socket.socket] = []
    try:
        open_idle_connections(server, IDLE_WARMUP, clients)
        baseline = settled_rss(server.pid)
        open_idle_connections(server, count, clients)
        return (settled_rss(server.pid) - baseline) / count
    finally:
        close_with_reset(clients)


def servers_to_run(settings: Settings) -> list[tuple[str, str]]:
    """(style, loop) pairs in the order one repeat measures them, the floor first."""
    pairs = [(FLOOR_STYLE, FLOOR_LOOP)] if settings.floor else []
    return pairs + [(style, lp) for style in settings.styles for lp in settings.loops]


def measure(settings: Settings, loadgen: Path, floor: Path) -> Report:
    """Every (repeat, size, style, loop) run, loops interleaved; then idle memory."""
    report = Report(settings)
    pairs = servers_to_run(settings)
    for size in settings.sizes:
        for style, loop_name in pairs:
            report.echo[(size, style, loop_name)] = Point()
    for style, loop_name in pairs:
        report.memory[(style, loop_name)] = Point()

    def run_once(point: Point, style: str, loop_name: str, label: str,
                 work: Callable[[Server], dict[str, float]]) -> None:
        if point.status != "ok" or report.unavailable_point(style, loop_name):
            return  # failed once, or its loop or style is known not to run
        outcome = run_point(server_command(style, loop_name, floor), point, settings.cpu, work)
        report.note_unavailable(style, loop_name, point)
        log(settings.verbose, f"[{repeat + 1}/{settings.repeat}] {label:>7} {style:<8} "
                              f"{loop_name:<9} {outcome}")

    for repeat in range(settings.repeat):
        for size in settings.sizes:
            for style, loop_name in pairs:
                run_once(report.echo[(size, style, loop_name)], style, loop_name,
                         format_size(size),
                         lambda server: run_loadgen(loadgen, server, size, settings))
        if settings.idle_connections > 0:
            for style, loop_name in pairs:
                run_once(report.memory[(style, loop_name)], style, loop_name, "idle",
                         lambda server: {"bytes": measure_idle_memory(
                             server, settings.idle_connections)})

    # A loop found missing or unsupported part-way shows so in all its points.
    for points in (report.echo, report.memory):
        for key, point in points.items():
            style, loop_name = key[-2:]
            known = report.unavailable_point(style, loop_name)
            if point.status == "ok" and known is not None:
                point.fail(known.status, known.detail)
    return report


# --------------------------------------------------------------------------- output


def reference_of(report: Report, size: int, style: str) -> Point | None:
    """The uvloop point a row is compared with (uvloop's protocol server for the floor)."""
    style = "protocol" if style == FLOOR_STYLE else style
    return report.echo.get((size, style, REFERENCE_LOOP))


def echo_table(report: Report, *, markdown: bool = False) -> str:
    """One row per (size, style, loop)."""
    header = ["size", "style", "loop", "req/s", "server µs/req", "p99 µs", "client µs/req",
              f"req/s ÷ {REFERENCE_LOOP}", f"cpu ÷ {REFERENCE_LOOP}"]
    rows = []
    for (size, style, loop_name), point in report.echo.items():
        if point.status != "ok":
            rows.append([format_size(size), style, loop_name, point.status, *"-" * 6])
            continue
        reference = reference_of(report, size, style)
        rows.append([format_size(size), style, loop_name,
                     point_text(point, "rps", spread=True),
                     point_text(point, "server_us"), point_text(point, "p99_us"),
                     point_text(point, "client_us"),
                     format_ratio(ratio(point, reference, "rps")),
                     format_ratio(ratio(point, reference, "server_us"))])
    return format_table(header, rows, markdown=markdown)


def memory_table(report: Report, *, markdown: bool = False) -> str:
    """One row per (style, loop): KiB of RSS per idle connection."""
    header = ["style", "loop", "KiB/conn", f"÷ {REFERENCE_LOOP}"]
    rows = []
    for (style, loop_name), point in report.memory.items():
        ref_style = "protocol" if style == FLOOR_STYLE else style
        reference = report.memory.get((ref_style, REFERENCE_LOOP))
        kib = point.median("bytes")
        text = f"{kib / 1024:.2f}" if kib is not None else "-"
        rows.append([style, loop_name, text if point.status == "ok" else point.status,
                     format_ratio(ratio(point, reference, "bytes"))])
    return format_table(header, rows, markdown=markdown)


def describe_run(settings: Settings) -> str:
    """One line saying how the numbers were obtained."""
    pinned_to = pinning_text(settings.cpu, settings.client_batch, "load generator")
    return (f"median of {settings.repeat} run(s), {settings.connections} connections, "
            f"{settings.duration:g} s windows after {settings.warmup:g} s warm-up, {pinned_to}; "
            f"{machine_text()}; {versions_text(loop_versions(settings.loops))}")


def print_report(report: Report, *, markdown: bool) -> None:
    settings = report.settings
    print_caption(describe_run(settings), markdown=markdown)
    print("Echo: requests/s (higher is better), server CPU µs per request (lower is better), "
          "p99 latency µs; the floor row's ratios are to uvloop's protocol server.\n")
    print(echo_table(report, markdown=markdown))
    if settings.idle_connections > 0:
        print(f"\nServer memory per idle connection ({settings.idle_connections:,} connections, "
              "RSS growth):\n")
        print(memory_table(report, markdown=markdown))
    lines = notes(report.echo, lambda k: f"{format_size(k[0])} {k[1]} on {k[2]}")
    lines += notes(report.memory, lambda k: f"idle memory {k[0]} on {k[1]}")
    print_notes(lines, markdown=markdown)


def report_json(report: Report) -> dict[str, Any]:
    """Everything measured, as a JSON-serialisable dict."""
    settings = report.settings
    metrics = ("rps", "server_us", "client_us", "p50_us", "p99_us")
    echo = []
    for (size, style, loop_name), point in report.echo.items():
        reference = reference_of(report, size, style)
        echo.append({
            "size": size, "style": style, "loop": loop_name, "status": point.status,
            "detail": point.detail, "samples": point.samples,
            "median": {m: point.median(m) for m in metrics},
            "ratio_to_uvloop": {m: ratio(point, reference, m) for m in ("rps", "server_us")},
        })
    memory = [{"style": style, "loop": loop_name, "status": point.status, "detail": point.detail,
               "bytes_per_connection": [s["bytes"] for s in point.samples],
               "median_bytes_per_connection": point.median("bytes")}
              for (style, loop_name), point in report.memory.items()]
    return {
        "python": platform.python_version(), "cpu": cpu_model(), "platform": platform.platform(),
        "repeat": settings.repeat, "connections": settings.connections,
        "duration_s": settings.duration, "warmup_s": settings.warmup,
        "pinned_cpu": settings.cpu, "client_sched_batch": settings.client_batch,
        "idle_connections": settings.idle_connections,
        "versions": loop_versions(settings.loops), "echo": echo, "idle_memory": memory,
    }


# --------------------------------------------------------------------------- command line


def parse_sizes(text: str) -> list[int]:
    """'1,10,100' (KiB) -> [1024, 10240, 102400]."""
    try:
        sizes = [int(float(part) * 1024) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"sizes are KiB numbers: {text!r}") from exc
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes must be positive")
    return sizes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.echo",
        description="TCP echo servers of phaseloop, uvloop and asyncio against a C epoll floor.")
    add_loops_option(parser)
    parser.add_argument("--styles", default=",".join(ECHO_STYLES),
                        type=lambda s: split_names(s, ECHO_STYLES, "style"),
                        help="comma-separated server styles (default: %(default)s)")
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES_KIB)), type=parse_sizes,
                        help="message sizes in KiB (default: %(default)s)")
    parser.add_argument("--no-floor", dest="floor", action="store_false",
                        help="do not measure the C epoll server")
    parser.add_argument("--repeat", type=int, default=5, help="repeats (default: 5)")
    parser.add_argument("--connections", type=int, default=10,
                        help="concurrent connections of the load generator (default: 10)")
    parser.add_argument("--duration", type=float, default=2.0,
                        help="seconds of each measured window (default: 2)")
    parser.add_argument("--warmup", type=float, default=0.5,
                        help="seconds of warm-up before it (default: 0.5)")
    parser.add_argument("--idle-connections", type=int, default=10_000,
                        help="idle connections of the memory benchmark, 0 to skip "
                             "(default: 10000)")
    parser.add_argument("--cpu", type=parse_cpu, default=0,
                        help="CPU that server and load generator share; 'none': not pinned")
    parser.add_argument("--client-policy", choices=("batch", "normal"), default="batch",
                        help="scheduling policy of the load generator: 'batch' (default: "
                             "SCHED_BATCH, it does not preempt the server) or 'normal'")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1 repeat, 0.2 s windows, 200 idle connections")
    add_output_options(parser, markdown_help="print the tables as markdown")
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    if args.quick:
        args.repeat, args.duration, args.warmup = 1, 0.2, 0.05
        args.idle_connections = min(args.idle_connections, 200)
    if args.repeat < 1 or args.connections < 1 or args.duration <= 0 or args.warmup < 0:
        raise SystemExit("--repeat and --connections must be >= 1, --duration > 0, --warmup >= 0")
    require_tools(args.cpu, args.client_policy == "batch")
    idle = args.idle_connections
    if idle > 0:
        idle = idle_connections_allowed(idle)
    return Settings(loops=args.loops, styles=args.styles, sizes=args.sizes, floor=args.floor,
                    repeat=args.repeat, connections=args.connections, duration=args.duration,
                    warmup=args.warmup, idle_connections=idle, cpu=args.cpu,
                    client_batch=args.client_policy == "batch", verbose=args.verbose)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks.echo``; returns the exit status."""
    args = build_parser().parse_args(argv)
    settings = settings_from(args)
    try:
        loadgen, floor = build_tool(LOADGEN_SOURCE), build_tool(FLOOR_SOURCE)
    except BuildError as exc:
        print(exc, file=sys.stderr)
        return 2
    report = measure(settings, loadgen, floor)
    print_report(report, markdown=args.markdown)
    if args.json:
        write_json(report_json(report), args.json)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
