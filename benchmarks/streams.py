"""Uppercase a file through a stream pipeline: phaseloop.streams vs Node 20.

``python -m benchmarks.streams [--size-mib 1024] [--repeat 3] [--quick]``
writes an ASCII file of the given size, then times, in fresh processes and
interleaved, the Node guide's pipeline::

    pipeline(create_read_stream(src), Upper(), create_write_stream(dst))

on phaseloop and on asyncio's loop, and Node's ``stream.pipeline`` with
the guide's Transform (``chunk.toString().toUpperCase()``,
benchmarks/node/upper_pipeline.js) on the same file. Prints median MiB/s,
the ratio to Node, and checks every output's size. Each process is pinned to
CPU 0 (the executor threads share it), as the other benchmarks are.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

from benchmarks.harness import pinned, run_json_child
from benchmarks.tables import format_ratio, format_table

NODE_SCRIPT = Path(__file__).resolve().parent / "node" / "upper_pipeline.js"

CHILD = """
import asyncio, json, sys, time
from phaseloop.streams import Transform, create_read_stream, create_write_stream, pipeline

class Upper(Transform):
    async def transform(self, chunk):
        return chunk.upper()

async def main(src, dst):
    start = time.perf_counter()
    await pipeline(create_read_stream(src), Upper(), create_write_stream(dst))
    return time.perf_counter() - start

src, dst, loop_name = sys.argv[1:4]
if loop_name == "phaseloop":
    import phaseloop
    seconds = phaseloop.run(main(src, dst))
else:
    seconds = asyncio.run(main(src, dst))
print(json.dumps({"seconds": seconds}))
"""


def make_input(path: Path, size: int) -> None:
    line = (b"the quick brown fox jumps over the lazy dog 0123456789\n" * 1200)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            f.write(line[:left])
            left -= len(line)


def run_one(kind: str, src: Path, dst: Path) -> float:
    if kind == "node":
        command = ["node", str(NODE_SCRIPT), str(src), str(dst)]
    else:
        command = [sys.executable, "-c", CHILD, str(src), str(dst), kind]
    seconds = run_json_child(pinned(command, 0), 600, kind)["seconds"]
    if dst.stat().st_size != src.stat().st_size:
        raise RuntimeError(f"{kind} wrote {dst.stat().st_size} bytes of {src.stat().st_size}")
    dst.unlink()
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.streams",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kinds", default="phaseloop,asyncio,node")
    parser.add_argument("--quick", action="store_true", help="64 MiB, one repeat")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    size_mib, repeat = (64, 1) if args.quick else (args.size_mib, args.repeat)
    kinds = [k for k in args.kinds.split(",") if k != "node" or shutil.which("node")]
    with tempfile.TemporaryDirectory(prefix="phaseloop-streams-") as tmp:
        src, dst = Path(tmp) / "input.txt", Path(tmp) / "output.txt"
        make_input(src, size_mib * 1024 * 1024)
        samples: dict[str, list[float]] = {k: [] for k in kinds}
        for _ in range(repeat):
            for kind in kinds:
                samples[kind].append(run_one(kind, src, dst))
    rates = {k: size_mib / statistics.median(v) for k, v in samples.items()}
    print(f"uppercase pipeline over a {size_mib} MiB file, median of {repeat}, pinned to CPU 0, "
          f"{time.strftime('%Y-%m-%d')}")
    ratios = {k: format_ratio(rate / rates["node"] if "node" in rates else None)
              for k, rate in rates.items()}
    if args.markdown:
        print(format_table(["pipeline", "MiB/s", "÷ node"],
                           [[k, f"{rates[k]:.0f}", ratios[k]] for k in kinds], markdown=True))
    else:
        for kind in kinds:
            print(f"{kind:>10} {rates[kind]:8.0f} MiB/s {ratios[kind]:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
