"""Driving an HTTP server with wrk: the command, its output, one measurement.

The wrk-driven benchmarks (``benchmarks.http``, ``benchmarks.realservers``) share
their options (:func:`add_wrk_arguments`, checked by :func:`prepare_wrk_run`), their
:class:`Settings`, the measurement of one server (:func:`measure_once`: a warm-up
wrk run, then the measured one with the server's CPU time read around it) and the
start of their caption (:func:`describe_wrk_run`).  :func:`wrk_command` and
:func:`parse_wrk_output` serve the benchmarks that run wrk their own way
(``benchmarks.cluster``, ``benchmarks.http_app``).
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Any, Sequence

from benchmarks.harness import (
    Server,
    client_command,
    describe_exit,
    last_line,
    process_cpu_seconds,
    require_tools,
)
from benchmarks.options import add_loops_option, add_output_options, parse_cpu
from benchmarks.tables import pinning_text

__all__ = [
    "Settings",
    "add_wrk_arguments",
    "describe_wrk_run",
    "measure_once",
    "parse_wrk_output",
    "prepare_wrk_run",
    "run_wrk",
    "wrk_command",
    "wrk_version",
]

#: Seconds a wrk request may take before wrk counts it as a timeout.
WRK_TIMEOUT_S = 5
#: wrk's latency units, in microseconds.
LATENCY_UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6}


def wrk_command(url: str, connections: int, seconds: int, *, latency: bool = True,
                timeout: int | None = None, extra: Sequence[str] = ()) -> list[str]:
    """One wrk thread, ``connections`` keep-alive connections, for ``seconds``;
    ``extra``: more wrk arguments (``-s script.lua``)."""
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", *extra]
    if latency:
        command.append("--latency")
    if timeout is not None:
        command.append(f"--timeout={timeout}s")
    return [*command, url]


def parse_wrk_output(text: str) -> dict[str, float]:
    """requests, seconds, rps, p50_us, p99_us and errors from ``wrk --latency`` output.

    Raises ValueError when a line is missing.
    """
    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, text, re.MULTILINE)
        if match is None:
            raise ValueError(f"no {pattern!r} in wrk's output: {last_line(text)!r}")
        return match

    def latency(percent: int) -> float:
        value, unit = find(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s|m)\s*$").groups()
        return float(value) * LATENCY_UNITS[unit]

    requests, seconds, unit = find(r"(\d+) requests in ([\d.]+)(us|ms|s|m)").groups()
    errors = 0
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                              r"timeout (\d+)", text)
    if socket_errors:
        errors += sum(map(int, socket_errors.groups()))
    bad_status = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if bad_status:
        errors += int(bad_status.group(1))
    return {"requests": int(requests), "seconds": float(seconds) * LATENCY_UNITS[unit] / 1e6,
            "rps": float(find(r"Requests/sec:\s+([\d.]+)").group(1)),
            "p50_us": latency(50), "p99_us": latency(99), "errors": errors}


def wrk_version() -> str:
    """wrk's version line ('wrk 4.1.0 ...'), or '' when it does not say."""
    done = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    return (done.stdout.strip().splitlines() or [""])[0].split(" [")[0]


@dataclass
class Settings:
    """What to measure and how, from the command line."""

    loops: list[str]
    repeat: int
    connections: int
    duration: int
    warmup: int
    cpu: int | None
    client_batch: bool
    verbose: bool
    #: (cert.pem, key.pem) to serve HTTPS with; None: plain HTTP.
    certificate: tuple[str, str] | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace, **more: Any) -> Settings:
        """The settings of :func:`add_wrk_arguments`' options, and ``more`` fields."""
        return cls(loops=args.loops, repeat=args.repeat, connections=args.connections,
                   duration=args.duration, warmup=args.warmup, cpu=args.cpu,
                   client_batch=args.client_policy == "batch", verbose=args.verbose, **more)


def run_wrk(server: Server, seconds: int, settings: Settings) -> dict[str, float]:
    """One wrk run against ``server``; its parsed results."""
    scheme = "https" if settings.certificate else "http"
    command = wrk_command(f"{scheme}://127.0.0.1:{server.port}/", settings.connections, seconds,
                          timeout=WRK_TIMEOUT_S)
    try:
        done = subprocess.run(client_command(command, settings.cpu, settings.client_batch),
                              capture_output=True, text=True, timeout=seconds + 30, check=False)
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"wrk did not finish in {seconds + 30} s") from exc
    if done.returncode != 0:
        raise RuntimeError(f"wrk {describe_exit(done.returncode)}: "
                           f"{last_line(done.stderr) or last_line(done.stdout)}")
    try:
        result = parse_wrk_output(done.stdout)
    except ValueError as exc:
        raise RuntimeError(str(exc)) from exc
    if result["errors"]:
        raise RuntimeError(f"wrk saw {result['errors']:.0f} socket errors or non-2xx answers")
    if result["requests"] == 0:
        raise RuntimeError("wrk completed no request")
    return result


def measure_once(server: Server, settings: Settings) -> dict[str, float]:
    """Warm-up run, then the measured run with the server's CPU time around it."""
    if settings.warmup > 0:
        run_wrk(server, settings.warmup, settings)
    cpu_before = process_cpu_seconds(server.pid)
    result = run_wrk(server, settings.duration, settings)
    cpu = process_cpu_seconds(server.pid) - cpu_before
    return {"rps": result["rps"], "server_us": cpu / result["requests"] * 1e6,
            "p50_us": result["p50_us"], "p99_us": result["p99_us"],
            "requests": result["requests"]}


def describe_wrk_run(settings: Settings) -> str:
    """The start of a caption: repeats, the wrk command, warm-up and pinning."""
    return (f"median of {settings.repeat} run(s), {wrk_version()} -t1 "
            f"-c{settings.connections} -d{settings.duration}s after a {settings.warmup} s "
            f"warm-up, {pinning_text(settings.cpu, settings.client_batch, 'wrk')}")


def add_wrk_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every wrk-driven benchmark shares (http and realservers)."""
    add_loops_option(parser)
    parser.add_argument("--repeat", type=int, default=5, help="repeats (default: 5)")
    parser.add_argument("--connections", type=int, default=10,
                        help="wrk's keep-alive connections (default: 10)")
    parser.add_argument("--duration", type=int, default=3,
                        help="whole seconds of each measured wrk run (default: 3)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="whole seconds of the warm-up wrk run, 0 for none (default: 1)")
    parser.add_argument("--cpu", type=parse_cpu, default=0,
                        help="CPU that server and wrk share; 'none': not pinned")
    parser.add_argument("--client-policy", choices=("batch", "normal"), default="batch",
                        help="scheduling policy of wrk (default: batch, SCHED_BATCH)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1 repeat, 1 s run, no warm-up")
    add_output_options(parser)


def prepare_wrk_run(args: argparse.Namespace) -> int | None:
    """Apply ``--quick``, check the options of :func:`add_wrk_arguments`, wrk and the
    pinning tools: an exit status to return at once, or None to go on."""
    if args.quick:
        args.repeat, args.duration, args.warmup = 1, 1, 0
    if args.repeat < 1 or args.connections < 1 or args.duration < 1 or args.warmup < 0:
        raise SystemExit("--repeat, --connections, --duration must be >= 1, --warmup >= 0")
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2
    require_tools(args.cpu, args.client_policy == "batch")
    return None
