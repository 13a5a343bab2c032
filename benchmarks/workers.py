"""phaseloop.workers against Node 20's worker_threads: messages and a Pool's CPU scaling.

``python -m benchmarks.workers [--repeat 5] [--cpus 0,1] [--quick] [--markdown]``

Message passing between a parent and one worker (benchmarks/node/workers.js is the
Node twin; the message is the same small object, ``{"i": i, "op": "add", "args":
[1, 2]}``):

- *round trip*: the parent posts the object, the worker posts it back, N times in a
  row; on both sides a ``"message"`` listener does the posting, as in the Node twin.
  Reported in µs per round trip.
- *one-way*: the parent posts N objects in a row (Python: ``await drain()`` every
  1,000), the worker's listener counts them and answers once at the end. Reported in
  messages/s.

for ``thread`` and ``process`` workers, Node's ``worker_threads``, and a hand-written
baseline: a thread with its own phaseloop loop and ``call_soon_threadsafe`` both ways
(no copy, no framing: the floor under the thread kind).

Pool scaling: J runs of a pure-Python CPU job (~15 ms) on ``Pool(1, kind="process")``
then ``Pool(2, ...)``; the speedup is the ratio of the two times, and
``phaseloop.monitor_event_loop_delay()`` (1 ms resolution) records the parent loop's
delay while the 2-worker pool runs (its p99). The same jobs on the standard library's
``ProcessPoolExecutor(1)`` and ``(2)`` show what the machine allows at that moment (a
second core taken by other work gives no pool a speedup).

Method: every measurement is a fresh process (``--child``), runs are interleaved
(repeat, then kind), medians of ``--repeat``; ratios are medians over medians from the
same run. The processes run under ``taskset -c CPUS`` (default ``0,1``: both cores of
the 2-vCPU project VM, since a worker only helps with a core of its own; ``none``
leaves them unpinned). The targets in docs/workers.md are checked and printed under the table.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Sequence

from benchmarks.harness import cpus_to_pin, pinned, run_json_child
from benchmarks.tables import format_rate, format_ratio, format_table

NODE_SCRIPT = Path(__file__).resolve().parent / "node" / "workers.js"
KINDS = ("thread", "process", "baseline", "node")
MODES = ("roundtrip", "oneway")
CHILD_TIMEOUT = 300.0
CPU_JOB_N = 150_000           # ~15 ms of pure Python on the project VM
DRAIN_EVERY = 1000


def message(i: int) -> dict:
    return {"i": i, "op": "add", "args": [1, 2]}


# ---- the worker side (imported by the workers: fork or spawn) ---------------------------


def echo_worker() -> None:
    """As the Node twin's worker: a 'message' listener posts each message back (round
    trip) or counts them and answers once at the end (one-way). The listener keeps
    the worker running after this returns, as in Node."""
    from phaseloop import workers
    port = workers.parent_port
    mode, n = workers.worker_data["mode"], workers.worker_data["n"]
    if mode == "roundtrip":
        port.on("message", port.post_message)
        return
    seen = 0

    def count(_msg: Any) -> None:
        nonlocal seen
        seen += 1
        if seen == n:
            port.post_message(seen)
    port.on("message", count)


def cpu_job(n: int) -> int:
    """Pure Python, no I/O: what a process Pool is for."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


# ---- children ---------------------------------------------------------------------------


async def measure_worker(kind: str, mode: str, n: int) -> float:
    """The parent's side, as the Node twin's: 'message' listeners, no task per message."""
    from phaseloop import workers
    loop = asyncio.get_running_loop()
    w = workers.Worker("benchmarks.workers:echo_worker", kind=kind,
                       data={"mode": mode, "n": n})
    online = loop.create_future()
    w.once("online", lambda: online.set_result(None))
    await online
    done = loop.create_future()
    start = time.perf_counter()
    if mode == "roundtrip":
        replies = 0

        def on_reply(_msg: Any) -> None:
            nonlocal replies
            replies += 1
            if replies == n:
                done.set_result(None)
            else:
                w.post_message(message(replies))
        w.on("message", on_reply)
        w.post_message(message(0))
    else:
        w.on("message", done.set_result)
        for i in range(n):
            w.post_message(message(i))
            if i % DRAIN_EVERY == DRAIN_EVERY - 1:
                await w.drain()
    count = await done
    seconds = time.perf_counter() - start
    if mode == "oneway" and count != n:
        raise RuntimeError(f"the worker saw {count} of {n} messages")
    await w.terminate()
    return seconds


