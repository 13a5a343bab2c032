"""Per-layer overhead of phaseloop.middleware.compose.

``python -m benchmarks.middleware [--calls N] [--repeat R]``: a chain of L
pass-through ``async def`` layers (``return await next()``) in front of a
handler, called N times in one task on phaseloop; prints the median time per
call for L = 0, 1, 5, 10, 20 and the per-layer cost (the slope of a least
squares line through those points). For scale, the last line times a direct
``await handler(ctx)`` call, which is what a chain of zero layers replaces.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Sequence

import phaseloop
from phaseloop.middleware import compose

LAYERS = (0, 1, 5, 10, 20)


async def passthrough(ctx, next):
    return await next()


async def handler(ctx, next=None):
    return ctx


async def time_calls(app, calls: int) -> float:
    ctx = {}
    start = time.perf_counter()
    for _ in range(calls):
        await app(ctx)
    return (time.perf_counter() - start) / calls


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.middleware", description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1,000 calls, one repeat")
    args = parser.parse_args(argv)
    calls, repeat = (1000, 1) if args.quick else (args.calls, args.repeat)

    async def measure():
        apps = {n: compose([passthrough] * n + [handler]) for n in LAYERS}
        samples = {n: [] for n in LAYERS}
        direct = []
        for _ in range(repeat):
            for n, app in apps.items():
                samples[n].append(await time_calls(app, calls))
            direct.append(await time_calls(handler, calls))
        return {n: statistics.median(s) for n, s in samples.items()}, statistics.median(direct)

    medians, direct = phaseloop.run(measure())
    xs = list(medians)
    ys = [medians[n] for n in xs]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sum((x - mean_x) ** 2 for x in xs)
    print(f"compose(): median µs per call, {calls:,} calls x {repeat} repeats, Python "
          f"{sys.version.split()[0]}, on phaseloop")
    print("layers  µs/call")
    for n in xs:
        print(f"{n:>6}  {medians[n] * 1e6:7.2f}")
    print(f"per layer: {slope * 1e6:.2f} µs;  direct await handler(ctx): {direct * 1e6:.2f} µs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
