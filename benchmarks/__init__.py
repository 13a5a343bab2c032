"""Micro-benchmarks that compare phaseloop with uvloop and asyncio's default loop.

Two entry points:

- ``python -m benchmarks.micro``: wall-clock throughput of the loop's hot paths
  (call_soon, timers, task switches, futures, call_soon_threadsafe, create_task),
  each measured in a fresh, CPU-pinned subprocess, loops interleaved, medians reported.
- ``python -m benchmarks.callgrind``: the same workloads under
  ``valgrind --tool=callgrind``, reported as instructions per operation, a
  measure that does not depend on the machine's noise.

See ``benchmarks/README.md`` for the method and the results.
"""