async def measure_baseline(mode: str, n: int) -> float:
    """A thread running its own phaseloop loop, call_soon_threadsafe both ways."""
    import phaseloop
    parent = asyncio.get_running_loop()
    ready = threading.Event()
    box: dict[str, Any] = {}

    def thread_main() -> None:
        loop = phaseloop.new_event_loop()
        box["loop"] = loop
        ready.set()
        loop.run_forever()
        loop.close()

    thread = threading.Thread(target=thread_main)
    thread.start()
    ready.wait()
    child = box["loop"]
    seen = [0]
    start = time.perf_counter()
    if mode == "roundtrip":
        for i in range(n):
            fut = parent.create_future()
            child.call_soon_threadsafe(parent.call_soon_threadsafe, fut.set_result,
                                       message(i))
            await fut
    else:
        done = parent.create_future()

        def count(_msg: Any) -> None:
            seen[0] += 1
            if seen[0] == n:
                parent.call_soon_threadsafe(done.set_result, seen[0])

        for i in range(n):
            child.call_soon_threadsafe(count, message(i))
        await done
    seconds = time.perf_counter() - start
    child.call_soon_threadsafe(child.stop)
    thread.join()
    return seconds


async def measure_pool(size: int, jobs: int) -> dict:
    import phaseloop
    from phaseloop import workers
    pool = workers.Pool(size, "benchmarks.workers:cpu_job", kind="process")
    await asyncio.gather(*(pool.run(1000) for _ in range(size)))      # started, warm
    monitor = phaseloop.monitor_event_loop_delay(resolution=0.001)
    monitor.enable()
    start = time.perf_counter()
    await asyncio.gather(*(pool.run(CPU_JOB_N) for _ in range(jobs)))
    seconds = time.perf_counter() - start
    monitor.disable()
    await pool.close()
    return {"seconds": seconds, "jobs": jobs, "p99": monitor.percentile(99),
            "max": monitor.max}


def measure_executor(size: int, jobs: int) -> dict:
    """The same jobs on concurrent.futures.ProcessPoolExecutor: what the machine gives."""
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(size) as executor:
        list(executor.map(cpu_job, [1000] * size))                  # started, warm
        start = time.perf_counter()
        list(executor.map(cpu_job, [CPU_JOB_N] * jobs))
        return {"seconds": time.perf_counter() - start, "jobs": jobs}


def child_main(args: argparse.Namespace) -> int:
    import phaseloop
    if args.child == "executor":
        result = measure_executor(args.size, args.n)
    elif args.child == "pool":
        result = phaseloop.run(measure_pool(args.size, args.n))
    elif args.child == "baseline":
        result = {"seconds": phaseloop.run(measure_baseline(args.mode, args.n))}
    else:
        result = {"seconds": phaseloop.run(measure_worker(args.child, args.mode, args.n))}
    result["messages"] = args.n
    print(json.dumps(result))
    return 0


def run_child(command: list[str], cpus: str) -> dict:
    """Run one measurement under ``taskset -c CPUS`` (unless 'none'); its JSON result."""
    command = pinned(command, cpus_to_pin(cpus))
    return run_json_child(command, CHILD_TIMEOUT, " ".join(command))


def message_command(kind: str, mode: str, n: int) -> list[str]:
    if kind == "node":
        return ["node", str(NODE_SCRIPT), mode, str(n)]
    return [sys.executable, "-m", "benchmarks.workers", "--child", kind, "--mode", mode,
            "--n", str(n)]


def pool_command(size: int, jobs: int, kind: str = "pool") -> list[str]:
    return [sys.executable, "-m", "benchmarks.workers", "--child", kind, "--size",
            str(size), "--n", str(jobs)]


# ---- the table --------------------------------------------------------------------------


def check(label: str, ok: bool | None, detail: str) -> str:
    verdict = "n/a" if ok is None else ("met" if ok else "NOT met")
    return f"- {label}: {detail} -> {verdict}"


