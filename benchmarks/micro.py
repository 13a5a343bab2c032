"""Wall-clock micro-benchmarks of the event loop's hot paths.

Each measurement runs in a fresh subprocess, one per (loop, benchmark, repeat),
pinned to one CPU.  The loops are interleaved (phaseloop, uvloop, asyncio,
phaseloop, ...) so that a slow phase of the machine hits every loop alike, and the
median of the repeats is reported with its ratio to uvloop and to asyncio, all
measured in the same run.

Example::

    python -m benchmarks.micro                          # everything, 5 repeats
    python -m benchmarks.micro --quick                  # smoke run
    python -m benchmarks.micro --loops phaseloop,uvloop --bench timers_fire,sleep0_switch
    python -m benchmarks.micro --markdown --json results.json

A loop that cannot be imported is reported as ``missing``; a child that fails
(exception, crash, timeout) is reported as ``error`` and makes the exit status 1.

The child side of the protocol (``--child LOOP BENCH``) prints one JSON line with
the operation count and the elapsed seconds; ``benchmarks.callgrind`` runs the
same child under valgrind.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import platform
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from benchmarks.harness import (
    EXIT_LOOP_MISSING,
    REPO_ROOT,
    child_env,
    describe_exit,
    last_line,
    log,
    pin_to_cpu,
    say_unavailable,
)
from benchmarks.loops import LoopMissing, load_loop_factory
from benchmarks.options import add_loops_option, add_output_options, parse_cpu, split_names
from benchmarks.tables import (
    cpu_model,
    format_rate,
    format_ratio,
    format_table,
    machine_text,
    print_caption,
    print_notes,
    ratio_pairs,
    relative_spread,
    versions_text,
    write_json,
)

__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "ChildOutcome",
    "child_command",
    "main",
    "parse_child_output",
    "run_child",
]

#: Seed of the random timer delays, so that every loop gets the same ones.
DELAY_SEED = 20240611
#: Longest random timer delay, in seconds.
MAX_TIMER_DELAY = 0.010
#: Number of tasks that share the ``sleep0_switch`` benchmark's switches.
SLEEP_TASKS = 10

Loop = asyncio.AbstractEventLoop
Workload = Callable[[Loop, int, Sequence[float]], None]


# --------------------------------------------------------------------------- workloads
#
# A workload runs ``n`` operations on ``loop`` and checks that they all happened, so
# that a broken loop fails instead of looking fast.  ``n == 0`` must work too: it is
# the baseline that benchmarks.callgrind subtracts.  ``delays`` holds at least ``n``
# random timer delays (empty for workloads that need none).


class WorkloadError(AssertionError):
    """A workload saw a different outcome than the one it scheduled."""


def _expect(actual: int, expected: int, what: str) -> None:
    """Raise WorkloadError unless ``actual == expected``."""
    if actual != expected:
        raise WorkloadError(f"expected {expected} {what}, got {actual}")


def call_soon_batch(loop: Loop, n: int, delays: Sequence[float]) -> None:
    """Schedule ``n`` call_soon callbacks, then run the loop until all have run."""
    ticks = itertools.count()
    tick = ticks.__next__  # a C callable: the loop's cost dominates, not the callback's
    call_soon = loop.call_soon
    for _ in range(n):
        call_soon(tick)
    call_soon(loop.stop)
    loop.run_forever()
    _expect(next(ticks), n, "callbacks run")


def call_soon_chain(loop: Loop, n: int, delays: Sequence[float]) -> None:
    """Run ``n`` callbacks, each scheduling the next with call_soon."""
    remaining = n

    def step() -> None:
        nonlocal remaining
        remaining -= 1
        if remaining > 0:
            loop.call_soon(step)
        else:
            loop.stop()

    loop.call_soon(step if n else loop.stop)
    loop.run_forever()
    _expect(max(remaining, 0), 0, "callbacks left")


def timers_fire(loop: Loop, n: int, delays: Sequence[float]) -> None:
    """Schedule ``n`` timers with random delays (0..10 ms) and run until all fired."""
    fired = 0

    def on_timer() -> None:
        nonlocal fired
        fired += 1
        if fired == n:
            loop.stop()

    call_later = loop.call_later
    for delay in itertools.islice(delays, n):
        call_later(delay, on_timer)
    if n == 0:
        loop.call_soon(loop.stop)
    loop.run_forever()
    _expect(fired, n, "timers fired")


def timers_cancel(loop: Loop, n: int, delays: Sequence[float]) -> None:
    """Schedule ``n`` timers with random delays, cancel them all, run one iteration.

    The iteration lets a loop that reaps cancelled timers lazily do that work.
    """
    fired = []
    call_later = loop.call_later
    handles = [call_later(delay, fired.append, delay) for delay in itertools.islice(delays, n)]
    for handle in handles:
        handle.cancel()
    loop.call_soon(loop.stop)
    loop.run_forever()
    _expect(len(fired), 0, "cancelled timers fired")


async def _sleep0_many(switches: int) -> int:
    """``await asyncio.sleep(0)`` ``switches`` times; return the count."""
    for _ in range(switches):
        await asyncio.sleep(0)
    return switches


async def _sleep0_tasks(n: int) -> int:
    """Share ``n`` sleep(0) switches among SLEEP_TASKS concurrent tasks."""
    shares = [n // SLEEP_TASKS + (i < n % SLEEP_TASKS) for i in range(SLEEP_TASKS)]
    done = await asyncio.gather(*(_sleep0_many(share) for share in shares))
    return sum(done)


def sleep0_switch(loop: Loop, n: int, delays: Sequence[float]) -> None:
    """``n`` task switches by ``await asyncio.sleep(0)`` among SLEEP_TASKS tasks."""
    _expect(loop.run_until_complete(_sleep0_tasks(n)), n, "task switches")


async def _future_round_trips(loop: Loop, n: int) -> int:
    """Create a future, resolve it from call_soon and await it, ``n`` times."""
    create_future = loop.create_future
    call_soon = loop.call_soon
    total = 0
    for _ in range(n):
        future = create_future()
        call_soon(future.set_result, 1)
        total += await future
    return total


def future_result(loop: Loop, n: int, delays: Sequence[float]) -> None:
    """``n`` times: create_future, set_result from a call_soon callback, await."""
    _expect(loop.run_until_complete(_future_round_trips(loop, n)), n, "futures resolved")


def call_soon_threadsafe(loop: Loop, n: int, delays: Sequence[float]) -> None:
    """Another thread schedules ``n`` callbacks with call_soon_threadsafe, then stop.

    The thread starts from inside the running loop, so the loop is polling (and
    must be woken) while the callbacks arrive.
    """
    ticks = itertools.count()
    tick = ticks.__next__

    def produce() -> None:
        schedule = loop.call_soon_threadsafe
        for _ in range(n):
            schedule(tick)
        schedule(loop.stop)

    producer = threading.Thread(target=produce, name="call_soon_threadsafe producer")
    loop.call_soon(producer.start)
    loop.run_forever()
    producer.join()
    _expect(next(ticks), n, "callbacks run")


async def _trivial() -> int:
    """The coroutine the create_task benchmark wraps: returns at once."""
    return 1


async def _create_and_await_tasks(loop: Loop, n: int) -> int:
    """create_task of a trivial coroutine and await it, ``n`` times."""
    create_task = loop.create_task
    total = 0
    for _ in range(n):
        total += await create_task(_trivial())
    return total


def create_task(loop: Loop, n: int, delays: Sequence[float]) -> None:
    """``n`` times: create_task(trivial coroutine), await the task."""
    _expect(loop.run_until_complete(_create_and_await_tasks(loop, n)), n, "tasks done")


def add_reader_pingpong(loop: Loop, n: int, delays: Sequence[float]) -> None:
    """``n`` reader callbacks: a byte bounces between the ends of a socketpair.

    Each end has an add_reader callback that reads the byte and sends it back,
    so every operation is one poll wake-up, one reader callback, a recv and a
    send: the path of code built on add_reader (asyncio's own transports, the
    sock_* methods, libraries that watch their own fds).
    """
    left, right = socket.socketpair()
    left.setblocking(False)
    right.setblocking(False)
    received = 0

    def bouncer(sock: socket.socket) -> Callable[[], None]:
        recv, send = sock.recv, sock.send

        def on_readable() -> None:
            nonlocal received
            recv(1)
            received += 1
            if received < n:
                send(b".")
            else:
                loop.stop()

        return on_readable

    try:
        loop.add_reader(left.fileno(), bouncer(left))
        loop.add_reader(right.fileno(), bouncer(right))
        if n:
            left.send(b".")
        else:
            loop.call_soon(loop.stop)
        loop.run_forever()
        loop.remove_reader(left.fileno())
        loop.remove_reader(right.fileno())
    finally:
        left.close()
        right.close()
    _expect(received, n, "reader callbacks")


@dataclass(frozen=True)
class Benchmark:
    """One workload and how to report it.

    ``n`` is the operation count of a normal run; ``callgrind_n`` the (smaller) one
    under valgrind.  ``unit`` names one operation.
    """

    name: str
    workload: Workload
    unit: str
    n: int
    callgrind_n: int
    needs_delays: bool = False

    @property
    def description(self) -> str:
        """First line of the workload's docstring."""
        return (self.workload.__doc__ or self.name).strip().splitlines()[0]


