"""Instructions per operation of each micro-benchmark, counted by callgrind.

Every workload of ``benchmarks.micro`` runs twice under ``valgrind --tool=callgrind``
for each loop: once with N operations and once with none (same inputs built, same
imports, same loop created and closed).  The difference of the two instruction
counts (Ir), divided by N, is the cost of one operation without the interpreter's
start-up.  Instruction counts do not depend on the machine's load, so they show
small changes that wall-clock timings drown in; they do not see cache misses,
branch mispredictions or time spent blocked in the kernel.

Example::

    python -m benchmarks.callgrind                       # all benchmarks, 3 loops
    python -m benchmarks.callgrind --loops phaseloop,uvloop --bench timers_fire
    python -m benchmarks.callgrind --markdown --json ir.json

valgrind runs the children in parallel (``--jobs``, default: one per CPU); counts
are the same whatever the parallelism.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from benchmarks.micro import BENCHMARKS, ChildOutcome, child_command, run_child
from benchmarks.options import add_loops_option, add_output_options, split_names
from benchmarks.tables import (
    cpu_model,
    format_ratio,
    format_table,
    machine_text,
    print_caption,
    ratio_pairs,
    versions_text,
    write_json,
)

__all__ = ["IrResult", "main", "measure_instructions", "read_total_ir"]

#: valgrind's path: the one on PATH, else the usual place.
VALGRIND = shutil.which("valgrind") or "/usr/bin/valgrind"


@dataclass
class IrResult:
    """Instructions per operation of one (benchmark, loop) pair, or why there are none."""

    status: str  # "ok", "missing" or "error"
    n: int = 0
    total_ir: int = 0
    baseline_ir: int = 0
    detail: str = ""
    version: str = ""

    @property
    def ir_per_op(self) -> float | None:
        """(Ir with N operations - Ir with none) / N."""
        if self.status != "ok" or self.n <= 0:
            return None
        return (self.total_ir - self.baseline_ir) / self.n


def read_total_ir(path: Path) -> int:
    """The total instruction count a callgrind output file records."""
    for line in path.read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("summary", "totals"):
            return int(value.split()[0])
    raise ValueError(f"no instruction total in {path}")


def callgrind_run(loop_name: str, bench_name: str, n: int, setup_n: int, timeout: float,
                  workdir: Path) -> tuple[ChildOutcome, int]:
    """Run one child under callgrind; return its outcome and total Ir (0 on failure)."""
    tag = f"{loop_name}.{bench_name}.{n}"
    out_file = workdir / f"callgrind.{tag}.out"
    command = [VALGRIND, "--tool=callgrind", f"--callgrind-out-file={out_file}",
               f"--log-file={workdir / f'valgrind.{tag}.log'}",
               *child_command(loop_name, bench_name, n, setup_n=setup_n)]
    outcome = run_child(command, timeout)
    if outcome.status != "ok":
        return outcome, 0
    try:
        return outcome, read_total_ir(out_file)
    except (OSError, ValueError) as exc:
        return ChildOutcome("error", detail=str(exc)), 0


def measure_pair(loop_name: str, bench_name: str, n: int, timeout: float) -> IrResult:
    """Ir per operation of one benchmark on one loop: a run with N minus one with 0."""
    with tempfile.TemporaryDirectory(prefix="phaseloop-callgrind-") as tmp:
        workdir = Path(tmp)
        baseline, baseline_ir = callgrind_run(loop_name, bench_name, 0, n, timeout, workdir)
        if baseline.status != "ok":
            return IrResult(baseline.status, detail=baseline.detail)
        full, total_ir = callgrind_run(loop_name, bench_name, n, n, timeout, workdir)
        if full.status != "ok":
            return IrResult(full.status, detail=full.detail)
    return IrResult("ok", n=n, total_ir=total_ir, baseline_ir=baseline_ir, version=full.version)


def probe_loop(loop_name: str, timeout: float) -> str | None:
    """Why ``loop_name`` cannot run (import failure), or None when it can."""
    outcome = run_child(child_command(loop_name, "call_soon_batch", 0), timeout)
    return None if outcome.status == "ok" else f"{outcome.status}: {outcome.detail}"


def measure_instructions(loops: Sequence[str], benches: Sequence[str], n: int | None,
                         jobs: int, timeout: float, verbose: bool = False,
                         ) -> tuple[dict[str, dict[str, IrResult]], dict[str, str]]:
    """Ir per operation for every (benchmark, loop); also the loops that cannot run."""
    unavailable = {lp: why for lp in loops if (why := probe_loop(lp, timeout)) is not None}
    results = {b: {lp: IrResult("missing", detail=unavailable.get(lp, "")) for lp in loops}
               for b in benches}
    pairs = [(b, lp) for b in benches for lp in loops if lp not in unavailable]

    def run(pair: tuple[str, str]) -> None:
        bench_name, loop_name = pair
        count = n if n is not None else BENCHMARKS[bench_name].callgrind_n
        result = measure_pair(loop_name, bench_name, count, timeout)
        results[bench_name][loop_name] = result
        if verbose:
            print(f"{bench_name:<22} {loop_name:<10} {_result_text(result)}",
                  file=sys.stderr, flush=True)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(run, pairs))
    return results, unavailable


def _result_text(result: IrResult) -> str:
    """A result for a table cell or the progress log."""
    value = result.ir_per_op
    return f"{value:,.0f}" if value is not None else result.status


def _ratio(row: dict[str, IrResult], loop_name: str, reference: str) -> float | None:
    """Ir/op of ``loop_name`` over Ir/op of ``reference`` (lower is cheaper)."""
    value, base = row[loop_name].ir_per_op, row[reference].ir_per_op
    return value / base if value is not None and base else None


def ir_table(results: dict[str, dict[str, IrResult]], loops: Sequence[str], *,
             markdown: bool = False) -> str:
    """One row per benchmark: Ir/op per loop, then the ratios."""
    pairs = ratio_pairs(loops)
    header = ["benchmark", "N", *(f"{lp} Ir/op" for lp in loops), *(f"{a}/{b}" for a, b in pairs)]
    rows = []
    for bench_name, row in results.items():
        n = next((r.n for r in row.values() if r.status == "ok"), 0)
        ratios = (_ratio(row, a, b) for a, b in pairs)
        rows.append([bench_name, f"{n:,}" if n else "-",
                     *(_result_text(row[lp]) for lp in loops),
                     *map(format_ratio, ratios)])
    return format_table(header, rows, markdown=markdown)


def describe_run(results: dict[str, dict[str, IrResult]]) -> str:
    """One line saying what the numbers are and where they come from."""
    versions: dict[str, str] = {}
    for row in results.values():
        for loop_name, result in row.items():
            if result.version:
                versions.setdefault(loop_name, result.version)
    return (f"instructions (callgrind Ir) per operation, lower is better; ratio < 1: the "
            f"first loop executes fewer; {machine_text()}; {versions_text(versions)}")


def error_notes(results: dict[str, dict[str, IrResult]], unavailable: dict[str, str]) -> list[str]:
    """Lines explaining loops that cannot run and runs that failed."""
    lines = [f"{lp}: {why}" for lp, why in unavailable.items()]
    for bench_name, row in results.items():
        lines += [f"{bench_name} on {lp}: error ({r.detail})"
                  for lp, r in row.items() if r.status == "error"]
    return lines


def results_json(results: dict[str, dict[str, IrResult]], loops: Sequence[str],
                 unavailable: dict[str, str]) -> dict[str, Any]:
    """Everything measured, as a JSON-serialisable dict."""
    return {
        "python": platform.python_version(), "cpu": cpu_model(), "unavailable": unavailable,
        "results": {
            bench_name: {
                "loops": {lp: {"status": r.status, "n": r.n, "ir_per_op": r.ir_per_op,
                               "total_ir": r.total_ir, "baseline_ir": r.baseline_ir,
                               "detail": r.detail, "version": r.version}
                          for lp, r in row.items()},
                "ratios": {f"{a}/{b}": _ratio(row, a, b) for a, b in ratio_pairs(loops)},
            }
            for bench_name, row in results.items()
        },
    }


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.callgrind``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.callgrind",
        description="Instructions per operation (callgrind Ir) of phaseloop, uvloop, asyncio.")
    add_loops_option(parser)
    parser.add_argument("--bench", default=",".join(BENCHMARKS),
                        type=lambda s: split_names(s, list(BENCHMARKS), "benchmark"),
                        help="comma-separated benchmarks (default: all)")
    parser.add_argument("--n", type=int, default=None,
                        help="operations per run for every benchmark (default: each one's own)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="valgrind runs in parallel (default: one per CPU)")
    parser.add_argument("--timeout", type=float, default=180.0,
                        help="seconds one valgrind run may take (default: 180)")
    add_output_options(parser, verbose_help="log every result on stderr")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks.callgrind``; returns the exit status."""
    args = build_parser().parse_args(argv)
    if not Path(VALGRIND).exists():
        print(f"valgrind not found (looked for {VALGRIND})", file=sys.stderr)
        return 2
    if args.n is not None and args.n < 1:
        raise SystemExit("--n must be >= 1")
    results, unavailable = measure_instructions(args.loops, args.bench, args.n, args.jobs,
                                                args.timeout, args.verbose)
    print_caption(describe_run(results), markdown=args.markdown)
    print(ir_table(results, args.loops, markdown=args.markdown))
    notes = error_notes(results, unavailable)
    if notes:
        print()
        print("\n".join(notes))
    if args.json:
        write_json(results_json(results, args.loops, unavailable), args.json)
    failed = any(r.status == "error" for row in results.values() for r in row.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
