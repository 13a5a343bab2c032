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
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any, Sequence

from benchmarks.harness import log
from benchmarks.loops import REFERENCE_LOOP, loop_versions
from benchmarks.points import Point, point_text, ratio, run_point
from benchmarks.servers import make_certificate, python_server_command
from benchmarks.tables import (
    cpu_model,
    format_ratio,
    format_table,
    machine_text,
    print_caption,
    print_notes,
    versions_text,
    write_json,
)
from benchmarks.wrk import (
    Settings,
    add_wrk_arguments,
    describe_wrk_run,
    measure_once,
    prepare_wrk_run,
    wrk_version,
)

__all__ = ["main"]


@dataclass
class Report:
    """One point per loop."""

    settings: Settings
    points: dict[str, Point] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return any(p.status == "error" for p in self.points.values())


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


def describe_run(settings: Settings) -> str:
    """One line saying how the numbers were obtained."""
    return (f"{describe_wrk_run(settings)}; {machine_text()}; "
            f"{versions_text(loop_versions(settings.loops))}")


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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks.http``; returns the exit status."""
    args = build_parser().parse_args(argv)
    status = prepare_wrk_run(args)
    if status is not None:
        return status
    settings = Settings.from_args(args)
    with tempfile.TemporaryDirectory() as tmp:
        if args.tls:
            settings.certificate = make_certificate(tmp)
        report = measure(settings)
    print_caption(describe_run(settings), markdown=args.markdown)
    print(f"HTTP/1.1 hello world{' over TLS' if args.tls else ''}: requests/s (higher is "
          "better), server CPU µs per request (lower is better), latency µs.\n")
    print(result_table(report, markdown=args.markdown))
    problems = [f"{lp}: {p.status} ({p.detail})" for lp, p in report.points.items()
                if p.status != "ok"]
    print_notes(problems, markdown=args.markdown)
    if args.json:
        write_json(report_json(report), args.json)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