BENCHMARKS: dict[str, Benchmark] = {
    bench.name: bench
    for bench in (
        Benchmark("call_soon_batch", call_soon_batch, "callbacks", 100_000, 10_000),
        Benchmark("call_soon_chain", call_soon_chain, "callbacks", 100_000, 10_000),
        Benchmark("timers_fire", timers_fire, "timers", 100_000, 10_000, needs_delays=True),
        Benchmark("timers_cancel", timers_cancel, "timers", 100_000, 10_000, needs_delays=True),
        Benchmark("sleep0_switch", sleep0_switch, "switches", 100_000, 10_000),
        Benchmark("future_result", future_result, "futures", 100_000, 10_000),
        Benchmark("call_soon_threadsafe", call_soon_threadsafe, "callbacks", 100_000, 10_000),
        Benchmark("create_task", create_task, "tasks", 100_000, 10_000),
        Benchmark("add_reader_pingpong", add_reader_pingpong, "callbacks", 100_000, 10_000),
    )
}


def random_delays(count: int) -> list[float]:
    """``count`` timer delays, uniform in [0, MAX_TIMER_DELAY], the same on every run."""
    rng = random.Random(DELAY_SEED)
    return [rng.uniform(0.0, MAX_TIMER_DELAY) for _ in range(count)]