def report(rt: dict[str, float], rate: dict[str, float], pool: dict[str, Any],
           markdown: bool) -> str:
    kinds = [k for k in KINDS if k in rt]
    node_rt, node_rate = rt.get("node"), rate.get("node")
    rows = [["round trip (µs)", *(f"{rt[k] * 1e6:.1f}" for k in kinds),
             *(format_ratio(rt[k] / node_rt if node_rt else None)
               for k in ("thread", "process"))],
            ["one-way (msgs/s)", *(format_rate(rate[k]) for k in kinds),
             *(format_ratio(rate[k] / node_rate if node_rate else None)
               for k in ("thread", "process"))]]
    header = ["", *kinds, "thread ÷ node", "process ÷ node"]
    lines = [format_table(header, rows, markdown=markdown), ""]
    if pool:
        lines.append(format_table(
            ["Pool, process kind", "1 worker", "2 workers", "speedup", "loop delay p99",
             "max"],
            [["CPU jobs/s", f"{pool['rate1']:.1f}", f"{pool['rate2']:.1f}",
              format_ratio(pool["speedup"]), f"{pool['p99'] * 1e3:.2f} ms",
              f"{pool['max'] * 1e3:.2f} ms"],
             ["ProcessPoolExecutor, same jobs", f"{pool['executor1']:.1f}",
              f"{pool['executor2']:.1f}", format_ratio(pool["executor_speedup"]), "-", "-"]],
            markdown=markdown))
        lines.append("")
    lines.append("Targets (docs/workers.md), from the medians above:")
    lines.append(check("thread round trip <= node's", node_rt and rt["thread"] <= node_rt,
                       f"{rt['thread'] * 1e6:.1f} vs {node_rt * 1e6:.1f} µs"
                       if node_rt else "no node"))
    lines.append(check("thread one-way >= 0.5x node's",
                       node_rate and rate["thread"] >= 0.5 * node_rate,
                       format_ratio(rate["thread"] / node_rate) if node_rate else "no node"))
    lines.append(check("process round trip <= 2x node's",
                       node_rt and rt["process"] <= 2 * node_rt,
                       format_ratio(rt["process"] / node_rt) if node_rt else "no node"))
    lines.append(check("process one-way >= 0.3x node's",
                       node_rate and rate["process"] >= 0.3 * node_rate,
                       format_ratio(rate["process"] / node_rate) if node_rate else "no node"))
    if pool:
        lines.append(check("Pool(2) >= 1.8x Pool(1)", pool["speedup"] >= 1.8,
                           format_ratio(pool["speedup"])))
        lines.append(check("loop delay p99 <= 2 ms", pool["p99"] <= 0.002,
                           f"{pool['p99'] * 1e3:.2f} ms"))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.workers",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--roundtrips", type=int, default=20_000)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--cpus", default="0,1", help="taskset CPU list; 'none': unpinned")
    parser.add_argument("--no-pool", action="store_true", help="skip the Pool scaling part")
    parser.add_argument("--quick", action="store_true", help="smoke run: small N, 1 repeat")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args)
    if args.quick:
        args.repeat, args.roundtrips, args.messages, args.jobs = 1, 500, 5_000, 4
    kinds = [k for k in KINDS if k != "node" or shutil.which("node")]
    if "node" not in kinds:
        print("node is not installed: no Node column", file=sys.stderr)
    counts = {"roundtrip": args.roundtrips, "oneway": args.messages}
    samples: dict[tuple[str, str], list[float]] = {}
    pool_samples: dict[int, list[dict]] = {1: [], 2: []}
    executor_samples: dict[int, list[dict]] = {1: [], 2: []}
    for _ in range(args.repeat):
        for mode in MODES:
            for kind in kinds:
                out = run_child(message_command(kind, mode, counts[mode]), args.cpus)
                samples.setdefault((kind, mode), []).append(out["seconds"])
        if not args.no_pool:
            for size in (1, 2):
                pool_samples[size].append(run_child(pool_command(size, args.jobs), args.cpus))
                executor_samples[size].append(
                    run_child(pool_command(size, args.jobs, "executor"), args.cpus))
    rt = {k: statistics.median(samples[k, "roundtrip"]) / counts["roundtrip"] for k in kinds}
    rate = {k: counts["oneway"] / statistics.median(samples[k, "oneway"]) for k in kinds}
    pool: dict[str, Any] = {}
    if not args.no_pool:
        t1 = statistics.median(s["seconds"] for s in pool_samples[1])
        t2 = statistics.median(s["seconds"] for s in pool_samples[2])
        e1 = statistics.median(s["seconds"] for s in executor_samples[1])
        e2 = statistics.median(s["seconds"] for s in executor_samples[2])
        pool = {"rate1": args.jobs / t1, "rate2": args.jobs / t2, "speedup": t1 / t2,
                "p99": statistics.median(s["p99"] for s in pool_samples[2]),
                "max": statistics.median(s["max"] for s in pool_samples[2]),
                "executor1": args.jobs / e1, "executor2": args.jobs / e2,
                "executor_speedup": e1 / e2}
    print(f"phaseloop.workers vs Node {node_version()} worker_threads, "
          f"{time.strftime('%Y-%m-%d')}, Python {sys.version.split()[0]}, medians of "
          f"{args.repeat}, CPUs {args.cpus}; {args.roundtrips} round trips, "
          f"{args.messages} one-way messages, {args.jobs} CPU jobs\n")
    print(report(rt, rate, pool, args.markdown))
    return 0


def node_version() -> str:
    if not shutil.which("node"):
        return "(missing)"
    return subprocess.run(["node", "--version"], capture_output=True, text=True,
                          check=False).stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
