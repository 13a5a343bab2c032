"""HTTP/1.1 hello-world benchmark: an httptools server on each loop, driven by wrk.

The server is ``benchmarks.servers --style http``: a protocol that parses requests
with httptools and answers each with a fixed 13-byte "Hello, World!", keeping the
connection open.  ``wrk`` (the Debian package) drives it with keep-alive
connections.

Example::

    python -m benchmarks.http                     # 5 repeats, ~1 minute
    python -m benchmarks.http --quick             # smoke run
    python -m benchmarks.http --loops uvloop,asyncio --connections 50 --markdown
    python -m benchmarks.http --tls               # HTTPS: the same server over TLS

With ``--tls`` the server is ``--style https`` (its certificate, ECDSA P-256,
made at start with the ``openssl`` command) and wrk speaks TLS to it; wrk's
connections are kept alive, so the figure is the loop's TLS record path, not
its handshakes.

Method, as ``benchmarks.echo`` (see there): server and wrk (one thread) pinned to
the same CPU (``--cpu``, default 0), wrk under SCHED_BATCH (``--client-policy``),
a fresh server per run, loops interleaved, medians of ``--repeat`` runs and
ratios to uvloop's from the same run.  Each run is a ``--warmup``-second wrk run
followed by the measured ``--duration``-second one (whole seconds: wrk's unit);
the server's CPU time (``/proc/PID/task/*/schedstat``) is read just before and
just after the measured run and divided by the requests wrk completed.  p99 is
wrk's (``--latency``).  A run with socket errors or non-2xx answers is an error.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any, Sequence

from benchmarks.echo import (
    REFERENCE_LOOP,
    Point,
    Server,
    client_command,
    log,
    loop_versions,
    point_text,
    process_cpu_seconds,
    python_server_command,
    ratio,
    require_tools,
    run_point,
)
from benchmarks.micro import (
    LOOP_NAMES,
    cpu_model,
    describe_exit,
    format_ratio,
    format_table,
    last_line,
    parse_cpu,
    split_names,
    write_json,
)
from benchmarks.servers import make_certificate

__all__ = ["main", "parse_wrk_output"]

#: Seconds a wrk request may take before wrk counts it as a timeout.
WRK_TIMEOUT_S = 5
#: wrk's latency units, in microseconds.
LATENCY_UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6}


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


@dataclass
class Report:
    """One point per loop."""

    settings: Settings
    points: dict[str, Point] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return any(p.status == "error" for p in self.points.values())


def run_wrk(server: Server, seconds: int, settings: Settings) -> dict[str, float]:
    """One wrk run against ``server``; its parsed results."""
    scheme = "https" if settings.certificate else "http"
    command = ["wrk", "-t1", f"-c{settings.connections}", f"-d{seconds}s", "--latency",
               f"--timeout={WRK_TIMEOUT_S}s", f"{scheme}://127.0.0.1:{server.port}/"]
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


def server_command(loop_name: str, settings: Settings) -> list[str]:
    """The hello-world server on ``loop_name``, over TLS when settings say so."""
    if settings.certificate is None:
        return python_server_command(loop_name, "http")
    cert, key = settings.certificate
    return python_server_command(loop_name, "https") + ["--cert", cert, "--key", key]


def measure(settings: Settings) -> Report:
    """Every (repeat, loop) run, loops interleaved."""
    report = Report(settings, {lp: Point() for lp in settings.loops})
    for repeat in range(settings.repeat):
        for loop_name, point in report.points.items():
            if point.status != "ok":
                continue  # missing, unsupported or failed once: not started again
            outcome = run_point(server_command(loop_name, settings), point, settings.cpu,
                                lambda server: measure_once(server, settings))
            log(settings.verbose, f"[{repeat + 1}/{settings.repeat}] http {loop_name:<9} {outcome}")
    return report


def result_table(report: Report, *, markdown: bool = False) -> str:
    header = ["loop", "req/s", "server µs/req", "p50 µs", "p99 µs", f"req/s ÷ {REFERENCE_LOOP}",
              f"cpu ÷ {REFERENCE_LOOP}"]
    reference = report.points.get(REFERENCE_LOOP)
    rows = [[loop_name, point_text(point, "rps", spread=True), point_text(point, "server_us"),
             point_text(point, "p50_us"), point_text(point, "p99_us"),
             format_ratio(ratio(point, reference, "rps")),
             format_ratio(ratio(point, reference, "server_us"))]
            if point.status == "ok" else [loop_name, point.status, *"-" * 5]
            for loop_name, point in report.points.items()]
    return format_table(header, rows, markdown=markdown)


def wrk_version() -> str:
    """wrk's version line ('wrk 4.1.0 ...'), or '' when it does not say."""
    done = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    return (done.stdout.strip().splitlines() or [""])[0].split(" [")[0]