# --------------------------------------------------------------------------- child side


def run_workload(bench: Benchmark, factory: Callable[[], Loop], n: int,
                 warmup: int, setup_n: int) -> float:
    """Run ``bench`` with ``n`` operations on a fresh loop; return elapsed seconds.

    ``warmup`` operations run first on the same loop, untimed.  Inputs are built for
    ``max(n, warmup, setup_n)`` operations, so a baseline run (``n == 0``) can do the
    same set-up work as the run it is subtracted from.
    """
    size = max(n, warmup, setup_n)
    delays = random_delays(size) if bench.needs_delays else []
    loop = factory()
    asyncio.set_event_loop(loop)
    try:
        if warmup:
            bench.workload(loop, warmup, delays)
        gc.collect()
        start = time.perf_counter()
        bench.workload(loop, n, delays)
        return time.perf_counter() - start
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def child_main(args: argparse.Namespace) -> int:
    """Measure one (loop, benchmark) pair and print the result as one JSON line."""
    loop_name, bench_name = args.child
    pinned = pin_to_cpu(args.cpu)
    try:
        factory, version = load_loop_factory(loop_name)
    except LoopMissing as exc:
        say_unavailable("missing", str(exc))
        return EXIT_LOOP_MISSING
    bench = BENCHMARKS[bench_name]
    n = bench.n if args.n is None else args.n
    seconds = run_workload(bench, factory, n, args.warmup, args.setup_n)
    print(json.dumps({"ops": n, "seconds": seconds, "version": version, "pinned": pinned}),
          flush=True)
    return 0


# --------------------------------------------------------------------------- parent side


def child_command(loop_name: str, bench_name: str, n: int, *, warmup: int = 0,
                  setup_n: int = 0, cpu: int | None = None) -> list[str]:
    """The argv that measures ``bench_name`` on ``loop_name`` in a child process."""
    command = [sys.executable, "-m", "benchmarks.micro", "--child", loop_name, bench_name,
               "--n", str(n), "--warmup", str(warmup), "--setup-n", str(setup_n)]
    if cpu is not None:
        command += ["--cpu", str(cpu)]
    return command


@dataclass
class ChildOutcome:
    """What one child reported: a result, a missing loop, or an error."""

    status: str  # "ok", "missing" or "error"
    ops: int = 0
    seconds: float = 0.0
    detail: str = ""
    version: str = ""
    pinned: bool = False

    @property
    def rate(self) -> float:
        """Operations per second."""
        return self.ops / self.seconds if self.seconds > 0 else float("inf")


def parse_child_output(returncode: int, stdout: str, stderr: str) -> ChildOutcome:
    """Turn a finished child's exit status and output into a ChildOutcome."""
    try:
        report: dict[str, Any] = json.loads(last_line(stdout) or "null") or {}
    except json.JSONDecodeError:
        report = {}
    if returncode == EXIT_LOOP_MISSING and "missing" in report:
        return ChildOutcome("missing", detail=str(report["missing"]))
    if returncode != 0 or "ops" not in report:
        reason = last_line(stderr) or "no result printed"
        return ChildOutcome("error", detail=f"{describe_exit(returncode)}: {reason}")
    return ChildOutcome("ok", ops=int(report["ops"]), seconds=float(report["seconds"]),
                        version=str(report.get("version", "")),
                        pinned=bool(report.get("pinned", False)))


