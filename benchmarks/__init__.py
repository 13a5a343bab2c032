"""Benchmarks that compare phaseloop with uvloop, asyncio's default loop and Node.

``python -m benchmarks`` prints the main tables; each benchmark is a module run as
``python -m benchmarks.NAME`` (``micro``: the loop's hot paths per second;
``callgrind``: the same workloads as instructions per operation; ``echo``, ``http``,
``tls``, ``realservers``: servers under load; ...).  The pieces they share are
modules of their own: ``harness`` (building, starting, pinning, stopping and
measuring processes), ``tables`` (numbers, tables, captions), ``wrk``, ``points``,
``loops`` and ``options``.

See ``benchmarks/README.md`` for the layout, the methods and the results.
"""