def describe_run(settings: Settings) -> str:
    pinned_to = "not pinned" if settings.cpu is None else \
        f"server and wrk pinned to CPU {settings.cpu}"
    pinned_to += ", wrk under SCHED_BATCH" if settings.client_batch else ""
    versions = ", ".join(f"{k} {v}" for k, v in loop_versions(settings.loops).items())
    return (f"median of {settings.repeat} run(s), {wrk_version()} -t1 "
            f"-c{settings.connections} -d{settings.duration}s after a {settings.warmup} s "
            f"warm-up, {pinned_to}; Python {sys.version.split()[0]} on {cpu_model()}; {versions}")


def report_json(report: Report) -> dict[str, Any]:
    settings = report.settings
    reference = report.points.get(REFERENCE_LOOP)
    return {
        "cpu": cpu_model(), "wrk": wrk_version(), "repeat": settings.repeat,
        "connections": settings.connections, "duration_s": settings.duration,
        "warmup_s": settings.warmup, "pinned_cpu": settings.cpu,
        "client_sched_batch": settings.client_batch,
        "results": {
            loop_name: {"status": point.status, "detail": point.detail, "samples": point.samples,
                        "median": {m: point.median(m)
                                   for m in ("rps", "server_us", "p50_us", "p99_us")},
                        "ratio_to_uvloop": {m: ratio(point, reference, m)
                                            for m in ("rps", "server_us")}}
            for loop_name, point in report.points.items()
        },
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.http",
        description="HTTP/1.1 hello-world on httptools per loop, driven by wrk (keep-alive).")
    add_wrk_arguments(parser)
    parser.add_argument("--tls", action="store_true", help="serve HTTPS (wrk over TLS)")
    return parser


def add_wrk_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every wrk-driven benchmark shares (this one and realservers)."""
    parser.add_argument("--loops", default=",".join(LOOP_NAMES),
                        type=lambda s: split_names(s, LOOP_NAMES, "loop"),
                        help="comma-separated loops (default: %(default)s)")
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
    parser.add_argument("--json", metavar="FILE",
                        help="also write the results as JSON ('-': stdout)")
    parser.add_argument("--markdown", action="store_true", help="print the table as markdown")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every run on stderr")


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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks.http``; returns the exit status."""
    args = build_parser().parse_args(argv)
    status = prepare_wrk_run(args)
    if status is not None:
        return status
    settings = Settings(loops=args.loops, repeat=args.repeat, connections=args.connections,
                        duration=args.duration, warmup=args.warmup, cpu=args.cpu,
                        client_batch=args.client_policy == "batch", verbose=args.verbose)
    with tempfile.TemporaryDirectory() as tmp:
        if args.tls:
            settings.certificate = make_certificate(tmp)
        report = measure(settings)
    caption = describe_run(settings)
    print(f"_{caption}_\n" if args.markdown else caption + "\n")
    print(f"HTTP/1.1 hello world{' over TLS' if args.tls else ''}: requests/s (higher is "
          "better), server CPU µs per request (lower is better), latency µs.\n")
    print(result_table(report, markdown=args.markdown))
    problems = [f"{lp}: {p.status} ({p.detail})" for lp, p in report.points.items()
                if p.status != "ok"]
    if problems:
        print()
        print("\n".join(f"- {line}" if args.markdown else line for line in problems))
    if args.json:
        write_json(report_json(report), args.json)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