def run_child(command: Sequence[str], timeout: float) -> ChildOutcome:
    """Run one child command from the repository root and parse what it reports."""
    try:
        done = subprocess.run(command, cwd=REPO_ROOT, env=child_env(), capture_output=True,
                              text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return ChildOutcome("error", detail=f"timed out after {timeout:g} s")
    return parse_child_output(done.returncode, done.stdout, done.stderr)


@dataclass
class Cell:
    """All repeats of one (benchmark, loop) pair."""

    status: str = "ok"
    rates: list[float] = field(default_factory=list)
    detail: str = ""

    @property
    def median(self) -> float | None:
        """Median operations per second, None without results."""
        return statistics.median(self.rates) if self.status == "ok" and self.rates else None

    @property
    def spread(self) -> float:
        """Half the range of the repeats, relative to the median (0 for one repeat)."""
        return relative_spread(self.rates) if self.status == "ok" else 0.0


@dataclass
class Settings:
    """What to measure and how, from the command line."""

    loops: list[str]
    benches: list[str]
    repeat: int
    scale: float
    warmup_fraction: float
    cpu: int | None
    timeout: float
    verbose: bool

    def n_for(self, bench: Benchmark) -> int:
        """Operation count of ``bench`` in this run."""
        return max(1, round(bench.n * self.scale))


@dataclass
class Report:
    """Every cell of a run, plus what is known about the loops and the machine."""

    settings: Settings
    cells: dict[str, dict[str, Cell]]
    versions: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    pinned: bool = False

    @property
    def failed(self) -> bool:
        """True when any child reported an error (a missing loop is not one)."""
        return any(cell.status == "error" for row in self.cells.values() for cell in row.values())


def _record(report: Report, bench: str, loop_name: str, outcome: ChildOutcome) -> None:
    """Store one child's outcome in its cell (and note a missing loop)."""
    cell = report.cells[bench][loop_name]
    if outcome.status == "missing":
        report.missing[loop_name] = outcome.detail
    elif outcome.status == "error":
        cell.status, cell.detail = "error", outcome.detail
    else:
        cell.rates.append(outcome.rate)
        report.versions.setdefault(loop_name, outcome.version)
        report.pinned = report.pinned or outcome.pinned


def measure(settings: Settings) -> Report:
    """Run every (repeat, benchmark, loop) child, loops interleaved; collect results."""
    report = Report(settings, {b: {lp: Cell() for lp in settings.loops} for b in settings.benches})
    for repeat in range(settings.repeat):
        for bench_name in settings.benches:
            bench = BENCHMARKS[bench_name]
            n = settings.n_for(bench)
            warmup = int(n * settings.warmup_fraction)
            for loop_name in settings.loops:
                if loop_name in report.missing:
                    continue
                if report.cells[bench_name][loop_name].status == "error":
                    continue  # a pair that failed once is not retried
                command = child_command(loop_name, bench_name, n, warmup=warmup, cpu=settings.cpu)
                outcome = run_child(command, settings.timeout)
                _record(report, bench_name, loop_name, outcome)
                log(settings.verbose, f"[{repeat + 1}/{settings.repeat}] {bench_name:<22} "
                               f"{loop_name:<10} {_outcome_text(outcome)}")
    for loop_name in report.missing:
        for row in report.cells.values():
            row[loop_name].status = "missing"
    return report


def _outcome_text(outcome: ChildOutcome) -> str:
    """One child's result for the progress log."""
    if outcome.status == "ok":
        return f"{format_rate(outcome.rate)}/s"
    return f"{outcome.status}: {outcome.detail}"


# --------------------------------------------------------------------------- output


def _cell_text(cell: Cell) -> str:
    """A cell for the table: median rate and spread, or its status."""
    median = cell.median
    if median is None:
        return cell.status if cell.status != "ok" else "-"
    spread = f" ±{cell.spread:.0%}" if len(cell.rates) > 1 else ""
    return format_rate(median) + spread


def _ratio(row: dict[str, Cell], loop_name: str, reference: str) -> float | None:
    """Median of ``loop_name`` over median of ``reference`` (higher is faster)."""
    value, base = row[loop_name].median, row[reference].median
    return value / base if value is not None and base else None


def result_table(report: Report, *, markdown: bool = False) -> str:
    """The results as one row per benchmark: medians, then ratios."""
    loops = report.settings.loops
    pairs = ratio_pairs(loops)
    header = ["benchmark", "unit/s", *loops, *(f"{a}/{b}" for a, b in pairs)]
    rows = []
    for bench_name, row in report.cells.items():
        rows.append([bench_name, BENCHMARKS[bench_name].unit,
                     *(_cell_text(row[lp]) for lp in loops),
                     *(format_ratio(_ratio(row, a, b)) for a, b in pairs)])
    return format_table(header, rows, markdown=markdown)


def describe_run(report: Report) -> str:
    """One line saying how the numbers were obtained."""
    settings = report.settings
    pinned = f"pinned to CPU {settings.cpu}" if report.pinned else "not pinned"
    return (f"median of {settings.repeat} run(s) per cell, fresh process each, {pinned}; "
            f"{machine_text()}; {versions_text(report.versions)}")


def notes(report: Report) -> list[str]:
    """Lines explaining missing loops and errors."""
    lines = [f"{name}: missing ({reason})" for name, reason in report.missing.items()]
    for bench_name, row in report.cells.items():
        for loop_name, cell in row.items():
            if cell.status == "error":
                lines.append(f"{bench_name} on {loop_name}: error ({cell.detail})")
    return lines


def print_report(report: Report, *, markdown: bool) -> None:
    """Print the table, how it was measured, and the notes."""
    if not markdown:
        print("ops per second, higher is better; ratio > 1: the first loop is faster")
    print_caption(describe_run(report), markdown=markdown)
    print(result_table(report, markdown=markdown))
    print_notes(notes(report), markdown=markdown)


def report_json(report: Report) -> dict[str, Any]:
    """Everything measured, as a JSON-serialisable dict."""
    settings = report.settings
    results: dict[str, Any] = {}
    for bench_name, row in report.cells.items():
        bench = BENCHMARKS[bench_name]
        results[bench_name] = {
            "unit": bench.unit, "n": settings.n_for(bench), "description": bench.description,
            "loops": {lp: {"status": cell.status, "median_per_s": cell.median,
                           "samples_per_s": cell.rates, "detail": cell.detail}
                      for lp, cell in row.items()},
            "ratios": {f"{a}/{b}": _ratio(row, a, b) for a, b in ratio_pairs(settings.loops)},
        }
    return {
        "python": platform.python_version(), "cpu": cpu_model(), "platform": platform.platform(),
        "repeat": settings.repeat, "pinned_cpu": settings.cpu if report.pinned else None,
        "versions": report.versions, "missing": report.missing, "results": results,
    }


# --------------------------------------------------------------------------- command line


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.micro``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.micro",
        description="Throughput of the event loop's hot paths: phaseloop, uvloop, asyncio.",
        epilog="benchmarks: " + ", ".join(BENCHMARKS) + " (see benchmarks/README.md)")
    add_loops_option(parser, help="comma-separated loops, run interleaved in this order "
                                  "(default: %(default)s)")
    parser.add_argument("--bench", default=",".join(BENCHMARKS),
                        type=lambda s: split_names(s, list(BENCHMARKS), "benchmark"),
                        help="comma-separated benchmarks (default: all)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="fresh processes per (loop, benchmark); median reported (default: 5)")
    parser.add_argument("--scale", type=float, default=None,
                        help="multiply every benchmark's operation count (default: 1)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 1/100 of the operations, 1 repeat")
    parser.add_argument("--cpu", type=parse_cpu, default=0,
                        help="CPU to pin each child to, or 'none' (default: 0)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds one child may take (default: 120, 10 with --quick)")
    add_output_options(parser, verbose_help="log every child on stderr")
    # Child side: one measurement, printed as JSON.  Used by the parent and by callgrind.
    parser.add_argument("--child", nargs=2, metavar=("LOOP", "BENCH"), help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--setup-n", type=int, default=0, help=argparse.SUPPRESS)
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings for a parent run, --quick filling in what was not given."""
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 5)
    scale = args.scale if args.scale is not None else (0.01 if args.quick else 1.0)
    timeout = args.timeout if args.timeout is not None else (10.0 if args.quick else 120.0)
    if repeat < 1 or scale <= 0:
        raise SystemExit("--repeat must be >= 1 and --scale > 0")
    return Settings(loops=args.loops, benches=args.bench, repeat=repeat, scale=scale,
                    warmup_fraction=0.1, cpu=args.cpu, timeout=timeout,
                    verbose=args.verbose)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks.micro``; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.child:
        return child_main(args)
    report = measure(settings_from(args))
    print_report(report, markdown=args.markdown)
    if args.json:
        write_json(report_json(report), args.json)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
